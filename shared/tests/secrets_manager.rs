//! The Secrets Manager key source against moto's server (started by the test fixture).

mod common;

use std::sync::Arc;
use std::time::Duration;

use callsign::adapters::secrets_manager::{SecretsManagerKeySource, create_secret_if_missing};
use callsign::domain::access_keys::AccessKeys;
use callsign::domain::key_ring::{KeyRing, KeysNeeded};

const EVERY_KEY: KeysNeeded = KeysNeeded {
    signing: true,
    verifying: true,
    access: true,
};
use callsign::domain::keys::{KeyError, SigningAlgorithm, StoredKeySet};
use callsign::domain::ports::KeySource;

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
    let (signing, access) = (
        StoredKeySet::generate(SigningAlgorithm::Es256).unwrap(),
        AccessKeys::generate(),
    );
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
    let (signing, access) = (
        StoredKeySet::generate(SigningAlgorithm::Es256).unwrap(),
        AccessKeys::generate(),
    );
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
