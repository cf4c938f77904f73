//! The lifecycle publisher's ledger on DynamoDB: an `EVENT#<change id>` item per published
//! event (read for a whole batch at once, written 25 at a time), and the sweep's
//! `SWEPT#<id>` marks.

use std::collections::HashSet;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};

use super::DynamoDbStore;
use super::items::{MarkItem, encode, event_key, swept_key};
use crate::domain::identity::IdentityId;
use crate::domain::lifecycle::SweepReason;
use crate::domain::ports::{EventLedger, StoreError};

/// BatchGetItem's and BatchWriteItem's limits per call.
const READS_PER_CALL: usize = 100;
const WRITES_PER_CALL: usize = 25;

#[async_trait]
impl EventLedger for DynamoDbStore {
    async fn published(&self, change_ids: &[&str]) -> Result<HashSet<String>, StoreError> {
        let mut published = HashSet::new();
        for chunk in change_ids.chunks(READS_PER_CALL) {
            let pks = chunk.iter().map(|id| event_key(id)).collect();
            for item in self.batch_get(pks).await? {
                let Some(pk) = item.get("pk").and_then(|v| v.as_s().ok()) else {
                    continue;
                };
                if let Some(id) = pk.strip_prefix("EVENT#") {
                    published.insert(id.to_owned());
                }
            }
        }
        Ok(published)
    }

    async fn mark_published(&self, change_ids: &[&str]) -> Result<(), StoreError> {
        for chunk in change_ids.chunks(WRITES_PER_CALL) {
            let requests = chunk
                .iter()
                .map(|id| {
                    let put = PutRequest::builder()
                        .set_item(Some(encode(&MarkItem::new(event_key(id)))))
                        .build()
                        .map_err(|e| StoreError::Failed(e.to_string()))?;
                    Ok(WriteRequest::builder().put_request(put).build())
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            self.batch_write(requests).await?;
        }
        Ok(())
    }

    async fn swept(&self, id: &IdentityId) -> Result<Option<SweepReason>, StoreError> {
        let mark = self.get_item::<MarkItem>(swept_key(id)).await?;
        Ok(mark.and_then(|mark| mark.reason))
    }
}
