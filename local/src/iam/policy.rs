//! IAM's identity-based policy language and its evaluation, as AWS documents them ("IAM JSON
//! policy elements reference" and "Policy evaluation logic" in the IAM User Guide): statements
//! with `Effect`, `Action`/`NotAction`, `Resource`/`NotResource` and `Condition`; an explicit
//! deny wins, then any allow, else the request is implicitly denied. Actions match without
//! regard to case, resources with it; both take `*` and `?` wildcards.
//!
//! Condition operators: the string, ARN, numeric, `Bool` and `Null` families, with `IfExists`
//! and the `ForAnyValue:`/`ForAllValues:` set prefixes. Several keys under one operator must
//! all match, several values of one key are alternatives. A key missing from the request makes
//! a positive operator false and a negated one true (`...IfExists` makes it true). An operator
//! this module does not know is the strictest plausible reading: an Allow statement with it
//! never applies, a Deny statement with it always does.

use std::collections::BTreeMap;

use serde_json::Value;

/// One policy document.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub statements: Vec<Statement>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sid: Option<String>,
    pub allow: bool,
    pub actions: Matcher,
    pub resources: Matcher,
    /// `operator -> key -> values`.
    pub conditions: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

/// `Action` or `NotAction` (likewise for resources): patterns, and whether they are negated.
#[derive(Debug, Clone, PartialEq)]
pub struct Matcher {
    pub patterns: Vec<String>,
    pub not: bool,
}

/// The condition keys of one request, for one resource: `aws:ResourceTag/<k>`,
/// `aws:RequestTag/<k>`, `aws:TagKeys`, `iam:PassedToService`, ... Each key may have several
/// values.
pub type Context = BTreeMap<String, Vec<String>>;

/// The answer for one action on one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// No statement allows it.
    ImplicitDeny,
    /// A Deny statement matches.
    ExplicitDeny,
}

fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Bool(b) => Some(b.to_string()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect(),
        Some(Value::Bool(b)) => vec![b.to_string()],
        Some(Value::Number(n)) => vec![n.to_string()],
        _ => Vec::new(),
    }
}

fn matcher(statement: &Value, field: &str, not_field: &str) -> Result<Matcher, String> {
    match (statement.get(field), statement.get(not_field)) {
        (Some(v), None) => Ok(Matcher {
            patterns: strings(Some(v)),
            not: false,
        }),
        (None, Some(v)) => Ok(Matcher {
            patterns: strings(Some(v)),
            not: true,
        }),
        (Some(_), Some(_)) => Err(format!("a statement has both {field} and {not_field}")),
        (None, None) => Err(format!("a statement has neither {field} nor {not_field}")),
    }
}

impl Policy {
    /// A policy document (`{"Statement": [...]}` or `{"Statement": {...}}`), resolved: no
    /// CloudFormation functions left in it.
    pub fn parse(document: &Value) -> Result<Policy, String> {
        let statements = match document.get("Statement") {
            Some(Value::Array(items)) => items.clone(),
            Some(one @ Value::Object(_)) => vec![one.clone()],
            _ => return Err("a policy document has no Statement".to_owned()),
        };
        let mut parsed = Vec::new();
        for s in &statements {
            let allow = match s.get("Effect").and_then(Value::as_str) {
                Some("Allow") => true,
                Some("Deny") => false,
                other => return Err(format!("Effect {other:?} is not Allow or Deny")),
            };
            let mut conditions = BTreeMap::new();
            if let Some(Value::Object(ops)) = s.get("Condition") {
                for (op, keys) in ops {
                    let Value::Object(keys) = keys else {
                        return Err(format!("condition {op} is not an object of keys"));
                    };
                    let keys = keys
                        .iter()
                        .map(|(k, v)| (k.clone(), strings(Some(v))))
                        .collect();
                    conditions.insert(op.clone(), keys);
                }
            }
            parsed.push(Statement {
                sid: s.get("Sid").and_then(Value::as_str).map(str::to_owned),
                allow,
                actions: matcher(s, "Action", "NotAction")?,
                resources: matcher(s, "Resource", "NotResource")?,
                conditions,
            });
        }
        Ok(Policy { statements: parsed })
    }
}

