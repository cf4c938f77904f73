//! Secrets Manager's rotation contract for the signing key set (createSecret, setSecret,
//! testSecret, finishSecret), and regeneration of one access key. Written against the
//! `VersionedSecret` port; `adapters::secrets_manager::SecretsManagerSecret` is the adapter.
//!
//! Schedule: a rotation retires the *previous* key, so a token signed two rotations ago
//! stops verifying. Tokens live up to 24 h and keys are cached for
//! CALLSIGN_KEY_CACHE_TTL_SECONDS (5 min) plus the JWKS max-age (5 min): rotate at most
//! once per 48 h (the template's schedule) to keep every live token verifiable.

use chrono::Utc;

use super::Scopes;
use super::access_keys::{AccessKeys, generate_key};
use super::identity::{IdentityId, ResourceId};
use super::keys::{KeyError, KeySet, PublishedKeys, SigningAlgorithm, StoredKeySet};
use super::ports::{AccessKeyLedger, SecretStoreError, VersionedSecret};
use super::signals;
use super::token::{self, IssuedBy, TokenLifetime, TokenRequest, TokenSettings};

pub const CURRENT: &str = "AWSCURRENT";
pub const PENDING: &str = "AWSPENDING";
pub const PREVIOUS: &str = "AWSPREVIOUS";

#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error(transparent)]
    Store(#[from] SecretStoreError),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Keys(#[from] KeyError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    CreateSecret,
    SetSecret,
    TestSecret,
    FinishSecret,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreateSecret => "createSecret",
            Self::SetSecret => "setSecret",
            Self::TestSecret => "testSecret",
            Self::FinishSecret => "finishSecret",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "createSecret" => Some(Self::CreateSecret),
            "setSecret" => Some(Self::SetSecret),
            "testSecret" => Some(Self::TestSecret),
            "finishSecret" => Some(Self::FinishSecret),
            _ => None,
        }
    }
}

/// Runs one step of a signing-key rotation, and keeps the public key secret (`public`,
/// read by the functions that only verify) in step with it: from createSecret on it
/// lists the keys of both the set in force and the pending one, from finishSecret on
/// those of the new set and of the set it replaced. So it never lacks a key that a
/// function may still sign with. Every step may be retried:
/// it then finds its work done and changes nothing.
pub async fn rotate_signing_keys(
    secret: &dyn VersionedSecret,
    public: Option<&dyn VersionedSecret>,
    step: Step,
    token: &str,
    algorithm: SigningAlgorithm,
) -> Result<(), RotationError> {
    let result = match step {
        Step::CreateSecret => create(secret, public, token, algorithm).await,
        // No other system holds these keys: nothing to set.
        Step::SetSecret => Ok(()),
        Step::TestSecret => test(secret, token).await,
        Step::FinishSecret => finish(secret, public, token).await,
    };
    signals::rotation_step(step.as_str(), result.is_ok());
    if step == Step::FinishSecret && result.is_ok() {
        signals::rotation_finished();
    }
    result
}

/// Writes the public keys of `sets` to the public key secret, unless it holds them already.
async fn publish(public: &dyn VersionedSecret, sets: &[KeySet]) -> Result<(), RotationError> {
    let document =
        PublishedKeys::union(sets.iter().map(|set| set.published().as_ref()))?.to_secret();
    if public.value(CURRENT, None).await?.as_deref() != Some(document.as_str()) {
        public.put_current(&document).await?;
    }
    Ok(())
}

async fn current_value(secret: &dyn VersionedSecret) -> Result<String, RotationError> {
    secret
        .value(CURRENT, None)
        .await?
        .ok_or_else(|| RotationError::Invalid("the secret has no AWSCURRENT value".into()))
}

async fn create(
    secret: &dyn VersionedSecret,
    public: Option<&dyn VersionedSecret>,
    token: &str,
    algorithm: SigningAlgorithm,
) -> Result<(), RotationError> {
    let current = current_value(secret).await?;
    let pending = match secret.value(PENDING, Some(token)).await? {
        Some(pending) => pending, // a retry: the pending set exists already
        None => {
            let next = match serde_json::from_str::<StoredKeySet>(&current) {
                Ok(current) => current.rotated(algorithm)?,
                // A new deployment's secret holds what Secrets Manager generated: the
                // first rotation makes the first key set.
                Err(_) => {
                    tracing::info!("AWSCURRENT is not a key set yet: initialising it");
                    StoredKeySet::generate(algorithm)?
                }
            };
            secret.put_pending(token, &next.to_secret()).await?;
            next.to_secret()
        }
    };
    if let Some(public) = public {
        // The set in force (unless this rotation initialises it), then the pending one.
        let sets: Vec<KeySet> = [
            KeySet::from_secret(&current).ok(),
            Some(KeySet::from_secret(&pending)?),
        ]
        .into_iter()
        .flatten()
        .collect();
        publish(public, &sets).await?;
    }
    Ok(())
}

