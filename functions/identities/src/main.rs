//! Lambda function `identities`: POST /identities, GET and DELETE /identities/{id}.

use callsign::http::Function;

// One event at a time: a single-threaded runtime starts sooner and hands nothing between threads.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    callsign::lambda::run_http(Function::Identities).await
}
