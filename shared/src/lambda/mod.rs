//! The Lambda transport: each function's `main` (configuration, clients and keys once per
//! cold start through the composition root, then its handler for every invocation), and
//! the glue from each kind of event to the use cases.

use std::convert::Infallible;
use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request;
use aws_lambda_events::secretsmanager::SecretsManagerSecretRotationEvent;
use lambda_http::{lambda_runtime, service_fn};

use crate::app::{self, Backends};
use crate::config::Config;
use crate::domain::ports::VersionedSecret;
use crate::http::{Function, Served};

pub mod authorizer;
pub mod cleanup;
pub mod http;
pub mod rotation;

/// An HTTP function's `main`: it serves `function`'s routes.
pub async fn run_http(function: Function) -> Result<(), lambda_http::Error> {
    crate::logging::init_lambda();
    let config = Config::from_env()?;
    let served = Served::Function(function);
    let app = Arc::new(app::aws_app(&config, &app::sdk_config().await, served).await?);
    lambda_http::run(service_fn(move |request| {
        let app = app.clone();
        async move { Ok::<_, Infallible>(http::handle(&app, served, request).await) }
    }))
    .await
}

/// The authorizer function's `main`.
pub async fn run_authorizer() -> Result<(), lambda_http::Error> {
    crate::logging::init_lambda();
    let config = Config::from_env()?;
    let backends = Backends::aws(&config, &app::sdk_config().await)?;
    let authorizer = Arc::new(app::authorizer(&config, backends).await?);
    lambda_runtime::run(service_fn(
        move |event: lambda_runtime::LambdaEvent<ApiGatewayV2CustomAuthorizerV2Request>| {
            let authorizer = authorizer.clone();
            async move {
                Ok::<_, Infallible>(authorizer::authorize_event(&authorizer, &event.payload).await)
            }
        },
    ))
    .await
}

/// The rotation function's `main`: the secret comes with each event; the public key
/// secret it keeps in step is configured.
pub async fn run_rotation() -> Result<(), lambda_http::Error> {
    crate::logging::init_lambda();
    let config = Config::from_env()?;
    let algorithm = config.signing_algorithm;
    let sdk = app::sdk_config().await;
    let public = config
        .public_keys_secret_id
        .as_deref()
        .map(|id| Arc::new(app::versioned_secret(&sdk, id)));
    lambda_runtime::run(service_fn(
        move |event: lambda_runtime::LambdaEvent<SecretsManagerSecretRotationEvent>| {
            let secret = app::versioned_secret(&sdk, &event.payload.secret_id);
            let public = public.clone();
            async move {
                let public = public.as_deref().map(|p| p as &dyn VersionedSecret);
                // Secrets Manager retries a failed step; the error is reported to it as is.
                rotation::rotate_event(&secret, public, &event.payload, algorithm)
                    .await
                    .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
            }
        },
    ))
    .await
}

/// The cleanup function's `main`.
pub async fn run_cleanup() -> Result<(), lambda_http::Error> {
    crate::logging::init_lambda();
    let config = Config::from_env()?;
    let store = Arc::new(app::dynamodb_store(&config, &app::sdk_config().await)?);
    let policy = config.sweep;
    lambda_runtime::run(service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| {
            let (store, policy) = (store.clone(), policy.clone());
            async move { cleanup::cleanup_event(store.as_ref(), &policy, event.payload).await }
        },
    ))
    .await
}
