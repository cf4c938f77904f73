//! The one route table: every HTTP route with its operation, how its callers
//! authenticate, and the Lambda function that serves it. Routing, route keys, `Allow`
//! headers, CORS methods and `callsign-local routes` (which the OpenAPI and template
//! checks read) all derive from it.

use std::borrow::Cow;
use std::sync::LazyLock;

use http::Method;
use percent_encoding::percent_decode_str;

use crate::domain::admin::Permission;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    CreateIdentity,
    GetIdentity,
    DeleteIdentity,
    IssueToken,
    RevokeTokens,
    LookupCustomId,
    ExchangeTeamsToken,
    Jwks,
    OpenIdConfiguration,
    IntrospectToken,
    UserToken,
    GetUser,
    DeleteUser,
    GuestToken,
}

/// How a route's callers authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// HMAC-signed with an access key, or a bearer token from a trusted issuer, with an
    /// api-version: the ACS admin API and introspection. Unauthenticated callers learn
    /// nothing, not even that a route exists.
    Admin,
    /// Anyone: the public key set and discovery metadata (each GET answers HEAD too).
    Public,
    /// End users (an identity provider's token) and guests; browsers get CORS.
    EndUser,
}

/// The Lambda functions that serve HTTP routes (crate names under `functions/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Identities,
    IssueToken,
    RevokeTokens,
    CustomIdLookup,
    Jwks,
    Introspect,
    UserToken,
}

impl Function {
    pub fn name(self) -> &'static str {
        match self {
            Self::Identities => "identities",
            Self::IssueToken => "issue-token",
            Self::RevokeTokens => "revoke-tokens",
            Self::CustomIdLookup => "custom-id-lookup",
            Self::Jwks => "jwks",
            Self::Introspect => "introspect",
            Self::UserToken => "user-token",
        }
    }
}

pub struct Route {
    /// The route key, `METHOD /path/{param}`: API Gateway's, but for a tail parameter,
    /// which a gateway route writes greedy (`gateway_path`).
    pub key: &'static str,
    pub operation: Operation,
    pub access: Access,
    pub function: Function,
    /// The last parameter takes the rest of the path: a customId may hold `/`, and a
    /// gateway that decodes `%2F` would otherwise split it.
    pub tail: bool,
}

const fn route(
    key: &'static str,
    operation: Operation,
    access: Access,
    function: Function,
) -> Route {
    Route {
        key,
        operation,
        access,
        function,
        tail: false,
    }
}

use Access::{Admin, EndUser, Public};
use Operation as Op;

pub const ROUTES: &[Route] = &[
    route(
        "POST /identities",
        Op::CreateIdentity,
        Admin,
        Function::Identities,
    ),
    route(
        "GET /identities/{id}",
        Op::GetIdentity,
        Admin,
        Function::Identities,
    ),
    route(
        "DELETE /identities/{id}",
        Op::DeleteIdentity,
        Admin,
        Function::Identities,
    ),
    route(
        "POST /identities/{id}/:issueAccessToken",
        Op::IssueToken,
        Admin,
        Function::IssueToken,
    ),
    route(
        "POST /identities/{id}/:revokeAccessTokens",
        Op::RevokeTokens,
        Admin,
        Function::RevokeTokens,
    ),
    Route {
        tail: true,
        ..route(
            "GET /customIds/{customId}",
            Op::LookupCustomId,
            Admin,
            Function::CustomIdLookup,
        )
    },
    route(
        "POST /teamsUser/:exchangeAccessToken",
        Op::ExchangeTeamsToken,
        Admin,
        Function::IssueToken,
    ),
    route(
        "GET /.well-known/jwks.json",
        Op::Jwks,
        Public,
        Function::Jwks,
    ),
    route(
        "GET /.well-known/openid-configuration",
        Op::OpenIdConfiguration,
        Public,
        Function::Jwks,
    ),
    route(
        "POST /tokens/:introspect",
        Op::IntrospectToken,
        Admin,
        Function::Introspect,
    ),
    route(
        "POST /user/token",
        Op::UserToken,
        EndUser,
        Function::UserToken,
    ),
    route("GET /user", Op::GetUser, EndUser, Function::UserToken),
    route("DELETE /user", Op::DeleteUser, EndUser, Function::UserToken),
    route(
        "POST /guest/token",
        Op::GuestToken,
        EndUser,
        Function::UserToken,
    ),
];

