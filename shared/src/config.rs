//! The configuration: the one place that reads `CALLSIGN_*` environment variables, and
//! the `AWS_*` ones that the functions' SDK configuration is built from in Lambda
//! (elsewhere `aws-config` reads its own; tracing reads `RUST_LOG`). Every value is trimmed, and an
//! empty value counts as unset; numbers are whole and range-checked, never cast; every
//! refusal names the variable. README.md ("Configuration") lists them all.

use std::path::PathBuf;
use std::time::Duration;

use crate::domain::admin::RoleNames;
use crate::domain::front::FrontPolicy;
use crate::domain::housekeeping::SweepPolicy;
use crate::domain::identity::ResourceId;
use crate::domain::keys::{JWKS_MAX_AGE_SECONDS, SigningAlgorithm};
use crate::domain::placement::Placement;
use crate::domain::teams::TeamsPolicy;
use crate::domain::token::{TokenLifetime, TokenSettings, is_token_safe};
use crate::domain::{RoutePolicy, Scopes};

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

/// What the deployed functions need (each reads the part it uses), and the local server.
#[derive(Debug, Clone)]
pub struct Config {
    pub token: TokenSettings,
    /// DynamoDB table; None: the local server's embedded store.
    pub table_name: Option<String>,
    pub signing_keys_secret_id: Option<String>,
    /// The public half of the signing keys, for functions that only verify tokens.
    pub public_keys_secret_id: Option<String>,
    pub access_keys_secret_id: Option<String>,
    /// Hosts accepted in HMAC signatures besides the request's Host header.
    pub public_hosts: Vec<String>,
    /// Base URL in discovery metadata (`jwks_uri`); None: derived from each request.
    pub public_base_url: Option<String>,
    pub key_cache_ttl: Duration,
    /// Algorithm of newly generated signing keys (bootstrap, rotation).
    pub signing_algorithm: SigningAlgorithm,
    pub front: FrontConfig,
    pub authorizer: AuthorizerConfig,
    pub sweep: SweepPolicy,
    pub admin_bearer: AdminBearerConfig,
    pub teams: TeamsConfig,
    /// None: one region, the default.
    pub regions: Option<RegionsConfig>,
    /// The EventBridge bus (name or ARN) that identity lifecycle events go to.
    pub event_bus: String,
}

/// A multi-region deployment (docs/multi-region.md): `CALLSIGN_REGIONS` lists every
/// region, `AWS_REGION` names this one.
#[derive(Debug, Clone)]
pub struct RegionsConfig {
    pub placement: Placement,
    /// DynamoDB endpoints of other regions' replicas, for emulated regions (tests, local
    /// runs); a region without one uses the SDK's endpoint for that region.
    pub dynamodb_endpoints: Vec<(String, String)>,
}

impl RegionsConfig {
    fn read(env: &Env<'_>) -> Result<Option<Self>, ConfigError> {
        let regions = env.list("CALLSIGN_REGIONS");
        if regions.is_empty() {
            return Ok(None);
        }
        let local = env.required(
            "AWS_REGION",
            "the region this runs in, one of CALLSIGN_REGIONS",
        )?;
        let placement = Placement::new(&local, &regions)
            .map_err(|e| ConfigError(format!("CALLSIGN_REGIONS: {e}")))?;
        let mut dynamodb_endpoints = Vec::new();
        for entry in env.list("CALLSIGN_DYNAMODB_ENDPOINTS") {
            let (region, url) = entry
                .split_once('=')
                .map(|(r, u)| (r.trim(), u.trim()))
                .filter(|(r, u)| regions.iter().any(|known| known == r) && u.starts_with("http"))
                .ok_or_else(|| {
                    ConfigError(format!(
                        "CALLSIGN_DYNAMODB_ENDPOINTS: '{entry}' is not <region of CALLSIGN_REGIONS>=<http(s) URL>"
                    ))
                })?;
            dynamodb_endpoints.push((region.to_owned(), url.to_owned()));
        }
        Ok(Some(Self {
            placement,
            dynamodb_endpoints,
        }))
    }
}

/// The end-user front's settings (user-token function, local server).
#[derive(Debug, Clone)]
pub struct FrontConfig {
    pub policy: FrontPolicy,
    pub users: UserAuthConfig,
    /// Origins allowed to call the front from a browser; `*` allows any.
    pub cors_origins: Vec<String>,
}

#[derive(Debug, Clone)]
pub enum UserAuthConfig {
    /// Verify provider tokens here.
    Oidc(OidcSettings),
    /// API Gateway's JWT authorizer verified them; read its claims (issuer checked).
    Gateway { issuer: String },
    /// No sign-in configured: user routes answer 501.
    None,
}

/// An OpenID Connect provider whose tokens sign end users in (or authenticate admin
/// callers and Teams users, as a `TrustedIssuer`).
#[derive(Debug, Clone)]
pub struct OidcSettings {
    pub issuer: String,
    /// A token is for us if its `aud` (or Cognito's `client_id`) is one of these.
    pub audiences: Vec<String>,
    /// None: found through the issuer's discovery document.
    pub jwks_url: Option<String>,
    pub leeway_seconds: i64,
}

/// Where a trusted issuer's tokens carry their roles (or scopes): a claim, and a prefix
/// that values must have (and lose) to count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolesClaim {
    pub claim: String,
    pub prefix: String,
}

/// An issuer whose bearer tokens are trusted.
#[derive(Debug, Clone)]
pub struct TrustedIssuer {
    pub oidc: OidcSettings,
    pub roles: RolesClaim,
}

/// Bearer authentication of the admin API (README, "Bearer authentication").
#[derive(Debug, Clone, Default)]
pub struct AdminBearerConfig {
    /// None trusted: HMAC only.
    pub issuers: Vec<TrustedIssuer>,
    pub roles: RoleNames,
}

/// The Teams token exchange (README, "Teams users").
#[derive(Debug, Clone, Default)]
pub struct TeamsConfig {
    /// None trusted: no token is valid (401 `InvalidAccessToken`).
    pub issuers: Vec<TrustedIssuer>,
    pub policy: TeamsPolicy,
}

/// A trusted issuer as `CALLSIGN_ADMIN_ISSUERS` and `CALLSIGN_TEAMS_ISSUERS` list them.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct IssuerEntry {
    issuer: String,
    audiences: Vec<String>,
    #[serde(default)]
    jwks_url: Option<String>,
    #[serde(default)]
    roles_claim: Option<String>,
    #[serde(default)]
    role_prefix: String,
}

