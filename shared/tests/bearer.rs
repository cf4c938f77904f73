//! Bearer tokens on the admin API (trusted issuers, roles, refusals that write nothing)
//! and the Teams user token exchange, on the in-memory store with in-process issuers.

mod common;

use std::sync::Arc;

use callsign::adapters::oidc::{DiscoveredProvider, OidcVerifier, TrustedIssuers};
use callsign::config::{OidcSettings, RolesClaim};
use callsign::domain::access_keys::AccessKeys;
use callsign::domain::keys::{KeySet, SigningAlgorithm, StoredKeySet};
use callsign::domain::ports::{AccessKeyLedger, TrustedTokens};
use callsign::http::{ApiRequest, ApiResponse};
use callsign_verifier::StaticKeys;
use common::{TestApp, config, encoded, signed, split};

const V: &str = "api-version=2023-10-01";
use http::Method;
use serde_json::{Value, json};

const ISSUER: &str = "https://login.example/tenant/v2.0";
const ADMIN_AUDIENCE: &str = "https://communication.azure.com";
const TEAMS_AUDIENCE: &str = "https://auth.msft.communication.azure.com";
const APP_ID: &str = "1f0e5c2a-3b4d-4e6f-8a9b-0c1d2e3f4a5b";
const USER_ID: &str = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d";

fn key_set(algorithm: SigningAlgorithm) -> KeySet {
    KeySet::from_secret(&StoredKeySet::generate(algorithm).unwrap().to_secret()).unwrap()
}

fn issuers(keys: &KeySet, audience: &str, roles_claim: &str) -> Arc<dyn TrustedTokens> {
    let settings = OidcSettings {
        issuer: ISSUER.into(),
        audiences: vec![audience.into()],
        jwks_url: None,
        leeway_seconds: 30,
    };
    let verifier = OidcVerifier::new(settings, Arc::new(StaticKeys(keys.public_keys().clone())));
    let roles = RolesClaim {
        claim: roles_claim.into(),
        prefix: String::new(),
    };
    Arc::new(TrustedIssuers::new(vec![(
        roles,
        DiscoveredProvider::ready(verifier),
    )]))
}

/// The app with one trusted issuer for admin callers and Teams users, and its keys.
async fn app() -> (TestApp, KeySet) {
    let keys = key_set(SigningAlgorithm::Rs256);
    let trust = callsign::app::Trust {
        admins: Some(issuers(&keys, ADMIN_AUDIENCE, "roles")),
        teams: Some(issuers(&keys, TEAMS_AUDIENCE, "scp")),
        ..Default::default()
    };
    let config = config();
    let memory = callsign::app::memory_app(&config, None, trust)
        .await
        .unwrap();
    let app = TestApp {
        app: memory.app,
        store: memory.store,
        key: memory.access_keys.primary().to_owned(),
        config,
    };
    (app, keys)
}

fn sign_with(keys: &KeySet, claims: Value) -> String {
    let key = &keys.current;
    let mut header = jsonwebtoken::Header::new(key.algorithm().jwt());
    header.kid = Some(key.kid().to_owned());
    jsonwebtoken::encode(&header, &claims, key.encoding_key()).unwrap()
}

fn admin_claims(roles: &[&str]) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({"iss": ISSUER, "aud": ADMIN_AUDIENCE, "sub": "svc-backend", "roles": roles, "iat": now, "exp": now + 600})
}

fn with(mut claims: Value, field: &str, value: Value) -> Value {
    claims[field] = value;
    claims
}

fn bearer(token: &str, method: Method, path_and_query: &str, body: &str) -> ApiRequest {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let mut request = ApiRequest {
        method,
        path: path.into(),
        query: (!query.is_empty()).then(|| query.to_owned()),
        body: body.to_owned().into(),
        ..Default::default()
    };
    request
        .headers
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
        .headers
        .insert("host", common::HOST.parse().unwrap());
    request
}

