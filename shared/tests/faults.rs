//! Faults survived, on the real test servers of each test's own: DynamoDB Local stopped in
//! the middle of a load, Secrets Manager (moto) unreachable at a cold start and later,
//! and DynamoDB throttling every call. Nothing is half-written, nothing is answered that
//! did not land, and service resumes without a restart.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use callsign::adapters::dynamodb::DynamoDbStore;
use callsign::adapters::memory::MemoryStore;
use callsign::adapters::secrets_manager::{SecretsManagerKeySource, create_secret_if_missing};
use callsign::app::{self, Backends};
use callsign::domain::access_keys::AccessKeys;
use callsign::domain::keys::{SigningAlgorithm, StoredKeySet};
use callsign::http::{self as api, App, Served};
use common::servers::Private;
use common::*;
use http::Method;
use serde_json::Value;

const V: &str = "api-version=2023-10-01";

/// The app on `store`, keys generated in memory (or from `keys`), every route served.
async fn app_on(store: Arc<DynamoDbStore>, config: &callsign::Config) -> (Arc<App>, String) {
    let access = AccessKeys::generate();
    let mut backends = Backends::memory(config, Arc::new(MemoryStore::new()), &access).unwrap();
    backends.store = store.clone();
    backends.throttle = store;
    let app = app::assemble(config, Served::All, backends, app::Trust::default())
        .await
        .unwrap();
    (Arc::new(app), access.primary().to_owned())
}

async fn send(
    app: &Arc<App>,
    key: &str,
    method: Method,
    path: &str,
    body: &str,
) -> (u16, Value, bool) {
    let response = api::handle(app, Served::All, signed(key, method, path, body)).await;
    let retry_after = response.headers().contains_key("retry-after");
    let (status, body) = split(response);
    (status, body, retry_after)
}