/// `*` matches any run of characters, `?` any one.
pub fn wildcard(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = if ignore_case {
        (
            pattern.to_lowercase().chars().collect(),
            text.to_lowercase().chars().collect(),
        )
    } else {
        (pattern.chars().collect(), text.chars().collect())
    };
    // Iterative matching with backtracking to the last `*`: linear in practice.
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < t.len() {
        if i < p.len() && (p[i] == '?' || p[i] == t[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    while i < p.len() && p[i] == '*' {
        i += 1;
    }
    i == p.len()
}

impl Matcher {
    fn matches(&self, value: &str, ignore_case: bool) -> bool {
        let any = self
            .patterns
            .iter()
            .any(|p| wildcard(p, value, ignore_case));
        any != self.not
    }
}

/// One value against one policy value under a base operator; `None` for an unknown operator.
fn compare(base: &str, policy: &str, value: &str) -> Option<bool> {
    let num = |s: &str| s.parse::<f64>().ok();
    Some(match base {
        "StringEquals" | "ArnEquals" => policy == value,
        "StringEqualsIgnoreCase" => policy.eq_ignore_ascii_case(value),
        "StringLike" | "ArnLike" => wildcard(policy, value, false),
        "Bool" => policy.eq_ignore_ascii_case(value),
        "NumericEquals" => num(policy).zip(num(value)).is_some_and(|(p, v)| v == p),
        "NumericLessThan" => num(policy).zip(num(value)).is_some_and(|(p, v)| v < p),
        "NumericLessThanEquals" => num(policy).zip(num(value)).is_some_and(|(p, v)| v <= p),
        "NumericGreaterThan" => num(policy).zip(num(value)).is_some_and(|(p, v)| v > p),
        "NumericGreaterThanEquals" => num(policy).zip(num(value)).is_some_and(|(p, v)| v >= p),
        _ => return None,
    })
}

/// The positive form of a negated operator: `StringNotEquals` -> `StringEquals`.
fn positive(op: &str) -> (&str, bool) {
    for (negated, plain) in [
        ("StringNotEqualsIgnoreCase", "StringEqualsIgnoreCase"),
        ("StringNotEquals", "StringEquals"),
        ("StringNotLike", "StringLike"),
        ("ArnNotEquals", "ArnEquals"),
        ("ArnNotLike", "ArnLike"),
        ("NumericNotEquals", "NumericEquals"),
    ] {
        if op == negated {
            return (plain, true);
        }
    }
    (op, false)
}

/// Whether one condition operator holds for every key it names; `None` when the operator is
/// unknown.
fn condition_holds(
    operator: &str,
    keys: &BTreeMap<String, Vec<String>>,
    context: &Context,
) -> Option<bool> {
    let (set, op) = match operator.split_once(':') {
        Some((set @ ("ForAnyValue" | "ForAllValues"), op)) => (Some(set), op),
        Some(_) => return None,
        None => (None, operator),
    };
    let (op, if_exists) = match op.strip_suffix("IfExists") {
        Some(op) => (op, true),
        None => (op, false),
    };
    for (key, policy_values) in keys {
        // Condition keys match without regard to case.
        let present = context
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v);
        let holds = if op == "Null" {
            let is_null = present.is_none_or(Vec::is_empty);
            policy_values
                .iter()
                .any(|p| p.eq_ignore_ascii_case(&is_null.to_string()))
        } else {
            let (base, negated) = positive(op);
            match present.filter(|v| !v.is_empty()) {
                None => {
                    compare(base, "", "")?;
                    if_exists || negated || set == Some("ForAllValues")
                }
                Some(values) => {
                    let mut each = Vec::new();
                    for value in values {
                        let mut any = false;
                        for p in policy_values {
                            any |= compare(base, p, value)?;
                        }
                        each.push(any != negated);
                    }
                    match set {
                        Some("ForAllValues") => each.iter().all(|b| *b),
                        _ => each.iter().any(|b| *b),
                    }
                }
            }
        };
        if !holds {
            return Some(false);
        }
    }
    Some(true)
}

impl Statement {
    /// Whether the statement applies to `action` on `resource` with `context`.
    fn applies(&self, action: &str, resource: &str, context: &Context) -> bool {
        if !self.actions.matches(action, true) || !self.resources.matches(resource, false) {
            return false;
        }
        for (operator, keys) in &self.conditions {
            match condition_holds(operator, keys, context) {
                Some(true) => {}
                Some(false) => return false,
                // Unknown operator: the strictest plausible reading.
                None => return !self.allow,
            }
        }
        true
    }
}

/// IAM's decision for `action` on `resource` under `policies` (all of one principal).
pub fn evaluate(policies: &[Policy], action: &str, resource: &str, context: &Context) -> Decision {
    let mut allowed = false;
    for statement in policies.iter().flat_map(|p| &p.statements) {
        if statement.applies(action, resource, context) {
            if !statement.allow {
                return Decision::ExplicitDeny;
            }
            allowed = true;
        }
    }
    if allowed {
        Decision::Allowed
    } else {
        Decision::ImplicitDeny
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn policy(statements: Value) -> Vec<Policy> {
        vec![Policy::parse(&json!({ "Statement": statements })).unwrap()]
    }

    fn tag(k: &str, v: &str) -> Context {
        BTreeMap::from([(format!("aws:ResourceTag/{k}"), vec![v.to_owned()])])
    }

    #[test]
    fn wildcards_match_runs_and_single_characters() {
        assert!(wildcard(
            "endpoint-config/guardrails-*",
            "endpoint-config/guardrails-d1-green",
            false
        ));
        assert!(!wildcard(
            "endpoint-config/guardrails-*",
            "endpoint-config/fraud-v1",
            false
        ));
        assert!(wildcard(
            "sagemaker:Describe*",
            "sagemaker:DescribeEndpoint",
            false
        ));
        assert!(wildcard("a?c", "abc", false) && !wildcard("a?c", "ac", false));
        assert!(wildcard("*", "", false) && wildcard("SageMaker:*", "sagemaker:X", true));
    }

    #[test]
    fn an_allow_with_a_tag_condition_needs_the_tag_on_the_resource() {
        let p = policy(json!([{
            "Effect": "Allow", "Action": "sagemaker:UpdateEndpoint", "Resource": "arn:aws:sagemaker:*:*:endpoint/*",
            "Condition": { "StringEquals": { "aws:ResourceTag/guardrails:managed": "true" } }
        }]));
        let ep = "arn:aws:sagemaker:us-east-1:1:endpoint/e";
        let ask = |c: &Context| evaluate(&p, "sagemaker:UpdateEndpoint", ep, c);
        assert_eq!(ask(&tag("guardrails:managed", "true")), Decision::Allowed);
        assert_eq!(
            ask(&tag("guardrails:managed", "false")),
            Decision::ImplicitDeny
        );
        assert_eq!(
            ask(&Context::new()),
            Decision::ImplicitDeny,
            "an untagged resource"
        );
        let config = "arn:aws:sagemaker:us-east-1:1:endpoint-config/c";
        assert_eq!(
            evaluate(
                &p,
                "sagemaker:UpdateEndpoint",
                config,
                &tag("guardrails:managed", "true")
            ),
            Decision::ImplicitDeny,
            "the statement names endpoints only"
        );
    }

    #[test]
    fn an_explicit_deny_wins_and_not_action_excludes() {
        let p = policy(json!([
            { "Effect": "Allow", "Action": "*", "Resource": "*" },
            { "Effect": "Deny", "NotAction": "sagemaker:Describe*", "Resource": "*" }
        ]));
        assert_eq!(
            evaluate(&p, "sagemaker:DescribeEndpoint", "x", &Context::new()),
            Decision::Allowed
        );
        assert_eq!(
            evaluate(&p, "sagemaker:DeleteEndpoint", "x", &Context::new()),
            Decision::ExplicitDeny
        );
    }

    #[test]
    fn negated_operators_hold_when_the_key_is_absent_and_if_exists_too() {
        let p = policy(json!([{
            "Effect": "Allow", "Action": "s:A", "Resource": "*",
            "Condition": { "StringNotEquals": { "aws:ResourceTag/env": "prod" } }
        }]));
        assert_eq!(evaluate(&p, "s:A", "r", &Context::new()), Decision::Allowed);
        assert_eq!(
            evaluate(&p, "s:A", "r", &tag("env", "prod")),
            Decision::ImplicitDeny
        );
        let q = policy(json!([{
            "Effect": "Allow", "Action": "s:A", "Resource": "*",
            "Condition": { "StringEqualsIfExists": { "aws:ResourceTag/env": "dev" } }
        }]));
        assert_eq!(evaluate(&q, "s:A", "r", &Context::new()), Decision::Allowed);
        assert_eq!(
            evaluate(&q, "s:A", "r", &tag("env", "prod")),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn an_unknown_operator_never_allows_and_always_denies() {
        let allow = policy(
            json!([{ "Effect": "Allow", "Action": "s:A", "Resource": "*",
            "Condition": { "DateGreaterThan": { "aws:CurrentTime": "2020-01-01T00:00:00Z" } } }]),
        );
        assert_eq!(
            evaluate(&allow, "s:A", "r", &Context::new()),
            Decision::ImplicitDeny
        );
        let deny = policy(json!([
            { "Effect": "Allow", "Action": "s:A", "Resource": "*" },
            { "Effect": "Deny", "Action": "s:A", "Resource": "*",
              "Condition": { "DateGreaterThan": { "aws:CurrentTime": "2020-01-01T00:00:00Z" } } }
        ]));
        assert_eq!(
            evaluate(&deny, "s:A", "r", &Context::new()),
            Decision::ExplicitDeny
        );
    }

    #[test]
    fn set_operators_and_null_work_on_multivalued_keys() {
        let p = policy(
            json!([{ "Effect": "Allow", "Action": "s:A", "Resource": "*",
            "Condition": { "ForAllValues:StringLike": { "aws:TagKeys": ["team", "cost-*"] },
                           "Null": { "aws:RequestTag/team": "false" } } }]),
        );
        let mut c = Context::new();
        c.insert(
            "aws:TagKeys".to_owned(),
            vec!["team".to_owned(), "cost-center".to_owned()],
        );
        c.insert("aws:RequestTag/team".to_owned(), vec!["ml".to_owned()]);
        assert_eq!(evaluate(&p, "s:A", "r", &c), Decision::Allowed);
        c.insert(
            "aws:TagKeys".to_owned(),
            vec!["team".to_owned(), "owner".to_owned()],
        );
        assert_eq!(evaluate(&p, "s:A", "r", &c), Decision::ImplicitDeny);
    }
}