fn challenge(response: &ApiResponse) -> String {
    response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// Whether a customId maps to an identity (asked with the access key).
async fn mapped(t: &TestApp, custom_id: &str) -> bool {
    t.call(Method::GET, &format!("/customIds/{custom_id}?{V}"), "")
        .await
        .0
        == 200
}

#[tokio::test]
async fn an_admin_role_may_do_everything_and_its_tokens_record_the_issuer() {
    let (t, keys) = app().await;
    let token = sign_with(&keys, admin_claims(&["identity.admin"]));
    let send = |method: Method, path: String, body: &'static str| {
        let request = bearer(&token, method, &path, body);
        async { split(t.send(request).await) }
    };
    let (status, created) = send(
        Method::POST,
        format!("/identities?{V}"),
        r#"{"createTokenWithScopes":["chat"]}"#,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["identity"]["id"].as_str().unwrap().to_owned();
    let access_token = created["accessToken"]["token"].as_str().unwrap().to_owned();
    assert!(
        common::claims(&access_token)["cred"]
            .as_str()
            .unwrap()
            .starts_with("iss.")
    );
    let at = |suffix: &str| format!("/identities/{}{suffix}?{V}", encoded(&id));
    assert_eq!(send(Method::GET, at(""), "").await.0, 200);
    assert_eq!(
        send(
            Method::POST,
            at("/:issueAccessToken"),
            r#"{"scopes":["voip"]}"#
        )
        .await
        .0,
        200
    );
    assert_eq!(
        send(Method::POST, at("/:revokeAccessTokens"), "").await.0,
        204
    );
    assert_eq!(send(Method::DELETE, at(""), "").await.0, 204);
}

#[tokio::test]
async fn roles_limit_what_a_bearer_may_do_and_a_refusal_writes_nothing() {
    let (t, keys) = app().await;
    let issuer = sign_with(&keys, admin_claims(&["token.issue"]));
    let reader = sign_with(&keys, admin_claims(&["identity.read"]));
    let create = format!("/identities?{V}");
    let (status, created) = split(
        t.send(bearer(
            &issuer,
            Method::POST,
            &create,
            r#"{"customId":"by-issuer"}"#,
        ))
        .await,
    );
    assert_eq!(status, 201, "{created}");
    let id = created["identity"]["id"].as_str().unwrap().to_owned();
    let at = |suffix: &str| format!("/identities/{}{suffix}?{V}", encoded(&id));
    assert_eq!(
        split(
            t.send(bearer(
                &issuer,
                Method::POST,
                &at("/:issueAccessToken"),
                r#"{"scopes":["chat"]}"#
            ))
            .await
        )
        .0,
        200
    );
    for (token, method, path, body) in [
        (&issuer, Method::POST, at("/:revokeAccessTokens"), ""),
        (&issuer, Method::DELETE, at(""), ""),
        (&issuer, Method::GET, at(""), ""),
        (
            &reader,
            Method::POST,
            create.clone(),
            r#"{"customId":"by-reader"}"#,
        ),
        (&reader, Method::DELETE, at(""), ""),
    ] {
        let response = t.send(bearer(token, method, &path, body)).await;
        assert_eq!(response.status(), 403, "{path}");
        assert!(challenge(&response).contains("insufficient_scope"));
        assert_eq!(split(response).1["error"]["code"], "Forbidden");
    }
    assert!(!mapped(&t, "by-reader").await);
    assert_eq!(
        split(t.send(bearer(&reader, Method::GET, &at(""), "")).await).0,
        200,
        "still there: the refused delete changed nothing"
    );
}

#[tokio::test]
async fn foreign_expired_and_unsigned_bearer_tokens_are_refused_and_write_nothing() {
    let (t, keys) = app().await;
    let good = admin_claims(&["identity.admin"]);
    let now = chrono::Utc::now().timestamp();
    let stranger = key_set(SigningAlgorithm::Rs256);
    let encode_alg = |alg: &str, claims: &Value| {
        use base64::Engine;
        let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.",
            b64(json!({"alg": alg, "typ": "JWT"})),
            b64(claims.clone())
        )
    };
    let hs256 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &good,
        &jsonwebtoken::EncodingKey::from_secret(b"a shared secret of the attacker"),
    )
    .unwrap();
    let cases = [
        (
            "wrong audience",
            sign_with(&keys, with(good.clone(), "aud", json!("api://other"))),
        ),
        (
            "wrong issuer",
            sign_with(
                &keys,
                with(good.clone(), "iss", json!("https://evil.example")),
            ),
        ),
        (
            "expired",
            sign_with(&keys, with(good.clone(), "exp", json!(now - 3600))),
        ),
        ("alg none", encode_alg("none", &good)),
        ("HS256", hs256),
        ("unknown kid", sign_with(&stranger, good.clone())),
        ("garbage", "not-a-jwt".to_owned()),
        ("empty", String::new()),
    ];
    for (i, (case, token)) in cases.iter().enumerate() {
        let custom_id = format!("refused-{i}");
        let body = format!(r#"{{"customId":"{custom_id}","createTokenWithScopes":["chat"]}}"#);
        let response = t
            .send(bearer(
                token,
                Method::POST,
                &format!("/identities?{V}"),
                &body,
            ))
            .await;
        assert_eq!(response.status(), 401, "{case}");
        assert!(
            challenge(&response).starts_with("Bearer"),
            "{case}: {:?}",
            response.headers()
        );
        assert_eq!(split(response).1["error"]["code"], "Denied", "{case}");
        assert!(!mapped(&t, &custom_id).await, "{case}: written");
    }
}

