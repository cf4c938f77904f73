//! A hello-world `lambda_http` function: what `scripts/measure-cold-start` compares
//! callsign's functions with (start-up, first and warm latency, memory).

use lambda_http::{Body, Error, Request, Response, run, service_fn};

async fn hello(_: Request) -> Result<Response<Body>, Error> {
    Ok(Response::new(Body::from("hello")))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(hello)).await
}
