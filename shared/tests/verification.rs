//! The verification side on the in-memory store: introspection and the authorizer reject
//! every kind of bad token with its reason, revocation is immediate at introspection, the
//! capability table holds end to end, and the embeddable verifier follows a JWKS URL.

mod common;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use callsign::domain::authorizer::{Authorizer, Denial};
use callsign::domain::capability::{Capability, RoutePolicy};
use callsign::domain::keys::{KeySet, PublicKeys, SigningAlgorithm, StoredKeySet};
use callsign::domain::scope::{Scope, Scopes};
use callsign::domain::token::{
    self, Claims, TokenLifetime, TokenRejection, TokenRequest, TokenSettings,
};
use callsign::{Identity, IdentityId};
use callsign_verifier::{JwksKeys, Verifier};
use chrono::{Duration as Span, Utc};
use common::*;
use http::Method;
use serde_json::{Value, json};

const V: &str = "api-version=2023-10-01";

struct Fixture {
    t: TestApp,
    id: String,
}

impl Fixture {
    async fn new() -> Self {
        let t = memory_app().await;
        let id = t.create_id().await;
        Self { t, id }
    }

    async fn token(&self, scopes: &[&str]) -> String {
        let path = format!("/identities/{}/:issueAccessToken?{V}", encoded(&self.id));
        let (status, body) = self
            .t
            .call(
                Method::POST,
                &path,
                &json!({ "scopes": scopes }).to_string(),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    async fn introspect(&self, token: &str) -> Value {
        common::introspect(&self.t.app, &self.t.key, token).await
    }

    /// An authorizer that reads revocation markers fresh on every request.
    fn authorizer(&self, cache_age: Duration) -> Authorizer {
        let mut settings = self.t.config.authorizer.clone();
        settings.revocation_cache = cache_age;
        callsign::app::authorizer_for(&self.t.app.service, &settings)
    }

    fn keys(&self) -> Arc<KeySet> {
        self.t.app.service.keys().signing_keys().unwrap()
    }

    fn settings(&self) -> TokenSettings {
        self.t.config.token.clone()
    }

    /// Claims as the service would issue them now, for hand-made tokens.
    fn claims(&self) -> Claims {
        let token = token::issue(
            &self.settings(),
            &self.keys(),
            &IdentityId::parse(&self.id).unwrap(),
            chat(),
            0,
            &token::IssuedBy::Guest,
            Utc::now(),
        )
        .unwrap();
        let payload = token.token.split('.').nth(1).unwrap().to_owned();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    }
}

fn chat() -> TokenRequest {
    TokenRequest {
        scopes: Scopes::parse(["chat"]).unwrap(),
        lifetime: TokenLifetime::from_minutes(60).unwrap(),
    }
}

fn segment(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// Flips one character of a token segment to another base64url character.
fn flip(token: &str, part: usize) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut bytes = parts[part].clone().into_bytes();
    let at = bytes.len() / 2;
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    parts[part] = String::from_utf8(bytes).unwrap();
    parts.join(".")
}

/// Every bad token of the tamper matrix, with the reason it must be rejected for.
async fn tamper_matrix(f: &Fixture) -> Vec<(&'static str, String, TokenRejection)> {
    let good = f.token(&["chat"]).await;
    let keys = f.keys();
    let kid = keys.current.kid().to_owned();
    let claims = f.claims();
    let payload = segment(&serde_json::to_value(&claims).unwrap());

    let none = format!(
        "{}.{payload}.",
        segment(&json!({"alg": "none", "typ": "JWT", "kid": kid}))
    );
    // HS256 "signed" with the public key as the HMAC secret: the classic confusion attack.
    let public_jwk = keys.public_keys().find(&kid).unwrap().jwk().to_string();
    let hs_header = segment(&json!({"alg": "HS256", "typ": "JWT", "kid": kid}));
    let mac = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, public_jwk.as_bytes()),
        format!("{hs_header}.{payload}").as_bytes(),
    );
    let hs256 = format!("{hs_header}.{payload}.{}", URL_SAFE_NO_PAD.encode(mac));

    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("not-our-kid".into());
    let unknown_kid = jsonwebtoken::encode(&header, &claims, keys.current.encoding_key()).unwrap();

