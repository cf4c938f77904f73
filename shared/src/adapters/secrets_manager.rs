//! Secrets Manager adapters: the key source that reads the signing, public and access key
//! secrets, and one secret with staged versions as rotation sees it.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client as SecretsClient;
use aws_sdk_secretsmanager::error::SdkError;

use crate::domain::access_keys::AccessKeys;
use crate::domain::keys::{KeyError, KeySet, PublishedKeys};
use crate::domain::ports::{KeySource, KeysNeeded, LoadedKeys, SecretStoreError, VersionedSecret};
use crate::domain::rotation;

/// Keys from Secrets Manager secrets (JSON; formats in README.md): the signing key set,
/// its public half, and the access keys. A function is given the ids of the ones it may
/// read; asking for another is an error that names its variable.
pub struct SecretsManagerKeySource {
    client: SecretsClient,
    signing_keys_secret_id: Option<String>,
    public_keys_secret_id: Option<String>,
    access_keys_secret_id: Option<String>,
}

impl SecretsManagerKeySource {
    pub fn new(
        client: SecretsClient,
        signing_keys_secret_id: Option<&str>,
        access_keys_secret_id: Option<&str>,
    ) -> Self {
        Self {
            client,
            signing_keys_secret_id: signing_keys_secret_id.map(str::to_owned),
            public_keys_secret_id: None,
            access_keys_secret_id: access_keys_secret_id.map(str::to_owned),
        }
    }

    /// Reads the public keys from this secret (written by the rotation function).
    pub fn with_public_keys(mut self, secret_id: Option<&str>) -> Self {
        self.public_keys_secret_id = secret_id.map(str::to_owned);
        self
    }

    fn id<'a>(id: &'a Option<String>, variable: &str) -> Result<&'a str, KeyError> {
        id.as_deref()
            .ok_or_else(|| KeyError::Source(format!("{variable} is not set")))
    }

    async fn current(&self, secret_id: &str) -> Result<String, KeyError> {
        // Always name the stage: moto (and older caches) may otherwise answer with the
        // previous value right after a rotation moved AWSCURRENT.
        let output = self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .version_stage(rotation::CURRENT)
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

    /// The secret's current value: as `fetched` brought it, else on its own.
    async fn value(&self, secret_id: &str, fetched: &Fetched) -> Result<String, KeyError> {
        match fetched {
            Ok(values) => match values.get(secret_id) {
                Some(value) => Ok(value.clone()),
                None => self.current(secret_id).await,
            },
            Err(error) => Err(KeyError::Source(error.clone())),
        }
    }

    /// The current values of `ids` in one BatchGetSecretValue call, by id (a name, an ARN
    /// or a partial ARN, as configured). A secret the answer leaves out or reports an
    /// error for is read on its own afterwards, with its own error. When the service
    /// answers the call with an error (a role without `secretsmanager:BatchGetSecretValue`,
    /// throttling), every secret is read on its own; when it cannot be reached at all,
    /// every secret fails with that error.
    async fn batch(&self, ids: &[&str]) -> Fetched {
        if ids.len() < 2 {
            return Ok(HashMap::new());
        }
        let answer = self
            .client
            .batch_get_secret_value()
            .set_secret_id_list(Some(ids.iter().map(|id| (*id).to_owned()).collect()))
            .send()
            .await;
        let output = match answer {
            Ok(output) => output,
            Err(SdkError::ServiceError(refused)) => {
                tracing::warn!(
                    error = %aws_sdk_secretsmanager::error::DisplayErrorContext(refused.err()),
                    "BatchGetSecretValue refused; the key secrets are read one by one"
                );
                return Ok(HashMap::new());
            }
            Err(error) => {
                return Err(format!(
                    "BatchGetSecretValue {}: {}",
                    ids.join(", "),
                    aws_sdk_secretsmanager::error::DisplayErrorContext(error)
                ));
            }
        };
        let mut values = HashMap::new();
        for entry in output.secret_values.unwrap_or_default() {
            // A value not staged AWSCURRENT (moto right after a rotation) is read by stage.
            if !entry
                .version_stages()
                .iter()
                .any(|s| s == rotation::CURRENT)
            {
                continue;
            }
            let Some(value) = entry.secret_string else {
                continue;
            };
            for id in ids {
                if names(id, entry.name.as_deref(), entry.arn.as_deref()) {
                    values.insert((*id).to_owned(), value.clone());
                }
            }
        }
        Ok(values)
    }

    async fn signing(&self, fetched: &Fetched) -> Result<KeySet, KeyError> {
        let id = Self::id(
            &self.signing_keys_secret_id,
            "CALLSIGN_SIGNING_KEYS_SECRET_ID",
        )?;
        KeySet::from_secret(&self.value(id, fetched).await?)
    }

    async fn published(&self, fetched: &Fetched) -> Result<PublishedKeys, KeyError> {
        let id = Self::id(
            &self.public_keys_secret_id,
            "CALLSIGN_PUBLIC_KEYS_SECRET_ID",
        )?;
        PublishedKeys::from_secret(&self.value(id, fetched).await?)
    }

    async fn access(&self, fetched: &Fetched) -> Result<AccessKeys, KeyError> {
        let id = Self::id(
            &self.access_keys_secret_id,
            "CALLSIGN_ACCESS_KEYS_SECRET_ID",
        )?;
        AccessKeys::from_secret(&self.value(id, fetched).await?)
    }
}

