//! Lambda function `identities`: POST /identities, GET and DELETE /identities/{id}.

use callsign::http::Function;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    callsign::lambda::run_http(Function::Identities).await
}
