//! Lambda function `rotate-signing-key`: Secrets Manager rotation of the signing key set.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    callsign::lambda::run_rotation().await
}
