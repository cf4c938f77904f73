//! callsign-verifier: what a service that accepts callsign access tokens embeds. It
//! checks a token's signature against a key set (fetched from a JWKS URL with the `jwks`
//! feature, or any `PublicKeySource`), its issuer, audience and time, and maps its scopes
//! to capabilities (the capability table). It depends on no AWS SDK and no Lambda crate.
//!
//! Revocation needs the identity's current record: callsign's introspection endpoint and
//! its API Gateway authorizer check it; a service can call introspection for that.

#![forbid(unsafe_code)]

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub mod cache;
pub mod capability;
pub mod claims;
pub mod id;
#[cfg(feature = "jwks")]
pub mod jwks;
pub mod keys;
pub mod scope;

pub use capability::{Capability, RoutePolicy};
pub use claims::{Claims, Expectations, TokenRejection, VerifiedToken};
pub use id::{IdentityId, ResourceId};
#[cfg(feature = "jwks")]
pub use jwks::JwksKeys;
pub use keys::{KeyError, PublicKey, PublicKeys, SigningAlgorithm};
pub use scope::{Scope, Scopes};

/// Where a verifier's public keys come from.
#[async_trait]
pub trait PublicKeySource: Send + Sync {
    /// The keys as cached now (may start a background refresh when they are old).
    fn current(&self) -> Arc<PublicKeys>;
    /// A token named a kid we do not know: fetch again, at most once per interval.
    async fn refresh_for_unknown_kid(&self) -> Arc<PublicKeys>;
}

/// Verifies callsign tokens against one issuer and audience.
#[derive(Clone)]
pub struct Verifier {
    expected: Expectations,
    keys: Arc<dyn PublicKeySource>,
}

impl Verifier {
    pub fn new(expected: Expectations, keys: Arc<dyn PublicKeySource>) -> Self {
        Self { expected, keys }
    }

    /// Signature, issuer, audience and time; an unknown `kid` refetches the keys once
    /// (a rotation may have happened since they were cached).
    pub async fn verify(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<VerifiedToken, TokenRejection> {
        match claims::verify(token, &self.expected, &self.keys.current(), now) {
            Err(TokenRejection::UnknownKey) => {
                let refreshed = self.keys.refresh_for_unknown_kid().await;
                claims::verify(token, &self.expected, &refreshed, now)
            }
            result => result,
        }
    }

    /// Verifies and checks that the token's scopes grant `capability` (None: they don't).
    pub async fn authorize(
        &self,
        token: &str,
        capability: Capability,
        now: DateTime<Utc>,
    ) -> Result<Option<VerifiedToken>, TokenRejection> {
        let verified = self.verify(token, now).await?;
        Ok(verified.scopes.grants(capability).then_some(verified))
    }
}

/// A fixed key set (a development issuer, tests).
pub struct StaticKeys(pub Arc<PublicKeys>);

#[async_trait]
impl PublicKeySource for StaticKeys {
    fn current(&self) -> Arc<PublicKeys> {
        self.0.clone()
    }
    async fn refresh_for_unknown_kid(&self) -> Arc<PublicKeys> {
        self.0.clone()
    }
}
