//! The local stand-in for what AWS wires in the cloud, so that the local flow is the deployed
//! flow: the table and the pages topic (with an inbox queue to read pages back), EventBridge
//! rules created from the SAM template's own patterns, each delivering to an SQS queue (moto
//! cannot target Lambda) that a router drains into the function binaries running under
//! `cargo lambda watch`; plus what moto never does: firing due Scheduler wake-ups, and the
//! one-minute sweep.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_eventbridge::types::Target;
use aws_sdk_sqs::types::QueueAttributeName;
use guardrails::aws::dynamodb::DynamoStore;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the wiring created, for the environment and the demo.
#[derive(Debug, Clone)]
pub struct Wired {
    pub table: String,
    pub topic_arn: String,
    /// SQS queue subscribed to the pages topic.
    pub pages_queue_url: String,
    /// SQS queue receiving every Guardrails event (state changes and refusals).
    pub timeline_queue_url: String,
    /// Function name to the queue its rules deliver to.
    pub function_queues: BTreeMap<String, String>,
    /// The template's `FailedEventsQueue`: the on-failure destination of every function.
    pub failed_events_queue_url: String,
}

fn err(what: &str, e: impl std::fmt::Debug) -> String {
    format!("local wiring: {what}: {e:?}")
}

/// `value` with `!Ref AWS::AccountId` as the local account (event patterns name it).
pub fn resolved(value: &serde_yaml_ng::Value) -> serde_yaml_ng::Value {
    use serde_yaml_ng::Value as Y;
    match value {
        Y::Tagged(tagged)
            if tagged.tag == "Ref" && tagged.value.as_str() == Some("AWS::AccountId") =>
        {
            Y::String(crate::iam::ACCOUNT.to_owned())
        }
        Y::Sequence(items) => Y::Sequence(items.iter().map(resolved).collect()),
        Y::Mapping(map) => Y::Mapping(map.iter().map(|(k, v)| (k.clone(), resolved(v))).collect()),
        other => other.clone(),
    }
}

/// `(function binary, rule name, pattern)` for every EventBridge rule in the SAM template.
pub fn template_rules(template_yaml: &str) -> Result<Vec<(String, String, Value)>, String> {
    let template: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(template_yaml).map_err(|e| err("template.yaml", e))?;
    let mut rules = Vec::new();
    let Some(resources) = template.get("Resources").and_then(|r| r.as_mapping()) else {
        return Err("template.yaml has no Resources".to_owned());
    };
    for (name, resource) in resources {
        if resource.get("Type").and_then(|t| t.as_str()) != Some("AWS::Serverless::Function") {
            continue;
        }
        let binary = resource
            .get("Metadata")
            .and_then(|m| m.get("BuildProperties"))
            .and_then(|b| b.get("Binary"))
            .and_then(|b| b.as_str())
            .ok_or_else(|| format!("{name:?} has no Metadata.BuildProperties.Binary"))?;
        let Some(events) = resource
            .get("Properties")
            .and_then(|p| p.get("Events"))
            .and_then(|e| e.as_mapping())
        else {
            continue;
        };
        for (event, spec) in events {
            if spec.get("Type").and_then(|t| t.as_str()) != Some("CloudWatchEvent") {
                continue;
            }
            let pattern = spec
                .get("Properties")
                .and_then(|p| p.get("Pattern"))
                .ok_or_else(|| format!("{name:?}.{event:?} has no Pattern"))?;
            let pattern = serde_json::to_value(resolved(pattern)).map_err(|e| err("pattern", e))?;
            let rule = format!("{binary}-{}", event.as_str().unwrap_or("rule"));
            rules.push((binary.to_owned(), rule, pattern));
        }
    }
    Ok(rules)
}

async fn queue(sqs: &aws_sdk_sqs::Client, name: &str) -> Result<(String, String), String> {
    let url = sqs
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::VisibilityTimeout, "30")
        .send()
        .await
        .map_err(|e| err("CreateQueue", e))?
        .queue_url()
        .unwrap_or_default()
        .to_owned();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| err("GetQueueAttributes", e))?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .unwrap_or_default();
    Ok((url, arn))
}

