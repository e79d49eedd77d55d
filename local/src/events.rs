//! Events the emulated services send to EventBridge, as AWS shapes them. They are kept in a
//! log (readable through the control API) and, when an EventBridge endpoint is configured (the
//! local moto), published there with PutEvents so that rules route them like on AWS.

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use serde_json::Value;

use crate::sagemaker::Endpoint;

/// One event to publish.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Outgoing {
    pub source: String,
    pub detail_type: String,
    pub resources: Vec<String>,
    pub detail: Value,
}

impl Outgoing {
    /// "SageMaker Endpoint State Change".
    pub fn endpoint_state(endpoint: &Endpoint) -> Outgoing {
        let detail = endpoint.event_detail();
        let arn = detail
            .get("EndpointArn")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        Outgoing {
            source: "aws.sagemaker".to_owned(),
            detail_type: "SageMaker Endpoint State Change".to_owned(),
            resources: vec![arn],
            detail,
        }
    }

    /// "SageMaker Endpoint Deployment State Change": DescribeEndpoint's view of a deployment
    /// SageMaker runs, with `PendingDeploymentSummary` and `VariantStatus`.
    pub fn deployment_state(endpoint: &Endpoint) -> Outgoing {
        let detail = endpoint.deployment_detail();
        let arn = detail
            .get("EndpointArn")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        Outgoing {
            source: "aws.sagemaker".to_owned(),
            detail_type: "SageMaker Endpoint Deployment State Change".to_owned(),
            resources: vec![arn],
            detail,
        }
    }

    /// "CloudWatch Alarm State Change".
    pub fn alarm_state(alarm_arn: String, detail: Value) -> Outgoing {
        Outgoing {
            source: "aws.cloudwatch".to_owned(),
            detail_type: "CloudWatch Alarm State Change".to_owned(),
            resources: vec![alarm_arn],
            detail,
        }
    }
}

/// Sends events to EventBridge.
#[derive(Debug, Clone)]
pub struct Publisher {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl Publisher {
    pub fn new(client: aws_sdk_eventbridge::Client, bus: String) -> Publisher {
        Publisher { client, bus }
    }

    /// PutEvents in batches of 10 (the API's limit). A failure is reported on stderr and the
    /// events are dropped: EventBridge delivery is not guaranteed on AWS either, and Guardrails
    /// must converge without them.
    pub async fn publish(&self, events: &[Outgoing]) {
        for batch in events.chunks(10) {
            let entries: Vec<PutEventsRequestEntry> = batch
                .iter()
                .map(|e| {
                    PutEventsRequestEntry::builder()
                        .source(&e.source)
                        .detail_type(&e.detail_type)
                        .set_resources(Some(e.resources.clone()))
                        .detail(e.detail.to_string())
                        .event_bus_name(&self.bus)
                        .build()
                })
                .collect();
            let sent = self
                .client
                .put_events()
                .set_entries(Some(entries))
                .send()
                .await;
            if let Err(e) = sent {
                eprintln!("guardrails-local: PutEvents failed: {e:?}");
            }
        }
    }
}
