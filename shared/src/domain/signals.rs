//! Operational signals: every metric callsign emits, with its dimensions, written through
//! the `metrics` facade (the Lambda transport records them in CloudWatch Embedded Metric
//! Format; elsewhere they cost nothing). Dimension values are a few fixed words each:
//! never an identity id, a customId or anything a caller chose.

/// The CloudWatch namespace of the metrics.
pub const NAMESPACE: &str = "callsign";
/// Counted once per cold start by the Lambda transport.
pub const COLD_STARTS: &str = "ColdStarts";

/// A metric, its dimensions (besides `Function`, added to all), and what it counts.
pub struct Metric {
    pub name: &'static str,
    pub dimensions: &'static [&'static str],
    pub meaning: &'static str,
}

pub const METRICS: &[Metric] = &[
    Metric {
        name: COLD_STARTS,
        dimensions: &[],
        meaning: "cold starts of a function",
    },
    Metric {
        name: "TokensIssued",
        dimensions: &["Route"],
        meaning: "access tokens issued, by route: admin, user, guest",
    },
    Metric {
        name: "IdentitiesCreated",
        dimensions: &["Route"],
        meaning: "identities created (not the ones a customId already mapped), by route",
    },
    Metric {
        name: "IdentitiesDeleted",
        dimensions: &["Route"],
        meaning: "identities deleted through the API, by route: admin, user",
    },
    Metric {
        name: "TokensRevoked",
        dimensions: &[],
        meaning: "revocations (every token of an identity so far)",
    },
    Metric {
        name: "AdminAuthFailures",
        dimensions: &["Reason"],
        meaning: "admin requests refused by HMAC authentication, by reason",
    },
    Metric {
        name: "IntrospectionResults",
        dimensions: &["Result"],
        meaning: "introspection answers: active, or the rejection reason",
    },
    Metric {
        name: "AuthorizerDecisions",
        dimensions: &["Result"],
        meaning: "authorizer decisions: allowed, or the denial reason",
    },
    Metric {
        name: "StoreErrors",
        dimensions: &["Kind"],
        meaning: "store calls that failed: throttled, unavailable, failed",
    },
    Metric {
        name: "GuestsThrottled",
        dimensions: &[],
        meaning: "guest token requests refused by the per-address limit",
    },
    Metric {
        name: callsign_verifier::cache::KEY_REFRESHES,
        dimensions: &["Keys", "Result"],
        meaning: "key refreshes from their source (signing, public, access, JWKS): ok, failed",
    },
    Metric {
        name: "KeyLoadFailures",
        dimensions: &["Keys"],
        meaning: "cold starts that could not load their keys (the function does not serve)",
    },
    Metric {
        name: "RotationSteps",
        dimensions: &["Step", "Result"],
        meaning: "signing-key rotation steps run, by step and result: ok, failed",
    },
    Metric {
        name: "RotationsFinished",
        dimensions: &[],
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
