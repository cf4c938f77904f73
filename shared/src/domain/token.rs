//! Access tokens: issuing (signing) ACS-shaped JWTs, and the revocation check that
//! completes verification. Claims and signature checks are the verifier crate's.
//!
//! The SDKs parse tokens without verifying them: Python base64-decodes the payload with
//! the *standard* alphabet, Java finds `"exp":<digits>`. So the payload is compact ASCII
//! JSON with no `>`, `?`, `~` (the only ASCII bytes whose base64url has `-` or `_`), and
//! carries no user-supplied text.

use chrono::{DateTime, Utc};

pub use callsign_verifier::claims::{
    ACCESS_KEY_CREDENTIAL, Claims, CurrentAccessKeys, Expectations, TokenRejection, VerifiedToken,
    verify, verify_signature,
};

use super::Scopes;
use super::identity::{Identity, IdentityId, ResourceId};
use super::keys::KeySet;
use super::scope::ScopesClaim;

/// ACS's fixed `scp` claim value.
const ACS_SCP: u32 = 1792;

/// Token lifetime in minutes: 60..=1440, default 1440 (24 h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenLifetime(u32);

impl TokenLifetime {
    pub const MIN_MINUTES: i64 = 60;
    pub const MAX_MINUTES: i64 = 1440;
    pub const DEFAULT: TokenLifetime = TokenLifetime(1440);

    pub fn from_minutes(minutes: i64) -> Option<Self> {
        (Self::MIN_MINUTES..=Self::MAX_MINUTES)
            .contains(&minutes)
            .then(|| Self(u32::try_from(minutes).expect("within 60..=1440")))
    }

    pub fn minutes(self) -> u32 {
        self.0
    }
}

/// What a caller asks a token for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenRequest {
    pub scopes: Scopes,
    pub lifetime: TokenLifetime,
}

/// Deployment-wide values stamped into every token. Validated by `Config` to be plain
/// ASCII without the characters that would put `-`/`_` into the base64url payload.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    pub resource_id: ResourceId,
    pub issuer: String,
    pub audience: String,
    pub region: String,
    pub resource_location: String,
    /// How long a rotated-in key is published before it signs (see `KeySet::signer`).
    pub key_activation_seconds: i64,
}

/// Characters a configured claim value may not contain (see the module comment).
pub fn is_token_safe(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && !b"\"\\>?~".contains(&b))
}

/// An issued token and its expiry (`expiresOn` equals the token's `exp`).
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub token: String,
    pub expires_on: i64,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"<redacted>")
            .field("expires_on", &self.expires_on)
            .finish()
    }
}

pub use super::keys::SignError as SigningError;

/// Who had a token issued, as its `cred` claim records it: a key regeneration revokes
/// the tokens its old key had issued (`CurrentAccessKeys`), and nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssuedBy {
    /// An access key, by its fingerprint (`AccessKeys::fingerprint`).
    AccessKey(String),
    /// A bearer token's issuer (an admin caller, by its trusted issuer).
    Issuer(String),
    /// The end-user front, for a signed-in user.
    User,
    /// The end-user front, for a guest.
    Guest,
}

/// The `cred` claim's value: `ak.<fingerprint>`, `iss.<hash of the issuer URL>` (no URL
/// text in the payload, see the module comment), `user` or `guest`.
impl std::fmt::Display for IssuedBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::AccessKey(fingerprint) => write!(f, "{ACCESS_KEY_CREDENTIAL}{fingerprint}"),
            Self::Issuer(issuer) => write!(f, "iss.{}", short_hash(issuer.as_bytes())),
            Self::User => f.write_str("user"),
            Self::Guest => f.write_str("guest"),
        }
    }
}

/// A claim written as a JSON string straight from its `Display`, without a `String` per
/// token.
struct AsText<T>(T);

impl<T: std::fmt::Display> serde::Serialize for AsText<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

/// 128 bits of SHA-256, hex: names a credential without revealing it.
pub fn short_hash(bytes: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `Claims` as they are written, field for field and in the same order, borrowing what
/// the settings and the identity hold instead of copying it for every token.
#[derive(serde::Serialize)]
struct IssuedClaims<'a> {
    skypeid: &'a str,
    scp: u32,
    csi: AsText<i64>,
    exp: i64,
    rgn: &'a str,
    #[serde(rename = "acsScope")]
    acs_scope: AsText<ScopesClaim>,
    #[serde(rename = "resourceId")]
    resource_id: AsText<&'a ResourceId>,
    #[serde(rename = "resourceLocation")]
    resource_location: &'a str,
    iat: i64,
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    nbf: i64,
    rev: u64,
    cred: AsText<&'a IssuedBy>,
}

