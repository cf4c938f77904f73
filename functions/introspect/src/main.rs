//! Lambda function `introspect`: POST /tokens/:introspect (HMAC-authenticated, RFC 7662).

use callsign::http::Function;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    callsign::lambda::run_http(Function::Introspect).await
}
