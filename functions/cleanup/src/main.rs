//! Lambda function `cleanup`: the DynamoDB Streams consumer (removes what refers to a
//! removed identity) and the scheduled retention sweep.

// One event at a time: a single-threaded runtime starts sooner and hands nothing between threads.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    callsign::lambda::run_cleanup().await
}
