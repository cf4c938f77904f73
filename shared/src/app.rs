//! The composition root: the one place that assembles the app from the configuration,
//! the adapters and the transports, for the Lambda functions, the local server, tests and
//! benchmarks. Keys and clients are loaded here, once per cold start.

use std::sync::Arc;
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};

use crate::adapters::aws_https::ReqwestHttpClient;
use crate::adapters::dynamodb::{DynamoDbStore, HomedStore};
use crate::adapters::eventbridge::EventBridgeBus;
use crate::adapters::memory::{LocalKeySource, MemoryStore, MemoryThrottle};
use crate::adapters::oidc::{DiscoveredProvider, TrustedIssuers};
use crate::adapters::secrets_manager::{
    SecretsManagerKeySource, SecretsManagerSecret, create_secret_if_missing,
};
use crate::config::{
    AuthorizerConfig, Config, ConfigError, FrontConfig, LambdaAws, RegionsConfig, TrustedIssuer,
    UserAuthConfig,
};
use crate::domain::access_keys::{AccessKeys, generate_key};
use crate::domain::authorizer::{Authorizer, RevocationCache};
use crate::domain::front::Front;
use crate::domain::housekeeping::{SweepPolicy, sweep};
use crate::domain::key_ring::KeyRing;
use crate::domain::keys::StoredKeySet;
use crate::domain::lifecycle::LifecyclePublisher;
use crate::domain::ports::{
    Housekeeping, IdentityStore, KeySource, KeysNeeded, Throttle, TrustedTokens,
};
use crate::domain::service::IdentityService;
use crate::http::front::{FrontApp, UserAuth};
use crate::http::teams::TeamsApp;
use crate::http::{Access, AdminBearers, App, Operation, Served};

pub type BuildError = Box<dyn std::error::Error + Send + Sync>;

/// How long a cold start waits for the identity provider's keys before it serves anyway
/// (sign-ins then load them on first use).
const PROVIDER_WARM_UP: Duration = Duration::from_secs(3);
/// Revocation markers the authorizer keeps at most.
const REVOCATION_CACHE_ENTRIES: usize = 10_000;

/// Credentials, region and endpoints from the environment (`AWS_ENDPOINT_URL_DYNAMODB`
/// and `AWS_ENDPOINT_URL_SECRETS_MANAGER` point the clients at local servers). In a
/// Lambda function, straight from what Lambda provides (`config::LambdaAws`); elsewhere
/// through `aws-config`'s provider chains (profiles, SSO, container credentials).
pub async fn sdk_config() -> SdkConfig {
    match LambdaAws::from_env() {
        Some(lambda) => lambda_sdk_config(lambda),
        None => {
            aws_config::defaults(BehaviorVersion::latest())
                .http_client(https_client())
                .load()
                .await
        }
    }
}

fn lambda_sdk_config(lambda: LambdaAws) -> SdkConfig {
    use aws_sdk_secretsmanager::config::{Credentials, SharedCredentialsProvider};
    let credentials = Credentials::new(
        lambda.access_key_id,
        lambda.secret_access_key,
        lambda.session_token,
        None,
        "lambda-environment",
    );
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(aws_config::Region::new(lambda.region))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .http_client(https_client())
        .service_config(EnvEndpoints)
        .build()
}

/// Endpoint overrides per service (`config::aws_endpoint_url`), as `aws-config` would
/// give them.
#[derive(Debug)]
struct EnvEndpoints;

impl aws_types::service_config::LoadServiceConfig for EnvEndpoints {
    fn load_config(&self, key: aws_types::service_config::ServiceConfigKey<'_>) -> Option<String> {
        (key.env() == "AWS_ENDPOINT_URL")
            .then(|| crate::config::aws_endpoint_url(key.service_id()))
            .flatten()
    }
}

/// The roots AWS's endpoints chain to (Amazon Trust Services, and the Starfield root
/// that cross-signs them), DER-encoded, picked from the Mozilla store when the crate is
/// built (`build.rs`).
pub const AWS_ROOTS: &[&[u8]] = include!(concat!(env!("OUT_DIR"), "/aws_roots.rs"));

