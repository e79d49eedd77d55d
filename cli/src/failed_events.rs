//! `guardrails failed-events`: what landed in the failed-events queue (the template's
//! `FailedEventsQueue`), and sending it to its function again once the cause is fixed.
//!
//! Two kinds of message land there, and both name the function and hold the event:
//! - an asynchronous invocation that failed every retry, as Lambda's on-failure destination
//!   records it (Lambda Developer Guide, "Capturing records of Lambda asynchronous
//!   invocations"): `requestContext.functionArn`, `requestContext.condition`, the event as
//!   `requestPayload`, the error as `responsePayload`;
//! - an event EventBridge could not deliver to its target, as a rule's dead-letter queue
//!   receives it (EventBridge User Guide, "Using dead-letter queues to process undelivered
//!   events"): the event itself as the body, the function in the `TARGET_ARN` attribute and
//!   the error in `ERROR_CODE` and `ERROR_MESSAGE`.
//!
//! A redrive invokes the function synchronously with the event, as it was delivered, and
//! deletes the message only when the function succeeded; a message that fails again stays in
//! the queue.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use serde_json::{Value, json};

/// The most messages one ReceiveMessage returns (SQS API reference, `MaxNumberOfMessages`).
const BATCH: i32 = 10;

/// A message of the failed-events queue, read.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedEvent {
    pub message_id: String,
    /// The function the event was for (an ARN, perhaps with its `$LATEST` qualifier).
    pub function: String,
    /// The event, as the function received it.
    pub event: Value,
    /// Why it landed here, in AWS's words.
    pub why: String,
    /// `lambda` (an invocation record) or `eventbridge` (a dead-letter message).
    pub kind: &'static str,
    pub receive_count: u32,
}

/// Reads a message's body and attributes; an error says what is missing.
pub fn read(
    message_id: &str,
    body: &str,
    attributes: &HashMap<String, String>,
    receive_count: u32,
) -> Result<FailedEvent, String> {
    let value: Value = serde_json::from_str(body)
        .map_err(|e| format!("message {message_id}: the body is not JSON: {e}"))?;
    if let Some(target) = attributes.get("TARGET_ARN") {
        let code = attributes.get("ERROR_CODE").map_or("", String::as_str);
        let message = attributes.get("ERROR_MESSAGE").map_or("", String::as_str);
        return Ok(FailedEvent {
            message_id: message_id.to_owned(),
            function: target.clone(),
            event: value,
            why: format!("EventBridge could not deliver it: {code} {message}")
                .trim_end()
                .to_owned(),
            kind: "eventbridge",
            receive_count,
        });
    }
    let context = value.get("requestContext").ok_or_else(|| {
        format!(
            "message {message_id}: neither an invocation record (requestContext) nor a \
             dead-letter message (TARGET_ARN)"
        )
    })?;
    let function = context
        .get("functionArn")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("message {message_id}: requestContext has no functionArn"))?;
    let event = value
        .get("requestPayload")
        .cloned()
        .ok_or_else(|| format!("message {message_id}: the record has no requestPayload"))?;
    let condition = context
        .get("condition")
        .and_then(Value::as_str)
        .unwrap_or("failed");
    let error = value
        .pointer("/responsePayload/errorMessage")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let tries = context
        .get("approximateInvokeCount")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    Ok(FailedEvent {
        message_id: message_id.to_owned(),
        function: function.to_owned(),
        event,
        why: format!("{condition} after {tries} tries: {error}"),
        kind: "lambda",
        receive_count,
    })
}

/// The function's name from its ARN (`guardrails-bake-watcher`), for people.
pub fn function_name(function: &str) -> &str {
    let name = function.strip_suffix(":$LATEST").unwrap_or(function);
    name.rsplit(':').next().unwrap_or(name)
}

