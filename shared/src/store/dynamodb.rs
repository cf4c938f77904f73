//! The DynamoDB adapter: one table keyed by `pk`, holding identity items (`ID#<id>`) and
//! customId mapping items (`CID#<customId>`). `expiresAt` is the table's TTL attribute.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, CancellationReason, Delete, KeySchemaElement,
    KeyType, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, ScalarAttributeType,
    StreamSpecification, StreamViewType, TimeToLiveSpecification, TransactWriteItem,
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

/// Throttling, conflicts and transient failures are worth a retry (writes that may have
/// landed are read back by their callers before answering).
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
                | "TransactionConflictException"
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

/// True when a call was refused only because its condition did not hold.
fn condition_failed<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    err.as_service_error().and_then(|e| e.code()) == Some("ConditionalCheckFailedException")
}

/// The per-item reasons of a cancelled transaction; any other failure as a `StoreError`.
fn cancellation_reasons<R>(
    err: SdkError<TransactWriteItemsError, R>,
) -> Result<Vec<CancellationReason>, StoreError> {
    match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(canceled)) => {
            Ok(canceled.cancellation_reasons().to_vec())
        }
        _ => Err(store_error(err)),
    }
}

fn reason_code(reasons: &[CancellationReason], index: usize) -> &str {
    reasons.get(index).and_then(|r| r.code()).unwrap_or("None")
}

fn is_conflict(reasons: &[CancellationReason]) -> bool {
    reasons
        .iter()
        .any(|r| r.code() == Some("TransactionConflict"))
}

