//! The ports: the narrow traits through which the domain reaches the outside world (the
//! identity store, the access keys' fingerprints, guest throttle counters, housekeeping,
//! key sources, versioned secrets and token issuers). Adapters implement them.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::access_keys::AccessKeys;
use super::front::Caller;
use super::identity::{CustomId, Identity, IdentityId, ResourceId};
use super::keys::{KeyError, KeySet, PublishedKeys};
use super::lifecycle::{LifecycleEvent, SweepReason};
use super::token::{CurrentAccessKeys, TokenRejection};

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

/// The first attempt of a create that its client may retry (an SDK retries with the same
/// `x-ms-client-request-id`): who asked with which request id, and what they asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The caller and its request id, e.g. `primary#<x-ms-client-request-id>`.
    pub key: String,
    /// The request body's hash: a retry asks for the very same thing (the same key with
    /// another body is another request).
    pub body_hash: String,
    /// Until then a retry is recognised (the signature window).
    pub expires_at: DateTime<Utc>,
}

/// The result of a create that may be a retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempted {
    New(Identity),
    /// A retry: the identity the first attempt made.
    Replayed(Identity),
}

/// Everything the admin API does to identities. Adapters share one semantics, checked by
/// the conformance suite in `shared/tests/store_conformance.rs`:
/// * an identity with a customId is written together with its mapping, atomically; a
///   second create with that customId returns the first identity, also under races;
/// * expired (ephemeral) identities are treated as absent by every operation;
/// * delete removes the identity and its mapping together.
#[async_trait]
pub trait IdentityStore: Send + Sync {
    /// A fresh id for an identity of `resource` (with `custom_id`, if any). A store that
    /// spans regions picks one its home region is encoded in (`placement`).
    fn new_id(&self, resource: ResourceId, custom_id: Option<&CustomId>) -> IdentityId {
        let _ = custom_id;
        IdentityId::new(resource)
    }
    /// Writes a new identity (with its customId mapping). If the customId already maps to
    /// a live identity, returns that one instead, and when `identity` carries
    /// `last_token_issued_at` records that token issue on it (as `record_token_issue`).
    /// Writing the very same identity again (a retry) answers `New` again.
    async fn create(&self, identity: Identity) -> Result<Created, StoreError>;
    /// Writes a new identity without customId, recording `attempt` (its key and body hash)
    /// with it atomically; a retry of the same attempt before it expires answers
    /// `Replayed` with the first attempt's identity, and when `identity` carries
    /// `last_token_issued_at` records that token issue on it. The same key with another
    /// body is another request. An attempt whose identity is gone is recorded anew, with
    /// the new identity, so that a retry of this one finds it.
    async fn create_once(
        &self,
        identity: Identity,
        attempt: &Attempt,
    ) -> Result<Attempted, StoreError>;
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
    /// What decides whether a token of `id` is live: its identity's record (None for a
    /// Teams user, who has none here) and the current access keys' fingerprints, in one
    /// round trip.
    async fn token_state(&self, id: &IdentityId) -> Result<TokenState, StoreError>;
}

/// The records a token's liveness depends on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenState {
    pub identity: Option<Identity>,
    /// None: no access key has been regenerated yet, every key's tokens count.
    pub access_keys: Option<CurrentAccessKeys>,
}

/// The fingerprints of the current access keys, kept beside the identities so that
/// verifiers read them with the identity (`IdentityStore::token_state`). Key regeneration
/// writes them (`rotation::regenerate_access_key`).
#[async_trait]
pub trait AccessKeyLedger: Send + Sync {
    /// Adds a fingerprint before its key becomes current, so that its tokens count from
    /// the first one, even if the regeneration stops half-way. `current` (the keys of
    /// secret generation `generation`) starts the list if there is none yet. False, and
    /// nothing written, if a later generation is recorded.
    async fn admit_fingerprint(
        &self,
        fingerprint: &str,
        current: &[String],
        generation: u64,
    ) -> Result<bool, StoreError>;
    /// Makes the list exactly `fingerprints`, those of the secret's `generation`, unless a
    /// later generation's are recorded already (false).
    async fn settle_fingerprints(
        &self,
        fingerprints: &[String],
        generation: u64,
    ) -> Result<bool, StoreError>;
    /// The list and the generation it was settled for (None: never written).
    async fn fingerprints(&self) -> Result<Option<(CurrentAccessKeys, u64)>, StoreError>;
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
        limit: u32,
    ) -> Result<(Vec<Identity>, Option<String>), StoreError>;
    /// Deletes an identity (expired ones too) and its mapping, if it is still as `identity`
    /// shows it: a token issued or an expiry changed since keeps it (false). A store with
    /// a stream leaves `reason` for the lifecycle publisher (`EventLedger::swept`).
    async fn purge(&self, identity: &Identity, reason: SweepReason) -> Result<bool, StoreError>;
    async fn sweep_cursor(&self) -> Result<Option<String>, StoreError>;
    async fn save_sweep_cursor(&self, cursor: Option<&str>) -> Result<(), StoreError>;
}

/// Which keys a function needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeysNeeded {
    /// The private signing keys (functions that issue tokens).
    pub signing: bool,
    /// The public keys (functions that verify tokens but issue none).
    pub verifying: bool,
    /// The access keys (functions that serve HMAC-authenticated routes).
    pub access: bool,
}

impl KeysNeeded {
    /// Whether the published public keys are fetched: only where the private ones are not
    /// (a signing key set carries its public half).
    pub fn published(&self) -> bool {
        self.verifying && !self.signing
    }
}

