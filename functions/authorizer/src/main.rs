//! Lambda function `authorizer`: API Gateway HTTP API authorizer (payload 2.0, simple
//! responses) enforcing callsign tokens, the capability table and revocation.

// One event at a time: a single-threaded runtime starts sooner and hands nothing between threads.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    callsign::lambda::run_authorizer().await
}
