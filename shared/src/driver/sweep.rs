//! The sweep: every active deployment reconciled once a minute, whatever events were lost.
//!
//! It scales by reading in batches and by sharing the work out (issue 15):
//!
//! - the active endpoints come from the sparse `active` index (one `Scan` page per 1 MB);
//! - past `SweepShard::MAX_ENDPOINTS`, the rest is published as "Guardrails Sweep Shard" events
//!   (`PutEvents`, ten a call), one bake-watcher invocation each;
//! - a shard reads its records with `BatchGetItem` (100 keys a call) and the alarms they watch
//!   with `DescribeAlarms` (100 names a call), paced so that all shards together stay within
//!   `DESCRIBE_ALARMS_PER_SECOND`, then reconciles its deployments
//!   `SWEEP_CONCURRENCY` at a time, each on those states (`Driver::reconcile_loaded`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures_util::StreamExt;

use super::{AlarmSnapshot, Driver, Outcome, Report};
use crate::events::SweepShard;
use crate::ports::PortError;

/// `DescribeAlarms` calls a second, for all shards of one sweep together. CloudWatch's default
/// quota is 9 a second for the account and region ("CloudWatch service quotas",
/// `DescribeAlarms`, adjustable); Guardrails keeps to a little over half of it, so that the
/// account's other users of the API (consoles, dashboards, other tools) keep theirs.
pub const DESCRIBE_ALARMS_PER_SECOND: u32 = 5;

/// Names one `DescribeAlarms` call may ask for (CloudWatch API Reference, "DescribeAlarms",
/// `AlarmNames`: at most 100 items).
pub const MAX_ALARM_NAMES_PER_CALL: usize = 100;

/// Deployments one shard reconciles at once. SageMaker documents no rate for
/// `DescribeEndpoint`; four at a time keeps a shard of 100 within a few seconds without
/// bursting, and every call the driver makes backs off when throttled.
pub const SWEEP_CONCURRENCY: usize = 4;

/// What one sweep (or one shard of it) did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Swept {
    /// The deployments reconciled here.
    pub reports: Vec<Report>,
    /// The endpoints that could not be reconciled, with why: the next sweep tries again.
    pub failures: Vec<String>,
    /// Shards published for other invocations.
    pub fanned_out: usize,
}

/// The shards of `endpoints` of at most `size` each (and `SweepShard::MAX_ENDPOINTS`), in
/// order.
pub fn shards_of(endpoints: &[String], size: usize) -> Vec<Vec<String>> {
    endpoints
        .chunks(size.clamp(1, SweepShard::MAX_ENDPOINTS))
        .map(<[String]>::to_vec)
        .collect()
}

/// The pause between two `DescribeAlarms` calls of one shard, when the sweep has `shards`.
pub fn alarm_read_interval(shards: u32) -> Duration {
    Duration::from_millis(u64::from(shards.max(1)) * 1_000 / u64::from(DESCRIBE_ALARMS_PER_SECOND))
}

impl Driver {
    /// The one-minute sweep: the first shard here, the others published for other
    /// invocations. If they cannot be published, this invocation reconciles them too, one
    /// after another, rather than leave them for the next minute.
    pub async fn sweep(&self) -> Result<Swept, PortError> {
        let endpoints = self.throttled(|| self.store.active_endpoints()).await?;
        let mut shards = shards_of(&endpoints, self.limits.sweep_shard_size);
        let count = u32::try_from(shards.len()).unwrap_or(u32::MAX);
        let rest: Vec<SweepShard> = shards
            .drain(1.min(shards.len())..)
            .map(|endpoints| SweepShard {
                endpoints,
                shards: count,
            })
            .collect();
        let mut swept = Swept::default();
        let mut here = shards;
        if !rest.is_empty() {
            match self.throttled(|| self.bus.fan_out(&rest)).await {
                Ok(()) => swept.fanned_out = rest.len(),
                Err(e) => {
                    super::tracing_warn(&format!(
                        "sweep shards not published ({e}); reconciling them here"
                    ));
                    here.extend(rest.into_iter().map(|s| s.endpoints));
                }
            }
        }
        for endpoints in here {
            let part = Box::pin(self.sweep_shard(&endpoints, count)).await;
            swept.reports.extend(part.reports);
            swept.failures.extend(part.failures);
        }
        Ok(swept)
    }