/// Entra ID's audiences for the Teams exchange: the ACS Teams API's URI and app id.
const TEAMS_AUDIENCES: &[&str] = &[
    "https://auth.msft.communication.azure.com",
    "1fd5118e-2576-4263-8130-9503064c837a",
];

/// The authorizer function's settings.
#[derive(Debug, Clone)]
pub struct AuthorizerConfig {
    /// Route key → capability; the default routes of a typical chat and calling backend.
    pub routes: RoutePolicy,
    /// How long a revocation marker read from the table is trusted.
    pub revocation_cache: Duration,
}

/// The local server's own settings, beside the deployment's.
#[derive(Clone)]
pub struct LocalConfig {
    /// With a random resource id when none is configured.
    pub config: Config,
    pub port: u16,
    /// Create the table and secrets when missing (against DynamoDB Local and moto).
    pub bootstrap: bool,
    /// The built-in development sign-in when no provider is configured.
    pub dev_oidc: bool,
    /// Where to write the endpoint and access key once listening (owner-only).
    pub ready_file: Option<PathBuf>,
    /// The primary access key to use (or sign with), instead of a generated one.
    pub access_key: Option<String>,
    /// How long a client may take to send a request's headers, and then its body.
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    /// Connections open at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Serve HTTPS with a self-signed certificate made at start.
    pub tls: bool,
    /// Where to write that certificate (PEM); None: a file in the temporary directory.
    pub tls_certificate: Option<PathBuf>,
    /// Serve the sample web app from this folder (examples/web-app), on its own origin.
    pub sample_app: Option<PathBuf>,
    /// Its port on 127.0.0.1 (0: a free one).
    pub sample_app_port: u16,
}

impl std::fmt::Debug for LocalConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalConfig")
            .field("config", &self.config)
            .field("port", &self.port)
            .field("bootstrap", &self.bootstrap)
            .field("dev_oidc", &self.dev_oidc)
            .field("ready_file", &self.ready_file)
            .field(
                "access_key",
                &self.access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("header_timeout", &self.header_timeout)
            .field("body_timeout", &self.body_timeout)
            .field("max_connections", &self.max_connections)
            .field("tls", &self.tls)
            .field("tls_certificate", &self.tls_certificate)
            .field("sample_app", &self.sample_app)
            .field("sample_app_port", &self.sample_app_port)
            .finish()
    }
}

