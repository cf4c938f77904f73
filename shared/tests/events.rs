//! Every sample event in events/ goes through its function's handler, as Lambda would
//! deliver it (lambda_http's own event parsing), and gets the expected status.

mod common;

use std::path::Path;

use callsign::api::Operation;
use callsign::identity::{CustomId, Identity, IdentityId};
use callsign::lambda;
use callsign::store::IdentityStore;
use chrono::Utc;

/// The identity the events name: the store is seeded with it (and its customId).
const SEEDED_ID: &str =
    "8:acs:2dee53b4-368b-45b4-ab52-8493fb117652_00000005-14a2-493b-8a72-5a3a0d000081";

const CASES: &[(&str, &[Operation], u16)] = &[
    ("identities-create.json", Operation::IDENTITIES, 201),
    (
        "identities-create-with-token.json",
        Operation::IDENTITIES,
        201,
    ),
    (
        "identities-create-custom-id.json",
        Operation::IDENTITIES,
        201,
    ),
    ("identities-get.json", Operation::IDENTITIES, 200),
    ("identities-delete.json", Operation::IDENTITIES, 204),
    ("issue-token.json", Operation::ISSUE_TOKEN, 200),
    ("revoke-tokens.json", Operation::REVOKE_TOKENS, 204),
    ("custom-id-lookup.json", Operation::CUSTOM_ID_LOOKUP, 200),
    ("jwks.json", Operation::JWKS, 200),
    ("openid-configuration.json", Operation::JWKS, 200),
    ("introspect.json", Operation::INTROSPECT, 200),
];

/// Events of the non-HTTP functions, exercised by their own tests: the authorizer's here,
/// the rotation steps' against moto in tests/rotation.rs.
const OTHER_EVENTS: &[&str] = &[
    "authorizer-allowed.json",
    "authorizer-denied.json",
    "rotation-create-secret.json",
    "rotation-set-secret.json",
    "rotation-test-secret.json",
    "rotation-finish-secret.json",
];

fn events_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../events"))
}

#[tokio::test]
async fn every_event_file_is_covered() {
    let mut files: Vec<String> = std::fs::read_dir(events_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".json"))
        .collect();
    files.sort();
    let mut covered: Vec<String> = CASES
        .iter()
        .map(|(file, _, _)| file.to_string())
        .chain(OTHER_EVENTS.iter().map(|file| file.to_string()))
        .collect();
    covered.sort();
    assert_eq!(files, covered);
}

#[tokio::test]
async fn each_event_gets_its_status_from_its_function() {
    for (file, operations, status) in CASES {
        let t = common::memory_app().await;
        let seeded = Identity::new_stable(
            IdentityId::parse(SEEDED_ID).unwrap(),
            Some(CustomId::parse("alice@contoso.com").unwrap()),
            Utc::now(),
        );
        t.store.create(seeded).await.unwrap();

        let raw = std::fs::read_to_string(events_dir().join(file)).unwrap();
        let mut event: serde_json::Value = serde_json::from_str(&raw).unwrap();
        // As committed (unsigned: no key is committed) only public routes answer.
        let public = operations.iter().all(|op| !op.is_admin());
        let unsigned = lambda_http::request::from_str(&raw).unwrap();
        let unsigned_status = lambda::handle(&t.app, operations, unsigned).await.status();
        assert_eq!(
            unsigned_status,
            if public { *status } else { 401 },
            "{file}"
        );

        lambda::sign_event(&mut event, &t.key, Utc::now()).unwrap();
        let request = lambda_http::request::from_str(&event.to_string()).unwrap();
        let response = lambda::handle(&t.app, operations, request).await;
        assert_eq!(
            response.status().as_u16(),
            *status,
            "{file}: {:?}",
            response.body()
        );
        if !public {
            assert_eq!(
                response.headers()["x-ms-client-request-id"],
                "3f1c2a4e-8d1b-4c5e-9a7f-0b1c2d3e4f50",
                "{file}"
            );
        }
    }
}

#[tokio::test]
async fn an_encoded_raw_path_reaches_the_same_identity() {
    let t = common::memory_app().await;
    t.store
        .create(Identity::new_stable(
            IdentityId::parse(SEEDED_ID).unwrap(),
            None,
            Utc::now(),
        ))
        .await
        .unwrap();
    let raw = std::fs::read_to_string(events_dir().join("issue-token.json")).unwrap();
    let mut event: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let encoded = event["rawPath"]
        .as_str()
        .unwrap()
        .replace("8:acs:", "8%3Aacs%3A");
    event["rawPath"] = encoded.into();
    lambda::sign_event(&mut event, &t.key, Utc::now()).unwrap();
    let request = lambda_http::request::from_str(&event.to_string()).unwrap();
    assert_eq!(
        lambda::handle(&t.app, Operation::ISSUE_TOKEN, request)
            .await
            .status(),
        200
    );
}

/// The authorizer events, with a fresh `chat.join` token in place of the placeholder:
/// posting a message is allowed, creating a thread is not.
#[tokio::test]
async fn the_authorizer_events_are_allowed_and_denied() {
    use aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request;
    use callsign::authorizer::{Authorizer, RevocationCache};
    use callsign::capability::RoutePolicy;

    let t = common::memory_app().await;
    let created = t.create(r#"{"createTokenWithScopes":["chat.join"]}"#).await;
    let token = created["accessToken"]["token"].as_str().unwrap();
    let service = &t.app.service;
    let authorizer = Authorizer::new(
        service.verifier(),
        RoutePolicy::default_routes(),
        RevocationCache::new(service.store(), std::time::Duration::from_secs(30), 100),
    );
    for (file, allowed) in [
        ("authorizer-allowed.json", true),
        ("authorizer-denied.json", false),
    ] {
        let committed = std::fs::read_to_string(events_dir().join(file)).unwrap();
        let raw = committed.replace("<a callsign access token>", token);
        let event: ApiGatewayV2CustomAuthorizerV2Request = serde_json::from_str(&raw).unwrap();
        let response = lambda::authorize_event(&authorizer, &event).await;
        assert_eq!(response.is_authorized, allowed, "{file}");
        if allowed {
            assert_eq!(response.context["identityId"], created["identity"]["id"]);
            assert_eq!(response.context["scopes"], "chat.join");
            assert_eq!(response.context["capability"], "chat.participate");
        }
        if !allowed {
            // Denied for the right reason: the scope, not a broken route or event.
            let route = event.route_key.as_deref().unwrap();
            let decision = authorizer
                .authorize(route, Some(&format!("Bearer {token}")), chrono::Utc::now())
                .await;
            assert_eq!(decision, Err(callsign::authorizer::Denial::ScopeTooNarrow));
        }
        // As committed, with the placeholder instead of a token: denied.
        let event: ApiGatewayV2CustomAuthorizerV2Request =
            serde_json::from_str(&committed).unwrap();
        assert!(
            !lambda::authorize_event(&authorizer, &event)
                .await
                .is_authorized,
            "{file}"
        );
    }
}
