//! The admin API end to end on the in-memory store: wire compatibility, validation and
//! the ACS error envelope, authentication, routing.

mod common;

use std::sync::Arc;

use callsign::domain::token::{self, TokenRejection};
use callsign::http::admin_auth::SUPPORTED_API_VERSIONS;
use callsign::http::{self as api, Function, Served};
use callsign::{CustomId, IdentityId};
use chrono::{DateTime, Utc};
use common::*;
use http::{HeaderValue, Method};
use serde_json::{Value, json};

const V: &str = "api-version=2023-10-01";
const PREVIEW: &str = "api-version=2025-03-02-preview";

fn assert_error(status: u16, body: &Value, want_status: u16, code: &str, target: Option<&str>) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    match target {
        Some(target) => assert_eq!(body["error"]["target"], target, "{body}"),
        None => assert!(body["error"].get("target").is_none(), "{body}"),
    }
}

fn expires_on(body: &Value) -> i64 {
    DateTime::parse_from_rfc3339(body["expiresOn"].as_str().unwrap())
        .unwrap()
        .timestamp()
}

#[tokio::test]
async fn create_with_empty_or_null_body_makes_an_identity_of_our_resource() {
    let t = memory_app().await;
    for body in ["", "null", "{}", "{\"createTokenWithScopes\":null}"] {
        let created = t.create(body).await;
        let id = created["identity"]["id"].as_str().unwrap();
        assert!(id.starts_with(&format!("8:acs:{RESOURCE}_")), "{id}");
        assert!(created.get("accessToken").is_none());
        let (status, got) = t
            .call(
                Method::GET,
                &format!("/identities/{}?{PREVIEW}", encoded(id)),
                "",
            )
            .await;
        assert_eq!((status, got["id"].as_str()), (200, Some(id)));
    }
}

