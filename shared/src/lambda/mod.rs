//! The Lambda transport: each function's `main` (configuration, clients and keys once per
//! cold start through the composition root, then its handler for every invocation), and
//! the glue from each kind of event to the use cases. Metrics go to CloudWatch in Embedded
//! Metric Format, flushed after every invocation.

use std::future::Future;
use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request;
use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::secretsmanager::SecretsManagerSecretRotationEvent;
use lambda_http::lambda_runtime::{self, LambdaEvent};
use metrics_cloudwatch_embedded::Collector;
use metrics_cloudwatch_embedded::lambda::handler;

use crate::app;
use crate::config::Config;
use crate::domain::ports::VersionedSecret;
use crate::domain::signals;
use crate::http::{Function, Served};

pub mod authorizer;
pub mod cleanup;
pub mod http;
pub mod lifecycle;
pub mod rotation;

type Error = lambda_runtime::Error;

/// A stream batch's answer: the records Lambda must deliver again, by sequence number
/// (with none, a record fails the whole batch, which is delivered again).
fn stream_failures<'a>(
    records: impl IntoIterator<Item = &'a aws_lambda_events::dynamodb::EventRecord>,
) -> aws_lambda_events::streams::DynamoDbEventResponse {
    let mut response = aws_lambda_events::streams::DynamoDbEventResponse::default();
    for record in records {
        let mut failure = aws_lambda_events::streams::DynamoDbBatchItemFailure::default();
        failure.item_identifier = record.change.sequence_number.clone();
        response.batch_item_failures.push(failure);
    }
    response
}

/// Logging and the metrics recorder, then the cold start's own work (`init`). If that
/// fails, the metrics it counted (a key load failure) are written before the function
/// exits.
async fn start<T, F>(function: &'static str, init: F) -> Result<(&'static Collector, T), Error>
where
    F: Future<Output = Result<T, Error>>,
{
    crate::logging::init_lambda();
    let metrics = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(signals::NAMESPACE)
        .with_dimension("Function", function)
        .lambda_cold_start_metric(signals::COLD_STARTS)
        .with_lambda_request_id("RequestId")
        .init()
        .map_err(|e| format!("metrics: {e}"))?;
    match init.await {
        Ok(started) => Ok((metrics, started)),
        Err(error) => {
            tracing::error!(%error, "cold start failed");
            let _ = metrics.flush(std::io::stdout());
            Err(error)
        }
    }
}

/// An HTTP function's `main`: it serves `function`'s routes.
pub async fn run_http(function: Function) -> Result<(), Error> {
    let served = Served::Function(function);
    let (metrics, app) = start(function.name(), async {
        let config = Config::from_env()?;
        Ok(Arc::new(
            app::aws_app(&config, &app::sdk_config().await, served).await?,
        ))
    })
    .await?;
    handler::run_http(metrics, move |request| {
        let app = app.clone();
        async move { Ok::<_, Error>(http::handle(&app, served, request).await) }
    })
    .await
}

/// The authorizer function's `main`.
pub async fn run_authorizer() -> Result<(), Error> {
    let (metrics, authorizer) = start("authorizer", async {
        let config = Config::from_env()?;
        Ok(Arc::new(
            app::aws_authorizer(&config, &app::sdk_config().await).await?,
        ))
    })
    .await?;
    handler::run(
        metrics,
        move |event: LambdaEvent<ApiGatewayV2CustomAuthorizerV2Request>| {
            let authorizer = authorizer.clone();
            async move {
                Ok::<_, Error>(authorizer::authorize_event(&authorizer, &event.payload).await)
            }
        },
    )
    .await
}

/// The rotation function's `main`: the secret comes with each event; the public key
/// secret it keeps in step is configured.
pub async fn run_rotation() -> Result<(), Error> {
    let (metrics, (algorithm, client, public)) = start("rotate-signing-key", async {
        let config = Config::from_env()?;
        let client = app::secrets_client(&app::sdk_config().await);
        // The functions that only verify read the public half: never rotate without it.
        let public_id = config.public_keys_secret_id.as_deref().ok_or(
            "CALLSIGN_PUBLIC_KEYS_SECRET_ID is required: rotation publishes the public keys there",
        )?;
        let public = Some(Arc::new(app::versioned_secret(&client, public_id)));
        Ok((config.signing_algorithm, client, public))
    })
    .await?;
    handler::run(
        metrics,
        move |event: LambdaEvent<SecretsManagerSecretRotationEvent>| {
            let secret = app::versioned_secret(&client, &event.payload.secret_id);
            let public = public.clone();
            async move {
                let public = public.as_deref().map(|p| p as &dyn VersionedSecret);
                // Secrets Manager retries a failed step; the error is reported to it as is.
                rotation::rotate_event(&secret, public, &event.payload, algorithm)
                    .await
                    .map_err(|e| Box::new(e) as Error)
            }
        },
    )
    .await
}

/// The cleanup function's `main`.
pub async fn run_cleanup() -> Result<(), Error> {
    let (metrics, (store, policy)) = start("cleanup", async {
        let config = Config::from_env()?;
        let store = app::housekeeping_store(&config, &app::sdk_config().await)?;
        Ok((store, config.sweep))
    })
    .await?;
    handler::run(metrics, move |event: LambdaEvent<serde_json::Value>| {
        let (store, policy) = (store.clone(), policy.clone());
        async move { cleanup::cleanup_event(store.as_ref(), &policy, event.payload).await }
    })
    .await
}

/// The identity-events function's `main`: the table's stream in, lifecycle events out.
pub async fn run_identity_events() -> Result<(), Error> {
    let (metrics, publisher) = start("identity-events", async {
        let config = Config::from_env()?;
        Ok(Arc::new(app::lifecycle_publisher(
            &config,
            &app::sdk_config().await,
        )?))
    })
    .await?;
    handler::run(metrics, move |event: LambdaEvent<Event>| {
        let publisher = publisher.clone();
        async move { Ok::<_, Error>(lifecycle::on_identity_changes(&publisher, &event.payload).await) }
    })
    .await
}
