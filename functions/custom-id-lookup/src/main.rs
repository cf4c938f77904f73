//! Lambda function `custom-id-lookup`: GET /customIds/{customId}.

use callsign::http::Function;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    callsign::lambda::run_http(Function::CustomIdLookup).await
}
