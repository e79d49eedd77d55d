//! The three protocols CloudWatch speaks (botocore's service model, `monitoring/2010-08-01`,
//! lists `smithy-rpc-v2-cbor`, `json` and `query`): RPC v2 CBOR for the Rust SDK, `awsJson1_0`
//! (`X-Amz-Target: GraniteServiceVersion20100801.<Operation>`) for boto3 and the AWS CLI, and
//! the query protocol (`Action=<Operation>&Version=2010-08-01`, XML answers) for older clients.
//! Requests of every protocol become one JSON input for the handlers (timestamps as epoch
//! seconds); the handlers' answer, a CBOR value, is written back in the caller's protocol.
//!
//! The query protocol carries every value as text, so the member names below say which are
//! numbers, timestamps and booleans (from the input shapes of the operations served; a test
//! checks them against botocore's model in the venv).

use ciborium::Value as Cbor;
use serde_json::{Map, Number, Value, json};

use crate::protocol::{request_id, xml_escape};

/// The query protocol's namespace for CloudWatch.
pub const XMLNS: &str = "http://monitoring.amazonaws.com/doc/2010-08-01/";

/// Members whose values are numbers.
pub const NUMBERS: [&str; 14] = [
    "Period",
    "EvaluationPeriods",
    "DatapointsToAlarm",
    "Threshold",
    "Value",
    "Values",
    "Counts",
    "StorageResolution",
    "MaxRecords",
    "MaxDatapoints",
    "Sum",
    "SampleCount",
    "Minimum",
    "Maximum",
];
/// Members whose values are timestamps.
pub const TIMESTAMPS: [&str; 5] = ["StartTime", "EndTime", "StartDate", "EndDate", "Timestamp"];
/// Members whose values are booleans.
pub const BOOLEANS: [&str; 3] = ["ActionsEnabled", "ReturnData", "IncludeLinkedAccounts"];
/// Members that are integers among the numbers (the rest are doubles).
const INTEGERS: [&str; 5] = [
    "Period",
    "EvaluationPeriods",
    "DatapointsToAlarm",
    "MaxRecords",
    "MaxDatapoints",
];

/// `2026-12-02T01:00:00Z`, `2026-12-02T01:00:00.123+00:00` or epoch seconds, to epoch seconds.
pub fn parse_time(text: &str) -> Option<f64> {
    if let Ok(secs) = text.parse::<f64>() {
        return Some(secs);
    }
    let (date, rest) = text.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let time_end = rest.find(['Z', '+', '-']).unwrap_or(rest.len());
    let (clock, zone) = rest.split_at(time_end);
    let mut t = clock.split(':');
    let hh: i64 = t.next()?.parse().ok()?;
    let mm: i64 = t.next()?.parse().ok()?;
    let ss: f64 = t.next().unwrap_or("0").parse().ok()?;
    let offset_secs = match zone.trim_start_matches('Z') {
        "" => 0,
        z => {
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let digits: String = z[1..].chars().filter(char::is_ascii_digit).collect();
            let h: i64 = digits.get(..2)?.parse().ok()?;
            let m: i64 = digits.get(2..4).unwrap_or("00").parse().ok()?;
            sign * (h * 3_600 + m * 60)
        }
    };
    // Howard Hinnant's days-from-civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    #[allow(clippy::cast_precision_loss)]
    let whole = (days * 86_400 + hh * 3_600 + mm * 60 - offset_secs) as f64;
    Some(whole + ss)
}

fn typed(member: &str, text: &str) -> Value {
    if NUMBERS.contains(&member) {
        if INTEGERS.contains(&member)
            && let Ok(n) = text.parse::<i64>()
        {
            return Value::Number(n.into());
        }
        if let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64) {
            return Value::Number(n);
        }
    }
    if TIMESTAMPS.contains(&member)
        && let Some(n) = parse_time(text).and_then(Number::from_f64)
    {
        return Value::Number(n);
    }
    if BOOLEANS.contains(&member) {
        return Value::Bool(text.eq_ignore_ascii_case("true"));
    }
    Value::String(text.to_owned())
}

/// Puts `value` at `path` (`MetricDataQueries.member.1.MetricStat.Period`) in `into`.
fn insert(into: &mut Value, path: &[&str], value: &str, member: &str) {
    let Some((first, rest)) = path.split_first() else {
        *into = typed(member, value);
        return;
    };
    if *first == "member" {
        let index: usize = rest.first().and_then(|i| i.parse().ok()).unwrap_or(1);
        if !into.is_array() {
            *into = Value::Array(Vec::new());
        }
        if let Value::Array(items) = into {
            while items.len() < index {
                items.push(Value::Null);
            }
            if let Some(slot) = items.get_mut(index.saturating_sub(1)) {
                insert(slot, rest.get(1..).unwrap_or(&[]), value, member);
            }
        }
        return;
    }
    if !into.is_object() {
        *into = Value::Object(Map::new());
    }
    if let Value::Object(map) = into {
        let slot = map.entry((*first).to_owned()).or_insert(Value::Null);
        insert(slot, rest, value, first);
    }
}

/// A query-protocol request body: its operation and its input.
pub fn from_query(body: &[u8]) -> (String, Value) {
    let mut input = Value::Object(Map::new());
    let mut operation = String::new();
    for (key, value) in form_urlencoded::parse(body) {
        match key.as_ref() {
            "Action" => operation = value.into_owned(),
            "Version" => {}
            path => {
                let parts: Vec<&str> = path.split('.').collect();
                // An empty list is sent as `Name=` with no members.
                if parts.len() == 1 && value.is_empty() && !NUMBERS.contains(&path) {
                    if let Value::Object(map) = &mut input {
                        map.insert(path.to_owned(), Value::Array(Vec::new()));
                    }
                    continue;
                }
                insert(
                    &mut input,
                    &parts,
                    &value,
                    parts.last().copied().unwrap_or(""),
                );
            }
        }
    }
    (operation, input)
}

