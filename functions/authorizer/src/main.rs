//! Lambda function `authorizer`: API Gateway HTTP API authorizer (payload 2.0, simple
//! responses) enforcing callsign tokens, the capability table and revocation.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    callsign::lambda::run_authorizer().await
}
