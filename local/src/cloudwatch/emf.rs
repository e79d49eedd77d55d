//! The embedded metric format, as CloudWatch Logs extracts it from a Lambda function's output
//! (CloudWatch User Guide, "Specification: Embedded metric format"): a log event that is a JSON
//! object with an `_aws` member is an EMF document; each of its metric directives names a
//! namespace, dimension sets and metrics, whose values are members of the root. A document
//! that breaks a rule gives no metrics at all and counts in `AWS/Logs` as
//! `EMFValidationErrors` (or `EMFParsingErrors` when it is not JSON), with the log group as
//! dimension ("Monitoring with CloudWatch metrics", CloudWatch Logs User Guide). Where the
//! specification says nothing of a limit, the strictest documented neighbour is used and named.

use serde_json::{Map, Value};

use super::{Datapoint, MetricKey};
use crate::Ms;

/// The rules, with their sources.
pub mod rules {
    /// "Embedded metric format is subject to the same limits as standard CloudWatch Logs
    /// events and is limited to a maximum size of 256 KB" (specification).
    pub const MAX_EVENT_BYTES: usize = 256 * 1_024;
    /// "A DimensionSet MUST NOT contain more than 30 dimension keys" (specification).
    pub const MAX_DIMENSIONS: usize = 30;
    /// "The Metrics array MUST NOT contain more than 100 MetricDefinition objects"
    /// (specification).
    pub const MAX_METRICS: usize = 100;
    /// "Values ... MUST NOT contain more than 100 values" in an array (specification).
    pub const MAX_VALUES: usize = 100;
    /// Names and values as `Dimension` and `MetricDatum` take them (CloudWatch API reference:
    /// `Dimension.Name` 1-255, `Dimension.Value` 1-1024, `MetricName` 1-255, `Namespace`
    /// 1-255): the specification refers to them.
    pub const MAX_NAME_CHARS: usize = 255;
    pub const MAX_DIMENSION_VALUE_CHARS: usize = 1_024;
    /// "You cannot specify a namespace that begins with 'AWS/'. Namespaces that begin with
    /// 'AWS/' are reserved for use by Amazon Web Services products" (API reference,
    /// PutMetricData): the specification says nothing, so its neighbour's rule is kept.
    pub const RESERVED_NAMESPACE_PREFIX: &str = "AWS/";
    /// `StorageResolution`: 1 (high resolution) or 60, the default (specification).
    pub const STORAGE_RESOLUTIONS: [i64; 2] = [1, 60];
    /// `Unit`: the `StandardUnit` values of the API model (specification: "MUST be a valid
    /// CloudWatch metric unit").
    pub const UNITS: [&str; 27] = [
        "Seconds",
        "Microseconds",
        "Milliseconds",
        "Bytes",
        "Kilobytes",
        "Megabytes",
        "Gigabytes",
        "Terabytes",
        "Bits",
        "Kilobits",
        "Megabits",
        "Gigabits",
        "Terabits",
        "Percent",
        "Count",
        "Bytes/Second",
        "Kilobytes/Second",
        "Megabytes/Second",
        "Gigabytes/Second",
        "Terabytes/Second",
        "Bits/Second",
        "Kilobits/Second",
        "Megabits/Second",
        "Gigabits/Second",
        "Terabits/Second",
        "Count/Second",
        "None",
    ];
}

/// Why a log event gave no metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejected {
    /// Not a JSON object (`EMFParsingErrors`).
    Parsing(String),
    /// A JSON object that breaks the specification (`EMFValidationErrors`).
    Validation(String),
}

fn invalid(message: impl Into<String>) -> Rejected {
    Rejected::Validation(message.into())
}

fn name_ok(name: &str) -> bool {
    !name.is_empty() && name.chars().count() <= rules::MAX_NAME_CHARS
}

/// The metric values of member `name`: a number, or an array of at most 100 numbers.
fn values(root: &Map<String, Value>, name: &str) -> Result<Vec<f64>, Rejected> {
    match root.get(name) {
        Some(Value::Number(n)) => Ok(vec![n.as_f64().unwrap_or(0.0)]),
        Some(Value::Array(items)) if items.len() <= rules::MAX_VALUES => items
            .iter()
            .map(|v| {
                v.as_f64()
                    .ok_or_else(|| invalid(format!("metric {name}: a value is not a number")))
            })
            .collect(),
        Some(Value::Array(_)) => Err(invalid(format!(
            "metric {name}: more than {} values",
            rules::MAX_VALUES
        ))),
        Some(_) => Err(invalid(format!("metric {name}: not a number"))),
        None => Err(invalid(format!("metric {name}: no member of that name"))),
    }
}

/// The datapoints of one log event, or `None` when it is not an EMF document (no `_aws`).
pub fn extract(event: &str) -> Option<Result<Vec<(MetricKey, Datapoint)>, Rejected>> {
    if event.len() > rules::MAX_EVENT_BYTES {
        return Some(Err(invalid("larger than 256 KB")));
    }
    let root = match serde_json::from_str::<Value>(event) {
        Ok(Value::Object(root)) => root,
        // A plain log line: nothing to extract, nothing wrong.
        Ok(_) | Err(_) if !event.contains("\"_aws\"") => return None,
        Ok(_) => return Some(Err(Rejected::Parsing("not a JSON object".to_owned()))),
        Err(e) => return Some(Err(Rejected::Parsing(e.to_string()))),
    };
    let aws = root.get("_aws")?;
    Some(points(&root, aws))
}

