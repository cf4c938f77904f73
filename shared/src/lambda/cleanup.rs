//! The cleanup function's events: a DynamoDB Streams batch (what refers to a removed
//! identity goes) or a scheduled event (one retention sweep run).

use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::streams::DynamoDbEventResponse;

use super::stream_failures;
use crate::adapters::dynamodb::stream::removed_identity;
use crate::domain::housekeeping::{self, SweepPolicy};
use crate::domain::ports::Housekeeping;

/// Where a scheduled run comes from: EventBridge Scheduler (the template's `ScheduleV2`,
/// whose default event says `aws.scheduler`), or an EventBridge rule.
const SCHEDULE_SOURCES: [&str; 2] = ["aws.scheduler", "aws.events"];

/// One invocation: a stream batch (answered with its `batchItemFailures`) or a scheduled
/// event (answered with the sweep's report). Nothing else may start work here.
pub async fn cleanup_event(
    store: &dyn Housekeeping,
    policy: &SweepPolicy,
    event: serde_json::Value,
) -> Result<serde_json::Value, Box<dyn std::error::Error + Send + Sync>> {
    if event.get("Records").is_some() {
        let batch: Event = serde_json::from_value(event)?;
        Ok(serde_json::to_value(on_stream(store, &batch).await)?)
    } else if event
        .get("source")
        .and_then(|s| s.as_str())
        .is_some_and(|source| SCHEDULE_SOURCES.contains(&source))
    {
        let report = housekeeping::sweep(store, policy, chrono::Utc::now()).await?;
        Ok(serde_json::to_value(report)?)
    } else {
        Err("not a DynamoDB Streams batch nor a scheduled event".into())
    }
}

/// Handles one batch of stream records. A record that cannot be handled is reported in
/// `batchItemFailures` (by sequence number) so that one bad record does not replay the
/// whole batch; the others are processed. Every action is idempotent.
pub async fn on_stream(store: &dyn Housekeeping, event: &Event) -> DynamoDbEventResponse {
    let mut failed = Vec::new();
    for record in &event.records {
        let handled = match removed_identity(record) {
            Ok(Some(identity)) => housekeeping::on_identity_removed(store, &identity)
                .await
                .map_err(|e| e.to_string()),
            Ok(None) => Ok(()),
            Err(reason) => Err(reason),
        };
        if let Err(reason) = handled {
            tracing::warn!(%reason, event_id = %record.event_id, "stream record failed");
            failed.push(record);
        }
    }
    stream_failures(failed)
}
