//! Lambda function `revoke-tokens`: POST /identities/{id}/:revokeAccessTokens.

use callsign::http::Function;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    callsign::lambda::run_http(Function::RevokeTokens).await
}
