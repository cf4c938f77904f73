//! Lambda function `identity-events`: the table's stream in, identity lifecycle events out
//! (EventBridge, source `callsign.identity`).

// One event at a time: a single-threaded runtime starts sooner and hands nothing between threads.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    callsign::lambda::run_identity_events().await
}
