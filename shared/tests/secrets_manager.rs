//! The Secrets Manager key source against moto's server (started by the test fixture).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_secretsmanager::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_secretsmanager::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;

use callsign::adapters::secrets_manager::{SecretsManagerKeySource, create_secret_if_missing};
use callsign::domain::access_keys::AccessKeys;
use callsign::domain::key_ring::KeyRing;
use callsign::domain::keys::{KeyError, SigningAlgorithm, StoredKeySet};
use callsign::domain::ports::{KeySource, KeysNeeded, LoadedKeys};

const EVERY_KEY: KeysNeeded = KeysNeeded {
    signing: true,
    verifying: true,
    access: true,
};

/// A fresh signing key set and access keys, made for the test.
fn fresh_keys() -> (StoredKeySet, AccessKeys) {
    (
        StoredKeySet::generate(SigningAlgorithm::Es256).unwrap(),
        AccessKeys::generate(),
    )
}

/// `loaded` holds exactly these signing and access keys (a signing set carries its public
/// half, so no published set is fetched beside it).
fn assert_loaded(loaded: LoadedKeys, signing: &StoredKeySet, access: &AccessKeys) {
    assert_eq!(
        loaded.signing.unwrap().unwrap().current.kid(),
        signing.current.kid
    );
    assert_eq!(loaded.access.unwrap().unwrap().primary(), access.primary());
    assert!(loaded.published.is_none());
}

async fn secrets(
    signing: &StoredKeySet,
    access: &AccessKeys,
) -> (aws_sdk_secretsmanager::Client, String, String) {
    let client = common::secrets_manager().await;
    let (signing_id, access_id) = (common::unique("signing"), common::unique("access"));
    assert!(
        create_secret_if_missing(&client, &signing_id, || Ok(signing.to_secret()))
            .await
            .unwrap()
    );
    assert!(
        create_secret_if_missing(&client, &access_id, || Ok(access.to_secret()))
            .await
            .unwrap()
    );
    assert!(
        !create_secret_if_missing(&client, &access_id, || panic!("must not overwrite"))
            .await
            .unwrap()
    );
    (client, signing_id, access_id)
}

#[tokio::test]
async fn loads_both_key_sets() {
    let (signing, access) = fresh_keys();
    let (client, signing_id, access_id) = secrets(&signing, &access).await;
    let source = SecretsManagerKeySource::new(client, Some(&signing_id), Some(&access_id));
    assert_eq!(
        source.signing_keys().await.unwrap().current.kid(),
        signing.current.kid
    );
    let loaded = source.access_keys().await.unwrap();
    assert_eq!(
        (loaded.primary(), loaded.secondary()),
        (access.primary(), access.secondary())
    );
}