impl DynamoDbStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// An identity item and its customId mapping, written or deleted together.
    async fn transact(
        &self,
        identity: TransactWriteItem,
        mapping: TransactWriteItem,
    ) -> Result<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput,
        SdkError<TransactWriteItemsError, aws_sdk_dynamodb::config::http::HttpResponse>,
    > {
        self.client
            .transact_write_items()
            .transact_items(identity)
            .transact_items(mapping)
            .send()
            .await
    }

    pub fn table(&self) -> &str {
        &self.table
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
        live(item)
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

    /// The identity a customId maps to; with `issued_at`, records a token issue on it in
    /// the same round trip.
    async fn existing_for(
        &self,
        mapped_id: &str,
        issued_at: Option<DateTime<Utc>>,
    ) -> Result<Option<Identity>, StoreError> {
        let Ok(id) = IdentityId::parse(mapped_id) else {
            return Ok(None);
        };
        match issued_at {
            Some(at) => self.record_token_issue(&id, at).await,
            None => self.get_live(&id).await,
        }
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

        // Most creates with a customId are repeats (an app user's token refresh): one read
        // answers them, where a refused transaction would cost two writes.
        if let Some(mapping) = self
            .get_item::<CustomIdItem>(custom_id_key(custom_id))
            .await?
            && let Some(existing) = self
                .existing_for(&mapping.identity_id, identity.last_token_issued_at)
                .await?
        {
            return Ok(Created::Existing(existing));
        }
        for attempt in 0..CONFLICT_ATTEMPTS {
            let result = self
                .transact(
                    TransactWriteItem::builder()
                        .put(identity_put.clone())
                        .build(),
                    TransactWriteItem::builder()
                        .put(mapping_put.clone())
                        .build(),
                )
                .await;
            let err = match result {
                Ok(_) => return Ok(Created::New(identity)),
                Err(err) => err,
            };
            let reasons = match cancellation_reasons(err) {
                Ok(reasons) => reasons,
                Err(_) if self.landed(&identity).await => return Ok(Created::New(identity)),
                Err(err) => return Err(err),
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
                    match self
                        .existing_for(&mapped, identity.last_token_issued_at)
                        .await?
                    {
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
            // The cleanup function consumes the stream (template.yaml does the same).
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewAndOldImages)
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

fn live(item: Option<IdentityItem>) -> Result<Option<Identity>, StoreError> {
    let identity = item.map(IdentityItem::into_identity).transpose()?;
    Ok(identity.filter(|i| i.is_live_at(Utc::now())))
}

fn backoff(attempt: u32) -> Duration {
    // 5, 10, 20, … ms with jitter, so racing creators do not collide in lockstep.
    let base = 5u64 << attempt.min(6);
    Duration::from_millis(base + u64::from(uuid::Uuid::new_v4().as_bytes()[0]) % base)
}

#[async_trait]
impl IdentityStore for DynamoDbStore {
    async fn create(&self, identity: Identity) -> Result<Created, StoreError> {
        match identity.custom_id.clone() {
            Some(custom_id) => self.create_with_custom_id(identity, &custom_id).await,
            None => self.create_plain(identity).await,
        }
    }

    async fn get(&self, id: &IdentityId) -> Result<Option<Identity>, StoreError> {
        self.get_live(id).await
    }

    async fn find_by_custom_id(
        &self,
        custom_id: &CustomId,
    ) -> Result<Option<Identity>, StoreError> {
        match self
            .get_item::<CustomIdItem>(custom_id_key(custom_id))
            .await?
        {
            Some(mapping) => self.existing_for(&mapping.identity_id, None).await,
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
        match result {
            Ok(_) => Ok(true),
            Err(err) if condition_failed(&err) => Ok(false),
            Err(err) => Err(store_error(err)),
        }
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

const SWEEP_CURSOR_KEY: &str = "SWEEP#cursor";

#[async_trait]
impl super::Housekeeping for DynamoDbStore {
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
        limit: i32,
    ) -> Result<(Vec<Identity>, Option<String>), StoreError> {
        let output = self
            .client
            .scan()
            .table_name(&self.table)
            .limit(limit.max(1))
            .filter_expression("begins_with(pk, :prefix)")
            .expression_attribute_values(":prefix", AttributeValue::S("ID#".into()))
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

    async fn purge(&self, identity: &Identity) -> Result<bool, StoreError> {
        // Only as the sweep saw it: a token issued since (or a changed expiry) keeps it.
        let mut request = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(identity_key(&identity.id))));
        let mut condition = String::from("attribute_exists(pk)");
        match identity.last_token_issued_at {
            Some(seen) => {
                condition.push_str(" AND lastTokenIssuedAt = :seen");
                request = request.expression_attribute_values(
                    ":seen",
                    AttributeValue::N(seen.timestamp_millis().to_string()),
                );
            }
            None => condition.push_str(" AND attribute_not_exists(lastTokenIssuedAt)"),
        }
        if let IdentityKind::Ephemeral { expires_at } = identity.kind {
            condition.push_str(" AND expiresAt = :expires");
            request = request.expression_attribute_values(
                ":expires",
                AttributeValue::N(expires_at.timestamp().to_string()),
            );
        }
        match request.condition_expression(condition).send().await {
            Ok(_) => {}
            Err(err) if condition_failed(&err) => return Ok(false),
            Err(err) => return Err(store_error(err)),
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
            .set_key(Some(key(SWEEP_CURSOR_KEY.into())))
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
                    .item("pk", AttributeValue::S(SWEEP_CURSOR_KEY.into()))
                    .item("next", AttributeValue::S(next.to_owned()))
                    .send()
                    .await
                    .map_err(store_error)?;
            }
            None => {
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .set_key(Some(key(SWEEP_CURSOR_KEY.into())))
                    .send()
                    .await
                    .map_err(store_error)?;
            }
        }
        Ok(())
    }
}

/// Guest throttling counters: one item per key and window (`THROTTLE#<key>#<start>`),
/// removed by the table's TTL a minute after the window.
#[async_trait]
impl super::Throttle for DynamoDbStore {
    async fn hit(
        &self,
        key: &str,
        window_start: i64,
        window_seconds: i64,
    ) -> Result<u64, StoreError> {
        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self::key(format!("THROTTLE#{key}#{window_start}"))))
            .update_expression("ADD hits :one SET expiresAt = :expires")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(
                ":expires",
                AttributeValue::N((window_start + window_seconds + 60).to_string()),
            )
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(store_error)?;
        output
            .attributes
            .and_then(|item| {
                item.get("hits")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse().ok())
            })
            .ok_or_else(|| StoreError::Failed("UpdateItem returned no hit count".into()))
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
