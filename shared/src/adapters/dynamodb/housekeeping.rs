//! What the cleanup jobs need on DynamoDB: unmapping a removed identity's customId, the
//! paged identity scan, conditional purges (each leaving a mark for the lifecycle
//! publisher), and the sweep's saved cursor.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};

use super::DynamoDbStore;
use super::errors::{cancellation_reasons, is_conflict, reason_code, store_error};
use super::items::{
    IDENTITY_PREFIX, IdentityItem, MarkItem, SWEEP_CURSOR_KEY, decode, encode, identity_key, key,
    swept_key,
};
use crate::domain::identity::{CustomId, Identity, IdentityKind};
use crate::domain::lifecycle::SweepReason;
use crate::domain::ports::{Housekeeping, StoreError};

#[async_trait]
impl Housekeeping for DynamoDbStore {
    async fn unmap_custom_id(
        &self,
        custom_id: &CustomId,
        identity_id: &str,
    ) -> Result<(), StoreError> {
        self.remove_stale_mapping(custom_id, identity_id).await
    }

    async fn identities_page(
        &self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<Identity>, Option<String>), StoreError> {
        let output = self
            .client
            .scan()
            .table_name(&self.table)
            .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX))
            .filter_expression("begins_with(pk, :prefix)")
            .expression_attribute_values(":prefix", AttributeValue::S(IDENTITY_PREFIX.into()))
            .set_exclusive_start_key(cursor.map(|pk| key(pk.to_owned())))
            .send()
            .await
            .map_err(store_error)?;
        let identities = output
            .items
            .unwrap_or_default()
            .into_iter()
            // One unreadable item must not stop every later sweep: it is logged and skipped.
            .filter_map(|item| {
                match decode::<IdentityItem>(item).and_then(IdentityItem::into_identity) {
                    Ok(identity) => Some(identity),
                    Err(e) => {
                        tracing::warn!(error = %e, "sweep skipped an unreadable identity item");
                        None
                    }
                }
            })
            .collect();
        let next = output
            .last_evaluated_key
            .and_then(|key| key.get("pk").and_then(|v| v.as_s().ok()).cloned());
        Ok((identities, next))
    }

    async fn purge(&self, identity: &Identity, reason: SweepReason) -> Result<bool, StoreError> {
        // Only as the sweep saw it: a token issued since (or a changed expiry) keeps it.
        let mut delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(identity_key(&identity.id))));
        let mut condition = String::from("attribute_exists(pk)");
        match identity.last_token_issued_at {
            Some(seen) => {
                condition.push_str(" AND lastTokenIssuedAt = :seen");
                delete = delete.expression_attribute_values(
                    ":seen",
                    AttributeValue::N(seen.timestamp_millis().to_string()),
                );
            }
            None => condition.push_str(" AND attribute_not_exists(lastTokenIssuedAt)"),
        }
        if let IdentityKind::Ephemeral { expires_at } = identity.kind {
            condition.push_str(" AND expiresAt = :expires");
            delete = delete.expression_attribute_values(
                ":expires",
                AttributeValue::N(expires_at.timestamp().to_string()),
            );
        }
        let delete = delete
            .condition_expression(condition)
            .build()
            .map_err(|e| StoreError::Failed(e.to_string()))?;
        // The mark tells the lifecycle publisher this removal was the sweep's, not a delete.
        let mut mark = MarkItem::new(swept_key(&identity.id));
        mark.reason = Some(reason);
        let mark = Put::builder()
            .table_name(&self.table)
            .set_item(Some(encode(&mark)))
            .build()
            .map_err(|e| StoreError::Failed(e.to_string()))?;
        let result = self
            .transact(
                TransactWriteItem::builder().delete(delete).build(),
                TransactWriteItem::builder().put(mark).build(),
            )
            .await;
        if let Err(err) = result {
            let reasons = cancellation_reasons(err)?;
            return match reason_code(&reasons, 0) {
                "ConditionalCheckFailed" => Ok(false),
                _ if is_conflict(&reasons) => Err(StoreError::Unavailable(
                    "purge conflicted with another write".into(),
                )),
                code => Err(StoreError::Failed(format!("purge cancelled: {code}"))),
            };
        }
        if let Some(custom_id) = &identity.custom_id {
            self.remove_stale_mapping(custom_id, identity.id.as_str())
                .await?;
        }
        Ok(true)
    }

    async fn sweep_cursor(&self) -> Result<Option<String>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(self.regional_key(SWEEP_CURSOR_KEY))))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        Ok(output
            .item
            .and_then(|item| item.get("next").and_then(|v| v.as_s().ok()).cloned()))
    }

    async fn save_sweep_cursor(&self, cursor: Option<&str>) -> Result<(), StoreError> {
        match cursor {
            Some(next) => {
                self.client
                    .put_item()
                    .table_name(&self.table)
                    .item("pk", AttributeValue::S(self.regional_key(SWEEP_CURSOR_KEY)))
                    .item("next", AttributeValue::S(next.to_owned()))
                    .send()
                    .await
                    .map_err(store_error)?;
            }
            None => {
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .set_key(Some(key(self.regional_key(SWEEP_CURSOR_KEY))))
                    .send()
                    .await
                    .map_err(store_error)?;
            }
        }
        Ok(())
    }
}
