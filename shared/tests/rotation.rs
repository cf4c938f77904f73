//! Key rotation end to end on the real test servers: signing keys through Secrets
//! Manager's four-step contract (moto), identities on DynamoDB Local, tokens checked by
//! introspection as a fresh cold start of the functions would see them.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::secretsmanager::SecretsManagerSecretRotationEvent;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use callsign::adapters::dynamodb::DynamoDbStore;
use callsign::adapters::secrets_manager::{
    SecretsManagerKeySource, SecretsManagerSecret, create_secret_if_missing,
};
use callsign::app::{self, Backends};
use callsign::domain::access_keys::{AccessKeys, generate_key};
use callsign::domain::key_ring::KeyRing;

const EVERY_KEY: KeysNeeded = KeysNeeded {
    signing: true,
    verifying: true,
    access: true,
};
use callsign::domain::keys::{KeySet, SigningAlgorithm, StoredKeySet};
use callsign::domain::ports::{AccessKeyLedger, KeysNeeded, VersionedSecret};
use callsign::domain::rotation::{self, Step, WhichKey};
use callsign::domain::token::TokenRejection;
use callsign::http::{self as api, ApiRequest, App, Function, Served};
use common::{HOST, encoded, split};
use http::Method;
use serde_json::{Value, json};

const V: &str = "api-version=2023-10-01";

struct Deployment {
    secrets: aws_sdk_secretsmanager::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
    signing_id: String,
    /// The public half, as the rotation function publishes it for the verifier functions.
    public_id: String,
    access_id: String,
    access: AccessKeys,
    activation_seconds: i64,
}

impl Deployment {
    async fn new(algorithm: SigningAlgorithm) -> Self {
        let secrets = common::secrets_manager().await;
        let dynamodb = common::dynamodb().await;
        let table = common::unique("rotation");
        DynamoDbStore::new(dynamodb.clone(), &table)
            .create_table_if_missing()
            .await
            .unwrap();
        let (signing_id, access_id) = (common::unique("signing"), common::unique("access"));
        let access = AccessKeys::generate();
        let initial = StoredKeySet::generate(algorithm).unwrap();
        create_secret_if_missing(&secrets, &signing_id, || Ok(initial.to_secret()))
            .await
            .unwrap();
        create_secret_if_missing(&secrets, &access_id, || Ok(access.to_secret()))
            .await
            .unwrap();
        let public_id = common::unique("public");
        let published = KeySet::from_secret(&initial.to_secret())
            .unwrap()
            .published()
            .to_secret();
        create_secret_if_missing(&secrets, &public_id, || Ok(published))
            .await
            .unwrap();
        Self {
            secrets,
            dynamodb,
            table,
            signing_id,
            public_id,
            access_id,
            access,
            activation_seconds: 0,
        }
    }

    /// Tokens settings with new keys signing at once (the activation delay has its own test).
    fn settings(&self) -> callsign::domain::token::TokenSettings {
        let mut settings = common::config().token;
        settings.key_activation_seconds = self.activation_seconds;
        settings
    }

    /// The table's list of current access key fingerprints.
    fn ledger(&self) -> DynamoDbStore {
        DynamoDbStore::new(self.dynamodb.clone(), &self.table)
    }

    fn signing_secret(&self) -> SecretsManagerSecret {
        SecretsManagerSecret::new(self.secrets.clone(), &self.signing_id)
    }

    fn public_secret(&self) -> SecretsManagerSecret {
        SecretsManagerSecret::new(self.secrets.clone(), &self.public_id)
    }