/// The SDK clients' HTTPS client (`adapters::aws_https`). It trusts the roots AWS's
/// endpoints chain to, compiled into the binary, rather than the system's store: reading
/// and parsing `/etc/ssl/certs` (hundreds of files) was the largest part of a cold start.
/// Certificates are verified as before, against a narrower set (`tests/tls_trust.rs`);
/// `HTTPS_PROXY` and `NO_PROXY` are honoured.
pub fn https_client() -> aws_sdk_secretsmanager::config::SharedHttpClient {
    aws_sdk_secretsmanager::config::SharedHttpClient::new(
        ReqwestHttpClient::trusting(AWS_ROOTS).expect("the compiled-in roots are DER"),
    )
}

/// What the app runs on: its store, its guest throttle, and where its keys come from.
pub struct Backends {
    pub store: Arc<dyn IdentityStore>,
    pub throttle: Arc<dyn Throttle>,
    pub keys: Arc<dyn KeySource>,
}

impl Backends {
    /// DynamoDB and Secrets Manager, as the configuration names them, with the `needed`
    /// keys loaded (each function is given, and may read, only the secrets it needs). The
    /// DynamoDB client is built on a blocking thread while Secrets Manager is asked for
    /// the keys: building it (it parses its endpoint rules, about 0.35 ms) fills the
    /// round trip's wait, and a cold start waits for the longer of the two, not both.
    pub async fn aws(
        config: &Config,
        sdk: &SdkConfig,
        needed: KeysNeeded,
    ) -> Result<(Self, Arc<KeyRing>), BuildError> {
        // A start without a table fails before it asks Secrets Manager for anything.
        table_name(config)?;
        let tables = tokio::task::spawn_blocking({
            let (config, sdk) = (config.clone(), sdk.clone());
            move || aws_tables(&config, &sdk)
        });
        let source = aws_key_source(config, sdk);
        let keys = KeyRing::load(source.clone(), config.key_cache_ttl, needed).await?;
        let (store, throttle) = tables.await??;
        let backends = Self {
            store,
            throttle,
            keys: source,
        };
        Ok((backends, keys))
    }

    /// In memory, with a fresh signing key set of the configured algorithm and these
    /// access keys.
    pub fn memory(
        config: &Config,
        store: Arc<MemoryStore>,
        access_keys: &AccessKeys,
    ) -> Result<Self, BuildError> {
        let signing = StoredKeySet::generate(config.signing_algorithm)?;
        Ok(Self {
            store,
            throttle: Arc::new(MemoryThrottle::default()),
            keys: Arc::new(LocalKeySource::new(&signing, access_keys)),
        })
    }
}

type Tables = (Arc<dyn IdentityStore>, Arc<dyn Throttle>);

/// The identity store and the guest throttle: one table, or this region's replica with
/// the identities' homes in a multi-region deployment.
fn aws_tables(config: &Config, sdk: &SdkConfig) -> Result<Tables, ConfigError> {
    Ok(match &config.regions {
        Some(regions) => {
            let homed = Arc::new(homed_store(config, regions, sdk)?);
            (homed.clone(), homed)
        }
        None => {
            let table = Arc::new(dynamodb_store(config, sdk)?);
            (table.clone(), table)
        }
    })
}

/// The configured secrets, in Secrets Manager.
fn aws_key_source(config: &Config, sdk: &SdkConfig) -> Arc<dyn KeySource> {
    Arc::new(
        SecretsManagerKeySource::new(
            aws_sdk_secretsmanager::Client::new(sdk),
            config.signing_keys_secret_id.as_deref(),
            config.access_keys_secret_id.as_deref(),
        )
        .with_public_keys(config.public_keys_secret_id.as_deref()),
    )
}

