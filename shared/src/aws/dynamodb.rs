//! The `Store` on DynamoDB: one table keyed by endpoint.
//!
//! | item | `pk` | `sk` | other attributes |
//! | --- | --- | --- | --- |
//! | active deployment (at most one per endpoint) | `ENDPOINT#<endpoint>` | `ACTIVE` | `deployment_id`, `version`, `record` (JSON), `active_endpoint` (the sparse index's key) |
//! | past deployment | `ENDPOINT#<endpoint>` | `HISTORY#<started ms, 15 digits>#<id>` | `deployment_id`, `phase`, `record` |
//! | audit entry (append-only) | `ENDPOINT#<endpoint>` | `AUDIT#<id>#<sequence, 6 digits>` | `deployment_id`, `at`, `cause`, `entry` (JSON) |
//! | deployment id (unique in the account: a request runs once, and no two endpoints share the names made from an id) | `DEPLOYMENT#<id>` | `ID` | `endpoint`, `started_at` (epoch ms) |
//! | page about the outcome | `ENDPOINT#<endpoint>` | `PAGE#<id>` | `page_status` (`claimed`, `sent`), `claimed_at`, `message_id`, `subject`, `sent_at` |
//! | alarm index: an alarm an active deployment watches | `ALARM#<alarm name>` | `ENDPOINT#<endpoint>` | `endpoint`, `deployment_id` |
//!
//! Every write is conditional: creating the active item requires that none exists (one active
//! deployment per endpoint), saving it requires the version that was loaded, and audit items
//! may not already exist; a record and its audit entries are written in one transaction. The
//! global secondary index `active` (partition key `active_endpoint`) holds only active items,
//! so the sweep reads just those. The alarm index items are written in the transaction that
//! creates the active item and deleted in the one that archives it, so that an alarm's state
//! change queries the deployments watching it instead of reading every active one.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, Delete, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, Projection, ProjectionType, Put, ScalarAttributeType,
    TransactWriteItem,
};

use super::classify;
use crate::events::StateChange;
use crate::ports::{
    AuditEntry, ErrorKind, PageClaim, PortError, PortResult, SentPage, Store, Stored, id_taken,
};
use crate::units::Timestamp;

/// The sparse index of active deployments.
pub const ACTIVE_INDEX: &str = "active";
/// The sparse index of rollbacks and failures not yet paged about.
pub const UNPAGED_INDEX: &str = "unpaged";
/// DynamoDB's limit on items in one transaction.
const MAX_TRANSACTION_ITEMS: usize = 100;
/// DynamoDB's limit on keys in one `BatchGetItem` ("BatchGetItem": "up to 100 items").
const MAX_BATCH_GET_KEYS: usize = 100;
/// How many times keys `BatchGetItem` left unprocessed are asked for again before they are
/// read one by one.
const BATCH_GET_RETRIES: usize = 3;

/// The deployments table.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn pk(endpoint: &str) -> AttributeValue {
    s(format!("ENDPOINT#{endpoint}"))
}

fn alarm_pk(alarm_name: &str) -> AttributeValue {
    s(format!("ALARM#{alarm_name}"))
}

fn active_key(endpoint: &str) -> std::collections::HashMap<String, AttributeValue> {
    [
        ("pk".to_owned(), pk(endpoint)),
        ("sk".to_owned(), s("ACTIVE")),
    ]
    .into()
}

fn invalid(message: String) -> PortError {
    PortError::new(ErrorKind::Refused, message)
}

fn json<T: serde::Serialize>(value: &T) -> PortResult<String> {
    serde_json::to_string(value).map_err(|e| invalid(format!("cannot encode the record: {e}")))
}

