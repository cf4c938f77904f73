//! The lifecycle publisher's ledger on DynamoDB: one `EVENT#<change id>` item per claimed
//! event (pending with a lease, then published), and the sweep's `SWEPT#<id>` marks.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Utc};

use super::DynamoDbStore;
use super::errors::{condition_failed, conditionally_written, store_error};
use super::items::{Item, MarkItem, decode, encode, event_key, key, swept_key};
use crate::domain::identity::IdentityId;
use crate::domain::lifecycle::SweepReason;
use crate::domain::ports::{Claim, EventLedger, StoreError};

const PENDING: &str = "pending";
const PUBLISHED: &str = "published";

#[async_trait]
impl EventLedger for DynamoDbStore {
    async fn claim(
        &self,
        change_id: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        let lease = chrono::Duration::from_std(lease)
            .map_err(|_| StoreError::Failed("claim lease out of range".into()))?;
        let mut claim = MarkItem::new(event_key(change_id));
        claim.state = Some(PENDING.into());
        claim.lease_until = Some((now + lease).timestamp_millis());
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(encode(&claim)))
            .condition_expression(
                "attribute_not_exists(pk) OR (#state = :pending AND leaseUntil < :now)",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":pending", AttributeValue::S(PENDING.into()))
            .expression_attribute_values(
                ":now",
                AttributeValue::N(now.timestamp_millis().to_string()),
            )
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Claim::Taken),
            Err(err) if condition_failed(&err) => {
                let held = match err.into_service_error() {
                    PutItemError::ConditionalCheckFailedException(e) => e.item,
                    _ => None,
                };
                Ok(claim_state(held)?)
            }
            Err(err) => Err(store_error(err)),
        }
    }

    async fn confirm(&self, change_id: &str) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(event_key(change_id))))
            .update_expression("SET #state = :published REMOVE leaseUntil")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":published", AttributeValue::S(PUBLISHED.into()))
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn release(&self, change_id: &str) -> Result<(), StoreError> {
        // Never a published mark: that would let a later delivery publish again.
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(event_key(change_id))))
            .condition_expression("#state = :pending")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":pending", AttributeValue::S(PENDING.into()))
            .send()
            .await;
        conditionally_written(result).map(|_| ())
    }

    async fn swept(&self, id: &IdentityId) -> Result<Option<SweepReason>, StoreError> {
        let mark = self.get_item::<MarkItem>(swept_key(id)).await?;
        Ok(mark.and_then(|mark| mark.reason))
    }
}

/// A claim refused by its condition: published, or held by another delivery's lease.
fn claim_state(held: Option<Item>) -> Result<Claim, StoreError> {
    let held = held.map(decode::<MarkItem>).transpose()?;
    Ok(match held.and_then(|mark| mark.state) {
        Some(state) if state == PUBLISHED => Claim::Published,
        _ => Claim::Held,
    })
}