/// The DynamoDB table the configuration names (this region's replica, in a multi-region
/// deployment).
pub fn dynamodb_store(config: &Config, sdk: &SdkConfig) -> Result<DynamoDbStore, ConfigError> {
    let store = DynamoDbStore::new(aws_sdk_dynamodb::Client::new(sdk), table_name(config)?);
    Ok(match &config.regions {
        Some(regions) => store.for_region(regions.placement.local()),
        None => store,
    })
}

/// What the cleanup function works on: the table, or in a multi-region deployment only
/// what is homed in this region.
pub fn housekeeping_store(
    config: &Config,
    sdk: &SdkConfig,
) -> Result<Arc<dyn Housekeeping>, ConfigError> {
    Ok(match &config.regions {
        Some(regions) => Arc::new(homed_store(config, regions, sdk)?),
        None => Arc::new(dynamodb_store(config, sdk)?),
    })
}

/// The identity-events function's publisher: its ledger in this region's replica of the
/// table, and the configured event bus.
pub fn lifecycle_publisher(
    config: &Config,
    sdk: &SdkConfig,
) -> Result<LifecyclePublisher, ConfigError> {
    Ok(LifecyclePublisher {
        ledger: Arc::new(dynamodb_store(config, sdk)?),
        bus: Arc::new(EventBridgeBus::new(
            aws_sdk_eventbridge::Client::new(sdk),
            &config.event_bus,
        )),
        placement: config.regions.as_ref().map(|r| r.placement.clone()),
    })
}

/// The table's replicas in every region of a multi-region deployment, each written only
/// with the items homed there (`adapters::dynamodb::regions`).
pub fn homed_store(
    config: &Config,
    regions: &RegionsConfig,
    sdk: &SdkConfig,
) -> Result<HomedStore, ConfigError> {
    let table = table_name(config)?;
    // A SEEN# item counts for the retention sweep as long as the retention lasts.
    let seen_lifetime =
        config.sweep.retention.unwrap_or(chrono::Duration::days(30)) + chrono::Duration::days(1);
    Ok(HomedStore::new(
        regions.placement.clone(),
        seen_lifetime,
        |region| {
            let mut client = aws_sdk_dynamodb::config::Builder::from(sdk)
                .region(aws_config::Region::new(region.to_owned()));
            let endpoint = regions.dynamodb_endpoints.iter().find(|(r, _)| r == region);
            if let Some((_, url)) = endpoint {
                client.set_endpoint_url(Some(url.clone()));
            } else if region != regions.placement.local() {
                // AWS_ENDPOINT_URL_DYNAMODB points at the local replica only.
                client.set_endpoint_url(None);
            }
            let client = aws_sdk_dynamodb::Client::from_conf(client.build());
            DynamoDbStore::new(client, table).for_region(region)
        },
    ))
}

fn table_name(config: &Config) -> Result<&str, ConfigError> {
    config
        .table_name
        .as_deref()
        .ok_or_else(|| ConfigError("CALLSIGN_TABLE_NAME is required".into()))
}

/// Token issuers trusted in place of the configured ones: the local server's development
/// issuer, tests. Each one left None is as configured.
#[derive(Default)]
pub struct Trust {
    /// End users' sign-in.
    pub users: Option<UserAuth>,
    /// Bearer tokens of admin callers.
    pub admins: Option<Arc<dyn TrustedTokens>>,
    /// Teams users' Entra tokens.
    pub teams: Option<Arc<dyn TrustedTokens>>,
}

/// The configured issuers, unless `replacement` stands in for them; None if there are
/// none. Their keys load now when they answer quickly, else on first use.
async fn trusted_issuers(
    replacement: Option<Arc<dyn TrustedTokens>>,
    configured: &[TrustedIssuer],
) -> Option<Arc<dyn TrustedTokens>> {
    match replacement {
        Some(issuers) => Some(issuers),
        None if configured.is_empty() => None,
        None => Some(Arc::new(
            TrustedIssuers::start(configured, PROVIDER_WARM_UP).await,
        )),
    }
}

