//! The API Gateway (HTTP API, payload 2.0, simple responses) Lambda authorizer for
//! downstream chat and calling APIs: a callsign bearer token, the capability the route
//! needs (capability table), and revocation with a bounded delay.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use callsign_verifier::Verifier;

use super::identity::IdentityId;
use super::ports::{IdentityStore, StoreError, TokenState};
use super::signals;
use super::token::{self, TokenRejection, VerifiedToken};
use super::{Capability, RoutePolicy};

/// Why a request is denied (logged; the client only sees 403).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    UnknownRoute,
    MissingToken,
    Token(TokenRejection),
    ScopeTooNarrow,
    StoreUnavailable,
}

impl Denial {
    /// A fixed word for the logs and metrics.
    pub fn code(self) -> &'static str {
        match self {
            Self::UnknownRoute => "unknown_route",
            Self::MissingToken => "missing_token",
            Self::Token(rejection) => rejection.code(),
            Self::ScopeTooNarrow => "scope_too_narrow",
            Self::StoreUnavailable => "store_unavailable",
        }
    }
}

/// An allowed request: what the backend receives in the authorizer context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    pub identity: IdentityId,
    pub scopes: String,
    pub capability: Capability,
}

/// Revocation markers of recently seen identities (and the access keys' fingerprints read
/// with them), each trusted for at most `max_age`: a revoked or deleted identity's
/// tokens, and those of a regenerated access key, stop working within that bound.
pub struct RevocationCache {
    store: Arc<dyn IdentityStore>,
    max_age: Duration,
    capacity: usize,
    entries: Mutex<HashMap<IdentityId, (TokenState, Instant)>>,
}

/// A token naming an access key the cached list lacks may come from a key regenerated
/// since: the list is read again, but at most this often per identity.
const UNKNOWN_KEY_REREAD: Duration = Duration::from_secs(1);

impl RevocationCache {
    pub fn new(store: Arc<dyn IdentityStore>, max_age: Duration, capacity: usize) -> Self {
        Self {
            store,
            max_age,
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The token's identity record and the current access keys, from the cache if fresh
    /// enough. A token with a newer epoch than the cached one proves the entry stale
    /// (issued after a revoke): read again.
    pub async fn current(&self, token: &VerifiedToken) -> Result<TokenState, StoreError> {
        let id = &token.identity;
        if self.max_age.is_zero() {
            return self.store.token_state(id).await;
        }
        if let Some((state, at)) = self.lock().get(id)
            && at.elapsed() < self.max_age
            && state
                .identity
                .as_ref()
                .is_none_or(|i| i.revocation_epoch >= token.claims.rev)
            && (at.elapsed() < UNKNOWN_KEY_REREAD
                || state
                    .access_keys
                    .as_ref()
                    .is_none_or(|keys| keys.admit(&token.claims).is_ok()))
        {
            return Ok(state.clone());
        }
        let state = self.store.token_state(id).await?;
        let mut entries = self.lock();
        if entries.len() >= self.capacity {
            // Bounded memory: drop what is stale, and everything if that is not enough.
            entries.retain(|_, (_, at)| at.elapsed() < self.max_age);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(id.clone(), (state.clone(), Instant::now()));
        Ok(state)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IdentityId, (TokenState, Instant)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct Authorizer {
    verifier: Verifier,
    policy: RoutePolicy,
    revocations: RevocationCache,
}

impl Authorizer {
    pub fn new(verifier: Verifier, policy: RoutePolicy, revocations: RevocationCache) -> Self {
        Self {
            verifier,
            policy,
            revocations,
        }
    }

    /// Decides one request by its route key and `Authorization` header value.
    pub async fn authorize(
        &self,
        route_key: &str,
        authorization: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Allowed, Denial> {
        let decision = self.decide(route_key, authorization, now).await;
        signals::authorizer_decided(decision.as_ref().err().map_or("allowed", |d| d.code()));
        decision
    }

    async fn decide(
        &self,
        route_key: &str,
        authorization: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Allowed, Denial> {
        let capability = self
            .policy
            .capability(route_key)
            .ok_or(Denial::UnknownRoute)?;
        let token = authorization
            .and_then(|value| {
                let (scheme, token) = value.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|token| !token.is_empty())
            .ok_or(Denial::MissingToken)?;
        let verified: VerifiedToken = self
            .verifier
            .verify(token, now)
            .await
            .map_err(Denial::Token)?;
        if !verified.scopes.grants(capability) {
            return Err(Denial::ScopeTooNarrow);
        }
        let state = self.revocations.current(&verified).await.map_err(|e| {
            tracing::warn!(error = %e, "revocation lookup failed; denying");
            Denial::StoreUnavailable
        })?;
        token::check_revocation(
            &verified,
            state.identity.as_ref(),
            state.access_keys.as_ref(),
            now,
        )
        .map_err(Denial::Token)?;
        Ok(Allowed {
            identity: verified.identity,
            scopes: verified.scopes.to_claim(),
            capability,
        })
    }
}
