//! Lambda function `cleanup`: the DynamoDB Streams consumer (removes what refers to a
//! removed identity) and the scheduled retention sweep.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    callsign::lambda::run_cleanup().await
}
