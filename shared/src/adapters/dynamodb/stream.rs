//! DynamoDB Streams records, read with the table's one item schema (`items`): which
//! identity a REMOVE record removed (cleanup), and what a record changed in an identity
//! (lifecycle events).

use aws_lambda_events::dynamodb::{EventRecord, StreamViewType};

use super::items::{IDENTITY_PREFIX, IdentityItem, identity_key};
use crate::domain::identity::Identity;
use crate::domain::lifecycle::IdentityChange;

/// The identity a stream record removed; None for every other record (inserts, updates,
/// and removed mappings, counters or sweep cursors, which nothing refers to). An error
/// says why the record cannot be read.
pub fn removed_identity(record: &EventRecord) -> Result<Option<Identity>, String> {
    Ok(
        identity_change(record)?.and_then(|change| match change.after {
            None => change.before,
            Some(_) => None,
        }),
    )
}

/// What a record changed in an identity item: the identity before and after (None: it
/// did not exist). None for records of other items. The stream must carry both images.
/// The images say what happened, not `eventName`: DynamoDB Local names its TTL removals
/// `UNKNOWN_TO_SDK_VERSION`.
pub fn identity_change(record: &EventRecord) -> Result<Option<IdentityChange>, String> {
    let Some(pk) = identity_pk(record) else {
        return Ok(None);
    };
    // With one image only, a MODIFY would read as a create or a removal.
    if let Some(view) = &record.change.stream_view_type
        && *view != StreamViewType::NewAndOldImages
    {
        return Err(format!(
            "the stream carries {view:?}, not new and old images ({pk})"
        ));
    }
    let read = |item: &serde_dynamo::Item, which| {
        if item.is_empty() {
            Ok(None)
        } else {
            image(&pk, item, which).map(Some)
        }
    };
    let before = read(&record.change.old_image, "old")?;
    let after = read(&record.change.new_image, "new")?;
    if before.is_none() && after.is_none() {
        return Err(format!(
            "no image of {pk} (the stream must carry new and old images)"
        ));
    }
    Ok(Some(IdentityChange {
        change_id: record.event_id.clone(),
        at: record.change.approximate_creation_date_time,
        before,
        after,
    }))
}

/// The record's key if it is an identity item's.
fn identity_pk(record: &EventRecord) -> Option<String> {
    match record.change.keys.get("pk") {
        Some(serde_dynamo::AttributeValue::S(pk)) if pk.starts_with(IDENTITY_PREFIX) => {
            Some(pk.clone())
        }
        _ => None,
    }
}

/// The identity an image of item `pk` holds; an error if it is missing or another item's.
fn image(pk: &str, image: &serde_dynamo::Item, which: &str) -> Result<Identity, String> {
    let item: IdentityItem = serde_dynamo::from_item(image.clone()).map_err(|e| {
        format!("no readable {which} image for {pk} (the stream must carry both images): {e}")
    })?;
    if item.pk != pk {
        return Err(format!("{which} image of {pk} is inconsistent"));
    }
    let identity = item
        .into_identity()
        .map_err(|e| format!("{which} image of {pk}: {e}"))?;
    if identity_key(&identity.id) != pk {
        return Err(format!("{which} image of {pk} is inconsistent"));
    }
    Ok(identity)
}
