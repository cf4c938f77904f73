//! Operational signals: every metric callsign emits, with its dimensions, written through
//! the `metrics` facade (the Lambda transport records them in CloudWatch Embedded Metric
//! Format; elsewhere they cost nothing). Dimension values are a few fixed words each:
//! never an identity id, a customId or anything a caller chose.

/// The CloudWatch namespace of the metrics.
pub const NAMESPACE: &str = "callsign";
/// Counted once per cold start by the Lambda transport.
pub const COLD_STARTS: &str = "ColdStarts";

/// The values one dimension takes, in groups (lists shared between metrics).
pub type Values = &'static [&'static [&'static str]];

/// A metric, its dimensions (besides `Function`, added to all) with the values each may
/// take, and what it counts.
pub struct Metric {
    pub name: &'static str,
    pub dimensions: &'static [&'static str],
    /// For each dimension, in order, every value it takes.
    pub values: &'static [Values],
    pub meaning: &'static str,
}

impl Metric {
    /// Every value of its `index`th dimension.
    pub fn values_of(&self, index: usize) -> Vec<&'static str> {
        self.values[index].concat()
    }
}

const ROUTES: &[&str] = &["admin", "user", "guest"];
const OK_OR_FAILED: &[&str] = &["ok", "failed"];
/// `TokenRejection::code` of every rejection: what introspection and the authorizer
/// answer besides their own results.
const REJECTIONS: &[&str] = &[
    "malformed",
    "unknown_key",
    "bad_signature",
    "expired",
    "not_yet_valid",
    "wrong_issuer",
    "wrong_audience",
    "revoked",
    "identity_deleted",
    "credential_revoked",
];
const INTROSPECTION_RESULTS: Values = &[&["active"], REJECTIONS];
const AUTHORIZER_RESULTS: Values = &[
    &[
        "allowed",
        "unknown_route",
        "missing_token",
        "scope_too_narrow",
        "store_unavailable",
    ],
    REJECTIONS,
];
/// `Denied::code` of every reason HMAC authentication refuses, then the bearer path's.
const AUTH_REASONS: &[&str] = &[
    "missing_header",
    "content_hash_mismatch",
    "bad_scheme",
    "stale_date",
    "bad_signature",
    "bearer_refused",
    "bearer_forbidden",
];
pub const BEARER_REFUSED: &str = "bearer_refused";
pub const BEARER_FORBIDDEN: &str = "bearer_forbidden";
const STEPS: &[&str] = &["createSecret", "setSecret", "testSecret", "finishSecret"];

pub const METRICS: &[Metric] = &[
    Metric {
        name: COLD_STARTS,
        dimensions: &[],
        values: &[],
        meaning: "cold starts of a function",
    },
    Metric {
        name: "TokensIssued",
        dimensions: &["Route"],
        values: &[&[ROUTES]],
        meaning: "access tokens issued, by route: admin, user, guest",
    },
    Metric {
        name: "IdentitiesCreated",
        dimensions: &["Route"],
        values: &[&[ROUTES]],
        meaning: "identities created (not the ones a customId already mapped), by route",
    },
    Metric {
        name: "IdentitiesDeleted",
        dimensions: &["Route"],
        values: &[&[ROUTES]],
        meaning: "identities deleted through the API, by route: admin, user",
    },
    Metric {
        name: "TokensRevoked",
        dimensions: &[],
        values: &[],
        meaning: "revocations (every token of an identity so far)",
    },
    Metric {
        name: "AdminAuthFailures",
        dimensions: &["Reason"],
        values: &[&[AUTH_REASONS]],
        meaning: "admin requests refused by authentication (HMAC or bearer), by reason",
    },
    Metric {
        name: "IntrospectionResults",
        dimensions: &["Result"],
        values: &[INTROSPECTION_RESULTS],
        meaning: "introspection answers: active, or the rejection reason",
    },
    Metric {
        name: "AuthorizerDecisions",
        dimensions: &["Result"],
        values: &[AUTHORIZER_RESULTS],
        meaning: "authorizer decisions: allowed, or the denial reason",
    },
    Metric {
        name: "StoreErrors",
        dimensions: &["Kind"],
        values: &[&[&["throttled", "unavailable", "failed"]]],
        meaning: "store calls that failed: throttled, unavailable, failed",
    },
    Metric {
        name: "GuestsThrottled",
        dimensions: &[],
        values: &[],
        meaning: "guest token requests refused by the per-address limit",
    },
    Metric {
        name: callsign_verifier::cache::KEY_REFRESHES,
        dimensions: &["Keys", "Result"],
        values: &[&[&["signing", "public", "access", "JWKS"]], &[OK_OR_FAILED]],
        meaning: "key refreshes from their source (signing, public, access, JWKS): ok, failed",
    },
    Metric {
        name: "KeyLoadFailures",
        dimensions: &["Keys"],
        values: &[&[&["signing", "public", "access"]]],
        meaning: "cold starts that could not load their keys (the function does not serve)",
    },
    Metric {
        name: "RotationSteps",
        dimensions: &["Step", "Result"],
        values: &[&[STEPS], &[OK_OR_FAILED]],
        meaning: "signing-key rotation steps run, by step and result: ok, failed",
    },
    Metric {
        name: "RotationsFinished",
        dimensions: &[],
        values: &[],
        meaning: "rotations that promoted a new key set (finishSecret)",
    },
];

