//! Fixtures shared by the integration tests: an app on the in-memory store (built by the
//! composition root), signed requests, and SDK clients for the real test servers, which
//! `servers` starts when a test needs them.
#![allow(dead_code)] // each test binary uses its own subset

pub mod servers;

use std::sync::Arc;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use callsign::adapters::memory::MemoryStore;
use callsign::config::Config;
use callsign::http::front::UserAuth;
use callsign::http::{self as api, ApiRequest, ApiResponse, App, Served};
use http::Method;
use serde_json::Value;

pub const HOST: &str = "127.0.0.1:8080";
pub const RESOURCE: &str = "2dee53b4-368b-45b4-ab52-8493fb117652";
/// Another resource id, for a table two resources share.
pub const OTHER_RESOURCE: &str = "0b2d5c3e-1f4a-4e8b-9c6d-7a8b9c0d1e2f";

pub struct TestApp {
    pub app: Arc<App>,
    pub store: Arc<MemoryStore>,
    pub key: String,
    pub config: Config,
}

pub fn config() -> Config {
    config_with(&[])
}

/// The test configuration (our resource id) with these variables set too.
pub fn config_with(vars: &[(&str, &str)]) -> Config {
    Config::from_lookup(|name| match name {
        "CALLSIGN_RESOURCE_ID" => Some(RESOURCE.to_owned()),
        _ => vars
            .iter()
            .find(|(var, _)| *var == name)
            .map(|(_, value)| (*value).to_owned()),
    })
    .unwrap()
}

pub async fn memory_app() -> TestApp {
    memory_app_with(config(), None).await
}

/// An app on the embedded store with this configuration, and sign-in through `users`
/// instead of the configured one.
pub async fn memory_app_with(config: Config, users: Option<UserAuth>) -> TestApp {
    let trust = callsign::app::Trust {
        users,
        ..Default::default()
    };
    let memory = callsign::app::memory_app(&config, None, trust)
        .await
        .unwrap();
    TestApp {
        app: memory.app,
        store: memory.store,
        key: memory.access_keys.primary().to_owned(),
        config,
    }
}

/// A request as a client signs it: `path_and_query` exactly as on the wire.
pub fn signed(key: &str, method: Method, path_and_query: &str, body: &str) -> ApiRequest {
    ApiRequest::signed(key, method, path_and_query, HOST, body).unwrap()
}

impl TestApp {
    pub async fn send(&self, request: ApiRequest) -> ApiResponse {
        api::handle(&self.app, Served::All, request).await
    }

    pub async fn call(&self, method: Method, path_and_query: &str, body: &str) -> (u16, Value) {
        let response = self
            .send(signed(&self.key, method, path_and_query, body))
            .await;
        split(response)
    }

    /// A new identity's id.
    pub async fn create_id(&self) -> String {
        identity_id(&self.create("").await)
    }

    pub async fn create(&self, body: &str) -> Value {
        let (status, body) = self
            .call(Method::POST, "/identities?api-version=2023-10-01", body)
            .await;
        assert_eq!(status, 201, "{body}");
        body
    }
}

/// The identity id in a create (or front token) response body.
pub fn identity_id(body: &Value) -> String {
    body["identity"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no identity id in {body}"))
        .to_owned()
}

pub fn split(response: ApiResponse) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.into_body();
    let json = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap()
    };
    (status, json)
}

/// Percent-encodes an id the way the SDKs put it in a path.
pub fn encoded(id: &str) -> String {
    id.replace(':', "%3A")
}

/// An SDK configuration for a local test server: dummy credentials, us-east-1.
pub async fn aws_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(callsign::app::https_client())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .load()
        .await
}

pub async fn dynamodb() -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&aws_config(servers::dynamodb_endpoint()).await)
}

/// A fresh table on DynamoDB Local (its name starts with `prefix`), its store and client.
pub async fn table(
    prefix: &str,
) -> (
    callsign::adapters::dynamodb::DynamoDbStore,
    aws_sdk_dynamodb::Client,
    String,
) {
    let client = dynamodb().await;
    let name = unique(prefix);
    let store = callsign::adapters::dynamodb::DynamoDbStore::new(client.clone(), &name);
    store.create_table_if_missing().await.unwrap();
    (store, client, name)
}

/// Every item of a (small) test table.
pub async fn scan(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    client
        .scan()
        .table_name(table)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default()
}

