//! Composite alarms (CloudWatch API reference, PutCompositeAlarm): an `AlarmRule` over the
//! states of other alarms, `ALARM("name")`, `OK("name")`, `INSUFFICIENT_DATA("name")` (the
//! name, or the alarm's ARN, quoted or not), `TRUE`, `FALSE`, combined with `AND`, `OR`, `NOT`
//! and parentheses. Its state is the rule's value: ALARM when true, OK when false, re-judged
//! whenever the alarms it names change. The reason texts are ours; `StateReasonData` lists the
//! alarms that made the rule true (`triggeringAlarms`), as AWS's does.

use serde_json::json;

use crate::events::Outgoing;
use crate::iso8601;

/// A parsed `AlarmRule`.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    Const(bool),
    /// The alarm `name` is in `state`.
    State {
        state: &'static str,
        name: String,
    },
    Not(Box<Rule>),
    And(Vec<Rule>),
    Or(Vec<Rule>),
}

/// One composite alarm.
#[derive(Debug, Clone)]
pub struct Composite {
    pub name: String,
    pub rule_text: String,
    pub rule: Rule,
    pub description: String,
    pub state: &'static str,
    pub reason: String,
    pub reason_data: String,
    pub updated: crate::Ms,
    pub history: Vec<super::alarm::StateUpdate>,
}

/// `arn:aws:cloudwatch:<region>:<account>:alarm:<name>` or a name, to the name.
fn alarm_name(text: &str) -> String {
    text.rsplit_once(":alarm:")
        .map_or(text, |(_, name)| name)
        .to_owned()
}

struct Parser<'a> {
    text: &'a str,
    at: usize,
}

impl Parser<'_> {
    fn skip(&mut self) {
        while self.text[self.at..].starts_with(char::is_whitespace) {
            self.at += 1;
        }
    }

    fn word(&mut self, word: &str) -> bool {
        self.skip();
        let rest = &self.text[self.at..];
        let boundary = rest[word.len().min(rest.len())..]
            .chars()
            .next()
            .is_none_or(|c| !c.is_ascii_alphanumeric() && c != '_');
        if rest.len() >= word.len() && rest[..word.len()].eq_ignore_ascii_case(word) && boundary {
            self.at += word.len();
            return true;
        }
        false
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        self.skip();
        if self.text[self.at..].starts_with(c) {
            self.at += c.len_utf8();
            Ok(())
        } else {
            Err(format!("expected '{c}' at character {}", self.at + 1))
        }
    }

    fn or(&mut self) -> Result<Rule, String> {
        let mut parts = vec![self.and()?];
        while self.word("OR") {
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Rule::Or(parts)
        })
    }

    fn and(&mut self) -> Result<Rule, String> {
        let mut parts = vec![self.unary()?];
        while self.word("AND") {
            parts.push(self.unary()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Rule::And(parts)
        })
    }

    fn unary(&mut self) -> Result<Rule, String> {
        if self.word("NOT") {
            return Ok(Rule::Not(Box::new(self.unary()?)));
        }
        self.skip();
        if self.text[self.at..].starts_with('(') {
            self.at += 1;
            let inner = self.or()?;
            self.expect(')')?;
            return Ok(inner);
        }
        if self.word("TRUE") {
            return Ok(Rule::Const(true));
        }
        if self.word("FALSE") {
            return Ok(Rule::Const(false));
        }
        for state in ["INSUFFICIENT_DATA", "ALARM", "OK"] {
            if self.word(state) {
                self.expect('(')?;
                self.skip();
                let rest = &self.text[self.at..];
                let (name, used) = if let Some(quoted) = rest.strip_prefix('"') {
                    let end = quoted
                        .find('"')
                        .ok_or_else(|| "an alarm name's quote is not closed".to_owned())?;
                    (&quoted[..end], end + 2)
                } else {
                    let end = rest.find(')').unwrap_or(rest.len());
                    (rest[..end].trim(), end)
                };
                self.at += used;
                self.expect(')')?;
                return Ok(Rule::State {
                    state,
                    name: alarm_name(name),
                });
            }
        }
        Err(format!(
            "expected ALARM, OK, INSUFFICIENT_DATA, TRUE, FALSE, NOT or '(' at character {}",
            self.at + 1
        ))
    }
}

/// Parses an `AlarmRule`; the error says what is wrong and where.
pub fn parse(text: &str) -> Result<Rule, String> {
    let mut p = Parser { text, at: 0 };
    let rule = p.or()?;
    p.skip();
    if p.at < text.len() {
        return Err(format!("unexpected text at character {}", p.at + 1));
    }
    Ok(rule)
}