/// The keys a cold start fetched, each with its own outcome; None where not needed.
pub struct LoadedKeys {
    pub signing: Option<Result<KeySet, KeyError>>,
    pub published: Option<Result<PublishedKeys, KeyError>>,
    pub access: Option<Result<AccessKeys, KeyError>>,
}

impl LoadedKeys {
    /// Each key set `needed` from its own fetch, all at once (the others are never polled).
    pub async fn fetch(
        needed: KeysNeeded,
        signing: impl Future<Output = Result<KeySet, KeyError>>,
        published: impl Future<Output = Result<PublishedKeys, KeyError>>,
        access: impl Future<Output = Result<AccessKeys, KeyError>>,
    ) -> Self {
        async fn only_if<T>(wanted: bool, fetch: impl Future<Output = T>) -> Option<T> {
            if wanted { Some(fetch.await) } else { None }
        }
        let (signing, published, access) = tokio::join!(
            only_if(needed.signing, signing),
            only_if(needed.published(), published),
            only_if(needed.access, access),
        );
        Self {
            signing,
            published,
            access,
        }
    }
}

/// Where keys come from: Secrets Manager in AWS, generated in memory for local runs.
#[async_trait]
pub trait KeySource: Send + Sync {
    /// The signing key set, private keys included.
    async fn signing_keys(&self) -> Result<KeySet, KeyError>;
    /// Its public half, as published for functions that only verify.
    async fn published_keys(&self) -> Result<PublishedKeys, KeyError>;
    async fn access_keys(&self) -> Result<AccessKeys, KeyError>;

    /// Everything a cold start needs, fetched together. By default each key set is
    /// fetched on its own, all at once; a source that can fetch several in one round trip
    /// does so.
    async fn load(&self, needed: KeysNeeded) -> LoadedKeys {
        LoadedKeys::fetch(
            needed,
            self.signing_keys(),
            self.published_keys(),
            self.access_keys(),
        )
        .await
    }
}

/// A secret store failed (unreachable, refused); the message names the call.
#[derive(Debug, thiserror::Error)]
#[error("secret store: {0}")]
pub struct SecretStoreError(pub String);

/// A secret with staged versions (Secrets Manager's model): what rotation works on.
#[async_trait]
pub trait VersionedSecret: Send + Sync {
    /// Version id → its stages.
    async fn versions(&self) -> Result<HashMap<String, Vec<String>>, SecretStoreError>;
    /// The value at `stage` (and `version`, if given); None when there is none.
    async fn value(
        &self,
        stage: &str,
        version: Option<&str>,
    ) -> Result<Option<String>, SecretStoreError>;
    /// Stores `value` as version `token`, staged AWSPENDING (idempotent per token).
    async fn put_pending(&self, token: &str, value: &str) -> Result<(), SecretStoreError>;
    /// Moves AWSCURRENT from version `from` (which must hold it) to version `token`.
    async fn promote(&self, token: &str, from: &str) -> Result<(), SecretStoreError>;
    /// Stores `value` as a new version staged AWSCURRENT at once (no rotation protocol).
    async fn put_current(&self, value: &str) -> Result<(), SecretStoreError>;
}

/// Why an identity provider's token was not taken.
#[derive(Debug, thiserror::Error)]
pub enum ProviderTokenError {
    /// The provider's keys cannot be had right now: worth a retry later.
    #[error("identity provider unavailable: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Rejected(TokenRejection),
}

/// Verifies end users' identity-provider tokens (an OpenID Connect provider).
#[async_trait]
pub trait ProviderTokens: Send + Sync {
    async fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Caller, ProviderTokenError>;
}

/// A bearer token that a trusted issuer signed, for the audience configured, unexpired.
#[derive(Debug, Clone, PartialEq)]
pub struct TrustedToken {
    pub issuer: String,
    pub subject: String,
    /// The roles or scopes it carries, read from the claim configured for its issuer.
    pub roles: Vec<String>,
    /// Every claim, for checks beyond these (the Teams exchange's `appid`, `oid`).
    pub claims: serde_json::Value,
}

/// Verifies bearer tokens against a set of trusted issuers (admin callers; Teams users'
/// Entra tokens).
#[async_trait]
pub trait TrustedTokens: Send + Sync {
    async fn verify(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<TrustedToken, ProviderTokenError>;
}

/// What the lifecycle publisher remembers beside the identities: which changes' events are
/// published (so a redelivered change publishes nothing twice), and which identities the
/// retention sweep removed.
#[async_trait]
pub trait EventLedger: Send + Sync {
    /// Those of `change_ids` whose events are published.
    async fn published(&self, change_ids: &[&str]) -> Result<HashSet<String>, StoreError>;
    /// Remembers that these changes' events are published.
    async fn mark_published(&self, change_ids: &[&str]) -> Result<(), StoreError>;
    /// Why the retention sweep removed the identity (it leaves a mark); None: it did not.
    async fn swept(&self, id: &IdentityId) -> Result<Option<SweepReason>, StoreError>;
}

#[derive(Debug, thiserror::Error)]
#[error("event bus: {0}")]
pub struct PublishError(pub String);

/// Where lifecycle events go (EventBridge).
#[async_trait]
pub trait EventBus: Send + Sync {
    /// Publishes up to ten events; answers, for each, whether the bus accepted it.
    async fn publish(&self, events: &[&LifecycleEvent]) -> Result<Vec<bool>, PublishError>;
}
