//! The judge against a static CloudWatch alarm and a fixed-horizon test, on simulated
//! per-minute CloudWatch data (README, "The judge: benchmark"):
//!
//! ```sh
//! cargo run --release -p guardrails --example judge_bench [-- A/A-RUNS BAD-RUNS]
//! ```
//!
//! Each deployment bakes for `BAKE_MINUTES`, green at a fixed share of the requests, Poisson
//! counts every minute. Blue answers 1% of its requests with a 5xx. For each cell (requests a
//! second, green's share):
//!
//! - **A/A** (green identical to blue), A/A-RUNS deployments (10,000 by default): how often
//!   each method rolls back within the bake. The judge looks every minute at a configured
//!   false-rollback rate `ALPHA`; the static alarm (green's per-minute error rate above a
//!   threshold, one datapoint) has its threshold tuned on these same runs so that it fires in
//!   at most `ALPHA` of them, which no real alarm can know in advance; the fixed-horizon test
//!   (an exact one-sided binomial test of green's share of the errors, at `ALPHA`) looks once,
//!   at the end of the bake.
//! - **Bad greens**, BAD-RUNS deployments each (2,000): errors 2x and 3x blue's, and p99
//!   latency +50% (log-normal latency with sigma 0.5, so the share of green's requests slower
//!   than blue's p99 is 6.5% instead of 1%; the alarm and the tests count those slow requests,
//!   as CloudWatch's percentile rank gives them). The median and 95th percentile minute of the
//!   rollback decision; `-` where fewer than that share of the runs decided within the bake.

// A benchmark prints its table; its counts are whole and nonnegative, so the casts are exact.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use guardrails::judge::{Judge, Period, Test, Verdict};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Poisson};
use statrs::distribution::{Binomial, ContinuousCDF, DiscreteCDF, Normal};

const BAKE_MINUTES: usize = 60;
const BLUE_RATE: f64 = 0.01;
const ALPHA: f64 = 0.01;
const TEST: Test = Test {
    min_degradation: 0.5,
    alpha: ALPHA,
    min_green_requests: 100.0,
};
const RPS: [f64; 4] = [1.0, 10.0, 100.0, 1_000.0];
const SHARES: [f64; 3] = [0.01, 0.05, 0.25];

fn draw(rng: &mut StdRng, mean: f64) -> f64 {
    if mean <= 0.0 {
        0.0
    } else {
        Poisson::new(mean).unwrap().sample(rng)
    }
}

/// One deployment's minutes.
fn minutes(rng: &mut StdRng, rps: f64, share: f64, green_rate: f64) -> Vec<Period> {
    (0..BAKE_MINUTES)
        .map(|_| {
            let green_requests = draw(rng, rps * 60.0 * share);
            let blue_requests = draw(rng, rps * 60.0 * (1.0 - share));
            Period {
                green_requests,
                green_bad: draw(rng, green_requests * green_rate),
                blue_requests,
                blue_bad: draw(rng, blue_requests * BLUE_RATE),
            }
        })
        .collect()
}

/// The judge's first decisive minute and verdict, looking every minute.
fn judge(periods: &[Period]) -> (Option<usize>, Verdict) {
    let mut j = Judge::new(TEST.min_degradation);
    for (i, p) in periods.iter().enumerate() {
        j.add(p);
        let (v, _) = j.verdict(&TEST);
        if v != Verdict::Inconclusive {
            return (Some(i + 1), v);
        }
    }
    (None, Verdict::Inconclusive)
}

/// The highest per-minute green error rate (minutes without green requests have no datapoint:
/// missing data, not breaching).
fn worst_minute(periods: &[Period]) -> f64 {
    periods
        .iter()
        .filter(|p| p.green_requests > 0.0)
        .map(|p| p.green_bad / p.green_requests)
        .fold(0.0, f64::max)
}

/// The first minute green's rate is above `threshold`.
fn alarm(periods: &[Period], threshold: f64) -> Option<usize> {
    periods
        .iter()
        .position(|p| p.green_requests > 0.0 && p.green_bad / p.green_requests > threshold)
        .map(|i| i + 1)
}

/// The exact one-sided test at the end of the bake: is green's share of the bad requests
/// larger than its share of the requests?
fn fixed_horizon(periods: &[Period]) -> bool {
    let sum = |f: fn(&Period) -> f64| periods.iter().map(f).sum::<f64>();
    let (gr, gb, br, bb) = (
        sum(|p| p.green_requests),
        sum(|p| p.green_bad),
        sum(|p| p.blue_requests),
        sum(|p| p.blue_bad),
    );
    let bad = (gb + bb) as u64;
    if bad == 0 || gr <= 0.0 || gr < TEST.min_green_requests {
        return false;
    }
    let p0 = gr / (gr + br);
    let b = Binomial::new(p0, bad).unwrap();
    // P(X >= gb) = 1 - P(X <= gb - 1).
    let tail = if gb < 1.0 {
        1.0
    } else {
        1.0 - b.cdf(gb as u64 - 1)
    };
    tail <= ALPHA
}