/// Reads variables under the one set of rules.
struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Env<'_> {
    fn text(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn required(&self, name: &str, what: &str) -> Result<String, ConfigError> {
        self.text(name)
            .ok_or_else(|| ConfigError(format!("{name} is required ({what})")))
    }

    /// A whole number within `range`, or `default` when unset.
    fn whole<T: TryFrom<u64>>(
        &self,
        name: &str,
        default: T,
        range: std::ops::RangeInclusive<u64>,
        unit: &str,
    ) -> Result<T, ConfigError> {
        let Some(raw) = self.text(name) else {
            return Ok(default);
        };
        raw.parse::<u64>()
            .ok()
            .filter(|n| range.contains(n))
            .and_then(|n| T::try_from(n).ok())
            .ok_or_else(|| {
                let unit = if unit.is_empty() {
                    String::new()
                } else {
                    format!(" of {unit}")
                };
                ConfigError(format!(
                    "{name} must be a whole number{unit} from {} to {}, not {raw}",
                    range.start(),
                    range.end()
                ))
            })
    }

    fn seconds(
        &self,
        name: &str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<u64, ConfigError> {
        self.whole(name, default, range, "seconds")
    }

    fn flag(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.text(name).map(|v| v.to_ascii_lowercase()).as_deref() {
            None => Ok(default),
            Some("1" | "true" | "yes" | "on") => Ok(true),
            Some("0" | "false" | "no" | "off") => Ok(false),
            Some(other) => Err(ConfigError(format!(
                "{name} must be 1 or 0 (true or false), not {other}"
            ))),
        }
    }

    /// A comma-separated list; items trimmed, a trailing `/` dropped, empty items skipped.
    fn list(&self, name: &str) -> Vec<String> {
        self.text(name)
            .map(|list| {
                list.split(',')
                    .map(|item| item.trim().trim_end_matches('/').to_owned())
                    .filter(|item| !item.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn scopes(&self, name: &str, default: Scopes) -> Result<Scopes, ConfigError> {
        match self.text(name) {
            Some(list) => Scopes::parse(list.split(',').map(str::trim))
                .map_err(|e| ConfigError(format!("{name}: {e}"))),
            None => Ok(default),
        }
    }

    /// A value that goes into every token (see `is_token_safe`).
    fn claim(&self, name: &str, default: &str) -> Result<String, ConfigError> {
        let value = self.text(name).unwrap_or_else(|| default.to_owned());
        if is_token_safe(&value) {
            Ok(value)
        } else {
            Err(ConfigError(format!(
                "{name} must be printable ASCII without \" \\ > ? ~ (it goes into every token)"
            )))
        }
    }

    fn algorithm(&self) -> Result<SigningAlgorithm, ConfigError> {
        const NAME: &str = "CALLSIGN_SIGNING_ALGORITHM";
        match self.text(NAME) {
            Some(name) => SigningAlgorithm::parse(&name).ok_or_else(|| {
                ConfigError(format!("{NAME} must be ES256, RS256 or EdDSA, not {name}"))
            }),
            None => Ok(SigningAlgorithm::Es256),
        }
    }
}

const DAY_SECONDS: u64 = 86_400;
const ACTIVATION_MARGIN_SECONDS: u64 = 60;

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// `lookup` abstracts the environment so that tests need not mutate it.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env { lookup: &lookup };
        let resource_id = env
            .required("CALLSIGN_RESOURCE_ID", "a GUID")?
            .parse::<ResourceId>()
            .map_err(|e| ConfigError(format!("CALLSIGN_RESOURCE_ID: {e}")))?;
        let ttl_seconds = env.seconds("CALLSIGN_KEY_CACHE_TTL_SECONDS", 300, 0..=DAY_SECONDS)?;
        // Every function learns a rotated-in key within its key cache TTL (and the first
        // request after it, which starts the refresh), JWKS readers within the JWKS
        // max-age after that: a minute's margin covers the refresh itself.
        let activation = env.seconds(
            "CALLSIGN_KEY_ACTIVATION_SECONDS",
            ttl_seconds + u64::from(JWKS_MAX_AGE_SECONDS) + ACTIVATION_MARGIN_SECONDS,
            0..=7 * DAY_SECONDS,
        )?;
        Ok(Self {
            token: TokenSettings {
                resource_id,
                issuer: env.claim("CALLSIGN_TOKEN_ISSUER", "https://callsign.local")?,
                audience: env.claim("CALLSIGN_TOKEN_AUDIENCE", "callsign")?,
                region: env.claim("CALLSIGN_TOKEN_REGION", "amer")?,
                resource_location: env.claim("CALLSIGN_RESOURCE_LOCATION", "unitedstates")?,
                key_activation_seconds: i64::try_from(activation).expect("bounded above"),
            },
            table_name: env.text("CALLSIGN_TABLE_NAME"),
            signing_keys_secret_id: env.text("CALLSIGN_SIGNING_KEYS_SECRET_ID"),
            public_keys_secret_id: env.text("CALLSIGN_PUBLIC_KEYS_SECRET_ID"),
            access_keys_secret_id: env.text("CALLSIGN_ACCESS_KEYS_SECRET_ID"),
            public_hosts: env.list("CALLSIGN_PUBLIC_HOSTS"),
            public_base_url: env
                .text("CALLSIGN_PUBLIC_BASE_URL")
                .map(|url| url.trim_end_matches('/').to_owned()),
            key_cache_ttl: Duration::from_secs(ttl_seconds),
            signing_algorithm: env.algorithm()?,
            front: FrontConfig::read(&env)?,
            authorizer: AuthorizerConfig::read(&env)?,
            sweep: sweep_policy(&env)?,
            admin_bearer: AdminBearerConfig::read(&env)?,
            teams: TeamsConfig::read(&env)?,
            regions: RegionsConfig::read(&env)?,
            event_bus: env.event_bus()?,
        })
    }
}

impl Env<'_> {
    /// An EventBridge bus name (the default bus unless set) or ARN.
    fn event_bus(&self) -> Result<String, ConfigError> {
        let Some(bus) = self.text("CALLSIGN_EVENT_BUS") else {
            return Ok("default".to_owned());
        };
        let name_chars = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-_/".contains(&b))
        };
        if bus.len() <= 1600 && (bus.starts_with("arn:") || (bus.len() <= 256 && name_chars(&bus)))
        {
            Ok(bus)
        } else {
            Err(ConfigError(format!(
                "CALLSIGN_EVENT_BUS: '{bus}' is not an event bus name (letters, digits, . - _ /) or ARN"
            )))
        }
    }

    fn leeway(&self) -> Result<i64, ConfigError> {
        self.whole("CALLSIGN_OIDC_LEEWAY_SECONDS", 60, 0..=3600, "seconds")
    }

    /// A JSON list of trusted issuers; `roles_claim` where an entry names none.
    fn issuers(&self, name: &str, roles_claim: &str) -> Result<Vec<TrustedIssuer>, ConfigError> {
        let Some(json) = self.text(name) else {
            return Ok(Vec::new());
        };
        let entries: Vec<IssuerEntry> = serde_json::from_str(&json).map_err(|e| {
            ConfigError(format!(
                "{name} must be a JSON list of {{\"issuer\", \"audiences\", \"jwksUrl\"?, \"rolesClaim\"?, \"rolePrefix\"?}}: {e}"
            ))
        })?;
        let leeway_seconds = self.leeway()?;
        entries
            .into_iter()
            .map(|entry| {
                if !trusted_url(&entry.issuer)
                    || entry.jwks_url.as_deref().is_some_and(|u| !trusted_url(u))
                {
                    return Err(ConfigError(format!(
                        "{name}: issuer and jwksUrl must be https URLs ({})",
                        entry.issuer
                    )));
                }
                if entry.audiences.is_empty() || entry.audiences.iter().any(|a| a.trim().is_empty())
                {
                    return Err(ConfigError(format!(
                        "{name}: issuer {} needs at least one audience, and no empty one",
                        entry.issuer
                    )));
                }
                Ok(TrustedIssuer {
                    oidc: OidcSettings {
                        issuer: entry.issuer,
                        audiences: entry.audiences,
                        jwks_url: entry.jwks_url,
                        leeway_seconds,
                    },
                    roles: RolesClaim {
                        claim: entry.roles_claim.unwrap_or_else(|| roles_claim.to_owned()),
                        prefix: entry.role_prefix,
                    },
                })
            })
            .collect()
    }
}

/// An https URL, or plain http on loopback (a local issuer: the development issuer, tests).
fn trusted_url(url: &str) -> bool {
    if let Some(rest) = url.strip_prefix("https://") {
        return !rest.is_empty();
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    };
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

/// One entry per issuer: a token is checked against the entry of the issuer it names,
/// so a second entry would be silently ignored.
fn unique_issuers(name: &str, issuers: &[TrustedIssuer]) -> Result<(), ConfigError> {
    for (i, issuer) in issuers.iter().enumerate() {
        if issuers[..i]
            .iter()
            .any(|earlier| earlier.oidc.issuer == issuer.oidc.issuer)
        {
            return Err(ConfigError(format!(
                "{name}: issuer {} is listed twice (list all its audiences in one entry)",
                issuer.oidc.issuer
            )));
        }
    }
    Ok(())
}

impl AdminBearerConfig {
    fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        let defaults = RoleNames::default();
        let issuers = env.issuers("CALLSIGN_ADMIN_ISSUERS", "roles")?;
        unique_issuers("CALLSIGN_ADMIN_ISSUERS", &issuers)?;
        Ok(Self {
            issuers,
            roles: RoleNames {
                all: env.text("CALLSIGN_ADMIN_ROLE_ALL").unwrap_or(defaults.all),
                issue: env
                    .text("CALLSIGN_ADMIN_ROLE_ISSUE")
                    .unwrap_or(defaults.issue),
                read: env
                    .text("CALLSIGN_ADMIN_ROLE_READ")
                    .unwrap_or(defaults.read),
            },
        })
    }
}

impl TeamsConfig {
    fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        const TENANTS: &str = "CALLSIGN_TEAMS_TENANTS";
        let mut issuers = Vec::new();
        for tenant in env.list(TENANTS) {
            let tenant = uuid::Uuid::try_parse(&tenant)
                .map_err(|_| ConfigError(format!("{TENANTS}: {tenant} is not a tenant GUID")))?
                .as_hyphenated()
                .to_string();
            // Entra ID signs v1 and v2 tokens with the same keys, under two issuer names.
            for issuer in [
                format!("https://sts.windows.net/{tenant}/"),
                format!("https://login.microsoftonline.com/{tenant}/v2.0"),
            ] {
                issuers.push(TrustedIssuer {
                    oidc: OidcSettings {
                        issuer,
                        audiences: TEAMS_AUDIENCES.iter().map(|a| (*a).to_owned()).collect(),
                        jwks_url: Some(format!(
                            "https://login.microsoftonline.com/{tenant}/discovery/v2.0/keys"
                        )),
                        leeway_seconds: env.leeway()?,
                    },
                    roles: RolesClaim {
                        claim: "scp".into(),
                        prefix: String::new(),
                    },
                });
            }
        }
        issuers.extend(env.issuers("CALLSIGN_TEAMS_ISSUERS", "scp")?);
        unique_issuers(
            "CALLSIGN_TEAMS_TENANTS and CALLSIGN_TEAMS_ISSUERS",
            &issuers,
        )?;
        let mut policy = TeamsPolicy::default();
        let scopes = env.list("CALLSIGN_TEAMS_SCOPES");
        if !scopes.is_empty() {
            policy.required_scopes = scopes;
        }
        Ok(Self { issuers, policy })
    }
}

