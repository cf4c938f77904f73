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
use callsign::domain::keys::{SigningAlgorithm, StoredKeySet};
use callsign::domain::ports::VersionedSecret;
use callsign::domain::rotation::{self, Step, WhichKey};
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
        create_secret_if_missing(&secrets, &signing_id, || initial.to_secret())
            .await
            .unwrap();
        create_secret_if_missing(&secrets, &access_id, || access.to_secret())
            .await
            .unwrap();
        Self {
            secrets,
            dynamodb,
            table,
            signing_id,
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

    fn signing_secret(&self) -> SecretsManagerSecret {
        SecretsManagerSecret::new(self.secrets.clone(), &self.signing_id)
    }

    /// The admin API as a function sees it right after a cold start.
    async fn cold_start(&self, ttl: Duration) -> Arc<App> {
        let source = SecretsManagerKeySource::new(
            self.secrets.clone(),
            &self.signing_id,
            Some(&self.access_id),
        );
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
            app::assemble(&config, Served::All, backends, None)
                .await
                .unwrap(),
        )
    }

    async fn state(&self) -> (HashMap<String, Vec<String>>, String) {
        let secret = self.signing_secret();
        let mut versions = secret.versions().await.unwrap();
        for stages in versions.values_mut() {
            stages.sort();
        }
        (
            versions,
            secret
                .value(rotation::CURRENT, None)
                .await
                .unwrap()
                .unwrap(),
        )
    }

    /// Runs the given steps, each twice (Secrets Manager retries), checking that a retry
    /// changes nothing.
    async fn rotate(&self, token: &str, steps: &[Step]) {
        for step in steps {
            rotation::rotate_signing_keys(
                &self.signing_secret(),
                *step,
                token,
                SigningAlgorithm::Es256,
            )
            .await
            .unwrap();
            let after_first = self.state().await;
            rotation::rotate_signing_keys(
                &self.signing_secret(),
                *step,
                token,
                SigningAlgorithm::Es256,
            )
            .await
            .unwrap();
            assert_eq!(
                self.state().await,
                after_first,
                "a retried {step:?} changed the secret"
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
    let (_, current_before) = d.state().await;
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
    let new_primary = rotation::regenerate_access_key(&secret, WhichKey::Primary)
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

    let stored = AccessKeys::from_secret(
        &secret
            .value(rotation::CURRENT, None)
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (stored.primary(), stored.secondary()),
        (new_primary.as_str(), Some(secondary.as_str()))
    );
    let new_secondary = rotation::regenerate_access_key(&secret, WhichKey::Secondary)
        .await
        .unwrap();
    let stored = AccessKeys::from_secret(
        &secret
            .value(rotation::CURRENT, None)
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (stored.primary(), stored.secondary()),
        (new_primary.as_str(), Some(new_secondary.as_str()))
    );
}

#[tokio::test]
async fn the_rotation_events_drive_a_whole_rotation() {
    let d = Deployment::new(SigningAlgorithm::Es256).await;
    let (_, before) = d.state().await;
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
            &event,
            SigningAlgorithm::EdDsa,
        )
        .await
        .unwrap();
    }
    let (versions, after) = d.state().await;
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
    let (_, before) = d.state().await;
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
    let (_, current) = d.state().await;
    // `first` is AWSPREVIOUS now: a replayed finishSecret must not roll the keys back.
    let replay = rotation::rotate_signing_keys(
        &d.signing_secret(),
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
        "Gq7RzV2mXc9pLw4tNs8kHb3dJf6yAe1u".into()
    })
    .await
    .unwrap();
    let primary = generate_key();
    create_secret_if_missing(&secrets, &access_id, || {
        json!({ "primaryKey": primary }).to_string()
    })
    .await
    .unwrap();

    let signing = SecretsManagerSecret::new(secrets.clone(), &signing_id);
    let token = uuid::Uuid::new_v4().to_string();
    for step in ALL_STEPS {
        rotation::rotate_signing_keys(&signing, *step, &token, SigningAlgorithm::Es256)
            .await
            .unwrap();
    }
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
    let secondary = rotation::regenerate_access_key(&access, WhichKey::Secondary)
        .await
        .unwrap();
    let keys = AccessKeys::from_secret(
        &access
            .value(rotation::CURRENT, None)
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (keys.primary(), keys.secondary()),
        (primary.as_str(), Some(secondary.as_str()))
    );
    let source = SecretsManagerKeySource::new(secrets, &signing_id, Some(&access_id));
    assert!(
        KeyRing::load(Arc::new(source), Duration::from_secs(60))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn two_regenerations_at_once_never_lose_a_key_silently() {
    let d = Deployment::new(SigningAlgorithm::Es256).await;
    let secret = SecretsManagerSecret::new(d.secrets.clone(), &d.access_id);
    let (a, b) = tokio::join!(
        rotation::regenerate_access_key(&secret, WhichKey::Primary),
        rotation::regenerate_access_key(&secret, WhichKey::Secondary),
    );
    let stored = AccessKeys::from_secret(
        &secret
            .value(rotation::CURRENT, None)
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
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
}

#[tokio::test]
async fn awscurrent_moves_only_from_the_version_that_holds_it() {
    let d = Deployment::new(SigningAlgorithm::Es256).await;
    let secret = SecretsManagerSecret::new(d.secrets.clone(), &d.access_id);
    let first = secret.versions().await.unwrap().into_keys().next().unwrap();
    rotation::regenerate_access_key(&secret, WhichKey::Primary)
        .await
        .unwrap();
    let late = uuid::Uuid::new_v4().to_string();
    secret
        .put_pending(&late, &d.access.to_secret())
        .await
        .unwrap();
    // `first` no longer holds AWSCURRENT: a regeneration that read it must not land.
    assert!(secret.promote(&late, &first).await.is_err());
    let stored = AccessKeys::from_secret(
        &secret
            .value(rotation::CURRENT, None)
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_ne!(stored.primary(), d.access.primary());
}