/// The q-quantile of the decision minutes, over all runs (undecided ones count as never).
fn quantile(decided: &[Option<usize>], q: f64) -> String {
    let mut d: Vec<usize> = decided.iter().flatten().copied().collect();
    d.sort_unstable();
    let need = (q * decided.len() as f64).ceil() as usize;
    if need == 0 || d.len() < need {
        "-".to_owned()
    } else {
        d[need - 1].to_string()
    }
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let aa_runs = args.first().copied().unwrap_or(10_000);
    let bad_runs = args.get(1).copied().unwrap_or(2_000);
    // Latency: log-normal, sigma 0.5; +50% at p99 scales every request by 1.5.
    let normal = Normal::new(0.0, 1.0).unwrap();
    let z99 = normal.inverse_cdf(0.99);
    let slow_share = 1.0 - normal.cdf(z99 - 1.5f64.ln() / 0.5);
    let scenarios = [
        ("errors 2x", 2.0 * BLUE_RATE),
        ("errors 3x", 3.0 * BLUE_RATE),
        ("p99 +50%", slow_share),
    ];
    println!(
        "{BAKE_MINUTES}-minute bakes, blue 1% bad, alpha {ALPHA}, smallest degradation {}%, \
         at least {} green requests; {aa_runs} A/A and {bad_runs} bad deployments per cell \
         (p99 +50%: {:.1}% of green's requests slower than blue's p99)\n",
        TEST.min_degradation * 100.0,
        TEST.min_green_requests,
        slow_share * 100.0
    );
    println!(
        "False rollbacks of an identical green (A/A), and how often the judge passed early or stayed inconclusive:\n"
    );
    println!(
        "| req/s | green share | judge | static alarm (tuned) | fixed horizon | judge: passed early | judge: inconclusive at the end |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut decisions = Vec::new();
    for (cell, (rps, share)) in RPS
        .iter()
        .flat_map(|r| SHARES.iter().map(move |s| (*r, *s)))
        .enumerate()
    {
        let mut rng = StdRng::seed_from_u64(1_000 + cell as u64);
        let (mut judged, mut passed, mut open, mut fixed) = (0, 0, 0, 0);
        let mut worst = Vec::with_capacity(aa_runs);
        for _ in 0..aa_runs {
            let m = minutes(&mut rng, rps, share, BLUE_RATE);
            match judge(&m).1 {
                Verdict::Worse => judged += 1,
                Verdict::NoWorse => passed += 1,
                Verdict::Inconclusive => open += 1,
            }
            fixed += usize::from(fixed_horizon(&m));
            worst.push(worst_minute(&m));
        }
        // The alarm's threshold: the lowest that at most ALPHA of the A/A runs exceed.
        worst.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let threshold = worst[((1.0 - ALPHA) * aa_runs as f64).ceil() as usize - 1];
        let alarmed = worst.iter().filter(|w| **w > threshold).count();
        let pct = |n: usize| format!("{:.2}%", 100.0 * n as f64 / aa_runs as f64);
        println!(
            "| {rps} | {:.0}% | {} | {} | {} | {} | {} |",
            share * 100.0,
            pct(judged),
            pct(alarmed),
            pct(fixed),
            pct(passed),
            pct(open)
        );
        let mut row = Vec::new();
        let mut passed_bad = 0;
        for (_, rate) in scenarios {
            let (mut j, mut a, mut f) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..bad_runs {
                let m = minutes(&mut rng, rps, share, rate);
                let (at, v) = judge(&m);
                passed_bad += usize::from(v == Verdict::NoWorse);
                j.push(at.filter(|_| v == Verdict::Worse));
                a.push(alarm(&m, threshold));
                f.push(fixed_horizon(&m).then_some(BAKE_MINUTES));
            }
            row.push((j, a, f));
        }
        let passed_bad = 100.0 * passed_bad as f64 / (bad_runs * scenarios.len()) as f64;
        decisions.push((rps, share, threshold, row, passed_bad));
    }
    println!(
        "\nMinutes to the rollback decision, median / 95th percentile (`-`: not within the bake in that share of runs):\n"
    );
    let mut header = "| req/s | green share | alarm threshold |".to_owned();
    for (name, _) in scenarios {
        header.push_str(&format!(" {name}: judge | alarm | fixed |"));
    }
    println!("{header}");
    println!(
        "| ---: | ---: | ---: |{}",
        " ---: | ---: | ---: |".repeat(scenarios.len())
    );
    let mut passes = Vec::new();
    for (rps, share, threshold, row, passed_bad) in decisions {
        passes.push(format!(
            "{rps} req/s at {:.0}%: {passed_bad:.2}%",
            share * 100.0
        ));
        let mut line = format!(
            "| {rps} | {:.0}% | {:.2}% |",
            share * 100.0,
            threshold * 100.0
        );
        for (j, a, f) in row {
            for d in [j, a, f] {
                line.push_str(&format!(
                    " {} / {} |",
                    quantile(&d, 0.5),
                    quantile(&d, 0.95)
                ));
            }
        }
        println!("{line}");
    }
    println!(
        "\nBad greens the judge passed early (at most alpha by design): {}",
        passes.join("; ")
    );
}