pub fn issue(
    settings: &TokenSettings,
    keys: &KeySet,
    identity: &IdentityId,
    request: TokenRequest,
    revocation_epoch: u64,
    issued_by: &IssuedBy,
    now: DateTime<Utc>,
) -> Result<AccessToken, SigningError> {
    let exp = now.timestamp() + i64::from(request.lifetime.minutes()) * 60;
    issue_until(
        settings,
        keys,
        identity,
        request.scopes,
        exp,
        revocation_epoch,
        issued_by,
        now,
    )
}

/// A token that expires at `exp` (epoch seconds), whatever its lifetime: the Teams
/// exchange's tokens end with the Entra token they were exchanged for.
#[allow(clippy::too_many_arguments)] // each is a distinct claim's source
pub fn issue_until(
    settings: &TokenSettings,
    keys: &KeySet,
    identity: &IdentityId,
    scopes: Scopes,
    exp: i64,
    revocation_epoch: u64,
    issued_by: &IssuedBy,
    now: DateTime<Utc>,
) -> Result<AccessToken, SigningError> {
    let iat = now.timestamp();
    let claims = IssuedClaims {
        skypeid: identity.skype_id(),
        scp: ACS_SCP,
        csi: AsText(iat),
        exp,
        rgn: &settings.region,
        acs_scope: AsText(scopes.claim()),
        resource_id: AsText(&settings.resource_id),
        resource_location: &settings.resource_location,
        iat,
        iss: &settings.issuer,
        aud: &settings.audience,
        sub: identity.as_str(),
        nbf: iat,
        rev: revocation_epoch,
        cred: AsText(issued_by),
    };
    let key = keys.signer(iat, settings.key_activation_seconds);
    let token = key.sign_jwt(&claims)?;
    Ok(AccessToken {
        token,
        expires_on: exp,
    })
}

impl TokenSettings {
    pub fn expectations(&self, leeway_seconds: i64) -> Expectations {
        Expectations {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            leeway_seconds,
        }
    }
}

