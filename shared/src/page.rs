//! The page on-call gets when a deployment rolls back or fails: a subject and a body a person
//! can act on at 3 a.m. (what happened, what tripped and its value, where the rollout was, how
//! fast traffic went back to blue, what serves now, the names to look up), and attributes for
//! machines. Built from our final state-change event and the deployment's audit trail.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::core::{Cause, Phase};
use crate::events::{PhaseKind, StateChange};
use crate::policy::Engine;
use crate::ports::{AuditEntry, Page};
use crate::units::Timestamp;

/// The audit entry that started the end: the first move to rolling back or to failed.
fn trigger(audit: &[AuditEntry]) -> Option<&AuditEntry> {
    audit.iter().find(|a| {
        matches!(
            a.transition.to,
            Phase::RollingBack { .. } | Phase::RolledBack { .. } | Phase::Failed { .. }
        )
    })
}

fn step_of(phase: &Phase) -> Option<usize> {
    match phase {
        Phase::Shifting { step }
        | Phase::Baking { step, .. }
        | Phase::AwaitingApproval { step }
        | Phase::HeldInconclusive { step, .. } => Some(*step + 1),
        _ => None,
    }
}

/// What green served by the decision that ended it, as the judge counted it (the latest
/// judgement up to the trigger): requests, and bad ones by the first comparison.
fn green_served(audit: &[AuditEntry], trigger: Option<&AuditEntry>) -> Option<String> {
    let until = trigger.map_or(u64::MAX, |t| t.sequence);
    let judgement = audit
        .iter()
        .filter(|a| a.sequence <= until)
        .filter_map(|a| a.judgement.as_ref())
        .next_back()?;
    let c = judgement.comparisons.first()?;
    let rate = |bad: f64, n: f64| if n > 0.0 { bad / n * 100.0 } else { 0.0 };
    Some(format!(
        "{} requests by the decision, {} of them bad by its {} ({:.2}%; blue {:.2}%)",
        crate::units::count(c.green_requests),
        crate::units::count(c.green_bad),
        c.metric,
        rate(c.green_bad, c.green_requests),
        rate(c.blue_bad, c.blue_requests)
    ))
}

/// `2026-11-27T08:10:30Z`.
fn utc(epoch_ms: i64) -> String {
    Timestamp::from_epoch_ms(epoch_ms).utc().to_string()
}

fn cause_kind(cause: &Cause) -> String {
    serde_json::to_value(cause)
        .ok()
        .and_then(|v| v.get("cause").and_then(|c| c.as_str()).map(str::to_owned))
        .unwrap_or_default()
}

/// What the final cause says is left behind, if anything.
fn left_behind(cause: &Cause) -> &str {
    match cause {
        Cause::Refused { left_behind, .. } | Cause::RollbackAborted { left_behind, .. } => {
            left_behind
        }
        _ => "",
    }
}

