//! AWS wiring: SDK clients, the Secrets Manager key source, and the app as a Lambda
//! function builds it at cold start.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_secretsmanager::Client as SecretsClient;

use crate::api::front::FrontApp;
use crate::api::{App, Operation};
use crate::auth::AccessKeys;
use crate::config::{Config, ConfigError, FrontConfig};
use crate::keys::{KeyError, KeyRing, KeySet, KeySource, StoredKeySet};
use crate::rotation::{self, RotationError, VersionedSecret};
use crate::service::IdentityService;
use crate::store::dynamodb::DynamoDbStore;

/// Credentials, region and endpoints from the environment (`AWS_ENDPOINT_URL_DYNAMODB`
/// and `AWS_ENDPOINT_URL_SECRETS_MANAGER` point the clients at local servers).
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// Keys from two Secrets Manager secrets (JSON; formats in README.md).
pub struct SecretsManagerKeySource {
    client: SecretsClient,
    signing_keys_secret_id: String,
    access_keys_secret_id: Option<String>,
}

impl SecretsManagerKeySource {
    pub fn new(
        client: SecretsClient,
        signing_keys_secret_id: &str,
        access_keys_secret_id: Option<&str>,
    ) -> Self {
        Self {
            client,
            signing_keys_secret_id: signing_keys_secret_id.to_owned(),
            access_keys_secret_id: access_keys_secret_id.map(str::to_owned),
        }
    }

    async fn current(&self, secret_id: &str) -> Result<String, KeyError> {
        // Always name the stage: moto (and older caches) may otherwise answer with the
        // previous value right after a rotation moved AWSCURRENT.
        let output = self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .version_stage("AWSCURRENT")
            .send()
            .await
            .map_err(|e| {
                KeyError::Source(format!(
                    "GetSecretValue {secret_id}: {}",
                    aws_sdk_secretsmanager::error::DisplayErrorContext(e)
                ))
            })?;
        output
            .secret_string
            .ok_or_else(|| KeyError::Invalid(format!("secret {secret_id} has no string value")))
    }
}

#[async_trait]
impl KeySource for SecretsManagerKeySource {
    async fn signing_keys(&self) -> Result<KeySet, KeyError> {
        KeySet::from_secret(&self.current(&self.signing_keys_secret_id).await?)
    }

    async fn access_keys(&self) -> Result<AccessKeys, KeyError> {
        let secret_id = self
            .access_keys_secret_id
            .as_deref()
            .ok_or_else(|| KeyError::Source("CALLSIGN_ACCESS_KEYS_SECRET_ID is not set".into()))?;
        AccessKeys::from_secret(&self.current(secret_id).await?)
    }
}

/// Creates a secret with `value` unless one with that name exists (local runs, tests).
pub async fn create_secret_if_missing(
    client: &SecretsClient,
    name: &str,
    value: impl FnOnce() -> String,
) -> Result<bool, KeyError> {
    match client.describe_secret().secret_id(name).send().await {
        Ok(_) => Ok(false),
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            client
                .create_secret()
                .name(name)
                .secret_string(value())
                .send()
                .await
                .map_err(|e| {
                    KeyError::Source(format!(
                        "CreateSecret {name}: {}",
                        aws_sdk_secretsmanager::error::DisplayErrorContext(e)
                    ))
                })?;
            Ok(true)
        }
        Err(err) => Err(KeyError::Source(format!(
            "DescribeSecret {name}: {}",
            aws_sdk_secretsmanager::error::DisplayErrorContext(err)
        ))),
    }
}

/// Creates the table and both secrets when missing, for a local run against DynamoDB
/// Local and moto. The access key secret gets `primary_key` if given.
pub async fn bootstrap(
    sdk: &SdkConfig,
    config: &Config,
    primary_key: Option<&str>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let aws = config.aws()?;
    DynamoDbStore::new(aws_sdk_dynamodb::Client::new(sdk), aws.table_name)
        .create_table_if_missing()
        .await?;
    let secrets = SecretsClient::new(sdk);
    create_secret_if_missing(&secrets, aws.signing_keys_secret_id, || {
        StoredKeySet::generate(config.signing_algorithm)
            .expect("key generation")
            .to_secret()
    })
    .await?;
    let access_keys = match primary_key {
        Some(primary) => AccessKeys::new(primary, &crate::auth::hmac::generate_key())?,
        None => AccessKeys::generate(),
    };
    let access_keys_secret_id = aws
        .access_keys_secret_id
        .ok_or_else(|| ConfigError("CALLSIGN_ACCESS_KEYS_SECRET_ID is required".into()))?;
    create_secret_if_missing(&secrets, access_keys_secret_id, || access_keys.to_secret()).await?;
    Ok(())
}

