//! Lambda function `introspect`: POST /tokens/:introspect (HMAC-authenticated, RFC 7662).

use callsign::api::Operation;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    callsign::lambda::run(Operation::INTROSPECT).await
}
