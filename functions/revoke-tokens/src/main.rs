//! Lambda function `revoke-tokens`: POST /identities/{id}/:revokeAccessTokens.

use callsign::api::Operation;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    callsign::lambda::run(Operation::REVOKE_TOKENS).await
}
