//! The plan as text a person reads before approving a rollout (the dry run).

use std::fmt::{self, Write as _};

use super::{Plan, WatchedAlarm};
use crate::policy::{AlarmTemplate, Engine, HookPoint, OnHookTimeout};

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let blue = &self.blue;
        let green = &self.green;
        writeln!(
            f,
            "Plan: deploy {} to endpoint {} ({} engine, deployment {})",
            green.model_name, self.endpoint_name, self.engine, self.deployment_id
        )?;
        writeln!(
            f,
            "  blue:  variant {} on config {}, {} x {}",
            blue.variant_name, self.blue_config_name, blue.instance_count, blue.instance_type
        )?;
        match self.engine {
            Engine::Variant => writeln!(
                f,
                "  green: variant {} with model {}, up to {} x {}",
                green.variant_name, green.model_name, green.instance_count, green.instance_type
            )?,
            Engine::Native => writeln!(
                f,
                "  green: model {} replaces blue's instances, {} x {}",
                green.model_name, green.instance_count, green.instance_type
            )?,
        }
        if !self.engine_reason.is_empty() {
            writeln!(f, "  engine: {}, {}", self.engine, self.engine_reason)?;
        }
        writeln!(f, "  steps from: {}", self.steps_from)?;
        writeln!(f)?;
        match self.engine {
            Engine::Variant => self.variant_steps(f)?,
            Engine::Native => self.native_steps(f)?,
        }
        writeln!(f)?;
        if self.watched_alarms.is_empty() {
            writeln!(f, "  watched: nothing")?;
        } else {
            writeln!(
                f,
                "  watched during every shift and bake (ALARM rolls back):"
            )?;
            for alarm in &self.watched_alarms {
                writeln!(f, "    - {}", describe_alarm(alarm, self))?;
            }
        }
        if let Some(analysis) = &self.analysis {
            judge_lines(f, self, analysis)?;
        }
        if self.approve_before_final_shift {
            let last = self.steps.last().map(|s| s.green_share.to_string());
            writeln!(
                f,
                "  approval: a person approves before the shift to {}",
                last.unwrap_or_default()
            )?;
        }
        let cost = &self.fleets;
        let rollback = if cost.rollback_provisionings > 0 {
            format!(
                "; a rollback provisions {} more",
                cost.rollback_provisionings
            )
        } else {
            String::new()
        };
        writeln!(
            f,
            "  fleets: {} provisioned, at most {} instances at once, {:.2} instance-hours beyond blue's {} during the bakes{rollback}",
            cost.provisionings,
            cost.peak_instances,
            cost.extra_instance_hours(),
            self.blue.instance_count,
        )?;
        let origin = match (self.timeout_from_policy, self.hooks.is_empty()) {
            (true, _) => "MaximumExecutionTimeoutInSeconds",
            (false, true) => "default: bakes + 3600 s for provisioning",
            (false, false) => "default: bakes + the hooks' timeouts + 3600 s for provisioning",
        };
        writeln!(
            f,
            "  timeout: {} s from the start ({origin}); bakes add up to {} s",
            self.timeout_secs, self.waits_secs
        )?;
        if !self.warnings.is_empty() {
            writeln!(f, "  warnings:")?;
            for warning in &self.warnings {
                writeln!(f, "    - {warning}")?;
            }
        }
        if let Some(preflight) = &self.preflight {
            writeln!(f)?;
            write!(f, "{preflight}")?;
        }
        Ok(())
    }
}

impl Plan {
    fn variant_steps(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let first = self.steps.first().map_or(1, |s| s.green_instances);
        writeln!(
            f,
            "  provision: endpoint to config {} (blue at weight 1, green at 0 on {first} instance{}): 2 new fleets, at most {} instances at once",
            self.blue_green_config_name,
            if first == 1 { "" } else { "s" },
            self.fleets.provision_peak
        )?;
        hook_line(
            f,
            self,
            HookPoint::PreTraffic,
            "with green at weight 0, before its first request",
        )?;
        writeln!(f, "  step  green traffic  green instances  bake after")?;
        let last = self.last_step();
        for (i, step) in self.steps.iter().enumerate() {
            let bake = if i == last {
                format!("{} s (final bake)", step.bake_secs)
            } else {
                format!("{} s", step.bake_secs)
            };
            let share = step.green_share.to_string();
            let instances = format!("{} of {}", step.green_instances, self.green.instance_count);
            writeln!(f, "  {:<4}  {share:<13}  {instances:<15}  {bake}", i + 1)?;
        }
        hook_line(
            f,
            self,
            HookPoint::PostTraffic,
            "after the final bake, with blue standing by",
        )?;
        writeln!(
            f,
            "  finish: endpoint to config {} (the new model alone under blue's variant name {}): 1 new fleet, at most {} instances at once",
            self.green_config_name, self.blue.variant_name, self.fleets.finish_peak
        )?;
        writeln!(
            f,
            "  final bake: {} s on that fleet ({} instances), watched like a step; then blue's fleet is gone",
            self.cutover_bake_secs, self.fleets.final_bake_instances
        )?;
        writeln!(
            f,
            "  rollback: green to weight 0, then endpoint back to config {} (from the final bake: an UpdateEndpoint back to it, which provisions blue's fleet again)",
            self.blue_config_name
        )
    }

