//! Lambda function `user-token`: the end-user front. POST /user/token, GET and DELETE
//! /user (a provider token as Bearer, or API Gateway's JWT authorizer in front), and
//! POST /guest/token (anonymous, throttled).

use callsign::http::Function;

// One event at a time: a single-threaded runtime starts sooner and hands nothing between threads.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    callsign::lambda::run_http(Function::UserToken).await
}
