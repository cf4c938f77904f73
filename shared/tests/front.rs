//! The end-user front against real parts: an OpenID Connect provider served over HTTP on
//! 127.0.0.1 (discovery, JWKS, RSA keys), identities on DynamoDB Local, and tokens checked
//! by introspection.

mod common;

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use callsign::adapters::dynamodb::DynamoDbStore;
use callsign::adapters::memory::{MemoryStore, MemoryThrottle};
use callsign::app::{self, Backends};
use callsign::config::{FrontConfig, OidcSettings, UserAuthConfig};
use callsign::domain::access_keys::AccessKeys;
use callsign::domain::front::{Caller, FrontPolicy};
use callsign::domain::keys::{KeySet, SigningAlgorithm, StoredKeySet};
use callsign::domain::ports::{IdentityStore, Throttle};
use callsign::http::{self as api, ApiRequest, App, Function, Served};
use chrono::Utc;
use common::{HOST, JsonServer, encoded, split};
use http::{HeaderValue, Method};
use serde_json::{Value, json};

const AUDIENCE: &str = "chat-app";

/// A test identity provider: its keys, published at `{base}/.well-known/openid-configuration`.
struct Provider {
    server: JsonServer,
    keys: KeySet,
}

impl Provider {
    async fn start() -> Self {
        let server = JsonServer::start().await;
        let keys = rsa_keys();
        let provider = Self { server, keys };
        provider.publish(&[&provider.keys]);
        provider.server.put(
            "/.well-known/openid-configuration",
            json!({"issuer": provider.issuer(), "jwks_uri": format!("{}/keys", provider.server.base)}).to_string(),
        );
        provider
    }

    fn issuer(&self) -> String {
        self.server.base.clone()
    }

    fn publish(&self, sets: &[&KeySet]) {
        let keys: Vec<Value> = sets
            .iter()
            .flat_map(|set| {
                set.public_keys()
                    .iter()
                    .map(|k| k.jwk().clone())
                    .collect::<Vec<_>>()
            })
            .collect();
        self.server
            .put("/keys", json!({ "keys": keys }).to_string());
    }

    fn claims(&self, subject: &str) -> Value {
        let now = Utc::now().timestamp();
        json!({"iss": self.issuer(), "aud": AUDIENCE, "sub": subject, "iat": now, "exp": now + 600})
    }

    fn mint_with(keys: &KeySet, header_alg: Option<&str>, claims: &Value) -> String {
        let key = &keys.current;
        let mut header = jsonwebtoken::Header::new(key.algorithm().jwt());
        header.kid = Some(key.kid().to_owned());
        let token = jsonwebtoken::encode(&header, claims, key.encoding_key()).unwrap();
        match header_alg {
            None => token,
            Some(alg) => {
                // Re-header without a signature, e.g. alg none.
                let payload = token.split('.').nth(1).unwrap();
                let header =
                    base64_url(&json!({"alg": alg, "typ": "JWT", "kid": key.kid()}).to_string());
                format!("{header}.{payload}.")
            }
        }
    }

    fn token(&self, subject: &str) -> String {
        Self::mint_with(&self.keys, None, &self.claims(subject))
    }
}

