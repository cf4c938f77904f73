//! The use cases of the admin API, written against the ports only.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use callsign_verifier::Verifier;

use super::Scopes;
use super::identity::{CustomId, Identity, IdentityId, IdentityKind};
use super::key_ring::{KeyRing, KeyRingKeys};
use super::ports::{Attempt, Attempted, Created, IdentityStore, StoreError};
use super::signals::{self, Origin};
use super::time;
use super::token::{
    self, AccessToken, IssuedBy, SigningError, TokenLifetime, TokenRejection, TokenRequest,
    TokenSettings, VerifiedToken,
};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("identity not found")]
    NotFound,
    #[error("identity belongs to another resource")]
    NotOwned,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Signing(#[from] SigningError),
    /// A function that only verifies (it holds no private key) was asked to sign.
    #[error("this function holds no signing keys")]
    NoSigningKeys,
}

/// A create request, validated.
#[derive(Debug, Clone)]
pub struct CreateIdentity {
    pub custom_id: Option<CustomId>,
    pub token: Option<TokenRequest>,
    /// Some: an ephemeral identity (a guest), gone after this instant.
    pub expires_at: Option<DateTime<Utc>>,
    /// Who asks: the admin API, a signed-in user, a guest (for the metrics).
    pub origin: Origin,
    /// A request its client may retry: a retry answers with the first attempt's identity
    /// (creates with a customId are idempotent by their customId already).
    pub attempt: Option<Attempt>,
    /// Who has the token issued (its `cred` claim).
    pub issued_by: IssuedBy,
}

#[derive(Debug)]
pub struct CreatedIdentity {
    pub identity: Identity,
    pub token: Option<AccessToken>,
}

pub struct IdentityService {
    store: Arc<dyn IdentityStore>,
    keys: Arc<KeyRing>,
    settings: TokenSettings,
    verifier: Verifier,
}

/// How often an unknown kid may make us fetch the signing keys before their TTL is up.
const UNKNOWN_KID_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// Clock skew tolerated when verifying our own tokens.
pub const VERIFY_LEEWAY_SECONDS: i64 = 60;

impl IdentityService {
    pub fn new(store: Arc<dyn IdentityStore>, keys: Arc<KeyRing>, settings: TokenSettings) -> Self {
        let verifier = Verifier::new(
            settings.expectations(VERIFY_LEEWAY_SECONDS),
            Arc::new(KeyRingKeys::new(keys.clone(), UNKNOWN_KID_REFRESH_INTERVAL)),
        );
        Self {
            store,
            keys,
            settings,
            verifier,
        }
    }

    pub fn keys(&self) -> &Arc<KeyRing> {
        &self.keys
    }

    pub fn settings(&self) -> &TokenSettings {
        &self.settings
    }

    pub fn store(&self) -> Arc<dyn IdentityStore> {
        self.store.clone()
    }

    /// A verifier of our own tokens on this service's key ring.
    pub fn verifier(&self) -> Verifier {
        self.verifier.clone()
    }

    /// Creates an identity (or returns the one its customId maps to, unless another
    /// resource's: `NotOwned`), optionally with a token. The token issue is recorded in
    /// the same write: one round trip for a new identity.
    pub async fn create(&self, request: CreateIdentity) -> Result<CreatedIdentity, ServiceError> {
        let now = time::now();
        let id = self
            .store
            .new_id(self.settings.resource_id, request.custom_id.as_ref());
        let mut identity = Identity::new_stable(id, request.custom_id, now);
        if request.token.is_some() {
            identity.last_token_issued_at = Some(now);
        }
        if let Some(expires_at) = request.expires_at {
            identity.kind = IdentityKind::Ephemeral { expires_at };
        }
        let identity = match (&request.attempt, &identity.custom_id) {
            (Some(attempt), None) => match self.store.create_once(identity, attempt).await? {
                Attempted::New(identity) => {
                    signals::identity_created(request.origin);
                    identity
                }
                Attempted::Replayed(identity) => identity,
            },
            _ => match self.store.create(identity).await? {
                Created::New(identity) => {
                    signals::identity_created(request.origin);
                    identity
                }
                Created::Existing(identity) => identity,
            },
        };
        // A table shared with another resource id may map the customId (or the request)
        // to that resource's identity: never sign for it (nor does the store record the
        // issue on it: `Identity::token_issue_for`).
        self.check_owned(&identity.id)?;
        let token = match request.token {
            Some(token_request) => {
                let token = self.sign(&identity, token_request, &request.issued_by, now)?;
                signals::token_issued(request.origin);
                Some(token)
            }
            None => None,
        };
        Ok(CreatedIdentity { identity, token })
    }

