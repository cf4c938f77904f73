//! The identity-events function's events: a DynamoDB Streams batch of the table's
//! changes, published as identity lifecycle events (`domain::lifecycle`).

use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::DynamoDbEventResponse;

use super::stream_failures;
use crate::adapters::dynamodb::stream::identity_change;
use crate::domain::lifecycle::LifecyclePublisher;

/// Publishes one batch, in order, up to the first change that fails (its event not
/// published, the ledger out of reach). That record is reported in `batchItemFailures`, so
/// Lambda delivers it and every later one again; the ledger keeps those already published
/// from going out twice. An unreadable record is logged and skipped: no delivery could
/// read it.
pub async fn on_identity_changes(
    publisher: &LifecyclePublisher,
    event: &Event,
) -> DynamoDbEventResponse {
    let mut changes = Vec::new();
    let mut records: Vec<&EventRecord> = Vec::new();
    for record in &event.records {
        match identity_change(record) {
            Ok(Some(change)) => {
                changes.push(change);
                records.push(record);
            }
            Ok(None) => {}
            // It would fail on every delivery, and hold back every later change.
            Err(reason) => {
                tracing::error!(%reason, event_id = %record.event_id, "stream record skipped");
            }
        }
    }
    let outcome = publisher.publish(&changes).await;
    let failed = outcome.failed_at.map(|at| records[at]);
    tracing::info!(
        published = outcome.published,
        repeats = outcome.repeats,
        stopped = failed.is_some(),
        "lifecycle events"
    );
    stream_failures(failed)
}