async fn rule_to_queue(
    events: &aws_sdk_eventbridge::Client,
    rule: &str,
    pattern: &Value,
    queue_arn: &str,
) -> Result<(), String> {
    events
        .put_rule()
        .name(rule)
        .event_pattern(pattern.to_string())
        .send()
        .await
        .map_err(|e| err("PutRule", e))?;
    let target = Target::builder()
        .id("queue")
        .arn(queue_arn)
        .build()
        .map_err(|e| err("Target", e))?;
    events
        .put_targets()
        .rule(rule)
        .targets(target)
        .send()
        .await
        .map_err(|e| err("PutTargets", e))?;
    Ok(())
}

/// Creates the table, the topic, the queues and the rules on moto.
pub async fn provision(sdk: &SdkConfig, template_yaml: &str) -> Result<Wired, String> {
    let table = crate::iam::template::TABLE.to_owned();
    DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), &table)
        .create_table()
        .await
        .map_err(|e| err("CreateTable", e))?;
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let sns = aws_sdk_sns::Client::new(sdk);
    let events = aws_sdk_eventbridge::Client::new(sdk);
    let topic_arn = sns
        .create_topic()
        .name(crate::iam::template::TOPIC)
        .send()
        .await
        .map_err(|e| err("CreateTopic", e))?
        .topic_arn()
        .unwrap_or_default()
        .to_owned();
    let (pages_queue_url, pages_arn) = queue(&sqs, "guardrails-pages-inbox").await?;
    sns.subscribe()
        .topic_arn(&topic_arn)
        .protocol("sqs")
        .endpoint(pages_arn)
        .send()
        .await
        .map_err(|e| err("Subscribe", e))?;
    let (timeline_queue_url, timeline_arn) = queue(&sqs, "guardrails-timeline").await?;
    let timeline = json!({ "source": ["guardrails"], "detail-type": [
        "Guardrails Deployment State Change", "Guardrails Deployment Refused"
    ]});
    rule_to_queue(&events, "guardrails-timeline", &timeline, &timeline_arn).await?;
    let (failed_events_queue_url, _) =
        queue(&sqs, crate::iam::template::FAILED_EVENTS_QUEUE).await?;
    let mut function_queues = BTreeMap::new();
    for (function, rule, pattern) in template_rules(template_yaml)? {
        let (url, arn) = queue(&sqs, &format!("fn-{function}")).await?;
        rule_to_queue(&events, &rule, &pattern, &arn).await?;
        function_queues.insert(function, url);
    }
    Ok(Wired {
        table,
        topic_arn,
        pages_queue_url,
        timeline_queue_url,
        function_queues,
        failed_events_queue_url,
    })
}

/// Invokes `function` under `cargo lambda watch` at `lambda` (`http://127.0.0.1:9000`);
/// returns the HTTP status and body.
pub async fn invoke(lambda: &str, function: &str, payload: &str) -> Result<(u16, String), String> {
    post(
        lambda,
        &format!("/2015-03-31/functions/{function}/invocations"),
        payload,
    )
    .await
    .map_err(|e| format!("invoke {function}: {e}"))
}

/// POSTs a JSON `body` to `base` (`http://127.0.0.1:<port>`) + `path` over plain HTTP/1.1;
/// returns the status and the response body. Enough for loopback services: no TLS, no
/// chunked responses expected.
pub async fn post(base: &str, path: &str, body: &str) -> Result<(u16, String), String> {
    request("POST", base, path, body).await
}

/// GETs `base` + `path` (as `post`).
pub async fn get(base: &str, path: &str) -> Result<(u16, String), String> {
    request("GET", base, path, "").await
}

async fn request(
    method: &str,
    base: &str,
    path: &str,
    body: &str,
) -> Result<(u16, String), String> {
    send(method, base, path, &[], body).await
}

