//! The current access keys' fingerprints (`KEYS#access`): written by key regeneration,
//! read with an identity in one BatchGetItem whenever a token is checked.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;

use super::DynamoDbStore;
use super::errors::conditionally_written;
use super::items::{
    ACCESS_KEYS_KEY, AccessKeysItem, IdentityItem, decode, encode, identity_key, key, live,
};
use crate::domain::identity::IdentityId;
use crate::domain::ports::{AccessKeyLedger, StoreError, TokenState};
use crate::domain::token::CurrentAccessKeys;

/// A generation no later than ours is recorded (or none is): our write is not stale.
const NOT_LATER: &str = "attribute_not_exists(pk) OR generation <= :g";

fn strings(values: &[String]) -> AttributeValue {
    AttributeValue::L(values.iter().cloned().map(AttributeValue::S).collect())
}

fn current(item: Option<AccessKeysItem>) -> Option<(CurrentAccessKeys, u64)> {
    item.map(|item| (CurrentAccessKeys(item.fingerprints), item.generation))
}

impl DynamoDbStore {
    pub(super) async fn read_token_state(&self, id: &IdentityId) -> Result<TokenState, StoreError> {
        let mut pks = vec![ACCESS_KEYS_KEY.to_owned()];
        if !id.is_teams_user() {
            pks.push(identity_key(id));
        }
        let mut state = TokenState::default();
        for item in self.batch_get(pks).await? {
            let pk = item.get("pk").and_then(|pk| pk.as_s().ok()).cloned();
            if pk.as_deref() == Some(ACCESS_KEYS_KEY) {
                state.access_keys = current(Some(decode(item)?)).map(|(keys, _)| keys);
            } else {
                state.identity = live(Some(decode::<IdentityItem>(item)?))?;
            }
        }
        Ok(state)
    }
}

#[async_trait]
impl AccessKeyLedger for DynamoDbStore {
    async fn admit_fingerprint(
        &self,
        fingerprint: &str,
        current: &[String],
        generation: u64,
    ) -> Result<bool, StoreError> {
        // A first write lists the keys in force too: a missing item means every key counts.
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(ACCESS_KEYS_KEY.to_owned())))
            .update_expression(
                "SET fingerprints = list_append(if_not_exists(fingerprints, :current), :new), \
                 generation = if_not_exists(generation, :g)",
            )
            .condition_expression(NOT_LATER)
            .expression_attribute_values(":current", strings(current))
            .expression_attribute_values(":new", strings(&[fingerprint.to_owned()]))
            .expression_attribute_values(":g", AttributeValue::N(generation.to_string()))
            .send()
            .await;
        conditionally_written(result)
    }

    async fn settle_fingerprints(
        &self,
        fingerprints: &[String],
        generation: u64,
    ) -> Result<bool, StoreError> {
        let item = encode(&AccessKeysItem {
            pk: ACCESS_KEYS_KEY.to_owned(),
            fingerprints: fingerprints.to_vec(),
            generation,
        });
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(NOT_LATER)
            .expression_attribute_values(":g", AttributeValue::N(generation.to_string()))
            .send()
            .await;
        conditionally_written(result)
    }

    async fn fingerprints(&self) -> Result<Option<(CurrentAccessKeys, u64)>, StoreError> {
        Ok(current(self.get_item(ACCESS_KEYS_KEY.to_owned()).await?))
    }
}
