//! Reads the `Guardrails` section: the engine, explicit traffic steps, approval, the poll
//! interval and the alarm templates that Guardrails creates scoped to green.

use serde_json::Value;

use super::reader::{
    Obj, Problems, boolean, entries, join, number, one_of, show, string, transpose, whole_number,
};
use super::{
    AlarmTemplate, ComparisonOperator, EngineChoice, GuardrailsSection, MAX_ALARMS,
    MAX_TRAFFIC_STEPS, NAME_MAX_CHARS, Statistic, TreatMissingData,
};
use crate::units::Share;

const POLL_MAX_SECS: u32 = 300;
/// As SageMaker bounds its own bakes (`WaitIntervalInSeconds`, `TerminationWaitInSeconds`).
const FINAL_BAKE_MAX_SECS: u32 = 3_600;
const TEMPLATE_NAME_MAX_CHARS: usize = 64;

fn alarm_templates(
    value: &Value,
    path: &str,
    problems: &mut Problems,
) -> Option<Vec<AlarmTemplate>> {
    let mut templates = Vec::new();
    let mut complete = true;
    for (item, item_path) in entries(value, path, 0, MAX_ALARMS, "alarm templates", problems) {
        match alarm_template(item, &item_path, problems) {
            Some(t) => {
                if templates.iter().any(|o: &AlarmTemplate| o.name == t.name) {
                    problems.add(
                        &join(&item_path, "Name"),
                        format!(
                            "\"{}\" is used by another template; names must be unique",
                            t.name
                        ),
                    );
                }
                templates.push(t);
            }
            None => complete = false,
        }
    }
    complete.then_some(templates)
}

fn alarm_template(value: &Value, path: &str, problems: &mut Problems) -> Option<AlarmTemplate> {
    let obj = Obj::new(
        value,
        path,
        &[
            "Name",
            "Namespace",
            "MetricName",
            "Statistic",
            "ComparisonOperator",
            "Threshold",
            "PeriodInSeconds",
            "EvaluationPeriods",
            "DatapointsToAlarm",
            "TreatMissingData",
        ],
        problems,
    )?;
    let name = obj.require("Name", problems).and_then(|(v, p)| {
        let name = string(v, &p, 1, TEMPLATE_NAME_MAX_CHARS, problems)?;
        let ok = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            problems.add(
                &p,
                format!("{} may hold only letters, digits, '-' and '_'", show(v)),
            );
            return None;
        }
        Some(name)
    });
    let namespace = match obj.get("Namespace") {
        None => Some("AWS/SageMaker".to_owned()),
        Some((v, p)) => string(v, &p, 1, NAME_MAX_CHARS, problems),
    };
    let metric = obj
        .require("MetricName", problems)
        .and_then(|(v, p)| string(v, &p, 1, NAME_MAX_CHARS, problems));
    let statistic = obj
        .require("Statistic", problems)
        .and_then(|(v, p)| statistic(v, &p, problems));
    let comparison = obj
        .require("ComparisonOperator", problems)
        .and_then(|(v, p)| {
            const OPS: [&str; 4] = [
                "GreaterThanOrEqualToThreshold",
                "GreaterThanThreshold",
                "LessThanThreshold",
                "LessThanOrEqualToThreshold",
            ];
            one_of(v, &p, &OPS, problems).map(|i| match i {
                0 => ComparisonOperator::GreaterThanOrEqualToThreshold,
                1 => ComparisonOperator::GreaterThanThreshold,
                2 => ComparisonOperator::LessThanThreshold,
                _ => ComparisonOperator::LessThanOrEqualToThreshold,
            })
        });
    let threshold = obj
        .require("Threshold", problems)
        .and_then(|(v, p)| number(v, &p, problems));
    let period = obj.require("PeriodInSeconds", problems).and_then(|(v, p)| {
        let secs = whole_number(v, &p, 10, 86_400, "seconds", problems)?;
        if !matches!(secs, 10 | 20 | 30) && secs % 60 != 0 {
            problems.add(
                &p,
                format!("{secs} is not a CloudWatch alarm period; allowed: 10, 20, 30 or a multiple of 60 seconds"),
            );
            return None;
        }
        Some(secs)
    });
    let evaluation_periods = obj
        .require("EvaluationPeriods", problems)
        .and_then(|(v, p)| whole_number(v, &p, 1, 1_440, "", problems));
    if let (Some(period), Some(n)) = (period, evaluation_periods)
        && u64::from(period) * u64::from(n) > 86_400
    {
        problems.add(
            &join(path, "EvaluationPeriods"),
            format!(
                "{n} periods of {period} seconds look back more than the one day CloudWatch allows"
            ),
        );
    }
    let datapoints = match (obj.get("DatapointsToAlarm"), evaluation_periods) {
        (None, n) => n,
        (Some((v, p)), Some(n)) => {
            let d = whole_number(v, &p, 1, u32::MAX, "", problems)?;
            if d > n {
                problems.add(
                    &p,
                    format!("{d} exceeds EvaluationPeriods ({n}); an alarm needs at most that many datapoints"),
                );
            }
            Some(d)
        }
        (Some(_), None) => None,
    };
    let missing = match obj.get("TreatMissingData") {
        None => Some(TreatMissingData::Missing),
        Some((v, p)) => one_of(
            v,
            &p,
            &["breaching", "notBreaching", "ignore", "missing"],
            problems,
        )
        .map(|i| match i {
            0 => TreatMissingData::Breaching,
            1 => TreatMissingData::NotBreaching,
            2 => TreatMissingData::Ignore,
            _ => TreatMissingData::Missing,
        }),
    };
    obj.finish(problems);
    Some(AlarmTemplate {
        name: name?,
        namespace: namespace?,
        metric_name: metric?,
        statistic: statistic?,
        comparison_operator: comparison?,
        threshold: threshold?,
        period_in_seconds: period?,
        evaluation_periods: evaluation_periods?,
        datapoints_to_alarm: datapoints?,
        treat_missing_data: missing?,
    })
}