/// Sends `method` `path` to `base` with `headers` (besides `Host`, `Content-Type: application/
/// json`, `Content-Length` and `Connection: close`, unless `headers` names them).
pub async fn send(
    method: &str,
    base: &str,
    path: &str,
    headers: &[(String, String)],
    body: &str,
) -> Result<(u16, String), String> {
    let addr = base.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot reach {base}: {e}"))?;
    let named = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    if !named("host") {
        head.push_str(&format!("Host: {addr}\r\n"));
    }
    if !named("content-type") {
        head.push_str("Content-Type: application/json\r\n");
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let request = format!(
        "{head}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .map_err(|e| e.to_string())?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// `at(2026-11-27T08:52:00)` to epoch milliseconds.
pub fn parse_at(expression: &str) -> Option<i64> {
    let inner = expression.strip_prefix("at(")?.strip_suffix(')')?;
    let (date, time) = inner.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    // Howard Hinnant's days-from-civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400) + hh * 3_600 + mm * 60 + ss) * 1_000)
}

/// The event as EventBridge delivers it: moto's SQS rule targets receive events without their
/// `account` (its envelope leaves the field out), where EventBridge always names the account
/// the event came from (EventBridge User
/// Guide, "Amazon EventBridge events": `account`, "The 12-digit number identifying an AWS
/// account"). Locally every event comes from the one local account.
fn as_eventbridge_delivers(body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(mut event)
            if event.get("detail-type").is_some()
                && event
                    .get("account")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty) =>
        {
            event["account"] = Value::from(crate::iam::ACCOUNT);
            event.to_string()
        }
        _ => body.to_owned(),
    }
}

/// Where the router delivers an event: the functions under `cargo lambda watch` (`Http`), or
/// the functions' handlers in the same process (the tests).
#[async_trait::async_trait]
pub trait Invoker: Send + Sync {
    /// Invokes `function` with `payload`; the HTTP status and body of its answer.
    async fn invoke(&self, function: &str, payload: &str) -> Result<(u16, String), String>;
}

/// The functions under `cargo lambda watch` at this address (`http://127.0.0.1:9000`).
#[derive(Debug, Clone)]
pub struct Http(pub String);

#[async_trait::async_trait]
impl Invoker for Http {
    async fn invoke(&self, function: &str, payload: &str) -> Result<(u16, String), String> {
        invoke(&self.0, function, payload).await
    }
}

/// How long one `ReceiveMessage` waits for an event (SQS long polling: "ReceiveMessage",
/// `WaitTimeSeconds`, at most 20): an event is delivered as soon as it is queued, with no
/// polling interval added to what the tests measure.
pub const LONG_POLL_SECS: i32 = 20;

/// How often due wake-ups are looked for (moto's Scheduler never fires them; the router
/// stands in for it).
pub const WAKE_UP_CHECK: Duration = Duration::from_millis(100);

/// Delivers queued events to the functions as they come (one long-polling task per
/// function's queue, so that functions run at once as Lambda runs them), fires due wake-ups
/// and the sweep, until dropped.
pub async fn route(
    sdk: SdkConfig,
    wired: Wired,
    lambda: std::sync::Arc<dyn Invoker>,
    sweep: Duration,
) {
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let scheduler = aws_sdk_scheduler::Client::new(&sdk);
    // Dropped with this future: the delivering tasks stop with it.
    let mut queues = tokio::task::JoinSet::new();
    for (function, url) in wired.function_queues.clone() {
        let (sqs, lambda) = (sqs.clone(), lambda.clone());
        let failed = wired.failed_events_queue_url.clone();
        queues.spawn(async move { deliver(&sqs, &url, &failed, lambda.as_ref(), &function).await });
    }
    let mut last_sweep = tokio::time::Instant::now();
    loop {
        fire_due_wake_ups(&scheduler, lambda.as_ref()).await;
        if last_sweep.elapsed() >= sweep {
            last_sweep = tokio::time::Instant::now();
            let event = json!({
                "version": "0", "id": "local-sweep", "detail-type": "Scheduled Event",
                "source": "aws.events", "account": "123456789012", "time": "1970-01-01T00:00:00Z",
                "region": "us-east-1", "resources": [], "detail": {}
            });
            if let Err(e) = lambda.invoke("bake-watcher", &event.to_string()).await {
                eprintln!("guardrails-local: sweep: {e}");
            }
        }
        tokio::time::sleep(WAKE_UP_CHECK).await;
    }
}

/// Delivers `function`'s queue, message by message, as asynchronous invocations.
async fn deliver(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    failed_events_queue_url: &str,
    lambda: &dyn Invoker,
    function: &str,
) {
    loop {
        let received = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(LONG_POLL_SECS)
            .send()
            .await;
        let Ok(out) = received else {
            // moto not answering (starting, or stopping): try again shortly.
            tokio::time::sleep(WAKE_UP_CHECK).await;
            continue;
        };
        for message in out.messages() {
            let body = as_eventbridge_delivers(message.body().unwrap_or_default());
            invoke_async(sqs, failed_events_queue_url, lambda, function, &body).await;
            if let Some(handle) = message.receipt_handle() {
                let _ = sqs
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(handle)
                    .send()
                    .await;
            }
        }
    }
}

/// Retries of an asynchronous invocation that failed: the template's
/// `EventInvokeConfig.MaximumRetryAttempts` (Lambda's default is also 2).
pub const MAXIMUM_RETRY_ATTEMPTS: u32 = 2;

/// An asynchronous invocation, as Lambda makes one of an event EventBridge delivers (Lambda
/// Developer Guide, "Asynchronous invocation"): a failed invocation is tried again
/// `MAXIMUM_RETRY_ATTEMPTS` times (on AWS after about one, then two minutes; here at once),
/// then its invocation record goes to the on-failure destination, the failed-events queue
/// ("Capturing records of Lambda asynchronous invocations": `requestContext` with the function
/// and `condition: RetriesExhausted`, the event as `requestPayload`, the error as
/// `responsePayload`).
pub async fn invoke_async(
    sqs: &aws_sdk_sqs::Client,
    failed_events_queue_url: &str,
    lambda: &dyn Invoker,
    function: &str,
    payload: &str,
) {
    let mut error = String::new();
    for _ in 0..=MAXIMUM_RETRY_ATTEMPTS {
        match lambda.invoke(function, payload).await {
            Ok((200..=299, _)) => return,
            Ok((status, body)) => {
                eprintln!("guardrails-local: {function} answered {status}: {body}");
                error = body;
            }
            Err(e) => {
                eprintln!("guardrails-local: {e}");
                error = e;
            }
        }
    }
    let record = invocation_record(function, payload, &error, crate::now_ms());
    if let Err(e) = sqs
        .send_message()
        .queue_url(failed_events_queue_url)
        .message_body(record.to_string())
        .send()
        .await
    {
        eprintln!("guardrails-local: the failed-events queue refused a record: {e:?}");
    }
}

/// The record of an asynchronous invocation of `function` that failed every try.
pub fn invocation_record(function: &str, payload: &str, error: &str, now_ms: i64) -> Value {
    let request: Value =
        serde_json::from_str(payload).unwrap_or_else(|_| Value::String(payload.to_owned()));
    json!({
        "version": "1.0",
        "timestamp": crate::iso8601(now_ms),
        "requestContext": {
            "requestId": crate::protocol::request_id(),
            "functionArn": format!("{}:$LATEST", crate::lambda::function_arn(function)),
            "condition": "RetriesExhausted",
            "approximateInvokeCount": MAXIMUM_RETRY_ATTEMPTS + 1,
        },
        "requestPayload": request,
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled",
        },
        "responsePayload": { "errorType": "Unhandled", "errorMessage": error },
    })
}

