//! The issue path (HMAC check, routing and parsing, store update, signing) on the in-memory
//! store, next to the physical limit: the same ACS-shaped JWT built by hand (header encoded
//! once) and signed with a P-256 key parsed once; and `jsonwebtoken::encode` of the same
//! claims, which parses its key on every call. The verify path (introspection) next to raw
//! P-256 signature verification of the same token. Budget: both paths keep at least 80% of
//! their raw reference (reported, not asserted), each measured in alternating windows with
//! its reference. Run: `cargo bench -p callsign --bench issue_path`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, UnparsedPublicKey,
};
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
/// Each path must keep this share of its raw reference's rate.
const BUDGET_PERCENT: f64 = 80.0;
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

fn issue(f: &Fixture, request: ApiRequest) {
    f.runtime.block_on(issue_in_runtime(f, request));
}

async fn issue_in_runtime(f: &Fixture, request: ApiRequest) {
    let response = api::handle(&f.app, Served::Function(Function::IssueToken), request).await;
    assert_eq!(response.status(), 200);
    black_box(response);
}

/// The physical limit: a P-256 key pair parsed once, the header encoded once, the claims
/// serialized and signed per token.
struct RawSigner {
    pair: EcdsaKeyPair,
    header: String,
    claims: token::Claims,
}

fn raw_signer(f: &Fixture) -> RawSigner {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let sample = probe(f).token;
    let (header, rest) = sample.split_once('.').unwrap();
    let payload = rest.split('.').next().unwrap();
    RawSigner {
        pair,
        header: header.to_owned(),
        claims: serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap(),
    }
}

fn raw_p256_jwt_once(r: &RawSigner) {
    let payload = serde_json::to_vec(&r.claims).unwrap();
    let mut token = String::with_capacity(512);
    token.push_str(&r.header);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
    let signature = r.pair.sign(&SystemRandom::new(), token.as_bytes()).unwrap();
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut token);
    black_box(token);
}

/// `jsonwebtoken::encode` of the same claims (it parses the PKCS#8 key on every call).
fn jsonwebtoken_once(f: &Fixture, r: &RawSigner) {
    let key = &f.keys.current;
    let mut header = jsonwebtoken::Header::new(key.algorithm().jwt());
    header.kid = Some(key.kid().to_owned());
    black_box(jsonwebtoken::encode(&header, &r.claims, key.encoding_key()).unwrap());
}

/// A token of the fixture's identity, signed by callsign's own signer.
fn sample_token(f: &Fixture) -> token::AccessToken {
    let request = TokenRequest {
        scopes: Scopes::parse(["chat", "voip"]).unwrap(),
        lifetime: TokenLifetime::from_minutes(60).unwrap(),
    };
    let issued_by = token::IssuedBy::Guest;
    token::issue(
        &f.settings,
        &f.keys,
        &f.id,
        request,
        0,
        &issued_by,
        Utc::now(),
    )
    .unwrap()
}

/// callsign's own token signing (the key set's signer), without the request around it.
fn token_issue_once(f: &Fixture) {
    black_box(sample_token(f));
}

/// A live token of the fixture's identity and the raw parts of its signature.
struct Probe {
    token: String,
    message: Vec<u8>,
    signature: Vec<u8>,
    public_key: Vec<u8>,
}

fn probe(f: &Fixture) -> Probe {
    let token = sample_token(f).token;
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

/// Issue requests handled in `window`: the requests are made (cloned) before the clock
/// runs, as criterion's `iter_batched` does; what is timed is their handling, a batch in
/// one pass of the runtime as the Lambda runtime serves its invocations.
fn issue_rate(f: &Fixture, window: Duration) -> f64 {
    const BATCH: usize = 200;
    let (mut timed, mut count) = (Duration::ZERO, 0u64);
    while timed < window {
        let batch: Vec<ApiRequest> = (0..BATCH).map(|_| f.request.clone()).collect();
        let started = Instant::now();
        f.runtime.block_on(async {
            for request in batch {
                issue_in_runtime(f, request).await;
            }
        });
        timed += started.elapsed();
        count += BATCH as u64;
    }
    count as f64 / timed.as_secs_f64()
}

/// Operations per second over a fixed wall-clock window.
fn rate(window: Duration, mut op: impl FnMut()) -> f64 {
    let started = Instant::now();
    let mut count = 0u64;
    while started.elapsed() < window {
        op();
        count += 1;
    }
    count as f64 / started.elapsed().as_secs_f64()
}

/// A path's rate next to its reference's, measured in alternating short windows so that
/// a change of clock speed or a neighbour's load weighs on both alike: the median of
/// each over the rounds, and the median of the per-round ratios (percent).
fn paired(
    mut reference: impl FnMut(Duration) -> f64,
    mut path: impl FnMut(Duration) -> f64,
) -> (f64, f64, f64) {
    const ROUNDS: usize = 15;
    let window = Duration::from_millis(150);
    let (mut references, mut paths, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let r = reference(window);
        let p = path(window);
        references.push(r);
        paths.push(p);
        ratios.push(100.0 * p / r);
    }
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    (median(references), median(paths), median(ratios))
}

fn main() {
    let f = fixture();
    let mut criterion = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(5));
    let mut group = criterion.benchmark_group("issue");
    group.throughput(Throughput::Elements(1));
    let r = raw_signer(&f);
    group.bench_function("raw_p256_jwt_key_parsed_once", |b| {
        b.iter(|| raw_p256_jwt_once(&r));
    });
    group.bench_function("jsonwebtoken_encode", |b| {
        b.iter(|| jsonwebtoken_once(&f, &r));
    });
    group.bench_function("token_issue", |b| b.iter(|| token_issue_once(&f)));
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

    let window = Duration::from_secs(2);
    let jwt_crate = rate(window, || jsonwebtoken_once(&f, &r));
    let signing = rate(window, || token_issue_once(&f));
    let (raw, issue, ratio) = paired(
        |window| rate(window, || raw_p256_jwt_once(&r)),
        |window| issue_rate(&f, window),
    );
    let (raw_verify, verify, verify_ratio) = paired(
        |window| rate(window, || raw_verify_once(&p)),
        |window| rate(window, || verify_once(&f, &p)),
    );
    let per_token = |rate: f64| 1e6 / rate;
    println!(
        "\nraw P-256 JWT (key parsed once): {raw:.0}/s ({:.1} µs)\n\
         jsonwebtoken::encode:            {jwt_crate:.0}/s ({:.1} µs)\n\
         callsign token signing:          {signing:.0}/s ({:.1} µs)\n\
         issue path (HMAC, routing, store, signing): {issue:.0}/s ({:.1} µs); {ratio:.0}% of raw, median of paired rounds (budget: at least {BUDGET_PERCENT}%)",
        per_token(raw),
        per_token(jwt_crate),
        per_token(signing),
        per_token(issue),
    );
    println!(
        "raw P-256 signature verification: {raw_verify:.0}/s ({:.1} µs)\n\
         verify path (introspection):      {verify:.0}/s ({:.1} µs); {verify_ratio:.0}% of raw, median of paired rounds (budget: at least {BUDGET_PERCENT}%)",
        per_token(raw_verify),
        per_token(verify),
    );
    // Figures, not a pass/fail: the budget is reported beside them.
    let verdict = |ratio: f64| {
        if ratio >= BUDGET_PERCENT {
            "within budget"
        } else {
            "UNDER BUDGET"
        }
    };
    println!(
        "issue path: {}; verify path: {}",
        verdict(ratio),
        verdict(verify_ratio)
    );
}