/// One line per event: the message, the function, why; or the JSON array.
pub fn render(events: &[FailedEvent], unreadable: &[String], as_json: bool) -> String {
    if as_json {
        let list: Vec<Value> = events
            .iter()
            .map(|e| {
                json!({
                    "messageId": e.message_id, "function": e.function, "kind": e.kind,
                    "why": e.why, "receiveCount": e.receive_count, "event": e.event,
                })
            })
            .collect();
        let out = json!({ "events": list, "unreadable": unreadable });
        return serde_json::to_string_pretty(&out).unwrap_or_default() + "\n";
    }
    let mut out = String::new();
    if events.is_empty() && unreadable.is_empty() {
        out.push_str("no failed events\n");
    }
    for e in events {
        let detail_type = e
            .event
            .get("detail-type")
            .and_then(Value::as_str)
            .unwrap_or("event");
        out.push_str(&format!(
            "{}  {}  {detail_type}  {}\n",
            e.message_id,
            function_name(&e.function),
            e.why
        ));
    }
    for u in unreadable {
        out.push_str(&format!("unreadable: {u}\n"));
    }
    out
}

/// The clients, from the standard credential chain (`--profile`, `--region`, the
/// `AWS_ENDPOINT_URL*` variables).
pub async fn clients(
    profile: Option<&str>,
    region: Option<&str>,
) -> (aws_sdk_sqs::Client, aws_sdk_lambda::Client) {
    let config = crate::remote::sdk_config(profile, region).await;
    (
        aws_sdk_sqs::Client::new(&config),
        aws_sdk_lambda::Client::new(&config),
    )
}

type Received = (Vec<(FailedEvent, String)>, Vec<String>);

/// One ReceiveMessage: the events read (with their receipt handles) and what could not be read.
async fn receive(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    visibility_secs: i32,
) -> Result<Received, String> {
    let out = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(BATCH)
        .visibility_timeout(visibility_secs)
        // Long polling, so that one answer is not a sample of SQS's servers that misses some.
        .wait_time_seconds(1)
        .message_attribute_names("All")
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .send()
        .await
        .map_err(|e| format!("sqs:ReceiveMessage on {queue_url}: {}", error_text(&e)))?;
    let mut events = Vec::new();
    let mut unreadable = Vec::new();
    for message in out.messages() {
        let id = message.message_id().unwrap_or_default();
        let attributes: HashMap<String, String> = message
            .message_attributes()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.string_value()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        let count = message
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        match read(id, message.body().unwrap_or_default(), &attributes, count) {
            Ok(event) => events.push((
                event,
                message.receipt_handle().unwrap_or_default().to_owned(),
            )),
            Err(e) => unreadable.push(e),
        }
    }
    Ok((events, unreadable))
}

