//! The lifecycle publisher's ledger on DynamoDB: an `EVENT#<change id>` item per published
//! event (read and written for a whole batch at once), and the sweep's `SWEPT#<id>` marks.

use std::collections::HashSet;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};

use super::DynamoDbStore;
use super::items::{EVENT_PREFIX, MarkItem, encode, event_key, swept_key};
use crate::domain::identity::IdentityId;
use crate::domain::lifecycle::SweepReason;
use crate::domain::ports::{EventLedger, StoreError};

#[async_trait]
impl EventLedger for DynamoDbStore {
    async fn published(&self, change_ids: &[&str]) -> Result<HashSet<String>, StoreError> {
        let pks = change_ids.iter().map(|id| event_key(id)).collect();
        let items = self.batch_get(pks).await?;
        Ok(items
            .iter()
            .filter_map(|item| item.get("pk").and_then(|v| v.as_s().ok()))
            .filter_map(|pk| pk.strip_prefix(EVENT_PREFIX))
            .map(str::to_owned)
            .collect())
    }

    async fn mark_published(&self, change_ids: &[&str]) -> Result<(), StoreError> {
        let requests = change_ids
            .iter()
            .map(|id| {
                let put = PutRequest::builder()
                    .set_item(Some(encode(&MarkItem::new(event_key(id)))))
                    .build()
                    .map_err(|e| StoreError::Failed(e.to_string()))?;
                Ok(WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.batch_write(requests).await
    }

    async fn swept(&self, id: &IdentityId) -> Result<Option<SweepReason>, StoreError> {
        let mark = self.get_item::<MarkItem>(swept_key(id)).await?;
        Ok(mark.and_then(|mark| mark.reason))
    }
}