/// Where a token or identity came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Admin,
    User,
    Guest,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::User => "user",
            Self::Guest => "guest",
        }
    }
}

pub fn token_issued(origin: Origin) {
    metrics::counter!("TokensIssued", "Route" => origin.as_str()).increment(1);
}

pub fn identity_created(origin: Origin) {
    metrics::counter!("IdentitiesCreated", "Route" => origin.as_str()).increment(1);
}

pub fn identity_deleted(origin: Origin) {
    metrics::counter!("IdentitiesDeleted", "Route" => origin.as_str()).increment(1);
}

pub fn tokens_revoked() {
    metrics::counter!("TokensRevoked").increment(1);
}

/// `reason`: one of the authentication's fixed reasons.
pub fn admin_auth_failed(reason: &'static str) {
    metrics::counter!("AdminAuthFailures", "Reason" => reason).increment(1);
}

/// `result`: `active` or a rejection code.
pub fn introspected(result: &'static str) {
    metrics::counter!("IntrospectionResults", "Result" => result).increment(1);
}

/// `result`: `allowed` or a denial reason.
pub fn authorizer_decided(result: &'static str) {
    metrics::counter!("AuthorizerDecisions", "Result" => result).increment(1);
}

/// `kind`: throttled, unavailable or failed.
pub fn store_error(kind: &'static str) {
    metrics::counter!("StoreErrors", "Kind" => kind).increment(1);
}

pub fn guest_throttled() {
    metrics::counter!("GuestsThrottled").increment(1);
}

pub fn key_load_failed(keys: &'static str) {
    metrics::counter!("KeyLoadFailures", "Keys" => keys).increment(1);
}

pub fn rotation_step(step: &'static str, ok: bool) {
    let result = if ok { "ok" } else { "failed" };
    metrics::counter!("RotationSteps", "Step" => step, "Result" => result).increment(1);
}

pub fn rotation_finished() {
    metrics::counter!("RotationsFinished").increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::authorizer::Denial;
    use crate::domain::token::TokenRejection;
    use crate::http::hmac::Denied;

    const ALL_REJECTIONS: [TokenRejection; 10] = [
        TokenRejection::Malformed,
        TokenRejection::UnknownKey,
        TokenRejection::BadSignature,
        TokenRejection::Expired,
        TokenRejection::NotYetValid,
        TokenRejection::WrongIssuer,
        TokenRejection::WrongAudience,
        TokenRejection::Revoked,
        TokenRejection::IdentityDeleted,
        TokenRejection::CredentialRevoked,
    ];

    #[test]
    fn every_metric_names_the_values_of_each_dimension() {
        for metric in METRICS {
            assert_eq!(
                metric.dimensions.len(),
                metric.values.len(),
                "{}",
                metric.name
            );
        }
    }

    #[test]
    fn the_documented_values_are_the_codes_the_code_emits() {
        let rejections: Vec<&str> = ALL_REJECTIONS.iter().map(|r| r.code()).collect();
        assert_eq!(rejections, REJECTIONS);
        let introspection = [vec!["active"], rejections.clone()].concat();
        assert_eq!(INTROSPECTION_RESULTS.concat(), introspection);
        let denials = [
            Denial::UnknownRoute,
            Denial::MissingToken,
            Denial::ScopeTooNarrow,
            Denial::StoreUnavailable,
        ];
        let mut authorizer: Vec<&str> = vec!["allowed"];
        authorizer.extend(denials.iter().map(|d| d.code()));
        authorizer.extend(ALL_REJECTIONS.iter().map(|r| Denial::Token(*r).code()));
        assert_eq!(authorizer, AUTHORIZER_RESULTS.concat());
        let reasons = [
            Denied::MissingHeader,
            Denied::ContentHashMismatch,
            Denied::BadScheme,
            Denied::StaleDate,
            Denied::BadSignature,
        ];
        let mut reasons: Vec<&str> = reasons.iter().map(|d| d.code()).collect();
        reasons.extend([BEARER_REFUSED, BEARER_FORBIDDEN]);
        assert_eq!(reasons, AUTH_REASONS);
        let steps = [
            crate::domain::rotation::Step::CreateSecret,
            crate::domain::rotation::Step::SetSecret,
            crate::domain::rotation::Step::TestSecret,
            crate::domain::rotation::Step::FinishSecret,
        ];
        let steps: Vec<&str> = steps.iter().map(|s| s.as_str()).collect();
        assert_eq!(steps, STEPS);
    }
}