impl Rule {
    /// The rule's value, given each alarm's state (`None`: no such alarm, which is never in
    /// any state).
    pub fn holds(&self, state_of: &dyn Fn(&str) -> Option<&'static str>) -> bool {
        match self {
            Rule::Const(b) => *b,
            Rule::State { state, name } => state_of(name) == Some(*state),
            Rule::Not(inner) => !inner.holds(state_of),
            Rule::And(parts) => parts.iter().all(|p| p.holds(state_of)),
            Rule::Or(parts) => parts.iter().any(|p| p.holds(state_of)),
        }
    }

    /// The alarms the rule names.
    pub fn names(&self) -> Vec<&str> {
        match self {
            Rule::Const(_) => Vec::new(),
            Rule::State { name, .. } => vec![name.as_str()],
            Rule::Not(inner) => inner.names(),
            Rule::And(parts) | Rule::Or(parts) => parts.iter().flat_map(Rule::names).collect(),
        }
    }
}

impl Composite {
    /// The state the rule calls for, with a reason and `StateReasonData`.
    pub fn judge(
        &self,
        state_of: &dyn Fn(&str) -> Option<&'static str>,
    ) -> (&'static str, String, String) {
        let value = self.rule.holds(state_of);
        let triggering: Vec<String> = self
            .rule
            .names()
            .into_iter()
            .filter(|n| state_of(n) == Some("ALARM"))
            .map(|n| crate::iam::arn("cloudwatch", &format!("alarm:{n}")))
            .collect();
        let state = if value { "ALARM" } else { "OK" };
        let reason = if value {
            format!(
                "The composite alarm rule {} is true; alarms in ALARM: {}",
                self.rule_text,
                if triggering.is_empty() {
                    "none".to_owned()
                } else {
                    triggering.join(", ")
                }
            )
        } else {
            format!("The composite alarm rule {} is false", self.rule_text)
        };
        let data = json!({ "triggeringAlarms": triggering.iter().map(|a| json!({ "arn": a })).collect::<Vec<_>>() })
            .to_string();
        (state, reason, data)
    }
}

/// Moves `c` to `state` and returns its "CloudWatch Alarm State Change" event (with the rule in
/// `configuration`), if the state changed.
pub fn change_state(
    c: &mut Composite,
    state: &'static str,
    reason: String,
    data: String,
    now: crate::Ms,
) -> Option<Outgoing> {
    if c.state == state {
        return None;
    }
    let previous = json!({
        "value": c.state, "reason": c.reason, "reasonData": c.reason_data,
        "timestamp": iso8601(c.updated),
    });
    c.history.push(super::alarm::StateUpdate {
        at: now,
        from: c.state,
        to: state,
        from_reason: c.reason.clone(),
        reason: reason.clone(),
    });
    c.state = state;
    c.reason = reason;
    c.reason_data = data;
    c.updated = now;
    let detail = json!({
        "alarmName": c.name,
        "state": { "value": state, "reason": c.reason, "reasonData": c.reason_data, "timestamp": iso8601(now) },
        "previousState": previous,
        "configuration": { "alarmRule": c.rule_text, "description": c.description },
    });
    let arn = crate::iam::arn("cloudwatch", &format!("alarm:{}", c.name));
    Some(Outgoing::alarm_state(arn, detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn states(name: &str) -> Option<&'static str> {
        match name {
            "errors" => Some("ALARM"),
            "latency" => Some("OK"),
            "new" => Some("INSUFFICIENT_DATA"),
            _ => None,
        }
    }

    #[test]
    fn rules_parse_and_hold_as_cloudwatch_documents_them() {
        let cases = [
            (r#"ALARM("errors")"#, true),
            (r#"ALARM(errors) AND OK("latency")"#, true),
            (
                r#"ALARM("arn:aws:cloudwatch:us-east-1:123456789012:alarm:latency") OR FALSE"#,
                false,
            ),
            (r#"NOT (ALARM("errors") AND ALARM("latency"))"#, true),
            (r#"INSUFFICIENT_DATA("new") and TRUE"#, true),
            (r#"ALARM("gone")"#, false),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text).unwrap().holds(&states), expected, "{text}");
        }
        for bad in [
            r#"ALARM("errors""#,
            "SOMETIMES(x)",
            r#"ALARM("a") XOR ALARM("b")"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