fn base64_url(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

fn rsa_keys() -> KeySet {
    KeySet::from_secret(
        &StoredKeySet::generate(SigningAlgorithm::Rs256)
            .unwrap()
            .to_secret(),
    )
    .unwrap()
}

struct Front {
    app: Arc<App>,
    key: String,
}

/// The front as a cold start of the user-token function builds it (discovery included),
/// on `store`, with the admin routes beside it to check tokens.
async fn front_on(
    provider: &Provider,
    store: Arc<dyn IdentityStore>,
    throttle: Arc<dyn Throttle>,
    policy: FrontPolicy,
) -> Front {
    let users = UserAuthConfig::Oidc(OidcSettings {
        issuer: provider.issuer(),
        audiences: vec![AUDIENCE.into()],
        jwks_url: None,
        leeway_seconds: 30,
    });
    let cors_origins = vec!["https://app.example".into()];
    front_with(
        store,
        throttle,
        FrontConfig {
            policy,
            users,
            cors_origins,
        },
    )
    .await
}

/// The front as a cold start builds it from `front_config`, with the admin routes beside
/// it (fresh keys) to check tokens.
async fn front_with(
    store: Arc<dyn IdentityStore>,
    throttle: Arc<dyn Throttle>,
    front_config: FrontConfig,
) -> Front {
    let mut config = common::config();
    config.front = front_config;
    let access = AccessKeys::generate();
    let mut backends = Backends::memory(&config, Arc::new(MemoryStore::new()), &access).unwrap();
    backends.store = store;
    backends.throttle = throttle;
    let app = Arc::new(
        app::assemble(&config, Served::All, backends, app::Trust::default())
            .await
            .expect("the front starts"),
    );
    Front {
        app,
        key: access.primary().to_owned(),
    }
}

impl Front {
    async fn send(&self, mut request: ApiRequest) -> (u16, Value, http::HeaderMap) {
        if request.source_ip.is_none() {
            request.source_ip = Some("198.51.100.7".into());
        }
        let response = api::handle(&self.app, Served::All, request).await;
        let headers = response.headers().clone();
        let (status, body) = split(response);
        (status, body, headers)
    }

    async fn user(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: &str,
    ) -> (u16, Value) {
        let mut request = ApiRequest {
            method,
            path: path.into(),
            body: bytes::Bytes::from(body.to_owned()),
            ..Default::default()
        };
        if let Some(token) = bearer {
            request
                .headers
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        let (status, body, _) = self.send(request).await;
        (status, body)
    }

    async fn guest(&self, ip: &str) -> (u16, Value, http::HeaderMap) {
        self.send(ApiRequest {
            method: Method::POST,
            path: "/guest/token".into(),
            source_ip: Some(ip.into()),
            ..Default::default()
        })
        .await
    }

    async fn introspect(&self, token: &str) -> Value {
        common::introspect(&self.app, &self.key, token).await
    }
}

async fn dynamodb_table() -> Arc<DynamoDbStore> {
    let store = DynamoDbStore::new(common::dynamodb().await, common::unique("front"));
    store.create_table_if_missing().await.unwrap();
    Arc::new(store)
}

#[tokio::test]
async fn a_signed_in_user_keeps_one_identity_across_calls_and_restarts() {
    let provider = Provider::start().await;
    let table = dynamodb_table().await;
    let front = front_on(
        &provider,
        table.clone(),
        table.clone(),
        FrontPolicy::default(),
    )
    .await;
    let alice = provider.token("alice");

    let (status, first) = front
        .user(Method::POST, "/user/token", Some(&alice), "")
        .await;
    assert_eq!(status, 200, "{first}");
    let id = first["identity"]["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("8:acs:"));
    let token = first["accessToken"]["token"].as_str().unwrap();
    assert_eq!(
        common::claims(token)["acsScope"],
        "chat,voip",
        "the configured user scopes"
    );
    assert_eq!(common::claims(token)["sub"], id.as_str());

    let (_, again) = front
        .user(
            Method::POST,
            "/user/token",
            Some(&alice),
            r#"{"scopes":["chat"],"expiresInMinutes":60}"#,
        )
        .await;
    assert_eq!(again["identity"]["id"], id.as_str());
    assert_eq!(
        common::claims(again["accessToken"]["token"].as_str().unwrap())["acsScope"],
        "chat"
    );

    // A cold start of another function instance on the same table.
    let restarted = front_on(
        &provider,
        table.clone(),
        table.clone(),
        FrontPolicy::default(),
    )
    .await;
    let (status, after_restart) = restarted
        .user(Method::POST, "/user/token", Some(&alice), "")
        .await;
    assert_eq!(
        (status, &after_restart["identity"]["id"]),
        (200, &json!(id))
    );
    let (status, me) = restarted.user(Method::GET, "/user", Some(&alice), "").await;
    assert_eq!((status, &me["id"]), (200, &json!(id)));

    let (_, bob) = front
        .user(
            Method::POST,
            "/user/token",
            Some(&provider.token("bob")),
            "",
        )
        .await;
    assert_ne!(
        bob["identity"]["id"],
        json!(id),
        "two users, two identities"
    );

    let (status, body) = front
        .user(
            Method::POST,
            "/user/token",
            Some(&alice),
            r#"{"scopes":["chat","voip.join"]}"#,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("ScopeNotAllowed"))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("voip.join")
    );
}

#[tokio::test]
async fn bad_provider_tokens_are_refused_and_write_nothing() {
    let provider = Provider::start().await;
    let table = dynamodb_table().await;
    let front = front_on(
        &provider,
        table.clone(),
        table.clone(),
        FrontPolicy::default(),
    )
    .await;
    let subject = "mallory";
    let claims = provider.claims(subject);
    let with = |field: &str, value: Value| {
        let mut claims = claims.clone();
        claims[field] = value;
        Provider::mint_with(&provider.keys, None, &claims)
    };
    let mut tampered: Vec<String> = provider
        .token(subject)
        .split('.')
        .map(str::to_owned)
        .collect();
    tampered[1] = base64_url(&json!({"iss": provider.issuer(), "aud": AUDIENCE, "sub": "admin", "exp": Utc::now().timestamp() + 600}).to_string());
    let cases = [
        (
            "wrong issuer",
            with("iss", json!("https://elsewhere.example")),
            "wrong_issuer",
        ),
        (
            "wrong audience",
            with("aud", json!("another-app")),
            "wrong_audience",
        ),
        (
            "expired",
            with("exp", json!(Utc::now().timestamp() - 120)),
            "expired",
        ),
        ("bad signature", tampered.join("."), "bad_signature"),
        (
            "alg none",
            Provider::mint_with(&provider.keys, Some("none"), &claims),
            "bad_signature",
        ),
        (
            "unknown kid",
            Provider::mint_with(&rsa_keys(), None, &claims),
            "unknown_key",
        ),
    ];
    for (case, token, reason) in cases {
        let (status, body) = front
            .user(Method::POST, "/user/token", Some(&token), "")
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("InvalidToken")),
            "{case}: {body}"
        );
        assert!(
            body["error"]["message"].as_str().unwrap().contains(reason),
            "{case}: {body}"
        );
    }
    let (status, body) = front.user(Method::POST, "/user/token", None, "").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("MissingToken"))
    );
    // Nothing was written for the subject: a good token finds no identity yet.
    let (status, _) = front
        .user(Method::GET, "/user", Some(&provider.token(subject)), "")
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        table
            .find_by_custom_id(
                &Caller {
                    issuer: provider.issuer(),
                    subject: "admin".into()
                }
                .custom_id()
            )
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn a_rotated_provider_key_is_picked_up_on_its_first_token() {
    let provider = Provider::start().await;
    let front = front_on(
        &provider,
        Arc::new(MemoryStore::new()),
        Arc::new(MemoryThrottle::default()),
        FrontPolicy::default(),
    )
    .await;
    assert_eq!(
        front
            .user(
                Method::POST,
                "/user/token",
                Some(&provider.token("carol")),
                ""
            )
            .await
            .0,
        200
    );
    let rotated = rsa_keys();
    provider.publish(&[&rotated, &provider.keys]);
    let fetches = provider.server.hits("/keys");
    let token = Provider::mint_with(&rotated, None, &provider.claims("carol"));
    let (status, body) = front
        .user(Method::POST, "/user/token", Some(&token), "")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        provider.server.hits("/keys"),
        fetches + 1,
        "one fetch for the unknown kid"
    );
}

