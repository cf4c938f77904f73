//! Guest throttle counters on DynamoDB.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use super::DynamoDbStore;
use super::errors::store_error;
use super::items::{key, throttle_key};
use crate::domain::ports::{StoreError, Throttle};

/// Guest throttling counters: one item per key and window (`THROTTLE#<key>#<start>`, and
/// per region in a multi-region deployment: `THROTTLE#<key>#<region>#<start>`), removed by
/// the table's TTL a minute after the window.
#[async_trait]
impl Throttle for DynamoDbStore {
    async fn hit(
        &self,
        counter: &str,
        window_start: i64,
        window_seconds: i64,
    ) -> Result<u64, StoreError> {
        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(throttle_key(
                &self.regional_key(counter),
                window_start,
            ))))
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
