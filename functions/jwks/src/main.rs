//! Lambda function `jwks`: GET /.well-known/jwks.json and /.well-known/openid-configuration
//! (public: no HMAC, no access keys loaded).

use callsign::http::Function;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    callsign::lambda::run_http(Function::Jwks).await
}