/// The app on DynamoDB and Secrets Manager; keys are loaded here, once. Access keys only
/// when the function serves HMAC-authenticated routes.
pub async fn build_app(
    config: &Config,
    sdk: &SdkConfig,
    operations: &[Operation],
) -> Result<App, Box<dyn std::error::Error + Send + Sync>> {
    let with_access_keys = operations.iter().any(|op| op.is_admin());
    let aws = config
        .aws()
        .map_err(|e: ConfigError| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
    let store = Arc::new(DynamoDbStore::new(
        aws_sdk_dynamodb::Client::new(sdk),
        aws.table_name,
    ));
    let front = if operations.iter().any(|op| op.is_front()) {
        Some(FrontApp::build(FrontConfig::from_env()?, store.clone()).await?)
    } else {
        None
    };
    let source = SecretsManagerKeySource::new(
        SecretsClient::new(sdk),
        aws.signing_keys_secret_id,
        aws.access_keys_secret_id,
    );
    let keys = if with_access_keys {
        if aws.access_keys_secret_id.is_none() {
            return Err(Box::new(ConfigError(
                "CALLSIGN_ACCESS_KEYS_SECRET_ID is required".into(),
            )));
        }
        KeyRing::load(Arc::new(source), config.key_cache_ttl).await?
    } else {
        KeyRing::load_signing_only(Arc::new(source), config.key_cache_ttl).await?
    };
    Ok(App {
        service: IdentityService::new(store, keys, config.token.clone()),
        public_hosts: config.public_hosts.clone(),
        public_base_url: config.public_base_url.clone(),
        front,
    })
}

/// One Secrets Manager secret, as the rotation code sees it.
pub struct SecretsManagerSecret {
    client: SecretsClient,
    secret_id: String,
}

impl SecretsManagerSecret {
    pub fn new(client: SecretsClient, secret_id: impl Into<String>) -> Self {
        Self {
            client,
            secret_id: secret_id.into(),
        }
    }
}

fn rotation_error<
    E: aws_sdk_secretsmanager::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
>(
    what: &str,
    err: aws_sdk_secretsmanager::error::SdkError<E, R>,
) -> RotationError {
    RotationError::Store(format!(
        "{what}: {}",
        aws_sdk_secretsmanager::error::DisplayErrorContext(err)
    ))
}

#[async_trait]
impl VersionedSecret for SecretsManagerSecret {
    async fn versions(&self) -> Result<HashMap<String, Vec<String>>, RotationError> {
        let described = self
            .client
            .describe_secret()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| rotation_error("DescribeSecret", e))?;
        Ok(described.version_ids_to_stages.unwrap_or_default())
    }

    async fn value(
        &self,
        stage: &str,
        version: Option<&str>,
    ) -> Result<Option<String>, RotationError> {
        let result = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .version_stage(stage)
            .set_version_id(version.map(str::to_owned))
            .send()
            .await;
        match result {
            Ok(output) => Ok(output.secret_string),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(err) => Err(rotation_error("GetSecretValue", err)),
        }
    }

    async fn put_pending(&self, token: &str, value: &str) -> Result<(), RotationError> {
        self.client
            .put_secret_value()
            .secret_id(&self.secret_id)
            .client_request_token(token)
            .secret_string(value)
            .version_stages(rotation::PENDING)
            .send()
            .await
            .map_err(|e| rotation_error("PutSecretValue", e))?;
        Ok(())
    }

    async fn promote(&self, token: &str, from: &str) -> Result<(), RotationError> {
        self.client
            .update_secret_version_stage()
            .secret_id(&self.secret_id)
            .version_stage(rotation::CURRENT)
            .move_to_version_id(token)
            .remove_from_version_id(from)
            .send()
            .await
            .map_err(|e| rotation_error("UpdateSecretVersionStage", e))?;
        Ok(())
    }
}
