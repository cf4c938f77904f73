//! Operational signals end to end on the in-memory store: the metrics a run emits, read
//! back from their CloudWatch Embedded Metric Format documents (names, dimensions, no
//! identity id or customId in them), and the audit log of admin actions (who, what,
//! which identity, the request ids; never a token, key or signature).

mod common;

use std::collections::{BTreeMap, HashMap};

use callsign::domain::signals::{METRICS, NAMESPACE};
use callsign::http::ApiRequest;
use common::*;
use http::Method;
use serde_json::{Value, json};

const V: &str = "api-version=2023-10-01";
const CUSTOM_ID: &str = "alice@contoso.com";

/// (metric name, its dimensions) → the value summed over the documents.
type Emitted = BTreeMap<(String, BTreeMap<String, String>), f64>;

fn read_emf(documents: &str) -> Emitted {
    let mut emitted = Emitted::new();
    for line in documents.lines().filter(|l| !l.trim().is_empty()) {
        let document: Value = serde_json::from_str(line).unwrap();
        for directive in document["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
            assert_eq!(directive["Namespace"], NAMESPACE);
            let names: Vec<&str> = directive["Dimensions"][0]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_str().unwrap())
                .collect();
            for metric in directive["Metrics"].as_array().unwrap() {
                let name = metric["Name"].as_str().unwrap().to_owned();
                let dimensions = names
                    .iter()
                    .map(|d| ((*d).to_owned(), document[*d].as_str().unwrap().to_owned()))
                    .collect();
                *emitted.entry((name.clone(), dimensions)).or_default() +=
                    document[&name].as_f64().unwrap();
            }
        }
    }
    emitted
}

