//! A path-aware reader over a parsed JSON/YAML document that collects *every* problem instead
//! of stopping at the first, as serde would. Each problem names the JSON path, the value found
//! and what is allowed. It knows nothing of deployments: the policy module says what to read.

use serde_json::{Map, Value};

use super::Problem;

/// Collects problems while a document is read.
#[derive(Debug, Default)]
pub(crate) struct Problems(pub(crate) Vec<Problem>);

impl Problems {
    pub(crate) fn add(&mut self, path: &str, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.to_owned(),
            message: message.into(),
        });
    }
}

/// `DeploymentConfig.X` from `DeploymentConfig` and `X` (the root has an empty path).
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// A short rendering of a value for messages: strings quoted, long values cut.
pub(crate) fn show(value: &Value) -> String {
    let text = match value {
        Value::Object(_) => "an object".to_owned(),
        Value::Array(_) => "a list".to_owned(),
        Value::Null => "null".to_owned(),
        other => other.to_string(),
    };
    if text.chars().count() > 60 {
        let cut: String = text.chars().take(57).collect();
        format!("{cut}...")
    } else {
        text
    }
}

/// One object of the document, read field by field; unknown fields are reported by `finish`.
pub(crate) struct Obj<'a> {
    path: String,
    map: &'a Map<String, Value>,
    known: &'static [&'static str],
}

impl<'a> Obj<'a> {
    /// Reads `value` as an object whose only allowed fields are `known`.
    pub(crate) fn new(
        value: &'a Value,
        path: &str,
        known: &'static [&'static str],
        problems: &mut Problems,
    ) -> Option<Obj<'a>> {
        match value {
            Value::Object(map) => Some(Obj {
                path: path.to_owned(),
                map,
                known,
            }),
            other => {
                let at = if path.is_empty() { "policy" } else { path };
                problems.add(
                    at,
                    format!(
                        "expected an object with {}, found {}",
                        list(known),
                        show(other)
                    ),
                );
                None
            }
        }
    }

    /// The field `key` and its path, if present (an explicit `null` counts as absent).
    pub(crate) fn get(&self, key: &str) -> Option<(&'a Value, String)> {
        debug_assert!(self.known.contains(&key), "{key} must be a known field");
        self.map
            .get(key)
            .filter(|value| !value.is_null())
            .map(|value| (value, join(&self.path, key)))
    }

    /// The field `key`, reporting its absence.
    pub(crate) fn require(
        &self,
        key: &str,
        problems: &mut Problems,
    ) -> Option<(&'a Value, String)> {
        let found = self.get(key);
        if found.is_none() {
            problems.add(&join(&self.path, key), "is required");
        }
        found
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Reports every field that is not known, suggesting the closest known name: a typo must
    /// never silently disable a guard.
    pub(crate) fn finish(self, problems: &mut Problems) {
        for key in self.map.keys() {
            if self.known.contains(&key.as_str()) {
                continue;
            }
            let hint = closest(key, self.known)
                .map(|k| format!(" (did you mean {k}?)"))
                .unwrap_or_default();
            let expected = match self.known {
                [only] => format!("the only field allowed here is {only}"),
                known => format!("expected one of {}", list(known)),
            };
            problems.add(
                &join(&self.path, key),
                format!("unknown field; {expected}{hint}"),
            );
        }
    }
}

fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| {
            (
                strsim::jaro_winkler(&key.to_lowercase(), &k.to_lowercase()),
                *k,
            )
        })
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

/// `A, B or C`.
pub(crate) fn list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// A whole number in `min..=max` (`unit` names it in messages, e.g. "seconds").
pub(crate) fn whole_number(
    value: &Value,
    path: &str,
    min: u32,
    max: u32,
    unit: &str,
    problems: &mut Problems,
) -> Option<u32> {
    let (unit_suffix, of_unit) = if unit.is_empty() {
        (String::new(), String::new())
    } else {
        (format!(" {unit}"), format!(" of {unit}"))
    };
    let number = value.as_f64().filter(|n| n.fract() == 0.0);
    let Some(n) = number else {
        problems.add(
            path,
            format!("expected a whole number{of_unit}, found {}", show(value)),
        );
        return None;
    };
    if n < f64::from(min) || n > f64::from(max) {
        problems.add(
            path,
            format!(
                "{} is out of range; allowed: {min} to {max}{unit_suffix}",
                show(value)
            ),
        );
        return None;
    }
    // Whole and within min..=max, both u32, so the conversion is exact.
    Some(crate::units::to_whole(n))
}

/// A finite number.
pub(crate) fn number(value: &Value, path: &str, problems: &mut Problems) -> Option<f64> {
    match value.as_f64().filter(|n| n.is_finite()) {
        Some(n) => Some(n),
        None => {
            problems.add(path, format!("expected a number, found {}", show(value)));
            None
        }
    }
}

/// A string of `min..=max` characters.
pub(crate) fn string(
    value: &Value,
    path: &str,
    min: usize,
    max: usize,
    problems: &mut Problems,
) -> Option<String> {
    let Some(text) = value.as_str() else {
        problems.add(path, format!("expected a string, found {}", show(value)));
        return None;
    };
    let len = text.chars().count();
    if len < min || len > max {
        problems.add(
            path,
            format!(
                "{} has {len} characters; allowed: {min} to {max}",
                show(value)
            ),
        );
        return None;
    }
    Some(text.to_owned())
}

/// One of the `allowed` spellings, returned as its index into `allowed`.
pub(crate) fn one_of(
    value: &Value,
    path: &str,
    allowed: &[&str],
    problems: &mut Problems,
) -> Option<usize> {
    let found = value
        .as_str()
        .and_then(|text| allowed.iter().position(|a| *a == text));
    if found.is_none() {
        let hint = value
            .as_str()
            .and_then(|text| closest(text, allowed))
            .map(|k| format!(" (did you mean {k}?)"))
            .unwrap_or_default();
        problems.add(
            path,
            format!("{} is not one of {}{hint}", show(value), list(allowed)),
        );
    }
    found
}

/// A boolean.
pub(crate) fn boolean(value: &Value, path: &str, problems: &mut Problems) -> Option<bool> {
    let found = value.as_bool();
    if found.is_none() {
        problems.add(
            path,
            format!("expected true or false, found {}", show(value)),
        );
    }
    found
}

/// A list of `min..=max` entries, each with its path.
pub(crate) fn entries<'a>(
    value: &'a Value,
    path: &str,
    min: usize,
    max: usize,
    what: &str,
    problems: &mut Problems,
) -> Vec<(&'a Value, String)> {
    let Some(items) = value.as_array() else {
        problems.add(
            path,
            format!("expected a list of {what}, found {}", show(value)),
        );
        return Vec::new();
    };
    if items.len() < min || items.len() > max {
        problems.add(
            path,
            format!(
                "has {} entries; allowed: {min} to {max} {what}",
                items.len()
            ),
        );
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| (item, format!("{path}[{i}]")))
        .collect()
}

/// `Some(None)` for an absent field, `None` for a field that failed to read (which fails the
/// whole section). Optional fields of `DeploymentConfig` use `flatten` instead: a field that
/// failed has its problem recorded, and reading goes on so that cross-field rules still run.
pub(crate) fn transpose<T>(field: Option<Option<T>>) -> Option<Option<T>> {
    match field {
        None => Some(None),
        Some(read) => read.map(Some),
    }
}