impl Route {
    pub fn method(&self) -> &'static str {
        &self.key[..self.space()]
    }

    /// Where the key's method ends. A byte scan: routing reads every route's method and
    /// path on every request, and `split_once` costs several times as much.
    fn space(&self) -> usize {
        self.key
            .bytes()
            .position(|b| b == b' ')
            .unwrap_or(self.key.len())
    }

    pub fn path(&self) -> &'static str {
        self.key.get(self.space() + 1..).unwrap_or("")
    }

    /// The path as an API Gateway route writes it: a tail parameter is greedy, and named
    /// `{proxy+}`, the one greedy name SAM turns into `*` in the Lambda permission's
    /// source ARN (a literal `{customId+}` there would match no request). The functions
    /// read the raw path, never the gateway's path parameters.
    pub fn gateway_path(&self) -> Cow<'static, str> {
        match self.path().rsplit_once('/') {
            Some((fixed, _)) if self.tail => Cow::Owned(format!("{fixed}/{{proxy+}}")),
            _ => Cow::Borrowed(self.path()),
        }
    }

    /// The methods it answers: its own, and HEAD for a public GET.
    fn answers(&self, method: &Method) -> bool {
        method.as_str() == self.method()
            || (self.access == Public && self.method() == "GET" && method == Method::HEAD)
    }

    /// The raw (still percent-encoded) parameter, if the path is this route's. Allocates
    /// only for a tail parameter that spans segments (routing runs on every request).
    fn match_path<'a>(
        &self,
        pattern: &[&'static str],
        segments: &[&'a str],
    ) -> Option<RawParameter<'a>> {
        let parts = pattern.len();
        let tail = self.tail;
        if segments.len() < parts || (!tail && segments.len() != parts) {
            return None;
        }
        let mut parameter = None;
        for (i, part) in pattern.iter().enumerate() {
            let segment = segments[i];
            match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(name) if !segment.is_empty() => {
                    let raw = if i + 1 == parts && tail && segments.len() > parts {
                        Cow::Owned(segments[i..].join("/"))
                    } else {
                        Cow::Borrowed(segment)
                    };
                    parameter = Some((name, raw));
                }
                Some(_) => return None,
                None if *part == segment => {}
                None => return None,
            }
        }
        // Extra segments only ever belong to a tail parameter.
        if segments.len() > parts && parameter.is_none() {
            return None;
        }
        Some(parameter)
    }
}

impl Operation {
    pub fn route(self) -> &'static Route {
        ROUTES
            .iter()
            .find(|route| route.operation == self)
            .expect("every operation has a route")
    }

    pub fn route_key(self) -> &'static str {
        self.route().key
    }

    pub fn access(self) -> Access {
        self.route().access
    }

    /// Whether it verifies our tokens (or publishes the keys that do): those functions
    /// hold the public keys.
    pub fn verifies(self) -> bool {
        matches!(
            self,
            Self::IntrospectToken | Self::Jwks | Self::OpenIdConfiguration
        )
    }

    /// Whether it issues tokens: only the functions serving such operations hold the
    /// private signing keys.
    pub fn signs(self) -> bool {
        matches!(
            self,
            Self::CreateIdentity
                | Self::IssueToken
                | Self::ExchangeTeamsToken
                | Self::UserToken
                | Self::GuestToken
        )
    }

    /// What an admin caller needs for it (bearer callers by their roles).
    pub fn permission(self) -> Permission {
        match self {
            Self::CreateIdentity | Self::IssueToken | Self::ExchangeTeamsToken => Permission::Issue,
            Self::DeleteIdentity | Self::RevokeTokens => Permission::Manage,
            Self::GetIdentity | Self::LookupCustomId | Self::IntrospectToken => Permission::Read,
            // Not admin operations: no admin caller reaches them.
            Self::Jwks
            | Self::OpenIdConfiguration
            | Self::UserToken
            | Self::GetUser
            | Self::DeleteUser
            | Self::GuestToken => Permission::Read,
        }
    }
}

/// Which operations a process serves: one Lambda function's, or all of them (the local
/// server, tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    All,
    Function(Function),
}

impl Served {
    pub fn serves(self, operation: Operation) -> bool {
        self.serves_route(operation.route())
    }

    fn serves_route(self, route: &Route) -> bool {
        match self {
            Self::All => true,
            Self::Function(function) => route.function == function,
        }
    }

    /// Whether any operation it serves verifies tokens.
    pub fn verifies(self) -> bool {
        ROUTES
            .iter()
            .any(|route| route.operation.verifies() && self.serves_route(route))
    }

    /// Whether any operation it serves issues tokens.
    pub fn signs(self) -> bool {
        ROUTES
            .iter()
            .any(|route| route.operation.signs() && self.serves_route(route))
    }

