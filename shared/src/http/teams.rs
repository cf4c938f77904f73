//! `POST /teamsUser/:exchangeAccessToken`: a Teams user's Entra ID token for a callsign
//! token of their `8:orgid:` identity. Answers as ACS does: 400 `ValidationError` for a
//! missing field, 401 `InvalidAccessToken` for a token that is not valid here, 400 for an
//! appId or userId that is malformed or does not match the token.

use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use serde_json::Value;
use uuid::Uuid;

use super::identities::{field, parse_object, token_response};
use super::{ApiError, ApiRequest, ApiResponse, App};
use crate::domain::ports::TrustedTokens;
use crate::domain::teams::{self, TeamsError, TeamsExchange, TeamsPolicy};
use crate::domain::token::IssuedBy;

/// The issuers whose tokens Teams users bring, and what they must carry.
pub struct TeamsApp {
    pub issuers: Arc<dyn TrustedTokens>,
    pub policy: TeamsPolicy,
}

/// A required string field; `target` is its name as ACS spells it in errors.
fn required<'a>(
    object: &'a serde_json::Map<String, Value>,
    name: &str,
    target: &'static str,
) -> Result<&'a str, ApiError> {
    match field(object, name) {
        Some(Value::String(text)) => Ok(text),
        Some(_) => Err(ApiError::validation(
            target,
            format!("{target}: The {target} field must be a string."),
        )),
        None => Err(ApiError::validation(
            target,
            format!("{target}: The {target} field is required."),
        )),
    }
}

fn guid(text: &str, target: &'static str) -> Result<Uuid, ApiError> {
    if text.trim().is_empty() {
        return Err(ApiError::validation(
            target,
            format!("{target}: The {target} field is required."),
        ));
    }
    Uuid::try_parse(text.trim())
        .map_err(|_| ApiError::validation(target, format!("{target} must be a GUID.")))
}

fn parse(body: &Bytes) -> Result<TeamsExchange, ApiError> {
    let object = parse_object(body)?;
    let token = required(&object, "token", "Token")?;
    let app_id = guid(required(&object, "appId", "AppId")?, "AppId")?;
    let user_id = guid(required(&object, "userId", "UserId")?, "UserId")?;
    Ok(TeamsExchange {
        token: token.to_owned(),
        app_id,
        user_id,
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
            TeamsError::AppIdMismatch => ApiError::validation(
                "AppId",
                "AppId does not match the application the token was issued to.",
            ),
            TeamsError::UserIdMismatch => ApiError::validation(
                "UserId",
                "UserId does not match the user the token was issued to.",
            ),
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
    let exchange = parse(&request.body)?;
    let Some(teams) = &app.teams else {
        // With nothing trusted no token is valid: the contract's answer (Microsoft's tests
        // expect 401 for any token they cannot exchange); the log says why.
        tracing::warn!("Teams token refused: no Teams tenant or issuer is configured");
        return Err(invalid_token());
    };
    if exchange.token.trim().is_empty() {
        return Err(invalid_token());
    }
    let token = teams::exchange(
        &app.service,
        teams.issuers.as_ref(),
        &teams.policy,
        &exchange,
        issued_by,
    )
    .await?;
    Ok(token_response(&token))
}