#[tokio::test]
async fn without_a_trusted_issuer_bearer_tokens_are_denied() {
    let t = common::memory_app().await;
    let keys = key_set(SigningAlgorithm::Rs256);
    let token = sign_with(&keys, admin_claims(&["identity.admin"]));
    let response = t
        .send(bearer(
            &token,
            Method::POST,
            &format!("/identities?{V}"),
            "{}",
        ))
        .await;
    assert_eq!(response.status(), 401);
    assert!(challenge(&response).contains("invalid_token"));
}

#[tokio::test]
async fn regenerating_an_access_key_leaves_bearer_issued_tokens_alone() {
    let (t, keys) = app().await;
    let admin = sign_with(&keys, admin_claims(&["identity.admin"]));
    let body = r#"{"createTokenWithScopes":["chat"]}"#;
    let create = format!("/identities?{V}");
    let by_bearer = split(t.send(bearer(&admin, Method::POST, &create, body)).await).1;
    let by_key = t.call(Method::POST, &create, body).await.1;
    let token = |created: &Value| created["accessToken"]["token"].as_str().unwrap().to_owned();
    // As a regeneration of both keys would settle the list.
    let fresh = AccessKeys::generate();
    assert!(
        t.store
            .settle_fingerprints(fresh.fingerprints(), 1)
            .await
            .unwrap()
    );
    assert_eq!(
        common::introspect(&t.app, &t.key, &token(&by_bearer)).await["active"],
        true
    );
    let revoked = common::introspect(&t.app, &t.key, &token(&by_key)).await;
    assert_eq!(revoked["reason"], "credential_revoked");
}

fn teams_claims() -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "iss": ISSUER, "aud": TEAMS_AUDIENCE, "sub": "teams-sub", "oid": USER_ID, "appid": APP_ID,
        "scp": "https://auth.msft.communication.azure.com/Teams.ManageCalls https://auth.msft.communication.azure.com/Teams.ManageChats",
        "iat": now, "exp": now + 3000,
    })
}

async fn exchange(t: &TestApp, body: Value) -> (u16, Value) {
    let path = format!("/teamsUser/:exchangeAccessToken?{V}");
    split(
        t.send(signed(&t.key, Method::POST, &path, &body.to_string()))
            .await,
    )
}

