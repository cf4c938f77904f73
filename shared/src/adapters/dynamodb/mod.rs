//! The DynamoDB adapter: one table keyed by `pk` (see `items` for what it holds). Split
//! by concern: item mapping, error classification, the identity store (and its
//! multi-region form, `regions`), the access keys' fingerprints, housekeeping, the lifecycle
//! publisher's ledger, the guest throttle, the table schema, and stream records.

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::{
    TransactWriteItemsError, TransactWriteItemsOutput,
};
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, TransactWriteItem, WriteRequest};
use chrono::Utc;

use crate::domain::ports::StoreError;

mod access_keys;
mod errors;
mod events;
mod housekeeping;
mod identities;
pub mod items;
mod regions;
mod schema;
pub mod stream;
mod throttle;

pub use regions::HomedStore;

use items::{Item, decode, key};

/// BatchGetItem and BatchWriteItem may leave keys or items unprocessed under load; they
/// are sent again, this many times in all.
const BATCH_ATTEMPTS: u32 = 4;
/// BatchGetItem's and BatchWriteItem's limits per call.
const READS_PER_CALL: usize = 100;
const WRITES_PER_CALL: usize = 25;

/// An identity (not expired) exists under the key.
const LIVE: &str = "attribute_exists(pk) AND (attribute_not_exists(expiresAt) OR expiresAt > :now)";

pub struct DynamoDbStore {
    client: Client,
    table: String,
    /// In a multi-region deployment, the region whose own items (sweep cursor, guest
    /// throttle counters) this store keeps apart from other regions'.
    region: Option<String>,
}

impl DynamoDbStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            region: None,
        }
    }

    /// Items every region writes for itself get the region in their key, so replication
    /// never overwrites one region's with another's.
    pub fn for_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// `base`, or `base#<region>` in a multi-region deployment.
    fn regional_key(&self, base: &str) -> String {
        match &self.region {
            Some(region) => format!("{base}#{region}"),
            None => base.to_owned(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// An identity item and the item that goes with it (its customId mapping, or the
    /// sweep's mark), written or deleted together.
    async fn transact(
        &self,
        identity: TransactWriteItem,
        with: TransactWriteItem,
    ) -> Result<
        TransactWriteItemsOutput,
        SdkError<TransactWriteItemsError, aws_sdk_dynamodb::config::http::HttpResponse>,
    > {
        self.client
            .transact_write_items()
            .transact_items(identity)
            .transact_items(with)
            .send()
            .await
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
            .map_err(errors::store_error)?;
        output.item.map(decode).transpose()
    }

    /// The items under `pks`, consistently read: one round trip per 100 keys
    /// (BatchGetItem's limit), more only for keys DynamoDB left unprocessed.
    pub(super) async fn batch_get(&self, mut pks: Vec<String>) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        while !pks.is_empty() {
            let rest = pks.split_off(pks.len().min(READS_PER_CALL));
            items.extend(
                self.batch_get_call(std::mem::replace(&mut pks, rest))
                    .await?,
            );
        }
        Ok(items)
    }

    async fn batch_get_call(&self, pks: Vec<String>) -> Result<Vec<Item>, StoreError> {
        let mut wanted = KeysAndAttributes::builder()
            .set_keys(Some(pks.into_iter().map(key).collect()))
            .consistent_read(true)
            .build()
            .map_err(|e| StoreError::Failed(e.to_string()))?;
        let mut items = Vec::new();
        for attempt in 0..BATCH_ATTEMPTS {
            let output = self
                .client
                .batch_get_item()
                .request_items(&self.table, wanted)
                .send()
                .await
                .map_err(errors::store_error)?;
            items.extend(
                output
                    .responses
                    .and_then(|mut tables| tables.remove(&self.table))
                    .unwrap_or_default(),
            );
            match output
                .unprocessed_keys
                .and_then(|mut tables| tables.remove(&self.table))
            {
                Some(rest) if !rest.keys.is_empty() => {
                    wanted = rest;
                    if attempt + 1 < BATCH_ATTEMPTS {
                        tokio::time::sleep(backoff(attempt)).await;
                    }
                }
                _ => return Ok(items),
            }
        }
        Err(StoreError::Unavailable(
            "BatchGetItem left keys unprocessed".into(),
        ))
    }

    /// The writes, one round trip per 25 (BatchWriteItem's limit), more only for items
    /// DynamoDB left unprocessed.
    async fn batch_write(&self, mut requests: Vec<WriteRequest>) -> Result<(), StoreError> {
        while !requests.is_empty() {
            let rest = requests.split_off(requests.len().min(WRITES_PER_CALL));
            self.batch_write_call(std::mem::replace(&mut requests, rest))
                .await?;
        }
        Ok(())
    }

    async fn batch_write_call(&self, mut requests: Vec<WriteRequest>) -> Result<(), StoreError> {
        for attempt in 0..BATCH_ATTEMPTS {
            let output = self
                .client
                .batch_write_item()
                .request_items(&self.table, requests)
                .send()
                .await
                .map_err(errors::store_error)?;
            match output
                .unprocessed_items
                .and_then(|mut tables| tables.remove(&self.table))
            {
                Some(rest) if !rest.is_empty() => {
                    requests = rest;
                    if attempt + 1 < BATCH_ATTEMPTS {
                        tokio::time::sleep(backoff(attempt)).await;
                    }
                }
                _ => return Ok(()),
            }
        }
        Err(StoreError::Unavailable(
            "BatchWriteItem left items unprocessed".into(),
        ))
    }
}

fn now_value() -> AttributeValue {
    AttributeValue::N(Utc::now().timestamp().to_string())
}

fn backoff(attempt: u32) -> Duration {
    // 5, 10, 20, … ms with jitter, so racing creators do not collide in lockstep.
    let base = 5u64 << attempt.min(6);
    Duration::from_millis(base + u64::from(uuid::Uuid::new_v4().as_bytes()[0]) % base)
}