impl FrontConfig {
    fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        let defaults = FrontPolicy::default();
        let guest_max: i64 = env.whole("CALLSIGN_GUEST_MAX_MINUTES", 60, 60..=1440, "minutes")?;
        let guest_grace: i64 =
            env.whole("CALLSIGN_GUEST_GRACE_MINUTES", 60, 1..=10_080, "minutes")?;
        let policy = FrontPolicy {
            user_scopes: env.scopes("CALLSIGN_USER_SCOPES", defaults.user_scopes)?,
            guest_scopes: env.scopes("CALLSIGN_GUEST_SCOPES", defaults.guest_scopes)?,
            guest_max_lifetime: TokenLifetime::from_minutes(guest_max).expect("range checked"),
            guest_grace: chrono::Duration::minutes(guest_grace),
            guest_limit: env.whole("CALLSIGN_GUEST_LIMIT", 10, 1..=1_000_000_000, "requests")?,
            guest_window_seconds: env.whole(
                "CALLSIGN_GUEST_WINDOW_SECONDS",
                60,
                1..=DAY_SECONDS,
                "seconds",
            )?,
        };
        let trust_gateway = env.flag("CALLSIGN_OIDC_TRUST_GATEWAY", false)?;
        let users = match (env.text("CALLSIGN_OIDC_ISSUER"), trust_gateway) {
            (Some(issuer), true) => UserAuthConfig::Gateway { issuer },
            (Some(issuer), false) => UserAuthConfig::Oidc(OidcSettings {
                issuer,
                audiences: vec![env.required(
                    "CALLSIGN_OIDC_AUDIENCE",
                    "with CALLSIGN_OIDC_ISSUER: the app's client id",
                )?],
                jwks_url: env.text("CALLSIGN_OIDC_JWKS_URL"),
                leeway_seconds: env.leeway()?,
            }),
            (None, true) => {
                return Err(ConfigError(
                    "CALLSIGN_OIDC_TRUST_GATEWAY needs CALLSIGN_OIDC_ISSUER".into(),
                ));
            }
            (None, false) => UserAuthConfig::None,
        };
        Ok(Self {
            policy,
            users,
            cors_origins: env.list("CALLSIGN_CORS_ORIGINS"),
        })
    }
}

impl AuthorizerConfig {
    fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        let routes = match env.text("CALLSIGN_AUTHORIZER_ROUTES") {
            Some(json) => RoutePolicy::from_json(&json)
                .map_err(|e| ConfigError(format!("CALLSIGN_AUTHORIZER_ROUTES: {e}")))?,
            None => RoutePolicy::default_routes(),
        };
        // 0: revoke and delete count at once, as at introspection (DESIGN: "issue → revoke →
        // issue at once: the first token is rejected"); a cache trades that for reads.
        let revocation_seconds = env.seconds("CALLSIGN_REVOCATION_CACHE_SECONDS", 0, 0..=3600)?;
        Ok(Self {
            routes,
            revocation_cache: Duration::from_secs(revocation_seconds),
        })
    }
}

/// The retention sweep's settings (cleanup function); retention is off by default.
fn sweep_policy(env: &Env<'_>) -> Result<SweepPolicy, ConfigError> {
    let retention_days: Option<i64> = match env.text("CALLSIGN_RETENTION_DAYS") {
        Some(_) => Some(env.whole("CALLSIGN_RETENTION_DAYS", 0, 1..=9_999, "days")?),
        None => None,
    };
    Ok(SweepPolicy {
        retention: retention_days.map(chrono::Duration::days),
        page_size: env.whole("CALLSIGN_SWEEP_PAGE_SIZE", 100, 1..=10_000, "items")?,
        pages_per_run: env.whole("CALLSIGN_SWEEP_PAGES", 20, 1..=10_000, "pages")?,
    })
}

impl LocalConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env { lookup: &lookup };
        // The local server invents a resource id when none is configured.
        let resource_id = env
            .text("CALLSIGN_RESOURCE_ID")
            .unwrap_or_else(|| ResourceId::random().to_string());
        let config = Config::from_lookup(|name| match name {
            "CALLSIGN_RESOURCE_ID" => Some(resource_id.clone()),
            other => lookup(other),
        })?;
        Ok(Self {
            config,
            port: env.whole("CALLSIGN_PORT", 8080, 0..=65_535, "")?,
            bootstrap: env.flag("CALLSIGN_BOOTSTRAP", false)?,
            dev_oidc: env.flag("CALLSIGN_DEV_OIDC", true)?,
            ready_file: env.text("CALLSIGN_READY_FILE").map(PathBuf::from),
            access_key: env.text("CALLSIGN_ACCESS_KEY"),
            header_timeout: Duration::from_secs(env.seconds(
                "CALLSIGN_HEADER_TIMEOUT_SECONDS",
                10,
                1..=300,
            )?),
            body_timeout: Duration::from_secs(env.seconds(
                "CALLSIGN_BODY_TIMEOUT_SECONDS",
                30,
                1..=600,
            )?),
            max_connections: env.whole(
                "CALLSIGN_MAX_CONNECTIONS",
                256,
                1..=65_536,
                "connections",
            )?,
            tls: env.flag("CALLSIGN_TLS", false)?,
            tls_certificate: env.text("CALLSIGN_TLS_CERTIFICATE").map(PathBuf::from),
            sample_app: env.text("CALLSIGN_SAMPLE_APP").map(PathBuf::from),
            sample_app_port: env.whole("CALLSIGN_SAMPLE_APP_PORT", 8081, 0..=65_535, "")?,
        })
    }
}

