//! The Lambda front door: converts API Gateway (HTTP API, payload 2.0) requests to
//! `ApiRequest` and back, and runs a function's handler.

use std::convert::Infallible;
use std::sync::Arc;

use aws_lambda_events::apigw::{
    ApiGatewayV2CustomAuthorizerSimpleResponse, ApiGatewayV2CustomAuthorizerV2Request,
};
use aws_lambda_events::secretsmanager::SecretsManagerSecretRotationEvent;
use bytes::Bytes;
use lambda_http::{Body, RequestExt, lambda_runtime, service_fn};

use crate::api::{self, ApiRequest, ApiResponse, App, Operation};
use crate::config::Config;

pub fn to_api_request(request: lambda_http::Request) -> ApiRequest {
    // The raw path as API Gateway delivered it (lambda_http's URI is re-normalised).
    let path = match request.raw_http_path() {
        "" => request.uri().path().to_owned(),
        raw => raw.to_owned(),
    };
    let query = request.uri().query().map(str::to_owned);
    let (source_ip, gateway_claims) = match request.request_context_ref() {
        Some(lambda_http::request::RequestContext::ApiGatewayV2(context)) => (
            context.http.source_ip.clone(),
            context
                .authorizer
                .as_ref()
                .and_then(|authorizer| authorizer.jwt.as_ref())
                .and_then(|jwt| serde_json::to_value(&jwt.claims).ok()),
        ),
        _ => (None, None),
    };
    let (parts, body) = request.into_parts();
    let body = match body {
        Body::Empty => Bytes::new(),
        Body::Text(text) => Bytes::from(text),
        Body::Binary(bytes) => Bytes::from(bytes),
        _ => Bytes::new(),
    };
    ApiRequest {
        method: parts.method,
        path,
        query,
        headers: parts.headers,
        body,
        source_ip,
        gateway_claims,
    }
}

pub fn to_lambda_response(response: ApiResponse) -> lambda_http::Response<Body> {
    let (parts, body) = response.into_parts();
    let body = if body.is_empty() {
        Body::Empty
    } else {
        match String::from_utf8(body.to_vec()) {
            Ok(text) => Body::Text(text),
            Err(bytes) => Body::Binary(bytes.into_bytes()),
        }
    };
    lambda_http::Response::from_parts(parts, body)
}

/// Serves one Lambda request with `app`.
pub async fn handle(
    app: &Arc<App>,
    operations: &[Operation],
    request: lambda_http::Request,
) -> lambda_http::Response<Body> {
    to_lambda_response(api::handle(app, operations, to_api_request(request)).await)
}

/// A function's whole `main`: configuration, clients and keys once per cold start, then
/// the handler for every invocation.
pub async fn run(operations: &'static [Operation]) -> Result<(), lambda_http::Error> {
    crate::logging::init_lambda();
    let config = Config::from_env()?;
    let sdk = crate::aws::sdk_config().await;
    let app = Arc::new(crate::aws::build_app(&config, &sdk, operations).await?);
    lambda_http::run(service_fn(move |request| {
        let app = app.clone();
        async move { Ok::<_, Infallible>(handle(&app, operations, request).await) }
    }))
    .await
}

/// Re-signs an API Gateway (payload 2.0) event with `access_key` at `now`, so that a sample
/// event from `events/` passes HMAC authentication (`callsign-local sign-event`, tests).
pub fn sign_event(
    event: &mut serde_json::Value,
    access_key: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), crate::keys::KeyError> {
    use base64::Engine;
    let text = |pointer: &str| {
        event
            .pointer(pointer)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let method = text("/requestContext/http/method");
    let host = text("/headers/host");
    let query = text("/rawQueryString");
    let mut path_and_query = text("/rawPath");
    if !query.is_empty() {
        path_and_query = format!("{path_and_query}?{query}");
    }
    let body = text("/body");
    let body = if event["isBase64Encoded"].as_bool() == Some(true) {
        base64::engine::general_purpose::STANDARD
            .decode(&body)
            .map_err(|_| crate::keys::KeyError::Invalid("event body is not base64".into()))?
    } else {
        body.into_bytes()
    };
    let date = crate::auth::hmac::http_date(now);
    let (date, hash, authorization) =
        crate::auth::sign_request(access_key, &method, &path_and_query, &host, &date, &body)?;
    let headers = &mut event["headers"];
    headers["x-ms-date"] = date.into();
    headers["x-ms-content-sha256"] = hash.into();
    headers["authorization"] = authorization.into();
    Ok(())
}

/// One authorizer decision for an API Gateway request (payload 2.0, simple response).
pub async fn authorize_event(
    authorizer: &crate::authorizer::Authorizer,
    request: &ApiGatewayV2CustomAuthorizerV2Request,
) -> ApiGatewayV2CustomAuthorizerSimpleResponse {
    let route_key = request.route_key.as_deref().unwrap_or_default();
    let authorization = request
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            request
                .identity_source
                .as_ref()?
                .first()
                .map(String::as_str)
        });
    let mut response = ApiGatewayV2CustomAuthorizerSimpleResponse::default();
    match authorizer
        .authorize(route_key, authorization, chrono::Utc::now())
        .await
    {
        Ok(allowed) => {
            tracing::info!(
                route = route_key,
                capability = allowed.capability.as_str(),
                "allowed"
            );
            response.is_authorized = true;
            response.context = serde_json::json!({
                "identityId": allowed.identity.as_str(),
                "scopes": allowed.scopes,
                "capability": allowed.capability.as_str(),
            });
        }
        Err(denial) => tracing::info!(route = route_key, ?denial, "denied"),
    }
    response
}

