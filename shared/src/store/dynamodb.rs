//! The DynamoDB adapter: one table keyed by `pk`, holding identity items (`ID#<id>`) and
//! customId mapping items (`CID#<customId>`). `expiresAt` is the table's TTL attribute.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, CancellationReason, Delete, KeySchemaElement,
    KeyType, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, ScalarAttributeType,
    TimeToLiveSpecification, TransactWriteItem,
};
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::{Created, IdentityStore, StoreError};
use crate::identity::{CustomId, Identity, IdentityId, IdentityKind};

type Item = HashMap<String, AttributeValue>;

pub const TTL_ATTRIBUTE: &str = "expiresAt";
/// Transactions touching one customId may be cancelled with `TransactionConflict` while
/// another is in flight; those are retried a few times before giving up.
const CONFLICT_ATTEMPTS: u32 = 8;
const LIVE: &str = "attribute_exists(pk) AND (attribute_not_exists(expiresAt) OR expiresAt > :now)";

pub struct DynamoDbStore {
    client: Client,
    table: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IdentityItem {
    pk: String,
    id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    custom_id: Option<String>,
    created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_token_issued_at: Option<i64>,
    revocation_epoch: u64,
    ephemeral: bool,
    /// Epoch seconds; DynamoDB's TTL removes the item some time after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CustomIdItem {
    pk: String,
    identity_id: String,
    created_at: i64,
}

fn identity_key(id: &IdentityId) -> String {
    format!("ID#{id}")
}

fn custom_id_key(custom_id: &CustomId) -> String {
    format!("CID#{}", custom_id.as_str())
}

fn key(pk: String) -> Item {
    HashMap::from([("pk".to_owned(), AttributeValue::S(pk))])
}

impl IdentityItem {
    fn from_identity(identity: &Identity) -> Self {
        let (ephemeral, expires_at) = match identity.kind {
            IdentityKind::Stable => (false, None),
            IdentityKind::Ephemeral { expires_at } => (true, Some(expires_at.timestamp())),
        };
        Self {
            pk: identity_key(&identity.id),
            id: identity.id.to_string(),
            custom_id: identity.custom_id.as_ref().map(|c| c.as_str().to_owned()),
            created_at: identity.created_at.timestamp_millis(),
            last_token_issued_at: identity.last_token_issued_at.map(|t| t.timestamp_millis()),
            revocation_epoch: identity.revocation_epoch,
            ephemeral,
            expires_at,
        }
    }

    fn into_identity(self) -> Result<Identity, StoreError> {
        let corrupt = |what: &str| StoreError::Failed(format!("item {}: bad {what}", self.pk));
        let kind = match (self.ephemeral, self.expires_at) {
            (false, _) => IdentityKind::Stable,
            (true, Some(seconds)) => IdentityKind::Ephemeral {
                expires_at: Utc
                    .timestamp_opt(seconds, 0)
                    .single()
                    .ok_or_else(|| corrupt("expiresAt"))?,
            },
            (true, None) => return Err(corrupt("expiresAt")),
        };
        Ok(Identity {
            id: IdentityId::parse(&self.id).map_err(|_| corrupt("id"))?,
            custom_id: self
                .custom_id
                .as_deref()
                .map(CustomId::parse)
                .transpose()
                .map_err(|_| corrupt("customId"))?,
            created_at: millis(self.created_at).ok_or_else(|| corrupt("createdAt"))?,
            last_token_issued_at: match self.last_token_issued_at {
                Some(ms) => Some(millis(ms).ok_or_else(|| corrupt("lastTokenIssuedAt"))?),
                None => None,
            },
            revocation_epoch: self.revocation_epoch,
            kind,
        })
    }
}

fn millis(ms: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms).single()
}

fn decode<T: serde::de::DeserializeOwned>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Failed(format!("unreadable item: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Item {
    serde_dynamo::to_item(value).expect("plain records serialize")
}

/// Throttling and transient failures mean nothing was written: callers may retry.
fn store_error<E: ProvideErrorMetadata, R>(err: SdkError<E, R>) -> StoreError {
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
            StoreError::Unavailable(format!("DynamoDB unreachable: {}", err_code(&err)))
        }
        SdkError::ServiceError(service) => match service.err().code() {
            Some(
                code @ ("ProvisionedThroughputExceededException"
                | "RequestLimitExceeded"
                | "ThrottlingException"
                | "InternalServerError"),
            ) => StoreError::Unavailable(code.to_owned()),
            code => StoreError::Failed(format!(
                "DynamoDB: {} {}",
                code.unwrap_or("unknown error"),
                service.err().message().unwrap_or_default()
            )),
        },
        _ => StoreError::Failed(format!("DynamoDB: {}", err_code(&err))),
    }
}