    // RS256 in the header over a kid that names our ES256 key.
    let rs256_header = {
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        parts[0] = segment(&json!({"alg": "RS256", "typ": "JWT", "kid": kid}));
        parts.join(".")
    };
    let other_deployment = KeySet::from_secret(
        &StoredKeySet::generate(SigningAlgorithm::Es256)
            .unwrap()
            .to_secret(),
    )
    .unwrap();
    let id = IdentityId::parse(&f.id).unwrap();
    let foreign = token::issue(
        &f.settings(),
        &other_deployment,
        &id,
        chat(),
        0,
        &token::IssuedBy::Guest,
        Utc::now(),
    )
    .unwrap()
    .token;
    let expired = token::issue(
        &f.settings(),
        &keys,
        &id,
        chat(),
        0,
        &token::IssuedBy::Guest,
        Utc::now() - Span::hours(2),
    )
    .unwrap()
    .token;
    let future = token::issue(
        &f.settings(),
        &keys,
        &id,
        chat(),
        0,
        &token::IssuedBy::Guest,
        Utc::now() + Span::hours(1),
    )
    .unwrap()
    .token;
    let mut settings = f.settings();
    settings.issuer = "https://impostor.example".into();
    let wrong_issuer = token::issue(
        &settings,
        &keys,
        &id,
        chat(),
        0,
        &token::IssuedBy::Guest,
        Utc::now(),
    )
    .unwrap()
    .token;
    let mut settings = f.settings();
    settings.audience = "someone-else".into();
    let wrong_audience = token::issue(
        &settings,
        &keys,
        &id,
        chat(),
        0,
        &token::IssuedBy::Guest,
        Utc::now(),
    )
    .unwrap()
    .token;

    vec![
        ("alg none", none, TokenRejection::BadSignature),
        (
            "allowed alg, but not the key's",
            rs256_header,
            TokenRejection::BadSignature,
        ),
        (
            "HS256 with the public key",
            hs256,
            TokenRejection::BadSignature,
        ),
        ("unknown kid", unknown_kid, TokenRejection::UnknownKey),
        (
            "payload byte changed",
            flip(&good, 1),
            TokenRejection::BadSignature,
        ),
        (
            "signature byte changed",
            flip(&good, 2),
            TokenRejection::BadSignature,
        ),
        ("expired", expired, TokenRejection::Expired),
        ("nbf in the future", future, TokenRejection::NotYetValid),
        ("wrong issuer", wrong_issuer, TokenRejection::WrongIssuer),
        (
            "wrong audience",
            wrong_audience,
            TokenRejection::WrongAudience,
        ),
        (
            "another deployment's key",
            foreign,
            TokenRejection::UnknownKey,
        ),
        ("not a JWT", "abc.def".into(), TokenRejection::Malformed),
    ]
}

