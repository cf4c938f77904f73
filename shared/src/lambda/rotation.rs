//! The rotation function's event: one step of Secrets Manager's rotation protocol.

use aws_lambda_events::secretsmanager::SecretsManagerSecretRotationEvent;

use crate::domain::keys::SigningAlgorithm;
use crate::domain::ports::VersionedSecret;
use crate::domain::rotation::{self, RotationError, Step};

/// One step of a signing-key rotation, as Secrets Manager invokes it.
pub async fn rotate_event(
    secret: &dyn VersionedSecret,
    public: Option<&dyn VersionedSecret>,
    event: &SecretsManagerSecretRotationEvent,
    algorithm: SigningAlgorithm,
) -> Result<(), RotationError> {
    let step = Step::parse(&event.step)
        .ok_or_else(|| RotationError::Invalid(format!("unknown rotation step {}", event.step)))?;
    tracing::info!(step = %event.step, "rotation step");
    rotation::rotate_signing_keys(secret, public, step, &event.client_request_token, algorithm)
        .await
}
