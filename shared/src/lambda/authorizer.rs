//! The authorizer function's event: an API Gateway (payload 2.0) authorizer request in,
//! a simple response out.

use aws_lambda_events::apigw::{
    ApiGatewayV2CustomAuthorizerSimpleResponse, ApiGatewayV2CustomAuthorizerV2Request,
};

use crate::domain::authorizer::Authorizer;

/// One authorizer decision for an API Gateway request (payload 2.0, simple response).
pub async fn authorize_event(
    authorizer: &Authorizer,
    request: &ApiGatewayV2CustomAuthorizerV2Request,
) -> ApiGatewayV2CustomAuthorizerSimpleResponse {
    let route_key = request.route_key.as_deref().unwrap_or_default();
    let authorization = request
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            request
                .identity_source
                .as_ref()?
                .first()
                .map(String::as_str)
        });
    let mut response = ApiGatewayV2CustomAuthorizerSimpleResponse::default();
    match authorizer
        .authorize(route_key, authorization, chrono::Utc::now())
        .await
    {
        Ok(allowed) => {
            tracing::info!(
                route = route_key,
                capability = allowed.capability.as_str(),
                "allowed"
            );
            response.is_authorized = true;
            response.context = serde_json::json!({
                "identityId": allowed.identity.as_str(),
                "scopes": allowed.scopes,
                "capability": allowed.capability.as_str(),
            });
        }
        Err(denial) => tracing::info!(route = route_key, ?denial, "denied"),
    }
    response
}