fn err_code<E, R>(err: &SdkError<E, R>) -> &'static str {
    match err {
        SdkError::ConstructionFailure(_) => "request construction failed",
        SdkError::TimeoutError(_) => "timeout",
        SdkError::DispatchFailure(_) => "dispatch failure",
        SdkError::ResponseError(_) => "unreadable response",
        SdkError::ServiceError(_) => "service error",
        _ => "unknown error",
    }
}

fn now_value() -> AttributeValue {
    AttributeValue::N(Utc::now().timestamp().to_string())
}

/// How a transaction was cancelled, per item.
fn reason_codes(reasons: &[CancellationReason]) -> Vec<&str> {
    reasons.iter().map(|r| r.code().unwrap_or("None")).collect()
}

impl DynamoDbStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    async fn get_item<T: serde::de::DeserializeOwned>(
        &self,
        pk: String,
    ) -> Result<Option<T>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        output.item.map(decode).transpose()
    }

    async fn get_live(&self, id: &IdentityId) -> Result<Option<Identity>, StoreError> {
        let item: Option<IdentityItem> = self.get_item(identity_key(id)).await?;
        let identity = item.map(IdentityItem::into_identity).transpose()?;
        Ok(identity.filter(|i| i.is_live_at(Utc::now())))
    }

    /// The identity a customId mapping points at, if the mapping exists.
    async fn mapped_identity(
        &self,
        custom_id: &CustomId,
    ) -> Result<Option<(String, Option<Identity>)>, StoreError> {
        let Some(mapping) = self
            .get_item::<CustomIdItem>(custom_id_key(custom_id))
            .await?
        else {
            return Ok(None);
        };
        let identity = match IdentityId::parse(&mapping.identity_id) {
            Ok(id) => self.get_live(&id).await?,
            Err(_) => None,
        };
        Ok(Some((mapping.identity_id, identity)))
    }

    /// Removes a mapping whose identity is gone (expired), unless it changed meanwhile.
    async fn remove_stale_mapping(
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
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(err) => Err(store_error(err)),
        }
    }

    async fn create_with_custom_id(
        &self,
        identity: Identity,
        custom_id: &CustomId,
    ) -> Result<Created, StoreError> {
        let identity_put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(encode(&IdentityItem::from_identity(&identity))))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| StoreError::Failed(e.to_string()))?;
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

        for attempt in 0..CONFLICT_ATTEMPTS {
            let result = self
                .client
                .transact_write_items()
                .transact_items(
                    TransactWriteItem::builder()
                        .put(identity_put.clone())
                        .build(),
                )
                .transact_items(
                    TransactWriteItem::builder()
                        .put(mapping_put.clone())
                        .build(),
                )
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(Created::New(identity)),
                Err(err) => err,
            };
            let canceled = match err.into_service_error() {
                TransactWriteItemsError::TransactionCanceledException(canceled) => canceled,
                other => return Err(store_error(SdkError::<_, ()>::service_error(other, ()))),
            };
            let codes = reason_codes(canceled.cancellation_reasons());
            tracing::debug!(?codes, attempt, "customId create cancelled");
            if codes.get(1) == Some(&"ConditionalCheckFailed") {
                // The customId is taken: answer with its identity, unless that one expired.
                match self.mapped_identity(custom_id).await? {
                    Some((_, Some(existing))) => return Ok(Created::Existing(existing)),
                    Some((stale, None)) => self.remove_stale_mapping(custom_id, &stale).await?,
                    None => {} // deleted meanwhile: try again
                }
            } else if !codes.contains(&"TransactionConflict") {
                return Err(StoreError::Failed(format!("create cancelled: {codes:?}")));
            }
            tokio::time::sleep(backoff(attempt)).await;
        }
        Err(StoreError::Unavailable(
            "customId create kept conflicting".into(),
        ))
    }

    /// Creates the table (on-demand, TTL on `expiresAt`) if it does not exist yet: for
    /// local runs and tests; deployments get it from template.yaml.
    pub async fn create_table_if_missing(&self) -> Result<(), StoreError> {
        let exists = self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await;
        if exists.is_ok() {
            return Ok(());
        }
        self.client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("pk")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(|e| StoreError::Failed(e.to_string()))?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("pk")
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(|e| StoreError::Failed(e.to_string()))?,
            )
            .send()
            .await
            .map_err(store_error)?;
        self.client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(TTL_ATTRIBUTE)
                    .enabled(true)
                    .build()
                    .map_err(|e| StoreError::Failed(e.to_string()))?,
            )
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }
}

