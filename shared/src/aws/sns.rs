//! SNS publish, for the pages the rollback-notifier sends to on-call.

use std::collections::BTreeMap;

use aws_sdk_sns::Client;
use aws_sdk_sns::types::MessageAttributeValue;

use super::classify;
use crate::ports::{ErrorKind, Page, Pager, PortError, PortResult};

/// SNS subjects are at most 100 characters.
const MAX_SUBJECT_CHARS: usize = 100;

/// A topic, through the SDK.
#[derive(Debug, Clone)]
pub struct SnsTopic {
    client: Client,
    topic_arn: String,
}

impl SnsTopic {
    pub fn new(client: Client, topic_arn: impl Into<String>) -> SnsTopic {
        SnsTopic {
            client,
            topic_arn: topic_arn.into(),
        }
    }

    /// Publishes one message; string attributes are for subscribers' filter policies.
    /// Returns SNS's message id.
    pub async fn publish(
        &self,
        subject: &str,
        message: &str,
        attributes: &BTreeMap<String, String>,
    ) -> PortResult<String> {
        let mut subject = subject.to_owned();
        if subject.chars().count() > MAX_SUBJECT_CHARS {
            subject = subject
                .chars()
                .take(MAX_SUBJECT_CHARS - 3)
                .collect::<String>()
                + "...";
        }
        let mut request = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(subject)
            .message(message);
        for (name, value) in attributes {
            let attribute = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| PortError::new(ErrorKind::Refused, e.to_string()))?;
            request = request.message_attributes(name, attribute);
        }
        let out = request
            .send()
            .await
            .map_err(|e| classify("sns:Publish", &e))?;
        Ok(out.message_id().unwrap_or_default().to_owned())
    }
}

#[async_trait::async_trait]
impl Pager for SnsTopic {
    async fn page(&self, page: &Page) -> PortResult<String> {
        self.publish(&page.subject, &page.body, &page.attributes)
            .await
    }
}
