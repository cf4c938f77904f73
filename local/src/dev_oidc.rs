//! A development OpenID Connect issuer, for local runs only: end users sign in through it
//! (`/user/token`), admin callers get bearer tokens from it, and it mints the Entra-style
//! tokens a Teams user's app would bring. Never part of a deployment.
//!
//!   POST {endpoint}/dev/oidc/token  {"sub":"alice"}  →  {"id_token":"…","token_type":"Bearer"}
//!   POST {endpoint}/dev/oidc/admin-token  (X-IDENTITY-HEADER)  {"roles":["token.issue"]}
//!   GET  {endpoint}/dev/oidc/msi/token?resource=…  (X-IDENTITY-HEADER): the App Service
//!        managed-identity protocol, which `DefaultAzureCredential` speaks when
//!        IDENTITY_ENDPOINT and IDENTITY_HEADER are set
//!   POST {endpoint}/dev/oidc/teams-token  {"oid":"<guid>","appid":"<guid>"}
//!   GET  {endpoint}/dev/oidc/.well-known/openid-configuration, /dev/oidc/jwks.json

use std::sync::Arc;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use bytes::Bytes;
use callsign::adapters::oidc::{DiscoveredProvider, OidcVerifier, TrustedIssuers};
use callsign::config::{OidcSettings, RolesClaim};
use callsign::domain::keys::{KeyError, KeySet, SigningAlgorithm, StoredKeySet};
use callsign_verifier::StaticKeys;
use http::{HeaderMap, Method, StatusCode, Uri};
use serde_json::{Value, json};

pub const AUDIENCE: &str = "callsign-dev";
/// What the ACS SDKs ask a token credential for (scope `https://communication.azure.com//.default`).
pub const ADMIN_AUDIENCES: [&str; 2] = [
    "https://communication.azure.com",
    "https://communication.azure.com/",
];
/// The audience of Entra tokens for the ACS Teams API.
pub const TEAMS_AUDIENCE: &str = "https://auth.msft.communication.azure.com";
const TEAMS_SCOPES: &str = "https://auth.msft.communication.azure.com/Teams.ManageCalls https://auth.msft.communication.azure.com/Teams.ManageChats";
const PREFIX: &str = "/dev/oidc";
const IDENTITY_HEADER: &str = "x-identity-header";

pub struct DevIssuer {
    keys: KeySet,
    issuer: String,
    /// Guards the routes that mint admin tokens, as App Service guards its endpoint.
    identity_header: String,
}