/// With no Teams tenant or issuer trusted, no token is valid: the contract's 401, whatever
/// the token (a well-formed one of a key no one trusts here, or none).
#[tokio::test]
async fn with_no_teams_issuer_trusted_every_exchange_is_an_invalid_token() {
    let (_, keys) = app().await;
    let t = common::memory_app().await;
    let entra = sign_with(&keys, teams_claims());
    for token in [entra.as_str(), "", "not-a-jwt"] {
        let (status, body) = exchange(
            &t,
            json!({"token": token, "appId": APP_ID, "userId": USER_ID}),
        )
        .await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"]["code"], "InvalidAccessToken", "{body}");
        assert_eq!(
            body["error"]["message"],
            "Provided access token is not valid."
        );
    }
}

#[tokio::test]
async fn a_teams_users_entra_token_becomes_a_token_for_their_orgid_identity() {
    let (t, keys) = app().await;
    let claims = teams_claims();
    let entra = sign_with(&keys, claims.clone());
    let (status, body) = exchange(
        &t,
        json!({"token": entra, "appId": APP_ID.to_uppercase(), "userId": USER_ID}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap();
    let issued = common::claims(token);
    assert_eq!(issued["sub"], format!("8:orgid:{USER_ID}"));
    assert_eq!(issued["skypeid"], format!("orgid:{USER_ID}"));
    assert_eq!(issued["exp"], claims["exp"], "ends with the Entra token");
    let introspected = common::introspect(&t.app, &t.key, token).await;
    assert_eq!(introspected["active"], true, "{introspected}");

    // A day at most, however long the Entra token lives.
    let long = sign_with(
        &keys,
        with(
            claims,
            "exp",
            json!(chrono::Utc::now().timestamp() + 3 * 86_400),
        ),
    );
    let (_, body) = exchange(
        &t,
        json!({"token": long, "appId": APP_ID, "userId": USER_ID}),
    )
    .await;
    let exp = common::claims(body["token"].as_str().unwrap())["exp"]
        .as_i64()
        .unwrap();
    assert!(exp <= chrono::Utc::now().timestamp() + 86_400);
}

#[tokio::test]
async fn a_teams_token_passes_the_authorizer_like_any_other() {
    let (t, keys) = app().await;
    let entra = sign_with(&keys, teams_claims());
    let (_, body) = exchange(
        &t,
        json!({"token": entra, "appId": APP_ID, "userId": USER_ID}),
    )
    .await;
    let token = body["token"].as_str().unwrap();
    let authorizer = callsign::app::authorizer_for(&t.app.service, &t.config.authorizer);
    let allowed = authorizer
        .authorize(
            "POST /chat/threads",
            Some(&format!("Bearer {token}")),
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(allowed.identity.as_str(), format!("8:orgid:{USER_ID}"));
}

#[tokio::test]
async fn the_teams_exchange_refuses_as_acs_does() {
    let (t, keys) = app().await;
    let good = teams_claims();
    let entra = sign_with(&keys, good.clone());
    let other = "00000000-1111-4222-8333-444444444444";
    let now = chrono::Utc::now().timestamp();
    // The token is checked first: ACS answers 401 for it whatever the other fields hold.
    let invalid_tokens = [
        json!({"appId": APP_ID, "userId": USER_ID}),
        json!({"token": "", "appId": APP_ID, "userId": ""}),
        json!({"token": "x.y.z", "appId": "not-a-guid", "userId": ""}),
        json!({"token": "", "appId": APP_ID, "userId": USER_ID}),
        json!({"token": "x.y.z", "appId": APP_ID, "userId": USER_ID}),
        json!({"token": sign_with(&keys, with(good.clone(), "exp", json!(now - 600))), "appId": APP_ID, "userId": USER_ID}),
        json!({"token": sign_with(&key_set(SigningAlgorithm::Rs256), good.clone()), "appId": APP_ID, "userId": USER_ID}),
        json!({"token": sign_with(&keys, with(good.clone(), "scp", json!("Teams.ManageCalls"))), "appId": APP_ID, "userId": USER_ID}),
        json!({"token": sign_with(&keys, with(good.clone(), "aud", json!(ADMIN_AUDIENCE))), "appId": APP_ID, "userId": USER_ID}),
    ];
    for body in invalid_tokens {
        let (got, answer) = exchange(&t, body.clone()).await;
        assert_eq!(got, 401, "{body} → {answer}");
        assert_eq!(answer["error"]["code"], "InvalidAccessToken", "{body}");
    }
    // Then the fields, in ACS's words and targets (Microsoft's test recordings).
    let required = |field: &str| format!("{field}: The {field} field is required.");
    let invalid_fields = [
        (
            json!({"token": entra, "userId": USER_ID}),
            "AppId",
            required("AppId"),
        ),
        (
            json!({"token": entra, "appId": "", "userId": USER_ID}),
            "AppId",
            required("AppId"),
        ),
        (
            json!({"token": entra, "appId": APP_ID}),
            "UserId",
            required("UserId"),
        ),
        (
            json!({"token": entra, "appId": APP_ID, "userId": ""}),
            "UserId",
            required("UserId"),
        ),
        (
            json!({"token": entra, "appId": "not-a-guid", "userId": USER_ID}),
            "appId",
            "Provided AppId has invalid format.".into(),
        ),
        (
            json!({"token": entra, "appId": APP_ID, "userId": "alice@contoso.com"}),
            "userId",
            "Provided UserId has invalid format.".into(),
        ),
        (
            json!({"token": entra, "appId": other, "userId": USER_ID}),
            "appId",
            "AAD application is not the expected one.".into(),
        ),
        (
            json!({"token": entra, "appId": APP_ID, "userId": other}),
            "userId",
            "Provided AAD token issued for unexpected user.".into(),
        ),
    ];
    for (body, target, message) in invalid_fields {
        let (got, answer) = exchange(&t, body.clone()).await;
        assert_eq!(got, 400, "{body} → {answer}");
        assert_eq!(answer["error"]["code"], "ValidationError", "{body}");
        assert_eq!(answer["error"]["target"], target, "{body}");
        assert_eq!(answer["error"]["message"], message, "{body}");
    }
}

#[tokio::test]
async fn audit_lines_name_the_bearers_issuer_and_subject_never_the_token() {
    let logs = common::capture_logs();
    let (t, keys) = app().await;
    let token = sign_with(&keys, admin_claims(&["identity.admin"]));
    let response = t
        .send(bearer(
            &token,
            Method::POST,
            &format!("/identities?{V}"),
            "{}",
        ))
        .await;
    assert_eq!(response.status(), 201);
    let text = logs.text();
    let audit = text
        .lines()
        .find(|line| line.contains("callsign::audit") && line.contains("svc-backend"))
        .expect("an audit line for the bearer's create");
    assert!(audit.contains(ISSUER), "{audit}");
    assert!(audit.contains("\"key\":\"bearer\""), "{audit}");
    assert!(!text.contains(&token));
    assert!(!text.contains(token.split('.').nth(2).unwrap()));

    // An exchange names the Teams user's identity.
    let entra = sign_with(&keys, teams_claims());
    let (status, body) = exchange(
        &t,
        json!({"token": entra, "appId": APP_ID, "userId": USER_ID}),
    )
    .await;
    assert_eq!(status, 200);
    let text = logs.text();
    let audit = text
        .lines()
        .find(|line| line.contains("callsign::audit") && line.contains("\"exchange\""))
        .expect("an audit line for the exchange");
    assert!(audit.contains(&format!("8:orgid:{USER_ID}")), "{audit}");
    assert!(!text.contains(&entra));
    assert!(!text.contains(body["token"].as_str().unwrap()));
}