/// Signs a probe token with the pending set's new key and verifies it with the set.
async fn test(secret: &dyn VersionedSecret, token: &str) -> Result<(), RotationError> {
    let pending = secret.value(PENDING, Some(token)).await?.ok_or_else(|| {
        RotationError::Invalid(format!("version {token} has no AWSPENDING value"))
    })?;
    let keys = KeySet::from_secret(&pending)?;
    // The pending set must carry today's signing key as its previous one (unless this
    // rotation initialises the secret).
    if let Ok(current) = serde_json::from_str::<StoredKeySet>(&current_value(secret).await?)
        && (keys.previous.as_ref().map(|k| k.kid()) != Some(current.current.kid.as_str())
            || keys.current.kid() == current.current.kid)
    {
        return Err(RotationError::Invalid(
            "the pending set does not rotate the current key (previous must be today's current)"
                .into(),
        ));
    }
    let settings = TokenSettings {
        resource_id: ResourceId::random(),
        issuer: "rotation-test".into(),
        audience: "rotation-test".into(),
        region: "test".into(),
        resource_location: "test".into(),
        key_activation_seconds: 0,
    };
    let now = Utc::now();
    let request = TokenRequest {
        scopes: Scopes::parse(["chat"]).expect("a valid scope"),
        lifetime: TokenLifetime::DEFAULT,
    };
    let probe = token::issue(
        &settings,
        &keys,
        &IdentityId::new(settings.resource_id),
        request,
        0,
        &IssuedBy::Guest,
        now,
    )
    .map_err(|e| RotationError::Invalid(format!("the pending key cannot sign: {e}")))?;
    token::verify(
        &probe.token,
        &settings.expectations(0),
        keys.public_keys(),
        now,
    )
    .map_err(|e| {
        RotationError::Invalid(format!(
            "the pending key set cannot verify its own token: {e}"
        ))
    })?;
    Ok(())
}

async fn finish(
    secret: &dyn VersionedSecret,
    public: Option<&dyn VersionedSecret>,
    token: &str,
) -> Result<(), RotationError> {
    promote(secret, token).await?;
    if let Some(public) = public {
        let promoted = secret
            .value(CURRENT, Some(token))
            .await?
            .ok_or_else(|| RotationError::Invalid(format!("version {token} is not AWSCURRENT")))?;
        // The set it replaced stays published until the next rotation: a function that
        // has not refreshed yet may still sign with it (its previous key, while the new
        // one is younger than the activation delay), and a rotation soon after this
        // one must not unpublish that key.
        let replaced = match secret.value(PREVIOUS, None).await? {
            Some(value) => KeySet::from_secret(&value).ok(),
            None => None,
        };
        let sets: Vec<KeySet> = std::iter::once(KeySet::from_secret(&promoted)?)
            .chain(replaced)
            .collect();
        publish(public, &sets).await?;
    }
    Ok(())
}

async fn promote(secret: &dyn VersionedSecret, token: &str) -> Result<(), RotationError> {
    let versions = secret.versions().await?;
    let stages = versions
        .get(token)
        .ok_or_else(|| RotationError::Invalid(format!("version {token} does not exist")))?;
    if stages.iter().any(|s| s == CURRENT) {
        return Ok(()); // a retry: already current
    }
    if !stages.iter().any(|s| s == PENDING) {
        // A late or replayed finishSecret must not roll the key set back.
        return Err(RotationError::Invalid(format!(
            "version {token} is not AWSPENDING"
        )));
    }
    let current = versions
        .iter()
        .find(|(_, stages)| stages.iter().any(|s| s == CURRENT))
        .map(|(id, _)| id.clone())
        .ok_or_else(|| RotationError::Invalid("no version is AWSCURRENT".into()))?;
    Ok(secret.promote(token, &current).await?)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhichKey {
    Primary,
    Secondary,
}

impl WhichKey {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "primary" => Some(Self::Primary),
            "secondary" => Some(Self::Secondary),
            _ => None,
        }
    }
}

/// The access keys at AWSCURRENT and the version that holds them.
async fn current_access_keys(
    secret: &dyn VersionedSecret,
) -> Result<(AccessKeys, String), RotationError> {
    let versions = secret.versions().await?;
    let version = versions
        .iter()
        .find(|(_, stages)| stages.iter().any(|s| s == CURRENT))
        .map(|(id, _)| id.clone())
        .ok_or_else(|| RotationError::Invalid("no version is AWSCURRENT".into()))?;
    let value = secret
        .value(CURRENT, Some(&version))
        .await?
        .ok_or_else(|| {
            RotationError::Invalid("the access keys changed meanwhile; run again".into())
        })?;
    Ok((AccessKeys::from_secret(&value)?, version))
}

/// Replaces one access key with a fresh one (the other stays valid), as ACS's "regenerate
/// key" does, and revokes every token the old key had issued: `replace_access_key`, then
/// `sync_access_keys`. Returns the new key. Functions stop accepting the old key within
/// their key cache TTL; its tokens fail introspection as soon as this returns, the
/// authorizer within its cache bound. Should the last step fail, the new key is in force
/// already (read it from the secret) and a `sync_access_keys` finishes the job.
pub async fn regenerate_access_key(
    secret: &dyn VersionedSecret,
    ledger: &dyn AccessKeyLedger,
    which: WhichKey,
) -> Result<String, RotationError> {
    let fresh = replace_access_key(secret, ledger, which).await?;
    sync_access_keys(secret, ledger).await.map_err(unsynced)?;
    Ok(fresh)
}