#[tokio::test]
async fn delete_me_removes_the_identity_and_kills_its_tokens() {
    let provider = Provider::start().await;
    let table = dynamodb_table().await;
    let front = front_on(
        &provider,
        table.clone(),
        table.clone(),
        FrontPolicy::default(),
    )
    .await;
    let dave = provider.token("dave");
    let (_, first) = front
        .user(Method::POST, "/user/token", Some(&dave), "")
        .await;
    let old_token = first["accessToken"]["token"].as_str().unwrap().to_owned();
    assert_eq!(front.introspect(&old_token).await["active"], true);

    assert_eq!(
        front.user(Method::DELETE, "/user", Some(&dave), "").await.0,
        204
    );
    assert_eq!(
        front.introspect(&old_token).await,
        json!({"active": false, "reason": "identity_deleted"})
    );
    assert_eq!(
        front.user(Method::GET, "/user", Some(&dave), "").await.0,
        404
    );
    assert_eq!(
        front.user(Method::DELETE, "/user", Some(&dave), "").await.0,
        404
    );

    let (_, fresh) = front
        .user(Method::POST, "/user/token", Some(&dave), "")
        .await;
    assert_ne!(fresh["identity"]["id"], first["identity"]["id"]);
    assert_eq!(front.introspect(&old_token).await["active"], false);
}