/// What the Lambda service puts in a function's environment for the AWS SDK: the region
/// and the execution role's credentials, fixed for the life of the execution
/// environment. With it the functions build their SDK configuration directly instead of
/// through `aws-config`'s provider chains, which cost half a millisecond of every cold
/// start (`scripts/measure-cold-start`). None outside Lambda, when any of them is
/// missing, or when a variable that the chains would honour is set (a profile, FIPS or
/// dual-stack endpoints, retry settings): those keep `aws-config`.
pub struct LambdaAws {
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

/// Variables that only `aws-config` reads: any of them set keeps its provider chains.
const AWS_CONFIG_ONLY: &[&str] = &[
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_USE_FIPS_ENDPOINT",
    "AWS_USE_DUALSTACK_ENDPOINT",
    "AWS_MAX_ATTEMPTS",
    "AWS_RETRY_MODE",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_SDK_UA_APP_ID",
    "AWS_NEW_RETRIES_2026",
    "AWS_ACCOUNT_ID",
    "AWS_ACCOUNT_ID_ENDPOINT_MODE",
    "AWS_REQUEST_CHECKSUM_CALCULATION",
    "AWS_RESPONSE_CHECKSUM_VALIDATION",
    "AWS_DISABLE_REQUEST_COMPRESSION",
    "AWS_REQUEST_MIN_COMPRESSION_SIZE_BYTES",
    "AWS_DISABLE_CLOCK_SKEW_CORRECTION",
    "AWS_AUTH_SCHEME_PREFERENCE",
    "AWS_SIGV4A_SIGNING_REGION_SET",
];

impl LambdaAws {
    pub fn from_env() -> Option<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let env = Env { lookup: &lookup };
        env.text("AWS_LAMBDA_FUNCTION_NAME")?;
        if AWS_CONFIG_ONLY.iter().any(|name| env.text(name).is_some()) {
            return None;
        }
        Some(Self {
            region: env.text("AWS_REGION")?,
            access_key_id: env.text("AWS_ACCESS_KEY_ID")?,
            secret_access_key: env.text("AWS_SECRET_ACCESS_KEY")?,
            session_token: env.text("AWS_SESSION_TOKEN"),
        })
    }
}