/// The handlers' answer as awsJson1_0: timestamps as epoch seconds.
pub fn to_json(value: &Cbor) -> Value {
    match value {
        Cbor::Integer(i) => {
            let n = i128::from(*i);
            i64::try_from(n).map_or(Value::Null, |n| Value::Number(n.into()))
        }
        Cbor::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Cbor::Text(s) => Value::String(s.clone()),
        Cbor::Bool(b) => Value::Bool(*b),
        Cbor::Tag(_, inner) => to_json(inner),
        Cbor::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        Cbor::Map(entries) => Value::Object(
            entries
                .iter()
                .filter_map(|(k, v)| match k {
                    Cbor::Text(k) => Some((k.clone(), to_json(v))),
                    _ => None,
                })
                .collect(),
        ),
        _ => Value::Null,
    }
}

fn iso(secs: f64) -> String {
    #[allow(clippy::cast_possible_truncation)]
    let ms = (secs * 1_000.0).round() as i64;
    let t = guardrails::units::Timestamp::from_epoch_ms(ms).utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second, t.millisecond
    )
}

fn xml(value: &Cbor, out: &mut String) {
    match value {
        Cbor::Map(entries) => {
            for (k, v) in entries {
                if let Cbor::Text(k) = k {
                    out.push_str(&format!("<{k}>"));
                    xml(v, out);
                    out.push_str(&format!("</{k}>"));
                }
            }
        }
        Cbor::Array(items) => {
            for item in items {
                out.push_str("<member>");
                xml(item, out);
                out.push_str("</member>");
            }
        }
        Cbor::Tag(1, inner) => {
            if let Cbor::Float(secs) = inner.as_ref() {
                out.push_str(&iso(*secs));
            }
        }
        Cbor::Tag(_, inner) => xml(inner, out),
        Cbor::Text(s) => out.push_str(&xml_escape(s)),
        Cbor::Float(f) => out.push_str(&f.to_string()),
        Cbor::Integer(i) => out.push_str(&i128::from(*i).to_string()),
        Cbor::Bool(b) => out.push_str(&b.to_string()),
        _ => {}
    }
}

/// The handlers' answer to `operation` as a query-protocol XML document.
pub fn to_query(operation: &str, value: &Cbor) -> String {
    let mut result = String::new();
    xml(value, &mut result);
    let result = if result.is_empty() {
        String::new()
    } else {
        format!("<{operation}Result>{result}</{operation}Result>")
    };
    format!(
        "<{operation}Response xmlns=\"{XMLNS}\">{result}<ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{operation}Response>",
        request_id()
    )
}

/// An input for the handlers from a JSON body (awsJson1_0 already carries epoch seconds).
pub fn from_json(body: &[u8]) -> Result<Value, String> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_bodies_become_typed_nested_inputs() {
        let body = b"Action=GetMetricData&Version=2010-08-01&StartTime=2019-10-02T17%3A04%3A40Z&EndTime=2019-10-02T17%3A04%3A41.5Z&MetricDataQueries.member.1.Id=m1&MetricDataQueries.member.1.MetricStat.Period=60&MetricDataQueries.member.1.MetricStat.Metric.Dimensions.member.1.Name=EndpointName&MetricDataQueries.member.1.ReturnData=true";
        let (op, input) = from_query(body);
        assert_eq!(op, "GetMetricData");
        assert_eq!(input["StartTime"], json!(1_570_035_880.0));
        assert_eq!(input["EndTime"], json!(1_570_035_881.5));
        let q = &input["MetricDataQueries"][0];
        assert_eq!(q["Id"], "m1");
        assert_eq!(q["MetricStat"]["Period"], 60);
        assert_eq!(
            q["MetricStat"]["Metric"]["Dimensions"][0]["Name"],
            "EndpointName"
        );
        assert_eq!(q["ReturnData"], true);
        let (_, names) =
            from_query(b"Action=DescribeAlarms&AlarmNames.member.1=a&AlarmNames.member.2=b");
        assert_eq!(names["AlarmNames"], json!(["a", "b"]));
    }

    #[test]
    fn answers_are_written_in_each_protocol() {
        let answer = crate::cbor::map(vec![(
            "MetricAlarms",
            crate::cbor::list(vec![crate::cbor::map(vec![
                ("AlarmName", crate::cbor::text("a<b")),
                (
                    "StateUpdatedTimestamp",
                    crate::cbor::timestamp(1_570_035_880_989),
                ),
            ])]),
        )]);
        assert_eq!(
            to_json(&answer),
            json!({"MetricAlarms": [{"AlarmName": "a<b", "StateUpdatedTimestamp": 1_570_035_880.989}]})
        );
        let xml = to_query("DescribeAlarms", &answer);
        assert!(xml.contains("<DescribeAlarmsResult><MetricAlarms><member><AlarmName>a&lt;b</AlarmName><StateUpdatedTimestamp>2019-10-02T17:04:40.989Z</StateUpdatedTimestamp></member></MetricAlarms></DescribeAlarmsResult>"), "{xml}");
    }

    #[test]
    fn times_parse_with_and_without_zones() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(parse_time("1970-01-01T01:00:00+01:00"), Some(0.0));
        assert_eq!(parse_time("1570035880.5"), Some(1_570_035_880.5));
        assert_eq!(parse_time("yesterday"), None);
    }
}