    fn native_steps(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "  SageMaker runs these steps (traffic follows instances):"
        )?;
        writeln!(
            f,
            "  step  green traffic  green instances  blue instances  bake after"
        )?;
        for (i, step) in self.steps.iter().enumerate() {
            let share = format!("~{}", step.green_share);
            writeln!(
                f,
                "  {:<4}  {share:<13}  {:<15}  {:<14}  {} s",
                i + 1,
                step.green_instances,
                step.blue_instances,
                step.bake_secs
            )?;
        }
        writeln!(
            f,
            "  rollback: SageMaker restores blue (rolling updates re-provision it in batches)"
        )
    }
}

/// The hook asked at `point`, if the policy names one.
fn hook_line(f: &mut fmt::Formatter<'_>, plan: &Plan, point: HookPoint, when: &str) -> fmt::Result {
    let Some(hook) = plan.hooks.at(point) else {
        return Ok(());
    };
    let on_timeout = match hook.on_timeout {
        OnHookTimeout::RollBack => "roll back",
        OnHookTimeout::Continue => "go on",
    };
    writeln!(
        f,
        "  {point} hook: invoke {} {when}; Failed rolls back, no answer in {} s: {on_timeout}",
        hook.function_name, hook.timeout_in_seconds
    )
}

/// What the judge compares, at which steps, and what an inconclusive bake does.
fn judge_lines(
    f: &mut fmt::Formatter<'_>,
    plan: &Plan,
    analysis: &crate::policy::Analysis,
) -> fmt::Result {
    use crate::policy::WhenInconclusive;
    let judged: Vec<String> = plan
        .steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.green_share.basis_points() < 10_000)
        .map(|(i, _)| (i + 1).to_string())
        .collect();
    let steps = if judged.is_empty() {
        "no step (blue never serves beside green)".to_owned()
    } else {
        format!("step {}", judged.join(", "))
    };
    match plan.judge_alarm_name() {
        // SageMaker runs the rollout: the fleets are told apart by their configs, and a worse
        // green rolls back through an alarm SageMaker watches.
        Some(alarm) => writeln!(
            f,
            "  judged while SageMaker bakes, the new fleet against the old per {} s (a worse \
             green sets alarm {alarm}, which SageMaker watches, and SageMaker rolls back):",
            analysis.period_in_seconds
        )?,
        None => writeln!(
            f,
            "  judged at {steps}, green against blue per {} s (a worse green rolls back):",
            analysis.period_in_seconds
        )?,
    }
    let k = analysis.compare.len().max(1);
    for c in &analysis.compare {
        writeln!(
            f,
            "    - {}: {}% worse matters; false-rollback rate {}",
            c.metric.words(),
            c.minimum_degradation_percent,
            analysis.false_rollback_rate / k as f64
        )?;
    }
    let inconclusive = match analysis.when_inconclusive {
        WhenInconclusive::Extend => format!(
            "extended up to {} s, then held for approval",
            analysis.extend_up_to_seconds
        ),
        WhenInconclusive::HoldForApproval => "held for approval".to_owned(),
        WhenInconclusive::RollBack => "rolled back".to_owned(),
        WhenInconclusive::Pass => "passed, and the record says so".to_owned(),
    };
    let early = if analysis.end_bakes_early {
        "; a bake ends as soon as green is shown no worse"
    } else {
        ""
    };
    writeln!(
        f,
        "    a bake passes once green is shown no worse over at least {} green requests; \
         inconclusive, it is {inconclusive}{early}",
        crate::units::count(f64::from(analysis.minimum_green_requests))
    )
}

fn describe_alarm(alarm: &WatchedAlarm, plan: &Plan) -> String {
    match &alarm.green_template {
        None => format!("{} (AutoRollbackConfiguration)", alarm.alarm_name),
        Some(t) if alarm.final_fleet => format!(
            "{}: {}, the final fleet ({} {}), during the final bake only",
            alarm.alarm_name,
            describe_template(t),
            plan.endpoint_name,
            plan.blue.variant_name
        ),
        Some(t) => format!(
            "{}: {}, green only ({} {}), created for this deployment",
            alarm.alarm_name,
            describe_template(t),
            plan.endpoint_name,
            plan.green.variant_name
        ),
    }
}

/// `Invocation5XXErrors Average > 0.05 for 2 of 3 periods of 60 s`.
pub(crate) fn describe_template(t: &AlarmTemplate) -> String {
    let mut text = format!(
        "{} {} {} {}",
        t.metric_name,
        t.statistic,
        t.comparison_operator.symbol(),
        t.threshold
    );
    let _ = write!(
        text,
        " for {} of {} periods of {} s",
        t.datapoints_to_alarm, t.evaluation_periods, t.period_in_seconds
    );
    text
}