/// Assembles the app for a process that serves `served`: private signing keys only where
/// tokens are issued, the published public keys where they are only verified, access
/// keys and trusted bearer issuers only where admin routes are served, the end-user front
/// and the Teams exchange only where their routes are. `trust` replaces configured
/// issuers (the local server's development issuer, tests).
pub async fn assemble(
    config: &Config,
    served: Served,
    backends: Backends,
    trust: Trust,
) -> Result<App, BuildError> {
    let needed = keys_needed(served);
    let keys = KeyRing::load(backends.keys.clone(), config.key_cache_ttl, needed).await?;
    compose(config, served, backends, keys, trust).await
}

/// The keys a process that serves `served` loads.
fn keys_needed(served: Served) -> KeysNeeded {
    KeysNeeded {
        signing: served.signs(),
        verifying: served.verifies(),
        access: served.has(Access::Admin),
    }
}

/// [`assemble`] once the keys are loaded.
async fn compose(
    config: &Config,
    served: Served,
    backends: Backends,
    keys: Arc<KeyRing>,
    trust: Trust,
) -> Result<App, BuildError> {
    let front = if served.has(Access::EndUser) {
        let users = match trust.users {
            Some(users) => users,
            None => user_auth(&config.front).await,
        };
        Some(FrontApp {
            front: Front::new(config.front.policy.clone(), backends.throttle),
            users,
            cors_origins: config.front.cors_origins.clone(),
        })
    } else {
        None
    };
    let admin_bearers = if served.has(Access::Admin) {
        trusted_issuers(trust.admins, &config.admin_bearer.issuers)
            .await
            .map(|issuers| AdminBearers {
                issuers,
                roles: config.admin_bearer.roles.clone(),
            })
    } else {
        None
    };
    let teams = if served.serves(Operation::ExchangeTeamsToken) {
        trusted_issuers(trust.teams, &config.teams.issuers)
            .await
            .map(|issuers| TeamsApp {
                issuers,
                policy: config.teams.policy.clone(),
            })
    } else {
        None
    };
    Ok(App {
        service: IdentityService::new(backends.store, keys, config.token.clone()),
        public_hosts: config.public_hosts.clone(),
        public_base_url: config.public_base_url.clone(),
        front,
        admin_bearers,
        teams,
    })
}

/// How the front recognises signed-in users, as configured. An OIDC provider's keys load
/// here if it answers quickly, else on first use.
pub async fn user_auth(front: &FrontConfig) -> UserAuth {
    match &front.users {
        UserAuthConfig::Oidc(settings) => UserAuth::Provider(Arc::new(
            DiscoveredProvider::start(settings.clone(), PROVIDER_WARM_UP).await,
        )),
        UserAuthConfig::Gateway { issuer } => UserAuth::Gateway {
            issuer: issuer.clone(),
        },
        UserAuthConfig::None => UserAuth::None,
    }
}

/// The app of an HTTP Lambda function (or the local server on a real table).
pub async fn aws_app(config: &Config, sdk: &SdkConfig, served: Served) -> Result<App, BuildError> {
    let (backends, keys) = Backends::aws(config, sdk, keys_needed(served)).await?;
    compose(config, served, backends, keys, Trust::default()).await
}

/// An app on the embedded store, serving every route: the local server, tests and
/// benchmarks. `primary_key` is the primary access key to accept (None: a fresh one).
pub struct MemoryApp {
    pub app: Arc<App>,
    pub store: Arc<MemoryStore>,
    pub access_keys: AccessKeys,
}

/// How often the local server sweeps its embedded store.
pub const MEMORY_SWEEP_EVERY: Duration = Duration::from_secs(300);

impl MemoryApp {
    /// The retention sweep on the embedded store, every `every` until dropped: expired
    /// guests (and, with `CALLSIGN_RETENTION_DAYS`, idle identities) go, as TTL and the
    /// cleanup function remove them from DynamoDB. Without it a long-running local server
    /// keeps every guest it ever made.
    pub async fn sweep_forever(store: Arc<MemoryStore>, policy: SweepPolicy, every: Duration) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            ticks.tick().await;
            if let Err(e) = sweep(store.as_ref(), &policy, chrono::Utc::now()).await {
                tracing::warn!(error = %e, "the embedded store's sweep failed; it runs again");
            }
        }
    }
}