fn count(emitted: &Emitted, name: &str, dimensions: &[(&str, &str)]) -> f64 {
    let mut wanted: BTreeMap<String, String> = dimensions
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    wanted.insert("Function".into(), "signals-test".into());
    emitted
        .get(&(name.to_owned(), wanted))
        .copied()
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_run_emits_the_documented_metrics_and_audits_every_admin_action() {
    let collector = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(NAMESPACE)
        .with_dimension("Function", "signals-test")
        .init()
        .unwrap();
    let logs = common::capture_logs();

    let t = memory_app_with(
        config_with(&[
            ("CALLSIGN_GUEST_LIMIT", "1"),
            ("CALLSIGN_OIDC_ISSUER", "https://idp.example"),
            ("CALLSIGN_OIDC_TRUST_GATEWAY", "1"),
        ]),
        None,
    )
    .await;
    let admin = |method: Method, path: &str, body: &str| {
        let mut request = signed(&t.key, method, path, body);
        request.request_id = Some("req-0001".into());
        request
    };

    // Admin: create (with a token, then by customId twice), issue, revoke, delete.
    let create = format!("/identities?{V}");
    let created = t
        .send(admin(
            Method::POST,
            &create,
            r#"{"createTokenWithScopes":["chat"]}"#,
        ))
        .await;
    assert_eq!(created.status(), 201);
    let mapped = format!(r#"{{"customId":"{CUSTOM_ID}"}}"#);
    for _ in 0..2 {
        assert_eq!(
            t.send(admin(Method::POST, &create, &mapped)).await.status(),
            201
        );
    }
    let id = t.create_id().await;
    let issue = format!("/identities/{}/:issueAccessToken?{V}", encoded(&id));
    let issued = split(
        t.send(admin(Method::POST, &issue, r#"{"scopes":["chat.join"]}"#))
            .await,
    )
    .1;
    let token = issued["token"].as_str().unwrap().to_owned();
    let revoke = format!("/identities/{}/:revokeAccessTokens?{V}", encoded(&id));
    assert_eq!(t.send(admin(Method::POST, &revoke, "")).await.status(), 204);
    let fresh = split(
        t.send(admin(Method::POST, &issue, r#"{"scopes":["chat.join"]}"#))
            .await,
    )
    .1;
    let fresh = fresh["token"].as_str().unwrap().to_owned();

    // Refused admin requests: a bad signature, a stale date.
    let mut forged = admin(Method::POST, &create, "");
    forged.headers.insert(
        "authorization",
        "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=AAAA"
            .parse()
            .unwrap(),
    );
    assert_eq!(t.send(forged).await.status(), 401);
    let mut stale = admin(Method::POST, &create, "");
    stale.headers.insert(
        "x-ms-date",
        "Mon, 02 Jun 2025 10:00:00 GMT".parse().unwrap(),
    );
    assert_eq!(t.send(stale).await.status(), 401);

    // Introspection: the revoked token, the fresh one, junk.
    for (token, active) in [
        (token.as_str(), false),
        (fresh.as_str(), true),
        ("junk", false),
    ] {
        assert_eq!(introspect(&t.app, &t.key, token).await["active"], active);
    }

    // The authorizer: allowed, and too narrow a scope.
    let authorizer = callsign::app::authorizer_for(&t.app.service, &t.config.authorizer);
    let bearer = format!("Bearer {fresh}");
    let now = chrono::Utc::now();
    assert!(
        authorizer
            .authorize("POST /chat/threads/{threadId}/messages", Some(&bearer), now)
            .await
            .is_ok()
    );
    assert!(
        authorizer
            .authorize("POST /chat/threads", Some(&bearer), now)
            .await
            .is_err()
    );

    // The front: a signed-in user (behind the gateway's JWT authorizer), two guests from
    // one address (the second throttled).
    let user = ApiRequest {
        method: Method::POST,
        path: "/user/token".into(),
        gateway_claims: Some(json!({"iss": "https://idp.example", "sub": "erin"})),
        source_ip: Some("198.51.100.7".into()),
        ..Default::default()
    };
    assert_eq!(t.send(user).await.status(), 200);
    for status in [200, 429] {
        let guest = ApiRequest {
            method: Method::POST,
            path: "/guest/token".into(),
            source_ip: Some("198.51.100.8".into()),
            ..Default::default()
        };
        assert_eq!(t.send(guest).await.status(), status);
    }
    let delete = format!("/identities/{}?{V}", encoded(&id));
    assert_eq!(
        t.send(admin(Method::DELETE, &delete, "")).await.status(),
        204
    );

    let mut documents = Vec::new();
    collector.flush(&mut documents).unwrap();
    let documents = String::from_utf8(documents).unwrap();
    let emitted = read_emf(&documents);

    for (name, dimensions, expected) in [
        ("TokensIssued", vec![("Route", "admin")], 3.0),
        ("TokensIssued", vec![("Route", "user")], 1.0),
        ("TokensIssued", vec![("Route", "guest")], 1.0),
        ("IdentitiesCreated", vec![("Route", "admin")], 3.0),
        ("IdentitiesCreated", vec![("Route", "user")], 1.0),
        ("IdentitiesCreated", vec![("Route", "guest")], 1.0),
        ("IdentitiesDeleted", vec![("Route", "admin")], 1.0),
        ("TokensRevoked", vec![], 1.0),
        ("AdminAuthFailures", vec![("Reason", "bad_signature")], 1.0),
        ("AdminAuthFailures", vec![("Reason", "stale_date")], 1.0),
        ("IntrospectionResults", vec![("Result", "active")], 1.0),
        ("IntrospectionResults", vec![("Result", "revoked")], 1.0),
        ("IntrospectionResults", vec![("Result", "malformed")], 1.0),
        ("AuthorizerDecisions", vec![("Result", "allowed")], 1.0),
        (
            "AuthorizerDecisions",
            vec![("Result", "scope_too_narrow")],
            1.0,
        ),
        ("GuestsThrottled", vec![], 1.0),
    ] {
        assert_eq!(
            count(&emitted, name, &dimensions),
            expected,
            "{name} {dimensions:?} in {emitted:?}"
        );
    }
    // Every metric is a documented one, with its documented dimensions only.
    let documented: HashMap<&str, &[&str]> =
        METRICS.iter().map(|m| (m.name, m.dimensions)).collect();
    for (name, dimensions) in emitted.keys() {
        let expected = documented
            .get(name.as_str())
            .unwrap_or_else(|| panic!("{name} is not in signals::METRICS"));
        let mut names: Vec<&str> = dimensions.keys().map(String::as_str).collect();
        names.retain(|d| *d != "Function");
        let mut expected = expected.to_vec();
        expected.sort_unstable();
        names.sort_unstable();
        assert_eq!(names, expected, "{name}");
    }
    // Low cardinality: no identity id, customId or token in any document.
    for needle in ["8:acs:", CUSTOM_ID, "oidc:", &fresh[..20]] {
        assert!(!documents.contains(needle), "{needle} in the metrics");
    }

    // The audit log: one line per admin action, none for the refused ones.
    let logs = logs.text();
    let audit: Vec<Value> = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["target"] == "callsign::audit")
        .map(|line| line["fields"].clone())
        .collect();
    let actions: Vec<&str> = audit
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "create", "create", "create", "create", "issue", "revoke", "issue", "delete"
        ],
        "{logs}"
    );
    for line in &audit {
        assert_eq!(line["key"], "primary");
        assert!(
            line["identity"].as_str().unwrap().starts_with("8:acs:"),
            "{line}"
        );
    }
    assert_eq!(audit[0]["request_id"], "req-0001");
    assert_eq!(audit[7]["identity"], id.as_str());
    assert_eq!(audit[7]["status"], 204);
    // Nothing secret in any log line.
    for secret in [t.key.as_str(), &token, &fresh, "Signature="] {
        assert!(
            !logs.contains(secret),
            "a secret is in the logs: {secret:.12}…"
        );
    }
}
