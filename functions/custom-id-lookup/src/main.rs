//! Lambda function `custom-id-lookup`: GET /customIds/{customId}.

use callsign::api::Operation;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    callsign::lambda::run(Operation::CUSTOM_ID_LOOKUP).await
}
