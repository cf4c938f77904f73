//! The claims of a callsign token and their verification: signature (by `kid`, with the
//! key's own algorithm only), issuer, audience and time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jsonwebtoken::Validation;
use serde::{Deserialize, Serialize};

use crate::id::IdentityId;
use crate::keys::{PublicKeys, SigningAlgorithm};
use crate::scope::Scopes;

/// The claims of a callsign token: ACS's claims, in ACS's order, then ours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub skypeid: String,
    pub scp: u32,
    /// Issue time as a string, as ACS writes it.
    pub csi: String,
    pub exp: i64,
    pub rgn: String,
    #[serde(rename = "acsScope")]
    pub acs_scope: String,
    #[serde(rename = "resourceId")]
    pub resource_id: String,
    #[serde(rename = "resourceLocation")]
    pub resource_location: String,
    pub iat: i64,
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub nbf: i64,
    /// The identity's revocation epoch when the token was issued.
    pub rev: u64,
    /// Which credential had it issued (`IssuedBy`): an access key's fingerprint, a
    /// bearer issuer's, or the end-user front. Absent in tokens older than the claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cred: Option<String>,
}

/// Marks `cred` values that name an access key: `ak.<fingerprint>`.
pub const ACCESS_KEY_CREDENTIAL: &str = "ak.";

/// The fingerprints of the access keys that are current now. A token an access key had
/// issued is live only while that key is current: regenerating a key revokes its tokens.
/// Tokens issued otherwise (a bearer issuer, the end-user front) are not affected.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CurrentAccessKeys(pub Vec<String>);

impl CurrentAccessKeys {
    /// Whether the credential that had `claims` issued is still current.
    pub fn admit(&self, claims: &Claims) -> Result<(), TokenRejection> {
        match claims
            .cred
            .as_deref()
            .and_then(|cred| cred.strip_prefix(ACCESS_KEY_CREDENTIAL))
        {
            Some(fingerprint) if !self.0.iter().any(|current| current == fingerprint) => {
                Err(TokenRejection::CredentialRevoked)
            }
            _ => Ok(()),
        }
    }
}

/// Why a token is not accepted: stable codes, surfaced by the verification side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejection {
    #[error("malformed")]
    Malformed,
    #[error("unknown_key")]
    UnknownKey,
    #[error("bad_signature")]
    BadSignature,
    #[error("expired")]
    Expired,
    #[error("not_yet_valid")]
    NotYetValid,
    #[error("wrong_issuer")]
    WrongIssuer,
    #[error("wrong_audience")]
    WrongAudience,
    #[error("revoked")]
    Revoked,
    #[error("identity_deleted")]
    IdentityDeleted,
    /// The access key that had it issued has been regenerated since.
    #[error("credential_revoked")]
    CredentialRevoked,
}

impl TokenRejection {
    /// The stable code, as introspection answers it (`reason`).
    pub fn code(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::Revoked => "revoked",
            Self::IdentityDeleted => "identity_deleted",
            Self::CredentialRevoked => "credential_revoked",
        }
    }
}

/// A token whose signature and claims checked out. Revocation is checked separately,
/// against the identity's current record (callsign's introspection and authorizer).
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    pub identity: IdentityId,
    pub scopes: Scopes,
    pub kid: String,
    pub claims: Claims,
}

/// What a verifier expects of a token besides a good signature.
#[derive(Debug, Clone)]
pub struct Expectations {
    pub issuer: String,
    pub audience: String,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway_seconds: i64,
}

/// The header fields verification needs, read before any key is chosen.
fn header_alg_and_kid(token: &str) -> Result<(String, Option<String>), TokenRejection> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenRejection::Malformed);
    };
    let header = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .ok_or(TokenRejection::Malformed)?;
    let alg = header
        .get("alg")
        .and_then(|v| v.as_str())
        .ok_or(TokenRejection::Malformed)?;
    let kid = header
        .get("kid")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    Ok((alg.to_owned(), kid))
}

/// Checks a JWS signature with the key its `kid` names, using only the algorithm that key
/// is for and only if `allowed` lists it (never `none`, never a symmetric algorithm), and
/// returns its claims. Times and other claims are the caller's to check.
pub fn verify_signature<T: serde::de::DeserializeOwned>(
    token: &str,
    keys: &PublicKeys,
    allowed: &[SigningAlgorithm],
) -> Result<(T, String), TokenRejection> {
    let (alg, kid) = header_alg_and_kid(token)?;
    let alg = SigningAlgorithm::parse(&alg)
        .filter(|alg| allowed.contains(alg))
        .ok_or(TokenRejection::BadSignature)?;
    let kid = kid.ok_or(TokenRejection::UnknownKey)?;
    let key = keys.find(&kid).ok_or(TokenRejection::UnknownKey)?;
    if key.algorithm() != alg {
        return Err(TokenRejection::BadSignature);
    }
    let mut validation = Validation::new(alg.jwt());
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<T>(token, key.decoding_key(), &validation).map_err(|e| {
        match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature
            | jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => TokenRejection::BadSignature,
            _ => TokenRejection::Malformed,
        }
    })?;
    Ok((data.claims, kid))
}

/// Checks signature (see `verify_signature`), issuer, audience and time.
pub fn verify(
    token: &str,
    expected: &Expectations,
    keys: &PublicKeys,
    now: DateTime<Utc>,
) -> Result<VerifiedToken, TokenRejection> {
    let (claims, kid): (Claims, String) = verify_signature(token, keys, &SigningAlgorithm::ALL)?;
    if claims.iss != expected.issuer {
        return Err(TokenRejection::WrongIssuer);
    }
    if claims.aud != expected.audience {
        return Err(TokenRejection::WrongAudience);
    }
    let now = now.timestamp();
    if claims.exp + expected.leeway_seconds <= now {
        return Err(TokenRejection::Expired);
    }
    if claims.nbf - expected.leeway_seconds > now {
        return Err(TokenRejection::NotYetValid);
    }
    let identity = IdentityId::parse(&claims.sub).map_err(|_| TokenRejection::Malformed)?;
    let scopes = Scopes::from_claim(&claims.acs_scope).map_err(|_| TokenRejection::Malformed)?;
    Ok(VerifiedToken {
        identity,
        scopes,
        kid,
        claims,
    })
}
