//! The identity store on DynamoDB: an identity and its customId mapping are written and
//! deleted together in one transaction; token issue and revoke are one conditional update.

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, Delete, Put, ReturnValue,
    ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use chrono::{DateTime, Utc};

use super::errors::{
    cancellation_reasons, condition_failed, conditionally_written, is_conflict, reason_code,
    store_error,
};
use super::items::{
    AttemptItem, CustomIdItem, IdentityItem, Item, attempt_key, custom_id_key, decode, encode,
    identity_key, key, live,
};
use super::{DynamoDbStore, LIVE, backoff, now_value};
use crate::domain::identity::{CustomId, Identity, IdentityId};
use crate::domain::ports::{Attempt, Attempted, Created, IdentityStore, StoreError, TokenState};

/// Transactions touching one customId may be cancelled with `TransactionConflict` while
/// another is in flight; those are retried a few times before giving up.
const CONFLICT_ATTEMPTS: u32 = 8;

impl DynamoDbStore {
    pub(super) async fn get_live(&self, id: &IdentityId) -> Result<Option<Identity>, StoreError> {
        let item: Option<IdentityItem> = self.get_item(identity_key(id)).await?;
        live(item)
    }

    /// The identity a customId's mapping names (None: no mapping, or an unreadable id).
    pub(super) async fn mapped_id(
        &self,
        custom_id: &CustomId,
    ) -> Result<Option<IdentityId>, StoreError> {
        let mapping: Option<CustomIdItem> = self.get_item(custom_id_key(custom_id)).await?;
        Ok(mapping.and_then(|m| IdentityId::parse(&m.identity_id).ok()))
    }

    /// After a failed write of a fresh identity: did it land anyway (an SDK retry of a
    /// write that had succeeded, or a timeout after the write)? The id is random and
    /// `createdAt` ours, so a match is our own write.
    async fn landed(&self, identity: &Identity) -> bool {
        matches!(
            self.get_item::<IdentityItem>(identity_key(&identity.id)).await,
            Ok(Some(item)) if item.created_at == identity.created_at.timestamp_millis()
        )
    }

    /// The identity a customId (or a replayed request) maps to; when `creating` carries a
    /// token issue, records it on that identity in the same round trip.
    async fn existing_for(
        &self,
        mapped_id: &str,
        creating: &Identity,
    ) -> Result<Option<Identity>, StoreError> {
        let Ok(id) = IdentityId::parse(mapped_id) else {
            return Ok(None);
        };
        match creating.token_issue_for(&id) {
            Some(at) => self.record_token_issue(&id, at).await,
            None => self.get_live(&id).await,
        }
    }

