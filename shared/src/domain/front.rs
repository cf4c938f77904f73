//! The end-user front ("trusted service" of the ACS docs): a signed-in app user gets a
//! token for their stable identity; an anonymous guest gets a fresh ephemeral identity,
//! throttled per client address.

use std::sync::Arc;

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{Duration, Utc};

use super::Scopes;
use super::identity::{CustomId, Identity};
use super::ports::{StoreError, Throttle};
use super::service::{CreateIdentity, CreatedIdentity, IdentityService, ServiceError};
use super::signals::{self, Origin};
use super::token::{IssuedBy, TokenLifetime, TokenRequest};

/// customIds under this prefix belong to end users of the front; the admin API may not
/// create them (an app's own customId could otherwise claim a user's identity).
pub const CUSTOM_ID_PREFIX: &str = "oidc:";

/// A signed-in end user, as their identity provider vouches for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub issuer: String,
    pub subject: String,
}

impl Caller {
    /// The customId their stable identity is kept under: a hash of `(iss, sub)`, so that
    /// no provider's user id (often an e-mail address) is stored as a key.
    pub fn custom_id(&self) -> CustomId {
        let digest = digest::digest(
            &digest::SHA256,
            format!("{}\n{}", self.issuer, self.subject).as_bytes(),
        );
        CustomId::parse(&format!(
            "{CUSTOM_ID_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(digest)
        ))
        .expect("43 ASCII characters")
    }
}

/// What end users and guests may have; from configuration (README, "Configuration").
#[derive(Debug, Clone)]
pub struct FrontPolicy {
    pub user_scopes: Scopes,
    pub guest_scopes: Scopes,
    /// A guest token's longest (and default) lifetime.
    pub guest_max_lifetime: TokenLifetime,
    /// How long a guest identity outlives its token.
    pub guest_grace: Duration,
    /// Guest tokens per client address per window.
    pub guest_limit: u64,
    pub guest_window_seconds: i64,
}

impl Default for FrontPolicy {
    fn default() -> Self {
        Self {
            user_scopes: Scopes::parse(["chat", "voip"]).expect("valid scopes"),
            guest_scopes: Scopes::parse(["chat.join.limited", "voip.join"]).expect("valid scopes"),
            guest_max_lifetime: TokenLifetime::from_minutes(60).expect("in range"),
            guest_grace: Duration::minutes(60),
            guest_limit: 10,
            guest_window_seconds: 60,
        }
    }
}

/// What a user or guest asks for; each part optional.
#[derive(Debug, Clone, Copy, Default)]
pub struct FrontRequest {
    pub scopes: Option<Scopes>,
    pub lifetime: Option<TokenLifetime>,
}

