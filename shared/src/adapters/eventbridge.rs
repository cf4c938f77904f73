//! The EventBridge adapter: lifecycle events onto one event bus, one `PutEvents` call per
//! batch of up to ten.

use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use crate::domain::lifecycle::{LifecycleEvent, SOURCE};
use crate::domain::ports::{EventBus, PublishError};

pub struct EventBridgeBus {
    client: Client,
    /// The bus's name or ARN.
    bus: String,
}

impl EventBridgeBus {
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
        }
    }
}

#[async_trait]
impl EventBus for EventBridgeBus {
    async fn publish(&self, events: &[&LifecycleEvent]) -> Result<Vec<bool>, PublishError> {
        let entries = events
            .iter()
            .map(|event| {
                let detail = serde_json::to_string(&event.detail)
                    .map_err(|e| PublishError(format!("event detail: {e}")))?;
                Ok(PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus)
                    .source(SOURCE)
                    .detail_type(event.event_type.name())
                    .detail(detail)
                    .time(aws_sdk_eventbridge::primitives::DateTime::from_millis(
                        event.at.timestamp_millis(),
                    ))
                    .build())
            })
            .collect::<Result<Vec<_>, PublishError>>()?;
        let output = self
            .client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| {
                let code = aws_sdk_eventbridge::error::ProvideErrorMetadata::code(&e);
                PublishError(format!("PutEvents failed: {}", code.unwrap_or("no answer")))
            })?;
        // Entries answer in the order sent; a failed one carries an error code.
        let answers = output.entries();
        if answers.len() != events.len() {
            return Err(PublishError(format!(
                "PutEvents answered {} entries for {}",
                answers.len(),
                events.len()
            )));
        }
        Ok(answers.iter().map(|a| a.error_code().is_none()).collect())
    }
}