/// A verified token is live while its identity exists and has not been revoked since
/// the token was issued, and the access key that had it issued is current. `current` is
/// the identity's record now (None: deleted); a Teams user has none here.
pub fn check_revocation(
    token: &VerifiedToken,
    current: Option<&Identity>,
    access_keys: Option<&CurrentAccessKeys>,
    now: DateTime<Utc>,
) -> Result<(), TokenRejection> {
    if let Some(access_keys) = access_keys {
        access_keys.admit(&token.claims)?;
    }
    if token.identity.is_teams_user() {
        return Ok(());
    }
    match current {
        Some(identity) if identity.id == token.identity && identity.is_live_at(now) => {
            if identity.revocation_epoch == token.claims.rev {
                Ok(())
            } else {
                Err(TokenRejection::Revoked)
            }
        }
        _ => Err(TokenRejection::IdentityDeleted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::keys::{KeySet, SigningAlgorithm, StoredKeySet};
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn settings() -> TokenSettings {
        TokenSettings {
            resource_id: "2dee53b4-368b-45b4-ab52-8493fb117652".parse().unwrap(),
            issuer: "https://callsign.test".into(),
            audience: "callsign".into(),
            region: "amer".into(),
            resource_location: "unitedstates".into(),
            key_activation_seconds: 0,
        }
    }

    fn keys() -> KeySet {
        keys_of(SigningAlgorithm::Es256)
    }

    fn keys_of(algorithm: SigningAlgorithm) -> KeySet {
        KeySet::from_secret(&StoredKeySet::generate(algorithm).unwrap().to_secret()).unwrap()
    }

    fn check(
        token: &str,
        settings: &TokenSettings,
        keys: &KeySet,
        now: DateTime<Utc>,
        leeway: i64,
    ) -> Result<VerifiedToken, TokenRejection> {
        verify(
            token,
            &settings.expectations(leeway),
            keys.public_keys(),
            now,
        )
    }

    fn request(scopes: &[&str], minutes: i64) -> TokenRequest {
        TokenRequest {
            scopes: Scopes::parse(scopes.iter().copied()).unwrap(),
            lifetime: TokenLifetime::from_minutes(minutes).unwrap(),
        }
    }

    fn payload(token: &str) -> &str {
        token.split('.').nth(1).unwrap()
    }

    #[test]
    fn lifetime_bounds_are_60_to_1440_minutes() {
        assert!(TokenLifetime::from_minutes(59).is_none());
        assert!(TokenLifetime::from_minutes(1441).is_none());
        assert_eq!(TokenLifetime::from_minutes(60).unwrap().minutes(), 60);
        assert_eq!(TokenLifetime::DEFAULT.minutes(), 1440);
    }

    #[test]
    fn issued_token_carries_acs_claims_in_order_and_expires_on_equals_exp() {
        let settings = settings();
        let keys = keys();
        let id = IdentityId::new(settings.resource_id);
        let now = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        let token = issue(
            &settings,
            &keys,
            &id,
            request(&["voip", "chat"], 90),
            3,
            &IssuedBy::AccessKey("0123456789abcdef0123456789abcdef".into()),
            now,
        )
        .unwrap();
        assert_eq!(token.expires_on, 1_800_000_000 + 90 * 60);
        let json = String::from_utf8(STANDARD.decode(pad(payload(&token.token))).unwrap()).unwrap();
        assert!(json.starts_with(&format!(
            "{{\"skypeid\":\"{}\",\"scp\":1792,\"csi\":\"1800000000\",\"exp\":1800005400,",
            id.skype_id()
        )));
        assert!(json.contains("\"acsScope\":\"chat,voip\""));
        assert!(json.contains("\"rev\":3"));
        let header = jsonwebtoken::decode_header(&token.token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(keys.current.kid()));
        assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    }

    #[test]
    fn every_algorithm_signs_and_verifies() {
        let settings = settings();
        let id = IdentityId::new(settings.resource_id);
        let now = Utc::now();
        for algorithm in SigningAlgorithm::ALL {
            let keys = keys_of(algorithm);
            let token = issue(
                &settings,
                &keys,
                &id,
                request(&["chat"], 60),
                0,
                &IssuedBy::Guest,
                now,
            )
            .unwrap();
            let header = jsonwebtoken::decode_header(&token.token).unwrap();
            assert_eq!(header.alg, algorithm.jwt());
            let verified = check(&token.token, &settings, &keys, now, 0).unwrap();
            assert_eq!(verified.identity, id);
            assert!(!payload(&token.token).contains(['-', '_']));
        }
    }

    fn pad(b64: &str) -> String {
        let mut s = b64.to_owned();
        while !s.len().is_multiple_of(4) {
            s.push('=');
        }
        s
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn payload_is_standard_base64_with_a_findable_exp(
            resource in any::<u128>(),
            suffix in any::<u128>(),
            seconds in 0i64..8_000_000_000,
            scope_bits in 1u8..32,
            minutes in 60i64..=1440,
            epoch in any::<u64>(),
        ) {
            let mut settings = settings();
            settings.resource_id = uuid::Uuid::from_u128(resource).to_string().parse().unwrap();
            let id = IdentityId::parse(&format!(
                "8:acs:{}_{}", settings.resource_id, uuid::Uuid::from_u128(suffix)
            )).unwrap();
            let names: Vec<&str> = crate::domain::Scope::ALL
                .iter()
                .enumerate()
                .filter(|(i, _)| scope_bits & (1 << i) != 0)
                .map(|(_, s)| s.as_str())
                .collect();
            let now = Utc.timestamp_opt(seconds, 0).unwrap();
            let token = issue(&settings, &KEYS.with(|k| k.clone()), &id, request(&names, minutes), epoch, &IssuedBy::Guest, now).unwrap();
            let payload = payload(&token.token);
            prop_assert!(!payload.contains('-') && !payload.contains('_'), "{payload}");
            let json = STANDARD.decode(pad(payload)).expect("standard base64");
            prop_assert!(json.iter().all(u8::is_ascii));
            let json = String::from_utf8(json).unwrap();
            let exp = format!("\"exp\":{}", token.expires_on);
            prop_assert!(json.contains(&exp));
        }
    }

    thread_local! {
        // One key per test thread: generating a key per case would dominate the run.
        static KEYS: std::sync::Arc<KeySet> = std::sync::Arc::new(keys());
    }

    #[test]
    fn configured_values_with_unsafe_characters_are_refused() {
        assert!(is_token_safe("https://callsign.example.com/tenant-1"));
        for bad in ["", "a?b", "a~b", "a>b", "é", "a\"b", "a\nb"] {
            assert!(!is_token_safe(bad), "{bad:?} accepted");
        }
    }

    fn identity(id: &IdentityId, epoch: u64) -> Identity {
        let mut identity = Identity::new_stable(id.clone(), None, Utc::now());
        identity.revocation_epoch = epoch;
        identity
    }

    #[test]
    fn revoke_invalidates_earlier_tokens_and_not_the_next_one_in_the_same_second() {
        let (settings, keys) = (settings(), keys());
        let id = IdentityId::new(settings.resource_id);
        let now = Utc::now();
        // Same instant for all three steps: no timestamp granularity can save us here.
        let before = issue(
            &settings,
            &keys,
            &id,
            request(&["chat"], 60),
            0,
            &IssuedBy::Guest,
            now,
        )
        .unwrap();
        let record_after_revoke = identity(&id, 1);
        let after = issue(
            &settings,
            &keys,
            &id,
            request(&["chat"], 60),
            1,
            &IssuedBy::Guest,
            now,
        )
        .unwrap();

        let before = check(&before.token, &settings, &keys, now, 0).unwrap();
        let after = check(&after.token, &settings, &keys, now, 0).unwrap();
        assert_eq!(
            check_revocation(&before, Some(&record_after_revoke), None, now),
            Err(TokenRejection::Revoked)
        );
        assert_eq!(
            check_revocation(&after, Some(&record_after_revoke), None, now),
            Ok(())
        );
    }

    #[test]
    fn tokens_are_byte_for_byte_what_jsonwebtoken_makes() {
        let settings = settings();
        let id = IdentityId::new(settings.resource_id);
        let now = Utc::now();
        for algorithm in [
            SigningAlgorithm::Es256,
            SigningAlgorithm::Rs256,
            SigningAlgorithm::EdDsa,
        ] {
            let keys = keys_of(algorithm);
            let ours = issue(
                &settings,
                &keys,
                &id,
                request(&["chat"], 60),
                2,
                &IssuedBy::User,
                now,
            )
            .unwrap()
            .token;
            let claims: Claims = serde_json::from_slice(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(payload(&ours))
                    .unwrap(),
            )
            .unwrap();
            let mut header = jsonwebtoken::Header::new(algorithm.jwt());
            header.kid = Some(keys.current.kid().to_owned());
            let theirs =
                jsonwebtoken::encode(&header, &claims, keys.current.encoding_key()).unwrap();
            if algorithm == SigningAlgorithm::Es256 {
                // ECDSA signatures are randomized: the signed parts match, both verify.
                let signed = |t: &str| t.rsplit_once('.').unwrap().0.to_owned();
                assert_eq!(signed(&ours), signed(&theirs));
                assert!(check(&theirs, &settings, &keys, now, 0).is_ok());
            } else {
                assert_eq!(ours, theirs, "{algorithm:?}");
            }
            assert!(
                check(&ours, &settings, &keys, now, 0).is_ok(),
                "{algorithm:?}"
            );
        }
    }

    #[test]
    fn a_token_lives_while_the_access_key_that_had_it_issued_is_current() {
        let (settings, keys) = (settings(), keys());
        let id = IdentityId::new(settings.resource_id);
        let now = Utc::now();
        let by = |issued_by: IssuedBy| {
            let token = issue(
                &settings,
                &keys,
                &id,
                request(&["chat"], 60),
                0,
                &issued_by,
                now,
            );
            check(&token.unwrap().token, &settings, &keys, now, 0).unwrap()
        };
        let record = identity(&id, 0);
        let current = CurrentAccessKeys(vec!["aa".into(), "bb".into()]);
        let live =
            |token: &VerifiedToken| check_revocation(token, Some(&record), Some(&current), now);
        assert_eq!(live(&by(IssuedBy::AccessKey("bb".into()))), Ok(()));
        assert_eq!(
            live(&by(IssuedBy::AccessKey("cc".into()))),
            Err(TokenRejection::CredentialRevoked)
        );
        for other in [
            IssuedBy::Issuer("https://idp".into()),
            IssuedBy::User,
            IssuedBy::Guest,
        ] {
            assert_eq!(live(&by(other)), Ok(()));
        }
        // No list yet: no key has been regenerated.
        let old = by(IssuedBy::AccessKey("cc".into()));
        assert_eq!(check_revocation(&old, Some(&record), None, now), Ok(()));
        assert_eq!(old.claims.cred.as_deref(), Some("ak.cc"));
        assert!(
            IssuedBy::Issuer("https://idp/?~".into())
                .to_string()
                .starts_with("iss.")
        );
    }

    #[test]
    fn every_token_of_a_deleted_identity_is_invalid() {
        let (settings, keys) = (settings(), keys());
        let id = IdentityId::new(settings.resource_id);
        let now = Utc::now();
        for epoch in [0, 1, 7] {
            let token = issue(
                &settings,
                &keys,
                &id,
                request(&["voip"], 60),
                epoch,
                &IssuedBy::Guest,
                now,
            )
            .unwrap();
            let token = check(&token.token, &settings, &keys, now, 0).unwrap();
            assert_eq!(
                check_revocation(&token, Some(&identity(&id, epoch)), None, now),
                Ok(())
            );
            assert_eq!(
                check_revocation(&token, None, None, now),
                Err(TokenRejection::IdentityDeleted)
            );
            // A fresh identity under the same customId is another id: no carry-over.
            let other = identity(&IdentityId::new(settings.resource_id), epoch);
            assert_eq!(
                check_revocation(&token, Some(&other), None, now),
                Err(TokenRejection::IdentityDeleted)
            );
        }
    }

    #[test]
    fn verification_rejects_with_a_precise_reason() {
        let (settings, keys) = (settings(), keys());
        let id = IdentityId::new(settings.resource_id);
        let now = Utc::now();
        let token = issue(
            &settings,
            &keys,
            &id,
            request(&["chat"], 60),
            0,
            &IssuedBy::Guest,
            now,
        )
        .unwrap()
        .token;

        let later = now + chrono::Duration::minutes(61);
        assert_eq!(
            check(&token, &settings, &keys, later, 0).unwrap_err(),
            TokenRejection::Expired
        );
        let earlier = now - chrono::Duration::minutes(1);
        assert_eq!(
            check(&token, &settings, &keys, earlier, 0).unwrap_err(),
            TokenRejection::NotYetValid
        );
        assert!(
            check(&token, &settings, &keys, earlier, 120).is_ok(),
            "leeway applies"
        );

        let other_keys = self::keys();
        assert_eq!(
            check(&token, &settings, &other_keys, now, 0).unwrap_err(),
            TokenRejection::UnknownKey
        );

        let mut wrong = settings.clone();
        wrong.issuer = "https://elsewhere".into();
        assert_eq!(
            check(&token, &wrong, &keys, now, 0).unwrap_err(),
            TokenRejection::WrongIssuer
        );
        let mut wrong = settings.clone();
        wrong.audience = "other".into();
        assert_eq!(
            check(&token, &wrong, &keys, now, 0).unwrap_err(),
            TokenRejection::WrongAudience
        );

        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut signature = parts[2].clone().into_bytes();
        signature[10] = if signature[10] == b'A' { b'B' } else { b'A' };
        parts[2] = String::from_utf8(signature).unwrap();
        assert_eq!(
            check(&parts.join("."), &settings, &keys, now, 0).unwrap_err(),
            TokenRejection::BadSignature
        );
        assert_eq!(
            check("not.a.token", &settings, &keys, now, 0).unwrap_err(),
            TokenRejection::Malformed
        );
    }

    #[test]
    fn previous_key_still_verifies_after_rotation() {
        let settings = settings();
        let old = StoredKeySet::generate(SigningAlgorithm::Es256).unwrap();
        let old_keys = KeySet::from_secret(&old.to_secret()).unwrap();
        let id = IdentityId::new(settings.resource_id);
        let now = Utc::now();
        let token = issue(
            &settings,
            &old_keys,
            &id,
            request(&["chat"], 60),
            0,
            &IssuedBy::Guest,
            now,
        )
        .unwrap();
        let rotated = old.rotated(SigningAlgorithm::EdDsa).unwrap();
        let rotated = KeySet::from_secret(&rotated.to_secret()).unwrap();
        assert!(check(&token.token, &settings, &rotated, now, 0).is_ok());
    }
}