/// The authorizer function's `main`.
pub async fn run_authorizer() -> Result<(), lambda_http::Error> {
    use crate::authorizer::{Authorizer, RevocationCache};
    use crate::capability::RoutePolicy;
    crate::logging::init_lambda();
    let config = Config::from_env()?;
    let policy = match std::env::var("CALLSIGN_AUTHORIZER_ROUTES") {
        Ok(json) if !json.trim().is_empty() => RoutePolicy::from_json(&json)?,
        _ => RoutePolicy::default_routes(),
    };
    let max_age = std::env::var("CALLSIGN_REVOCATION_CACHE_SECONDS")
        .ok()
        .map(|raw| raw.trim().parse::<u64>())
        .transpose()
        .map_err(|_| "CALLSIGN_REVOCATION_CACHE_SECONDS must be a whole number of seconds")?
        .unwrap_or(30);
    let sdk = crate::aws::sdk_config().await;
    let app = crate::aws::build_app(&config, &sdk, &[]).await?;
    let authorizer = Arc::new(Authorizer::new(
        app.service.verifier(),
        policy,
        RevocationCache::new(
            app.service.store(),
            std::time::Duration::from_secs(max_age),
            10_000,
        ),
    ));
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<ApiGatewayV2CustomAuthorizerV2Request>| {
            let authorizer = authorizer.clone();
            async move { Ok::<_, Infallible>(authorize_event(&authorizer, &event.payload).await) }
        },
    ))
    .await
}

/// One step of a signing-key rotation, as Secrets Manager invokes it.
pub async fn rotate_event(
    secret: &dyn crate::rotation::VersionedSecret,
    event: &SecretsManagerSecretRotationEvent,
    algorithm: crate::keys::SigningAlgorithm,
) -> Result<(), crate::rotation::RotationError> {
    let step = crate::rotation::Step::parse(&event.step).ok_or_else(|| {
        crate::rotation::RotationError::Invalid(format!("unknown rotation step {}", event.step))
    })?;
    tracing::info!(step = %event.step, "rotation step");
    crate::rotation::rotate_signing_keys(secret, step, &event.client_request_token, algorithm).await
}

/// The rotation function's `main`: the secret comes with each event.
pub async fn run_rotation() -> Result<(), lambda_http::Error> {
    crate::logging::init_lambda();
    let algorithm = match std::env::var("CALLSIGN_SIGNING_ALGORITHM") {
        Ok(name) if !name.trim().is_empty() => crate::keys::SigningAlgorithm::parse(name.trim())
            .ok_or("CALLSIGN_SIGNING_ALGORITHM must be ES256, RS256 or EdDSA")?,
        _ => crate::keys::SigningAlgorithm::Es256,
    };
    let client = aws_sdk_secretsmanager::Client::new(&crate::aws::sdk_config().await);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<SecretsManagerSecretRotationEvent>| {
            let client = client.clone();
            async move {
                let secret =
                    crate::aws::SecretsManagerSecret::new(client, &event.payload.secret_id);
                // Secrets Manager retries a failed step; the error is reported to it as is.
                rotate_event(&secret, &event.payload, algorithm)
                    .await
                    .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
            }
        },
    ))
    .await
}

/// One invocation of the cleanup function: a DynamoDB Streams batch (answered with its
/// `batchItemFailures`) or a scheduled event (one sweep run, answered with its report).
pub async fn cleanup_event(
    store: &dyn crate::store::Housekeeping,
    policy: &crate::cleanup::SweepPolicy,
    event: serde_json::Value,
) -> Result<serde_json::Value, Box<dyn std::error::Error + Send + Sync>> {
    if event.get("Records").is_some() {
        let batch: aws_lambda_events::dynamodb::Event = serde_json::from_value(event)?;
        Ok(serde_json::to_value(
            crate::cleanup::on_stream(store, &batch).await,
        )?)
    } else if event.get("source").and_then(|s| s.as_str()) == Some("aws.events") {
        let report = crate::cleanup::sweep(store, policy, chrono::Utc::now()).await?;
        Ok(serde_json::to_value(report)?)
    } else {
        // Only the stream and the schedule may start work here.
        Err("not a DynamoDB Streams batch nor a scheduled event".into())
    }
}

/// The cleanup function's `main`.
pub async fn run_cleanup() -> Result<(), lambda_http::Error> {
    crate::logging::init_lambda();
    let table =
        std::env::var("CALLSIGN_TABLE_NAME").map_err(|_| "CALLSIGN_TABLE_NAME is required")?;
    let policy = crate::config::sweep_policy(|name| std::env::var(name).ok())?;
    let store = Arc::new(crate::store::dynamodb::DynamoDbStore::new(
        aws_sdk_dynamodb::Client::new(&crate::aws::sdk_config().await),
        table,
    ));
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| {
            let (store, policy) = (store.clone(), policy.clone());
            async move { cleanup_event(store.as_ref(), &policy, event.payload).await }
        },
    ))
    .await
}
