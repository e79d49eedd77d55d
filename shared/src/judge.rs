//! The judge's statistics: is green worse than blue while both serve, with a false-rollback
//! rate that stays at most `alpha` however often it looks?
//!
//! Blue and green serve side by side under the same traffic, each period's requests split by
//! their weights. Count what went wrong in each (5xx responses, or requests slower than a
//! latency threshold) and suppose bad requests arrive as Poisson processes whose rates are
//! proportional to each side's requests, `ρ` times higher on green. Given a period's total of
//! bad requests, how many were green's is then binomial, with the chance that one bad request
//! is green's
//!
//! ```text
//! p(ρ) = ρ·n_green / (ρ·n_green + n_blue)
//! ```
//!
//! whatever the unknown common rate. The likelihood ratio of `ρ` against `ρ0`, multiplied over
//! the periods seen so far, is then a nonnegative martingale when `ρ = ρ0` (a supermartingale
//! when `ρ` lies beyond `ρ0` on the other side), and so is any fixed mixture of such ratios. By
//! Ville's inequality it ever reaches `1/alpha` with probability at most `alpha`: an e-process,
//! valid at every look (the mixture sequential probability ratio test, as in Lindon, Sanden and
//! Shirikian, "Rapid Regression Detection in Software Deployments through Sequential Testing",
//! KDD 2022, for count data). Two such tests run at once:
//!
//! - **worse**: against `ρ ≤ 1` (green no worse than blue), mixing alternatives at and beyond
//!   the smallest degradation worth acting on, `ρ ≥ 1 + δ`. Reaching `1/alpha` rolls back; an
//!   A/A deployment (green identical to blue) does so with probability at most `alpha`.
//! - **no worse**: against `ρ ≥ 1 + δ`, mixing alternatives at and below `ρ = 1`. Reaching
//!   `1/alpha` ends the bake early: a green that is `1 + δ` times worse passes this way with
//!   probability at most `alpha`.
//!
//! Neither reached is inconclusive, and so is too little traffic: green must have served a
//! minimum of requests before the judge says anything (a 1% canary at night never passes
//! blind). The metric reads live behind a port; everything here is arithmetic on counts.

/// What one period showed on each side: requests and bad requests (5xx errors, or slow ones).
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Period {
    pub green_requests: f64,
    pub green_bad: f64,
    pub blue_requests: f64,
    pub blue_bad: f64,
}

/// The evidence of the periods so far.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evidence {
    /// e-value against "green is no worse than blue" (`ρ ≤ 1`).
    pub worse: f64,
    /// e-value against "green is `1 + δ` times worse or more" (`ρ ≥ 1 + δ`).
    pub no_worse: f64,
    pub green_requests: f64,
    pub green_bad: f64,
    pub blue_requests: f64,
    pub blue_bad: f64,
}

impl Evidence {
    /// Green's rate of bad requests, 0..=1.
    pub fn green_rate(&self) -> f64 {
        rate(self.green_bad, self.green_requests)
    }

    /// Blue's rate of bad requests, 0..=1.
    pub fn blue_rate(&self) -> f64 {
        rate(self.blue_bad, self.blue_requests)
    }
}

fn rate(bad: f64, requests: f64) -> f64 {
    if requests > 0.0 { bad / requests } else { 0.0 }
}

/// The judge's answer so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Verdict {
    /// Green is worse than blue: roll back.
    Worse,
    /// Green is no worse than `1 + δ` times blue: the bake may end.
    NoWorse,
    /// Not enough evidence either way (or too few green requests) yet.
    Inconclusive,
}

/// How the comparison is made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Test {
    /// `δ`: the smallest relative degradation worth acting on (0.5 for "50% more bad
    /// requests than blue").
    pub min_degradation: f64,
    /// The false-rollback rate allowed, and the rate at which a `1 + δ` worse green may pass
    /// early.
    pub alpha: f64,
    /// Green requests needed before any verdict.
    pub min_green_requests: f64,
}

/// The alternatives each test mixes, as multiples of the boundary it tests against: equal
/// weights on a log grid, from the boundary out to ten times it (worse) or a tenth (no worse).
const GRID: [f64; 8] = [1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 6.0, 10.0];

/// `ln(e^a + e^b + ...)` without overflow.
fn log_sum_exp(values: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = values.collect();
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return max;
    }
    max + v.iter().map(|x| (x - max).exp()).sum::<f64>().ln()
}

/// The log-likelihood of one period's split under ratio `rho` (dropping what does not depend
/// on it); a period where one side served nothing says nothing.
fn log_likelihood(p: &Period, rho: f64) -> f64 {
    if p.green_requests <= 0.0 || p.blue_requests <= 0.0 {
        return 0.0;
    }
    let green = rho * p.green_requests;
    let total = green + p.blue_requests;
    p.green_bad * (green / total).ln() + p.blue_bad * (p.blue_requests / total).ln()
}

