//! The Smithy RPC v2 CBOR wire format that the current `aws-sdk-cloudwatch` speaks: request
//! bodies are decoded into JSON documents (timestamps, CBOR tag 1, become epoch seconds) so the
//! handlers read them like any other input; responses are built as CBOR values with doubles as
//! floats and timestamps tagged, as the SDK's decoder requires.

use ciborium::Value as Cbor;
use serde_json::{Map, Number, Value};

/// Decodes a request body; an empty body is an empty input.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    if body.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    let value: Cbor = ciborium::from_reader(body).map_err(|e| format!("invalid CBOR: {e}"))?;
    Ok(to_json(value))
}

pub(crate) fn to_json(value: Cbor) -> Value {
    match value {
        Cbor::Integer(i) => {
            let n = i128::from(i);
            i64::try_from(n)
                .map(|n| Value::Number(n.into()))
                .unwrap_or(Value::Null)
        }
        Cbor::Float(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
        Cbor::Text(s) => Value::String(s),
        Cbor::Bool(b) => Value::Bool(b),
        Cbor::Null => Value::Null,
        Cbor::Tag(_, inner) => to_json(*inner),
        Cbor::Array(items) => Value::Array(items.into_iter().map(to_json).collect()),
        Cbor::Map(entries) => Value::Object(
            entries
                .into_iter()
                .filter_map(|(k, v)| match k {
                    Cbor::Text(k) => Some((k, to_json(v))),
                    _ => None,
                })
                .collect(),
        ),
        Cbor::Bytes(b) => Value::Array(b.into_iter().map(|x| Value::Number(x.into())).collect()),
        _ => Value::Null,
    }
}

/// Encodes a response body.
pub fn encode(value: &Cbor) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = ciborium::into_writer(value, &mut out);
    out
}

/// A CBOR map from `(key, value)` pairs.
pub fn map(entries: Vec<(&str, Cbor)>) -> Cbor {
    Cbor::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Cbor::Text(k.to_owned()), v))
            .collect(),
    )
}

pub fn text(s: impl Into<String>) -> Cbor {
    Cbor::Text(s.into())
}

pub fn double(x: f64) -> Cbor {
    Cbor::Float(x)
}

pub fn int(n: i64) -> Cbor {
    Cbor::Integer(n.into())
}

/// A timestamp: epoch seconds under CBOR tag 1.
pub fn timestamp(ms: i64) -> Cbor {
    // Milliseconds to seconds: exact enough for any date CloudWatch stores.
    #[allow(clippy::cast_precision_loss)]
    let secs = ms as f64 / 1_000.0;
    Cbor::Tag(1, Box::new(Cbor::Float(secs)))
}

pub fn list(items: Vec<Cbor>) -> Cbor {
    Cbor::Array(items)
}
