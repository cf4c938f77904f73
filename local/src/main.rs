//! The local server: every route in one process on 127.0.0.1, routed as API Gateway
//! would route them to the functions, on an embedded store with keys generated at start.
//! With CALLSIGN_TABLE_NAME set it uses DynamoDB and Secrets Manager instead.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use callsign::app;
use callsign::config::{LocalConfig, UserAuthConfig};
use callsign::domain::rotation::{WhichKey, regenerate_access_key};
use callsign::http::front::UserAuth;
use callsign::http::routes::ROUTES;
use callsign::http::{self as api, ApiRequest, App, Served};
use dev_oidc::DevIssuer;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

mod dev_oidc;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() {
    callsign::logging::init_local();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        None => run().await,
        Some("sign-event") if args.len() == 2 => sign_event(&args[1]),
        Some("routes") if args.len() == 1 => {
            // The routes this server (and the deployed API) serves, one route key a line.
            ROUTES.iter().for_each(|route| println!("{}", route.key));
            Ok(())
        }
        Some("routes") if args.len() == 2 && args[1] == "--json" => print_route_table(),
        Some("regenerate-access-key") if args.len() == 2 => regenerate(&args[1]).await,
        Some("seed-identity") if matches!(args.len(), 2 | 3) => {
            seed_identity(&args[1], args.get(2).map(String::as_str)).await
        }
        Some(_) => Err(USAGE.into()),
    };
    if let Err(e) = result {
        eprintln!("callsign-local: {e}");
        std::process::exit(1);
    }
}

const USAGE: &str = "usage: callsign-local              run the local server
       callsign-local routes            list the route keys served (the OpenAPI contract's)
       callsign-local routes --json     the route table: route key, operation, access and
                                        the Lambda function serving it (template checks)
       callsign-local sign-event FILE   print FILE (an events/ sample) signed with
                                        CALLSIGN_ACCESS_KEY, for cargo lambda invoke
       callsign-local regenerate-access-key primary|secondary
                                        replace that key in the secret named by
                                        CALLSIGN_ACCESS_KEYS_SECRET_ID; print the new key
       callsign-local seed-identity ID [CUSTOM_ID]
                                        write that identity (and its customId mapping) to
                                        the table named by CALLSIGN_TABLE_NAME, as the
                                        admin API would (sample events name one)";

/// The route table as JSON, for the checks that compare it with openapi.yaml and
/// template.yaml.
fn print_route_table() -> Result<(), Error> {
    let table: Vec<serde_json::Value> = ROUTES
        .iter()
        .map(|route| {
            serde_json::json!({
                "method": route.method(),
                "path": route.path(),
                "operation": format!("{:?}", route.operation),
                "access": format!("{:?}", route.access),
                "function": route.function.name(),
            })
        })
        .collect();
    println!("{}", serde_json::to_string_pretty(&table)?);
    Ok(())
}

/// ACS's "regenerate key": the named key is replaced at once; the other keeps working.
async fn regenerate(which: &str) -> Result<(), Error> {
    let which = WhichKey::parse(which).ok_or(USAGE)?;
    let secret_id = LocalConfig::from_env()?
        .config
        .access_keys_secret_id
        .ok_or("CALLSIGN_ACCESS_KEYS_SECRET_ID must name the access key secret")?;
    let secret = app::versioned_secret(&app::sdk_config().await, &secret_id);
    println!("{}", regenerate_access_key(&secret, which).await?);
    Ok(())
}

/// Writes one identity with a given id through the store, for sample events that name it.
async fn seed_identity(id: &str, custom_id: Option<&str>) -> Result<(), Error> {
    use callsign::domain::ports::IdentityStore;
    use callsign::{CustomId, Identity, IdentityId};
    let local = LocalConfig::from_env()?;
    let store = app::dynamodb_store(&local.config, &app::sdk_config().await)?;
    let identity = Identity::new_stable(
        IdentityId::parse(id)?,
        custom_id.map(CustomId::parse).transpose()?,
        callsign::domain::time::now(),
    );
    let created = store.create(identity).await?;
    println!("{}", created.identity().id);
    Ok(())
}

/// Signs a sample event with the access key in CALLSIGN_ACCESS_KEY and prints it.
fn sign_event(path: &str) -> Result<(), Error> {
    let key = LocalConfig::from_env()?
        .access_key
        .ok_or("CALLSIGN_ACCESS_KEY must hold the access key to sign with")?;
    let mut event: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    callsign::lambda::http::sign_event(&mut event, &key, chrono::Utc::now())?;
    println!("{}", serde_json::to_string_pretty(&event)?);
    Ok(())
}

async fn run() -> Result<(), Error> {
    let local = LocalConfig::from_env()?;
    let config = &local.config;
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], local.port))).await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let on_table = config.table_name.is_some();
    // Without a real identity provider configured, sign-in goes through the built-in
    // development issuer. Never against a real table: its identities would be keyed to a
    // throwaway issuer.
    let dev_issuer =
        (matches!(config.front.users, UserAuthConfig::None) && !on_table && local.dev_oidc)
            .then(|| DevIssuer::new(&endpoint))
            .transpose()?
            .map(Arc::new);
    let (app, access_key, store_name) = if on_table {
        let sdk = app::sdk_config().await;
        if local.bootstrap {
            app::bootstrap(config, &sdk, local.access_key.as_deref()).await?;
        }
        let app = app::aws_app(config, &sdk, Served::All).await?;
        let key = app
            .service
            .keys()
            .access_keys()
            .map(|keys| keys.primary().to_owned())
            .unwrap_or_default();
        (Arc::new(app), key, "DynamoDB + Secrets Manager")
    } else {
        let users = dev_issuer
            .as_ref()
            .map(|issuer| UserAuth::Provider(Arc::new(issuer.verifier())));
        let memory = app::memory_app(config, local.access_key.as_deref(), users).await?;
        let key = memory.access_keys.primary().to_owned();
        (memory.app, key, "embedded (in memory)")
    };
    announce(
        &endpoint,
        &access_key,
        &config.token.resource_id.to_string(),
        store_name,
        dev_issuer.as_deref(),
        local.ready_file.as_deref(),
    )?;
    serve(listener, app, dev_issuer).await
}