    pub async fn issue_token(
        &self,
        id: &IdentityId,
        request: TokenRequest,
        issued_by: &IssuedBy,
    ) -> Result<AccessToken, ServiceError> {
        self.check_owned(id)?;
        let now = time::now();
        let identity = self
            .store
            .record_token_issue(id, now)
            .await?
            .ok_or(ServiceError::NotFound)?;
        let token = self.sign(&identity, request, issued_by, now)?;
        signals::token_issued(Origin::Admin);
        Ok(token)
    }

    /// A token for a Teams user (`8:orgid:<oid>`), who has no record here: it ends when
    /// the Entra token it was exchanged for does, at most 24 hours from now.
    pub fn issue_teams_token(
        &self,
        id: &IdentityId,
        scopes: Scopes,
        entra_expires_at: i64,
        issued_by: &IssuedBy,
    ) -> Result<AccessToken, ServiceError> {
        let now = time::now();
        let exp = entra_expires_at.min(now.timestamp() + TokenLifetime::MAX_MINUTES * 60);
        let keys = self
            .keys
            .signing_keys()
            .ok_or(ServiceError::NoSigningKeys)?;
        let token = token::issue_until(&self.settings, &keys, id, scopes, exp, 0, issued_by, now)?;
        signals::token_issued(Origin::Admin);
        Ok(token)
    }

    pub async fn revoke_tokens(&self, id: &IdentityId) -> Result<(), ServiceError> {
        self.check_owned(id)?;
        self.store
            .revoke_tokens(id)
            .await?
            .then(signals::tokens_revoked)
            .ok_or(ServiceError::NotFound)
    }

    pub async fn delete(&self, id: &IdentityId, origin: Origin) -> Result<(), ServiceError> {
        self.check_owned(id)?;
        self.store
            .delete(id)
            .await?
            .then(|| signals::identity_deleted(origin))
            .ok_or(ServiceError::NotFound)
    }

    pub async fn get(&self, id: &IdentityId) -> Result<Identity, ServiceError> {
        self.check_owned(id)?;
        self.store.get(id).await?.ok_or(ServiceError::NotFound)
    }

    pub async fn find_by_custom_id(&self, custom_id: &CustomId) -> Result<Identity, ServiceError> {
        let identity = self
            .store
            .find_by_custom_id(custom_id)
            .await?
            .ok_or(ServiceError::NotFound)?;
        self.check_owned(&identity.id)?;
        Ok(identity)
    }

    /// Whether a token is live now: signature, claims, and (against the table, so a revoke
    /// or delete counts at once) the identity's current revocation epoch.
    pub async fn introspect(
        &self,
        token: &str,
    ) -> Result<Result<VerifiedToken, TokenRejection>, ServiceError> {
        let now = Utc::now();
        let verified = match self.verifier.verify(token, now).await {
            Ok(verified) => verified,
            Err(rejection) => {
                signals::introspected(rejection.code());
                return Ok(Err(rejection));
            }
        };
        let state = self.store.token_state(&verified.identity).await?;
        let checked = token::check_revocation(
            &verified,
            state.identity.as_ref(),
            state.access_keys.as_ref(),
            now,
        );
        signals::introspected(checked.err().map_or("active", TokenRejection::code));
        Ok(checked.map(|()| verified))
    }

    fn check_owned(&self, id: &IdentityId) -> Result<(), ServiceError> {
        if id.belongs_to(self.settings.resource_id) {
            Ok(())
        } else {
            Err(ServiceError::NotOwned)
        }
    }

    fn sign(
        &self,
        identity: &Identity,
        request: TokenRequest,
        issued_by: &IssuedBy,
        now: DateTime<Utc>,
    ) -> Result<AccessToken, ServiceError> {
        let keys = self
            .keys
            .signing_keys()
            .ok_or(ServiceError::NoSigningKeys)?;
        Ok(token::issue(
            &self.settings,
            &keys,
            &identity.id,
            request,
            identity.revocation_epoch,
            issued_by,
            now,
        )?)
    }
}