fn random_hex() -> String {
    let mut bytes = [0u8; 24];
    aws_lc_rs::rand::fill(&mut bytes).expect("system randomness");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

type Answer = (StatusCode, Value);

fn bad_request(message: &str) -> Answer {
    (StatusCode::BAD_REQUEST, json!({"error": message}))
}

impl DevIssuer {
    pub fn new(endpoint: &str) -> Result<Self, KeyError> {
        let keys =
            KeySet::from_secret(&StoredKeySet::generate(SigningAlgorithm::Rs256)?.to_secret())?;
        Ok(Self {
            keys,
            issuer: format!("{endpoint}{PREFIX}"),
            identity_header: random_hex(),
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The value `IDENTITY_HEADER` must hold for the managed-identity endpoint.
    pub fn identity_header(&self) -> &str {
        &self.identity_header
    }

    /// `IDENTITY_ENDPOINT`: the managed-identity token endpoint.
    pub fn identity_endpoint(&self) -> String {
        format!("{}/msi/token", self.issuer)
    }

    fn verifier_for(&self, audiences: &[&str]) -> OidcVerifier {
        let settings = OidcSettings {
            issuer: self.issuer.clone(),
            audiences: audiences.iter().map(|a| (*a).to_owned()).collect(),
            jwks_url: None,
            leeway_seconds: 60,
        };
        OidcVerifier::new(
            settings,
            Arc::new(StaticKeys(self.keys.public_keys().clone())),
        )
    }

    /// The front's verifier for this issuer's ID tokens (keys in hand, no HTTP).
    pub fn verifier(&self) -> OidcVerifier {
        self.verifier_for(&[AUDIENCE])
    }

    /// This issuer as the admin API's one trusted bearer issuer (roles in `roles`).
    pub fn admin_issuers(&self) -> TrustedIssuers {
        self.trusted(&ADMIN_AUDIENCES, "roles")
    }

    /// This issuer as the Teams exchange's one trusted issuer (scopes in `scp`).
    pub fn teams_issuers(&self) -> TrustedIssuers {
        self.trusted(&[TEAMS_AUDIENCE], "scp")
    }

    fn trusted(&self, audiences: &[&str], roles_claim: &str) -> TrustedIssuers {
        let roles = RolesClaim {
            claim: roles_claim.into(),
            prefix: String::new(),
        };
        TrustedIssuers::new(vec![(
            roles,
            DiscoveredProvider::ready(self.verifier_for(audiences)),
        )])
    }

    /// Answers the issuer's own routes; None for any other path.
    pub fn handle(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Option<http::Response<Bytes>> {
        let route = uri.path().strip_prefix(PREFIX)?;
        // Like a real provider's, the sign-in routes answer browsers of any origin (the
        // sample web app); the guarded ones (admin tokens) answer none.
        let open = !matches!(route, "/admin-token" | "/msi/token");
        if method == Method::OPTIONS && open {
            return Some(
                http::Response::builder()
                    .status(StatusCode::NO_CONTENT)
                    .header(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")
                    .header(http::header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST")
                    .header(http::header::ACCESS_CONTROL_ALLOW_HEADERS, "content-type")
                    .header(http::header::ACCESS_CONTROL_MAX_AGE, "600")
                    .body(Bytes::new())
                    .expect("static headers"),
            );
        }
        let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let (status, body) = match (method, route) {
            (&Method::GET, "/.well-known/openid-configuration") => (
                StatusCode::OK,
                json!({
                    "issuer": self.issuer,
                    "jwks_uri": format!("{}/jwks.json", self.issuer),
                    "token_endpoint": format!("{}/token", self.issuer),
                    "id_token_signing_alg_values_supported": ["RS256"],
                }),
            ),
            (&Method::GET, "/jwks.json") => (StatusCode::OK, self.keys.public_keys().to_jwks()),
            (&Method::POST, "/token") => self.user_token(&request),
            (&Method::POST, "/admin-token") => self
                .guarded(headers)
                .unwrap_or_else(|| self.admin_token(&request)),
            (&Method::GET, "/msi/token") => self
                .guarded(headers)
                .unwrap_or_else(|| self.managed_identity_token(uri.query().unwrap_or(""))),
            (&Method::POST, "/teams-token") => self.teams_token(&request),
            _ => (
                StatusCode::NOT_FOUND,
                json!({"error": "no such dev OIDC route"}),
            ),
        };
        let mut response = http::Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, "application/json");
        if open {
            response = response.header(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, "*");
        }
        Some(
            response
                .body(Bytes::from(body.to_string()))
                .expect("static headers"),
        )
    }

    /// Some(401) unless the request carries the identity header, compared in constant time.
    fn guarded(&self, headers: &HeaderMap) -> Option<Answer> {
        let presented = headers
            .get(IDENTITY_HEADER)
            .map(|value| value.as_bytes())
            .unwrap_or_default();
        match verify_slices_are_equal(presented, self.identity_header.as_bytes()) {
            Ok(()) => None,
            // In the shape both azure-identity and MSAL read; a 4xx (never 404 or 5xx,
            // which the credentials retry for seconds) fails the credential at once.
            Err(_) => {
                let message = "send the X-IDENTITY-HEADER the server printed at start";
                Some((
                    StatusCode::UNAUTHORIZED,
                    json!({"error": "unauthorized", "error_description": message, "statusCode": 401, "message": message}),
                ))
            }
        }
    }

    /// An ID token for `{"sub": "…"}` (and optionally `"minutes"`, default 60).
    fn user_token(&self, request: &Value) -> Answer {
        let Some(subject) = text(request, "sub") else {
            return bad_request("send {\"sub\": \"<user id>\"}");
        };
        let lifetime = minutes(request) * 60;
        let claims = json!({"aud": AUDIENCE, "sub": subject});
        self.bearer_answer("id_token", claims, lifetime)
    }

    /// An admin caller's access token: `{"roles": [...]}`, and optionally `"sub"`, `"aud"`
    /// and `"expiresIn"` seconds (negative: already expired, for tests).
    fn admin_token(&self, request: &Value) -> Answer {
        let roles: Vec<&str> = request
            .get("roles")
            .and_then(Value::as_array)
            .map(|roles| roles.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let lifetime = request
            .get("expiresIn")
            .and_then(Value::as_i64)
            .unwrap_or(3600)
            .clamp(-86_400, 86_400);
        let claims = json!({
            "aud": text(request, "aud").unwrap_or(ADMIN_AUDIENCES[0]),
            "sub": text(request, "sub").unwrap_or("dev-admin"),
            "roles": roles,
        });
        self.bearer_answer("access_token", claims, lifetime)
    }

    /// App Service's managed-identity answer for `resource`: a token with every admin role.
    fn managed_identity_token(&self, query: &str) -> Answer {
        let resource = url_param(query, "resource");
        let Some(resource) = resource.filter(|r| !r.is_empty()) else {
            return bad_request("the resource query parameter is required");
        };
        let lifetime = 3600;
        let claims = json!({
            "aud": resource,
            "sub": "dev-managed-identity",
            "roles": ["identity.admin"],
        });
        match self.sign(claims, lifetime) {
            Ok(token) => {
                let expires_on = chrono::Utc::now().timestamp() + lifetime;
                (
                    StatusCode::OK,
                    json!({
                        "access_token": token,
                        "expires_on": expires_on.to_string(),
                        "expires_in": lifetime,
                        "resource": resource,
                        "token_type": "Bearer",
                        "client_id": "dev-managed-identity",
                    }),
                )
            }
            Err(answer) => answer,
        }
    }

    /// An Entra-style access token of a Teams user: `{"oid", "appid"}` and optionally
    /// `"tid"`, `"scp"` (default: both Teams scopes), `"aud"` and `"expiresIn"` seconds.
    fn teams_token(&self, request: &Value) -> Answer {
        let (Some(oid), Some(appid)) = (text(request, "oid"), text(request, "appid")) else {
            return bad_request("send {\"oid\": \"<user object id>\", \"appid\": \"<app id>\"}");
        };
        let audience = text(request, "aud").unwrap_or(TEAMS_AUDIENCE);
        // Unguarded, so never a token the admin API would take as a bearer's.
        if ADMIN_AUDIENCES.contains(&audience) {
            return bad_request("a Teams token is not for the admin API's audience");
        }
        let lifetime = request
            .get("expiresIn")
            .and_then(Value::as_i64)
            .unwrap_or(3600)
            .clamp(-86_400, 172_800);
        let claims = json!({
            "aud": audience,
            "sub": oid,
            "oid": oid,
            "appid": appid,
            "tid": text(request, "tid").unwrap_or("00000000-0000-0000-0000-000000000000"),
            "scp": text(request, "scp").unwrap_or(TEAMS_SCOPES),
        });
        self.bearer_answer("access_token", claims, lifetime)
    }

    /// `{"<field>": <signed claims>, "token_type": "Bearer", "expires_in": lifetime}`.
    fn bearer_answer(&self, field: &str, claims: Value, lifetime: i64) -> Answer {
        match self.sign(claims, lifetime) {
            Ok(token) => (
                StatusCode::OK,
                json!({field: token, "token_type": "Bearer", "expires_in": lifetime}),
            ),
            Err(answer) => answer,
        }
    }

    /// Signs `claims` with `iss`, `iat` and `exp` (now + `lifetime` seconds) added.
    fn sign(&self, mut claims: Value, lifetime: i64) -> Result<String, Answer> {
        let now = chrono::Utc::now().timestamp();
        claims["iss"] = json!(self.issuer);
        claims["iat"] = json!(now);
        claims["exp"] = json!(now + lifetime);
        self.keys.current.sign_jwt(&claims).map_err(|e| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": e.to_string()}),
            )
        })
    }
}

fn text<'a>(request: &'a Value, name: &str) -> Option<&'a str> {
    request
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn minutes(request: &Value) -> i64 {
    request
        .get("minutes")
        .and_then(Value::as_i64)
        .unwrap_or(60)
        .clamp(1, 1440)
}

fn url_param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| {
            percent_encoding::percent_decode_str(&value.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
}