    /// The kids the public key secret lists now.
    async fn published_kids(&self) -> Vec<String> {
        let document = self
            .public_secret()
            .value(rotation::CURRENT, None)
            .await
            .unwrap()
            .unwrap();
        let jwks: Value = serde_json::from_str(&document).unwrap();
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|key| key["kid"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The kids of the signing set in force: [current, previous].
    async fn signing_kids(&self) -> Vec<String> {
        let current = self.state().await.1;
        let set = KeySet::from_secret(&current).unwrap();
        std::iter::once(&set.current)
            .chain(set.previous.as_ref())
            .map(|key| key.kid().to_owned())
            .collect()
    }

    /// The admin API as a function sees it right after a cold start.
    async fn cold_start(&self, ttl: Duration) -> Arc<App> {
        let source = SecretsManagerKeySource::new(
            self.secrets.clone(),
            Some(&self.signing_id),
            Some(&self.access_id),
        )
        .with_public_keys(Some(&self.public_id));
        self.start(source, Served::All, ttl).await
    }

    /// A function that only verifies (jwks, introspect) as it starts: it is given the
    /// public key secret (and the access keys), never the signing key secret.
    async fn verifier_cold_start(&self, function: Function) -> Arc<App> {
        let source =
            SecretsManagerKeySource::new(self.secrets.clone(), None, Some(&self.access_id))
                .with_public_keys(Some(&self.public_id));
        let app = self
            .start(source, Served::Function(function), Duration::from_secs(60))
            .await;
        assert!(app.service.keys().signing_keys().is_none());
        app
    }

    async fn start(
        &self,
        source: SecretsManagerKeySource,
        served: Served,
        ttl: Duration,
    ) -> Arc<App> {
        let store = Arc::new(DynamoDbStore::new(self.dynamodb.clone(), &self.table));
        let backends = Backends {
            store: store.clone(),
            throttle: store,
            keys: Arc::new(source),
        };
        let mut config = common::config();
        config.token = self.settings();
        config.key_cache_ttl = ttl;
        Arc::new(
            app::assemble(&config, served, backends, app::Trust::default())
                .await
                .unwrap(),
        )
    }

    /// The signing secret's versions and current value, and the public secret's value.
    async fn state(&self) -> (HashMap<String, Vec<String>>, String, String) {
        let secret = self.signing_secret();
        let mut versions = secret.versions().await.unwrap();
        for stages in versions.values_mut() {
            stages.sort();
        }
        let current = |secret: SecretsManagerSecret| async move {
            secret
                .value(rotation::CURRENT, None)
                .await
                .unwrap()
                .unwrap()
        };
        (
            versions,
            current(secret).await,
            current(self.public_secret()).await,
        )
    }

    /// Runs the given steps, each twice (Secrets Manager retries), checking that a retry
    /// changes nothing.
    async fn rotate(&self, token: &str, steps: &[Step]) {
        for step in steps {
            rotation::rotate_signing_keys(
                &self.signing_secret(),
                Some(&self.public_secret()),
                *step,
                token,
                SigningAlgorithm::Es256,
            )
            .await
            .unwrap();
            let after_first = self.state().await;
            rotation::rotate_signing_keys(
                &self.signing_secret(),
                Some(&self.public_secret()),
                *step,
                token,
                SigningAlgorithm::Es256,
            )
            .await
            .unwrap();
            assert_eq!(
                self.state().await,
                after_first,
                "a retried {step:?} changed a secret"
            );
        }
    }
}

async fn call(app: &Arc<App>, key: &str, method: Method, path: &str, body: &str) -> (u16, Value) {
    split(
        api::handle(
            app,
            Served::All,
            ApiRequest::signed(key, method, path, HOST, body).unwrap(),
        )
        .await,
    )
}

async fn issue(app: &Arc<App>, key: &str, id: &str) -> String {
    let path = format!("/identities/{}/:issueAccessToken?{V}", encoded(id));
    let (status, body) = call(app, key, Method::POST, &path, r#"{"scopes":["chat"]}"#).await;
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

fn kid_of(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

async fn jwks_kids(app: &Arc<App>) -> Vec<String> {
    let mut request = ApiRequest::signed("", Method::GET, "/.well-known/jwks.json", HOST, "")
        .unwrap_or_else(|_| {
            ApiRequest::signed(
                &generate_key(),
                Method::GET,
                "/.well-known/jwks.json",
                HOST,
                "",
            )
            .unwrap()
        });
    request.headers.remove("authorization");
    let (status, body) = split(api::handle(app, Served::Function(Function::Jwks), request).await);
    assert_eq!(status, 200);
    body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

const ALL_STEPS: &[Step] = &[
    Step::CreateSecret,
    Step::SetSecret,
    Step::TestSecret,
    Step::FinishSecret,
];

#[tokio::test]
async fn rotations_keep_live_tokens_valid_retire_the_oldest_key_and_survive_interruption() {
    let d = Deployment::new(SigningAlgorithm::Es256).await;
    let key = d.access.primary().to_owned();
    let before = d.cold_start(Duration::from_secs(300)).await;
    let (status, created) =
        call(&before, &key, Method::POST, &format!("/identities?{V}"), "").await;
    assert_eq!(status, 201);
    let id = created["identity"]["id"].as_str().unwrap().to_owned();
    let token_a = issue(&before, &key, &id).await;
    let kid_1 = kid_of(&token_a);
    assert_eq!(jwks_kids(&before).await, vec![kid_1.clone()]);

    // Rotation 1: a new current key; the old one becomes previous.
    d.rotate(&uuid::Uuid::new_v4().to_string(), ALL_STEPS).await;
    let after_one = d.cold_start(Duration::from_secs(300)).await;
    let token_b = issue(&after_one, &key, &id).await;
    let kid_2 = kid_of(&token_b);
    assert_ne!(kid_2, kid_1, "new tokens carry the new kid");
    assert_eq!(
        jwks_kids(&after_one).await,
        vec![kid_2.clone(), kid_1.clone()]
    );
    assert_eq!(
        common::introspect(&after_one, &key, &token_a).await["active"],
        true,
        "signed before, verifies after"
    );
    assert_eq!(
        common::introspect(&after_one, &key, &token_b).await["active"],
        true
    );

    // Rotation 2 retires kid 1: its tokens are of an unknown key now.
    d.rotate(&uuid::Uuid::new_v4().to_string(), ALL_STEPS).await;
    let after_two = d.cold_start(Duration::from_secs(300)).await;
    let kid_3 = kid_of(&issue(&after_two, &key, &id).await);
    assert_eq!(
        jwks_kids(&after_two).await,
        vec![kid_3.clone(), kid_2.clone()]
    );
    assert_eq!(
        common::introspect(&after_two, &key, &token_a).await,
        json!({"active": false, "reason": "unknown_key"})
    );
    assert_eq!(
        common::introspect(&after_two, &key, &token_b).await["active"],
        true
    );

    // Interrupted after createSecret: AWSCURRENT is untouched, the issuer keeps kid 3.
    let (_, current_before, _) = d.state().await;
    d.rotate(&uuid::Uuid::new_v4().to_string(), &[Step::CreateSecret])
        .await;
    assert_eq!(d.state().await.1, current_before);
    let interrupted = d.cold_start(Duration::from_secs(300)).await;
    let token_c = issue(&interrupted, &key, &id).await;
    assert_eq!(kid_of(&token_c), kid_3);
    assert_eq!(
        common::introspect(&interrupted, &key, &token_c).await["active"],
        true
    );

    // The next full rotation starts from AWSCURRENT, not from the abandoned pending set.
    d.rotate(&uuid::Uuid::new_v4().to_string(), ALL_STEPS).await;
    let recovered = d.cold_start(Duration::from_secs(300)).await;
    let kids = jwks_kids(&recovered).await;
    assert_eq!(kids.len(), 2);
    assert_eq!(kids[1], kid_3);
    assert_eq!(
        common::introspect(&recovered, &key, &token_c).await["active"],
        true
    );
}

#[tokio::test]
async fn a_running_function_picks_up_a_rotation_on_an_unknown_kid() {
    let d = Deployment::new(SigningAlgorithm::Es256).await;
    let key = d.access.primary().to_owned();
    // A long TTL: only the unknown kid can make it fetch the new keys.
    let verifier_side = d.cold_start(Duration::from_secs(3600)).await;
    d.rotate(&uuid::Uuid::new_v4().to_string(), ALL_STEPS).await;
    let issuer_side = d.cold_start(Duration::from_secs(3600)).await;
    let (_, created) = call(
        &issuer_side,
        &key,
        Method::POST,
        &format!("/identities?{V}"),
        "",
    )
    .await;
    let token = issue(
        &issuer_side,
        &key,
        created["identity"]["id"].as_str().unwrap(),
    )
    .await;
    assert_eq!(
        common::introspect(&verifier_side, &key, &token).await["active"],
        true
    );
}

#[tokio::test]
async fn regenerating_one_access_key_invalidates_it_and_keeps_the_other() {
    let d = Deployment::new(SigningAlgorithm::Es256).await;
    let (old_primary, secondary) = (
        d.access.primary().to_owned(),
        d.access.secondary().unwrap().to_owned(),
    );
    let app = d.cold_start(Duration::ZERO).await;
    let create = format!("/identities?{V}");
    assert_eq!(
        call(&app, &old_primary, Method::POST, &create, "").await.0,
        201
    );

    let secret = SecretsManagerSecret::new(d.secrets.clone(), &d.access_id);
    let new_primary = rotation::regenerate_access_key(&secret, &d.ledger(), WhichKey::Primary)
        .await
        .unwrap();
    assert_ne!(new_primary, old_primary);

    // The running function refreshes in the background within its TTL (zero here).
    let mut status = 201;
    for _ in 0..100 {
        status = call(&app, &old_primary, Method::POST, &create, "").await.0;
        if status == 401 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, 401, "the regenerated key still works");
    assert_eq!(
        call(&app, &secondary, Method::POST, &create, "").await.0,
        201
    );
    assert_eq!(
        call(&app, &new_primary, Method::POST, &create, "").await.0,
        201
    );

    let stored = access_keys_in(&secret).await;
    assert_eq!(
        (stored.primary(), stored.secondary()),
        (new_primary.as_str(), Some(secondary.as_str()))
    );
    let new_secondary = rotation::regenerate_access_key(&secret, &d.ledger(), WhichKey::Secondary)
        .await
        .unwrap();
    let stored = access_keys_in(&secret).await;
    assert_eq!(
        (stored.primary(), stored.secondary()),
        (new_primary.as_str(), Some(new_secondary.as_str()))
    );
}

#[tokio::test]
async fn the_rotation_events_drive_a_whole_rotation() {
    let d = Deployment::new(SigningAlgorithm::Es256).await;
    let (_, before, _) = d.state().await;
    let token = uuid::Uuid::new_v4().to_string();
    let events = concat!(env!("CARGO_MANIFEST_DIR"), "/../events");
    for file in [
        "rotation-create-secret.json",
        "rotation-set-secret.json",
        "rotation-test-secret.json",
        "rotation-finish-secret.json",
    ] {
        let mut event: Value =
            serde_json::from_str(&std::fs::read_to_string(format!("{events}/{file}")).unwrap())
                .unwrap();
        event["SecretId"] = json!(d.signing_id);
        event["ClientRequestToken"] = json!(token);
        let event: SecretsManagerSecretRotationEvent = serde_json::from_value(event).unwrap();
        callsign::lambda::rotation::rotate_event(
            &d.signing_secret(),
            Some(&d.public_secret()),
            &event,
            SigningAlgorithm::EdDsa,
        )
        .await
        .unwrap();
    }
    let (versions, after, _) = d.state().await;
    assert_ne!(after, before);
    assert!(versions[&token].contains(&"AWSCURRENT".to_string()));
    let rotated: Value = serde_json::from_str(&after).unwrap();
    assert_eq!(rotated["current"]["alg"], "EdDSA");
    assert_eq!(
        rotated["previous"],
        serde_json::from_str::<Value>(&before).unwrap()["current"]
    );

    let bogus: SecretsManagerSecretRotationEvent = serde_json::from_value(
        json!({"Step": "explodeSecret", "SecretId": d.signing_id, "ClientRequestToken": token}),
    )
    .unwrap();
    assert!(
        callsign::lambda::rotation::rotate_event(
            &d.signing_secret(),
            Some(&d.public_secret()),
            &bogus,
            SigningAlgorithm::Es256
        )
        .await
        .is_err()
    );
}

#[tokio::test]
async fn test_secret_refuses_a_pending_set_that_cannot_sign() {
    let d = Deployment::new(SigningAlgorithm::Es256).await;
    let (_, before, _) = d.state().await;
    let token = uuid::Uuid::new_v4().to_string();
    d.signing_secret()
        .put_pending(
            &token,
            r#"{"current":{"kid":"x1","alg":"ES256","privateKey":"AAAA"}}"#,
        )
        .await
        .unwrap();
    let err = rotation::rotate_signing_keys(
        &d.signing_secret(),
        Some(&d.public_secret()),
        Step::TestSecret,
        &token,
        SigningAlgorithm::Es256,
    )
    .await;
    assert!(err.is_err());
    assert_eq!(d.state().await.1, before, "AWSCURRENT untouched");
}

#[tokio::test]
async fn test_secret_refuses_a_set_that_does_not_rotate_the_current_key() {
    let d = Deployment::new(SigningAlgorithm::Es256).await;
    let token = uuid::Uuid::new_v4().to_string();
    // A fresh set unrelated to today's: it would cut every live token off.
    let unrelated = StoredKeySet::generate(SigningAlgorithm::Es256)
        .unwrap()
        .rotated(SigningAlgorithm::Es256)
        .unwrap();
    d.signing_secret()
        .put_pending(&token, &unrelated.to_secret())
        .await
        .unwrap();
    let result = rotation::rotate_signing_keys(
        &d.signing_secret(),
        Some(&d.public_secret()),
        Step::TestSecret,
        &token,
        SigningAlgorithm::Es256,
    )
    .await;
    assert!(
        result
            .unwrap_err()
            .to_string()
            .contains("previous must be today's current")
    );
}

#[tokio::test]
async fn finish_secret_never_promotes_a_version_that_is_not_pending() {
    let d = Deployment::new(SigningAlgorithm::Es256).await;
    let first = uuid::Uuid::new_v4().to_string();
    d.rotate(&first, ALL_STEPS).await;
    d.rotate(&uuid::Uuid::new_v4().to_string(), ALL_STEPS).await;
    let (_, current, _) = d.state().await;
    // `first` is AWSPREVIOUS now: a replayed finishSecret must not roll the keys back.
    let replay = rotation::rotate_signing_keys(
        &d.signing_secret(),
        Some(&d.public_secret()),
        Step::FinishSecret,
        &first,
        SigningAlgorithm::Es256,
    )
    .await;
    assert!(replay.is_err());
    assert_eq!(d.state().await.1, current);
}

#[tokio::test]
async fn a_rotated_in_key_is_published_before_it_signs() {
    let mut d = Deployment::new(SigningAlgorithm::Es256).await;
    d.activation_seconds = 600;
    let key = d.access.primary().to_owned();
    let before = d.cold_start(Duration::from_secs(300)).await;
    let (_, created) = call(&before, &key, Method::POST, &format!("/identities?{V}"), "").await;
    let id = created["identity"]["id"].as_str().unwrap().to_owned();
    let old_kid = kid_of(&issue(&before, &key, &id).await);

    d.rotate(&uuid::Uuid::new_v4().to_string(), ALL_STEPS).await;
    let after = d.cold_start(Duration::from_secs(300)).await;
    let kids = jwks_kids(&after).await;
    assert_eq!(kids.len(), 2);
    assert_eq!(kids[1], old_kid);
    // Published at once, but the previous key keeps signing until the new one is known.
    assert_eq!(kid_of(&issue(&after, &key, &id).await), old_kid);
}

/// A new deployment: Secrets Manager generated both secrets' first values (random text,
/// no key set; a primary access key only). The first rotation makes the first key set;
/// regenerating the secondary access key adds one.
#[tokio::test]
async fn a_new_deployment_starts_from_generated_secret_values() {
    let secrets = common::secrets_manager().await;
    let (signing_id, access_id) = (common::unique("signing"), common::unique("access"));
    create_secret_if_missing(&secrets, &signing_id, || {
        Ok("Gq7RzV2mXc9pLw4tNs8kHb3dJf6yAe1u".into())
    })
    .await
    .unwrap();
    let primary = generate_key();
    create_secret_if_missing(&secrets, &access_id, || {
        Ok(json!({ "primaryKey": primary }).to_string())
    })
    .await
    .unwrap();

    // The public key secret, too, starts as generated text.
    let public_id = common::unique("public");
    create_secret_if_missing(&secrets, &public_id, || {
        Ok("Xy9Jq2Lm5Np8Rs1Tv4Wz7Ab0Cd3Ef6Gh".into())
    })
    .await
    .unwrap();
    let public = SecretsManagerSecret::new(secrets.clone(), &public_id);

    let signing = SecretsManagerSecret::new(secrets.clone(), &signing_id);
    let token = uuid::Uuid::new_v4().to_string();
    for step in ALL_STEPS {
        rotation::rotate_signing_keys(
            &signing,
            Some(&public),
            *step,
            &token,
            SigningAlgorithm::Es256,
        )
        .await
        .unwrap();
    }
    let in_force = KeySet::from_secret(
        &signing
            .value(rotation::CURRENT, None)
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        public
            .value(rotation::CURRENT, None)
            .await
            .unwrap()
            .unwrap(),
        in_force.published().to_secret(),
        "the first rotation publishes the first key set's public half"
    );
    let current: StoredKeySet = serde_json::from_str(
        &signing
            .value(rotation::CURRENT, None)
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert!(current.previous.is_none());

    let access = SecretsManagerSecret::new(secrets.clone(), &access_id);
    // The fingerprint list's own tests run on DynamoDB Local (access_key_revocation.rs).
    let ledger = callsign::adapters::memory::MemoryStore::new();
    let secondary = rotation::regenerate_access_key(&access, &ledger, WhichKey::Secondary)
        .await
        .unwrap();
    let keys = access_keys_in(&access).await;
    assert_eq!(
        (keys.primary(), keys.secondary()),
        (primary.as_str(), Some(secondary.as_str()))
    );
    let source = SecretsManagerKeySource::new(secrets, Some(&signing_id), Some(&access_id));
    assert!(
        KeyRing::load(Arc::new(source), Duration::from_secs(60), EVERY_KEY)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn two_regenerations_at_once_never_lose_a_key_silently() {
    let d = Deployment::new(SigningAlgorithm::Es256).await;
    let secret = SecretsManagerSecret::new(d.secrets.clone(), &d.access_id);
    let ledger = d.ledger();
    let (a, b) = tokio::join!(
        rotation::regenerate_access_key(&secret, &ledger, WhichKey::Primary),
        rotation::regenerate_access_key(&secret, &ledger, WhichKey::Secondary),
    );
    let stored = access_keys_in(&secret).await;
    match (a, b) {
        (Ok(primary), Err(e)) => {
            assert!(e.to_string().contains("changed meanwhile"), "{e}");
            assert_eq!(stored.primary(), primary);
            assert_eq!(
                stored.secondary(),
                d.access.secondary(),
                "the loser changed nothing"
            );
        }
        (Err(e), Ok(secondary)) => {
            assert!(e.to_string().contains("changed meanwhile"), "{e}");
            assert_eq!(stored.secondary(), Some(secondary.as_str()));
            assert_eq!(
                stored.primary(),
                d.access.primary(),
                "the loser changed nothing"
            );
        }
        // Both may succeed only one after the other, each on the other's result.
        (Ok(primary), Ok(secondary)) => {
            assert_eq!(
                (stored.primary(), stored.secondary()),
                (primary.as_str(), Some(secondary.as_str()))
            );
        }
        (Err(a), Err(b)) => panic!("both failed: {a}; {b}"),
    }
    // Whoever won, the fingerprint list ends as the secret's keys: the replaced key's
    // tokens are revoked, the loser's key never counted.
    let (listed, generation) = ledger.fingerprints().await.unwrap().unwrap();
    assert_eq!(listed.0, stored.fingerprints());
    assert_eq!(generation, stored.generation());
}

#[tokio::test]
async fn awscurrent_moves_only_from_the_version_that_holds_it() {
    let d = Deployment::new(SigningAlgorithm::Es256).await;
    let secret = SecretsManagerSecret::new(d.secrets.clone(), &d.access_id);
    let first = secret.versions().await.unwrap().into_keys().next().unwrap();
    rotation::regenerate_access_key(&secret, &d.ledger(), WhichKey::Primary)
        .await
        .unwrap();
    let late = uuid::Uuid::new_v4().to_string();
    secret
        .put_pending(&late, &d.access.to_secret())
        .await
        .unwrap();
    // `first` no longer holds AWSCURRENT: a regeneration that read it must not land.
    assert!(secret.promote(&late, &first).await.is_err());
    let stored = access_keys_in(&secret).await;
    assert_ne!(stored.primary(), d.access.primary());
}

async fn introspect_active(app: &Arc<App>, key: &str, token: &str) -> bool {
    let body = json!({ "token": token }).to_string();
    let (status, body) = call(
        app,
        key,
        Method::POST,
        &format!("/tokens/:introspect?{V}"),
        &body,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["active"] == true
}

/// The public key secret follows every step of a rotation, also one that was abandoned
/// half-way, and the functions that only verify (given only that secret) accept the
/// tokens the signing functions issue at every point.
#[tokio::test]
async fn the_public_key_set_follows_every_rotation_step_even_an_interrupted_one() {
    let d = Deployment::new(SigningAlgorithm::Es256).await;
    let [first, abandoned_rotation, third] = [(); 3].map(|()| uuid::Uuid::new_v4().to_string());
    let signer = d.cold_start(Duration::from_secs(60)).await;
    let (status, created) = call(
        &signer,
        d.access.primary(),
        Method::POST,
        &format!("/identities?{V}"),
        "",
    )
    .await;
    assert_eq!(status, 201);
    let id = created["identity"]["id"].as_str().unwrap().to_owned();
    let k0 = d.signing_kids().await[0].clone();
    assert_eq!(d.published_kids().await, [k0.as_str()]);

    // Checks that a verifier started now accepts a token a signer started now issues.
    let verified_now = || async {
        let signer = d.cold_start(Duration::from_secs(60)).await;
        let token = issue(&signer, d.access.primary(), &id).await;
        let introspect = d.verifier_cold_start(Function::Introspect).await;
        let jwks = d.verifier_cold_start(Function::Jwks).await;
        assert!(introspect_active(&introspect, d.access.primary(), &token).await);
        assert!(jwks_kids(&jwks).await.contains(&kid_of(&token)));
        assert_eq!(jwks_kids(&jwks).await, d.published_kids().await);
    };
    verified_now().await;

    d.rotate(&first, &[Step::CreateSecret]).await;
    let pending1 = d.published_kids().await;
    assert_eq!(pending1.len(), 2, "in force and pending: {pending1:?}");
    assert_eq!(pending1[0], k0);
    let k1 = pending1[1].clone();
    verified_now().await;
    d.rotate(&first, &[Step::SetSecret, Step::TestSecret]).await;
    assert_eq!(d.published_kids().await, [k0.clone(), k1.clone()]);
    d.rotate(&first, &[Step::FinishSecret]).await;
    assert_eq!(d.signing_kids().await, [k1.clone(), k0.clone()]);
    assert_eq!(d.published_kids().await, d.signing_kids().await);
    verified_now().await;

    // A rotation abandoned after setSecret: its pending key is published, never signs.
    d.rotate(&abandoned_rotation, &[Step::CreateSecret, Step::SetSecret])
        .await;
    let abandoned = d.published_kids().await;
    assert_eq!(abandoned.len(), 3);
    assert_eq!(abandoned[..2], [k1.clone(), k0.clone()]);
    verified_now().await;
    // The next rotation publishes its own pending key instead, then the new set.
    d.rotate(&third, &[Step::CreateSecret]).await;
    let pending3 = d.published_kids().await;
    assert_eq!(pending3[..2], [k1.clone(), k0.clone()]);
    assert!(
        !pending3.contains(&abandoned[2]),
        "the abandoned key is dropped"
    );
    d.rotate(
        &third,
        &[Step::SetSecret, Step::TestSecret, Step::FinishSecret],
    )
    .await;
    assert_eq!(d.signing_kids().await, [pending3[2].clone(), k1.clone()]);
    // The set it replaced stays published until the next rotation: a function that has
    // not refreshed may still sign with k0 (k1's activation delay), also when this
    // rotation follows the last one closely.
    assert_eq!(
        d.published_kids().await,
        [pending3[2].clone(), k1.clone(), k0.clone()]
    );
    verified_now().await;
}

/// The access keys at AWSCURRENT.
async fn access_keys_in(secret: &SecretsManagerSecret) -> AccessKeys {
    let value = secret.value(rotation::CURRENT, None).await.unwrap();
    AccessKeys::from_secret(&value.unwrap()).unwrap()
}

/// A fresh identity's token, issued by the admin API under `key`.
async fn token_under(app: &Arc<App>, key: &str) -> String {
    let create = format!("/identities?{V}");
    let (status, body) = call(
        app,
        key,
        Method::POST,
        &create,
        r#"{"createTokenWithScopes":["chat"]}"#,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["accessToken"]["token"].as_str().unwrap().to_owned()
}

async fn guest_token(app: &Arc<App>) -> String {
    let request = ApiRequest {
        method: Method::POST,
        path: "/guest/token".into(),
        source_ip: Some("203.0.113.9".into()),
        ..Default::default()
    };
    let (status, body) = split(api::handle(app, Served::All, request).await);
    assert_eq!(status, 200, "{body}");
    body["accessToken"]["token"].as_str().unwrap().to_owned()
}

/// Introspection's verdict: "active", or the reason it is not.
async fn verdict(app: &Arc<App>, key: &str, token: &str) -> String {
    let answer = common::introspect(app, key, token).await;
    if answer["active"] == true {
        "active".into()
    } else {
        answer["reason"].as_str().unwrap().to_owned()
    }
}

/// The authorizer of a chat backend, trusting a revocation marker for `bound`.
fn authorizer(app: &Arc<App>, bound: Duration) -> callsign::domain::authorizer::Authorizer {
    app::authorizer_for(
        &app.service,
        &callsign::config::AuthorizerConfig {
            routes: callsign::domain::RoutePolicy::default_routes(),
            revocation_cache: bound,
        },
    )
}

async fn authorized(
    authorizer: &callsign::domain::authorizer::Authorizer,
    token: &str,
) -> Result<(), String> {
    authorizer
        .authorize(
            "POST /chat/threads",
            Some(&format!("Bearer {token}")),
            chrono::Utc::now(),
        )
        .await
        .map(|_| ())
        .map_err(|denial| denial.code().to_owned())
}

/// The current fingerprints, as an embedded verifier would be given them.
async fn embedded_verdict(d: &Deployment, token: &str) -> Result<(), TokenRejection> {
    let (current, _) = d.ledger().fingerprints().await.unwrap().unwrap();
    let claims: callsign::domain::token::Claims =
        serde_json::from_value(common::claims(token)).unwrap();
    current.admit(&claims)
}

/// Waits until the function has picked up the regenerated keys (TTL zero: at once, in
/// the background) and `key` authenticates.
async fn until_accepted(app: &Arc<App>, key: &str) {
    for _ in 0..100 {
        if call(app, key, Method::GET, &format!("/customIds/nobody?{V}"), "")
            .await
            .0
            == 404
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the regenerated key never authenticated");
}

#[tokio::test]
async fn regenerating_a_key_revokes_the_tokens_it_issued_and_no_others() {
    let d = Deployment::new(SigningAlgorithm::Es256).await;
    let app = d.cold_start(Duration::ZERO).await;
    let (primary, secondary) = (
        d.access.primary().to_owned(),
        d.access.secondary().unwrap().to_owned(),
    );
    let by_primary = token_under(&app, &primary).await;
    let by_secondary = token_under(&app, &secondary).await;
    let by_guest = guest_token(&app).await;
    let cached = authorizer(&app, Duration::from_secs(3600));
    let uncached = authorizer(&app, Duration::ZERO);
    for token in [&by_primary, &by_secondary] {
        assert_eq!(verdict(&app, &secondary, token).await, "active");
        assert_eq!(authorized(&cached, token).await, Ok(()));
    }

    let new_primary = rotation::regenerate_access_key(
        &SecretsManagerSecret::new(d.secrets.clone(), &d.access_id),
        &d.ledger(),
        WhichKey::Primary,
    )
    .await
    .unwrap();

    // Introspection: at once.
    assert_eq!(
        verdict(&app, &secondary, &by_primary).await,
        "credential_revoked"
    );
    assert_eq!(verdict(&app, &secondary, &by_secondary).await, "active");
    assert_eq!(verdict(&app, &secondary, &by_guest).await, "active");
    // The authorizer: within its bound (an hour here, so not yet; zero: at once).
    assert_eq!(authorized(&cached, &by_primary).await, Ok(()));
    assert_eq!(
        authorized(&uncached, &by_primary).await,
        Err("credential_revoked".into())
    );
    assert_eq!(authorized(&uncached, &by_secondary).await, Ok(()));
    // An embedded verifier, given the current list.
    assert_eq!(
        embedded_verdict(&d, &by_primary).await,
        Err(TokenRejection::CredentialRevoked)
    );
    assert_eq!(embedded_verdict(&d, &by_secondary).await, Ok(()));

    // The new key's tokens count everywhere, the cached authorizer's included.
    until_accepted(&app, &new_primary).await;
    let by_new = token_under(&app, &new_primary).await;
    assert_eq!(verdict(&app, &secondary, &by_new).await, "active");
    assert_eq!(authorized(&uncached, &by_new).await, Ok(()));
    assert_eq!(embedded_verdict(&d, &by_new).await, Ok(()));
}

#[tokio::test]
async fn an_interrupted_regeneration_is_finished_by_a_sync() {
    let d = Deployment::new(SigningAlgorithm::Es256).await;
    let app = d.cold_start(Duration::ZERO).await;
    let (primary, secondary) = (
        d.access.primary().to_owned(),
        d.access.secondary().unwrap().to_owned(),
    );
    let by_primary = token_under(&app, &primary).await;
    let secret = SecretsManagerSecret::new(d.secrets.clone(), &d.access_id);
    let ledger = d.ledger();

    // Stopped after the swap, before the list was settled.
    let (new_primary, staged, read) =
        rotation::stage_access_key(&secret, &ledger, WhichKey::Primary)
            .await
            .unwrap();
    secret.promote(&staged, &read).await.unwrap();
    until_accepted(&app, &new_primary).await;
    // The new key's tokens count already (its fingerprint went in first); the old key's
    // tokens are not revoked yet.
    let by_new = token_under(&app, &new_primary).await;
    assert_eq!(verdict(&app, &secondary, &by_new).await, "active");
    assert_eq!(verdict(&app, &secondary, &by_primary).await, "active");

    let generation = rotation::sync_access_keys(&secret, &ledger).await.unwrap();
    assert_eq!(generation, 1);
    assert_eq!(
        verdict(&app, &secondary, &by_primary).await,
        "credential_revoked"
    );
    assert_eq!(verdict(&app, &secondary, &by_new).await, "active");

    // Stopped before the swap: nothing changes but an unused fingerprint, which the next
    // settle drops.
    let before = ledger.fingerprints().await.unwrap().unwrap();
    rotation::stage_access_key(&secret, &ledger, WhichKey::Secondary)
        .await
        .unwrap();
    assert_eq!(verdict(&app, &secondary, &by_new).await, "active");
    rotation::sync_access_keys(&secret, &ledger).await.unwrap();
    assert_eq!(ledger.fingerprints().await.unwrap().unwrap(), before);

    // A stale regeneration (read before another one landed) writes nothing.
    assert!(
        !ledger
            .settle_fingerprints(d.access.fingerprints(), 0)
            .await
            .unwrap()
    );
    assert!(
        !ledger
            .admit_fingerprint("0000", d.access.fingerprints(), 0)
            .await
            .unwrap()
    );
    assert_eq!(ledger.fingerprints().await.unwrap().unwrap(), before);
}

#[tokio::test]
async fn a_secret_whose_counter_went_back_is_synced_and_regenerated_again() {
    let d = Deployment::new(SigningAlgorithm::Es256).await;
    let secret = SecretsManagerSecret::new(d.secrets.clone(), &d.access_id);
    let ledger = d.ledger();
    rotation::regenerate_access_key(&secret, &ledger, WhichKey::Primary)
        .await
        .unwrap();
    assert_eq!(ledger.fingerprints().await.unwrap().unwrap().1, 1);

    // Restored by hand to the first keys (generation 0), behind the list's generation.
    let versions = secret.versions().await.unwrap();
    let current = versions
        .iter()
        .find(|(_, stages)| stages.iter().any(|s| s == rotation::CURRENT))
        .map(|(id, _)| id.clone())
        .unwrap();
    let restored = uuid::Uuid::new_v4().to_string();
    secret
        .put_pending(&restored, &d.access.to_secret())
        .await
        .unwrap();
    secret.promote(&restored, &current).await.unwrap();
    let generation = rotation::sync_access_keys(&secret, &ledger).await.unwrap();
    assert_eq!(generation, 1, "recorded under the list's generation");
    let (listed, _) = ledger.fingerprints().await.unwrap().unwrap();
    assert_eq!(
        listed.0,
        d.access.fingerprints(),
        "the secret as it is counts"
    );

    // And regeneration goes on, its generation past both.
    rotation::regenerate_access_key(&secret, &ledger, WhichKey::Secondary)
        .await
        .unwrap();
    let stored = access_keys_in(&secret).await;
    assert_eq!(
        stored.generation(),
        2,
        "{:?}",
        secret.versions().await.unwrap()
    );
    assert_eq!(
        ledger.fingerprints().await.unwrap().unwrap(),
        (
            callsign::domain::token::CurrentAccessKeys(stored.fingerprints().to_vec()),
            2
        )
    );
}
