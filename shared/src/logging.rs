//! Structured logs: JSON in Lambda (CloudWatch), compact text locally. Filter with
//! RUST_LOG (default `info`). Nothing logs a token, key or Authorization header.

use tracing_subscriber::EnvFilter;

fn filter() -> EnvFilter {
    capped(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
}

/// These trace whole events and requests (headers, bodies, bearer tokens, the SDK's
/// signed requests and the secrets it writes): never below info, whatever RUST_LOG says.
fn capped(filter: EnvFilter) -> EnvFilter {
    [
        "lambda_runtime=info",
        "lambda_http=info",
        "aws_smithy_runtime=info",
        "aws_sigv4=info",
    ]
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::{Context, SubscriberExt};
    use tracing_subscriber::{EnvFilter, Layer, Registry};

    /// The targets of the events that got through.
    #[derive(Clone, Default)]
    struct Targets(Arc<Mutex<Vec<String>>>);

    impl<S: tracing::Subscriber> Layer<S> for Targets {
        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            let target = event.metadata().target().to_owned();
            self.0.lock().unwrap().push(target);
        }
    }

    #[test]
    fn the_sdk_and_the_runtime_never_trace_whatever_rust_log_says() {
        let seen = Targets::default();
        let filter = super::capped(EnvFilter::new("trace,aws_smithy_runtime=trace"));
        let subscriber = Registry::default().with(seen.clone().with_filter(filter));
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "aws_smithy_runtime::client::orchestrator", "request");
            tracing::trace!(target: "aws_sigv4::http_request::sign", "canonical request");
            tracing::debug!(target: "lambda_runtime", "event");
            tracing::info!(target: "aws_smithy_runtime::client::retries", "retrying");
            tracing::trace!(target: "callsign::app", "ours");
        });
        assert_eq!(
            *seen.0.lock().unwrap(),
            ["aws_smithy_runtime::client::retries", "callsign::app"]
        );
    }
}
