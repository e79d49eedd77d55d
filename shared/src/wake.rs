//! When to ask EventBridge Scheduler for a wake-up, and which call to make.
//!
//! Scheduler "invokes its targets with 60 second precision" (EventBridge Scheduler User Guide,
//! "Schedule types"), and the one-minute sweep reconciles every active deployment anyway, so a
//! wake-up is a promise that the deployment is looked at no later than it needs to be, not an
//! alarm clock. A pending wake-up that comes no later than the one now wanted already keeps
//! that promise: asking again would cost a call and change nothing (when it fires, the
//! deployment decides its next wake-up). And a one-time schedule is deleted once it has fired
//! (`ActionAfterCompletion: DELETE`), so whether it is still pending decides the call:
//! `UpdateSchedule` while it is, `CreateSchedule` once it has fired. Guessing wrong costs one
//! failing call and the other one, never a missed wake-up.

use crate::units::Timestamp;

/// Whether to ask for a wake-up at `wanted`, given the one Scheduler holds (`scheduled`,
/// pending while it is in the future): `None` to leave it, `Some(true)` to replace the
/// pending one (`UpdateSchedule`), `Some(false)` to create one (`CreateSchedule`).
pub fn needed(scheduled: Option<Timestamp>, wanted: Timestamp, now: Timestamp) -> Option<bool> {
    match scheduled {
        Some(pending) if pending > now && pending <= wanted => None,
        Some(pending) if pending > now => Some(true),
        _ => Some(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp::from_epoch_ms(1_000_000);

    #[test]
    fn a_pending_wake_up_no_later_than_wanted_is_left_alone() {
        assert_eq!(
            needed(Some(NOW.plus_secs(30)), NOW.plus_secs(30), NOW),
            None
        );
        assert_eq!(
            needed(Some(NOW.plus_secs(30)), NOW.plus_secs(90), NOW),
            None
        );
    }

    #[test]
    fn a_pending_wake_up_too_late_is_replaced() {
        assert_eq!(
            needed(Some(NOW.plus_secs(90)), NOW.plus_secs(30), NOW),
            Some(true)
        );
    }

    #[test]
    fn once_the_wake_up_has_fired_or_none_was_asked_a_new_one_is_created() {
        assert_eq!(needed(Some(NOW), NOW.plus_secs(30), NOW), Some(false));
        assert_eq!(
            needed(Some(NOW.minus_secs(5)), NOW.plus_secs(30), NOW),
            Some(false)
        );
        assert_eq!(needed(None, NOW.plus_secs(30), NOW), Some(false));
    }
}