    /// Whether any route it serves is of this kind.
    pub fn has(self, access: Access) -> bool {
        ROUTES
            .iter()
            .any(|route| route.access == access && self.serves_route(route))
    }
}

/// A request's route, with its path parameter (percent-decoded) if it has one.
#[derive(Debug)]
pub struct Matched {
    pub operation: Operation,
    pub parameter: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unrouted {
    NotFound,
    /// The path is served, with other methods (the `Allow` header value), to callers
    /// authenticated as `access` says.
    MethodNotAllowed {
        allow: String,
        access: Access,
    },
    /// The path parameter is not valid percent-encoded UTF-8.
    BadParameter(&'static str),
}

/// Matches a raw path: split on `/` first, then percent-decode the parameter, since ids
/// contain `:` and action segments start with one.
pub fn match_route(method: &Method, path: &str) -> Result<Matched, Unrouted> {
    let segments = segments(path);
    // Only the routes that answer the method are matched against the path; the others
    // are looked at only to tell a wrong method from a wrong path.
    let found = routes()
        .filter(|(route, _)| route.answers(method))
        .find_map(|(route, pattern)| Some((route, route.match_path(pattern, &segments)?)));
    let Some((route, raw)) = found else {
        return Err(match methods(&routes_at(path)) {
            Some((allow, access)) => Unrouted::MethodNotAllowed { allow, access },
            None => Unrouted::NotFound,
        });
    };
    let parameter = match raw {
        Some((_, raw)) if !raw.contains('%') => Some(raw.into_owned()),
        Some((name, raw)) => Some(
            percent_decode_str(&raw)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| Unrouted::BadParameter(name))?,
        ),
        None => None,
    };
    Ok(Matched {
        operation: route.operation,
        parameter,
    })
}

/// Where a tail parameter that spans segments starts in `path` (a customId holding `/`,
/// as a gateway that decodes `%2F` delivers it); None for any other path.
pub fn spanning_tail(path: &str) -> Option<usize> {
    ROUTES.iter().filter(|route| route.tail).find_map(|route| {
        let (fixed, _) = route.path().rsplit_once('/')?;
        let rest = path.strip_prefix(fixed)?.strip_prefix('/')?;
        (!rest.starts_with('/') && rest.contains('/')).then_some(fixed.len() + 1)
    })
}

/// The methods the end-user routes at `path` answer, for CORS preflights; None elsewhere.
pub fn end_user_methods(path: &str) -> Option<String> {
    // Most requests are admin ones: a look at the first segment settles those.
    let trimmed = path.trim_start_matches('/');
    let first = trimmed.split_once('/').map_or(trimmed, |(first, _)| first);
    let starts_with_first = |route: &Route| {
        route.path()[1..]
            .strip_prefix(first)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    if first.is_empty()
        || !ROUTES
            .iter()
            .any(|route| route.access == EndUser && starts_with_first(route))
    {
        return None;
    }
    match methods(&routes_at(path)) {
        Some((allow, EndUser)) => Some(format!("{allow}, OPTIONS")),
        _ => None,
    }
}

type RawParameter<'a> = Option<(&'static str, Cow<'a, str>)>;

fn segments(path: &str) -> Vec<&str> {
    path.strip_prefix('/').unwrap_or(path).split('/').collect()
}

fn routes_at(path: &str) -> Vec<(&'static Route, RawParameter<'_>)> {
    let segments = segments(path);
    routes()
        .filter_map(|(route, pattern)| Some((route, route.match_path(pattern, &segments)?)))
        .collect()
}

/// Every route with its path split into segments, split once per process: routing runs
/// on every request.
fn routes() -> impl Iterator<Item = (&'static Route, &'static [&'static str])> {
    static PATTERNS: LazyLock<Vec<Vec<&'static str>>> = LazyLock::new(|| {
        ROUTES
            .iter()
            .map(|route| route.path()[1..].split('/').collect())
            .collect()
    });
    ROUTES.iter().zip(PATTERNS.iter().map(Vec::as_slice))
}

fn methods(at_path: &[(&'static Route, RawParameter<'_>)]) -> Option<(String, Access)> {
    let (first, _) = at_path.first()?;
    let mut methods = Vec::new();
    for (route, _) in at_path {
        methods.push(route.method());
        if route.access == Public && route.method() == "GET" {
            methods.push("HEAD");
        }
    }
    Some((methods.join(", "), first.access))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routed(method: Method, path: &str) -> Result<(Operation, Option<String>), Unrouted> {
        match_route(&method, path).map(|m| (m.operation, m.parameter))
    }

    #[test]
    fn every_route_key_routes_to_its_operation() {
        for route in ROUTES {
            let path = route
                .path()
                .replace("{id}", "8%3Aacs%3Ax_y")
                .replace("{customId}", "alice");
            let method = Method::from_bytes(route.method().as_bytes()).unwrap();
            assert_eq!(
                routed(method, &path).unwrap().0,
                route.operation,
                "{}",
                route.key
            );
            assert_eq!(route.operation.route_key(), route.key);
        }
    }

    #[test]
    fn parameters_are_decoded_after_splitting() {
        assert_eq!(
            routed(Method::POST, "/identities/8%3Aacs%3Ax/:issueAccessToken").unwrap(),
            (Operation::IssueToken, Some("8:acs:x".into()))
        );
        assert_eq!(
            routed(Method::GET, "/customIds/a/b%2Fc").unwrap(),
            (Operation::LookupCustomId, Some("a/b/c".into()))
        );
        assert_eq!(
            routed(Method::GET, "/identities/%FF"),
            Err(Unrouted::BadParameter("id"))
        );
    }

    /// `spanning_tail` takes everything before a tail parameter as literal.
    #[test]
    fn a_tail_parameter_is_its_route_s_only_one_and_its_last_segment() {
        for route in ROUTES.iter().filter(|route| route.tail) {
            let (fixed, last) = route.path().rsplit_once('/').unwrap();
            assert!(!fixed.contains('{'), "{}", route.key);
            assert!(
                last.starts_with('{') && last.ends_with('}'),
                "{}",
                route.key
            );
            assert_eq!(route.gateway_path(), format!("{fixed}/{{proxy+}}"));
        }
        assert_eq!(
            Operation::Jwks.route().gateway_path(),
            "/.well-known/jwks.json"
        );
    }

    #[test]
    fn a_tail_parameter_spans_segments_only_under_its_route() {
        assert_eq!(spanning_tail("/customIds/a/b"), Some("/customIds/".len()));
        for path in [
            "/customIds/a",
            "/customIds/a%2Fb",
            "/customIds//a",
            "/identities/a/b",
            "/customIdsx/a/b",
        ] {
            assert_eq!(spanning_tail(path), None, "{path}");
        }
    }

    #[test]
    fn unknown_paths_and_wrong_methods_are_told_apart() {
        for path in [
            "/",
            "/identities/",
            "/identities/x/y",
            "/customIds/",
            "/user/x",
            "/nope",
        ] {
            assert_eq!(routed(Method::GET, path), Err(Unrouted::NotFound), "{path}");
        }
        assert_eq!(
            routed(Method::PUT, "/identities/x"),
            Err(Unrouted::MethodNotAllowed {
                allow: "GET, DELETE".into(),
                access: Access::Admin
            })
        );
        assert_eq!(
            routed(Method::POST, "/.well-known/jwks.json"),
            Err(Unrouted::MethodNotAllowed {
                allow: "GET, HEAD".into(),
                access: Access::Public
            })
        );
        assert_eq!(
            routed(Method::HEAD, "/.well-known/jwks.json").unwrap().0,
            Operation::Jwks
        );
        assert!(
            routed(Method::HEAD, "/identities/x").is_err(),
            "HEAD is for public routes"
        );
    }

    #[test]
    fn cors_methods_come_from_the_end_user_routes() {
        assert_eq!(
            end_user_methods("/user").as_deref(),
            Some("GET, DELETE, OPTIONS")
        );
        assert_eq!(
            end_user_methods("/user/token").as_deref(),
            Some("POST, OPTIONS")
        );
        assert_eq!(
            end_user_methods("/guest/token").as_deref(),
            Some("POST, OPTIONS")
        );
        assert_eq!(end_user_methods("/identities"), None);
    }

    #[test]
    fn functions_serve_their_own_routes_only() {
        let jwks = Served::Function(Function::Jwks);
        assert!(jwks.serves(Operation::Jwks) && jwks.serves(Operation::OpenIdConfiguration));
        assert!(!jwks.serves(Operation::CreateIdentity));
        assert!(jwks.has(Access::Public) && !jwks.has(Access::Admin));
        assert!(Served::Function(Function::UserToken).has(Access::EndUser));
        assert!(Served::All.has(Access::Admin));
        let signing: Vec<&str> = [
            Function::Identities,
            Function::IssueToken,
            Function::RevokeTokens,
            Function::CustomIdLookup,
            Function::Jwks,
            Function::Introspect,
            Function::UserToken,
        ]
        .into_iter()
        .filter(|f| Served::Function(*f).signs())
        .map(Function::name)
        .collect();
        assert_eq!(signing, ["identities", "issue-token", "user-token"]);
    }
}
