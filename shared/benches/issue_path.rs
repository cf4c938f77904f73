//! The issue path (HMAC check, routing and parsing, store update, signing) on the in-memory
//! store, next to raw ES256 JWT signing of the same claims; and the verify path
//! (introspection) next to raw ES256 signature verification. Budget: the issue path keeps
//! at least 60% of the raw signing rate. Run: `cargo bench -p callsign --bench issue_path`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use callsign::config::Config;
use callsign::domain::identity::{Identity, IdentityId};
use callsign::domain::keys::KeySet;
use callsign::domain::ports::IdentityStore;
use callsign::domain::scope::Scopes;
use callsign::domain::token::{self, TokenLifetime, TokenRequest};
use callsign::http::{self as api, ApiRequest, App, Function, Served};
use chrono::Utc;
use criterion::{BatchSize, Criterion, Throughput};
use http::Method;

const RESOURCE: &str = "2dee53b4-368b-45b4-ab52-8493fb117652";
/// The issue path must keep this share of the raw signing rate.
const BUDGET_PERCENT: f64 = 60.0;
const BODY: &str = r#"{"scopes":["chat","voip"],"expiresInMinutes":60}"#;

struct Fixture {
    runtime: tokio::runtime::Runtime,
    app: Arc<App>,
    request: ApiRequest,
    keys: Arc<KeySet>,
    settings: token::TokenSettings,
    id: IdentityId,
}

fn fixture() -> Fixture {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let config = Config::from_lookup(|name| match name {
        "CALLSIGN_RESOURCE_ID" => Some(RESOURCE.to_owned()),
        "CALLSIGN_KEY_CACHE_TTL_SECONDS" => Some("3600".to_owned()),
        _ => None,
    })
    .unwrap();
    let id = IdentityId::new(config.token.resource_id);
    let memory = runtime.block_on(async {
        let memory = callsign::app::memory_app(&config, None, callsign::app::Trust::default())
            .await
            .unwrap();
        memory
            .store
            .create(Identity::new_stable(id.clone(), None, Utc::now()))
            .await
            .unwrap();
        memory
    });
    let (app, access) = (memory.app, memory.access_keys);
    // Signed as the SDKs sign (encoded id); delivered decoded, as API Gateway does.
    let signed_path = format!(
        "/identities/{}/:issueAccessToken?api-version=2023-10-01",
        id.as_str().replace(':', "%3A")
    );
    let mut request = ApiRequest::signed(
        access.primary(),
        Method::POST,
        &signed_path,
        "127.0.0.1",
        BODY,
    )
    .unwrap();
    request.path = format!("/identities/{id}/:issueAccessToken");
    Fixture {
        runtime,
        keys: app.service.keys().signing_keys().unwrap(),
        app,
        request,
        settings: config.token,
        id,
    }
}

fn issue_once(f: &Fixture) {
    issue(f, f.request.clone());
}

fn issue(f: &Fixture, request: ApiRequest) {
    let response = f.runtime.block_on(api::handle(
        &f.app,
        Served::Function(Function::IssueToken),
        request,
    ));
    assert_eq!(response.status(), 200);
    black_box(response);
}

fn raw_sign_once(f: &Fixture) {
    let request = TokenRequest {
        scopes: Scopes::parse(["chat", "voip"]).unwrap(),
        lifetime: TokenLifetime::from_minutes(60).unwrap(),
    };
    black_box(
        token::issue(
            &f.settings,
            &f.keys,
            &f.id,
            request,
            0,
            &token::IssuedBy::Guest,
            Utc::now(),
        )
        .unwrap(),
    );
}

/// A live token of the fixture's identity and the raw parts of its signature.
struct Probe {
    token: String,
    message: Vec<u8>,
    signature: Vec<u8>,
    public_key: Vec<u8>,
}

fn probe(f: &Fixture) -> Probe {
    let request = TokenRequest {
        scopes: Scopes::parse(["chat", "voip"]).unwrap(),
        lifetime: TokenLifetime::from_minutes(60).unwrap(),
    };
    let token = token::issue(
        &f.settings,
        &f.keys,
        &f.id,
        request,
        0,
        &token::IssuedBy::Guest,
        Utc::now(),
    )
    .unwrap()
    .token;
    let (message, signature) = token.rsplit_once('.').unwrap();
    let jwk = f
        .keys
        .public_keys()
        .find(f.keys.current.kid())
        .unwrap()
        .jwk();
    let coordinate = |name: &str| URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap()).unwrap();
    let public_key = [vec![0x04], coordinate("x"), coordinate("y")].concat();
    Probe {
        message: message.as_bytes().to_vec(),
        signature: URL_SAFE_NO_PAD.decode(signature).unwrap(),
        public_key,
        token,
    }
}

/// Introspection's work: signature, claims, the identity's record, revocation.
fn verify_once(f: &Fixture, p: &Probe) {
    let verdict = f
        .runtime
        .block_on(f.app.service.introspect(&p.token))
        .unwrap();
    assert!(verdict.is_ok());
    black_box(verdict.ok());
}

/// Just the ECDSA P-256 signature check.
fn raw_verify_once(p: &Probe) {
    let key = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &p.public_key);
    key.verify(&p.message, &p.signature).unwrap();
}

/// Operations per second over a fixed wall-clock window.
fn rate(mut op: impl FnMut()) -> f64 {
    let window = Duration::from_secs(2);
    let started = Instant::now();
    let mut count = 0u64;
    while started.elapsed() < window {
        op();
        count += 1;
    }
    count as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let f = fixture();
    let mut criterion = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(5));
    let mut group = criterion.benchmark_group("issue");
    group.throughput(Throughput::Elements(1));
    group.bench_function("raw_es256_jwt_signing", |b| b.iter(|| raw_sign_once(&f)));
    group.bench_function("issue_path_in_memory", |b| {
        b.iter_batched(
            || f.request.clone(),
            |request| issue(&f, request),
            BatchSize::SmallInput,
        );
    });
    let p = probe(&f);
    group.bench_function("raw_es256_signature_verification", |b| {
        b.iter(|| raw_verify_once(&p));
    });
    group.bench_function("verify_path_in_memory", |b| b.iter(|| verify_once(&f, &p)));
    group.finish();
    criterion.final_summary();

    let raw = rate(|| raw_sign_once(&f));
    let issue = rate(|| issue_once(&f));
    let ratio = 100.0 * issue / raw;
    let raw_verify = rate(|| raw_verify_once(&p));
    let verify = rate(|| verify_once(&f, &p));
    println!(
        "\nissue path: {issue:.0}/s; raw ES256 JWT signing: {raw:.0}/s; ratio {ratio:.0}% (budget: at least {BUDGET_PERCENT}%)"
    );
    println!(
        "verify path (introspection): {verify:.0}/s; raw ES256 signature verification: {raw_verify:.0}/s; ratio {:.0}%",
        100.0 * verify / raw_verify
    );
    assert!(ratio >= BUDGET_PERCENT, "the issue path is over budget");
}