/// The evidence, period by period: the log-likelihood of every ratio either test uses, summed
/// as periods come, so that each look costs the same however long the bake.
#[derive(Debug, Clone, PartialEq)]
pub struct Judge {
    boundary: f64,
    /// `ln L(1)` and `ln L(1 + δ)`: the nulls.
    at_one: f64,
    at_boundary: f64,
    /// `ln L` at `(1 + δ)·g` and at `1/g` for each `g` of `GRID`.
    worse: [f64; GRID.len()],
    no_worse: [f64; GRID.len()],
    totals: Period,
}

impl Judge {
    /// A judge for a smallest degradation `min_degradation` (`δ`).
    pub fn new(min_degradation: f64) -> Judge {
        Judge {
            boundary: 1.0 + min_degradation.max(0.0),
            at_one: 0.0,
            at_boundary: 0.0,
            worse: [0.0; GRID.len()],
            no_worse: [0.0; GRID.len()],
            totals: Period {
                green_requests: 0.0,
                green_bad: 0.0,
                blue_requests: 0.0,
                blue_bad: 0.0,
            },
        }
    }

    /// Adds one period.
    pub fn add(&mut self, p: &Period) {
        self.at_one += log_likelihood(p, 1.0);
        self.at_boundary += log_likelihood(p, self.boundary);
        for (i, g) in GRID.iter().enumerate() {
            self.worse[i] += log_likelihood(p, self.boundary * g);
            self.no_worse[i] += log_likelihood(p, 1.0 / g);
        }
        self.totals.green_requests += p.green_requests;
        self.totals.green_bad += p.green_bad;
        self.totals.blue_requests += p.blue_requests;
        self.totals.blue_bad += p.blue_bad;
    }

    /// The evidence of the periods added so far.
    pub fn evidence(&self) -> Evidence {
        let weight = (GRID.len() as f64).ln();
        let mixture =
            |lls: &[f64], null: f64| (log_sum_exp(lls.iter().map(|ll| ll - null)) - weight).exp();
        Evidence {
            worse: mixture(&self.worse, self.at_one),
            no_worse: mixture(&self.no_worse, self.at_boundary),
            green_requests: self.totals.green_requests,
            green_bad: self.totals.green_bad,
            blue_requests: self.totals.blue_requests,
            blue_bad: self.totals.blue_bad,
        }
    }

    /// The verdict so far under `test` (whose `min_degradation` this judge was made with).
    pub fn verdict(&self, test: &Test) -> (Verdict, Evidence) {
        let e = self.evidence();
        let threshold = 1.0 / test.alpha;
        let verdict = if e.green_requests < test.min_green_requests {
            Verdict::Inconclusive
        } else if e.worse >= threshold {
            Verdict::Worse
        } else if e.no_worse >= threshold {
            Verdict::NoWorse
        } else {
            Verdict::Inconclusive
        };
        (verdict, e)
    }
}

/// The evidence of `periods` for a smallest degradation `min_degradation` (`δ`).
pub fn evidence(periods: &[Period], min_degradation: f64) -> Evidence {
    let mut judge = Judge::new(min_degradation);
    for p in periods {
        judge.add(p);
    }
    judge.evidence()
}

/// The verdict on `periods` under `test`.
pub fn judge(periods: &[Period], test: &Test) -> (Verdict, Evidence) {
    let mut judge = Judge::new(test.min_degradation);
    for p in periods {
        judge.add(p);
    }
    judge.verdict(test)
}