    /// Removes a mapping whose identity is gone (expired), unless it changed meanwhile.
    pub(super) async fn remove_stale_mapping(
        &self,
        custom_id: &CustomId,
        identity_id: &str,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(custom_id_key(custom_id))))
            .condition_expression("identityId = :id")
            .expression_attribute_values(":id", AttributeValue::S(identity_id.to_owned()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if condition_failed(&err) => Ok(()),
            Err(err) => Err(store_error(err)),
        }
    }

    async fn create_plain(&self, identity: Identity) -> Result<Created, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(encode(&IdentityItem::from_identity(&identity))))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(Created::New(identity)),
            Err(_) if self.landed(&identity).await => Ok(Created::New(identity)),
            Err(err) => Err(store_error(err)),
        }
    }

    /// A new identity's item and one more item (its mapping, its attempt record) in one
    /// transaction. None: written (or it landed though the call failed); otherwise why
    /// the transaction was cancelled, item by item.
    async fn put_with_identity(
        &self,
        identity: &Identity,
        other: &Put,
    ) -> Result<Option<Vec<CancellationReason>>, StoreError> {
        let identity_put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(encode(&IdentityItem::from_identity(identity))))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| StoreError::Failed(e.to_string()))?;
        let result = self
            .transact(
                TransactWriteItem::builder().put(identity_put).build(),
                TransactWriteItem::builder().put(other.clone()).build(),
            )
            .await;
        let Err(err) = result else {
            return Ok(None);
        };
        match cancellation_reasons(err) {
            Ok(reasons) => Ok(Some(reasons)),
            Err(_) if self.landed(identity).await => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// The identity and its attempt record in one transaction; a refused record is a
    /// retry (the same key and body), unless the identity it made is gone: then the
    /// record is replaced (if it still names that identity) with the new one.
    async fn create_attempt(
        &self,
        identity: Identity,
        attempt: &Attempt,
    ) -> Result<Attempted, StoreError> {
        let record = encode(&AttemptItem {
            pk: attempt_key(attempt),
            identity_id: identity.id.to_string(),
            expires_at: attempt.expires_at.timestamp(),
        });
        // An expired record (not yet removed by the TTL) no longer counts.
        let record_put = |gone: Option<&str>| {
            let condition = "attribute_not_exists(pk) OR expiresAt <= :now";
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(record.clone()))
                .expression_attribute_values(":now", now_value())
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                );
            match gone {
                Some(gone) => put
                    .condition_expression(format!("{condition} OR identityId = :gone"))
                    .expression_attribute_values(":gone", AttributeValue::S(gone.to_owned())),
                None => put.condition_expression(condition),
            }
            .build()
            .map_err(|e| StoreError::Failed(e.to_string()))
        };
        let mut attempt_put = record_put(None)?;
        for round in 0..CONFLICT_ATTEMPTS {
            let Some(reasons) = self.put_with_identity(&identity, &attempt_put).await? else {
                return Ok(Attempted::New(identity));
            };
            if reason_code(&reasons, 1) == "ConditionalCheckFailed" {
                let first = match reasons[1].item() {
                    Some(item) => Some(decode::<AttemptItem>(item.clone())?),
                    None => self.get_item(attempt_key(attempt)).await?,
                };
                // Removed or expired meanwhile (the TTL removes records late): try again.
                let Some(first) = first.filter(|f| f.expires_at > Utc::now().timestamp()) else {
                    continue;
                };
                match self.existing_for(&first.identity_id, &identity).await? {
                    Some(made) => return Ok(Attempted::Replayed(made)),
                    // Gone (deleted, or expired): this attempt is recorded anew.
                    None => {
                        attempt_put = record_put(Some(&first.identity_id))?;
                        continue;
                    }
                }
            }
            if !is_conflict(&reasons) {
                return Err(StoreError::Failed(format!(
                    "create cancelled: {:?}",
                    reasons.iter().map(|r| r.code()).collect::<Vec<_>>()
                )));
            }
            tokio::time::sleep(backoff(round)).await;
        }
        Err(StoreError::Unavailable("create kept conflicting".into()))
    }

    async fn create_with_custom_id(
        &self,
        identity: Identity,
        custom_id: &CustomId,
    ) -> Result<Created, StoreError> {
        let mapping = CustomIdItem {
            pk: custom_id_key(custom_id),
            identity_id: identity.id.to_string(),
            created_at: identity.created_at.timestamp_millis(),
        };
        let mapping_put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(encode(&mapping)))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| StoreError::Failed(e.to_string()))?;

        // Most creates with a customId are repeats (an app user's token refresh): one read
        // answers them, where a refused transaction would cost two writes.
        if let Some(mapping) = self
            .get_item::<CustomIdItem>(custom_id_key(custom_id))
            .await?
            && let Some(existing) = self.existing_for(&mapping.identity_id, &identity).await?
        {
            return Ok(Created::Existing(existing));
        }
        for attempt in 0..CONFLICT_ATTEMPTS {
            let Some(reasons) = self.put_with_identity(&identity, &mapping_put).await? else {
                return Ok(Created::New(identity));
            };
            tracing::debug!(codes = ?reasons.iter().map(|r| r.code()).collect::<Vec<_>>(), attempt, "customId create cancelled");
            if reason_code(&reasons, 1) == "ConditionalCheckFailed" {
                // The customId is taken: answer with its identity, unless that one expired.
                let returned = reasons[1]
                    .item()
                    .and_then(|item| item.get("identityId"))
                    .and_then(|v| v.as_s().ok())
                    .cloned();
                let mapped = match returned {
                    Some(id) => Some(id),
                    None => self
                        .get_item::<CustomIdItem>(custom_id_key(custom_id))
                        .await?
                        .map(|m| m.identity_id),
                };
                if let Some(mapped) = mapped {
                    match self.existing_for(&mapped, &identity).await? {
                        Some(existing) => return Ok(Created::Existing(existing)),
                        None => self.remove_stale_mapping(custom_id, &mapped).await?,
                    }
                }
                // The mapping was gone or stale: try again.
            } else if !is_conflict(&reasons) {
                return Err(StoreError::Failed(format!(
                    "create cancelled: {:?}",
                    reasons.iter().map(|r| r.code()).collect::<Vec<_>>()
                )));
            }
            tokio::time::sleep(backoff(attempt)).await;
        }
        Err(StoreError::Unavailable(
            "customId create kept conflicting".into(),
        ))
    }

    /// Deletes an identity whose item says it has a customId, with its mapping, in one
    /// transaction. Ok(None): the mapping belongs to someone else; delete the identity alone.
    async fn delete_with_mapping(
        &self,
        id: &IdentityId,
        custom_id: &CustomId,
    ) -> Result<Option<bool>, StoreError> {
        let delete_identity = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(identity_key(id))))
            .condition_expression(LIVE)
            .expression_attribute_values(":now", now_value())
            .build()
            .map_err(|e| StoreError::Failed(e.to_string()))?;
        let delete_mapping = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(custom_id_key(custom_id))))
            .condition_expression("attribute_not_exists(pk) OR identityId = :id")
            .expression_attribute_values(":id", AttributeValue::S(id.to_string()))
            .build()
            .map_err(|e| StoreError::Failed(e.to_string()))?;
        for attempt in 0..CONFLICT_ATTEMPTS {
            let result = self
                .transact(
                    TransactWriteItem::builder()
                        .delete(delete_identity.clone())
                        .build(),
                    TransactWriteItem::builder()
                        .delete(delete_mapping.clone())
                        .build(),
                )
                .await;
            let reasons = match result {
                Ok(_) => return Ok(Some(true)),
                Err(err) => cancellation_reasons(err)?,
            };
            match (reason_code(&reasons, 0), reason_code(&reasons, 1)) {
                ("ConditionalCheckFailed", _) => return Ok(Some(false)), // gone meanwhile
                (_, "ConditionalCheckFailed") => return Ok(None),
                _ if is_conflict(&reasons) => tokio::time::sleep(backoff(attempt)).await,
                (first, second) => {
                    return Err(StoreError::Failed(format!(
                        "delete cancelled: {first}, {second}"
                    )));
                }
            }
        }
        Err(StoreError::Unavailable("delete kept conflicting".into()))
    }

    /// One conditional DeleteItem. `only_without_custom_id`: refuse (and return the item)
    /// when the identity has a customId, whose mapping must go in the same transaction.
    async fn delete_item(
        &self,
        id: &IdentityId,
        only_without_custom_id: bool,
    ) -> Result<Result<(), Option<Item>>, StoreError> {
        let condition = if only_without_custom_id {
            format!("attribute_not_exists(customId) AND {LIVE}")
        } else {
            LIVE.to_owned()
        };
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(identity_key(id))))
            .condition_expression(condition)
            .expression_attribute_values(":now", now_value())
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Ok(())),
            Err(err) if condition_failed(&err) => Ok(Err(match err.into_service_error() {
                DeleteItemError::ConditionalCheckFailedException(e) => e.item,
                _ => None,
            })),
            Err(err) => Err(store_error(err)),
        }
    }
}

