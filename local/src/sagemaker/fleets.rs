//! Fleets of instances, as SageMaker provisions them (API reference of UpdateEndpoint: it
//! "deploys the EndpointConfig specified in the request to a new fleet of instances", shifts
//! traffic, then deletes the old instances; CreateEndpoint provisions the config's fleets;
//! UpdateEndpointWeightsAndCapacities changes counts in place). Every fleet an endpoint ever had
//! is kept with the instances it ran and when, so that the control API can say how many fleets
//! a deployment provisioned, how many instances ran at once, and for how long.

use serde::Serialize;

use crate::Ms;

/// One fleet: the instances of one variant of one config.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Fleet {
    pub id: u32,
    pub endpoint_config: String,
    pub variant: String,
    pub instance_type: String,
    /// Instances now (0 once removed).
    pub instances: u32,
    /// The most instances it ran at once.
    pub peak_instances: u32,
    pub provisioned_at: Ms,
    pub removed_at: Option<Ms>,
}

/// Every fleet of one endpoint, and the instances running over time.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Fleets {
    pub fleets: Vec<Fleet>,
    /// `(epoch ms, instances running)` after each change, oldest first.
    pub timeline: Vec<(Ms, u32)>,
}

impl Fleets {
    fn note(&mut self, now: Ms) {
        let running = self.running();
        match self.timeline.last_mut() {
            Some((at, n)) if *at == now => *n = running,
            _ => self.timeline.push((now, running)),
        }
    }

    /// A new fleet of `instances` for `variant` of `endpoint_config`; returns its id.
    pub fn provision(
        &mut self,
        endpoint_config: &str,
        variant: &str,
        instance_type: &str,
        instances: u32,
        now: Ms,
    ) -> u32 {
        let id = u32::try_from(self.fleets.len()).unwrap_or(u32::MAX);
        self.fleets.push(Fleet {
            id,
            endpoint_config: endpoint_config.to_owned(),
            variant: variant.to_owned(),
            instance_type: instance_type.to_owned(),
            instances,
            peak_instances: instances,
            provisioned_at: now,
            removed_at: None,
        });
        self.note(now);
        id
    }

    /// Fleet `id` now runs `instances`.
    pub fn resize(&mut self, id: u32, instances: u32, now: Ms) {
        if let Some(f) = self
            .fleets
            .iter_mut()
            .find(|f| f.id == id && f.removed_at.is_none())
        {
            if f.instances == instances {
                return;
            }
            f.instances = instances;
            f.peak_instances = f.peak_instances.max(instances);
        }
        self.note(now);
    }

    /// Fleet `id`'s instances are deleted.
    pub fn remove(&mut self, id: u32, now: Ms) {
        if let Some(f) = self
            .fleets
            .iter_mut()
            .find(|f| f.id == id && f.removed_at.is_none())
        {
            f.instances = 0;
            f.removed_at = Some(now);
        }
        self.note(now);
    }

    /// Instances running now, of every fleet.
    pub fn running(&self) -> u32 {
        self.fleets
            .iter()
            .filter(|f| f.removed_at.is_none())
            .map(|f| f.instances)
            .sum()
    }

    /// Instances of `instance_type` running now.
    pub fn running_of(&self, instance_type: &str) -> u32 {
        self.fleets
            .iter()
            .filter(|f| f.removed_at.is_none() && f.instance_type == instance_type)
            .map(|f| f.instances)
            .sum()
    }

    /// The most instances that ran at once.
    pub fn peak(&self) -> u32 {
        self.timeline.iter().map(|(_, n)| *n).max().unwrap_or(0)
    }

    /// Instances running at `at`.
    pub fn at(&self, at: Ms) -> u32 {
        self.timeline
            .iter()
            .take_while(|(t, _)| *t <= at)
            .last()
            .map_or(0, |(_, n)| *n)
    }

    /// Instance-seconds from the first fleet to `now`.
    pub fn instance_secs(&self, now: Ms) -> f64 {
        let mut total = 0.0;
        for (i, (t, n)) in self.timeline.iter().enumerate() {
            let end = self.timeline.get(i + 1).map_or(now, |(next, _)| *next);
            total += f64::from(*n) * ((end - t).max(0) as f64) / 1_000.0;
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fleets_count_instances_over_time() {
        let mut f = Fleets::default();
        let blue = f.provision("v1", "AllTraffic", "ml.m5.xlarge", 2, 0);
        let green = f.provision("v2", "AllTraffic", "ml.m5.xlarge", 2, 10_000);
        assert_eq!(f.running(), 4);
        f.remove(blue, 20_000);
        f.resize(green, 3, 30_000);
        assert_eq!((f.running(), f.peak(), f.at(15_000)), (3, 4, 4));
        // 2 x 10 s + 4 x 10 s + 2 x 10 s + 3 x 10 s
        assert!((f.instance_secs(40_000) - 110.0).abs() < 1e-9);
        assert_eq!(f.running_of("ml.m5.xlarge"), 3);
    }
}