fn build<T>(built: Result<T, aws_sdk_dynamodb::error::BuildError>) -> PortResult<T> {
    built.map_err(|e| invalid(format!("cannot build the request: {e}")))
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> DynamoStore {
        DynamoStore {
            client,
            table: table.into(),
        }
    }

    /// Creates the table with its index (for the local stack and tests; on AWS the SAM
    /// template creates it, with point-in-time recovery and encryption).
    pub async fn create_table(&self) -> PortResult<()> {
        let key = |name: &str, kind: KeyType| {
            build(
                KeySchemaElement::builder()
                    .attribute_name(name)
                    .key_type(kind)
                    .build(),
            )
        };
        let attribute = |name: &str| {
            build(
                AttributeDefinition::builder()
                    .attribute_name(name)
                    .attribute_type(ScalarAttributeType::S)
                    .build(),
            )
        };
        let index = build(
            GlobalSecondaryIndex::builder()
                .index_name(ACTIVE_INDEX)
                .key_schema(key("active_endpoint", KeyType::Hash)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::KeysOnly)
                        .build(),
                )
                .build(),
        )?;
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .attribute_definitions(attribute("pk")?)
            .attribute_definitions(attribute("sk")?)
            .attribute_definitions(attribute("active_endpoint")?)
            .attribute_definitions(attribute("unpaged_endpoint")?)
            .global_secondary_indexes(index)
            .global_secondary_indexes(build(
                GlobalSecondaryIndex::builder()
                    .index_name(UNPAGED_INDEX)
                    .key_schema(key("unpaged_endpoint", KeyType::Hash)?)
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::KeysOnly)
                            .build(),
                    )
                    .build(),
            )?)
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(e) if format!("{e:?}").contains("ResourceInUseException") => Ok(()),
            Err(e) => Err(classify("dynamodb:CreateTable", &e)),
        }
    }

    fn active_put(&self, record: &Stored) -> PortResult<Put> {
        let plan = &record.deployment.plan;
        build(
            Put::builder()
                .table_name(&self.table)
                .item("pk", pk(&plan.endpoint_name))
                .item("sk", s("ACTIVE"))
                .item("deployment_id", s(&plan.deployment_id))
                .item("version", AttributeValue::N(record.version.to_string()))
                .item("active_endpoint", s(&plan.endpoint_name))
                .item("record", s(json(record)?))
                .build(),
        )
        .map(|mut put| {
            if let Some(at) = record.wake_at {
                put.item.insert(
                    "wake_at".to_owned(),
                    AttributeValue::N(at.epoch_ms().to_string()),
                );
            }
            put
        })
    }

    /// The alarm index items of the record's deployment, one per watched alarm.
    fn alarm_index_puts(&self, record: &Stored) -> PortResult<Vec<TransactWriteItem>> {
        let plan = &record.deployment.plan;
        plan.watched_alarm_names()
            .map(|alarm| {
                let put = build(
                    Put::builder()
                        .table_name(&self.table)
                        .item("pk", alarm_pk(alarm))
                        .item("sk", pk(&plan.endpoint_name))
                        .item("endpoint", s(&plan.endpoint_name))
                        .item("deployment_id", s(&plan.deployment_id))
                        .build(),
                )?;
                Ok(TransactWriteItem::builder().put(put).build())
            })
            .collect()
    }

    /// Deletes of the record's alarm index items (missing ones count as done).
    fn alarm_index_deletes(&self, record: &Stored) -> PortResult<Vec<TransactWriteItem>> {
        let plan = &record.deployment.plan;
        plan.watched_alarm_names()
            .map(|alarm| {
                let delete = build(
                    Delete::builder()
                        .table_name(&self.table)
                        .key("pk", alarm_pk(alarm))
                        .key("sk", pk(&plan.endpoint_name))
                        .build(),
                )?;
                Ok(TransactWriteItem::builder().delete(delete).build())
            })
            .collect()
    }

    fn audit_puts(
        &self,
        endpoint: &str,
        audit: &[AuditEntry],
    ) -> PortResult<Vec<TransactWriteItem>> {
        audit
            .iter()
            .map(|entry| {
                let put = build(
                    Put::builder()
                        .table_name(&self.table)
                        .item("pk", pk(endpoint))
                        .item(
                            "sk",
                            s(format!(
                                "AUDIT#{}#{:06}",
                                entry.deployment_id, entry.sequence
                            )),
                        )
                        .item("deployment_id", s(&entry.deployment_id))
                        .item(
                            "at",
                            AttributeValue::N(entry.transition.at.epoch_ms().to_string()),
                        )
                        .item("cause", s(entry.transition.cause.to_string()))
                        .item("entry", s(json(entry)?))
                        .condition_expression("attribute_not_exists(sk)")
                        .build(),
                )?;
                Ok(TransactWriteItem::builder().put(put).build())
            })
            .collect()
    }

    /// The endpoint's items whose sort key starts with `prefix`, every page (consistent reads),
    /// in key order or, `newest_first`, the reverse; at most `limit`.
    async fn items(
        &self,
        endpoint: &str,
        prefix: &str,
        newest_first: bool,
        limit: Option<usize>,
    ) -> PortResult<Vec<std::collections::HashMap<String, AttributeValue>>> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let left = limit.map(|l| l.saturating_sub(items.len()));
            if left == Some(0) {
                break;
            }
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", pk(endpoint))
                .expression_attribute_values(":prefix", s(prefix))
                .consistent_read(true)
                .scan_index_forward(!newest_first)
                .set_limit(left.map(|l| i32::try_from(l).unwrap_or(i32::MAX)))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| classify("dynamodb:Query", &e))?;
            items.extend(out.items().iter().cloned());
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        Ok(items)
    }

    async fn transact(&self, items: Vec<TransactWriteItem>) -> PortResult<()> {
        if items.len() > MAX_TRANSACTION_ITEMS {
            return Err(invalid(format!(
                "{} items exceed DynamoDB's {MAX_TRANSACTION_ITEMS} per transaction",
                items.len()
            )));
        }
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("dynamodb:TransactWriteItems", &e))
    }
}