#[tokio::test]
async fn follows_awscurrent_after_a_rotation_and_the_ring_refreshes_in_the_background() {
    let (signing, access) = fresh_keys();
    let (client, signing_id, access_id) = secrets(&signing, &access).await;
    let source = Arc::new(SecretsManagerKeySource::new(
        client.clone(),
        Some(&signing_id),
        Some(&access_id),
    ));
    let ring = KeyRing::load(source.clone(), Duration::ZERO, EVERY_KEY)
        .await
        .unwrap();

    // A rotation: the new set goes to AWSPENDING, then AWSCURRENT moves to it.
    let rotated = StoredKeySet {
        current: StoredKeySet::generate(SigningAlgorithm::Es256)
            .unwrap()
            .current,
        previous: Some(signing.current.clone()),
    };
    let put = client
        .put_secret_value()
        .secret_id(&signing_id)
        .secret_string(rotated.to_secret())
        .version_stages("AWSPENDING")
        .send()
        .await
        .unwrap();
    let current_version = client
        .describe_secret()
        .secret_id(&signing_id)
        .send()
        .await
        .unwrap();
    let old_version = current_version
        .version_ids_to_stages
        .unwrap()
        .into_iter()
        .find(|(_, stages)| stages.iter().any(|s| s == "AWSCURRENT"))
        .map(|(id, _)| id)
        .unwrap();
    client
        .update_secret_version_stage()
        .secret_id(&signing_id)
        .version_stage("AWSCURRENT")
        .move_to_version_id(put.version_id.unwrap())
        .remove_from_version_id(old_version)
        .send()
        .await
        .unwrap();

    let loaded = source.signing_keys().await.unwrap();
    assert_eq!(loaded.current.kid(), rotated.current.kid);
    assert_eq!(
        loaded.previous.as_ref().map(|k| k.kid()),
        Some(signing.current.kid.as_str())
    );

    // The ring serves its cached set at once and swaps in the new one when fetched.
    let mut kid = ring.signing_keys().unwrap().current.kid().to_owned();
    for _ in 0..100 {
        if kid == rotated.current.kid {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        kid = ring.signing_keys().unwrap().current.kid().to_owned();
    }
    assert_eq!(kid, rotated.current.kid);
}

#[tokio::test]
async fn missing_and_malformed_secrets_are_clear_errors() {
    let client = common::secrets_manager().await;
    let source = SecretsManagerKeySource::new(
        client.clone(),
        Some(&common::unique("absent")),
        Some(&common::unique("absent")),
    );
    assert!(matches!(
        source.signing_keys().await,
        Err(KeyError::Source(_))
    ));
    assert!(
        KeyRing::load(Arc::new(source), Duration::from_secs(60), EVERY_KEY)
            .await
            .is_err()
    );

    let junk = common::unique("junk");
    create_secret_if_missing(&client, &junk, || Ok("{\"current\":1}".into()))
        .await
        .unwrap();
    let source = SecretsManagerKeySource::new(client, Some(&junk), Some(&junk));
    assert!(matches!(
        source.signing_keys().await,
        Err(KeyError::Invalid(_))
    ));
    assert!(matches!(
        source.access_keys().await,
        Err(KeyError::Invalid(_))
    ));
}

/// The operations a Secrets Manager client sent, by name.
#[derive(Debug, Clone, Default)]
struct Operations(Arc<Mutex<Vec<String>>>);

impl Intercept for Operations {
    fn name(&self) -> &'static str {
        "Operations"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // Secrets Manager's JSON protocol names the operation in X-Amz-Target.
        let target = context.request().headers().get("x-amz-target");
        let name = target.and_then(|t| t.strip_prefix("secretsmanager."));
        self.0.lock().unwrap().push(name.unwrap_or("?").to_owned());
        Ok(())
    }
}

