//! The table's schema, created on demand for local runs and tests (deployments get it
//! from template.yaml, which must say the same): `pk` as the hash key, on-demand billing,
//! a stream with old and new images (the cleanup function consumes it), TTL on
//! `expiresAt`.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    StreamSpecification, StreamViewType, TimeToLiveSpecification,
};

use super::DynamoDbStore;
use super::errors::store_error;
use super::items::TTL_ATTRIBUTE;
use crate::domain::ports::StoreError;

impl DynamoDbStore {
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