/// What to do when the key was replaced but the list not settled.
pub fn unsynced(error: RotationError) -> RotationError {
    RotationError::Invalid(format!(
        "the key was replaced, but the old key's tokens are not revoked yet ({error}): \
         run `scripts/regenerate-access-key --sync`"
    ))
}

/// The generation the fingerprint list records (0: none yet).
async fn recorded_generation(ledger: &dyn AccessKeyLedger) -> Result<u64, RotationError> {
    Ok(ledger
        .fingerprints()
        .await
        .map_err(|e| RotationError::Invalid(format!("fingerprint list: {e}")))?
        .map_or(0, |(_, generation)| generation))
}

/// The first two steps of a regeneration; returns the new key, in force when this
/// returns Ok.
///
/// 1. The new key's fingerprint joins the ledger's list first, so its tokens count from
///    the first one.
/// 2. Compare-and-swap: the new value is staged, then AWSCURRENT moves to it from exactly
///    the version that was read; if another regeneration moved it meanwhile, this one
///    fails (nothing is lost) and can simply be run again.
///
/// Step 3 (`sync_access_keys`) kills the old key's tokens. A run stopped before it
/// leaves them valid until the next regeneration or sync.
pub async fn replace_access_key(
    secret: &dyn VersionedSecret,
    ledger: &dyn AccessKeyLedger,
    which: WhichKey,
) -> Result<String, RotationError> {
    let (fresh, next, read_version) = stage_access_key(secret, ledger, which).await?;
    secret.promote(&next, &read_version).await.map_err(|e| {
        RotationError::Invalid(format!(
            "the access keys changed meanwhile ({e}); run again"
        ))
    })?;
    Ok(fresh)
}

/// Step 1 and the staging half of step 2 of `replace_access_key`: the fresh key, the
/// staged version's token, and the version it must replace. The new secret's generation
/// is past both the secret's and the list's, so it keeps rising even if the secret's
/// counter went back (a restored version, a tool that dropped it).
pub async fn stage_access_key(
    secret: &dyn VersionedSecret,
    ledger: &dyn AccessKeyLedger,
    which: WhichKey,
) -> Result<(String, String, String), RotationError> {
    let (keys, read_version) = current_access_keys(secret).await?;
    let generation = keys.generation().max(recorded_generation(ledger).await?);
    let fresh = generate_key();
    let next = match which {
        WhichKey::Primary => keys.with_primary(&fresh)?,
        WhichKey::Secondary => keys.with_secondary(&fresh)?,
    }
    .at_generation(generation + 1);
    let new_fingerprint = &next.fingerprints()[match which {
        WhichKey::Primary => 0,
        WhichKey::Secondary => 1,
    }];
    if !ledger
        .admit_fingerprint(new_fingerprint, keys.fingerprints(), generation)
        .await
        .map_err(|e| RotationError::Invalid(format!("fingerprint list: {e}")))?
    {
        return Err(RotationError::Invalid(
            "the access keys changed meanwhile; run again".into(),
        ));
    }
    let token = uuid::Uuid::new_v4().to_string();
    secret.put_pending(&token, &next.to_secret()).await?;
    Ok((fresh, token, read_version))
}

/// How often `sync_access_keys` re-reads a secret that keeps changing under it.
const SYNC_ATTEMPTS: usize = 5;

/// Makes the ledger's list exactly the fingerprints of the keys at AWSCURRENT; re-reads
/// the secret afterwards, and settles again if it changed meanwhile (a concurrent
/// regeneration). Returns the generation settled.
///
/// A list ahead of the secret means either a regeneration that landed since the secret
/// was read (its new version shows on a second read: settle again) or a secret whose
/// counter went back while its version stayed (restored by hand, written by an older
/// tool): then the secret as it is counts, recorded under the list's generation.
pub async fn sync_access_keys(
    secret: &dyn VersionedSecret,
    ledger: &dyn AccessKeyLedger,
) -> Result<u64, RotationError> {
    for _ in 0..SYNC_ATTEMPTS {
        let (keys, version) = current_access_keys(secret).await?;
        let recorded = recorded_generation(ledger).await?;
        if recorded > keys.generation() && current_access_keys(secret).await?.1 != version {
            continue;
        }
        let generation = keys.generation().max(recorded);
        let settled = ledger
            .settle_fingerprints(keys.fingerprints(), generation)
            .await
            .map_err(|e| RotationError::Invalid(format!("fingerprint list: {e}")))?;
        let (_, after) = current_access_keys(secret).await?;
        if settled && after == version {
            return Ok(generation);
        }
    }
    Err(RotationError::Invalid(
        "the access keys keep changing; run sync-access-keys again".into(),
    ))
}
