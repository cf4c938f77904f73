//! Lambda function `issue-token`: POST /identities/{id}/:issueAccessToken.

use callsign::http::Function;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    callsign::lambda::run_http(Function::IssueToken).await
}