/// The page for `event` (a final one), with the deployment's `audit` trail and the name of the
/// deployments table.
pub fn page(event: &StateChange, audit: &[AuditEntry], table: &str) -> Page {
    let outcome = match event.outcome {
        Some(PhaseKind::RolledBack) => "ROLLED BACK",
        Some(PhaseKind::Failed) => "FAILED",
        Some(PhaseKind::Succeeded) => "SUCCEEDED",
        _ => "ENDED",
    };
    let trigger = trigger(audit);
    let cause = trigger.map_or(&event.cause, |t| &t.transition.cause);
    let alarm = match cause {
        Cause::AlarmFired { alarm_name, .. } | Cause::AlarmMissing { alarm_name } => {
            Some(alarm_name.clone())
        }
        _ => None,
    };
    let headline = match cause {
        Cause::AlarmFired { alarm_name, .. } => format!("alarm {alarm_name} in ALARM"),
        other if event.outcome == Some(PhaseKind::Succeeded) => other.to_string(),
        other => {
            // At a character boundary: causes carry people's words (an abort's reason).
            crate::units::cut(&other.to_string(), 60)
        }
    };
    let subject = format!("[Guardrails] {outcome} {}: {headline}", event.endpoint_name);

    let mut body = String::new();
    let _ = match event.outcome {
        Some(PhaseKind::RolledBack) => writeln!(
            body,
            "Guardrails rolled back a deployment. All traffic is back on the previous model."
        ),
        Some(PhaseKind::Failed) => writeln!(
            body,
            "A deployment failed and needs a person: read \"What happened\" and \"Now\"."
        ),
        _ => writeln!(body, "A deployment ended."),
    };
    let _ = writeln!(body);
    let line = |body: &mut String, label: &str, value: String| {
        let _ = writeln!(body, "{label:<17}{value}");
    };
    line(&mut body, "Endpoint:", event.endpoint_name.clone());
    line(&mut body, "Deployment:", event.deployment_id.clone());
    line(
        &mut body,
        "New model:",
        format!("{} (variant {})", event.model_name, event.green_variant),
    );
    line(
        &mut body,
        "Outcome:",
        format!("{outcome} at {}", utc(event.time)),
    );
    line(&mut body, "What happened:", cause.to_string());
    if *cause != event.cause && event.outcome == Some(PhaseKind::Failed) {
        line(&mut body, "Then:", event.cause.to_string());
    }
    if let Some(t) = trigger
        && let Phase::NativeDeploying { progress, .. } = &t.transition.from
    {
        line(
            &mut body,
            "Where it was:",
            format!(
                "SageMaker's deployment, last reported: {}, at {}",
                progress.as_deref().unwrap_or("nothing yet"),
                utc(t.transition.at.epoch_ms())
            ),
        );
    } else if let Some(t) = trigger {
        let step = step_of(&t.transition.from).map_or_else(
            || format!("during {}", t.transition.from.label()),
            |s| format!("step {s} of {}", event.step_count),
        );
        let share = t
            .observed_green_percent
            .map_or_else(|| "unknown".to_owned(), |p| format!("{p:.2}%"));
        line(
            &mut body,
            "Where it was:",
            format!(
                "{step}, green serving {share} of requests, at {}",
                utc(t.transition.at.epoch_ms())
            ),
        );
    }
    if let Some(served) = green_served(audit, trigger) {
        line(&mut body, "Judge counted:", served);
    }
    if let Some(blast) = &event.blast_radius {
        line(&mut body, "Blast radius:", blast.served());
        if let Some(since) = blast.since_signal() {
            line(&mut body, "", since);
        }
    } else if let (Some(started), Some(restored)) =
        (event.rollback_started_at, event.traffic_restored_at)
    {
        let secs = (restored - started).max(0) as f64 / 1_000.0;
        line(
            &mut body,
            "Back on blue:",
            format!("{secs:.1} s after the rollback started"),
        );
    }
    let now = match (event.outcome, event.engine, cause) {
        (Some(PhaseKind::RolledBack), Engine::Variant, _) => format!(
            "config {} (the original), 100% of requests; green's variant and alarms removed",
            event.blue_config_name
        ),
        (Some(PhaseKind::RolledBack), Engine::Native, _) => format!(
            "config {} (the original), 100% of requests; SageMaker removed the new fleet",
            event.blue_config_name
        ),
        (Some(PhaseKind::Succeeded), Engine::Variant, _) => {
            format!("green ({}) alone", event.green_variant)
        }
        (Some(PhaseKind::Succeeded), Engine::Native, _) => {
            "the new config, deployed by SageMaker".to_owned()
        }
        (_, _, Cause::RollbackFailed { recovery, .. }) => {
            format!("UpdateRollbackFailed: {recovery}")
        }
        _ if !left_behind(&event.cause).is_empty() => left_behind(&event.cause).to_owned(),
        _ => "check the endpoint: Guardrails left it as it was found when the deployment failed"
            .to_owned(),
    };
    line(&mut body, "Now:", now);
    let _ = writeln!(body);
    let _ = writeln!(body, "Names to look up:");
    let _ = writeln!(body, "  SageMaker endpoint:  {}", event.endpoint_name);
    let _ = writeln!(body, "  Original config:     {}", event.blue_config_name);
    if let Some(alarm) = &alarm {
        let _ = writeln!(body, "  CloudWatch alarm:    {alarm}");
    }
    let _ = writeln!(
        body,
        "  Audit trail:         DynamoDB table {table}, pk ENDPOINT#{}, sk begins with AUDIT#{}#",
        event.endpoint_name, event.deployment_id
    );

    let mut attributes = BTreeMap::from([
        ("endpoint".to_owned(), event.endpoint_name.clone()),
        ("deploymentId".to_owned(), event.deployment_id.clone()),
        ("outcome".to_owned(), outcome.replace(' ', "_")),
        ("cause".to_owned(), cause_kind(cause)),
    ]);
    if let Some(alarm) = alarm {
        attributes.insert("alarmName".to_owned(), alarm);
    }
    Page {
        subject,
        body,
        attributes,
    }
}
