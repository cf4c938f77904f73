//! The ACS Identity operations: request bodies in, ACS bodies out.

use std::borrow::Cow;

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Map, Value, json};

use super::error::json_bytes_response;
use super::{ApiError, ApiResponse};
use crate::domain::front::CUSTOM_ID_PREFIX;
use crate::domain::identity::{CustomId, Identity, IdentityId, ResourceId};
use crate::domain::ports::Attempt;
use crate::domain::scope::{InvalidScopes, Scopes};
use crate::domain::service::{CreateIdentity, CreatedIdentity};
use crate::domain::signals::Origin;
use crate::domain::time;
use crate::domain::token::{AccessToken, IssuedBy, TokenLifetime, TokenRequest};

/// The identity a path names. An id of the ACS shape (`8:acs:<resource GUID>_<suffix>`)
/// whose suffix is not a GUID was never issued here, yet it is well-formed: as for any
/// such id, another resource's answers 401 `IdentityNotOwned` and ours 404.
pub(super) fn identity_id(
    target: Option<String>,
    ours: ResourceId,
) -> Result<IdentityId, ApiError> {
    let raw = target.unwrap_or_default();
    IdentityId::parse(&raw).map_err(|e| match ResourceId::of_acs_shaped(&raw) {
        Some(resource) if resource == ours => ApiError::not_found(),
        Some(_) => ApiError::not_owned(),
        None => ApiError::validation("id", e.to_string()),
    })
}

/// An empty body, or `null`, means `{}`; fields set to `null` count as absent.
pub(super) fn parse_object(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(_) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequestBody",
            "The request body must be a JSON object.",
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequestBody",
            format!("The request body is not valid JSON: {e}."),
        )),
    }
}

pub(super) fn field<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object.get(name).filter(|v| !v.is_null())
}

pub(super) fn parse_lifetime(object: &Map<String, Value>) -> Result<TokenLifetime, ApiError> {
    lifetime(field(object, "expiresInMinutes"))
}

fn lifetime(value: Option<&Value>) -> Result<TokenLifetime, ApiError> {
    let Some(value) = value else {
        return Ok(TokenLifetime::DEFAULT);
    };
    let out_of_range = || {
        ApiError::validation(
            "ExpiresInMinutes",
            format!(
                "ExpiresInMinutes value {value} is invalid. Value must be within the [{}, {}] interval.",
                TokenLifetime::MIN_MINUTES,
                TokenLifetime::MAX_MINUTES
            ),
        )
    };
    match value {
        // JSON does not tell 60 from 60.0: a whole number is a whole number.
        Value::Number(n) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 1e15)
                    // Whole and under 1e15 in magnitude: exactly representable.
                    .map(|f| {
                        #[allow(clippy::cast_possible_truncation)]
                        let whole = f as i64;
                        whole
                    })
            })
            .and_then(TokenLifetime::from_minutes)
            .ok_or_else(out_of_range),
        _ => Err(ApiError::validation(
            "ExpiresInMinutes",
            "ExpiresInMinutes must be a whole number of minutes.",
        )),
    }
}

