//! `EventBus` on EventBridge: our "Guardrails Deployment State Change" events (PutEvents, at
//! most 10 entries a call).

use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use super::classify;
use crate::events::{DETAIL_TYPE, REFUSED_DETAIL_TYPE, Refusal, SOURCE, StateChange};
use crate::ports::{ErrorKind, EventBus, PortError, PortResult};

/// PutEvents takes at most this many entries.
const MAX_ENTRIES_PER_CALL: usize = 10;

/// EventBridge, through the SDK.
#[derive(Debug, Clone)]
pub struct EventBridgeBus {
    client: Client,
    bus: String,
}

impl EventBridgeBus {
    pub fn new(client: Client, bus: impl Into<String>) -> EventBridgeBus {
        EventBridgeBus {
            client,
            bus: bus.into(),
        }
    }
}

#[async_trait]
impl EventBus for EventBridgeBus {
    async fn publish(&self, events: &[StateChange]) -> PortResult<()> {
        for chunk in events.chunks(MAX_ENTRIES_PER_CALL) {
            let mut entries = Vec::with_capacity(chunk.len());
            for event in chunk {
                let detail = serde_json::to_string(event).map_err(|e| {
                    PortError::new(ErrorKind::Refused, format!("cannot encode an event: {e}"))
                })?;
                entries.push(
                    PutEventsRequestEntry::builder()
                        .source(SOURCE)
                        .detail_type(DETAIL_TYPE)
                        .detail(detail)
                        .event_bus_name(&self.bus)
                        .build(),
                );
            }
            let out = self
                .client
                .put_events()
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| classify("events:PutEvents", &e))?;
            if out.failed_entry_count() > 0 {
                return Err(PortError::new(
                    ErrorKind::Transient,
                    format!(
                        "EventBridge refused {} of {} events",
                        out.failed_entry_count(),
                        chunk.len()
                    ),
                ));
            }
        }
        Ok(())
    }

    async fn fan_out(&self, shards: &[crate::events::SweepShard]) -> PortResult<()> {
        for chunk in shards.chunks(MAX_ENTRIES_PER_CALL) {
            let mut entries = Vec::with_capacity(chunk.len());
            for shard in chunk {
                let detail = serde_json::to_string(shard).map_err(|e| {
                    PortError::new(ErrorKind::Refused, format!("cannot encode a shard: {e}"))
                })?;
                entries.push(
                    PutEventsRequestEntry::builder()
                        .source(SOURCE)
                        .detail_type(crate::events::SWEEP_SHARD_DETAIL_TYPE)
                        .detail(detail)
                        .event_bus_name(&self.bus)
                        .build(),
                );
            }
            let out = self
                .client
                .put_events()
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| classify("events:PutEvents", &e))?;
            if out.failed_entry_count() > 0 {
                return Err(PortError::new(
                    ErrorKind::Transient,
                    format!(
                        "EventBridge refused {} of {} sweep shards",
                        out.failed_entry_count(),
                        chunk.len()
                    ),
                ));
            }
        }
        Ok(())
    }

    async fn refused(&self, refusal: &Refusal) -> PortResult<()> {
        let detail = serde_json::to_string(refusal).map_err(|e| {
            PortError::new(ErrorKind::Refused, format!("cannot encode a refusal: {e}"))
        })?;
        let entry = PutEventsRequestEntry::builder()
            .source(SOURCE)
            .detail_type(REFUSED_DETAIL_TYPE)
            .detail(detail)
            .event_bus_name(&self.bus)
            .build();
        let out = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| classify("events:PutEvents", &e))?;
        if out.failed_entry_count() > 0 {
            return Err(PortError::new(
                ErrorKind::Transient,
                "EventBridge refused the refusal event",
            ));
        }
        Ok(())
    }
}