#[tokio::test]
async fn guests_are_throttled_per_address_and_get_the_guest_scopes() {
    let provider = Provider::start().await;
    let table = dynamodb_table().await;
    let policy = FrontPolicy {
        guest_limit: 3,
        guest_window_seconds: 3600,
        ..FrontPolicy::default()
    };
    let front = front_on(&provider, table.clone(), table.clone(), policy).await;
    for _ in 0..3 {
        let (status, body, _) = front.guest("203.0.113.5").await;
        assert_eq!(status, 200, "{body}");
        let claims = common::claims(body["accessToken"]["token"].as_str().unwrap());
        assert_eq!(claims["acsScope"], "chat.join.limited,voip.join");
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            3600
        );
    }
    let (status, body, headers) = front.guest("203.0.113.5").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("TooManyRequests"))
    );
    let retry_after: i64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry_after));
    assert_eq!(
        front.guest("203.0.113.6").await.0,
        200,
        "another address is unaffected"
    );

    let mut asking = ApiRequest {
        method: Method::POST,
        path: "/guest/token".into(),
        body: bytes::Bytes::from_static(br#"{"scopes":["chat"]}"#),
        source_ip: Some("203.0.113.9".into()),
        ..Default::default()
    };
    let (status, body, _) = front.send(asking.clone()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("ScopeNotAllowed"))
    );
    asking.body = bytes::Bytes::from_static(br#"{"expiresInMinutes":120}"#);
    let (status, body, _) = front.send(asking).await;
    assert_eq!(
        (status, body["error"]["target"].as_str()),
        (400, Some("ExpiresInMinutes"))
    );
}

#[tokio::test]
async fn an_expired_guest_is_refused_before_ttl_removes_it() {
    let provider = Provider::start().await;
    let table = dynamodb_table().await;
    let front = front_on(
        &provider,
        table.clone(),
        table.clone(),
        FrontPolicy::default(),
    )
    .await;
    let (_, guest, _) = front.guest("192.0.2.44").await;
    let id = guest["identity"]["id"].as_str().unwrap().to_owned();
    let token = guest["accessToken"]["token"].as_str().unwrap().to_owned();
    assert_eq!(front.introspect(&token).await["active"], true);

    // Its expiry passes; DynamoDB's TTL has not removed the item yet.
    common::dynamodb()
        .await
        .update_item()
        .table_name(table.table())
        .key("pk", AttributeValue::S(format!("ID#{id}")))
        .update_expression("SET expiresAt = :past")
        .condition_expression("attribute_exists(pk)")
        .expression_attribute_values(
            ":past",
            AttributeValue::N((Utc::now().timestamp() - 1).to_string()),
        )
        .send()
        .await
        .expect("the guest item exists");
    let issue = ApiRequest::signed(
        &front.key,
        Method::POST,
        &format!(
            "/identities/{}/:issueAccessToken?api-version=2023-10-01",
            encoded(&id)
        ),
        HOST,
        r#"{"scopes":["chat.join.limited"]}"#,
    )
    .unwrap();
    let (status, body, _) = front.send(issue).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("IdentityNotFound"))
    );
    assert_eq!(front.introspect(&token).await["reason"], "identity_deleted");
}