fn record_of(item: &std::collections::HashMap<String, AttributeValue>) -> PortResult<Stored> {
    let text = item
        .get("record")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| invalid("the active item has no record".to_owned()))?;
    let mut record: Stored = serde_json::from_str(text)
        .map_err(|e| invalid(format!("the stored record does not parse: {e}")))?;
    // The wake-up Scheduler holds is noted beside the record (`wake_scheduled`).
    if let Some(at) = item
        .get("wake_at")
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse::<i64>().ok())
    {
        record.wake_at = Some(Timestamp::from_epoch_ms(at));
    }
    Ok(record)
}

#[async_trait]
impl Store for DynamoStore {
    async fn load(&self, endpoint: &str) -> PortResult<Option<Stored>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", pk(endpoint))
            .key("sk", s("ACTIVE"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("dynamodb:GetItem", &e))?;
        out.item().map(record_of).transpose()
    }

    async fn create(&self, record: &Stored, audit: &[AuditEntry]) -> PortResult<()> {
        let plan = &record.deployment.plan;
        let mut put = self.active_put(record)?;
        put.condition_expression = Some("attribute_not_exists(pk)".to_owned());
        // An id item per deployment, keyed by the id alone: a request delivered again after its
        // deployment ended does not run it twice, and no other endpoint can start a deployment
        // under the same id (the configs and alarms Guardrails names after it would be shared).
        let id = build(
            Put::builder()
                .table_name(&self.table)
                .item("pk", s(format!("DEPLOYMENT#{}", plan.deployment_id)))
                .item("sk", s("ID"))
                .item("endpoint", s(&plan.endpoint_name))
                .item(
                    "started_at",
                    AttributeValue::N(record.deployment.started_at.epoch_ms().to_string()),
                )
                .condition_expression("attribute_not_exists(pk)")
                .build(),
        )?;
        let mut items = vec![
            TransactWriteItem::builder().put(put).build(),
            TransactWriteItem::builder().put(id).build(),
        ];
        items.extend(self.audit_puts(&plan.endpoint_name, audit)?);
        items.extend(self.alarm_index_puts(record)?);
        match self.transact(items).await {
            Err(e) if e.kind == ErrorKind::Conflict => {
                if self.load(&plan.endpoint_name).await?.is_some() {
                    return Err(PortError::new(ErrorKind::AlreadyActive, e.message));
                }
                match self
                    .find(&plan.deployment_id)
                    .await?
                    .map(|(owner, _)| owner)
                {
                    Some(owner) if owner == plan.endpoint_name => {
                        Err(PortError::new(ErrorKind::Duplicate, e.message))
                    }
                    Some(owner) => Err(PortError::new(
                        ErrorKind::Refused,
                        id_taken(&plan.deployment_id, &owner),
                    )),
                    // Neither is there any more: the write may pass now.
                    None => Err(e),
                }
            }
            other => other,
        }
    }