/// The messages in the queue, left there (received with a visibility timeout of 0, until a
/// receive brings nothing new), each with its latest receipt handle.
pub async fn list(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Result<Received, String> {
    let mut seen: BTreeMap<String, (FailedEvent, String)> = BTreeMap::new();
    let mut unreadable = Vec::new();
    loop {
        let (events, bad) = receive(sqs, queue_url, 0).await?;
        let before = seen.len();
        for (event, handle) in events {
            // The latest receipt handle is the one DeleteMessage takes (SQS API reference).
            seen.insert(event.message_id.clone(), (event, handle));
        }
        for b in bad {
            if !unreadable.contains(&b) {
                unreadable.push(b);
            }
        }
        if seen.len() == before {
            return Ok((seen.into_values().collect(), unreadable));
        }
    }
}

/// The outcome of redriving one event.
#[derive(Debug, Clone, PartialEq)]
pub struct Redriven {
    pub event: FailedEvent,
    /// `None` when the function succeeded (the message was deleted); the error otherwise.
    pub failed: Option<String>,
}

/// Sends every event of the queue to its function again, once; deletes those it took. The
/// messages are read as `list` reads them, so one that fails again stays visible for the next
/// try; two people redriving at once may deliver an event twice, which Guardrails' functions
/// take as the duplicate it is (a repeated event changes nothing).
pub async fn redrive(
    sqs: &aws_sdk_sqs::Client,
    lambda: &aws_sdk_lambda::Client,
    queue_url: &str,
) -> Result<(Vec<Redriven>, Vec<String>), String> {
    let (events, unreadable) = list(sqs, queue_url).await?;
    let mut done = Vec::new();
    for (event, handle) in events {
        let failed = invoke(lambda, &event).await.err();
        if failed.is_none() {
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(handle)
                .send()
                .await
                .map_err(|e| format!("sqs:DeleteMessage: {}", error_text(&e)))?;
        }
        done.push(Redriven { event, failed });
    }
    Ok((done, unreadable))
}

async fn invoke(lambda: &aws_sdk_lambda::Client, event: &FailedEvent) -> Result<(), String> {
    let out = lambda
        .invoke()
        .function_name(&event.function)
        .payload(Blob::new(event.event.to_string()))
        .send()
        .await
        .map_err(|e| format!("lambda:Invoke: {}", error_text(&e)))?;
    match out.function_error() {
        None => Ok(()),
        Some(kind) => {
            let payload = out
                .payload()
                .map(|p| String::from_utf8_lossy(p.as_ref()).into_owned())
                .unwrap_or_default();
            Err(format!("the function failed again ({kind}): {payload}"))
        }
    }
}

/// An SDK error as AWS words it: its code and message, else the error's own text.
fn error_text<E, R>(e: &aws_sdk_sqs::error::SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match (e.code(), e.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        _ => format!("{}", aws_sdk_sqs::error::DisplayErrorContext(e)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn an_invocation_record_names_the_function_the_event_and_the_error() {
        // The example of Lambda's Developer Guide, with a Guardrails event.
        let body = json!({
            "version": "1.0",
            "timestamp": "2019-11-14T18:16:05.568Z",
            "requestContext": {
                "requestId": "e4b46cbf-b738-xmpl-8880-a18cdf61200e",
                "functionArn": "arn:aws:lambda:us-east-2:123456789012:function:guardrails-endpoint-events:$LATEST",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": 3
            },
            "requestPayload": { "detail-type": "SageMaker Endpoint State Change", "detail": {} },
            "responseContext": { "statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled" },
            "responsePayload": { "errorMessage": "RequestId: e4b46cbf Process exited before completing request" }
        });
        let e = read("m1", &body.to_string(), &HashMap::new(), 1).unwrap();
        assert_eq!(function_name(&e.function), "guardrails-endpoint-events");
        assert_eq!(e.event["detail-type"], "SageMaker Endpoint State Change");
        assert_eq!(
            e.why,
            "RetriesExhausted after 3 tries: RequestId: e4b46cbf Process exited before completing request"
        );
        assert_eq!(e.kind, "lambda");
    }

    #[test]
    fn a_dead_letter_message_is_the_event_with_its_target_in_the_attributes() {
        let attributes = HashMap::from([
            (
                "TARGET_ARN".to_owned(),
                "arn:aws:lambda:us-east-1:123456789012:function:guardrails-bake-watcher".to_owned(),
            ),
            ("ERROR_CODE".to_owned(), "SDK_CLIENT_ERROR".to_owned()),
            (
                "ERROR_MESSAGE".to_owned(),
                "Unable to invoke Lambda function".to_owned(),
            ),
        ]);
        let body = json!({ "detail-type": "CloudWatch Alarm State Change", "detail": {} });
        let e = read("m2", &body.to_string(), &attributes, 2).unwrap();
        assert_eq!(function_name(&e.function), "guardrails-bake-watcher");
        assert_eq!(
            e.why,
            "EventBridge could not deliver it: SDK_CLIENT_ERROR Unable to invoke Lambda function"
        );
        let text = render(&[e], &[], false);
        assert!(text.starts_with("m2  guardrails-bake-watcher  CloudWatch Alarm State Change  EventBridge could not deliver it"), "{text}");
    }

    #[test]
    fn anything_else_is_unreadable_with_a_reason() {
        assert!(
            read("m3", "not json", &HashMap::new(), 1)
                .unwrap_err()
                .contains("not JSON")
        );
        assert!(
            read("m4", "{}", &HashMap::new(), 1)
                .unwrap_err()
                .contains("neither an invocation record")
        );
    }
}
