//! Bounds on a policy, checked before any parser runs, so that no document (an event holds up
//! to 256 KiB) can hold a function for long: serde_yaml_ng takes time quadratic in the nesting
//! of a document (128 KB of nested YAML took 7.6 s of CPU, 250 KB 61 s), and an alias can
//! expand a small text into a large value. A real policy is a few kilobytes, nested five levels.

use serde_json::Value;

/// The largest policy text or document accepted.
pub const MAX_POLICY_BYTES: usize = 64 * 1024;
/// The deepest nesting accepted (a policy needs 5: `DeploymentConfig.BlueGreenUpdatePolicy.
/// TrafficRoutingConfiguration.CanarySize.Value`).
pub const MAX_DEPTH: usize = 16;
/// YAML aliases (`*name`) accepted in a text.
pub const MAX_ALIASES: usize = 32;
/// Values in a parsed document (a policy with 100 alarms and 20 templates has under 1,000).
pub const MAX_VALUES: usize = 10_000;
/// Problems reported for one policy; the rest are counted.
pub const MAX_PROBLEMS: usize = 50;

/// Whether `text` is small and shallow enough to parse; the refusal says why and where.
pub(super) fn text(text: &str) -> Result<(), String> {
    if text.len() > MAX_POLICY_BYTES {
        return Err(format!(
            "the policy is {} bytes; at most {MAX_POLICY_BYTES} are accepted",
            text.len()
        ));
    }
    let mut aliases = 0;
    let mut flow = 0usize;
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        // Block nesting: indentation, and `- ` items that open a sequence on the same line.
        let rest = line.trim_start_matches(' ');
        let mut indent = line.len() - rest.len();
        let mut items = rest;
        while let Some(after) = items.strip_prefix("- ") {
            indent += 2;
            items = after.trim_start_matches(' ');
        }
        if indent > 2 * MAX_DEPTH {
            return Err(format!(
                "line {line_no} is nested {indent} columns deep; at most {} are accepted",
                2 * MAX_DEPTH
            ));
        }
        // Flow nesting (`[`, `{`) and aliases, outside quotes and comments.
        let mut quote: Option<char> = None;
        let mut previous = ' ';
        let mut escaped = false;
        for c in line.chars() {
            if escaped {
                escaped = false;
                previous = c;
                continue;
            }
            match (quote, c) {
                (Some('"'), '\\') => escaped = true,
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') => quote = Some(c),
                (None, '#') if previous.is_whitespace() => break,
                (None, '[' | '{') => {
                    flow += 1;
                    if flow > MAX_DEPTH {
                        return Err(format!(
                            "line {line_no} opens more than {MAX_DEPTH} nested [ or {{; a \
                             policy needs at most 5"
                        ));
                    }
                }
                (None, ']' | '}') => flow = flow.saturating_sub(1),
                (None, '*') if matches!(previous, ' ' | '[' | '{' | ',' | ':' | '-') => {
                    aliases += 1;
                    if aliases > MAX_ALIASES {
                        return Err(format!(
                            "line {line_no}: more than {MAX_ALIASES} YAML aliases (*name)"
                        ));
                    }
                }
                _ => {}
            }
            previous = c;
        }
    }
    Ok(())
}

/// Whether a parsed document is shallow and small enough to read: as a text would be, at most
/// `MAX_POLICY_BYTES` of strings and keys (a document handed over parsed, as a package
/// target's or a request's JSON policy is, is bounded as its text is).
pub(super) fn value(value: &Value) -> Result<(), String> {
    let mut count = 0usize;
    let mut bytes = 0usize;
    let mut stack = vec![(value, 1usize)];
    while let Some((v, depth)) = stack.pop() {
        count += 1;
        bytes += match v {
            Value::String(s) => s.len(),
            Value::Object(members) => members.keys().map(String::len).sum(),
            _ => 0,
        };
        if bytes > MAX_POLICY_BYTES {
            return Err(format!(
                "the policy holds more than {MAX_POLICY_BYTES} bytes of text; a policy needs \
                 under 4,000"
            ));
        }
        if count > MAX_VALUES {
            return Err(format!(
                "the policy holds more than {MAX_VALUES} values; a policy needs under 1,000"
            ));
        }
        if depth > MAX_DEPTH {
            return Err(format!(
                "the policy is nested more than {MAX_DEPTH} levels deep; a policy needs 5"
            ));
        }
        match v {
            Value::Array(items) => stack.extend(items.iter().map(|i| (i, depth + 1))),
            Value::Object(members) => stack.extend(members.values().map(|m| (m, depth + 1))),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_policy_passes() {
        let policy = include_str!("../../../examples/policies/canary.yaml");
        assert_eq!(text(policy), Ok(()));
        let json = include_str!("../../../examples/policies/linear.json");
        assert_eq!(text(json), Ok(()));
    }

    #[test]
    fn deep_wide_and_aliased_texts_are_refused_with_where() {
        let flow = format!("{}{}", "[".repeat(17), "]".repeat(17));
        assert!(
            text(&flow)
                .unwrap_err()
                .contains("line 1 opens more than 16 nested")
        );
        let block: String = (0..20)
            .map(|i| format!("{}a{i}:\n", "  ".repeat(i)))
            .collect();
        assert!(text(&block).unwrap_err().contains("columns deep"));
        let dashes = format!("{}x\n", "- ".repeat(20));
        assert!(
            text(&dashes)
                .unwrap_err()
                .contains("line 1 is nested 40 columns")
        );
        let aliases = format!("a: &x 1\nb: [{}]\n", vec!["*x"; 40].join(", "));
        assert!(text(&aliases).unwrap_err().contains("YAML aliases"));
        let big = "a".repeat(MAX_POLICY_BYTES + 1);
        assert!(text(&big).unwrap_err().contains("at most 65536"));
        // Brackets in quotes and comments do not count.
        assert_eq!(
            text(&format!("a: \"{}\" # {}", "[".repeat(40), "{".repeat(40))),
            Ok(())
        );
    }

    #[test]
    fn deep_or_huge_documents_are_refused() {
        let mut deep = Value::Null;
        for _ in 0..20 {
            deep = Value::Array(vec![deep]);
        }
        assert!(value(&deep).unwrap_err().contains("nested more than 16"));
        let long = serde_json::json!({ "Guardrails": { "Engine": "é".repeat(MAX_POLICY_BYTES) } });
        assert!(value(&long).unwrap_err().contains("bytes of text"));
        let wide = Value::Array(vec![Value::Null; MAX_VALUES + 1]);
        assert!(value(&wide).unwrap_err().contains("more than 10000 values"));
    }
}
