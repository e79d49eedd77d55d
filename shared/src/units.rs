//! Small value types shared by the policy, the plan and the core: traffic shares, instants and
//! durations. They exist so that a percentage is never mistaken for a weight or a count, and so
//! that arithmetic on them is exact (integers, no floating-point drift between invocations).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A share of an endpoint's requests, in basis points: 10 000 is all of them, 1 is 0.01%.
///
/// Traffic steps are shares of *requests* (the variant engine moves traffic by variant weights),
/// so they are stored exactly rather than as floats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Share(u16);

impl Share {
    /// No traffic.
    pub const ZERO: Share = Share(0);
    /// All traffic.
    pub const FULL: Share = Share(10_000);

    /// A share from basis points; `None` above 10 000.
    pub fn from_basis_points(bp: u32) -> Option<Share> {
        u16::try_from(bp).ok().filter(|bp| *bp <= 10_000).map(Share)
    }

    /// A share from a percentage with at most two decimals (`12.5` is 1 250 basis points);
    /// `None` when out of 0..=100 or finer than 0.01%.
    pub fn from_percent(percent: f64) -> Option<Share> {
        if !percent.is_finite() || !(0.0..=100.0).contains(&percent) {
            return None;
        }
        let bp = (percent * 100.0).round();
        if (bp - percent * 100.0).abs() > 1e-6 {
            return None;
        }
        Share::from_basis_points(to_whole(bp))
    }

    /// The share nearest to `fraction` (clamped to 0..=1), e.g. from observed variant weights.
    pub fn nearest(fraction: f64) -> Share {
        let bp = (fraction * 10_000.0).round();
        Share::from_basis_points(to_whole(bp.clamp(0.0, 10_000.0))).unwrap_or(Share::FULL)
    }

    /// The fraction `numerator / denominator` rounded down to a basis point (a canary of 1
    /// instance out of 3 is 33.33%). `None` when the denominator is zero or the fraction is
    /// above one.
    pub fn from_fraction(numerator: u32, denominator: u32) -> Option<Share> {
        if denominator == 0 || numerator > denominator {
            return None;
        }
        let bp = u64::from(numerator) * 10_000 / u64::from(denominator);
        Share::from_basis_points(u32::try_from(bp).ok()?)
    }

    /// The share in basis points.
    pub fn basis_points(self) -> u32 {
        u32::from(self.0)
    }

    /// The share as a fraction in 0.0..=1.0, the unit of SageMaker variant weights.
    pub fn fraction(self) -> f64 {
        f64::from(self.0) / 10_000.0
    }

    /// What is left for the other side: `FULL - self`.
    pub fn complement(self) -> Share {
        Share(10_000 - self.0)
    }

    /// `ceil(self * count)`: the instances needed to serve this share of a fleet sized for all
    /// traffic, so that a step never sends a variant more load than its instances were sized
    /// for. 33% of 3 instances is 0.99, hence 1, as in AWS's own examples.
    pub fn of_instances_rounded_up(self, count: u32) -> u32 {
        let scaled = u64::from(self.0) * u64::from(count);
        u32::try_from(scaled.div_ceil(10_000)).unwrap_or(u32::MAX)
    }
}

/// A whole, non-negative float that fits in `u32` (callers round and bound it first); anything
/// else saturates, as Rust's float-to-int conversion does.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
pub(crate) fn to_whole(value: f64) -> u32 {
    value as u32
}

impl fmt::Display for Share {
    /// `25%`, `12.5%`, `0.01%`: percent with only the decimals needed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / 100;
        let hundredths = self.0 % 100;
        match hundredths {
            0 => write!(f, "{whole}%"),
            h if h % 10 == 0 => write!(f, "{whole}.{}%", h / 10),
            h => write!(f, "{whole}.{h:02}%"),
        }
    }
}

