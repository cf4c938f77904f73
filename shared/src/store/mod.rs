//! The identity store port and its adapters (DynamoDB; in memory).

pub mod dynamodb;
pub mod memory;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::identity::{CustomId, Identity, IdentityId};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store is throttling or unavailable; nothing was written. Worth a retry.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store failure: {0}")]
    Failed(String),
}

/// The result of a create: a new identity, or the one its customId already maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    New(Identity),
    Existing(Identity),
}

impl Created {
    pub fn identity(&self) -> &Identity {
        match self {
            Created::New(identity) | Created::Existing(identity) => identity,
        }
    }
}

/// Everything the admin API does to identities. Adapters share one semantics, checked by
/// the conformance suite in `tests/store_conformance.rs`:
/// * an identity with a customId is written together with its mapping, atomically; a
///   second create with that customId returns the first identity, also under races;
/// * expired (ephemeral) identities are treated as absent by every operation;
/// * delete removes the identity and its mapping together.
#[async_trait]
pub trait IdentityStore: Send + Sync {
    /// Writes a new identity (with its customId mapping). If the customId already maps to
    /// a live identity, returns that one instead, and when `identity` carries
    /// `last_token_issued_at` records that token issue on it (as `record_token_issue`).
    /// Writing the very same identity again (a retry) answers `New` again.
    async fn create(&self, identity: Identity) -> Result<Created, StoreError>;
    async fn get(&self, id: &IdentityId) -> Result<Option<Identity>, StoreError>;
    async fn find_by_custom_id(&self, custom_id: &CustomId)
    -> Result<Option<Identity>, StoreError>;
    /// Records a token issue and returns the identity as it now is (None: no such live
    /// identity). One round trip: its revocation epoch goes into the token.
    async fn record_token_issue(
        &self,
        id: &IdentityId,
        at: DateTime<Utc>,
    ) -> Result<Option<Identity>, StoreError>;
    /// Invalidates every token issued so far. False if there is no such live identity.
    async fn revoke_tokens(&self, id: &IdentityId) -> Result<bool, StoreError>;
    /// Deletes the identity and its customId mapping. False if there was none.
    async fn delete(&self, id: &IdentityId) -> Result<bool, StoreError>;
}

/// Fixed-window request counters (guest throttling), kept beside the identities.
#[async_trait]
pub trait Throttle: Send + Sync {
    /// Counts one request for `key` in the window that starts at `window_start` (epoch
    /// seconds) and lasts `window_seconds`; returns the count so far, this one included.
    /// Counters disappear some time after their window.
    async fn hit(
        &self,
        key: &str,
        window_start: i64,
        window_seconds: i64,
    ) -> Result<u64, StoreError>;
}

/// What the cleanup jobs need beyond the admin operations.
#[async_trait]
pub trait Housekeeping: Send + Sync {
    /// Removes the customId's mapping if it still points at `identity_id` (idempotent).
    async fn unmap_custom_id(
        &self,
        custom_id: &CustomId,
        identity_id: &str,
    ) -> Result<(), StoreError>;
    /// Up to `limit` identity records after `cursor`, expired ones included, and the cursor
    /// to continue from (None: the end).
    async fn identities_page(
        &self,
        cursor: Option<&str>,
        limit: i32,
    ) -> Result<(Vec<Identity>, Option<String>), StoreError>;
    /// Deletes an identity (expired ones too) and its mapping, if it is still as `identity`
    /// shows it: a token issued or an expiry changed since keeps it (false).
    async fn purge(&self, identity: &Identity) -> Result<bool, StoreError>;
    async fn sweep_cursor(&self) -> Result<Option<String>, StoreError>;
    async fn save_sweep_cursor(&self, cursor: Option<&str>) -> Result<(), StoreError>;
}
