//! The table's items, the one schema every reader and writer shares: identity items
//! (`ID#<id>`), customId mapping items (`CID#<customId>`), create attempts a client may
//! retry (`REQ#<caller>#<request id>#<body hash>`), guest throttle counters
//! (`THROTTLE#<key>#<window start>`), the sweep cursor (`SWEEP#cursor`; per region, like
//! the throttle counters, in a multi-region deployment), the current
//! access keys' fingerprints (`KEYS#access`), the lifecycle publisher's marks
//! (`EVENT#<change id>`, `SWEPT#<id>`) and, in a multi-region deployment, token
//! issues a region other than the identity's home recorded (`SEEN#<region>#<id>`).
//! `expiresAt` is the table's TTL attribute.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::identity::{CustomId, Identity, IdentityId, IdentityKind};
use crate::domain::lifecycle::SweepReason;
use crate::domain::ports::{Attempt, StoreError};

pub type Item = HashMap<String, AttributeValue>;

pub const TTL_ATTRIBUTE: &str = "expiresAt";
pub const IDENTITY_PREFIX: &str = "ID#";
const CUSTOM_ID_PREFIX: &str = "CID#";
pub(super) const EVENT_PREFIX: &str = "EVENT#";
const SWEPT_PREFIX: &str = "SWEPT#";
pub(super) const SWEEP_CURSOR_KEY: &str = "SWEEP#cursor";
pub(super) const ACCESS_KEYS_KEY: &str = "KEYS#access";

/// The fingerprints of the access keys in force, as of a generation of their secret.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AccessKeysItem {
    pub pk: String,
    pub fingerprints: Vec<String>,
    pub generation: u64,
}

/// A create's first attempt (its key holds the body's hash) and the identity it made,
/// recognised until `expiresAt` (then the table's TTL removes it).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AttemptItem {
    pub pk: String,
    pub identity_id: String,
    pub expires_at: i64,
}

/// An identity as stored.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityItem {
    pub pk: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_id: Option<String>,
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_token_issued_at: Option<i64>,
    pub revocation_epoch: u64,
    pub ephemeral: bool,
    /// Epoch seconds; DynamoDB's TTL removes the item some time after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CustomIdItem {
    pub pk: String,
    pub identity_id: String,
    pub created_at: i64,
}

pub fn identity_key(id: &IdentityId) -> String {
    format!("{IDENTITY_PREFIX}{id}")
}

pub(super) fn custom_id_key(custom_id: &CustomId) -> String {
    format!("{CUSTOM_ID_PREFIX}{}", custom_id.as_str())
}

/// How long the lifecycle publisher's marks (`EVENT#`, `SWEPT#`) are kept: longer than
/// a stream keeps a record (24 hours), so every delivery of a change finds them.
const MARK_LIFETIME: chrono::Duration = chrono::Duration::days(2);

/// A mark for the lifecycle publisher: a change whose event is published
/// (`EVENT#<change id>`) or an identity the sweep removed (`SWEPT#<id>`).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct MarkItem {
    pub pk: String,
    /// Why the sweep removed the identity (`SWEPT#`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<SweepReason>,
    pub expires_at: i64,
}

impl MarkItem {
    pub fn new(pk: String) -> Self {
        Self {
            pk,
            reason: None,
            expires_at: (Utc::now() + MARK_LIFETIME).timestamp(),
        }
    }
}

pub(super) fn event_key(change_id: &str) -> String {
    format!("{EVENT_PREFIX}{change_id}")
}

pub(super) fn swept_key(id: &IdentityId) -> String {
    format!("{SWEPT_PREFIX}{id}")
}

/// A token issue recorded outside the identity's home region: its own item, so that it
/// never overwrites (or brings back) the identity item its home writes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SeenItem {
    pub pk: String,
    pub last_token_issued_at: i64,
    pub expires_at: i64,
}

pub(super) fn seen_key(region: &str, id: &IdentityId) -> String {
    format!("SEEN#{region}#{id}")
}

pub(super) fn attempt_key(attempt: &Attempt) -> String {
    format!("REQ#{}#{}", attempt.key, attempt.body_hash)
}

pub(super) fn throttle_key(key: &str, window_start: i64) -> String {
    format!("THROTTLE#{key}#{window_start}")
}

pub fn key(pk: String) -> Item {
    HashMap::from([("pk".to_owned(), AttributeValue::S(pk))])
}

impl IdentityItem {
    pub fn from_identity(identity: &Identity) -> Self {
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

    pub fn into_identity(self) -> Result<Identity, StoreError> {
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

pub fn decode<T: serde::de::DeserializeOwned>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Failed(format!("unreadable item: {e}")))
}

pub fn encode<T: Serialize>(value: &T) -> Item {
    serde_dynamo::to_item(value).expect("plain records serialize")
}

/// The identity an item holds, unless it expired.
pub(super) fn live(item: Option<IdentityItem>) -> Result<Option<Identity>, StoreError> {
    let identity = item.map(IdentityItem::into_identity).transpose()?;
    Ok(identity.filter(|i| i.is_live_at(Utc::now())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::identity::ResourceId;

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
