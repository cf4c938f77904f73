//! DynamoDB Streams records, read with the table's one item schema (`items`): which
//! identity a REMOVE record removed.

use aws_lambda_events::dynamodb::EventRecord;

use super::items::{IDENTITY_PREFIX, IdentityItem, identity_key};
use crate::domain::identity::Identity;

/// The identity a stream record removed; None for every other record (inserts, updates,
/// and removed mappings, counters or sweep cursors, which nothing refers to). An error
/// says why the record cannot be read.
pub fn removed_identity(record: &EventRecord) -> Result<Option<Identity>, String> {
    if record.event_name != "REMOVE" {
        return Ok(None);
    }
    let keys: serde_json::Value =
        serde_dynamo::from_item(record.change.keys.clone()).map_err(|e| e.to_string())?;
    let pk = keys.get("pk").and_then(|v| v.as_str()).unwrap_or_default();
    if !pk.starts_with(IDENTITY_PREFIX) {
        return Ok(None);
    }
    let item: IdentityItem =
        serde_dynamo::from_item(record.change.old_image.clone()).map_err(|e| {
            format!("no readable old image for {pk} (the stream must carry old images): {e}")
        })?;
    if item.pk != pk {
        return Err(format!("old image of {pk} is inconsistent"));
    }
    let identity = item
        .into_identity()
        .map_err(|e| format!("old image of {pk}: {e}"))?;
    if identity_key(&identity.id) != pk {
        return Err(format!("old image of {pk} is inconsistent"));
    }
    Ok(Some(identity))
}
