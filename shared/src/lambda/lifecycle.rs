//! The identity-events function's events: a DynamoDB Streams batch of the table's
//! changes, published as identity lifecycle events (`domain::lifecycle`).

use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::DynamoDbEventResponse;

use super::stream_failures;
use crate::adapters::dynamodb::stream::identity_change;
use crate::domain::lifecycle::LifecyclePublisher;

/// Publishes one batch, in order, up to the first record that fails (unreadable, or its
/// event not published). That record is reported in `batchItemFailures`, so Lambda
/// delivers it and every later one again; the ledger keeps those already published from
/// going out twice.
pub async fn on_identity_changes(
    publisher: &LifecyclePublisher,
    event: &Event,
) -> DynamoDbEventResponse {
    let mut changes = Vec::new();
    let mut records: Vec<&EventRecord> = Vec::new();
    let mut failed = None;
    for record in &event.records {
        match identity_change(record) {
            Ok(Some(change)) => {
                changes.push(change);
                records.push(record);
            }
            Ok(None) => {}
            Err(reason) => {
                tracing::warn!(%reason, event_id = %record.event_id, "stream record unreadable");
                failed = Some(record);
                break;
            }
        }
    }
    let outcome = publisher.publish(&changes).await;
    if let Some(at) = outcome.failed_at {
        failed = Some(records[at]);
    }
    tracing::info!(
        published = outcome.published,
        repeats = outcome.repeats,
        stopped = failed.is_some(),
        "lifecycle events"
    );
    stream_failures(failed)
}