/// Every record the table's stream holds so far, as Lambda would deliver them.
pub async fn stream_records(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Vec<aws_lambda_events::dynamodb::EventRecord> {
    let config = aws_config(servers::dynamodb_endpoint()).await;
    let streams = aws_sdk_dynamodbstreams::Client::new(&config);
    let described = client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .unwrap();
    let arn = described
        .table
        .unwrap()
        .latest_stream_arn
        .expect("the table has a stream");
    let shards = streams
        .describe_stream()
        .stream_arn(&arn)
        .send()
        .await
        .unwrap()
        .stream_description
        .unwrap()
        .shards
        .unwrap_or_default();
    let mut records = Vec::new();
    for shard in shards {
        let mut iterator = streams
            .get_shard_iterator()
            .stream_arn(&arn)
            .shard_id(shard.shard_id.unwrap())
            .shard_iterator_type(aws_sdk_dynamodbstreams::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator;
        for _ in 0..10 {
            let Some(current) = iterator else { break };
            let page = streams
                .get_records()
                .shard_iterator(current)
                .send()
                .await
                .unwrap();
            let batch = page.records.unwrap_or_default();
            if batch.is_empty() {
                break;
            }
            records.extend(batch);
            iterator = page.next_shard_iterator;
        }
    }
    records
        .into_iter()
        .map(|record| {
            let change = record.dynamodb.unwrap();
            let mut stream_record = aws_lambda_events::dynamodb::StreamRecord::default();
            stream_record.keys = serde_dynamo::Item::from(change.keys.unwrap_or_default());
            stream_record.old_image =
                serde_dynamo::Item::from(change.old_image.unwrap_or_default());
            stream_record.new_image =
                serde_dynamo::Item::from(change.new_image.unwrap_or_default());
            stream_record.sequence_number = change.sequence_number;
            if let Some(at) = change.approximate_creation_date_time {
                stream_record.approximate_creation_date_time =
                    chrono::DateTime::from_timestamp_millis(at.to_millis().unwrap()).unwrap();
            }
            let mut event_record = aws_lambda_events::dynamodb::EventRecord::default();
            event_record.event_id = record.event_id.unwrap_or_default();
            event_record.event_name = record
                .event_name
                .map(|n| n.as_str().to_owned())
                .unwrap_or_default();
            event_record.event_source = Some("aws:dynamodb".into());
            event_record.change = stream_record;
            event_record
        })
        .collect()
}

pub async fn secrets_manager() -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(&aws_config(servers::moto_endpoint()).await)
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// A tiny HTTP server on 127.0.0.1 answering GETs from a path → JSON map the test can
/// change while it runs; counts requests per path.
pub struct JsonServer {
    pub base: String,
    pub documents: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, String>>>,
    pub hits: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
}

impl JsonServer {
    pub async fn start() -> Self {
        use std::convert::Infallible;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let documents: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, String>>> =
            Default::default();
        let hits: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>> =
            Default::default();
        let (docs, counts) = (documents.clone(), hits.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (docs, counts) = (docs.clone(), counts.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: hyper::Request<hyper::body::Incoming>| {
                            let path = request.uri().path().to_owned();
                            *counts.lock().unwrap().entry(path.clone()).or_default() += 1;
                            let body = docs.lock().unwrap().get(&path).cloned();
                            async move {
                                let response = match body {
                                    Some(body) => hyper::Response::new(http_body_util::Full::new(
                                        bytes::Bytes::from(body),
                                    )),
                                    None => hyper::Response::builder()
                                        .status(404)
                                        .body(http_body_util::Full::new(bytes::Bytes::new()))
                                        .unwrap(),
                                };
                                Ok::<_, Infallible>(response)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            base,
            documents,
            hits,
        }
    }

    pub fn put(&self, path: &str, body: String) {
        self.documents.lock().unwrap().insert(path.to_owned(), body);
    }

    pub fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

/// Everything a tracing subscriber writes, kept for a test to read.
#[derive(Clone, Default)]
pub struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// This test binary's logs, as JSON lines (the Lambda format), from the first call on:
/// the global subscriber is set once.
pub fn capture_logs() -> &'static Captured {
    static LOGS: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        let writer = logs.clone();
        tracing::subscriber::set_global_default(
            tracing_subscriber::fmt()
                .json()
                .with_writer(move || writer.clone())
                .finish(),
        )
        .expect("the only global subscriber of this test binary");
        logs
    })
}

/// A JWT's payload, decoded (no verification).
pub fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&json).unwrap()
}

/// Introspects `token` through the admin API (HMAC-signed with `key`); the answer's body.
pub async fn introspect(app: &Arc<App>, key: &str, token: &str) -> Value {
    let body = serde_json::json!({ "token": token }).to_string();
    let request = signed(
        key,
        Method::POST,
        "/tokens/:introspect?api-version=2023-10-01",
        &body,
    );
    let (status, body) = split(api::handle(app, Served::All, request).await);
    assert_eq!(status, 200, "{body}");
    body
}
