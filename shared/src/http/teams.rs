//! `POST /teamsUser/:exchangeAccessToken`: a Teams user's Entra ID token for a callsign
//! token of their `8:orgid:` identity. Answers as ACS does, in its order: 401
//! `InvalidAccessToken` for a token that is missing or not valid here, whatever the other
//! fields hold; then 400 `ValidationError` for an appId or userId that is missing,
//! malformed, or not the token's.

use std::sync::Arc;

use http::StatusCode;
use serde_json::Value;
use uuid::Uuid;

use super::identities::{field, parse_object, token_response};
use super::{ApiError, ApiRequest, ApiResponse, App};
use crate::domain::ports::TrustedTokens;
use crate::domain::teams::{self, TeamsClaimed, TeamsError, TeamsPolicy};
use crate::domain::token::IssuedBy;

/// The issuers whose tokens Teams users bring, and what they must carry.
pub struct TeamsApp {
    pub issuers: Arc<dyn TrustedTokens>,
    pub policy: TeamsPolicy,
}

/// A string field that is present and not blank (None: absent, null or blank); a value of
/// another type is refused. `target` is its name as ACS spells it in errors.
fn text<'a>(
    object: &'a serde_json::Map<String, Value>,
    name: &str,
    target: &'static str,
) -> Result<Option<&'a str>, ApiError> {
    match field(object, name) {
        Some(Value::String(text)) => Ok(Some(text.as_str()).filter(|t| !t.trim().is_empty())),
        None => Ok(None),
        Some(_) => Err(ApiError::validation(
            target,
            format!("{target}: The {target} field must be a string."),
        )),
    }
}

/// The token, or 401: ACS answers a missing or empty token as an invalid one.
fn token_field(object: &serde_json::Map<String, Value>) -> Result<&str, ApiError> {
    text(object, "token", "Token")?.ok_or_else(invalid_token)
}

/// appId and userId: both present, then both GUIDs (ACS's messages and targets).
fn claimed(object: &serde_json::Map<String, Value>) -> Result<TeamsClaimed, ApiError> {
    let required = |name, target: &'static str| {
        text(object, name, target)?.ok_or_else(|| {
            ApiError::validation(target, format!("{target}: The {target} field is required."))
        })
    };
    let app_id = required("appId", "AppId")?;
    let user_id = required("userId", "UserId")?;
    let guid = |text: &str, target: &'static str, name: &str| {
        Uuid::try_parse(text.trim()).map_err(|_| {
            ApiError::validation(target, format!("Provided {name} has invalid format."))
        })
    };
    Ok(TeamsClaimed {
        app_id: guid(app_id, "appId", "AppId")?,
        user_id: guid(user_id, "userId", "UserId")?,
    })
}

fn invalid_token() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "InvalidAccessToken",
        "Provided access token is not valid.",
    )
}

impl From<TeamsError> for ApiError {
    fn from(err: TeamsError) -> Self {
        match err {
            TeamsError::InvalidToken(reason) => {
                tracing::info!(reason = reason.code(), "Teams token refused");
                invalid_token()
            }
            TeamsError::MissingScopes(_) => {
                tracing::info!(%err, "Teams token refused");
                invalid_token()
            }
            TeamsError::AppIdMismatch => {
                ApiError::validation("appId", "AAD application is not the expected one.")
            }
            TeamsError::UserIdMismatch => {
                ApiError::validation("userId", "Provided AAD token issued for unexpected user.")
            }
            TeamsError::Unavailable(why) => {
                tracing::warn!(%why, "Teams issuer keys unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "The token issuer's keys cannot be loaded now. Retry the request.",
                )
            }
            TeamsError::Service(err) => err.into(),
        }
    }
}

pub(super) async fn exchange(
    app: &App,
    request: &ApiRequest,
    issued_by: &IssuedBy,
) -> Result<ApiResponse, ApiError> {
    let object = parse_object(&request.body)?;
    let token = token_field(&object)?;
    let Some(teams) = &app.teams else {
        // With nothing trusted no token is valid: the contract's answer (Microsoft's tests
        // expect 401 for any token they cannot exchange); the log says why.
        tracing::warn!("Teams token refused: no Teams tenant or issuer is configured");
        return Err(invalid_token());
    };
    let verified = teams::verify(teams.issuers.as_ref(), &teams.policy, token).await?;
    let token = teams::exchange(
        &app.service,
        &teams.policy,
        &verified,
        claimed(&object)?,
        issued_by,
    )?;
    Ok(token_response(&token))
}
