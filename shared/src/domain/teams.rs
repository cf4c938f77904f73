//! The Teams user token exchange (ACS's `POST /teamsUser/:exchangeAccessToken`): an Entra
//! ID access token that a Teams user's app obtained for them becomes a token for the user's
//! communication identity, `8:orgid:<oid>`, ending when the Entra token does.

use chrono::Utc;
use serde_json::Value;
use uuid::Uuid;

use super::Scopes;
use super::identity::IdentityId;
use super::ports::{ProviderTokenError, TrustedTokens};
use super::service::{IdentityService, ServiceError};
use super::token::{AccessToken, IssuedBy, TokenRejection};

/// What an exchanged token must carry, and what the new token grants.
#[derive(Debug, Clone)]
pub struct TeamsPolicy {
    /// Delegated scopes the Entra token must have (`scp`), by their short names.
    pub required_scopes: Vec<String>,
    /// The scopes of the communication token it becomes.
    pub token_scopes: Scopes,
}

impl Default for TeamsPolicy {
    fn default() -> Self {
        Self {
            required_scopes: vec!["Teams.ManageCalls".into(), "Teams.ManageChats".into()],
            token_scopes: Scopes::parse(["chat", "voip"]).expect("valid scopes"),
        }
    }
}

/// A Teams user's Entra token, verified: the user, the app it was issued to, its end.
#[derive(Debug, Clone)]
pub struct TeamsToken {
    app_id: Option<Uuid>,
    user_id: Uuid,
    expires_at: i64,
}

/// What the request says the token is for, checked against the token.
#[derive(Debug, Clone, Copy)]
pub struct TeamsClaimed {
    pub app_id: Uuid,
    pub user_id: Uuid,
}

#[derive(Debug, thiserror::Error)]
pub enum TeamsError {
    #[error("the Entra token is not valid ({0})")]
    InvalidToken(TokenRejection),
    #[error("the Entra token lacks the delegated scopes {0}")]
    MissingScopes(String),
    #[error("the token's keys cannot be had now: {0}")]
    Unavailable(String),
    #[error("appId does not match the token's application")]
    AppIdMismatch,
    #[error("userId does not match the token's user")]
    UserIdMismatch,
    #[error(transparent)]
    Service(#[from] ServiceError),
}

fn claim_uuid(claims: &Value, names: &[&str]) -> Option<Uuid> {
    names
        .iter()
        .find_map(|name| claims.get(*name).and_then(Value::as_str))
        .and_then(|text| Uuid::try_parse(text).ok())
}

/// A scope as Entra writes it, short (`Teams.ManageCalls`) or as a full URI; `required`
/// may be either too.
fn has_scope(scopes: &[String], required: &str) -> bool {
    let required = required.rsplit('/').next().unwrap_or(required);
    scopes.iter().any(|scope| {
        scope == required
            || scope
                .strip_suffix(required)
                .is_some_and(|prefix| prefix.ends_with('/'))
    })
}

/// The token alone, checked before the request's other fields, as ACS does: an
/// invalid token is refused whatever the fields hold.
pub async fn verify(
    issuers: &dyn TrustedTokens,
    policy: &TeamsPolicy,
    token: &str,
) -> Result<TeamsToken, TeamsError> {
    let verified = issuers
        .verify(token, Utc::now())
        .await
        .map_err(|e| match e {
            ProviderTokenError::Rejected(reason) => TeamsError::InvalidToken(reason),
            ProviderTokenError::Unavailable(why) => TeamsError::Unavailable(why),
        })?;
    let missing: Vec<&str> = policy
        .required_scopes
        .iter()
        .filter(|required| !has_scope(&verified.roles, required))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(TeamsError::MissingScopes(missing.join(", ")));
    }
    let user_id = claim_uuid(&verified.claims, &["oid"])
        .ok_or(TeamsError::InvalidToken(TokenRejection::Malformed))?;
    let expires_at = verified
        .claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or(TeamsError::InvalidToken(TokenRejection::Malformed))?;
    // Accepted within the clock-skew leeway, but a token that ends before it starts
    // is no answer.
    if expires_at <= Utc::now().timestamp() {
        return Err(TeamsError::InvalidToken(TokenRejection::Expired));
    }
    Ok(TeamsToken {
        // v1 tokens name the app in `appid`, v2 tokens in `azp`.
        app_id: claim_uuid(&verified.claims, &["appid", "azp"]),
        user_id,
        expires_at,
    })
}

/// A token for the Teams user's `8:orgid:` identity, ending when their Entra token does,
/// if the request names the token's app and user.
pub fn exchange(
    service: &IdentityService,
    policy: &TeamsPolicy,
    token: &TeamsToken,
    claimed: TeamsClaimed,
    issued_by: &IssuedBy,
) -> Result<AccessToken, TeamsError> {
    if token.app_id != Some(claimed.app_id) {
        return Err(TeamsError::AppIdMismatch);
    }
    if token.user_id != claimed.user_id {
        return Err(TeamsError::UserIdMismatch);
    }
    Ok(service.issue_teams_token(
        &IdentityId::teams_user(token.user_id),
        policy.token_scopes,
        token.expires_at,
        issued_by,
    )?)
}

#[cfg(test)]
mod tests {
    use super::has_scope;

    #[test]
    fn scopes_match_by_short_name_or_full_uri() {
        let scopes = vec![
            "https://auth.msft.communication.azure.com/Teams.ManageCalls".to_owned(),
            "Teams.ManageChats".to_owned(),
        ];
        assert!(has_scope(&scopes, "Teams.ManageCalls"));
        assert!(has_scope(&scopes, "Teams.ManageChats"));
        assert!(!has_scope(&scopes, "ManageCalls"));
        assert!(has_scope(
            &scopes,
            "https://auth.msft.communication.azure.com/Teams.ManageChats"
        ));
        assert!(!has_scope(
            &["xTeams.ManageCalls".to_owned()],
            "Teams.ManageCalls"
        ));
    }
}