impl std::fmt::Debug for LambdaAws {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LambdaAws")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// An endpoint override for one AWS service, as the SDK reads it: `AWS_ENDPOINT_URL_<ID>`
/// (the service id in capitals, spaces as underscores: `SECRETS_MANAGER`), else
/// `AWS_ENDPOINT_URL` (local servers, tests).
pub fn aws_endpoint_url(service_id: &str) -> Option<String> {
    aws_endpoint_url_from(service_id, |name| std::env::var(name).ok())
}

fn aws_endpoint_url_from(
    service_id: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    let env = Env { lookup: &lookup };
    let service = service_id.to_ascii_uppercase().replace(' ', "_");
    env.text(&format!("AWS_ENDPOINT_URL_{service}"))
        .or_else(|| env.text("AWS_ENDPOINT_URL"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn events_go_to_the_default_bus_unless_one_is_named() {
        assert_eq!(with(&[]).unwrap().event_bus, "default");
        assert_eq!(
            with(&[("CALLSIGN_EVENT_BUS", "callsign-events")])
                .unwrap()
                .event_bus,
            "callsign-events"
        );
        let arn = "arn:aws:events:eu-west-1:123456789012:event-bus/apps";
        assert_eq!(with(&[("CALLSIGN_EVENT_BUS", arn)]).unwrap().event_bus, arn);
        let refused = with(&[("CALLSIGN_EVENT_BUS", "my bus")]).unwrap_err().0;
        assert!(refused.contains("CALLSIGN_EVENT_BUS"), "{refused}");
    }

    #[test]
    fn one_region_unless_regions_are_listed_and_a_bad_list_is_refused() {
        assert!(with(&[]).unwrap().regions.is_none());
        let regions = with(&[
            ("CALLSIGN_REGIONS", "us-east-1, eu-west-1"),
            ("AWS_REGION", "eu-west-1"),
            (
                "CALLSIGN_DYNAMODB_ENDPOINTS",
                "us-east-1=http://127.0.0.1:8000",
            ),
        ])
        .unwrap()
        .regions
        .unwrap();
        assert_eq!(regions.placement.local(), "eu-west-1");
        assert_eq!(
            regions.dynamodb_endpoints,
            [("us-east-1".to_owned(), "http://127.0.0.1:8000".to_owned())]
        );
        let refused = |pairs: &[(&str, &str)]| with(pairs).unwrap_err().0;
        assert!(refused(&[("CALLSIGN_REGIONS", "us-east-1,eu-west-1")]).contains("AWS_REGION"));
        assert!(
            refused(&[
                ("CALLSIGN_REGIONS", "us-east-1,eu-west-1"),
                ("AWS_REGION", "ap-south-1")
            ])
            .contains("not one of")
        );
        assert!(
            refused(&[
                ("CALLSIGN_REGIONS", "us-east-1,eu-west-1"),
                ("AWS_REGION", "us-east-1"),
                (
                    "CALLSIGN_DYNAMODB_ENDPOINTS",
                    "ap-south-1=http://127.0.0.1:1"
                ),
            ])
            .contains("CALLSIGN_DYNAMODB_ENDPOINTS")
        );
    }

    fn lambda_aws(pairs: &[(&str, &str)]) -> Option<LambdaAws> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        LambdaAws::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn lambda_aws_only_in_lambda_with_everything_and_nothing_aws_config_alone_reads() {
        let lambda = [
            ("AWS_LAMBDA_FUNCTION_NAME", "issue-token"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "session"),
        ];
        let found = lambda_aws(&lambda).unwrap();
        assert_eq!(found.region, "eu-west-1");
        assert_eq!(found.session_token.as_deref(), Some("session"));
        assert!(!format!("{found:?}").contains("secret"));
        assert!(lambda_aws(&lambda[1..]).is_none(), "outside Lambda");
        assert!(lambda_aws(&lambda[..3]).is_none(), "no secret key");
        for name in AWS_CONFIG_ONLY {
            let with = [&lambda[..], &[(*name, "1")]].concat();
            assert!(lambda_aws(&with).is_none(), "{name}");
        }
    }

    #[test]
    fn endpoint_urls_per_service_then_global() {
        let lookup = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let both = lookup(&[
            ("AWS_ENDPOINT_URL_SECRETS_MANAGER", "http://127.0.0.1:1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:2"),
        ]);
        assert_eq!(
            aws_endpoint_url_from("Secrets Manager", both).as_deref(),
            Some("http://127.0.0.1:1")
        );
        assert_eq!(
            aws_endpoint_url_from("DynamoDB", both).as_deref(),
            Some("http://127.0.0.1:2")
        );
        assert_eq!(aws_endpoint_url_from("DynamoDB", lookup(&[])), None);
    }

    const RESOURCE: (&str, &str) = (
        "CALLSIGN_RESOURCE_ID",
        "2dee53b4-368b-45b4-ab52-8493fb117652",
    );

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    fn with(extra: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut vars = vec![RESOURCE];
        vars.extend_from_slice(extra);
        config(&vars)
    }

    fn refusal(extra: &[(&str, &str)]) -> String {
        with(extra).expect_err("refused").to_string()
    }

    #[test]
    fn defaults_apply_and_resource_id_is_required() {
        assert_eq!(
            config(&[]).unwrap_err().to_string(),
            "configuration: CALLSIGN_RESOURCE_ID is required (a GUID)"
        );
        let c = with(&[]).unwrap();
        assert_eq!(c.token.audience, "callsign");
        assert_eq!(c.token.issuer, "https://callsign.local");
        assert_eq!(c.token.region, "amer");
        assert_eq!(c.token.resource_location, "unitedstates");
        assert_eq!(c.key_cache_ttl, Duration::from_secs(300));
        assert_eq!(c.token.key_activation_seconds, 660);
        assert_eq!(c.signing_algorithm, SigningAlgorithm::Es256);
        assert!(c.table_name.is_none());
        assert_eq!(c.authorizer.revocation_cache, Duration::ZERO);
        assert!(c.sweep.retention.is_none());
        assert_eq!((c.sweep.page_size, c.sweep.pages_per_run), (100, 20));
    }

    #[test]
    fn the_resource_id_must_be_a_guid() {
        assert!(
            config(&[("CALLSIGN_RESOURCE_ID", "not-a-guid")])
                .unwrap_err()
                .to_string()
                .contains("CALLSIGN_RESOURCE_ID: 'not-a-guid' is not a GUID")
        );
        let c = config(&[(
            "CALLSIGN_RESOURCE_ID",
            " 2dee53b4-368b-45b4-ab52-8493fb117652 ",
        )]);
        assert!(c.is_ok(), "values are trimmed");
    }

    #[test]
    fn token_claims_must_be_token_safe() {
        for name in [
            "CALLSIGN_TOKEN_ISSUER",
            "CALLSIGN_TOKEN_AUDIENCE",
            "CALLSIGN_TOKEN_REGION",
            "CALLSIGN_RESOURCE_LOCATION",
        ] {
            assert_eq!(
                refusal(&[(name, "https://x?y")]),
                format!(
                    "configuration: {name} must be printable ASCII without \" \\ > ? ~ (it goes into every token)"
                )
            );
        }
        let c = with(&[("CALLSIGN_TOKEN_ISSUER", " https://id.example ")]).unwrap();
        assert_eq!(c.token.issuer, "https://id.example");
    }

    #[test]
    fn every_number_is_whole_and_within_its_range() {
        let cases = [
            ("CALLSIGN_KEY_CACHE_TTL_SECONDS", "seconds from 0 to 86400"),
            (
                "CALLSIGN_KEY_ACTIVATION_SECONDS",
                "seconds from 0 to 604800",
            ),
            ("CALLSIGN_GUEST_MAX_MINUTES", "minutes from 60 to 1440"),
            ("CALLSIGN_GUEST_GRACE_MINUTES", "minutes from 1 to 10080"),
            ("CALLSIGN_GUEST_LIMIT", "requests from 1 to 1000000000"),
            ("CALLSIGN_GUEST_WINDOW_SECONDS", "seconds from 1 to 86400"),
            (
                "CALLSIGN_REVOCATION_CACHE_SECONDS",
                "seconds from 0 to 3600",
            ),
            ("CALLSIGN_RETENTION_DAYS", "days from 1 to 9999"),
            ("CALLSIGN_SWEEP_PAGE_SIZE", "items from 1 to 10000"),
            ("CALLSIGN_SWEEP_PAGES", "pages from 1 to 10000"),
        ];
        for (name, range) in cases {
            for bad in ["soon", "-1", "1.5", "99999999999999999999", "99999999999"] {
                assert_eq!(
                    refusal(&[(name, bad)]),
                    format!("configuration: {name} must be a whole number of {range}, not {bad}"),
                    "{name}={bad}"
                );
            }
        }
        let oidc = [
            ("CALLSIGN_OIDC_ISSUER", "https://idp"),
            ("CALLSIGN_OIDC_AUDIENCE", "app"),
            ("CALLSIGN_OIDC_LEEWAY_SECONDS", "3601"),
        ];
        assert_eq!(
            refusal(&oidc),
            "configuration: CALLSIGN_OIDC_LEEWAY_SECONDS must be a whole number of seconds from 0 to 3600, not 3601"
        );
        let c = with(&[
            ("CALLSIGN_KEY_CACHE_TTL_SECONDS", " 60 "),
            ("CALLSIGN_GUEST_LIMIT", "5"),
            ("CALLSIGN_GUEST_WINDOW_SECONDS", "30"),
            ("CALLSIGN_GUEST_MAX_MINUTES", "120"),
            ("CALLSIGN_GUEST_GRACE_MINUTES", "15"),
            ("CALLSIGN_REVOCATION_CACHE_SECONDS", "20"),
            ("CALLSIGN_RETENTION_DAYS", "30"),
            ("CALLSIGN_SWEEP_PAGE_SIZE", "25"),
            ("CALLSIGN_SWEEP_PAGES", "3"),
        ])
        .unwrap();
        assert_eq!(c.key_cache_ttl, Duration::from_secs(60));
        assert_eq!(
            c.token.key_activation_seconds, 420,
            "TTL plus the JWKS max-age plus a minute"
        );
        assert_eq!(c.front.policy.guest_limit, 5);
        assert_eq!(c.front.policy.guest_window_seconds, 30);
        assert_eq!(c.front.policy.guest_max_lifetime.minutes(), 120);
        assert_eq!(c.front.policy.guest_grace, chrono::Duration::minutes(15));
        assert_eq!(c.authorizer.revocation_cache, Duration::from_secs(20));
        assert_eq!(c.sweep.retention, Some(chrono::Duration::days(30)));
        assert_eq!((c.sweep.page_size, c.sweep.pages_per_run), (25, 3));
        let c = with(&[("CALLSIGN_KEY_ACTIVATION_SECONDS", "0")]).unwrap();
        assert_eq!(c.token.key_activation_seconds, 0);
    }

    #[test]
    fn the_signing_algorithm_is_one_of_three() {
        assert_eq!(
            refusal(&[("CALLSIGN_SIGNING_ALGORITHM", "HS256")]),
            "configuration: CALLSIGN_SIGNING_ALGORITHM must be ES256, RS256 or EdDSA, not HS256"
        );
        for (name, alg) in [
            ("ES256", SigningAlgorithm::Es256),
            ("RS256", SigningAlgorithm::Rs256),
            (" EdDSA ", SigningAlgorithm::EdDsa),
        ] {
            let c = with(&[("CALLSIGN_SIGNING_ALGORITHM", name)]).unwrap();
            assert_eq!(c.signing_algorithm, alg);
        }
    }

    #[test]
    fn names_of_aws_resources_are_trimmed() {
        let c = with(&[
            ("CALLSIGN_TABLE_NAME", " callsign "),
            ("CALLSIGN_SIGNING_KEYS_SECRET_ID", "callsign/signing"),
            ("CALLSIGN_PUBLIC_KEYS_SECRET_ID", "\tcallsign/public\n"),
            ("CALLSIGN_ACCESS_KEYS_SECRET_ID", " callsign/access "),
        ])
        .unwrap();
        assert_eq!(c.table_name.as_deref(), Some("callsign"));
        assert_eq!(
            c.signing_keys_secret_id.as_deref(),
            Some("callsign/signing")
        );
        assert_eq!(c.public_keys_secret_id.as_deref(), Some("callsign/public"));
        assert_eq!(c.access_keys_secret_id.as_deref(), Some("callsign/access"));
        let c = with(&[("CALLSIGN_TABLE_NAME", "  ")]).unwrap();
        assert!(c.table_name.is_none(), "blank is unset");
    }

    #[test]
    fn lists_are_trimmed_without_trailing_slashes() {
        let c = with(&[
            ("CALLSIGN_PUBLIC_HOSTS", "api.example.com/, other.example ,"),
            ("CALLSIGN_PUBLIC_BASE_URL", "https://api.example.com/ "),
            (
                "CALLSIGN_CORS_ORIGINS",
                "https://app.example/, https://admin.example",
            ),
        ])
        .unwrap();
        assert_eq!(c.public_hosts, vec!["api.example.com", "other.example"]);
        assert_eq!(
            c.public_base_url.as_deref(),
            Some("https://api.example.com")
        );
        assert_eq!(
            c.front.cors_origins,
            vec!["https://app.example", "https://admin.example"]
        );
    }

    #[test]
    fn end_user_sign_in_settings() {
        let c = with(&[]).unwrap();
        assert_eq!(c.front.policy.user_scopes.to_claim(), "chat,voip");
        assert_eq!(
            c.front.policy.guest_scopes.to_claim(),
            "chat.join.limited,voip.join"
        );
        assert!(matches!(c.front.users, UserAuthConfig::None));
        assert!(c.front.cors_origins.is_empty());
        assert_eq!(
            refusal(&[("CALLSIGN_OIDC_ISSUER", "https://idp")]),
            "configuration: CALLSIGN_OIDC_AUDIENCE is required (with CALLSIGN_OIDC_ISSUER: the app's client id)"
        );
        assert_eq!(
            refusal(&[("CALLSIGN_USER_SCOPES", "chat,admin")]),
            "configuration: CALLSIGN_USER_SCOPES: Invalid scope 'admin'. Valid scopes are: chat, chat.join, chat.join.limited, voip, voip.join."
        );
        assert!(refusal(&[("CALLSIGN_GUEST_SCOPES", "x")]).contains("CALLSIGN_GUEST_SCOPES"));
        assert_eq!(
            refusal(&[("CALLSIGN_OIDC_TRUST_GATEWAY", "1")]),
            "configuration: CALLSIGN_OIDC_TRUST_GATEWAY needs CALLSIGN_OIDC_ISSUER"
        );
        assert_eq!(
            refusal(&[("CALLSIGN_OIDC_TRUST_GATEWAY", "maybe")]),
            "configuration: CALLSIGN_OIDC_TRUST_GATEWAY must be 1 or 0 (true or false), not maybe"
        );
        let c = with(&[
            ("CALLSIGN_OIDC_ISSUER", "https://idp"),
            ("CALLSIGN_OIDC_TRUST_GATEWAY", "true"),
        ])
        .unwrap();
        assert!(matches!(c.front.users, UserAuthConfig::Gateway { .. }));
        let c = with(&[
            ("CALLSIGN_OIDC_ISSUER", "https://idp"),
            ("CALLSIGN_OIDC_AUDIENCE", "app"),
            ("CALLSIGN_OIDC_JWKS_URL", "https://idp/keys"),
            ("CALLSIGN_OIDC_LEEWAY_SECONDS", "5"),
        ])
        .unwrap();
        let UserAuthConfig::Oidc(oidc) = c.front.users else {
            panic!("OIDC expected");
        };
        assert_eq!(
            (
                oidc.issuer.as_str(),
                oidc.audiences[0].as_str(),
                oidc.jwks_url.as_deref(),
                oidc.leeway_seconds
            ),
            ("https://idp", "app", Some("https://idp/keys"), 5)
        );
    }

    #[test]
    fn authorizer_routes_are_a_json_map_of_capabilities() {
        let c = with(&[(
            "CALLSIGN_AUTHORIZER_ROUTES",
            r#"{"GET /x":"chat.participate"}"#,
        )])
        .unwrap();
        assert!(c.authorizer.routes.capability("GET /x").is_some());
        assert!(
            c.authorizer
                .routes
                .capability("POST /chat/threads")
                .is_none()
        );
        assert!(
            refusal(&[("CALLSIGN_AUTHORIZER_ROUTES", r#"{"GET /x":"admin"}"#)])
                .starts_with("configuration: CALLSIGN_AUTHORIZER_ROUTES: ")
        );
    }

    #[test]
    fn the_local_server_settings() {
        let local = |vars: &[(&str, &str)]| {
            let map: HashMap<String, String> = vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            LocalConfig::from_lookup(|name| map.get(name).cloned())
        };
        let l = local(&[]).unwrap();
        assert_eq!(l.port, 8080);
        assert!(!l.bootstrap && l.dev_oidc);
        assert!(l.ready_file.is_none() && l.access_key.is_none());
        assert_eq!(
            (l.header_timeout, l.body_timeout, l.max_connections),
            (Duration::from_secs(10), Duration::from_secs(30), 256)
        );
        assert!(
            !l.tls && l.tls_certificate.is_none(),
            "plain HTTP by default"
        );
        assert_eq!((l.sample_app.as_ref(), l.sample_app_port), (None, 8081));
        let l = local(&[
            ("CALLSIGN_PORT", "0"),
            ("CALLSIGN_BOOTSTRAP", "1"),
            ("CALLSIGN_DEV_OIDC", "0"),
            ("CALLSIGN_READY_FILE", " /tmp/ready.json "),
            ("CALLSIGN_ACCESS_KEY", " a2V5 "),
            ("CALLSIGN_HEADER_TIMEOUT_SECONDS", "2"),
            ("CALLSIGN_BODY_TIMEOUT_SECONDS", "3"),
            ("CALLSIGN_MAX_CONNECTIONS", "4"),
            ("CALLSIGN_TLS", "true"),
            ("CALLSIGN_TLS_CERTIFICATE", " /tmp/local.pem "),
            ("CALLSIGN_SAMPLE_APP", "examples/web-app"),
            ("CALLSIGN_SAMPLE_APP_PORT", "0"),
            RESOURCE,
        ])
        .unwrap();
        assert_eq!(
            (l.sample_app.clone(), l.sample_app_port),
            (Some(PathBuf::from("examples/web-app")), 0)
        );
        assert_eq!(
            (l.header_timeout, l.body_timeout, l.max_connections),
            (Duration::from_secs(2), Duration::from_secs(3), 4)
        );
        assert!(l.tls);
        assert_eq!(l.tls_certificate, Some(PathBuf::from("/tmp/local.pem")));
        for (name, range) in [
            ("CALLSIGN_HEADER_TIMEOUT_SECONDS", "seconds from 1 to 300"),
            ("CALLSIGN_BODY_TIMEOUT_SECONDS", "seconds from 1 to 600"),
            ("CALLSIGN_MAX_CONNECTIONS", "connections from 1 to 65536"),
        ] {
            assert_eq!(
                local(&[(name, "0")]).unwrap_err().to_string(),
                format!("configuration: {name} must be a whole number of {range}, not 0")
            );
        }
        assert_eq!(l.port, 0);
        assert!(l.bootstrap && !l.dev_oidc);
        assert_eq!(l.ready_file, Some(PathBuf::from("/tmp/ready.json")));
        assert_eq!(l.access_key.as_deref(), Some("a2V5"));
        assert!(
            !format!("{l:?}").contains("a2V5"),
            "the access key is redacted"
        );
        assert_eq!(l.config.token.resource_id.to_string(), RESOURCE.1);
        assert_eq!(
            local(&[("CALLSIGN_PORT", "65536")])
                .unwrap_err()
                .to_string(),
            "configuration: CALLSIGN_PORT must be a whole number from 0 to 65535, not 65536"
        );
        assert!(
            local(&[("CALLSIGN_BOOTSTRAP", "yes please")])
                .unwrap_err()
                .to_string()
                .contains("CALLSIGN_BOOTSTRAP must be 1 or 0")
        );
    }

    #[test]
    fn admin_issuers_are_read_from_json_with_their_roles_claim() {
        let c = config(&[
            RESOURCE,
            (
                "CALLSIGN_ADMIN_ISSUERS",
                r#"[{"issuer":"https://cognito-idp.eu-west-1.amazonaws.com/pool","audiences":["client"],"rolesClaim":"scope","rolePrefix":"callsign/"},
                   {"issuer":"https://login.microsoftonline.com/t/v2.0","audiences":["api://callsign"],"jwksUrl":"https://login.microsoftonline.com/t/discovery/v2.0/keys"}]"#,
            ),
            ("CALLSIGN_ADMIN_ROLE_ISSUE", "Tokens.Issue"),
        ])
        .unwrap();
        let issuers = &c.admin_bearer.issuers;
        assert_eq!(issuers.len(), 2);
        assert_eq!(issuers[0].roles.claim, "scope");
        assert_eq!(issuers[0].roles.prefix, "callsign/");
        assert_eq!(issuers[1].roles.claim, "roles");
        assert_eq!(issuers[1].oidc.audiences, ["api://callsign"]);
        assert_eq!(c.admin_bearer.roles.issue, "Tokens.Issue");
        assert_eq!(c.admin_bearer.roles.all, "identity.admin");
        assert!(config(&[RESOURCE]).unwrap().admin_bearer.issuers.is_empty());
        let local = r#"[{"issuer":"http://127.0.0.1:8080/dev/oidc","audiences":["a"]}]"#;
        assert!(config(&[RESOURCE, ("CALLSIGN_ADMIN_ISSUERS", local)]).is_ok());
        for bad in [
            "{}",
            r#"[{"issuer":"http://idp.example","audiences":["a"]}]"#,
            r#"[{"issuer":"https://idp.example","audiences":[]}]"#,
            r#"[{"issuer":"https://idp.example","audiences":["a"],"typo":1}]"#,
            r#"[{"issuer":"https://idp.example","audiences":["a",""]}]"#,
            r#"[{"issuer":"http://localhost.evil.example","audiences":["a"]}]"#,
            r#"[{"issuer":"https://idp.example","audiences":["a"],"jwksUrl":"http://idp.example/keys"}]"#,
            r#"[{"issuer":"https://idp.example","audiences":["a"]},{"issuer":"https://idp.example","audiences":["b"]}]"#,
        ] {
            let err = config(&[RESOURCE, ("CALLSIGN_ADMIN_ISSUERS", bad)]).unwrap_err();
            assert!(err.0.contains("CALLSIGN_ADMIN_ISSUERS"), "{err}");
        }
    }

    #[test]
    fn teams_tenants_trust_both_entra_issuer_forms() {
        let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47";
        let c = config(&[
            RESOURCE,
            ("CALLSIGN_TEAMS_TENANTS", tenant),
            ("CALLSIGN_TEAMS_SCOPES", "Teams.ManageCalls"),
        ])
        .unwrap();
        let issuers: Vec<&str> = c
            .teams
            .issuers
            .iter()
            .map(|i| i.oidc.issuer.as_str())
            .collect();
        assert_eq!(
            issuers,
            [
                format!("https://sts.windows.net/{tenant}/"),
                format!("https://login.microsoftonline.com/{tenant}/v2.0")
            ]
        );
        assert!(c.teams.issuers.iter().all(|i| i.roles.claim == "scp"));
        assert_eq!(c.teams.policy.required_scopes, ["Teams.ManageCalls"]);
        assert!(config(&[RESOURCE, ("CALLSIGN_TEAMS_TENANTS", "contoso")]).is_err());
        let again =
            format!(r#"[{{"issuer":"https://sts.windows.net/{tenant}/","audiences":["a"]}}]"#);
        let twice = config(&[
            RESOURCE,
            ("CALLSIGN_TEAMS_TENANTS", tenant),
            ("CALLSIGN_TEAMS_ISSUERS", &again),
        ]);
        assert!(twice.unwrap_err().0.contains("listed twice"));
        assert_eq!(
            config(&[RESOURCE])
                .unwrap()
                .teams
                .policy
                .required_scopes
                .len(),
            2
        );
    }
}