    async fn save(
        &self,
        record: &Stored,
        expected_version: u64,
        audit: &[AuditEntry],
    ) -> PortResult<()> {
        let mut put = self.active_put(record)?;
        put.condition_expression = Some("#v = :expected AND deployment_id = :id".to_owned());
        put.expression_attribute_names = Some([("#v".to_owned(), "version".to_owned())].into());
        put.expression_attribute_values = Some(
            [
                (
                    ":expected".to_owned(),
                    AttributeValue::N(expected_version.to_string()),
                ),
                (":id".to_owned(), s(&record.deployment.plan.deployment_id)),
            ]
            .into(),
        );
        let mut items = vec![TransactWriteItem::builder().put(put).build()];
        items.extend(self.audit_puts(&record.deployment.plan.endpoint_name, audit)?);
        self.transact(items).await
    }

    async fn archive(&self, record: &Stored, expected_version: u64) -> PortResult<()> {
        let plan = &record.deployment.plan;
        let delete = build(
            Delete::builder()
                .table_name(&self.table)
                .key("pk", pk(&plan.endpoint_name))
                .key("sk", s("ACTIVE"))
                .condition_expression("#v = :expected AND deployment_id = :id")
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(
                    ":expected",
                    AttributeValue::N(expected_version.to_string()),
                )
                .expression_attribute_values(":id", s(&plan.deployment_id))
                .build(),
        )?;
        let history = build(
            Put::builder()
                .table_name(&self.table)
                .item("pk", pk(&plan.endpoint_name))
                .item(
                    "sk",
                    s(format!(
                        "HISTORY#{:015}#{}",
                        record.deployment.started_at.epoch_ms(),
                        plan.deployment_id
                    )),
                )
                .item("deployment_id", s(&plan.deployment_id))
                .item("phase", s(record.deployment.phase.label()))
                .item("record", s(json(record)?))
                .build(),
        )?;
        // A rollback or failure stays in the sparse `unpaged` index until it has been paged
        // about, so that the sweep can publish its outcome again if the event was lost.
        let mut history = history;
        if matches!(
            record.deployment.phase,
            crate::core::Phase::RolledBack { .. } | crate::core::Phase::Failed { .. }
        ) {
            history
                .item
                .insert("unpaged_endpoint".to_owned(), s(&plan.endpoint_name));
        }
        let mut items = vec![
            TransactWriteItem::builder().delete(delete).build(),
            TransactWriteItem::builder().put(history).build(),
        ];
        items.extend(self.alarm_index_deletes(record)?);
        self.transact(items).await
    }

    async fn watching(&self, alarm_name: &str) -> PortResult<Vec<String>> {
        let mut endpoints = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", alarm_pk(alarm_name))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| classify("dynamodb:Query", &e))?;
            endpoints.extend(
                out.items()
                    .iter()
                    .filter_map(|i| i.get("endpoint").and_then(|v| v.as_s().ok()).cloned()),
            );
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        endpoints.sort();
        endpoints.dedup();
        Ok(endpoints)
    }

