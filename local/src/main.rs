//! The local server: every admin route in one process on 127.0.0.1, routed as API
//! Gateway would route them to the functions, on an embedded store with keys generated at
//! start. With CALLSIGN_TABLE_NAME set it uses DynamoDB and Secrets Manager instead.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use callsign::api::front::{FrontApp, ProviderVerifier, UserAuth};
use callsign::api::{self, ApiRequest, App, Operation};
use callsign::config::FrontConfig;
use callsign::store::memory::MemoryThrottle;
use dev_oidc::DevIssuer;

mod dev_oidc;
use callsign::auth::AccessKeys;
use callsign::config::Config;
use callsign::keys::{KeyRing, LocalKeySource, StoredKeySet};
use callsign::service::IdentityService;
use callsign::store::memory::MemoryStore;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

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
            Operation::ALL
                .iter()
                .for_each(|op| println!("{}", op.route_key()));
            Ok(())
        }
        Some("regenerate-access-key") if args.len() == 2 => regenerate_access_key(&args[1]).await,
        Some(_) => Err(USAGE.into()),
    };
    if let Err(e) = result {
        eprintln!("callsign-local: {e}");
        std::process::exit(1);
    }
}

const USAGE: &str = "usage: callsign-local              run the local server
       callsign-local routes            list the route keys served (the OpenAPI contract's)
       callsign-local sign-event FILE   print FILE (an events/ sample) signed with
                                        CALLSIGN_ACCESS_KEY, for cargo lambda invoke
       callsign-local regenerate-access-key primary|secondary
                                        replace that key in the secret named by
                                        CALLSIGN_ACCESS_KEYS_SECRET_ID; print the new key";

/// ACS's "regenerate key": the named key is replaced at once; the other keeps working.
async fn regenerate_access_key(which: &str) -> Result<(), Error> {
    let which = callsign::rotation::WhichKey::parse(which).ok_or(USAGE)?;
    let secret_id = env("CALLSIGN_ACCESS_KEYS_SECRET_ID")
        .ok_or("CALLSIGN_ACCESS_KEYS_SECRET_ID must name the access key secret")?;
    let client = aws_sdk_secretsmanager::Client::new(&callsign::aws::sdk_config().await);
    let secret = callsign::aws::SecretsManagerSecret::new(client, secret_id);
    let key = callsign::rotation::regenerate_access_key(&secret, which).await?;
    println!("{key}");
    Ok(())
}

/// Signs a sample event with the access key in CALLSIGN_ACCESS_KEY and prints it.
fn sign_event(path: &str) -> Result<(), Error> {
    let key = env("CALLSIGN_ACCESS_KEY")
        .ok_or("CALLSIGN_ACCESS_KEY must hold the access key to sign with")?;
    let mut event: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    callsign::lambda::sign_event(&mut event, &key, chrono::Utc::now())?;
    println!("{}", serde_json::to_string_pretty(&event)?);
    Ok(())
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

async fn run() -> Result<(), Error> {
    // The local server invents a resource id when none is configured.
    let resource_id =
        env("CALLSIGN_RESOURCE_ID").unwrap_or_else(|| callsign::ResourceId::random().to_string());
    let config = Config::from_lookup(|name| match name {
        "CALLSIGN_RESOURCE_ID" => Some(resource_id.clone()),
        other => env(other),
    })?;
    let port: u16 = match env("CALLSIGN_PORT") {
        Some(raw) => raw
            .parse()
            .map_err(|_| format!("CALLSIGN_PORT must be a port number, not {raw}"))?,
        None => 8080,
    };

    let (app, access_key, store_name) = if config.table_name.is_some() {
        let sdk = callsign::aws::sdk_config().await;
        if env("CALLSIGN_BOOTSTRAP").is_some_and(|v| v == "1" || v == "true") {
            callsign::aws::bootstrap(&sdk, &config, env("CALLSIGN_ACCESS_KEY").as_deref()).await?;
        }
        let app = callsign::aws::build_app(&config, &sdk, Operation::ALL).await?;
        let key = app
            .service
            .keys()
            .access_keys()
            .map(|keys| keys.primary().to_owned())
            .unwrap_or_default();
        (app, key, "DynamoDB + Secrets Manager")
    } else {
        let access_keys = match env("CALLSIGN_ACCESS_KEY") {
            Some(primary) => AccessKeys::new(&primary, &callsign::auth::hmac::generate_key())?,
            None => AccessKeys::generate(),
        };
        let key = access_keys.primary().to_owned();
        let source = LocalKeySource::new(
            &StoredKeySet::generate(config.signing_algorithm)?,
            &access_keys,
        );
        let keys = KeyRing::load(Arc::new(source), config.key_cache_ttl).await?;
        let service =
            IdentityService::new(Arc::new(MemoryStore::new()), keys, config.token.clone());
        let front = FrontApp::build(
            FrontConfig::from_env()?,
            Arc::new(MemoryThrottle::default()),
        )
        .await?;
        let app = App {
            service,
            public_hosts: config.public_hosts.clone(),
            public_base_url: config.public_base_url.clone(),
            front: Some(front),
        };
        (app, key, "embedded (in memory)")
    };
    let mut app = app;
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    // Without a real identity provider configured, sign-in goes through the built-in
    // development issuer (CALLSIGN_DEV_OIDC=0 turns it off).
    let dev_issuer = match &mut app.front {
        // Never against a real table: its identities would be keyed to a throwaway issuer.
        Some(front)
            if matches!(front.users, UserAuth::None)
                && config.table_name.is_none()
                && env("CALLSIGN_DEV_OIDC").is_none_or(|v| v != "0") =>
        {
            let issuer = DevIssuer::new(&endpoint)?;
            front.users = UserAuth::Oidc(ProviderVerifier::ready(issuer.verifier()));
            Some(Arc::new(issuer))
        }
        _ => None,
    };
    announce(
        &endpoint,
        &access_key,
        &resource_id,
        store_name,
        dev_issuer.as_deref(),
    )?;
    serve(listener, Arc::new(app), dev_issuer).await
}

/// Prints what a developer needs, once, on stdout (the access key is meant to be copied
/// from here; it never goes to the logs).
fn announce(
    endpoint: &str,
    access_key: &str,
    resource_id: &str,
    store: &str,
    dev_issuer: Option<&DevIssuer>,
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
    if let Some(path) = env("CALLSIGN_READY_FILE") {
        let ready = serde_json::json!({
            "endpoint": endpoint,
            "accessKey": access_key,
            "resourceId": resource_id,
            "devOidcIssuer": dev_issuer.map(DevIssuer::issuer),
        });
        // Written whole, then renamed, so a watcher never reads half a file.
        let partial = format!("{path}.partial");
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
        std::fs::rename(&partial, &path)?;
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
    api::handle(app, Operation::ALL, request)
        .await
        .map(Full::new)
}
