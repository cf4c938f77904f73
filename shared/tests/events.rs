//! Every sample event in events/ goes through its function's handler, as Lambda would
//! deliver it (lambda_http's own event parsing), and gets the expected status.

mod common;

use std::path::Path;

use callsign::domain::identity::{CustomId, Identity, IdentityId};
use callsign::domain::ports::IdentityStore;
use callsign::http::{Access, Function, Served};
use callsign::lambda;
use chrono::Utc;

/// The identity the events name: the store is seeded with it (and its customId).
const SEEDED_ID: &str =
    "8:acs:2dee53b4-368b-45b4-ab52-8493fb117652_00000005-14a2-493b-8a72-5a3a0d000081";

const CASES: &[(&str, Function, u16)] = &[
    ("identities-create.json", Function::Identities, 201),
    (
        "identities-create-with-token.json",
        Function::Identities,
        201,
    ),
    (
        "identities-create-custom-id.json",
        Function::Identities,
        201,
    ),
    ("identities-get.json", Function::Identities, 200),
    ("identities-delete.json", Function::Identities, 204),
    ("issue-token.json", Function::IssueToken, 200),
    // No Teams tenant is configured by default: no token is valid.
    ("teams-exchange.json", Function::IssueToken, 401),
    ("revoke-tokens.json", Function::RevokeTokens, 204),
    ("custom-id-lookup.json", Function::CustomIdLookup, 200),
    ("jwks.json", Function::Jwks, 200),
    ("openid-configuration.json", Function::Jwks, 200),
    ("introspect.json", Function::Introspect, 200),
];

/// Events of the non-HTTP functions and the end-user front, exercised by their own tests:
/// the authorizer's, the front's and cleanup's here, the rotation steps' against moto in
/// tests/rotation.rs, identity-events' against DynamoDB Local and moto in
/// tests/lifecycle.rs.
const OTHER_EVENTS: &[&str] = &[
    "authorizer-allowed.json",
    "authorizer-denied.json",
    "user-token.json",
    "user-get.json",
    "user-delete.json",
    "guest-token.json",
    "cleanup-stream.json",
    "cleanup-schedule.json",
    "identity-events-stream.json",
    "rotation-create-secret.json",
    "rotation-set-secret.json",
    "rotation-test-secret.json",
    "rotation-finish-secret.json",
];

fn events_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../events"))
}

/// A sample event's text, as committed.
fn sample(file: &str) -> String {
    std::fs::read_to_string(events_dir().join(file)).unwrap()
}

/// An app whose store holds the identity the events name, mapped from `custom_id`.
async fn seeded_app(custom_id: Option<&str>) -> common::TestApp {
    let t = common::memory_app().await;
    let seeded = Identity::new_stable(
        IdentityId::parse(SEEDED_ID).unwrap(),
        custom_id.map(|c| CustomId::parse(c).unwrap()),
        Utc::now(),
    );
    t.store.create(seeded).await.unwrap();
    t
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
    for (file, function, status) in CASES {
        let served = Served::Function(*function);
        let t = seeded_app(Some("alice@contoso.com")).await;

        let raw = sample(file);
        let mut event: serde_json::Value = serde_json::from_str(&raw).unwrap();
        // As committed (unsigned: no key is committed) only public routes answer.
        let public = !served.has(Access::Admin);
        let unsigned = lambda_http::request::from_str(&raw).unwrap();
        let unsigned_status = lambda::http::handle(&t.app, served, unsigned)
            .await
            .status();
        assert_eq!(
            unsigned_status,
            if public { *status } else { 401 },
            "{file}"
        );

        lambda::http::sign_event(&mut event, &t.key, Utc::now()).unwrap();
        let request = lambda_http::request::from_str(&event.to_string()).unwrap();
        let response = lambda::http::handle(&t.app, served, request).await;
        assert_eq!(
            response.status().as_u16(),
            *status,
            "{file}: {:?}",
            response.body()
        );
        if *status == 401 {
            // Signed: what refused it was not the signature (that would be `Denied`).
            let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
            assert_eq!(body["error"]["code"], "InvalidAccessToken", "{file}");
        }
        if !public {
            assert_eq!(
                response.headers()["x-ms-client-request-id"],
                event["headers"]["x-ms-client-request-id"].as_str().unwrap(),
                "{file}"
            );
        }
    }
}

#[tokio::test]
async fn an_encoded_raw_path_reaches_the_same_identity() {
    let t = seeded_app(None).await;
    let mut event: serde_json::Value = serde_json::from_str(&sample("issue-token.json")).unwrap();
    let encoded = event["rawPath"]
        .as_str()
        .unwrap()
        .replace("8:acs:", "8%3Aacs%3A");
    event["rawPath"] = encoded.into();
    lambda::http::sign_event(&mut event, &t.key, Utc::now()).unwrap();
    let request = lambda_http::request::from_str(&event.to_string()).unwrap();
    assert_eq!(
        lambda::http::handle(&t.app, Served::Function(Function::IssueToken), request)
            .await
            .status(),
        200
    );
}

/// A customId holding `/`: the SDK signs it encoded (`%2F`), API Gateway delivers the
/// path decoded, over the route's greedy `{proxy+}`.
#[tokio::test]
async fn a_custom_id_holding_a_slash_is_found_through_a_decoded_path() {
    let t = seeded_app(Some("contoso/alice")).await;
    let mut event: serde_json::Value =
        serde_json::from_str(&sample("custom-id-lookup.json")).unwrap();
    event["rawPath"] = "/customIds/contoso%2Falice".into();
    lambda::http::sign_event(&mut event, &t.key, Utc::now()).unwrap();
    event["rawPath"] = "/customIds/contoso/alice".into();
    event["requestContext"]["http"]["path"] = "/customIds/contoso/alice".into();
    let request = lambda_http::request::from_str(&event.to_string()).unwrap();
    let response =
        lambda::http::handle(&t.app, Served::Function(Function::CustomIdLookup), request).await;
    assert_eq!(response.status(), 200, "{:?}", response.body());
    let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(body["id"], SEEDED_ID);
}

