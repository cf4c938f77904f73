//! Lambda function `user-token`: the end-user front. POST /user/token, GET and DELETE
//! /user (a provider token as Bearer, or API Gateway's JWT authorizer in front), and
//! POST /guest/token (anonymous, throttled).

use callsign::api::Operation;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    callsign::lambda::run(Operation::FRONT).await
}