/// Requests slower than a latency threshold, from CloudWatch's percentile rank of it
/// (`PR(:threshold)`: the percentage of requests at or under it) over `requests`.
pub fn slow_requests(requests: f64, percentile_rank: f64) -> f64 {
    (requests * (100.0 - percentile_rank.clamp(0.0, 100.0)) / 100.0).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use rand_distr::{Distribution, Poisson};

    /// One simulated deployment: per minute, `rps` requests a second split `share` to green,
    /// bad at `blue_rate` and `ratio` times that on green, Poisson counts throughout. The first
    /// period (1-based) at which the judge says Worse or NoWorse, if any within `minutes`.
    fn run(
        rng: &mut StdRng,
        rps: f64,
        share: f64,
        blue_rate: f64,
        ratio: f64,
        minutes: usize,
        test: &Test,
    ) -> Option<(usize, Verdict)> {
        let mut judge = Judge::new(test.min_degradation);
        let draw = |rng: &mut StdRng, mean: f64| {
            if mean <= 0.0 {
                0.0
            } else {
                Poisson::new(mean).unwrap().sample(rng)
            }
        };
        for minute in 1..=minutes {
            let green_requests = draw(rng, rps * 60.0 * share);
            let blue_requests = draw(rng, rps * 60.0 * (1.0 - share));
            judge.add(&Period {
                green_requests,
                green_bad: draw(rng, green_requests * blue_rate * ratio),
                blue_requests,
                blue_bad: draw(rng, blue_requests * blue_rate),
            });
            let (verdict, _) = judge.verdict(test);
            if verdict != Verdict::Inconclusive {
                return Some((minute, verdict));
            }
        }
        None
    }

    const TEST: Test = Test {
        min_degradation: 0.5,
        alpha: 0.05,
        min_green_requests: 100.0,
    };

    #[test]
    fn an_identical_green_is_rolled_back_at_most_alpha_of_the_time_however_often_it_looks() {
        let mut rng = StdRng::seed_from_u64(7);
        let runs = 2_000;
        let rolled_back = (0..runs)
            .filter(|_| {
                run(&mut rng, 10.0, 0.05, 0.01, 1.0, 60, &TEST)
                    .is_some_and(|(_, v)| v == Verdict::Worse)
            })
            .count();
        // Looked at 60 times each; Ville's inequality bounds the rate at alpha (5%, 100 of
        // 2,000). Three standard errors of slack for the simulation itself.
        let bound = runs as f64 * (TEST.alpha + 3.0 * (TEST.alpha * 0.95 / runs as f64).sqrt());
        eprintln!(
            "A/A: {rolled_back} of {runs} rolled back (alpha {})",
            TEST.alpha
        );
        assert!(
            (rolled_back as f64) <= bound,
            "{rolled_back} of {runs} A/A deployments rolled back"
        );
    }

    #[test]
    fn a_green_three_times_worse_is_caught_and_one_as_good_passes_early() {
        let mut rng = StdRng::seed_from_u64(11);
        let caught = (0..200)
            .filter(|_| {
                run(&mut rng, 10.0, 0.1, 0.01, 3.0, 60, &TEST)
                    .is_some_and(|(_, v)| v == Verdict::Worse)
            })
            .count();
        assert!(caught >= 190, "only {caught} of 200 caught");
        let passed = (0..200)
            .filter(|_| {
                run(&mut rng, 100.0, 0.25, 0.01, 1.0, 60, &TEST)
                    .is_some_and(|(_, v)| v == Verdict::NoWorse)
            })
            .count();
        assert!(passed >= 190, "only {passed} of 200 passed early");
    }

    #[test]
    fn too_little_green_traffic_is_inconclusive_never_a_pass() {
        // A 1% canary at night: 6 green requests a minute, no errors anywhere.
        let periods = vec![
            Period {
                green_requests: 6.0,
                green_bad: 0.0,
                blue_requests: 594.0,
                blue_bad: 0.0,
            };
            10
        ];
        let (verdict, e) = judge(&periods, &TEST);
        assert_eq!(verdict, Verdict::Inconclusive);
        assert_eq!(e.green_requests, 60.0);
        // No bad requests at all: the likelihoods are flat, the evidence exactly 1 both ways.
        assert!((e.worse - 1.0).abs() < 1e-12 && (e.no_worse - 1.0).abs() < 1e-12);
    }

    #[test]
    fn the_evidence_is_the_likelihood_ratio_of_the_split() {
        // One period, equal traffic, 30 bad requests on green and 10 on blue: under rho the
        // chance a bad request is green's is rho/(rho+1), so at rho = 3 the ratio against
        // rho = 1 is (3/4)^30 (1/4)^10 / (1/2)^40.
        let p = [Period {
            green_requests: 1_000.0,
            green_bad: 30.0,
            blue_requests: 1_000.0,
            blue_bad: 10.0,
        }];
        let at_three = (log_likelihood(&p[0], 3.0) - log_likelihood(&p[0], 1.0)).exp();
        let expected = (0.75f64.powi(30) * 0.25f64.powi(10)) / 0.5f64.powi(40);
        assert!(
            (at_three / expected - 1.0).abs() < 1e-9,
            "{at_three} vs {expected}"
        );
        let e = evidence(&p, 0.5);
        assert!(e.worse > 20.0, "{e:?}");
        assert!((e.green_rate() - 0.03).abs() < 1e-12 && (e.blue_rate() - 0.01).abs() < 1e-12);
    }

    #[test]
    fn slow_requests_come_from_the_percentile_rank() {
        assert_eq!(slow_requests(1_000.0, 99.0), 10.0);
        assert_eq!(slow_requests(1_000.0, 100.0), 0.0);
        assert_eq!(slow_requests(1_000.0, 150.0), 0.0);
    }
}