#[derive(Debug, thiserror::Error)]
pub enum FrontError {
    #[error("scope {asked} is not allowed here (allowed: {allowed})")]
    ScopeNotAllowed { asked: String, allowed: String },
    #[error("a guest token lives at most {max} minutes")]
    LifetimeTooLong { max: u32 },
    #[error("too many guest tokens from this address; retry in {retry_after} s")]
    Throttled { retry_after: i64 },
    #[error("no identity yet")]
    NoIdentity,
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<StoreError> for FrontError {
    fn from(err: StoreError) -> Self {
        Self::Service(ServiceError::Store(err))
    }
}

pub struct Front {
    policy: FrontPolicy,
    throttle: Arc<dyn Throttle>,
}

fn within(asked: Scopes, allowed: Scopes) -> Result<Scopes, FrontError> {
    let outside: Vec<&str> = asked
        .iter()
        .filter(|s| !allowed.contains(*s))
        .map(|s| s.as_str())
        .collect();
    if outside.is_empty() {
        Ok(asked)
    } else {
        Err(FrontError::ScopeNotAllowed {
            asked: outside.join(", "),
            allowed: allowed
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}

/// Whom a guest request counts against: the IPv4 address (also when a dual-stack front
/// door writes it IPv4-mapped, `::ffff:a.b.c.d`), or the IPv6 /64 (one client commonly
/// holds a whole /64 and could otherwise rotate through it).
pub fn client_key(address: &str) -> String {
    match address.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        _ => address.to_owned(),
    }
}

impl Front {
    pub fn new(policy: FrontPolicy, throttle: Arc<dyn Throttle>) -> Self {
        Self { policy, throttle }
    }

    pub fn policy(&self) -> &FrontPolicy {
        &self.policy
    }

    /// The caller's stable identity (made on first use, atomically, through the customId
    /// path) and a fresh token for it.
    pub async fn user_token(
        &self,
        service: &IdentityService,
        caller: &Caller,
        request: FrontRequest,
    ) -> Result<CreatedIdentity, FrontError> {
        let scopes = within(
            request.scopes.unwrap_or(self.policy.user_scopes),
            self.policy.user_scopes,
        )?;
        let token = TokenRequest {
            scopes,
            lifetime: request.lifetime.unwrap_or(TokenLifetime::DEFAULT),
        };
        let create = CreateIdentity {
            custom_id: Some(caller.custom_id()),
            token: Some(token),
            expires_at: None,
            origin: Origin::User,
            attempt: None,
            issued_by: IssuedBy::User,
        };
        Ok(service.create(create).await?)
    }

    pub async fn user(
        &self,
        service: &IdentityService,
        caller: &Caller,
    ) -> Result<Identity, FrontError> {
        match service.find_by_custom_id(&caller.custom_id()).await {
            Err(ServiceError::NotFound) => Err(FrontError::NoIdentity),
            other => Ok(other?),
        }
    }

    /// "Delete me": the identity and its mapping go; its tokens die at once.
    pub async fn delete_user(
        &self,
        service: &IdentityService,
        caller: &Caller,
    ) -> Result<(), FrontError> {
        let identity = self.user(service, caller).await?;
        match service.delete(&identity.id, Origin::User).await {
            Err(ServiceError::NotFound) => Err(FrontError::NoIdentity),
            other => Ok(other?),
        }
    }

    /// A new ephemeral identity and its token, unless `client` asked too often.
    pub async fn guest_token(
        &self,
        service: &IdentityService,
        client: &str,
        request: FrontRequest,
    ) -> Result<CreatedIdentity, FrontError> {
        let policy = &self.policy;
        let scopes = within(
            request.scopes.unwrap_or(policy.guest_scopes),
            policy.guest_scopes,
        )?;
        let lifetime = request.lifetime.unwrap_or(policy.guest_max_lifetime);
        if lifetime.minutes() > policy.guest_max_lifetime.minutes() {
            return Err(FrontError::LifetimeTooLong {
                max: policy.guest_max_lifetime.minutes(),
            });
        }
        let now = Utc::now().timestamp();
        let window_start = now - now.rem_euclid(policy.guest_window_seconds);
        let hits = self
            .throttle
            .hit(
                &format!("guest#{}", client_key(client)),
                window_start,
                policy.guest_window_seconds,
            )
            .await?;
        if hits > policy.guest_limit {
            signals::guest_throttled();
            return Err(FrontError::Throttled {
                retry_after: (window_start + policy.guest_window_seconds - now).max(1),
            });
        }
        let expires_at =
            Utc::now() + Duration::minutes(i64::from(lifetime.minutes())) + policy.guest_grace;
        let create = CreateIdentity {
            custom_id: None,
            token: Some(TokenRequest { scopes, lifetime }),
            expires_at: Some(expires_at),
            origin: Origin::Guest,
            attempt: None,
            issued_by: IssuedBy::Guest,
        };
        Ok(service.create(create).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::{Caller, client_key};

    #[test]
    fn custom_ids_are_stable_distinct_and_free_of_the_user_id() {
        let alice = Caller {
            issuer: "https://idp".into(),
            subject: "alice@example.com".into(),
        };
        let bob = Caller {
            issuer: "https://idp".into(),
            subject: "bob@example.com".into(),
        };
        let other_idp = Caller {
            issuer: "https://other".into(),
            subject: "alice@example.com".into(),
        };
        assert_eq!(alice.custom_id(), Caller { ..alice.clone() }.custom_id());
        assert_ne!(alice.custom_id(), bob.custom_id());
        assert_ne!(alice.custom_id(), other_idp.custom_id());
        assert!(!alice.custom_id().as_str().contains("alice"));
    }

    #[test]
    fn guests_count_per_ipv4_address_and_per_ipv6_slash_64() {
        assert_eq!(client_key("203.0.113.5"), "203.0.113.5");
        assert_eq!(
            client_key("2001:db8:1:2:aaaa::1"),
            client_key("2001:db8:1:2:bbbb::9")
        );
        assert_ne!(client_key("2001:db8:1:2::1"), client_key("2001:db8:1:3::1"));
        // IPv4-mapped addresses are their IPv4 address, not one shared ::ffff /64.
        assert_eq!(client_key("::ffff:203.0.113.5"), "203.0.113.5");
        assert_ne!(
            client_key("::ffff:203.0.113.5"),
            client_key("::ffff:198.51.100.7")
        );
    }
}
