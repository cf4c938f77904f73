//! Lambda function `rotate-signing-key`: Secrets Manager rotation of the signing key set.

// One event at a time: a single-threaded runtime starts sooner and hands nothing between threads.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    callsign::lambda::run_rotation().await
}
