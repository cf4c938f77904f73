//! The identity-events function's events: a DynamoDB Streams batch of the table's
//! changes, published as identity lifecycle events (`domain::lifecycle`).

use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use chrono::Utc;

use crate::adapters::dynamodb::stream::identity_change;
use crate::domain::lifecycle::LifecyclePublisher;

/// Publishes one batch. A record that failed (unreadable, or its event not published) is
/// reported by sequence number in `batchItemFailures`, so Lambda delivers it again; the
/// records after it come again too, and their claims keep them from publishing twice.
pub async fn on_identity_changes(
    publisher: &LifecyclePublisher,
    event: &Event,
) -> DynamoDbEventResponse {
    let mut changes = Vec::new();
    let mut failed = Vec::new();
    for record in &event.records {
        match identity_change(record) {
            Ok(Some(change)) => changes.push(change),
            Ok(None) => {}
            Err(reason) => {
                tracing::warn!(%reason, event_id = %record.event_id, "stream record unreadable");
                failed.push(record.change.sequence_number.clone());
            }
        }
    }
    let outcome = publisher.publish(&changes, Utc::now()).await;
    tracing::info!(
        published = outcome.published,
        repeats = outcome.repeats,
        failed = outcome.failed.len() + failed.len(),
        "lifecycle events"
    );
    for change_id in &outcome.failed {
        let record = event.records.iter().find(|r| &r.event_id == change_id);
        failed.push(record.and_then(|r| r.change.sequence_number.clone()));
    }
    let mut response = DynamoDbEventResponse::default();
    for sequence_number in failed {
        let mut failure = DynamoDbBatchItemFailure::default();
        failure.item_identifier = sequence_number;
        response.batch_item_failures.push(failure);
    }
    response
}
