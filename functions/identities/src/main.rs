//! Lambda function `identities`: POST /identities, GET and DELETE /identities/{id}.

use callsign::api::Operation;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    callsign::lambda::run(Operation::IDENTITIES).await
}