    async fn load_many(&self, endpoints: &[String]) -> PortResult<Vec<Stored>> {
        let mut records = Vec::new();
        for chunk in endpoints.chunks(MAX_BATCH_GET_KEYS) {
            let mut keys: Vec<_> = chunk.iter().map(|e| active_key(e)).collect();
            for _ in 0..BATCH_GET_RETRIES {
                if keys.is_empty() {
                    break;
                }
                let wanted = build(
                    aws_sdk_dynamodb::types::KeysAndAttributes::builder()
                        .set_keys(Some(std::mem::take(&mut keys)))
                        .consistent_read(true)
                        .build(),
                )?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, wanted)
                    .send()
                    .await
                    .map_err(|e| classify("dynamodb:BatchGetItem", &e))?;
                if let Some(items) = out.responses().and_then(|r| r.get(&self.table)) {
                    for item in items {
                        records.push(record_of(item)?);
                    }
                }
                keys = out
                    .unprocessed_keys()
                    .and_then(|u| u.get(&self.table))
                    .map(|k| k.keys().to_vec())
                    .unwrap_or_default();
            }
            // What DynamoDB left unprocessed every time is read one item at a time.
            for key in keys {
                let endpoint = key
                    .get("pk")
                    .and_then(|v| v.as_s().ok())
                    .and_then(|pk| pk.strip_prefix("ENDPOINT#"))
                    .unwrap_or_default()
                    .to_owned();
                records.extend(self.load(&endpoint).await?);
            }
        }
        Ok(records)
    }

    async fn active_endpoints(&self) -> PortResult<Vec<String>> {
        let mut endpoints = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .index_name(ACTIVE_INDEX)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| classify("dynamodb:Scan", &e))?;
            endpoints.extend(out.items().iter().filter_map(|i| {
                i.get("active_endpoint")
                    .and_then(|v| v.as_s().ok())
                    .cloned()
            }));
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        endpoints.sort();
        Ok(endpoints)
    }

    async fn wake_scheduled(
        &self,
        endpoint: &str,
        deployment_id: &str,
        at: Timestamp,
    ) -> PortResult<()> {
        let updated = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(active_key(endpoint)))
            .update_expression("SET wake_at = :at")
            .condition_expression("deployment_id = :id")
            .expression_attribute_values(":at", AttributeValue::N(at.epoch_ms().to_string()))
            .expression_attribute_values(":id", s(deployment_id))
            .send()
            .await;
        match updated {
            Ok(_) => Ok(()),
            // That deployment has ended (or the item is gone): nothing to note.
            Err(e) if classify("dynamodb:UpdateItem", &e).kind == ErrorKind::Conflict => Ok(()),
            Err(e) => Err(classify("dynamodb:UpdateItem", &e)),
        }
    }

    async fn history(&self, endpoint: &str, limit: usize) -> PortResult<Vec<Stored>> {
        let items = self.items(endpoint, "HISTORY#", true, Some(limit)).await?;
        items.iter().map(record_of).collect()
    }

    async fn find(&self, deployment_id: &str) -> PortResult<Option<(String, Timestamp)>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(format!("DEPLOYMENT#{deployment_id}")))
            .key("sk", s("ID"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("dynamodb:GetItem", &e))?;
        let Some(item) = out.item() else {
            return Ok(None);
        };
        let endpoint = item.get("endpoint").and_then(|v| v.as_s().ok()).cloned();
        let started = item
            .get("started_at")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<i64>().ok())
            .map(Timestamp::from_epoch_ms);
        Ok(endpoint.map(|e| (e, started.unwrap_or(Timestamp::from_epoch_ms(0)))))
    }

    async fn audit(&self, endpoint: &str, deployment_id: &str) -> PortResult<Vec<AuditEntry>> {
        let prefix = format!("AUDIT#{deployment_id}#");
        let items = self.items(endpoint, &prefix, false, None).await?;
        items
            .iter()
            .map(|item| {
                let text = item
                    .get("entry")
                    .and_then(|v| v.as_s().ok())
                    .ok_or_else(|| invalid("an audit item has no entry".to_owned()))?;
                serde_json::from_str(text)
                    .map_err(|e| invalid(format!("an audit entry does not parse: {e}")))
            })
            .collect()
    }

    async fn claim_page(
        &self,
        endpoint: &str,
        deployment_id: &str,
        now: Timestamp,
        stale_after_secs: u32,
    ) -> PortResult<PageClaim> {
        let stale = now.epoch_ms() - i64::from(stale_after_secs) * 1_000;
        let claimed = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", pk(endpoint))
            .item("sk", s(format!("PAGE#{deployment_id}")))
            .item("deployment_id", s(deployment_id))
            .item("page_status", s("claimed"))
            .item("claimed_at", AttributeValue::N(now.epoch_ms().to_string()))
            .condition_expression(
                "attribute_not_exists(sk) OR (page_status = :claimed AND claimed_at < :stale)",
            )
            .expression_attribute_values(":claimed", s("claimed"))
            .expression_attribute_values(":stale", AttributeValue::N(stale.to_string()))
            .send()
            .await;
        match claimed {
            Ok(_) => Ok(PageClaim::Claimed),
            Err(e) if classify("dynamodb:PutItem", &e).kind == ErrorKind::Conflict => {
                let existing = self
                    .client
                    .get_item()
                    .table_name(&self.table)
                    .key("pk", pk(endpoint))
                    .key("sk", s(format!("PAGE#{deployment_id}")))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| classify("dynamodb:GetItem", &e))?;
                let sent = existing
                    .item()
                    .and_then(|i| i.get("page_status"))
                    .and_then(|v| v.as_s().ok())
                    .is_some_and(|status| status == "sent");
                Ok(if sent {
                    PageClaim::AlreadySent
                } else {
                    PageClaim::InProgress
                })
            }
            Err(e) => Err(classify("dynamodb:GetItem", &e)),
        }
    }

    async fn record(
        &self,
        endpoint: &str,
        deployment_id: &str,
        started_at: Timestamp,
    ) -> PortResult<Option<Stored>> {
        let sks = [
            "ACTIVE".to_owned(),
            format!("HISTORY#{:015}#{deployment_id}", started_at.epoch_ms()),
        ];
        for sk in sks {
            let out = self
                .client
                .get_item()
                .table_name(&self.table)
                .key("pk", pk(endpoint))
                .key("sk", s(sk))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| classify("dynamodb:GetItem", &e))?;
            if let Some(item) = out.item() {
                let record = record_of(item)?;
                if record.deployment.plan.deployment_id == deployment_id {
                    return Ok(Some(record));
                }
            }
        }
        Ok(None)
    }

    async fn unpaged(&self, before: Timestamp) -> PortResult<Vec<StateChange>> {
        let mut events = Vec::new();
        let out = self
            .client
            .scan()
            .table_name(&self.table)
            .index_name(UNPAGED_INDEX)
            .send()
            .await
            .map_err(|e| classify("dynamodb:Scan", &e))?;
        for key in out.items() {
            let (Some(pk_value), Some(sk_value)) = (key.get("pk"), key.get("sk")) else {
                continue;
            };
            let item = self
                .client
                .get_item()
                .table_name(&self.table)
                .key("pk", pk_value.clone())
                .key("sk", sk_value.clone())
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| classify("dynamodb:GetItem", &e))?;
            let Some(item) = item.item() else { continue };
            let done = record_of(item)?;
            let plan = &done.deployment.plan;
            let page = self
                .client
                .get_item()
                .table_name(&self.table)
                .key("pk", pk(&plan.endpoint_name))
                .key("sk", s(format!("PAGE#{}", plan.deployment_id)))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| classify("dynamodb:GetItem", &e))?;
            let sent = page
                .item()
                .and_then(|i| i.get("page_status"))
                .and_then(|v| v.as_s().ok())
                .is_some_and(|status| status == "sent");
            if sent {
                // Paged: leave the index.
                self.client
                    .update_item()
                    .table_name(&self.table)
                    .key("pk", pk_value.clone())
                    .key("sk", sk_value.clone())
                    .update_expression("REMOVE unpaged_endpoint")
                    .send()
                    .await
                    .map_err(|e| classify("dynamodb:UpdateItem", &e))?;
                continue;
            }
            let audit = self.audit(&plan.endpoint_name, &plan.deployment_id).await?;
            if let Some(last) = audit.last()
                && last.transition.at < before
            {
                events.push(StateChange::new(
                    &done.deployment,
                    &last.transition,
                    last.sequence,
                    None,
                ));
            }
        }
        Ok(events)
    }

    async fn page_sent(
        &self,
        endpoint: &str,
        deployment_id: &str,
        sent: &SentPage,
    ) -> PortResult<()> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", pk(endpoint))
            .key("sk", s(format!("PAGE#{deployment_id}")))
            .update_expression(
                "SET page_status = :sent, message_id = :id, subject = :subject, sent_at = :at",
            )
            .expression_attribute_values(":sent", s("sent"))
            .expression_attribute_values(":id", s(&sent.message_id))
            .expression_attribute_values(":subject", s(&sent.subject))
            .expression_attribute_values(
                ":at",
                AttributeValue::N(sent.sent_at.epoch_ms().to_string()),
            )
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("dynamodb:UpdateItem", &e))
    }
}