/// Prints what a developer needs, once, on stdout (the access key is meant to be copied
/// from here; it never goes to the logs).
fn announce(
    endpoint: &str,
    access_key: &str,
    resource_id: &str,
    store: &str,
    dev_issuer: Option<&DevIssuer>,
    ready_file: Option<&std::path::Path>,
) -> Result<(), Error> {
    println!(
        "callsign local server\n  endpoint:    {endpoint}\n  access key:  {access_key}\n  resource id: {resource_id}\n  store:       {store}\n\n\
         Try it with the official Python SDK (pip install azure-communication-identity):\n\n\
         from azure.communication.identity import CommunicationIdentityClient\n\
         from azure.core.credentials import AzureKeyCredential\n\
         client = CommunicationIdentityClient(\"{endpoint}\", AzureKeyCredential(\"{access_key}\"))\n\
         user, token = client.create_user_and_token([\"chat\", \"voip\"])\n\
         print(user.properties[\"id\"], token.expires_on)\n\n\
         Ctrl-C stops the server."
    );
    if let Some(issuer) = dev_issuer {
        println!(
            "\nEnd users (development sign-in, issuer {issuer}):\n\
             id_token=$(curl -s -X POST {endpoint}/dev/oidc/token -d '{{\"sub\":\"alice\"}}' | python3 -c 'import sys,json;print(json.load(sys.stdin)[\"id_token\"])')\n\
             curl -s -X POST {endpoint}/user/token -H \"Authorization: Bearer $id_token\"\n\
             Guests: curl -s -X POST {endpoint}/guest/token",
            issuer = issuer.issuer()
        );
    }
    if let Some(path) = ready_file {
        let ready = serde_json::json!({
            "endpoint": endpoint,
            "accessKey": access_key,
            "resourceId": resource_id,
            "devOidcIssuer": dev_issuer.map(DevIssuer::issuer),
        });
        // Written whole, then renamed, so a watcher never reads half a file.
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        // It holds the access key: readable by this user only.
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)?
            .write_all(ready.to_string().as_bytes())?;
        std::fs::rename(&partial, path)?;
    }
    Ok(())
}

async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    dev_issuer: Option<Arc<DevIssuer>>,
) -> Result<(), Error> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                };
                let (app, dev_issuer) = (app.clone(), dev_issuer.clone());
                let service = service_fn(move |request| {
                    let (app, dev_issuer) = (app.clone(), dev_issuer.clone());
                    async move { Ok::<_, Infallible>(route(&app, dev_issuer.as_deref(), peer, request).await) }
                });
                let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(error = %e, "connection closed with an error");
                    }
                });
            }
            _ = &mut shutdown => break,
        }
    }
    tracing::info!("shutting down");
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
    }
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// One request, through the same handler the Lambda functions run.
async fn route(
    app: &Arc<App>,
    dev_issuer: Option<&DevIssuer>,
    peer: SocketAddr,
    request: hyper::Request<Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    // Read at most one byte past the limit: enough for the handler to answer 413.
    let body = match Limited::new(body, api::MAX_BODY_BYTES + 1).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::from(vec![0; api::MAX_BODY_BYTES + 1]),
    };
    if let Some(response) =
        dev_issuer.and_then(|issuer| issuer.handle(&parts.method, parts.uri.path(), &body))
    {
        return response.map(Full::new);
    }
    let mut headers = parts.headers;
    // Tells discovery metadata that this front door speaks plain http.
    headers
        .entry("x-forwarded-proto")
        .or_insert(http::HeaderValue::from_static("http"));
    let request = ApiRequest {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers,
        body,
        source_ip: Some(peer.ip().to_string()),
        gateway_claims: None,
    };
    api::handle(app, Served::All, request).await.map(Full::new)
}