/// Secret values a batch brought, by id; or why the batch failed, for every secret in it.
type Fetched = Result<HashMap<String, String>, String>;

/// Whether `id`, as configured, names the secret called `name` with this `arn`: by its
/// name, its ARN, or its ARN without the hyphen and six characters Secrets Manager
/// appends (a partial ARN, which the API accepts too).
fn names(id: &str, name: Option<&str>, arn: Option<&str>) -> bool {
    let partial_arn_of = |arn: &str| {
        id.starts_with("arn:")
            && arn
                .strip_prefix(id)
                .is_some_and(|suffix| suffix.len() == 7 && suffix.starts_with('-'))
    };
    name == Some(id) || arn.is_some_and(|arn| arn == id || partial_arn_of(arn))
}

#[async_trait]
impl KeySource for SecretsManagerKeySource {
    async fn signing_keys(&self) -> Result<KeySet, KeyError> {
        self.signing(&Ok(HashMap::new())).await
    }

    async fn published_keys(&self) -> Result<PublishedKeys, KeyError> {
        self.published(&Ok(HashMap::new())).await
    }

    async fn access_keys(&self) -> Result<AccessKeys, KeyError> {
        self.access(&Ok(HashMap::new())).await
    }

    /// Two or more secrets come in one BatchGetSecretValue call: a cold start waits for
    /// one round trip, not one per secret.
    async fn load(&self, needed: KeysNeeded) -> LoadedKeys {
        let mut ids: Vec<&str> = [
            (needed.signing, &self.signing_keys_secret_id),
            (needed.published(), &self.public_keys_secret_id),
            (needed.access, &self.access_keys_secret_id),
        ]
        .into_iter()
        .filter_map(|(wanted, id)| id.as_deref().filter(|_| wanted))
        .collect();
        // One secret holding two key sets is asked for once.
        ids.sort_unstable();
        ids.dedup();
        let fetched = self.batch(&ids).await;
        LoadedKeys::fetch(
            needed,
            self.signing(&fetched),
            self.published(&fetched),
            self.access(&fetched),
        )
        .await
    }
}

/// Creates a secret with `value` unless one with that name exists (local runs, tests).
pub async fn create_secret_if_missing(
    client: &SecretsClient,
    name: &str,
    value: impl FnOnce() -> Result<String, KeyError>,
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
                .secret_string(value()?)
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

fn secret_error<
    E: aws_sdk_secretsmanager::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
>(
    what: &str,
    err: aws_sdk_secretsmanager::error::SdkError<E, R>,
) -> SecretStoreError {
    SecretStoreError(format!(
        "{what}: {}",
        aws_sdk_secretsmanager::error::DisplayErrorContext(err)
    ))
}

#[async_trait]
impl VersionedSecret for SecretsManagerSecret {
    async fn versions(&self) -> Result<HashMap<String, Vec<String>>, SecretStoreError> {
        let described = self
            .client
            .describe_secret()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| secret_error("DescribeSecret", e))?;
        Ok(described.version_ids_to_stages.unwrap_or_default())
    }

    async fn value(
        &self,
        stage: &str,
        version: Option<&str>,
    ) -> Result<Option<String>, SecretStoreError> {
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
            Err(err) => Err(secret_error("GetSecretValue", err)),
        }
    }

    async fn put_pending(&self, token: &str, value: &str) -> Result<(), SecretStoreError> {
        self.client
            .put_secret_value()
            .secret_id(&self.secret_id)
            .client_request_token(token)
            .secret_string(value)
            .version_stages(rotation::PENDING)
            .send()
            .await
            .map_err(|e| secret_error("PutSecretValue", e))?;
        Ok(())
    }

    async fn promote(&self, token: &str, from: &str) -> Result<(), SecretStoreError> {
        self.client
            .update_secret_version_stage()
            .secret_id(&self.secret_id)
            .version_stage(rotation::CURRENT)
            .move_to_version_id(token)
            .remove_from_version_id(from)
            .send()
            .await
            .map_err(|e| secret_error("UpdateSecretVersionStage", e))?;
        Ok(())
    }

    async fn put_current(&self, value: &str) -> Result<(), SecretStoreError> {
        // Without stages, the new version becomes AWSCURRENT.
        self.client
            .put_secret_value()
            .secret_id(&self.secret_id)
            .secret_string(value)
            .send()
            .await
            .map_err(|e| secret_error("PutSecretValue", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::names;

    const ARN: &str = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:callsign/access-a1B2c3";

    #[test]
    fn a_secret_is_named_by_its_name_its_arn_or_its_partial_arn() {
        let named = |id| names(id, Some("callsign/access"), Some(ARN));
        assert!(named("callsign/access"));
        assert!(named(ARN));
        assert!(named(
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:callsign/access"
        ));
        assert!(!named("callsign/signing"));
        assert!(!named(
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:callsign/acc"
        ));
        assert!(!named("callsign/access-a1B2c3"));
    }
}
