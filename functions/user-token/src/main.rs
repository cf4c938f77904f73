//! Lambda function `user-token`: the end-user front. POST /user/token, GET and DELETE
//! /user (a provider token as Bearer, or API Gateway's JWT authorizer in front), and
//! POST /guest/token (anonymous, throttled).

use callsign::http::Function;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    callsign::lambda::run_http(Function::UserToken).await
}
