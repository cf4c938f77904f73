//! Communication identities: the stored identity record and the optional customId an
//! app maps to one. Ids (`8:acs:<resource id>_<uuid>`) are the verifier crate's: tokens
//! carry them.

use chrono::{DateTime, Utc};

pub use callsign_verifier::id::{IdentityId, MalformedIdentityId, ResourceId};

const CUSTOM_ID_MAX_CHARS: usize = 256;

/// An app's own key for an identity (user name, e-mail, …): 1–256 characters, no
/// control characters. Never placed in a token: it is user-supplied text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CustomId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidCustomId {
    #[error("CustomId must not be empty.")]
    Empty,
    #[error("CustomId must be at most {CUSTOM_ID_MAX_CHARS} characters long.")]
    TooLong,
    #[error("CustomId must not contain control characters.")]
    ControlCharacter,
}

impl CustomId {
    pub fn parse(raw: &str) -> Result<Self, InvalidCustomId> {
        if raw.is_empty() {
            return Err(InvalidCustomId::Empty);
        }
        if raw.chars().count() > CUSTOM_ID_MAX_CHARS {
            return Err(InvalidCustomId::TooLong);
        }
        if raw.chars().any(char::is_control) {
            return Err(InvalidCustomId::ControlCharacter);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Stable identities live until deleted; ephemeral ones (anonymous users) expire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityKind {
    Stable,
    Ephemeral { expires_at: DateTime<Utc> },
}

/// An identity as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub id: IdentityId,
    pub custom_id: Option<CustomId>,
    pub created_at: DateTime<Utc>,
    pub last_token_issued_at: Option<DateTime<Utc>>,
    /// Bumped by every revoke; a token is valid only while it carries the current epoch.
    pub revocation_epoch: u64,
    pub kind: IdentityKind,
}

impl Identity {
    /// The token issue this identity, being created, records on the identity its create
    /// turned out to be (its customId's, or a retried request's): none on another
    /// resource's, which a shared table may hold and which is answered, never touched.
    pub fn token_issue_for(&self, existing: &IdentityId) -> Option<DateTime<Utc>> {
        self.last_token_issued_at
            .filter(|_| existing.resource() == self.id.resource())
    }

    pub fn new_stable(id: IdentityId, custom_id: Option<CustomId>, now: DateTime<Utc>) -> Self {
        Self {
            id,
            custom_id,
            created_at: now,
            last_token_issued_at: None,
            revocation_epoch: 0,
            kind: IdentityKind::Stable,
        }
    }

    /// Expired identities may linger until DynamoDB's TTL removes them; they count as gone.
    pub fn is_live_at(&self, now: DateTime<Utc>) -> bool {
        match self.kind {
            IdentityKind::Stable => true,
            IdentityKind::Ephemeral { expires_at } => expires_at > now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_ids_are_validated_by_characters_not_bytes() {
        assert_eq!(CustomId::parse(""), Err(InvalidCustomId::Empty));
        assert!(CustomId::parse(&"é".repeat(256)).is_ok());
        assert_eq!(
            CustomId::parse(&"a".repeat(257)),
            Err(InvalidCustomId::TooLong)
        );
        assert_eq!(
            CustomId::parse("a\nb"),
            Err(InvalidCustomId::ControlCharacter)
        );
        assert_eq!(
            CustomId::parse("alice@contoso.com").unwrap().as_str(),
            "alice@contoso.com"
        );
    }

    #[test]
    fn ephemeral_identities_are_gone_once_expired() {
        let now = Utc::now();
        let mut identity = Identity::new_stable(IdentityId::new(ResourceId::random()), None, now);
        assert!(identity.is_live_at(now + chrono::Duration::days(3650)));
        identity.kind = IdentityKind::Ephemeral {
            expires_at: now + chrono::Duration::minutes(5),
        };
        assert!(identity.is_live_at(now));
        assert!(!identity.is_live_at(now + chrono::Duration::minutes(5)));
    }
}