fn scan_text(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_stopped_mid_load_answers_503_or_success_and_leaves_nothing_half_written() {
    let dir = std::env::temp_dir().join(common::unique("faults-ddb"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut dynamodb = Private::dynamodb_local(&dir);
    let client = aws_sdk_dynamodb::Client::new(&aws_config(&dynamodb.endpoint()).await);
    let table = common::unique("faults");
    let store = Arc::new(DynamoDbStore::new(client.clone(), &table));
    store.create_table_if_missing().await.unwrap();
    let (app, key) = app_on(store, &common::config()).await;

    // Four clients create identities (with customIds and tokens) as fast as they can,
    // while DynamoDB Local goes away and comes back.
    let answers = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for worker in 0..4 {
        let (app, key, answers, stop) = (app.clone(), key.clone(), answers.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let custom_id = format!("fault-{worker}-{n}");
                let body =
                    format!(r#"{{"customId":"{custom_id}","createTokenWithScopes":["chat"]}}"#);
                let answer =
                    send(&app, &key, Method::POST, &format!("/identities?{V}"), &body).await;
                answers.lock().unwrap().push((custom_id, answer));
                n += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let dynamodb = tokio::task::spawn_blocking(move || {
        dynamodb.stop();
        std::thread::sleep(Duration::from_secs(2));
        dynamodb.start();
        dynamodb
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.unwrap();
    }

    let answers = answers.lock().unwrap().clone();
    let (mut created, mut unavailable) = (0, 0);
    for (custom_id, (status, body, retry_after)) in &answers {
        match status {
            201 => {
                created += 1;
                assert_eq!(body["identity"]["customId"], custom_id.as_str());
                assert!(body["accessToken"]["token"].is_string());
            }
            503 => {
                unavailable += 1;
                assert_eq!(body["error"]["code"], "ServiceUnavailable", "{body}");
                assert!(retry_after, "a 503 says when to retry");
            }
            other => panic!("{custom_id}: {other} {body}"),
        }
    }
    assert!(
        unavailable > 0,
        "the outage was never met: {} answers",
        answers.len()
    );
    assert!(created > 0);

    // Every answered identity landed, with its mapping and a live token.
    for (custom_id, (status, body, _)) in &answers {
        if *status != 201 {
            continue;
        }
        let id = body["identity"]["id"].as_str().unwrap();
        let (status, found, _) = send(
            &app,
            &key,
            Method::GET,
            &format!("/customIds/{custom_id}?{V}"),
            "",
        )
        .await;
        assert_eq!(
            (status, found["id"].as_str()),
            (200, Some(id)),
            "{custom_id}"
        );
        let token = body["accessToken"]["token"].as_str().unwrap();
        assert_eq!(
            introspect(&app, &key, token).await["active"],
            true,
            "{custom_id}"
        );
    }
    // And the table holds no half-write: identities and mappings agree both ways.
    let items = common::scan(&client, &table).await;
    let identities: HashMap<String, Option<String>> = items
        .iter()
        .filter_map(|item| {
            let pk = scan_text(item, "pk")?;
            pk.starts_with("ID#")
                .then(|| (scan_text(item, "id").unwrap(), scan_text(item, "customId")))
        })
        .collect();
    let mappings: HashMap<String, String> = items
        .iter()
        .filter_map(|item| {
            let pk = scan_text(item, "pk")?;
            let custom_id = pk.strip_prefix("CID#")?.to_owned();
            Some((custom_id, scan_text(item, "identityId").unwrap()))
        })
        .collect();
    for (id, custom_id) in &identities {
        let custom_id = custom_id
            .as_ref()
            .expect("every load identity has a customId");
        assert_eq!(
            mappings.get(custom_id),
            Some(id),
            "identity {id} has no mapping"
        );
    }
    for (custom_id, id) in &mappings {
        assert_eq!(
            identities.get(id),
            Some(&Some(custom_id.clone())),
            "mapping {custom_id} is orphaned"
        );
    }

    // Back without a restart.
    let (status, _, _) = send(&app, &key, Method::POST, &format!("/identities?{V}"), "").await;
    assert_eq!(status, 201);
    drop(dynamodb);
}

fn key_source(
    secrets: aws_sdk_secretsmanager::Client,
    signing: &str,
    access: &str,
) -> SecretsManagerKeySource {
    SecretsManagerKeySource::new(secrets, Some(signing), Some(access))
}

#[tokio::test]
async fn secrets_manager_unreachable_at_a_cold_start_fails_it_with_a_clear_error() {
    let mut moto = Private::moto();
    let secrets = aws_sdk_secretsmanager::Client::new(&aws_config(&moto.endpoint()).await);
    moto.stop();
    let config = common::config();
    let backends = Backends {
        store: Arc::new(MemoryStore::new()),
        throttle: Arc::new(callsign::adapters::memory::MemoryThrottle::default()),
        keys: Arc::new(key_source(secrets, "callsign/signing", "callsign/access")),
    };
    let Err(error) = app::assemble(&config, Served::All, backends, app::Trust::default()).await
    else {
        panic!("a cold start without its keys must not serve");
    };
    let message = error.to_string();
    assert!(
        message.contains("BatchGetSecretValue") && message.contains("callsign/signing"),
        "{message}"
    );
}

#[tokio::test]
async fn a_cold_start_without_a_table_names_it_before_asking_secrets_manager() {
    let mut moto = Private::moto();
    let sdk = aws_config(&moto.endpoint()).await;
    moto.stop();
    let secrets = [
        ("CALLSIGN_SIGNING_KEYS_SECRET_ID", "callsign/signing"),
        ("CALLSIGN_ACCESS_KEYS_SECRET_ID", "callsign/access"),
    ];
    let Err(error) = app::aws_app(&config_with(&secrets), &sdk, Served::All).await else {
        panic!("a start without a table must not serve");
    };
    assert_eq!(
        error.to_string(),
        "configuration: CALLSIGN_TABLE_NAME is required"
    );
    // With the table named, the same start fails on the unreachable keys instead.
    let named = config_with(&[secrets[0], secrets[1], ("CALLSIGN_TABLE_NAME", "callsign")]);
    let Err(error) = app::aws_app(&named, &sdk, Served::All).await else {
        panic!("a cold start without its keys must not serve");
    };
    assert!(error.to_string().contains("BatchGetSecretValue"), "{error}");
}

#[tokio::test]
async fn secrets_manager_unreachable_later_keeps_the_cached_keys_serving() {
    let logs = Captured::default();
    let writer = logs.clone();
    let _logging = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .finish(),
    );
    let mut moto = Private::moto();
    let secrets = aws_sdk_secretsmanager::Client::new(&aws_config(&moto.endpoint()).await);
    let access = AccessKeys::generate();
    let signing = StoredKeySet::generate(SigningAlgorithm::Es256).unwrap();
    create_secret_if_missing(&secrets, "s", || Ok(signing.to_secret()))
        .await
        .unwrap();
    create_secret_if_missing(&secrets, "a", || Ok(access.to_secret()))
        .await
        .unwrap();
    let mut config = common::config();
    config.key_cache_ttl = Duration::ZERO; // every request finds its keys due for a refresh
    let backends = Backends {
        store: Arc::new(MemoryStore::new()),
        throttle: Arc::new(callsign::adapters::memory::MemoryThrottle::default()),
        keys: Arc::new(key_source(secrets, "s", "a")),
    };
    let app = Arc::new(
        app::assemble(&config, Served::All, backends, app::Trust::default())
            .await
            .unwrap(),
    );
    let key = access.primary();
    moto.stop();

    for _ in 0..5 {
        let (status, body, _) = send(
            &app,
            key,
            Method::POST,
            &format!("/identities?{V}"),
            r#"{"createTokenWithScopes":["chat"]}"#,
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let token = body["accessToken"]["token"].as_str().unwrap();
        assert_eq!(introspect(&app, key, token).await["active"], true);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The refreshes ran, failed, and said so.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let text = logs.text();
        if text.contains("key refresh failed; keeping the cached keys") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no refresh failure was logged: {text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A stand-in for DynamoDB that throttles every call, counting them.
fn throttling_dynamodb() -> (String, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let counted = counted.clone();
            std::thread::spawn(move || {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                loop {
                    let Ok(n) = stream.read(&mut buffer) else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buffer[..n]);
                    let text = String::from_utf8_lossy(&request).to_string();
                    let Some(end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let length: usize = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if request.len() < end + 4 + length {
                        continue;
                    }
                    request.drain(..end + 4 + length);
                    counted.fetch_add(1, Ordering::SeqCst);
                    let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"The level of configured provisioned throughput for the table was exceeded."}"#;
                    let answer = format!(
                        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/x-amz-json-1.0\r\nx-amzn-requestid: throttled\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if stream.write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (endpoint, calls)
}

#[tokio::test]
async fn dynamodb_throttling_is_retried_by_the_sdk_then_answered_503() {
    let (endpoint, calls) = throttling_dynamodb();
    let client = aws_sdk_dynamodb::Client::new(&aws_config(&endpoint).await);
    let store = Arc::new(DynamoDbStore::new(client, "throttled"));
    let (app, key) = app_on(store, &common::config()).await;
    let id = format!("8:acs:{RESOURCE}_00000005-14a2-493b-8a72-5a3a0d000081");
    let path = format!("/identities/{}/:issueAccessToken?{V}", encoded(&id));
    let (status, body, retry_after) =
        send(&app, &key, Method::POST, &path, r#"{"scopes":["chat"]}"#).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "ServiceUnavailable");
    assert!(retry_after);
    assert!(
        calls.load(Ordering::SeqCst) >= 2,
        "the SDK retried the throttled call ({} calls)",
        calls.load(Ordering::SeqCst)
    );
}
