//! The identity store of a multi-region deployment (docs/multi-region.md): one global
//! table, and every item written only in its home region's replica, so that
//! replication's last-writer-wins never has to choose between two writes.
//! * A customId's mapping and identity are created in the customId's home, where the
//!   single-region transaction decides every race.
//! * Revoke and delete go to the identity's home (its id encodes it).
//! * Reads stay local. Something the local replica does not hold yet (created elsewhere a
//!   moment ago) is read from its home, so a caller reads what it just wrote.
//! * A token issued outside the identity's home is recorded in a `SEEN#<region>#<id>`
//!   item of the local replica, never in the identity item, so an issue cannot bring back
//!   an identity that its home deleted.
//! * Housekeeping in each region sweeps and unmaps only what is homed there, and counts
//!   the token issues other regions recorded as activity.
//! * Guest throttle counters are the local replica's own (per region).

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use super::DynamoDbStore;
use super::errors::store_error;
use super::items::{SeenItem, decode, encode, seen_key};
use crate::domain::identity::{CustomId, Identity, IdentityId, ResourceId};
use crate::domain::lifecycle::SweepReason;
use crate::domain::placement::Placement;
use crate::domain::ports::{
    Attempt, Attempted, Created, Housekeeping, IdentityStore, StoreError, Throttle, TokenState,
};

pub struct HomedStore {
    placement: Placement,
    /// Every region's replica, the local one included.
    replicas: HashMap<String, DynamoDbStore>,
    /// How long a `SEEN#` item outlives its token issue (the table's TTL removes it).
    seen_lifetime: Duration,
}

impl HomedStore {
    /// `replica`: a store on a region's replica of the table, made for every region.
    pub fn new(
        placement: Placement,
        seen_lifetime: Duration,
        replica: impl Fn(&str) -> DynamoDbStore,
    ) -> Self {
        let replicas = placement
            .regions()
            .iter()
            .map(|region| (region.clone(), replica(region)))
            .collect();
        Self {
            placement,
            replicas,
            seen_lifetime,
        }
    }

    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    fn replica(&self, region: &str) -> &DynamoDbStore {
        &self.replicas[region]
    }

    fn local(&self) -> &DynamoDbStore {
        self.replica(self.placement.local())
    }

    /// The replica that writes this identity.
    fn home(&self, id: &IdentityId) -> &DynamoDbStore {
        self.replica(self.placement.identity_home(id))
    }

    /// After a local miss outside the identity's home: the home, which may hold what
    /// replication has not brought here yet (created elsewhere a moment ago).
    fn home_after_miss(&self, id: &IdentityId, found: bool) -> Option<&DynamoDbStore> {
        (!found && !self.placement.is_home_of(id)).then(|| self.home(id))
    }
}

/// The home's answer, or the local one if the home is unreachable.
fn unless_unreachable<T>(home: Result<T, StoreError>, local: T) -> Result<T, StoreError> {
    match home {
        Err(StoreError::Unavailable(_)) => Ok(local),
        answer => answer,
    }
}

impl DynamoDbStore {
    /// Reads the identity and writes this region's `SEEN#` item at once: one round trip.
    async fn record_seen(
        &self,
        region: &str,
        id: &IdentityId,
        at: DateTime<Utc>,
        lifetime: Duration,
    ) -> Result<Option<Identity>, StoreError> {
        let seen = SeenItem {
            pk: seen_key(region, id),
            last_token_issued_at: at.timestamp_millis(),
            expires_at: (at + lifetime).timestamp(),
        };
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(encode(&seen)))
            .send();
        let (identity, written) = tokio::join!(self.get_live(id), put);
        written.map_err(store_error)?;
        Ok(identity?.map(|mut identity| {
            identity.last_token_issued_at = identity.last_token_issued_at.max(Some(at));
            identity
        }))
    }
}

#[async_trait]
impl IdentityStore for HomedStore {
    fn new_id(&self, resource: ResourceId, custom_id: Option<&CustomId>) -> IdentityId {
        let home = match custom_id {
            Some(custom_id) => self.placement.custom_id_home(custom_id),
            None => self.placement.local(),
        };
        self.placement.new_id(resource, home)
    }

    async fn create(&self, identity: Identity) -> Result<Created, StoreError> {
        let Some(custom_id) = identity.custom_id.clone() else {
            return self.home(&identity.id).create(identity).await;
        };
        let home = self.placement.custom_id_home(&custom_id);
        if home != self.placement.local() {
            // Most creates with a customId are repeats: the local replica answers them,
            // and records the token issue here (the identity read with the SEEN# write).
            if let Some(mapped) = self.local().mapped_id(&custom_id).await? {
                let found = match identity.last_token_issued_at {
                    Some(at) => self.record_token_issue(&mapped, at).await?,
                    None => self.local().get(&mapped).await?,
                };
                if let Some(found) = found {
                    return Ok(Created::Existing(found));
                }
            }
        }
        self.replica(home).create(identity).await
    }