/// An instant, in milliseconds since the Unix epoch (the unit of SageMaker's event timestamps).
///
/// The core never reads a clock: every instant comes in as an argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The instant `epoch_ms` milliseconds after the Unix epoch.
    pub const fn from_epoch_ms(epoch_ms: i64) -> Timestamp {
        Timestamp(epoch_ms)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn epoch_ms(self) -> i64 {
        self.0
    }

    /// The instant `secs` seconds later (saturating: far-future deadlines do not wrap).
    pub fn plus_secs(self, secs: u32) -> Timestamp {
        Timestamp(self.0.saturating_add(i64::from(secs) * 1_000))
    }

    /// The instant `secs` seconds earlier (saturating).
    pub fn minus_secs(self, secs: u32) -> Timestamp {
        Timestamp(self.0.saturating_sub(i64::from(secs) * 1_000))
    }

    /// Whole seconds from `earlier` to `self`, negative if `earlier` is later.
    pub fn secs_since(self, earlier: Timestamp) -> i64 {
        (self.0 - earlier.0).div_euclid(1_000)
    }

    /// The UTC calendar date and time of this instant.
    pub fn utc(self) -> Utc {
        let days = self.0.div_euclid(86_400_000);
        let rest = self.0.rem_euclid(86_400_000);
        // Howard Hinnant's civil-from-days.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        Utc {
            year: yoe + era * 400 + i64::from(month <= 2),
            month,
            day,
            hour: rest / 3_600_000,
            minute: rest / 60_000 % 60,
            second: rest / 1_000 % 60,
            millisecond: rest % 1_000,
        }
    }
}

/// A UTC calendar date and time (proleptic Gregorian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc {
    pub year: i64,
    pub month: i64,
    pub day: i64,
    pub hour: i64,
    pub minute: i64,
    pub second: i64,
    pub millisecond: i64,
}

impl fmt::Display for Utc {
    /// `2026-11-27T08:10:30Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// `12,340`: a count for people.
pub fn count(n: f64) -> String {
    let whole = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `text` cut to at most `max` characters, at a character boundary (people's words and AWS's
/// messages are not ASCII), with `...` when something was cut.
pub fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_owned(),
    }
}

/// A unit enum's name as it is spelt on the wire, where serde writes it as a string
/// (`ROLLED_BACK`, `variant`): for labels in metrics and pages that must match our events.
pub fn wire_name<T: Serialize>(value: &T) -> Option<String> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => Some(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_with_thousands_separators() {
        assert_eq!(count(0.0), "0");
        assert_eq!(count(999.0), "999");
        assert_eq!(count(12_340.0), "12,340");
        assert_eq!(count(1_234_567.0), "1,234,567");
    }

    #[test]
    fn percentages_convert_exactly_to_basis_points() {
        assert_eq!(
            Share::from_percent(12.5).map(Share::basis_points),
            Some(1_250)
        );
        assert_eq!(Share::from_percent(0.01).map(Share::basis_points), Some(1));
        assert_eq!(Share::from_percent(100.0), Some(Share::FULL));
        assert_eq!(Share::from_percent(0.001), None);
        assert_eq!(Share::from_percent(100.5), None);
        assert_eq!(Share::from_percent(-1.0), None);
        assert_eq!(Share::from_percent(f64::NAN), None);
    }

    #[test]
    fn shares_display_with_only_the_decimals_needed() {
        let show = |bp| Share::from_basis_points(bp).map(|s| s.to_string());
        assert_eq!(show(2_500).as_deref(), Some("25%"));
        assert_eq!(show(1_250).as_deref(), Some("12.5%"));
        assert_eq!(show(3_333).as_deref(), Some("33.33%"));
        assert_eq!(show(1).as_deref(), Some("0.01%"));
    }

    #[test]
    fn instance_counts_round_up_so_a_step_is_never_under_provisioned() {
        let pct = |p| Share::from_percent(p).unwrap_or(Share::ZERO);
        assert_eq!(pct(33.0).of_instances_rounded_up(3), 1);
        assert_eq!(pct(50.0).of_instances_rounded_up(3), 2);
        assert_eq!(pct(1.0).of_instances_rounded_up(4), 1);
        assert_eq!(pct(100.0).of_instances_rounded_up(7), 7);
        assert_eq!(Share::ZERO.of_instances_rounded_up(7), 0);
    }

    #[test]
    fn instants_render_as_utc_calendar_time() {
        let t = Timestamp::from_epoch_ms(1_570_035_880_989).utc();
        assert_eq!(t.to_string(), "2019-10-02T17:04:40Z");
        assert_eq!(t.millisecond, 989);
        assert_eq!(
            Timestamp::from_epoch_ms(0).utc().to_string(),
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(
            Timestamp::from_epoch_ms(951_782_400_000).utc().to_string(),
            "2000-02-29T00:00:00Z"
        );
    }

    #[test]
    fn instance_fractions_round_down_to_a_basis_point() {
        assert_eq!(
            Share::from_fraction(1, 3).map(Share::basis_points),
            Some(3_333)
        );
        assert_eq!(Share::from_fraction(1, 0), None);
        assert_eq!(Share::from_fraction(4, 3), None);
    }
}