fn points(root: &Map<String, Value>, aws: &Value) -> Result<Vec<(MetricKey, Datapoint)>, Rejected> {
    let at: Ms = aws
        .get("Timestamp")
        .and_then(Value::as_i64)
        .ok_or_else(|| invalid("_aws.Timestamp: required, epoch milliseconds"))?;
    let directives = aws
        .get("CloudWatchMetrics")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("_aws.CloudWatchMetrics: required, an array"))?;
    let mut out = Vec::new();
    for (i, directive) in directives.iter().enumerate() {
        let at_path = |field: &str| format!("_aws.CloudWatchMetrics[{i}].{field}");
        let namespace = directive
            .get("Namespace")
            .and_then(Value::as_str)
            .filter(|n| name_ok(n) && !n.starts_with(rules::RESERVED_NAMESPACE_PREFIX))
            .ok_or_else(|| {
                invalid(format!(
                    "{}: required, 1-255 characters, not AWS/",
                    at_path("Namespace")
                ))
            })?;
        let sets = directive
            .get("Dimensions")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid(format!("{}: required, an array", at_path("Dimensions"))))?;
        let metrics = directive
            .get("Metrics")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid(format!("{}: required, an array", at_path("Metrics"))))?;
        if metrics.len() > rules::MAX_METRICS {
            return Err(invalid(format!("{}: more than 100", at_path("Metrics"))));
        }
        let mut dimension_sets = Vec::new();
        for set in sets {
            let keys = set.as_array().ok_or_else(|| {
                invalid(format!("{}: a set is not an array", at_path("Dimensions")))
            })?;
            if keys.len() > rules::MAX_DIMENSIONS {
                return Err(invalid(format!(
                    "{}: a set of more than 30",
                    at_path("Dimensions")
                )));
            }
            let mut dims = Vec::new();
            for key in keys {
                let key = key.as_str().filter(|k| name_ok(k)).ok_or_else(|| {
                    invalid(format!("{}: a key is not a name", at_path("Dimensions")))
                })?;
                let value = root
                    .get(key)
                    .and_then(Value::as_str)
                    .filter(|v| {
                        !v.is_empty() && v.chars().count() <= rules::MAX_DIMENSION_VALUE_CHARS
                    })
                    .ok_or_else(|| {
                        invalid(format!("dimension {key}: no string member of that name"))
                    })?;
                dims.push((key.to_owned(), value.to_owned()));
            }
            dims.sort();
            dimension_sets.push(dims);
        }
        for metric in metrics {
            let name = metric
                .get("Name")
                .and_then(Value::as_str)
                .filter(|n| name_ok(n))
                .ok_or_else(|| invalid(format!("{}: a Name is required", at_path("Metrics"))))?;
            if let Some(unit) = metric.get("Unit")
                && !unit.as_str().is_some_and(|u| rules::UNITS.contains(&u))
            {
                return Err(invalid(format!(
                    "metric {name}: Unit {unit} is not a CloudWatch unit"
                )));
            }
            if let Some(r) = metric.get("StorageResolution")
                && !r
                    .as_i64()
                    .is_some_and(|r| rules::STORAGE_RESOLUTIONS.contains(&r))
            {
                return Err(invalid(format!(
                    "metric {name}: StorageResolution is 1 or 60"
                )));
            }
            let vals = values(root, name)?;
            for dims in &dimension_sets {
                let key = (namespace.to_owned(), name.to_owned(), dims.clone());
                out.push((key, Datapoint::values(at, &vals)));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(extra: Value) -> String {
        let mut d = json!({
            "_aws": { "Timestamp": 1_000, "CloudWatchMetrics": [{
                "Namespace": "Guardrails", "Dimensions": [["Function"], []],
                "Metrics": [{ "Name": "EventsRefused", "Unit": "Count" }]
            }]},
            "Function": "bake-watcher", "EventsRefused": 1
        });
        for (k, v) in extra.as_object().unwrap() {
            d[k] = v.clone();
        }
        d.to_string()
    }

    #[test]
    fn each_dimension_set_gives_a_metric() {
        let points = extract(&doc(json!({}))).unwrap().unwrap();
        let keys: Vec<&Vec<(String, String)>> = points.iter().map(|(k, _)| &k.2).collect();
        assert_eq!(
            keys,
            [
                &vec![("Function".to_owned(), "bake-watcher".to_owned())],
                &vec![]
            ]
        );
        assert_eq!(points[0].1.sum, 1.0);
        assert_eq!(points[0].1.at, 1_000);
    }

    #[test]
    fn plain_log_lines_are_not_documents_and_broken_documents_give_nothing() {
        assert_eq!(extract(r#"{"level":"INFO","message":"decision"}"#), None);
        assert_eq!(extract("not json at all"), None);
        assert!(matches!(
            extract(r#"{"_aws": "#),
            Some(Err(Rejected::Parsing(_)))
        ));
        for broken in [
            json!({ "EventsRefused": "one" }),
            json!({ "Function": 7 }),
            json!({ "_aws": { "CloudWatchMetrics": [] } }),
            json!({ "_aws": { "Timestamp": 1, "CloudWatchMetrics": [{ "Namespace": "AWS/Lambda",
                "Dimensions": [], "Metrics": [] }] } }),
            json!({ "_aws": { "Timestamp": 1, "CloudWatchMetrics": [{ "Namespace": "G",
                "Dimensions": [], "Metrics": [{ "Name": "X", "Unit": "Parsecs" }] }] }, "X": 1 }),
            json!({ "EventsRefused": (0..101).collect::<Vec<_>>() }),
        ] {
            assert!(
                matches!(
                    extract(&doc(broken.clone())),
                    Some(Err(Rejected::Validation(_)))
                ),
                "{broken}"
            );
        }
    }
}