/// Fires the schedules that are due. Their invocations are not retried here: on AWS,
/// Scheduler's own retry policy and Lambda's asynchronous retries would both apply, and a
/// missed wake-up is caught by the next (and by the sweep).
async fn fire_due_wake_ups(scheduler: &aws_sdk_scheduler::Client, lambda: &dyn Invoker) {
    let Ok(list) = scheduler.list_schedules().send().await else {
        return;
    };
    for summary in list.schedules() {
        let Some(name) = summary.name() else { continue };
        let group = summary.group_name().unwrap_or("default");
        let Ok(schedule) = scheduler
            .get_schedule()
            .name(name)
            .group_name(group)
            .send()
            .await
        else {
            continue;
        };
        let due = schedule
            .schedule_expression()
            .and_then(parse_at)
            .is_some_and(|at| at <= crate::now_ms());
        if !due {
            continue;
        }
        let input = schedule
            .target()
            .and_then(|t| t.input())
            .unwrap_or("{}")
            .to_owned();
        // A fired one-shot schedule is deleted, as ActionAfterCompletion DELETE does on AWS.
        let _ = scheduler
            .delete_schedule()
            .name(name)
            .group_name(group)
            .send()
            .await;
        if let Err(e) = lambda.invoke("bake-watcher", &input).await {
            eprintln!("guardrails-local: wake-up {name}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_expressions_parse_to_epoch_milliseconds() {
        assert_eq!(parse_at("at(2019-10-02T17:04:40)"), Some(1_570_035_880_000));
        assert_eq!(parse_at("rate(1 minute)"), None);
    }
}
