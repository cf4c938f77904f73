//! In-memory adapters: an identity store with the DynamoDB adapter's semantics, guest
//! throttle counters, and keys generated at start. For unit tests, benchmarks and the
//! local server.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::access_keys::AccessKeys;
use crate::domain::identity::{CustomId, Identity, IdentityId};
use crate::domain::keys::{KeyError, KeySet, PublishedKeys, StoredKeySet};
use crate::domain::lifecycle::SweepReason;
use crate::domain::ports::{
    AccessKeyLedger, Attempt, Attempted, Created, Housekeeping, IdentityStore, KeySource,
    StoreError, Throttle, TokenState,
};
use crate::domain::token::CurrentAccessKeys;

#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    identities: HashMap<IdentityId, Identity>,
    custom_ids: HashMap<CustomId, IdentityId>,
    /// Attempts by key and body hash: the identity each made, and until when.
    attempts: HashMap<(String, String), (IdentityId, DateTime<Utc>)>,
    sweep_cursor: Option<String>,
    /// The current access keys' fingerprints and their generation, once written.
    access_keys: Option<(Vec<String>, u64)>,
}

impl State {
    fn live(&self, id: &IdentityId) -> Option<&Identity> {
        self.identities.get(id).filter(|i| i.is_live_at(Utc::now()))
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied change: every
        // mutation below is a single insert/remove pair done after all checks.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The token issue `creating` carries, recorded on the identity it turned out to be
/// (`Identity::token_issue_for`).
fn record_issue_on(existing: &mut Identity, creating: &Identity) {
    if let Some(at) = creating.token_issue_for(&existing.id) {
        existing.last_token_issued_at = Some(at);
    }
}

#[async_trait]
impl IdentityStore for MemoryStore {
    async fn create(&self, identity: Identity) -> Result<Created, StoreError> {
        let mut state = self.state();
        let existing = identity
            .custom_id
            .as_ref()
            .and_then(|custom_id| state.custom_ids.get(custom_id))
            .filter(|id| state.live(id).is_some())
            .cloned();
        if let Some(existing) = existing {
            let existing = state.identities.get_mut(&existing).expect("checked live");
            record_issue_on(existing, &identity);
            return Ok(Created::Existing(existing.clone()));
        }
        if let Some(stored) = state.identities.get(&identity.id) {
            // The same write again (a retry) is answered as the first one was.
            return if stored.created_at == identity.created_at {
                Ok(Created::New(stored.clone()))
            } else {
                Err(StoreError::Failed(format!(
                    "identity {} already exists",
                    identity.id
                )))
            };
        }
        if let Some(custom_id) = &identity.custom_id {
            // Replaces a mapping to an expired identity, as the DynamoDB adapter does.
            state
                .custom_ids
                .insert(custom_id.clone(), identity.id.clone());
        }
        state
            .identities
            .insert(identity.id.clone(), identity.clone());
        Ok(Created::New(identity))
    }

    async fn create_once(
        &self,
        identity: Identity,
        attempt: &Attempt,
    ) -> Result<Attempted, StoreError> {
        let mut state = self.state();
        let now = Utc::now();
        state.attempts.retain(|_, (_, until)| *until > now);
        let key = (attempt.key.clone(), attempt.body_hash.clone());
        // A record whose identity is gone is replaced below.
        if let Some((made, _)) = state.attempts.get(&key).cloned()
            && let Some(existing) = state.identities.get_mut(&made)
            && existing.is_live_at(now)
        {
            record_issue_on(existing, &identity);
            return Ok(Attempted::Replayed(existing.clone()));
        }
        if state.identities.contains_key(&identity.id) {
            return Err(StoreError::Failed(format!(
                "identity {} already exists",
                identity.id
            )));
        }
        state
            .attempts
            .insert(key, (identity.id.clone(), attempt.expires_at));
        state
            .identities
            .insert(identity.id.clone(), identity.clone());
        Ok(Attempted::New(identity))
    }

    async fn get(&self, id: &IdentityId) -> Result<Option<Identity>, StoreError> {
        Ok(self.state().live(id).cloned())
    }

    async fn find_by_custom_id(
        &self,
        custom_id: &CustomId,
    ) -> Result<Option<Identity>, StoreError> {
        let state = self.state();
        Ok(state
            .custom_ids
            .get(custom_id)
            .and_then(|id| state.live(id))
            .cloned())
    }

    async fn record_token_issue(
        &self,
        id: &IdentityId,
        at: DateTime<Utc>,
    ) -> Result<Option<Identity>, StoreError> {
        let mut state = self.state();
        if state.live(id).is_none() {
            return Ok(None);
        }
        let identity = state.identities.get_mut(id).expect("checked live");
        identity.last_token_issued_at = Some(at);
        Ok(Some(identity.clone()))
    }

    async fn revoke_tokens(&self, id: &IdentityId) -> Result<bool, StoreError> {
        let mut state = self.state();
        if state.live(id).is_none() {
            return Ok(false);
        }
        state
            .identities
            .get_mut(id)
            .expect("checked live")
            .revocation_epoch += 1;
        Ok(true)
    }

    async fn delete(&self, id: &IdentityId) -> Result<bool, StoreError> {
        let mut state = self.state();
        if state.live(id).is_none() {
            return Ok(false);
        }
        let removed = state.identities.remove(id).expect("checked live");
        if let Some(custom_id) = removed.custom_id
            && state.custom_ids.get(&custom_id) == Some(id)
        {
            state.custom_ids.remove(&custom_id);
        }
        Ok(true)
    }

    async fn token_state(&self, id: &IdentityId) -> Result<TokenState, StoreError> {
        let state = self.state();
        Ok(TokenState {
            identity: state.live(id).cloned(),
            access_keys: state
                .access_keys
                .as_ref()
                .map(|(list, _)| CurrentAccessKeys(list.clone())),
        })
    }
}

#[async_trait]
impl AccessKeyLedger for MemoryStore {
    async fn admit_fingerprint(
        &self,
        fingerprint: &str,
        current: &[String],
        generation: u64,
    ) -> Result<bool, StoreError> {
        let mut state = self.state();
        let (list, recorded) = state
            .access_keys
            .get_or_insert_with(|| (current.to_vec(), generation));
        if *recorded > generation {
            return Ok(false);
        }
        list.push(fingerprint.to_owned());
        Ok(true)
    }

    async fn settle_fingerprints(
        &self,
        fingerprints: &[String],
        generation: u64,
    ) -> Result<bool, StoreError> {
        let mut state = self.state();
        if state
            .access_keys
            .as_ref()
            .is_some_and(|(_, recorded)| *recorded > generation)
        {
            return Ok(false);
        }
        state.access_keys = Some((fingerprints.to_vec(), generation));
        Ok(true)
    }

    async fn fingerprints(&self) -> Result<Option<(CurrentAccessKeys, u64)>, StoreError> {
        Ok(self
            .state()
            .access_keys
            .as_ref()
            .map(|(list, generation)| (CurrentAccessKeys(list.clone()), *generation)))
    }
}

/// Fixed-window counters in memory, for the local server and tests.
#[derive(Default)]
pub struct MemoryThrottle {
    windows: Mutex<HashMap<(String, i64), u64>>,
}

#[async_trait]
impl Throttle for MemoryThrottle {
    async fn hit(
        &self,
        key: &str,
        window_start: i64,
        _window_seconds: i64,
    ) -> Result<u64, StoreError> {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        // Older windows are over: forget them.
        windows.retain(|(_, start), _| *start >= window_start);
        let count = windows.entry((key.to_owned(), window_start)).or_insert(0);
        *count += 1;
        Ok(*count)
    }
}

#[async_trait]
impl Housekeeping for MemoryStore {
    async fn unmap_custom_id(
        &self,
        custom_id: &CustomId,
        identity_id: &str,
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        if state
            .custom_ids
            .get(custom_id)
            .is_some_and(|id| id.as_str() == identity_id)
        {
            state.custom_ids.remove(custom_id);
        }
        Ok(())
    }

    async fn identities_page(
        &self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<Identity>, Option<String>), StoreError> {
        let state = self.state();
        let mut ids: Vec<&IdentityId> = state
            .identities
            .keys()
            .filter(|id| cursor.is_none_or(|after| id.as_str() > after))
            .collect();
        ids.sort();
        let page: Vec<Identity> = ids
            .iter()
            .take(usize::try_from(limit.max(1)).unwrap_or(usize::MAX))
            .map(|id| state.identities[*id].clone())
            .collect();
        let next = (ids.len() > page.len())
            .then(|| page.last().map(|i| i.id.to_string()))
            .flatten();
        Ok((page, next))
    }

    async fn purge(&self, identity: &Identity, _reason: SweepReason) -> Result<bool, StoreError> {
        let mut state = self.state();
        let unchanged = state.identities.get(&identity.id).is_some_and(|stored| {
            stored.last_token_issued_at == identity.last_token_issued_at
                && stored.kind == identity.kind
        });
        if !unchanged {
            return Ok(false);
        }
        state.identities.remove(&identity.id);
        if let Some(custom_id) = &identity.custom_id
            && state.custom_ids.get(custom_id) == Some(&identity.id)
        {
            state.custom_ids.remove(custom_id);
        }
        Ok(true)
    }

    async fn sweep_cursor(&self) -> Result<Option<String>, StoreError> {
        Ok(self.state().sweep_cursor.clone())
    }

    async fn save_sweep_cursor(&self, cursor: Option<&str>) -> Result<(), StoreError> {
        self.state().sweep_cursor = cursor.map(str::to_owned);
        Ok(())
    }
}

/// Keys held in memory, generated at start (local server, tests, benchmarks).
pub struct LocalKeySource {
    signing: String,
    access: String,
}

impl LocalKeySource {
    pub fn new(signing: &StoredKeySet, access: &AccessKeys) -> Self {
        Self {
            signing: signing.to_secret(),
            access: access.to_secret(),
        }
    }
}

#[async_trait]
impl KeySource for LocalKeySource {
    async fn signing_keys(&self) -> Result<KeySet, KeyError> {
        KeySet::from_secret(&self.signing)
    }
    async fn published_keys(&self) -> Result<PublishedKeys, KeyError> {
        PublishedKeys::union([KeySet::from_secret(&self.signing)?.published().as_ref()])
    }
    async fn access_keys(&self) -> Result<AccessKeys, KeyError> {
        AccessKeys::from_secret(&self.access)
    }
}