/// The authorizer events, with a fresh `chat.join` token in place of the placeholder:
/// posting a message is allowed, creating a thread is not.
#[tokio::test]
async fn the_authorizer_events_are_allowed_and_denied() {
    use aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request;

    let t = common::memory_app().await;
    let created = t.create(r#"{"createTokenWithScopes":["chat.join"]}"#).await;
    let token = created["accessToken"]["token"].as_str().unwrap();
    let authorizer = callsign::app::authorizer_for(&t.app.service, &t.config.authorizer);
    for (file, allowed) in [
        ("authorizer-allowed.json", true),
        ("authorizer-denied.json", false),
    ] {
        let committed = sample(file);
        let raw = committed.replace("<a callsign access token>", token);
        let event: ApiGatewayV2CustomAuthorizerV2Request = serde_json::from_str(&raw).unwrap();
        let response = lambda::authorizer::authorize_event(&authorizer, &event).await;
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
            assert_eq!(
                decision,
                Err(callsign::domain::authorizer::Denial::ScopeTooNarrow)
            );
        }
        // As committed, with the placeholder instead of a token: denied.
        let event: ApiGatewayV2CustomAuthorizerV2Request =
            serde_json::from_str(&committed).unwrap();
        assert!(
            !lambda::authorizer::authorize_event(&authorizer, &event)
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
    let t = common::memory_app_with(
        common::config_with(&[
            (
                "CALLSIGN_OIDC_ISSUER",
                "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Example",
            ),
            ("CALLSIGN_OIDC_TRUST_GATEWAY", "1"),
            ("CALLSIGN_CORS_ORIGINS", "https://app.example"),
        ]),
        None,
    )
    .await;
    let run = |file: &str| lambda_http::request::from_str(&sample(file)).unwrap();
    for (file, status) in [
        ("user-token.json", 200),
        ("user-get.json", 200),
        ("user-delete.json", 204),
        ("user-get.json", 404),
        ("guest-token.json", 200),
    ] {
        let response =
            lambda::http::handle(&t.app, Served::Function(Function::UserToken), run(file)).await;
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
    inner: callsign::adapters::memory::MemoryStore,
    unmapped: std::sync::Mutex<Vec<(String, String)>>,
}

#[async_trait::async_trait]
impl callsign::domain::ports::Housekeeping for Recording {
    async fn unmap_custom_id(
        &self,
        custom_id: &CustomId,
        identity_id: &str,
    ) -> Result<(), callsign::domain::ports::StoreError> {
        self.unmapped
            .lock()
            .unwrap()
            .push((custom_id.as_str().to_owned(), identity_id.to_owned()));
        self.inner.unmap_custom_id(custom_id, identity_id).await
    }
    async fn identities_page(
        &self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<Identity>, Option<String>), callsign::domain::ports::StoreError> {
        self.inner.identities_page(cursor, limit).await
    }
    async fn purge(
        &self,
        identity: &Identity,
        reason: callsign::domain::lifecycle::SweepReason,
    ) -> Result<bool, callsign::domain::ports::StoreError> {
        self.inner.purge(identity, reason).await
    }
    async fn sweep_cursor(&self) -> Result<Option<String>, callsign::domain::ports::StoreError> {
        self.inner.sweep_cursor().await
    }
    async fn save_sweep_cursor(
        &self,
        cursor: Option<&str>,
    ) -> Result<(), callsign::domain::ports::StoreError> {
        self.inner.save_sweep_cursor(cursor).await
    }
}

/// The stream record unmaps the customId its identity left behind; the schedule sweeps.
#[tokio::test]
async fn the_cleanup_events_unmap_and_sweep() {
    use callsign::domain::housekeeping::SweepPolicy;
    use callsign::domain::ports::Housekeeping;
    let store = Recording {
        inner: callsign::adapters::memory::MemoryStore::new(),
        unmapped: Default::default(),
    };
    let guest = Identity {
        kind: callsign::domain::identity::IdentityKind::Ephemeral {
            expires_at: Utc::now() - chrono::Duration::minutes(1),
        },
        ..Identity::new_stable(
            IdentityId::new(IdentityId::parse(SEEDED_ID).unwrap().resource().unwrap()),
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
    let read = |file: &str| serde_json::from_str(&sample(file)).unwrap();
    let response = lambda::cleanup::cleanup_event(&store, &policy, read("cleanup-stream.json"))
        .await
        .unwrap();
    assert_eq!(response, serde_json::json!({"batchItemFailures": []}));
    assert_eq!(
        *store.unmapped.lock().unwrap(),
        vec![("alice@contoso.com".to_owned(), SEEDED_ID.to_owned())]
    );

    let report = lambda::cleanup::cleanup_event(&store, &policy, read("cleanup-schedule.json"))
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

    // The sample is what EventBridge Scheduler (the template's ScheduleV2) sends; an
    // EventBridge rule's scheduled event starts a sweep too.
    let rule = serde_json::json!({
        "version": "0", "detail-type": "Scheduled Event", "source": "aws.events",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/callsign-retention-sweep"],
        "detail": {}
    });
    let report = lambda::cleanup::cleanup_event(&store, &policy, rule)
        .await
        .unwrap();
    assert_eq!(report["finished"].as_bool(), Some(true), "{report}");
}