    /// Reconciles one shard of a sweep of `shards`: records and alarm states in batches, then
    /// each deployment. One endpoint's trouble never stops the others'.
    pub async fn sweep_shard(&self, endpoints: &[String], shards: u32) -> Swept {
        let mut swept = Swept::default();
        let records = match self.throttled(|| self.store.load_many(endpoints)).await {
            Ok(records) => records,
            Err(e) => {
                // One record that cannot be read must not stop the others': each is
                // reconciled on its own, as before the batch.
                super::tracing_warn(&format!("sweep could not read records in a batch: {e}"));
                for endpoint in endpoints {
                    match self.reconcile(endpoint, None).await {
                        Ok(Outcome::Reconciled(report)) => swept.reports.push(*report),
                        Ok(Outcome::NoDeployment) => {}
                        Err(e) => swept.failures.push(format!("{endpoint}: {e}")),
                    }
                }
                return swept;
            }
        };
        let names: BTreeSet<String> = records
            .iter()
            .filter(|r| r.deployment.watches_alarms())
            .flat_map(|r| r.deployment.plan.watched_alarm_names().map(str::to_owned))
            .collect();
        let snapshot = self.alarm_snapshot(&names, shards).await;
        let snapshot = &snapshot;
        let reconciled = futures_util::stream::iter(records)
            .map(|record| {
                let endpoint = record.deployment.plan.endpoint_name.clone();
                async move { (endpoint, self.reconcile_loaded(record, snapshot).await) }
            })
            .buffer_unordered(SWEEP_CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        for (endpoint, outcome) in reconciled {
            match outcome {
                Ok(Outcome::Reconciled(report)) => swept.reports.push(*report),
                Ok(Outcome::NoDeployment) => {}
                Err(e) => {
                    super::tracing_warn(&format!("sweep could not reconcile {endpoint}: {e}"));
                    swept.failures.push(format!("{endpoint}: {e}"));
                }
            }
        }
        // In endpoint order, whatever order they finished in.
        swept
            .reports
            .sort_by(|a, b| a.endpoint_name.cmp(&b.endpoint_name));
        swept.failures.sort();
        swept
    }

    /// The states of `names`, 100 a call, paced to this shard's share of the quota. A batch
    /// that cannot be read is left out of the snapshot: its deployments read their own.
    async fn alarm_snapshot(&self, names: &BTreeSet<String>, shards: u32) -> AlarmSnapshot {
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut snapshot = AlarmSnapshot {
            read_at: self.clock.now(),
            asked: BTreeSet::new(),
            states: BTreeMap::new(),
        };
        for (i, batch) in names.chunks(MAX_ALARM_NAMES_PER_CALL).enumerate() {
            if i > 0 {
                self.clock.sleep(alarm_read_interval(shards)).await;
            }
            match self.throttled(|| self.alarms.states(batch)).await {
                Ok(states) => {
                    snapshot.asked.extend(batch.iter().map(|n| (*n).to_owned()));
                    snapshot.states.extend(states);
                }
                Err(e) => super::tracing_warn(&format!("sweep could not read alarms: {e}")),
            }
        }
        snapshot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thousand_endpoints_are_ten_shards_of_a_hundred() {
        let endpoints: Vec<String> = (0..1_000).map(|i| format!("e{i}")).collect();
        let shards = shards_of(&endpoints, SweepShard::MAX_ENDPOINTS);
        assert_eq!(shards.len(), 10);
        assert!(shards.iter().all(|s| s.len() == 100));
        assert_eq!(
            shards_of(&endpoints, 10_000).len(),
            10,
            "never past the maximum"
        );
        assert_eq!(shards_of(&endpoints[..3], 0).len(), 3);
        assert!(shards_of(&[], 100).is_empty());
    }

    #[test]
    fn shards_together_keep_within_the_alarm_read_budget() {
        // Ten shards, each pausing 2 s between calls: five calls a second in all.
        assert_eq!(alarm_read_interval(10), Duration::from_secs(2));
        assert_eq!(alarm_read_interval(1), Duration::from_millis(200));
        assert_eq!(alarm_read_interval(0), Duration::from_millis(200));
    }
}