fn backoff(attempt: u32) -> Duration {
    // 5, 10, 20, … ms with jitter, so racing creators do not collide in lockstep.
    let base = 5u64 << attempt.min(6);
    Duration::from_millis(base + u64::from(uuid::Uuid::new_v4().as_bytes()[0]) % base)
}

#[async_trait]
impl IdentityStore for DynamoDbStore {
    async fn create(&self, identity: Identity) -> Result<Created, StoreError> {
        if let Some(custom_id) = identity.custom_id.clone() {
            return self.create_with_custom_id(identity, &custom_id).await;
        }
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(encode(&IdentityItem::from_identity(&identity))))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(store_error)?;
        Ok(Created::New(identity))
    }

    async fn get(&self, id: &IdentityId) -> Result<Option<Identity>, StoreError> {
        self.get_live(id).await
    }

    async fn find_by_custom_id(
        &self,
        custom_id: &CustomId,
    ) -> Result<Option<Identity>, StoreError> {
        Ok(self
            .mapped_identity(custom_id)
            .await?
            .and_then(|(_, identity)| identity))
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
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(None)
            }
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
        match result {
            Ok(_) => Ok(true),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(err) => Err(store_error(err)),
        }
    }

    async fn delete(&self, id: &IdentityId) -> Result<bool, StoreError> {
        for attempt in 0..CONFLICT_ATTEMPTS {
            let Some(identity) = self.get_live(id).await? else {
                return Ok(false);
            };
            let delete_identity = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key(identity_key(id))))
                .condition_expression("attribute_exists(pk)")
                .build()
                .map_err(|e| StoreError::Failed(e.to_string()))?;
            let mut transaction = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().delete(delete_identity).build());
            if let Some(custom_id) = &identity.custom_id {
                // The mapping goes too, unless it already points elsewhere.
                let delete_mapping = Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(key(custom_id_key(custom_id))))
                    .condition_expression("attribute_not_exists(pk) OR identityId = :id")
                    .expression_attribute_values(":id", AttributeValue::S(id.to_string()))
                    .build()
                    .map_err(|e| StoreError::Failed(e.to_string()))?;
                transaction = transaction
                    .transact_items(TransactWriteItem::builder().delete(delete_mapping).build());
            }
            let err = match transaction.send().await {
                Ok(_) => return Ok(true),
                Err(err) => err,
            };
            let canceled = match err.into_service_error() {
                TransactWriteItemsError::TransactionCanceledException(canceled) => canceled,
                other => return Err(store_error(SdkError::<_, ()>::service_error(other, ()))),
            };
            let codes = reason_codes(canceled.cancellation_reasons());
            match codes.first() {
                Some(&"ConditionalCheckFailed") => return Ok(false), // deleted meanwhile
                _ if codes.contains(&"TransactionConflict") => {
                    tokio::time::sleep(backoff(attempt)).await
                }
                _ => return Err(StoreError::Failed(format!("delete cancelled: {codes:?}"))),
            }
        }
        Err(StoreError::Unavailable("delete kept conflicting".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::ResourceId;

    #[test]
    fn items_round_trip_and_keep_the_ttl_attribute_name() {
        let now = Utc.timestamp_millis_opt(1_800_000_000_123).unwrap();
        let mut identity = Identity::new_stable(
            IdentityId::new(ResourceId::random()),
            Some(CustomId::parse("alice").unwrap()),
            now,
        );
        identity.last_token_issued_at = Some(now);
        identity.revocation_epoch = 4;
        identity.kind = IdentityKind::Ephemeral {
            expires_at: Utc.timestamp_opt(1_800_000_600, 0).unwrap(),
        };
        let item = encode(&IdentityItem::from_identity(&identity));
        assert_eq!(
            item.get(TTL_ATTRIBUTE),
            Some(&AttributeValue::N("1800000600".into()))
        );
        assert_eq!(
            item.get("pk"),
            Some(&AttributeValue::S(format!("ID#{}", identity.id)))
        );
        let back = decode::<IdentityItem>(item)
            .unwrap()
            .into_identity()
            .unwrap();
        assert_eq!(back, identity);
    }
}
