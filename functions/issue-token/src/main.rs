//! Lambda function `issue-token`: POST /identities/{id}/:issueAccessToken.

use callsign::api::Operation;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    callsign::lambda::run(Operation::ISSUE_TOKEN).await
}
