//! Structured logs: JSON in Lambda (CloudWatch), compact text locally. Filter with
//! RUST_LOG (default `info`). Nothing logs a token, key or Authorization header.

use tracing_subscriber::EnvFilter;

fn filter() -> EnvFilter {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // The runtime traces whole events (headers, bodies, bearer tokens): never below info.
    ["lambda_runtime=info", "lambda_http=info"]
        .into_iter()
        .fold(filter, |f, directive| {
            f.add_directive(directive.parse().expect("static directive"))
        })
}

pub fn init_lambda() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter())
        .with_current_span(false)
        .with_ansi(false)
        .without_time() // CloudWatch stamps every line
        .try_init();
}

pub fn init_local() {
    let _ = tracing_subscriber::fmt()
        .compact()
        .with_env_filter(filter())
        .with_writer(std::io::stderr)
        .try_init();
}