impl Operations {
    fn sent(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// A client of the Secrets Manager at `endpoint` whose operations are recorded.
async fn recorded_client(endpoint: &str) -> (aws_sdk_secretsmanager::Client, Operations) {
    let operations = Operations::default();
    let sdk = common::aws_config(endpoint).await;
    let config = aws_sdk_secretsmanager::config::Builder::from(&sdk)
        .interceptor(operations.clone())
        .build();
    (
        aws_sdk_secretsmanager::Client::from_conf(config),
        operations,
    )
}

async fn arn(client: &aws_sdk_secretsmanager::Client, name: &str) -> String {
    let described = client.describe_secret().secret_id(name).send().await;
    described.unwrap().arn.unwrap()
}

#[tokio::test]
async fn a_cold_start_reads_both_key_secrets_in_one_call_by_name_or_by_arn() {
    let (signing, access) = fresh_keys();
    let (_, signing_name, access_name) = secrets(&signing, &access).await;
    let (client, operations) = recorded_client(common::servers::moto_endpoint()).await;
    let (signing_arn, access_arn) = (
        arn(&client, &signing_name).await,
        arn(&client, &access_name).await,
    );
    for (signing_id, access_id) in [(&signing_name, &access_name), (&signing_arn, &access_arn)] {
        let before = operations.sent().len();
        let source =
            SecretsManagerKeySource::new(client.clone(), Some(signing_id), Some(access_id));
        let loaded = source.load(EVERY_KEY).await;
        assert_loaded(loaded, &signing, &access);
        assert_eq!(operations.sent()[before..], ["BatchGetSecretValue"]);
    }
}

#[tokio::test]
async fn a_secret_the_batch_does_not_bring_is_read_on_its_own_and_fails_alone() {
    let (signing, access) = fresh_keys();
    let (_, signing_name, _) = secrets(&signing, &access).await;
    let absent = common::unique("absent");
    let (client, operations) = recorded_client(common::servers::moto_endpoint()).await;
    let source = SecretsManagerKeySource::new(client, Some(&signing_name), Some(&absent));
    let loaded = source.load(EVERY_KEY).await;
    assert_eq!(
        loaded.signing.unwrap().unwrap().current.kid(),
        signing.current.kid
    );
    match loaded.access.unwrap() {
        Err(KeyError::Source(message)) => {
            assert!(
                message.contains(&format!("GetSecretValue {absent}")),
                "{message}"
            );
        }
        other => panic!("the absent secret must fail on its own: {:?}", other.err()),
    }
    assert_eq!(operations.sent(), ["BatchGetSecretValue", "GetSecretValue"]);
    // A ring cannot be had without its access keys.
    assert!(
        KeyRing::load(Arc::new(source), Duration::from_secs(60), EVERY_KEY)
            .await
            .is_err()
    );
}

/// A Secrets Manager stand-in on 127.0.0.1 that refuses BatchGetSecretValue (as for a role
/// without the permission) and answers GetSecretValue from `values`; its endpoint.
async fn refusing_batches(values: Vec<(String, String)>) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let values = values.clone();
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                loop {
                    let (mut target, mut length) = (String::new(), 0);
                    loop {
                        let mut line = String::new();
                        if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let line = line.trim_end().to_ascii_lowercase();
                        if line.is_empty() {
                            break;
                        }
                        if let Some(value) = line.strip_prefix("x-amz-target:") {
                            target = value.trim().to_owned();
                        } else if let Some(value) = line.strip_prefix("content-length:") {
                            length = value.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; length];
                    stream.read_exact(&mut body).await.unwrap();
                    let request: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    let (status, answer) = if target.ends_with("batchgetsecretvalue") {
                        (
                            400,
                            serde_json::json!({"__type": "AccessDeniedException", "message": "not allowed"}),
                        )
                    } else {
                        let id = request["SecretId"].as_str().unwrap();
                        let value = &values.iter().find(|(name, _)| name == id).unwrap().1;
                        (
                            200,
                            serde_json::json!({"Name": id, "SecretString": value, "VersionStages": ["AWSCURRENT"]}),
                        )
                    };
                    let answer = answer.to_string();
                    let response = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/x-amz-json-1.1\r\n\
                         content-length: {}\r\n\r\n{answer}",
                        answer.len()
                    );
                    stream
                        .get_mut()
                        .write_all(response.as_bytes())
                        .await
                        .unwrap();
                }
            });
        }
    });
    format!("http://{address}")
}

#[tokio::test]
async fn a_refused_batch_falls_back_to_one_call_per_secret() {
    let (signing, access) = fresh_keys();
    let endpoint = refusing_batches(vec![
        ("signing".into(), signing.to_secret()),
        ("access".into(), access.to_secret()),
    ])
    .await;
    let (client, operations) = recorded_client(&endpoint).await;
    let source = SecretsManagerKeySource::new(client, Some("signing"), Some("access"));
    let loaded = source.load(EVERY_KEY).await;
    assert_loaded(loaded, &signing, &access);
    let mut sent = operations.sent();
    sent.sort();
    assert_eq!(
        sent,
        ["BatchGetSecretValue", "GetSecretValue", "GetSecretValue"]
    );
}