pub async fn memory_app(
    config: &Config,
    primary_key: Option<&str>,
    trust: Trust,
) -> Result<MemoryApp, BuildError> {
    let access_keys = match primary_key {
        Some(primary) => AccessKeys::new(primary, &generate_key())?,
        None => AccessKeys::generate(),
    };
    let store = Arc::new(MemoryStore::new());
    let backends = Backends::memory(config, store.clone(), &access_keys)?;
    let app = assemble(config, Served::All, backends, trust).await?;
    Ok(MemoryApp {
        app: Arc::new(app),
        store,
        access_keys,
    })
}

/// The authorizer's decision maker: our own tokens (public keys only), the capability
/// each route needs, and revocation markers from the store, cached briefly.
pub async fn aws_authorizer(config: &Config, sdk: &SdkConfig) -> Result<Authorizer, BuildError> {
    let needed = KeysNeeded {
        signing: false,
        verifying: true,
        access: false,
    };
    let (backends, keys) = Backends::aws(config, sdk, needed).await?;
    let service = IdentityService::new(backends.store, keys, config.token.clone());
    Ok(authorizer_for(&service, &config.authorizer))
}

/// The authorizer on a service's keys and store.
pub fn authorizer_for(service: &IdentityService, settings: &AuthorizerConfig) -> Authorizer {
    Authorizer::new(
        service.verifier(),
        settings.routes.clone(),
        RevocationCache::new(
            service.store(),
            settings.revocation_cache,
            REVOCATION_CACHE_ENTRIES,
        ),
    )
}

/// The Secrets Manager client, made once per cold start.
pub fn secrets_client(sdk: &SdkConfig) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(sdk)
}

/// One Secrets Manager secret with staged versions: rotation and key regeneration.
pub fn versioned_secret(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
) -> SecretsManagerSecret {
    SecretsManagerSecret::new(client.clone(), secret_id)
}

/// Creates the table and the secrets when missing, for a local run against DynamoDB
/// Local and moto: a fresh signing key set, its public half (when
/// CALLSIGN_PUBLIC_KEYS_SECRET_ID is set) and access keys, the primary one `primary_key`
/// if given.
pub async fn bootstrap(
    config: &Config,
    sdk: &SdkConfig,
    primary_key: Option<&str>,
) -> Result<(), BuildError> {
    let required = |value: &Option<String>, name: &str| {
        value
            .clone()
            .ok_or_else(|| ConfigError(format!("{name} is required")))
    };
    let signing_id = required(
        &config.signing_keys_secret_id,
        "CALLSIGN_SIGNING_KEYS_SECRET_ID",
    )?;
    let access_id = required(
        &config.access_keys_secret_id,
        "CALLSIGN_ACCESS_KEYS_SECRET_ID",
    )?;
    dynamodb_store(config, sdk)?
        .create_table_if_missing()
        .await?;
    let secrets = aws_sdk_secretsmanager::Client::new(sdk);
    // Keys are made only for a secret that is missing.
    create_secret_if_missing(&secrets, &signing_id, || {
        Ok(StoredKeySet::generate(config.signing_algorithm)?.to_secret())
    })
    .await?;
    if let Some(public_id) = &config.public_keys_secret_id {
        // The public half of whichever signing set is in force.
        let source = SecretsManagerKeySource::new(secrets.clone(), Some(&signing_id), None);
        let signing = source.signing_keys().await?;
        create_secret_if_missing(&secrets, public_id, || Ok(signing.published().to_secret()))
            .await?;
    }
    create_secret_if_missing(&secrets, &access_id, || {
        let keys = match primary_key {
            Some(primary) => AccessKeys::new(primary, &generate_key())?,
            None => AccessKeys::generate(),
        };
        Ok(keys.to_secret())
    })
    .await?;
    Ok(())
}