#[async_trait]
impl IdentityStore for DynamoDbStore {
    async fn create(&self, identity: Identity) -> Result<Created, StoreError> {
        match identity.custom_id.clone() {
            Some(custom_id) => self.create_with_custom_id(identity, &custom_id).await,
            None => self.create_plain(identity).await,
        }
    }

    async fn create_once(
        &self,
        identity: Identity,
        attempt: &Attempt,
    ) -> Result<Attempted, StoreError> {
        self.create_attempt(identity, attempt).await
    }

    async fn get(&self, id: &IdentityId) -> Result<Option<Identity>, StoreError> {
        self.get_live(id).await
    }

    async fn token_state(&self, id: &IdentityId) -> Result<TokenState, StoreError> {
        self.read_token_state(id).await
    }

    async fn find_by_custom_id(
        &self,
        custom_id: &CustomId,
    ) -> Result<Option<Identity>, StoreError> {
        match self.mapped_id(custom_id).await? {
            Some(id) => self.get_live(&id).await,
            None => Ok(None),
        }
    }

    async fn record_token_issue(
        &self,
        id: &IdentityId,
        at: DateTime<Utc>,
    ) -> Result<Option<Identity>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(identity_key(id))))
            .update_expression("SET lastTokenIssuedAt = :at")
            .condition_expression(LIVE)
            .expression_attribute_values(
                ":at",
                AttributeValue::N(at.timestamp_millis().to_string()),
            )
            .expression_attribute_values(":now", now_value())
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(output) => {
                let item = output.attributes.ok_or_else(|| {
                    StoreError::Failed("UpdateItem returned no attributes".into())
                })?;
                Ok(Some(decode::<IdentityItem>(item)?.into_identity()?))
            }
            Err(err) if condition_failed(&err) => Ok(None),
            Err(err) => Err(store_error(err)),
        }
    }

    async fn revoke_tokens(&self, id: &IdentityId) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(identity_key(id))))
            .update_expression("ADD revocationEpoch :one")
            .condition_expression(LIVE)
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":now", now_value())
            .send()
            .await;
        conditionally_written(result)
    }

    /// One round trip for an identity without customId; with one, the refused delete
    /// returns the item and a transaction removes identity and mapping together.
    async fn delete(&self, id: &IdentityId) -> Result<bool, StoreError> {
        let refused = match self.delete_item(id, true).await? {
            Ok(()) => return Ok(true),
            Err(item) => item,
        };
        let item = match refused {
            Some(item) => Some(decode::<IdentityItem>(item)?),
            None => self.get_item(identity_key(id)).await?,
        };
        let Some(identity) = live(item)? else {
            return Ok(false);
        };
        let deleted = match &identity.custom_id {
            Some(custom_id) => self.delete_with_mapping(id, custom_id).await?,
            None => None, // expired between the two calls, or raced: plain delete decides
        };
        match deleted {
            Some(deleted) => Ok(deleted),
            // The mapping points elsewhere (never in normal operation): the identity goes alone.
            None => Ok(self.delete_item(id, false).await?.is_ok()),
        }
    }
}