#[tokio::test]
async fn create_with_token_returns_expires_on_equal_to_exp() {
    let t = memory_app().await;
    let before = Utc::now().timestamp();
    let created = t
        .create(r#"{"createTokenWithScopes":["chat","voip"],"expiresInMinutes":60}"#)
        .await;
    let token = &created["accessToken"];
    let exp = common::claims(token["token"].as_str().unwrap())["exp"]
        .as_i64()
        .unwrap();
    assert_eq!(expires_on(token), exp);
    assert!((before + 3600..=Utc::now().timestamp() + 3600).contains(&exp));
    assert!(token["expiresOn"].as_str().unwrap().ends_with("+00:00"));
    let claims = common::claims(token["token"].as_str().unwrap());
    assert_eq!(claims["acsScope"], "chat,voip");
    assert_eq!(claims["sub"], created["identity"]["id"]);
    // 2023-10-01's identity object is its id alone (no customId was asked for), as ACS
    // answers it.
    assert_eq!(
        created["identity"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["id"]
    );
    // The customId previews add when its last token was issued.
    let body = r#"{"createTokenWithScopes":["chat"]}"#;
    let (status, previewed) = t
        .call(Method::POST, &format!("/identities?{PREVIEW}"), body)
        .await;
    assert_eq!(status, 201, "{previewed}");
    assert!(previewed["identity"]["lastTokenIssuedAt"].is_string());
}

#[tokio::test]
async fn issue_token_defaults_to_24_hours_and_collapses_duplicate_scopes() {
    let t = memory_app().await;
    let id = t.create_id().await;
    let path = format!("/identities/{}/:issueAccessToken?{V}", encoded(&id));
    let (status, body) = t
        .call(
            Method::POST,
            &path,
            r#"{"scopes":["voip.join","chat.join.limited","voip.join"]}"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let claims = common::claims(body["token"].as_str().unwrap());
    assert_eq!(claims["acsScope"], "chat.join.limited,voip.join");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        1440 * 60
    );
    assert_eq!(expires_on(&body), claims["exp"].as_i64().unwrap());
    for minutes in [60, 1440] {
        let (status, body) = t
            .call(
                Method::POST,
                &path,
                &format!(r#"{{"scopes":["chat"],"expiresInMinutes":{minutes}}}"#),
            )
            .await;
        assert_eq!(status, 200);
        let claims = self::claims(body["token"].as_str().unwrap());
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            minutes * 60
        );
    }
}

#[tokio::test]
async fn validation_errors_use_the_acs_codes_messages_and_targets() {
    let t = memory_app().await;
    let id = t.create_id().await;
    let issue = format!("/identities/{}/:issueAccessToken?{V}", encoded(&id));

    let (s, b) = t
        .call(
            Method::POST,
            &issue,
            r#"{"scopes":["chat"],"expiresInMinutes":1441}"#,
        )
        .await;
    assert_error(s, &b, 400, "ValidationError", Some("ExpiresInMinutes"));
    assert_eq!(
        b["error"]["message"],
        "ExpiresInMinutes value 1441 is invalid. Value must be within the [60, 1440] interval."
    );
    let (s, b) = t
        .call(
            Method::POST,
            &issue,
            r#"{"scopes":["chat"],"expiresInMinutes":30}"#,
        )
        .await;
    assert_error(s, &b, 400, "ValidationError", Some("ExpiresInMinutes"));
    let (s, b) = t
        .call(
            Method::POST,
            &issue,
            r#"{"scopes":["chat"],"expiresInMinutes":"60"}"#,
        )
        .await;
    assert_error(s, &b, 400, "ValidationError", Some("ExpiresInMinutes"));
    let (s, b) = t.call(Method::POST, &issue, r#"{"scopes":[]}"#).await;
    assert_error(s, &b, 400, "ValidationError", Some("scopes"));
    assert_eq!(
        b["error"]["message"],
        "Invalid scopes - Scopes field is required."
    );
    for missing in ["", "{}", r#"{"scopes":null}"#] {
        let (s, b) = t.call(Method::POST, &issue, missing).await;
        assert_error(s, &b, 400, "ValidationError", Some("Scopes"));
        assert_eq!(
            b["error"]["message"],
            "Scopes: The Scopes field is required."
        );
    }
    let (s, b) = t
        .call(Method::POST, &issue, r#"{"scopes":["chat","admin"]}"#)
        .await;
    assert_error(s, &b, 400, "ValidationError", Some("scopes"));
    let (s, b) = t.call(Method::POST, &issue, r#"{"scopes":"chat"}"#).await;
    assert_error(s, &b, 400, "ValidationError", Some("scopes"));
    let (s, b) = t.call(Method::POST, &issue, r#"{"scopes":["chat"]"#).await;
    assert_error(s, &b, 400, "InvalidRequestBody", None);
    let (s, b) = t.call(Method::POST, &issue, "[1]").await;
    assert_error(s, &b, 400, "InvalidRequestBody", None);
    // Neither a body of the right fields in an array, nor a well-formed body beside a
    // field that is not valid JSON, is taken (the typed read must not be laxer).
    for invalid in [
        r#"[["chat"],60]"#,
        r#"{"scopes":["chat"],"x":1e999}"#,
        r#"{"scopes":["chat"],"x":"\ud800"}"#,
    ] {
        let (s, b) = t.call(Method::POST, &issue, invalid).await;
        assert_error(s, &b, 400, "InvalidRequestBody", None);
    }

    let create = format!("/identities?{PREVIEW}");
    let (s, b) = t
        .call(Method::POST, &create, r#"{"createTokenWithScopes":[]}"#)
        .await;
    assert_error(s, &b, 400, "ValidationError", Some("scopes"));
    let (s, b) = t
        .call(
            Method::POST,
            &create,
            r#"{"createTokenWithScopes":["bogus"]}"#,
        )
        .await;
    assert_error(s, &b, 400, "ValidationError", Some("scopes"));
    let (s, b) = t
        .call(
            Method::POST,
            &create,
            r#"{"createTokenWithScopes":["chat"],"expiresInMinutes":1500}"#,
        )
        .await;
    assert_error(s, &b, 400, "ValidationError", Some("ExpiresInMinutes"));
    for custom_id in [json!(""), json!("a".repeat(257)), json!(42)] {
        let (s, b) = t
            .call(
                Method::POST,
                &create,
                &json!({ "customId": custom_id }).to_string(),
            )
            .await;
        assert_error(s, &b, 400, "ValidationError", Some("customId"));
    }
}

#[tokio::test]
async fn rejected_requests_change_nothing() {
    let t = memory_app().await;
    let create = format!("/identities?{PREVIEW}");
    let body = r#"{"customId":"bob","createTokenWithScopes":["chat"],"expiresInMinutes":10}"#;
    let (s, _) = t.call(Method::POST, &create, body).await;
    assert_eq!(s, 400);
    let (s, b) = t
        .call(Method::GET, &format!("/customIds/bob?{PREVIEW}"), "")
        .await;
    assert_error(s, &b, 404, "IdentityNotFound", None);

    let id = t.create_id().await;
    let issue = format!("/identities/{}/:issueAccessToken?{V}", encoded(&id));
    let (s, _) = t.call(Method::POST, &issue, r#"{"scopes":["nope"]}"#).await;
    assert_eq!(s, 400);
    let (_, got) = t
        .call(
            Method::GET,
            &format!("/identities/{}?{PREVIEW}", encoded(&id)),
            "",
        )
        .await;
    assert!(
        got.get("lastTokenIssuedAt").is_none(),
        "a refused issue recorded a token: {got}"
    );
}

#[tokio::test]
async fn ids_of_other_resources_malformed_ids_and_unknown_ids() {
    let t = memory_app().await;
    // The ACS id shape is `8:acs:<resource GUID>_<suffix>`; a suffix that is no GUID (as
    // none issued here is) is still an id: whose resource decides 401 or 404.
    let other = "11111111-2222-3333-4444-555555555555";
    let foreign = vec![
        format!("8:acs:{other}_00000005-14a2-493b-8a72-5a3a0d000081"),
        format!("8:acs:{other}_abc"),
    ];
    let unknown = vec![
        format!("8:acs:{RESOURCE}_00000005-14a2-493b-8a72-5a3a0d000081"),
        format!("8:acs:{RESOURCE}_nonexistent"),
    ];
    let malformed = vec![
        "not-an-id".to_owned(),
        "8:acs:not-a-guid_abc".to_owned(),
        format!("8:acs:{RESOURCE}_a b"),
        format!("8:acs:{RESOURCE}_"),
        format!("8:acs:{RESOURCE}"),
    ];
    let not_owned = "Provided identity doesn't belong to the resource.";
    let not_found = "Provided identity doesn't exist.";
    let expected = [
        (foreign, 401, "IdentityNotOwned", None, Some(not_owned)),
        (unknown, 404, "IdentityNotFound", None, Some(not_found)),
        (malformed, 400, "ValidationError", Some("id"), None),
    ];
    let body = r#"{"scopes":["chat"]}"#;
    for (method, suffix, body) in [
        (Method::POST, "/:issueAccessToken", body),
        (Method::POST, "/:revokeAccessTokens", ""),
        (Method::DELETE, "", ""),
        (Method::GET, "", ""),
    ] {
        for (ids, status, code, target, message) in &expected {
            for id in ids {
                let path = format!("/identities/{}{suffix}?{PREVIEW}", encoded(id));
                let (s, b) = t.call(method.clone(), &path, body).await;
                assert_error(s, &b, *status, code, *target);
                if let Some(message) = message {
                    assert_eq!(b["error"]["message"], *message, "{method} {id}");
                }
            }
        }
    }
}

#[tokio::test]
async fn revoke_then_delete_lifecycle_and_what_a_verifier_sees() {
    let t = memory_app().await;
    let id = t.create_id().await;
    let issue = format!("/identities/{}/:issueAccessToken?{V}", encoded(&id));
    let body = r#"{"scopes":["chat"],"expiresInMinutes":60}"#;
    let (_, first) = t.call(Method::POST, &issue, body).await;
    let (s, b) = t
        .call(
            Method::POST,
            &format!("/identities/{}/:revokeAccessTokens?{V}", encoded(&id)),
            "",
        )
        .await;
    assert_eq!((s, b), (204, Value::Null));
    let (_, second) = t.call(Method::POST, &issue, body).await;

    let keys = t.app.service.keys().signing_keys().unwrap();
    let settings = &t.config.token;
    let identity_id = IdentityId::parse(&id).unwrap();
    let current = t.app.service.get(&identity_id).await.unwrap();
    let verify = |token: &Value| {
        token::verify(
            token["token"].as_str().unwrap(),
            &settings.expectations(0),
            keys.public_keys(),
            Utc::now(),
        )
        .unwrap()
    };
    assert_eq!(
        token::check_revocation(&verify(&first), Some(&current), None, Utc::now()),
        Err(TokenRejection::Revoked)
    );
    assert_eq!(
        token::check_revocation(&verify(&second), Some(&current), None, Utc::now()),
        Ok(())
    );

    let (s, _) = t
        .call(
            Method::DELETE,
            &format!("/identities/{}?{V}", encoded(&id)),
            "",
        )
        .await;
    assert_eq!(s, 204);
    let after_delete = t.app.service.get(&identity_id).await.ok();
    assert_eq!(
        token::check_revocation(&verify(&second), after_delete.as_ref(), None, Utc::now()),
        Err(TokenRejection::IdentityDeleted)
    );
    let (s, b) = t.call(Method::POST, &issue, body).await;
    assert_error(s, &b, 404, "IdentityNotFound", None);
    let (s, b) = t
        .call(
            Method::DELETE,
            &format!("/identities/{}?{V}", encoded(&id)),
            "",
        )
        .await;
    assert_error(s, &b, 404, "IdentityNotFound", None);
}

#[tokio::test]
async fn custom_id_returns_the_same_identity_until_deleted() {
    let t = memory_app().await;
    let create = format!("/identities?{PREVIEW}");
    let custom = "alice smith/ü@contoso.com";
    let body = json!({ "customId": custom }).to_string();
    let (s1, first) = t.call(Method::POST, &create, &body).await;
    let (s2, second) = t.call(Method::POST, &create, &body).await;
    assert_eq!((s1, s2), (201, 201));
    assert_eq!(first["identity"]["id"], second["identity"]["id"]);
    assert_eq!(first["identity"]["customId"], custom);

    let lookup = format!(
        "/customIds/{}?{PREVIEW}",
        percent_encoding::utf8_percent_encode(custom, percent_encoding::NON_ALPHANUMERIC)
    );
    let (s, found) = t.call(Method::GET, &lookup, "").await;
    assert_eq!((s, &found["id"]), (200, &first["identity"]["id"]));
    assert_eq!(found["customId"], custom);

    let with_token = json!({ "customId": custom, "createTokenWithScopes": ["chat"] }).to_string();
    let (s, again) = t.call(Method::POST, &create, &with_token).await;
    assert_eq!(
        (s, &again["identity"]["id"]),
        (201, &first["identity"]["id"])
    );
    assert!(again["accessToken"]["token"].is_string());
    assert!(again["identity"]["lastTokenIssuedAt"].is_string());

    let id = first["identity"]["id"].as_str().unwrap();
    let (s, _) = t
        .call(
            Method::DELETE,
            &format!("/identities/{}?{V}", encoded(id)),
            "",
        )
        .await;
    assert_eq!(s, 204);
    let (s, b) = t.call(Method::GET, &lookup, "").await;
    assert_error(s, &b, 404, "IdentityNotFound", None);
    let (_, fresh) = t.call(Method::POST, &create, &body).await;
    assert_ne!(fresh["identity"]["id"], first["identity"]["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_with_one_custom_id_yield_one_identity() {
    let t = Arc::new(memory_app().await);
    let body = json!({ "customId": "race" }).to_string();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (t, body) = (t.clone(), body.clone());
            tokio::spawn(async move {
                t.call(Method::POST, &format!("/identities?{PREVIEW}"), &body)
                    .await
            })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, 201);
        ids.insert(body["identity"]["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1);
    let mapped = t
        .app
        .service
        .find_by_custom_id(&CustomId::parse("race").unwrap())
        .await
        .unwrap();
    assert!(ids.contains(mapped.id.as_str()));
}

#[tokio::test]
async fn authentication_failures_are_401_denied_without_detail() {
    let t = memory_app().await;
    let path = format!("/identities?{V}");
    let stranger = callsign::domain::access_keys::generate_key();
    let mut requests = vec![signed(&stranger, Method::POST, &path, "")];
    let mut unsigned = signed(&t.key, Method::POST, &path, "");
    unsigned.headers.remove("authorization");
    requests.push(unsigned);
    let mut tampered = signed(&t.key, Method::POST, &path, "{}");
    tampered.body = bytes::Bytes::from_static(br#"{"customId":"x"}"#);
    requests.push(tampered);
    let mut stale = signed(&t.key, Method::POST, &path, "");
    stale.headers.insert(
        "x-ms-date",
        HeaderValue::from_static("Mon, 02 Jun 2025 10:00:00 GMT"),
    );
    requests.push(stale);
    let mut other_host = signed(&t.key, Method::POST, &path, "");
    other_host
        .headers
        .insert("host", HeaderValue::from_static("evil.example"));
    requests.push(other_host);
    for request in requests {
        let (s, b) = split(t.send(request).await);
        assert_error(s, &b, 401, "Denied", None);
        assert_eq!(b["error"]["message"], "Denied by the resource provider.");
    }
}

#[tokio::test]
async fn every_path_form_of_an_id_is_accepted() {
    let t = memory_app().await;
    let id = t.create_id().await;
    let body = r#"{"scopes":["chat"]}"#;
    // Literal colons on the wire.
    let (s, _) = t
        .call(
            Method::POST,
            &format!("/identities/{id}/:issueAccessToken?{V}"),
            body,
        )
        .await;
    assert_eq!(s, 200);
    // Signed encoded, delivered decoded (API Gateway HTTP API).
    let mut request = signed(
        &t.key,
        Method::POST,
        &format!("/identities/{}/:issueAccessToken?{V}", encoded(&id)),
        body,
    );
    request.path = format!("/identities/{id}/:issueAccessToken");
    assert_eq!(t.send(request).await.status(), 200);
}

#[tokio::test]
async fn api_versions_are_checked() {
    let t = memory_app().await;
    for version in SUPPORTED_API_VERSIONS {
        let (s, _) = t
            .call(
                Method::POST,
                &format!("/identities?api-version={version}"),
                "",
            )
            .await;
        assert_eq!(s, 201, "{version}");
    }
    let (s, b) = t
        .call(
            Method::POST,
            "/identities?API-Version=2025-03-02-PREVIEW",
            "",
        )
        .await;
    assert_eq!(s, 201, "the name and the version in any case: {b}");
    let (s, b) = t
        .call(Method::POST, "/identities?api-version=2020-01-01", "")
        .await;
    assert_error(s, &b, 400, "UnsupportedApiVersion", None);
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'2020-01-01'")
    );
    let (s, b) = t.call(Method::POST, "/identities", "").await;
    assert_error(s, &b, 400, "UnsupportedApiVersion", None);
}

#[tokio::test]
async fn client_request_id_is_echoed_on_success_and_error() {
    let t = memory_app().await;
    for (path, status) in [
        (format!("/identities?{V}"), 201),
        ("/identities?api-version=1".to_owned(), 400),
    ] {
        let mut request = signed(&t.key, Method::POST, &path, "");
        request.headers.insert(
            "x-ms-client-request-id",
            HeaderValue::from_static("7d2c5d1c-0000-4000-8000-000000000001"),
        );
        let response = t.send(request).await;
        assert_eq!(response.status(), status);
        assert_eq!(
            response.headers()["x-ms-client-request-id"],
            "7d2c5d1c-0000-4000-8000-000000000001"
        );
        assert_eq!(response.headers()["content-type"], "application/json");
    }
}

#[tokio::test]
async fn unknown_routes_wrong_methods_and_oversized_bodies() {
    let t = memory_app().await;
    // Unauthenticated callers learn nothing about routes.
    let stranger = callsign::domain::access_keys::generate_key();
    let (s, b) = split(
        t.send(signed(&stranger, Method::GET, &format!("/nothing?{V}"), ""))
            .await,
    );
    assert_error(s, &b, 401, "Denied", None);
    let (s, b) = t.call(Method::GET, &format!("/nothing?{V}"), "").await;
    assert_error(s, &b, 404, "NotFound", None);
    let response = t
        .send(signed(&t.key, Method::PUT, &format!("/identities?{V}"), ""))
        .await;
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    let big = format!(r#"{{"customId":"{}"}}"#, "a".repeat(api::MAX_BODY_BYTES));
    let (s, b) = t
        .call(Method::POST, &format!("/identities?{V}"), &big)
        .await;
    assert_error(s, &b, 413, "RequestBodyTooLarge", None);
}

#[tokio::test]
async fn each_function_serves_only_its_own_routes() {
    let t = memory_app().await;
    let request = signed(&t.key, Method::POST, &format!("/identities?{V}"), "");
    let response = api::handle(&t.app, Served::Function(Function::IssueToken), request).await;
    assert_eq!(response.status(), 404);
    let request = signed(&t.key, Method::POST, &format!("/identities?{V}"), "");
    assert_eq!(
        api::handle(&t.app, Served::Function(Function::Identities), request)
            .await
            .status(),
        201
    );
}

#[tokio::test]
async fn whole_number_floats_are_whole_numbers() {
    let t = memory_app().await;
    let id = t.create_id().await;
    let path = format!("/identities/{}/:issueAccessToken?{V}", encoded(&id));
    let (status, body) = t
        .call(
            Method::POST,
            &path,
            r#"{"scopes":["chat"],"expiresInMinutes":114.0}"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = t
        .call(
            Method::POST,
            &path,
            r#"{"scopes":["chat"],"expiresInMinutes":114.5}"#,
        )
        .await;
    assert_error(
        status,
        &body,
        400,
        "ValidationError",
        Some("ExpiresInMinutes"),
    );
}

#[tokio::test]
async fn wrong_methods_on_public_paths_are_405_without_credentials() {
    let t = memory_app().await;
    for path in ["/.well-known/jwks.json", "/guest/token"] {
        let request = callsign::http::ApiRequest {
            method: Method::PUT,
            path: path.into(),
            ..Default::default()
        };
        let response = t.send(request).await;
        assert_eq!(response.status(), 405, "{path}");
    }
}

/// The status of `method` on the identity a create answered with.
async fn status_on(t: &TestApp, method: Method, created: &Value) -> u16 {
    let path = format!("/identities/{}?{V}", encoded(&identity_id(created)));
    t.call(method, &path, "").await.0
}

/// The SDKs retry a create whose answer was lost with the same x-ms-client-request-id: it
/// answers with the first attempt's identity (and a fresh token), never a second one. The
/// same request id with another body, or once that identity is deleted, is not a retry:
/// a new identity, as ACS (which keys nothing on request ids) would make, and one that
/// its own retries find.
#[tokio::test]
async fn a_create_retried_with_its_request_id_returns_the_first_identity() {
    let t = memory_app().await;
    let create = |body: &str, request_id: Option<&str>| {
        let mut request = signed(&t.key, Method::POST, &format!("/identities?{V}"), body);
        if let Some(id) = request_id {
            request
                .headers
                .insert("x-ms-client-request-id", HeaderValue::from_str(id).unwrap());
        }
        request
    };
    let body = r#"{"createTokenWithScopes":["chat"]}"#;
    let (status, first) = split(t.send(create(body, Some("retry-1"))).await);
    assert_eq!(status, 201, "{first}");
    let (status, retried) = split(t.send(create(body, Some("retry-1"))).await);
    assert_eq!(status, 201, "{retried}");
    assert_eq!(identity_id(&retried), identity_id(&first));
    assert!(
        retried["accessToken"]["token"].is_string(),
        "the retry gets its token"
    );

    let voip = r#"{"createTokenWithScopes":["voip"]}"#;
    let (status, reused) = split(t.send(create(voip, Some("retry-1"))).await);
    assert_eq!(status, 201, "{reused}");
    assert_ne!(identity_id(&reused), identity_id(&first), "another body");
    let (_, reused_again) = split(t.send(create(voip, Some("retry-1"))).await);
    assert_eq!(
        identity_id(&reused_again),
        identity_id(&reused),
        "that request's retry finds its own identity"
    );
    assert_eq!(status_on(&t, Method::DELETE, &first).await, 204);
    let (status, after_delete) = split(t.send(create(body, Some("retry-1"))).await);
    assert_eq!(status, 201, "{after_delete}");
    assert_ne!(
        identity_id(&after_delete),
        identity_id(&first),
        "the first identity is gone"
    );
    assert_eq!(
        status_on(&t, Method::GET, &after_delete).await,
        200,
        "the new identity exists"
    );
    let (_, after_delete_again) = split(t.send(create(body, Some("retry-1"))).await);
    assert_eq!(
        identity_id(&after_delete_again),
        identity_id(&after_delete),
        "and a retry finds it"
    );

    let (_, other) = split(t.send(create(body, Some("retry-2"))).await);
    assert_ne!(
        identity_id(&other),
        identity_id(&first),
        "another request id, another identity"
    );
    let (_, plain_a) = split(t.send(create(body, None)).await);
    let (_, plain_b) = split(t.send(create(body, None)).await);
    assert_ne!(
        identity_id(&plain_a),
        identity_id(&plain_b),
        "without a request id, no replay"
    );
}

/// A table shared by two resource ids (a local server restarted with a fresh one, say):
/// a customId or a request the other resource holds is not answered with its identity,
/// nor a token for it, and that identity is left as it was.
#[tokio::test]
async fn a_custom_id_held_by_another_resource_is_not_answered() {
    use callsign::app::{self, Backends};
    use callsign::domain::access_keys::AccessKeys;
    let store = Arc::new(callsign::adapters::memory::MemoryStore::new());
    // One access key for both, so that a request id is the same caller's in each.
    let key = AccessKeys::generate().primary().to_owned();
    let on_shared_store = |resource: &'static str| {
        let (store, key) = (store.clone(), key.clone());
        async move {
            let config = callsign::Config::from_lookup(|name| {
                (name == "CALLSIGN_RESOURCE_ID").then(|| resource.to_owned())
            })
            .unwrap();
            let access = AccessKeys::new(&key, &key).unwrap();
            let backends = Backends::memory(&config, store, &access).unwrap();
            let app = app::assemble(&config, Served::All, backends, app::Trust::default())
                .await
                .unwrap();
            Arc::new(app)
        }
    };
    let ours = on_shared_store(RESOURCE).await;
    let theirs = on_shared_store(common::OTHER_RESOURCE).await;
    let call = |app: &Arc<api::App>, method: Method, path: String, body: &str| {
        let mut request = signed(&key, method, &path, body);
        request.headers.insert(
            "x-ms-client-request-id",
            HeaderValue::from_static("0d9b8c2e-3f1a-4b5c-8d7e-6f5a4b3c2d1e"),
        );
        let app = app.clone();
        async move { split(api::handle(&app, Served::All, request).await) }
    };
    let create = format!("/identities?{PREVIEW}");
    let with_custom_id = r#"{"customId":"shared-table","createTokenWithScopes":["chat"]}"#;
    let plain = r#"{"createTokenWithScopes":["chat"]}"#;
    let mut held = Vec::new();
    for body in [with_custom_id, plain] {
        let (status, answer) = call(&theirs, Method::POST, create.clone(), body).await;
        assert_eq!(status, 201, "{answer}");
        held.push(answer["identity"].clone());
    }
    // The customId (with and without a token), and the same request again.
    for body in [with_custom_id, r#"{"customId":"shared-table"}"#, plain] {
        let (status, answer) = call(&ours, Method::POST, create.clone(), body).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (401, Some("IdentityNotOwned")),
            "{body}: {answer}"
        );
    }
    let lookup = format!("/customIds/shared-table?{PREVIEW}");
    let (status, answer) = call(&ours, Method::GET, lookup, "").await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (401, Some("IdentityNotOwned"))
    );
    for before in held {
        let id = encoded(before["id"].as_str().unwrap());
        let (status, now) = call(
            &theirs,
            Method::GET,
            format!("/identities/{id}?{PREVIEW}"),
            "",
        )
        .await;
        assert_eq!(status, 200, "{now}");
        assert_eq!(
            now["lastTokenIssuedAt"], before["lastTokenIssuedAt"],
            "left as it was"
        );
    }
}