fn statistic(value: &Value, path: &str, problems: &mut Problems) -> Option<Statistic> {
    let text = value.as_str().unwrap_or_default();
    let named = match text {
        "Average" => Some(Statistic::Average),
        "Sum" => Some(Statistic::Sum),
        "SampleCount" => Some(Statistic::SampleCount),
        "Minimum" => Some(Statistic::Minimum),
        "Maximum" => Some(Statistic::Maximum),
        _ => None,
    };
    let percentile = || {
        text.strip_prefix('p')
            .and_then(|p| p.parse::<f64>().ok())
            .filter(|p| *p > 0.0 && *p < 100.0)
            .map(Statistic::Percentile)
    };
    let found = named.or_else(percentile);
    if found.is_none() {
        problems.add(
            path,
            format!(
                "{} is not a statistic; allowed: Average, Sum, SampleCount, Minimum, Maximum or a percentile such as p99",
                show(value)
            ),
        );
    }
    found
}

pub(super) fn guardrails(
    value: &Value,
    path: &str,
    problems: &mut Problems,
) -> Option<GuardrailsSection> {
    let obj = Obj::new(
        value,
        path,
        &[
            "Engine",
            "TrafficSteps",
            "Alarms",
            "ApproveBeforeFinalShift",
            "PollIntervalInSeconds",
            "FinalFleetBakeInSeconds",
            "Analysis",
            "Hooks",
        ],
        problems,
    )?;
    let engine = match obj.get("Engine") {
        None => Some(EngineChoice::Auto),
        Some((v, p)) => one_of(v, &p, &["auto", "variant", "native"], problems).map(|i| match i {
            0 => EngineChoice::Auto,
            1 => EngineChoice::Variant,
            _ => EngineChoice::Native,
        }),
    };
    let steps = obj
        .get("TrafficSteps")
        .map(|(v, p)| traffic_steps(v, &p, problems));
    let alarms = match obj.get("Alarms") {
        None => Some(Vec::new()),
        Some((v, p)) => alarm_templates(v, &p, problems),
    };
    let approve = match obj.get("ApproveBeforeFinalShift") {
        None => Some(false),
        Some((v, p)) => boolean(v, &p, problems),
    };
    let poll = obj
        .get("PollIntervalInSeconds")
        .map(|(v, p)| whole_number(v, &p, 1, POLL_MAX_SECS, "seconds", problems));
    let final_bake = obj
        .get("FinalFleetBakeInSeconds")
        .map(|(v, p)| whole_number(v, &p, 0, FINAL_BAKE_MAX_SECS, "seconds", problems));
    let analysis = obj
        .get("Analysis")
        .map(|(v, p)| super::read_analysis::analysis(v, &p, problems));
    let hooks = match obj.get("Hooks") {
        None => Some(super::Hooks::default()),
        Some((v, p)) => super::read_hooks::hooks(v, &p, problems),
    };
    obj.finish(problems);
    Some(GuardrailsSection {
        engine: engine?,
        traffic_steps: transpose(steps)?,
        alarms: alarms?,
        approve_before_final_shift: approve?,
        poll_interval_in_seconds: transpose(poll)?,
        final_fleet_bake_in_seconds: transpose(final_bake)?,
        analysis: transpose(analysis)?,
        hooks: hooks?,
    })
}

fn traffic_steps(value: &Value, path: &str, problems: &mut Problems) -> Option<Vec<Share>> {
    let mut steps = Vec::new();
    let mut complete = true;
    let items = entries(value, path, 1, MAX_TRAFFIC_STEPS, "traffic steps", problems);
    for (item, item_path) in &items {
        let share = number(item, item_path, problems).and_then(|pct| {
            let share = Share::from_percent(pct).filter(|s| *s > Share::ZERO);
            if share.is_none() {
                problems.add(
                    item_path,
                    format!(
                        "{} is not a share of requests; allowed: more than 0 and at most 100 \
                         percent, in steps of 0.01",
                        show(item)
                    ),
                );
            }
            share
        });
        match share {
            Some(s) => {
                if let Some(prev) = steps.last().filter(|prev| **prev >= s) {
                    problems.add(
                        item_path,
                        format!("{s} does not increase on the step before it ({prev}); steps must rise strictly"),
                    );
                }
                steps.push(s);
            }
            None => complete = false,
        }
    }
    if complete && steps.last().is_some_and(|last| *last != Share::FULL) {
        let last = items.len() - 1;
        problems.add(
            &format!("{path}[{last}]"),
            format!(
                "the last step is {}; it must be 100 so that green ends with all traffic",
                steps[last]
            ),
        );
    }
    complete.then_some(steps)
}