    async fn create_once(
        &self,
        identity: Identity,
        attempt: &Attempt,
    ) -> Result<Attempted, StoreError> {
        self.home(&identity.id).create_once(identity, attempt).await
    }

    async fn get(&self, id: &IdentityId) -> Result<Option<Identity>, StoreError> {
        let local = self.local().get(id).await?;
        match self.home_after_miss(id, local.is_some()) {
            Some(home) => unless_unreachable(home.get(id).await, local),
            None => Ok(local),
        }
    }

    async fn find_by_custom_id(
        &self,
        custom_id: &CustomId,
    ) -> Result<Option<Identity>, StoreError> {
        let local = self.local().find_by_custom_id(custom_id).await?;
        let home = self.placement.custom_id_home(custom_id);
        if local.is_some() || home == self.placement.local() {
            return Ok(local);
        }
        unless_unreachable(self.replica(home).find_by_custom_id(custom_id).await, local)
    }

    async fn record_token_issue(
        &self,
        id: &IdentityId,
        at: DateTime<Utc>,
    ) -> Result<Option<Identity>, StoreError> {
        let home = self.home(id);
        if self.placement.is_home_of(id) {
            return home.record_token_issue(id, at).await;
        }
        let seen = self
            .local()
            .record_seen(self.placement.local(), id, at, self.seen_lifetime)
            .await?;
        match seen {
            Some(identity) => Ok(Some(identity)),
            // Not replicated here yet (created elsewhere a moment ago), or no such
            // identity; with the home unreachable, the local answer (none) stands, as
            // for reads. The SEEN# item of an unknown id just expires.
            None => unless_unreachable(home.record_token_issue(id, at).await, None),
        }
    }

    async fn revoke_tokens(&self, id: &IdentityId) -> Result<bool, StoreError> {
        self.home(id).revoke_tokens(id).await
    }

    async fn delete(&self, id: &IdentityId) -> Result<bool, StoreError> {
        self.home(id).delete(id).await
    }

    async fn token_state(&self, id: &IdentityId) -> Result<TokenState, StoreError> {
        let local = self.local().token_state(id).await?;
        // A Teams user has no record anywhere.
        match self.home_after_miss(id, id.is_teams_user() || local.identity.is_some()) {
            Some(home) => unless_unreachable(home.token_state(id).await, local),
            None => Ok(local),
        }
    }
}

#[async_trait]
impl Housekeeping for HomedStore {
    /// Only the mapping's home removes it: the home sees every removal too, its own or
    /// replicated, and a removal here could overwrite a mapping made there since.
    async fn unmap_custom_id(
        &self,
        custom_id: &CustomId,
        identity_id: &str,
    ) -> Result<(), StoreError> {
        if self.placement.custom_id_home(custom_id) != self.placement.local() {
            return Ok(());
        }
        self.local().unmap_custom_id(custom_id, identity_id).await
    }

    /// The identities homed here, less those a token issue in another region (a `SEEN#`
    /// item newer than the identity's own record) shows as in use.
    async fn identities_page(
        &self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<Identity>, Option<String>), StoreError> {
        let (identities, next) = self.local().identities_page(cursor, limit).await?;
        let homed: Vec<Identity> = identities
            .into_iter()
            .filter(|identity| self.placement.is_home_of(&identity.id))
            .collect();
        let elsewhere: Vec<&String> = self
            .placement
            .regions()
            .iter()
            .filter(|region| *region != self.placement.local())
            .collect();
        let seen_keys = |identity: &Identity| -> Vec<String> {
            elsewhere
                .iter()
                .map(|r| seen_key(r, &identity.id))
                .collect()
        };
        let keys: Vec<String> = homed.iter().flat_map(seen_keys).collect();
        let mut seen_at: HashMap<String, i64> = HashMap::new();
        for item in self.local().batch_get(keys).await? {
            let seen: SeenItem = decode(item)?;
            seen_at.insert(seen.pk, seen.last_token_issued_at);
        }
        let idle = homed
            .into_iter()
            .filter(|identity| {
                let own = identity.last_token_issued_at.map(|t| t.timestamp_millis());
                let latest_elsewhere = seen_keys(identity)
                    .iter()
                    .filter_map(|key| seen_at.get(key).copied())
                    .max();
                latest_elsewhere.is_none_or(|elsewhere| Some(elsewhere) <= own)
            })
            .collect();
        Ok((idle, next))
    }

    async fn purge(&self, identity: &Identity, reason: SweepReason) -> Result<bool, StoreError> {
        self.home(&identity.id).purge(identity, reason).await
    }

    async fn sweep_cursor(&self) -> Result<Option<String>, StoreError> {
        self.local().sweep_cursor().await
    }

    async fn save_sweep_cursor(&self, cursor: Option<&str>) -> Result<(), StoreError> {
        self.local().save_sweep_cursor(cursor).await
    }
}

#[async_trait]
impl Throttle for HomedStore {
    async fn hit(
        &self,
        counter: &str,
        window_start: i64,
        window_seconds: i64,
    ) -> Result<u64, StoreError> {
        self.local()
            .hit(counter, window_start, window_seconds)
            .await
    }
}