#[tokio::test]
async fn introspection_and_the_authorizer_reject_every_tampered_token_with_its_reason() {
    let f = Fixture::new().await;
    let authorizer = f.authorizer(Duration::ZERO);
    for (case, token, reason) in tamper_matrix(&f).await {
        let body = f.introspect(&token).await;
        assert_eq!(
            body,
            json!({"active": false, "reason": reason.to_string()}),
            "{case}"
        );
        let denied = authorizer
            .authorize(
                "GET /chat/threads",
                Some(&format!("Bearer {token}")),
                Utc::now(),
            )
            .await;
        assert_eq!(denied, Err(Denial::Token(reason)), "{case}");
    }
    // The untampered token passes both.
    let good = f.token(&["chat"]).await;
    assert_eq!(f.introspect(&good).await["active"], true);
    assert!(
        authorizer
            .authorize(
                "GET /chat/threads",
                Some(&format!("Bearer {good}")),
                Utc::now()
            )
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn revoked_and_deleted_identities_through_introspection_and_the_authorizer() {
    let f = Fixture::new().await;
    // As configured by default: issue → revoke → issue counts at once there too.
    let authorizer = callsign::app::authorizer_for(&f.t.app.service, &f.t.config.authorizer);
    let bearer = |t: &str| format!("Bearer {t}");
    let route = "GET /chat/threads";
    let before = f.token(&["chat"]).await;
    assert!(
        authorizer
            .authorize(route, Some(&bearer(&before)), Utc::now())
            .await
            .is_ok(),
        "allowed before the revoke"
    );
    let active = f.introspect(&before).await;
    assert_eq!(active["active"], true);
    assert_eq!(active["sub"], f.id.as_str());
    assert_eq!(active["scope"], "chat");
    assert!(active["kid"].is_string() && active["exp"].is_i64() && active["iat"].is_i64());

    let (s, _) =
        f.t.call(
            Method::POST,
            &format!("/identities/{}/:revokeAccessTokens?{V}", encoded(&f.id)),
            "",
        )
        .await;
    assert_eq!(s, 204);
    let after = f.token(&["chat"]).await;
    assert_eq!(
        f.introspect(&before).await,
        json!({"active": false, "reason": "revoked"})
    );
    assert_eq!(
        f.introspect(&after).await["active"],
        true,
        "issued right after the revoke"
    );
    assert_eq!(
        authorizer
            .authorize(route, Some(&bearer(&before)), Utc::now())
            .await,
        Err(Denial::Token(TokenRejection::Revoked))
    );
    assert!(
        authorizer
            .authorize(route, Some(&bearer(&after)), Utc::now())
            .await
            .is_ok()
    );

    let (s, _) =
        f.t.call(
            Method::DELETE,
            &format!("/identities/{}?{V}", encoded(&f.id)),
            "",
        )
        .await;
    assert_eq!(s, 204);
    assert_eq!(
        f.introspect(&after).await,
        json!({"active": false, "reason": "identity_deleted"})
    );
    assert_eq!(
        authorizer
            .authorize(route, Some(&bearer(&after)), Utc::now())
            .await,
        Err(Denial::Token(TokenRejection::IdentityDeleted))
    );
}

#[tokio::test]
async fn the_authorizer_trusts_a_revocation_marker_for_at_most_its_cache_age() {
    let f = Fixture::new().await;
    let cached = f.authorizer(Duration::from_secs(3600));
    let token = f.token(&["chat"]).await;
    let bearer = format!("Bearer {token}");
    assert!(
        cached
            .authorize("GET /chat/threads", Some(&bearer), Utc::now())
            .await
            .is_ok()
    );
    f.t.call(
        Method::POST,
        &format!("/identities/{}/:revokeAccessTokens?{V}", encoded(&f.id)),
        "",
    )
    .await;
    // Within the bound the cached marker still admits the token: this is the documented delay.
    assert!(
        cached
            .authorize("GET /chat/threads", Some(&bearer), Utc::now())
            .await
            .is_ok()
    );
    // A token issued after the revoke proves the cached marker stale: it passes, and the
    // refreshed marker now stops the old token at once.
    let newer = f.token(&["chat"]).await;
    let newer_bearer = format!("Bearer {newer}");
    assert!(
        cached
            .authorize("GET /chat/threads", Some(&newer_bearer), Utc::now())
            .await
            .is_ok()
    );
    assert_eq!(
        cached
            .authorize("GET /chat/threads", Some(&bearer), Utc::now())
            .await,
        Err(Denial::Token(TokenRejection::Revoked))
    );

    // Without a newer token, a cache sees the revoke once its entry ages out.
    let short = f.authorizer(Duration::from_millis(100));
    assert!(
        short
            .authorize("GET /chat/threads", Some(&newer_bearer), Utc::now())
            .await
            .is_ok()
    );
    f.t.call(
        Method::POST,
        &format!("/identities/{}/:revokeAccessTokens?{V}", encoded(&f.id)),
        "",
    )
    .await;
    assert!(
        short
            .authorize("GET /chat/threads", Some(&newer_bearer), Utc::now())
            .await
            .is_ok(),
        "within the bound"
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        short
            .authorize("GET /chat/threads", Some(&newer_bearer), Utc::now())
            .await,
        Err(Denial::Token(TokenRejection::Revoked))
    );
}

#[tokio::test]
async fn the_authorizer_enforces_every_cell_of_the_capability_table() {
    let f = Fixture::new().await;
    let authorizer = f.authorizer(Duration::from_secs(30));
    let policy = RoutePolicy::default_routes();
    for scope in Scope::ALL {
        let token = f.token(&[scope.as_str()]).await;
        for capability in Capability::ALL {
            let expected = capability.granted_by().contains(&scope);
            let routes: Vec<&str> = policy
                .routes()
                .filter(|(_, c)| *c == capability)
                .map(|(r, _)| r)
                .collect();
            assert!(!routes.is_empty(), "no route needs {}", capability.as_str());
            for route in routes {
                let decision = authorizer
                    .authorize(route, Some(&format!("Bearer {token}")), Utc::now())
                    .await;
                match decision {
                    Ok(allowed) => {
                        assert!(expected, "{scope} was allowed {route}");
                        assert_eq!(allowed.identity.as_str(), f.id);
                        assert_eq!(allowed.scopes, scope.as_str());
                        assert_eq!(allowed.capability, capability);
                    }
                    Err(denial) => {
                        assert!(!expected, "{scope} was denied {route}: {denial:?}");
                        assert_eq!(denial, Denial::ScopeTooNarrow);
                    }
                }
            }
        }
    }
    let token = f.token(&["chat", "voip"]).await;
    let bearer = format!("Bearer {token}");
    assert_eq!(
        authorizer
            .authorize("GET /admin/secrets", Some(&bearer), Utc::now())
            .await,
        Err(Denial::UnknownRoute)
    );
    assert_eq!(
        authorizer.authorize("POST /calls", None, Utc::now()).await,
        Err(Denial::MissingToken)
    );
    assert_eq!(
        authorizer
            .authorize("POST /calls", Some(&format!("Basic {token}")), Utc::now())
            .await,
        Err(Denial::MissingToken)
    );
}

#[tokio::test]
async fn jwks_is_public_cacheable_and_lists_current_and_previous_keys() {
    let t = memory_app().await;
    let request = |etag: Option<&str>| {
        let mut request = callsign::http::ApiRequest::signed(
            &t.key,
            Method::GET,
            "/.well-known/jwks.json",
            HOST,
            "",
        )
        .unwrap();
        request.headers.remove("authorization"); // public: no signature needed
        if let Some(etag) = etag {
            request
                .headers
                .insert("if-none-match", etag.parse().unwrap());
        }
        request
    };
    let response = t.send(request(None)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "public, max-age=300");
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let jwks: Value = serde_json::from_slice(response.body()).unwrap();
    let keys = PublicKeys::from_jwks(&jwks.to_string()).unwrap();
    let current = t.app.service.keys().signing_keys().unwrap();
    assert!(keys.find(current.current.kid()).is_some());
    assert_eq!(jwks["keys"][0]["use"], "sig");
    assert_eq!(jwks["keys"][0]["alg"], "ES256");
    assert_eq!(jwks["keys"][0]["kty"], "EC");
    assert!(
        jwks["keys"][0].get("d").is_none(),
        "no private part is published"
    );

    let unchanged = t.send(request(Some(&etag))).await;
    assert_eq!(unchanged.status(), 304);
    assert!(unchanged.body().is_empty());
    assert_eq!(t.send(request(Some("\"stale\""))).await.status(), 200);
    assert_eq!(
        t.send(request(Some(&format!("W/{etag}")))).await.status(),
        304,
        "weak comparison"
    );
    let mut head = request(None);
    head.method = Method::HEAD;
    let head = t.send(head).await;
    assert_eq!(head.status(), 200);
    assert!(head.body().is_empty());
    let length = serde_json::to_vec(&jwks).unwrap().len().to_string();
    assert_eq!(head.headers()["content-length"], length.as_str());

    let mut discovery = callsign::http::ApiRequest::signed(
        &t.key,
        Method::GET,
        "/.well-known/openid-configuration",
        HOST,
        "",
    )
    .unwrap();
    discovery
        .headers
        .insert("x-forwarded-proto", "http".parse().unwrap());
    let (status, body) = split(t.send(discovery).await);
    assert_eq!(status, 200);
    assert_eq!(
        body["jwks_uri"],
        format!("http://{HOST}/.well-known/jwks.json")
    );
    assert_eq!(body["issuer"], t.config.token.issuer);
    assert_eq!(body["response_types_supported"], json!(["token"]));
    assert_eq!(body["subject_types_supported"], json!(["public"]));
}

#[tokio::test]
async fn introspection_needs_hmac_and_a_token() {
    let f = Fixture::new().await;
    let stranger = callsign::domain::access_keys::generate_key();
    let (s, b) = split(
        f.t.send(signed(
            &stranger,
            Method::POST,
            &format!("/tokens/:introspect?{V}"),
            "{\"token\":\"x\"}",
        ))
        .await,
    );
    assert_eq!((s, b["error"]["code"].as_str()), (401, Some("Denied")));
    let (s, b) =
        f.t.call(Method::POST, &format!("/tokens/:introspect?{V}"), "{}")
            .await;
    assert_eq!((s, b["error"]["target"].as_str()), (400, Some("token")));
    // RFC 7662's form encoding works too.
    let token = f.token(&["voip"]).await;
    let mut form = signed(
        &f.t.key,
        Method::POST,
        &format!("/tokens/:introspect?{V}"),
        &format!("token={token}"),
    );
    form.headers.insert(
        "content-type",
        "application/x-www-form-urlencoded".parse().unwrap(),
    );
    let (s, b) = split(f.t.send(form).await);
    assert_eq!(
        (s, b["active"].as_bool(), b["scope"].as_str()),
        (200, Some(true), Some("voip"))
    );
}

/// A JWKS endpoint the test controls, counting its requests.
async fn jwks_server(document: Arc<Mutex<String>>, hits: Arc<AtomicUsize>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (document, hits) = (document.clone(), hits.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_request| {
                    hits.fetch_add(1, Ordering::SeqCst);
                    let body = document.lock().unwrap().clone();
                    async move {
                        Ok::<_, Infallible>(hyper::Response::new(http_body_util::Full::new(
                            bytes::Bytes::from(body),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    url
}

#[tokio::test]
async fn the_embeddable_verifier_follows_a_rotation_through_the_jwks_url() {
    let mut settings = config().token;
    settings.key_activation_seconds = 0; // the issuer signs with a new key at once
    let first = StoredKeySet::generate(SigningAlgorithm::Es256).unwrap();
    let first_keys = KeySet::from_secret(&first.to_secret()).unwrap();
    let document = Arc::new(Mutex::new(first_keys.public_keys().to_jwks().to_string()));
    let hits = Arc::new(AtomicUsize::new(0));
    let url = jwks_server(document.clone(), hits.clone()).await;

    let keys = JwksKeys::fetch(&url, Duration::from_secs(3600), Duration::from_secs(3600))
        .await
        .unwrap();
    let verifier = Verifier::new(settings.expectations(0), Arc::new(keys));
    let id = IdentityId::new(settings.resource_id);
    let old_token = token::issue(
        &settings,
        &first_keys,
        &id,
        chat(),
        0,
        &token::IssuedBy::Guest,
        Utc::now(),
    )
    .unwrap()
    .token;
    let verified = verifier.verify(&old_token, Utc::now()).await.unwrap();
    assert_eq!(verified.identity, id);
    assert!(verified.scopes.grants(Capability::ManageChatThread));
    assert!(matches!(
        verifier
            .authorize(&old_token, Capability::StartCall, Utc::now())
            .await,
        Ok(None)
    ));

    // Rotation: the issuer signs with a new key (RS256 now) and publishes both.
    let rotated =
        KeySet::from_secret(&first.rotated(SigningAlgorithm::Rs256).unwrap().to_secret()).unwrap();
    *document.lock().unwrap() = rotated.public_keys().to_jwks().to_string();
    let new_token = token::issue(
        &settings,
        &rotated,
        &id,
        chat(),
        0,
        &token::IssuedBy::Guest,
        Utc::now(),
    )
    .unwrap()
    .token;
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert!(
        verifier.verify(&new_token, Utc::now()).await.is_ok(),
        "an unknown kid triggers one fetch"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    assert!(
        verifier.verify(&old_token, Utc::now()).await.is_ok(),
        "the previous key still verifies"
    );

    // Unknown kids do not make the verifier hammer the endpoint.
    let stranger = KeySet::from_secret(
        &StoredKeySet::generate(SigningAlgorithm::EdDsa)
            .unwrap()
            .to_secret(),
    )
    .unwrap();
    let strange = token::issue(
        &settings,
        &stranger,
        &id,
        chat(),
        0,
        &token::IssuedBy::Guest,
        Utc::now(),
    )
    .unwrap()
    .token;
    for _ in 0..3 {
        assert_eq!(
            verifier.verify(&strange, Utc::now()).await.unwrap_err(),
            TokenRejection::UnknownKey
        );
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        2,
        "at most one forced fetch per interval"
    );
}

#[tokio::test]
async fn a_jwks_with_symmetric_or_mislabelled_keys_verifies_nothing_with_them() {
    let keys = PublicKeys::from_jwks(
        &json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "sym", "alg": "HS256"},
            {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "kid": "liar", "alg": "RS256"},
            {"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "enc", "alg": "RS256", "use": "enc"}
        ]})
        .to_string(),
    )
    .unwrap();
    assert_eq!(keys.iter().count(), 0);
    assert!(PublicKeys::from_jwks("{}").is_err());
}

#[tokio::test]
async fn identity_records_of_expired_guests_count_as_deleted_for_verification() {
    let f = Fixture::new().await;
    let id = IdentityId::new(f.settings().resource_id);
    let mut guest = Identity::new_stable(id.clone(), None, callsign::domain::time::now());
    guest.kind = callsign::domain::identity::IdentityKind::Ephemeral {
        expires_at: Utc::now() + Span::seconds(1),
    };
    use callsign::domain::ports::IdentityStore;
    f.t.store.create(guest).await.unwrap();
    let token = token::issue(
        &f.settings(),
        &f.keys(),
        &id,
        chat(),
        0,
        &token::IssuedBy::Guest,
        Utc::now(),
    )
    .unwrap()
    .token;
    assert_eq!(f.introspect(&token).await["active"], true);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(f.introspect(&token).await["reason"], "identity_deleted");
}