/// A scope list, wherever it comes (`scopes`, a create's `createTokenWithScopes`): its
/// errors name the target `scopes`, as the contract words them.
pub(super) fn parse_scope_list(value: &Value) -> Result<Scopes, ApiError> {
    let target = "scopes";
    let Value::Array(items) = value else {
        return Err(ApiError::validation(
            target,
            "Scopes must be an array of strings.",
        ));
    };
    let names = items
        .iter()
        .map(|item| {
            item.as_str()
                .ok_or_else(|| ApiError::validation(target, "Scopes must be an array of strings."))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Scopes::parse(names).map_err(|e: InvalidScopes| ApiError::validation(target, e.to_string()))
}

pub(super) fn parse_create(
    body: &Bytes,
    attempt: Option<Attempt>,
    issued_by: IssuedBy,
) -> Result<CreateIdentity, ApiError> {
    let object = parse_object(body)?;
    let custom_id = match field(&object, "customId") {
        None => None,
        Some(Value::String(raw)) if raw.starts_with(CUSTOM_ID_PREFIX) => {
            return Err(ApiError::validation(
                "customId",
                format!(
                    "CustomIds starting with {} are reserved for end users.",
                    CUSTOM_ID_PREFIX
                ),
            ));
        }
        Some(Value::String(raw)) => Some(
            CustomId::parse(raw).map_err(|e| ApiError::validation("customId", e.to_string()))?,
        ),
        Some(_) => {
            return Err(ApiError::validation(
                "customId",
                "CustomId must be a string.",
            ));
        }
    };
    let lifetime = parse_lifetime(&object)?;
    let token = field(&object, "createTokenWithScopes")
        .map(parse_scope_list)
        .transpose()?
        .map(|scopes| TokenRequest { scopes, lifetime });
    Ok(CreateIdentity {
        custom_id,
        token,
        expires_at: None,
        origin: Origin::Admin,
        attempt,
        issued_by,
    })
}

/// An issue body of the expected shape, read without building a `Value` tree (every
/// token request comes through here). Anything else (another field, a duplicate, a wrong
/// type, not an object, not JSON) is read again by the general path, which names the
/// field at fault. Other fields are refused here: serde skips their values without the
/// checks a `Value` makes.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueBody<'a> {
    #[serde(borrow)]
    scopes: Option<Vec<Cow<'a, str>>>,
    #[serde(rename = "expiresInMinutes")]
    expires_in_minutes: Option<serde_json::Number>,
}

pub(super) fn parse_issue(body: &Bytes) -> Result<TokenRequest, ApiError> {
    // serde reads a struct from an array too: only an object takes this path.
    let is_object = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if is_object
        && let Ok(IssueBody {
            scopes: Some(names),
            expires_in_minutes,
        }) = serde_json::from_slice::<IssueBody<'_>>(body)
        && let Ok(scopes) = Scopes::parse(names.iter().map(|name| name.as_ref()))
        && let Ok(lifetime) = lifetime(expires_in_minutes.map(Value::Number).as_ref())
    {
        return Ok(TokenRequest { scopes, lifetime });
    }
    let object = parse_object(body)?;
    let scopes = match field(&object, "scopes") {
        None => {
            return Err(ApiError::validation(
                "Scopes",
                "Scopes: The Scopes field is required.",
            ));
        }
        Some(scopes) => parse_scope_list(scopes)?,
    };
    Ok(TokenRequest {
        scopes,
        lifetime: parse_lifetime(&object)?,
    })
}

/// What an identity object carries in a create's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum IdentityFields {
    /// `id`, and `customId` when one was asked for: every api-version but the customId
    /// previews answers a create without `lastTokenIssuedAt`.
    WithoutLastTokenIssuedAt,
    /// Everything the identity has.
    All,
}

/// The body of a create (and of the front's token routes): the identity and its token.
pub(super) fn created_body(created: &CreatedIdentity, fields: IdentityFields) -> Value {
    let mut body = json!({ "identity": identity_object(&created.identity, fields) });
    if let Some(token) = &created.token {
        body["accessToken"] = json!({
            "token": token.token,
            "expiresOn": time::epoch_seconds_to_wire(token.expires_on),
        });
    }
    body
}

/// An identity as a read answers it: everything it has.
pub(super) fn identity_body(identity: &Identity) -> Value {
    identity_object(identity, IdentityFields::All)
}

fn identity_object(identity: &Identity, fields: IdentityFields) -> Value {
    let mut body = json!({ "id": identity.id.as_str() });
    if let Some(custom_id) = &identity.custom_id {
        body["customId"] = json!(custom_id.as_str());
    }
    if let Some(at) = identity.last_token_issued_at
        && fields == IdentityFields::All
    {
        body["lastTokenIssuedAt"] = json!(time::to_wire(at));
    }
    body
}

/// The answer of every token route that returns just the token, `{"token","expiresOn"}`,
/// written directly: a token is base64url and dots and a wire time is digits and
/// punctuation, none of which JSON escapes, and serde_json's escaping scan over a token's
/// ~600 characters was most of the answer's cost on the issue path (benches/issue_path.rs).
pub(super) fn token_response(token: &AccessToken) -> ApiResponse {
    debug_assert!(
        token
            .token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    );
    let expires_on = time::epoch_seconds_to_wire(token.expires_on);
    let body = [
        r#"{"token":""#,
        &token.token,
        r#"","expiresOn":""#,
        &expires_on,
        r#""}"#,
    ]
    .concat();
    json_bytes_response(StatusCode::OK, body.into_bytes())
}