#[tokio::test]
async fn browsers_of_allowed_origins_get_cors_headers_and_others_none() {
    let provider = Provider::start().await;
    let front = front_on(
        &provider,
        Arc::new(MemoryStore::new()),
        Arc::new(MemoryThrottle::default()),
        FrontPolicy::default(),
    )
    .await;
    let request = |method: Method, origin: &str| {
        let mut request = ApiRequest {
            method,
            path: "/guest/token".into(),
            ..Default::default()
        };
        request
            .headers
            .insert("origin", HeaderValue::from_str(origin).unwrap());
        request.headers.insert(
            "access-control-request-method",
            HeaderValue::from_static("POST"),
        );
        request
    };
    let (status, _, headers) = front
        .send(request(Method::OPTIONS, "https://app.example"))
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.example"
    );
    assert!(
        headers["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    let allowed = headers["access-control-allow-headers"].to_str().unwrap();
    assert!(allowed.contains("authorization"), "{allowed}");
    assert!(allowed.contains("x-ms-client-request-id"), "{allowed}");
    let (status, _, headers) = front
        .send(request(Method::POST, "https://app.example"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.example"
    );
    // A page can read why a token was refused and when to retry.
    let exposed = headers["access-control-expose-headers"].to_str().unwrap();
    for name in ["Retry-After", "WWW-Authenticate", "x-ms-client-request-id"] {
        assert!(exposed.contains(name), "{exposed}");
    }

    let (status, _, headers) = front
        .send(request(Method::OPTIONS, "https://evil.example"))
        .await;
    assert_eq!(status, 204);
    assert!(headers.get("access-control-allow-origin").is_none());
    assert!(headers.get("access-control-allow-methods").is_none());
    let (_, _, headers) = front
        .send(request(Method::POST, "https://evil.example"))
        .await;
    assert!(headers.get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn behind_the_gateway_jwt_authorizer_only_verified_claims_count() {
    let front_config = FrontConfig {
        policy: FrontPolicy::default(),
        users: UserAuthConfig::Gateway {
            issuer: "https://idp.example".into(),
        },
        cors_origins: vec![],
    };
    let store = Arc::new(MemoryStore::new());
    let app = front_with(store, Arc::new(MemoryThrottle::default()), front_config)
        .await
        .app;
    let request = |claims: Option<Value>| ApiRequest {
        method: Method::POST,
        path: "/user/token".into(),
        gateway_claims: claims,
        ..Default::default()
    };
    let ok = api::handle(
        &app,
        Served::Function(Function::UserToken),
        request(Some(json!({"iss": "https://idp.example", "sub": "erin"}))),
    )
    .await;
    assert_eq!(ok.status(), 200);
    for claims in [
        None,
        Some(json!({"iss": "https://other.example", "sub": "erin"})),
        Some(json!({"iss": "https://idp.example"})),
    ] {
        let response = api::handle(
            &app,
            Served::Function(Function::UserToken),
            request(claims.clone()),
        )
        .await;
        assert_eq!(response.status(), 401, "{claims:?}");
    }
}

#[tokio::test]
async fn guests_without_an_address_are_refused_and_ipv6_counts_per_slash_64() {
    let provider = Provider::start().await;
    let policy = FrontPolicy {
        guest_limit: 1,
        guest_window_seconds: 3600,
        ..FrontPolicy::default()
    };
    let front = front_on(
        &provider,
        Arc::new(MemoryStore::new()),
        Arc::new(MemoryThrottle::default()),
        policy,
    )
    .await;
    let nowhere = ApiRequest {
        method: Method::POST,
        path: "/guest/token".into(),
        ..Default::default()
    };
    let response = api::handle(&front.app, Served::All, nowhere).await;
    assert_eq!(
        response.status(),
        500,
        "no shared bucket for unknown addresses"
    );
    assert_eq!(front.guest("2001:db8:7:7:1::1").await.0, 200);
    assert_eq!(front.guest("2001:db8:7:7:2::2").await.0, 429, "same /64");
    assert_eq!(front.guest("2001:db8:7:8::1").await.0, 200, "another /64");
}

#[tokio::test]
async fn a_missing_token_is_challenged_without_invalid_token() {
    let provider = Provider::start().await;
    let front = front_on(
        &provider,
        Arc::new(MemoryStore::new()),
        Arc::new(MemoryThrottle::default()),
        FrontPolicy::default(),
    )
    .await;
    let (_, _, headers) = front
        .send(ApiRequest {
            method: Method::POST,
            path: "/user/token".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(headers["www-authenticate"], "Bearer realm=\"callsign\"");
    let mut bad = ApiRequest {
        method: Method::POST,
        path: "/user/token".into(),
        ..Default::default()
    };
    bad.headers
        .insert("authorization", HeaderValue::from_static("Bearer a.b.c"));
    let (_, _, headers) = front.send(bad).await;
    assert_eq!(
        headers["www-authenticate"],
        "Bearer realm=\"callsign\", error=\"invalid_token\""
    );
}

#[tokio::test]
async fn the_admin_api_cannot_create_an_end_users_custom_id() {
    let provider = Provider::start().await;
    let front = front_on(
        &provider,
        Arc::new(MemoryStore::new()),
        Arc::new(MemoryThrottle::default()),
        FrontPolicy::default(),
    )
    .await;
    let alice = Caller {
        issuer: provider.issuer(),
        subject: "alice".into(),
    };
    let body = json!({ "customId": alice.custom_id().as_str() }).to_string();
    let request = ApiRequest::signed(
        &front.key,
        Method::POST,
        "/identities?api-version=2025-03-02-preview",
        HOST,
        &body,
    )
    .unwrap();
    let (status, body, _) = front.send(request).await;
    assert_eq!(
        (status, body["error"]["target"].as_str()),
        (400, Some("customId"))
    );
    assert_eq!(
        front
            .user(Method::GET, "/user", Some(&provider.token("alice")), "")
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn a_provider_down_at_cold_start_fails_user_routes_only_until_it_is_back() {
    let server = JsonServer::start().await; // answers 404 to everything for now
    let front_config = FrontConfig {
        policy: FrontPolicy::default(),
        users: UserAuthConfig::Oidc(OidcSettings {
            issuer: server.base.clone(),
            audiences: vec![AUDIENCE.into()],
            jwks_url: None,
            leeway_seconds: 30,
        }),
        cors_origins: vec![],
    };
    let store = Arc::new(MemoryStore::new());
    let front = front_with(store, Arc::new(MemoryThrottle::default()), front_config).await;
    assert_eq!(
        front.guest("192.0.2.80").await.0,
        200,
        "guests keep working"
    );

    let provider_keys = rsa_keys();
    let claims = json!({"iss": server.base, "aud": AUDIENCE, "sub": "frank", "exp": Utc::now().timestamp() + 600});
    let token = Provider::mint_with(&provider_keys, None, &claims);
    let (status, body) = front
        .user(Method::POST, "/user/token", Some(&token), "")
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("IdentityProviderUnavailable"))
    );

    // The provider comes back: the next request loads its keys.
    server.put(
        "/.well-known/openid-configuration",
        json!({"issuer": server.base, "jwks_uri": format!("{}/keys", server.base)}).to_string(),
    );
    let published: Vec<Value> = provider_keys
        .public_keys()
        .iter()
        .map(|k| k.jwk().clone())
        .collect();
    server.put("/keys", json!({ "keys": published }).to_string());
    assert_eq!(
        front
            .user(Method::POST, "/user/token", Some(&token), "")
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn discovery_must_name_the_configured_issuer() {
    let server = JsonServer::start().await;
    server.put(
        "/.well-known/openid-configuration",
        json!({"issuer": "https://someone-else.example", "jwks_uri": format!("{}/keys", server.base)}).to_string(),
    );
    server.put("/keys", json!({ "keys": rsa_keys().public_keys().iter().map(|k| k.jwk().clone()).collect::<Vec<_>>() }).to_string());
    let settings = OidcSettings {
        issuer: server.base.clone(),
        audiences: vec![AUDIENCE.into()],
        jwks_url: None,
        leeway_seconds: 30,
    };
    assert!(
        callsign::adapters::oidc::OidcVerifier::discover(settings)
            .await
            .is_err()
    );
}
