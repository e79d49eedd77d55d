//! Metric math, as far as alarms and GetMetricData use it here (CloudWatch User Guide, "Using
//! metric math"): queries that each name a metric and a statistic (`MetricStat`) or an
//! arithmetic `Expression` over other queries' ids and numbers (`+ - * /`, parentheses). One
//! query returns the series (`ReturnData`). Functions (`SUM(METRICS())`, `IF`, ...) are refused
//! by this emulator, naming the function: a known difference from CloudWatch.

use serde_json::Value;

use super::{MetricKey, Stat, dimensions};

/// One query of a metric-math alarm or request.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub id: String,
    pub source: QuerySource,
    pub return_data: bool,
    pub label: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum QuerySource {
    Metric {
        key: MetricKey,
        stat: Stat,
        period_ms: i64,
        /// As given, for DescribeAlarms.
        stat_name: String,
    },
    Expression {
        text: String,
        expr: Expr,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Number(f64),
    Id(String),
    Binary(Box<Expr>, char, Box<Expr>),
    Negate(Box<Expr>),
}

struct Parser<'a> {
    chars: Vec<char>,
    at: usize,
    text: &'a str,
}

impl Parser<'_> {
    fn skip(&mut self) {
        while self.chars.get(self.at).is_some_and(|c| c.is_whitespace()) {
            self.at += 1;
        }
    }

    fn sum(&mut self) -> Result<Expr, String> {
        let mut left = self.product()?;
        loop {
            self.skip();
            match self.chars.get(self.at) {
                Some(&op @ ('+' | '-')) => {
                    self.at += 1;
                    left = Expr::Binary(Box::new(left), op, Box::new(self.product()?));
                }
                _ => return Ok(left),
            }
        }
    }

    fn product(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        loop {
            self.skip();
            match self.chars.get(self.at) {
                Some(&op @ ('*' | '/')) => {
                    self.at += 1;
                    left = Expr::Binary(Box::new(left), op, Box::new(self.unary()?));
                }
                _ => return Ok(left),
            }
        }
    }

    fn unary(&mut self) -> Result<Expr, String> {
        self.skip();
        match self.chars.get(self.at) {
            Some('-') => {
                self.at += 1;
                Ok(Expr::Negate(Box::new(self.unary()?)))
            }
            Some('(') => {
                self.at += 1;
                let inner = self.sum()?;
                self.skip();
                if self.chars.get(self.at) != Some(&')') {
                    return Err(format!("a ')' is missing in {:?}", self.text));
                }
                self.at += 1;
                Ok(inner)
            }
            Some(c) if c.is_ascii_digit() || *c == '.' => {
                let start = self.at;
                while self
                    .chars
                    .get(self.at)
                    .is_some_and(|c| c.is_ascii_digit() || *c == '.')
                {
                    self.at += 1;
                }
                let number: String = self.chars[start..self.at].iter().collect();
                number
                    .parse()
                    .map(Expr::Number)
                    .map_err(|_| format!("{number:?} is not a number"))
            }
            Some(c) if c.is_ascii_alphabetic() => {
                let start = self.at;
                while self
                    .chars
                    .get(self.at)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
                {
                    self.at += 1;
                }
                let name: String = self.chars[start..self.at].iter().collect();
                self.skip();
                if self.chars.get(self.at) == Some(&'(') {
                    return Err(format!(
                        "the local CloudWatch does not evaluate the metric math function {name}"
                    ));
                }
                Ok(Expr::Id(name))
            }
            _ => Err(format!(
                "the expression {:?} is not arithmetic over query ids at character {}",
                self.text,
                self.at + 1
            )),
        }
    }
}

/// Parses an arithmetic `Expression`.
pub fn parse(text: &str) -> Result<Expr, String> {
    let mut p = Parser {
        chars: text.chars().collect(),
        at: 0,
        text,
    };
    let expr = p.sum()?;
    p.skip();
    if p.at < p.chars.len() {
        return Err(format!("unexpected text in the expression {text:?}"));
    }
    Ok(expr)
}

impl Expr {
    /// The value given each id's value; `None` when an id has no value (no data).
    pub fn value(&self, of: &dyn Fn(&str) -> Option<f64>) -> Option<f64> {
        Some(match self {
            Expr::Number(n) => *n,
            Expr::Id(id) => of(id)?,
            Expr::Negate(e) => -e.value(of)?,
            Expr::Binary(a, op, b) => {
                let (a, b) = (a.value(of)?, b.value(of)?);
                match op {
                    '+' => a + b,
                    '-' => a - b,
                    '*' => a * b,
                    _ if b == 0.0 => return None,
                    _ => a / b,
                }
            }
        })
    }
}

/// The queries of `Metrics` (PutMetricAlarm) or `MetricDataQueries` (GetMetricData); an error
/// is CloudWatch's validation message.
pub fn queries(list: &[Value]) -> Result<Vec<Query>, String> {
    let mut out = Vec::new();
    for q in list {
        let id = q
            .get("Id")
            .and_then(Value::as_str)
            .ok_or("every metric query needs an Id")?
            .to_owned();
        let source = if let Some(ms) = q.get("MetricStat") {
            let metric = ms.get("Metric").ok_or("MetricStat needs a Metric")?;
            let field = |f: &str| {
                metric
                    .get(f)
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or(format!("MetricStat.Metric needs {f}"))
            };
            let key = (
                field("Namespace")?,
                field("MetricName")?,
                dimensions(metric.get("Dimensions")),
            );
            let stat_name = ms
                .get("Stat")
                .and_then(Value::as_str)
                .ok_or("MetricStat needs a Stat")?
                .to_owned();
            let stat = Stat::parse(&stat_name).ok_or(format!("unknown statistic {stat_name}"))?;
            let period_ms = ms.get("Period").and_then(Value::as_i64).unwrap_or(60) * 1_000;
            QuerySource::Metric {
                key,
                stat,
                period_ms,
                stat_name,
            }
        } else if let Some(e) = q.get("Expression").and_then(Value::as_str) {
            QuerySource::Expression {
                text: e.to_owned(),
                expr: parse(e)?,
            }
        } else {
            return Err(format!("query {id} needs a MetricStat or an Expression"));
        };
        out.push(Query {
            id,
            source,
            return_data: q.get("ReturnData").and_then(Value::as_bool).unwrap_or(true),
            label: q.get("Label").and_then(Value::as_str).map(str::to_owned),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_over_ids_evaluates_and_functions_are_named_when_refused() {
        let e = parse("100 * errors / (requests - 0)").unwrap();
        let v = e.value(&|id| match id {
            "errors" => Some(3.0),
            "requests" => Some(60.0),
            _ => None,
        });
        assert_eq!(v, Some(5.0));
        assert_eq!(e.value(&|_| None), None, "no data, no value");
        assert_eq!(
            parse("a/b").unwrap().value(&|_| Some(0.0)),
            None,
            "0/0 is no value"
        );
        assert!(
            parse("SUM(METRICS())")
                .unwrap_err()
                .contains("function SUM")
        );
        assert!(parse("a +").is_err());
    }
}
