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

/// Events of the non-HTTP functions and the end-user front, exercised by their own tests:
/// the authorizer's, the front's and cleanup's here, the rotation steps' against moto in
/// tests/rotation.rs.
const OTHER_EVENTS: &[&str] = &[
    "authorizer-allowed.json",
    "authorizer-denied.json",
    "user-token.json",
    "user-get.json",
    "user-delete.json",
    "guest-token.json",
    "cleanup-stream.json",
    "cleanup-schedule.json",
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

/// The front's events as the user-token function receives them behind API Gateway's JWT
/// authorizer (its verified claims in the request context).
#[tokio::test]
async fn the_front_events_sign_in_read_delete_and_serve_a_guest() {
    use callsign::api::front::FrontApp;
    use callsign::config::{FrontConfig, UserAuthConfig};
    use callsign::front::FrontPolicy;
    use callsign::store::memory::MemoryThrottle;

    let mut t = common::memory_app().await;
    let front = FrontApp::build(
        FrontConfig {
            policy: FrontPolicy::default(),
            users: UserAuthConfig::Gateway {
                issuer: "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Example".into(),
            },
            cors_origins: vec!["https://app.example".into()],
        },
        std::sync::Arc::new(MemoryThrottle::default()),
    )
    .await
    .unwrap();
    std::sync::Arc::get_mut(&mut t.app).unwrap().front = Some(front);
    let run = |file: &str| {
        let raw = std::fs::read_to_string(events_dir().join(file)).unwrap();
        lambda_http::request::from_str(&raw).unwrap()
    };
    for (file, status) in [
        ("user-token.json", 200),
        ("user-get.json", 200),
        ("user-delete.json", 204),
        ("user-get.json", 404),
        ("guest-token.json", 200),
    ] {
        let response = lambda::handle(&t.app, Operation::FRONT, run(file)).await;
        assert_eq!(
            response.status().as_u16(),
            status,
            "{file}: {:?}",
            response.body()
        );
        assert_eq!(
            response.headers()["access-control-allow-origin"],
            "https://app.example",
            "{file}"
        );
    }
}

/// Records what the consumer asks of the store, on top of the in-memory store.
struct Recording {
    inner: callsign::store::memory::MemoryStore,
    unmapped: std::sync::Mutex<Vec<(String, String)>>,
}

#[async_trait::async_trait]
impl callsign::store::Housekeeping for Recording {
    async fn unmap_custom_id(
        &self,
        custom_id: &CustomId,
        identity_id: &str,
    ) -> Result<(), callsign::store::StoreError> {
        self.unmapped
            .lock()
            .unwrap()
            .push((custom_id.as_str().to_owned(), identity_id.to_owned()));
        self.inner.unmap_custom_id(custom_id, identity_id).await
    }
    async fn identities_page(
        &self,
        cursor: Option<&str>,
        limit: i32,
    ) -> Result<(Vec<Identity>, Option<String>), callsign::store::StoreError> {
        self.inner.identities_page(cursor, limit).await
    }
    async fn purge(&self, identity: &Identity) -> Result<bool, callsign::store::StoreError> {
        self.inner.purge(identity).await
    }
    async fn sweep_cursor(&self) -> Result<Option<String>, callsign::store::StoreError> {
        self.inner.sweep_cursor().await
    }
    async fn save_sweep_cursor(
        &self,
        cursor: Option<&str>,
    ) -> Result<(), callsign::store::StoreError> {
        self.inner.save_sweep_cursor(cursor).await
    }
}

/// The stream record unmaps the customId its identity left behind; the schedule sweeps.
#[tokio::test]
async fn the_cleanup_events_unmap_and_sweep() {
    use callsign::cleanup::SweepPolicy;
    use callsign::store::Housekeeping;
    let store = Recording {
        inner: callsign::store::memory::MemoryStore::new(),
        unmapped: Default::default(),
    };
    let guest = Identity {
        kind: callsign::identity::IdentityKind::Ephemeral {
            expires_at: Utc::now() - chrono::Duration::minutes(1),
        },
        ..Identity::new_stable(
            IdentityId::new(IdentityId::parse(SEEDED_ID).unwrap().resource()),
            None,
            Utc::now(),
        )
    };
    store.inner.create(guest).await.unwrap();

    let policy = SweepPolicy {
        retention: None,
        page_size: 10,
        pages_per_run: 1,
    };
    let read = |file: &str| {
        serde_json::from_str(&std::fs::read_to_string(events_dir().join(file)).unwrap()).unwrap()
    };
    let response = lambda::cleanup_event(&store, &policy, read("cleanup-stream.json"))
        .await
        .unwrap();
    assert_eq!(response, serde_json::json!({"batchItemFailures": []}));
    assert_eq!(
        *store.unmapped.lock().unwrap(),
        vec![("alice@contoso.com".to_owned(), SEEDED_ID.to_owned())]
    );

    let report = lambda::cleanup_event(&store, &policy, read("cleanup-schedule.json"))
        .await
        .unwrap();
    assert_eq!(
        (
            report["finished"].as_bool(),
            report["expiredRemoved"].as_u64()
        ),
        (Some(true), Some(1))
    );
    assert_eq!(store.identities_page(None, 10).await.unwrap().0.len(), 0);
}
