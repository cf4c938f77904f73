//! The local server: every route in one process on 127.0.0.1, routed as API Gateway
//! would route them to the functions, on an embedded store with keys generated at start.
//! With CALLSIGN_TABLE_NAME set it uses DynamoDB and Secrets Manager instead.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use callsign::app;
use callsign::config::{LocalConfig, UserAuthConfig};
use callsign::domain::ports::TrustedTokens;
use callsign::domain::rotation::{WhichKey, replace_access_key, sync_access_keys, unsynced};
use callsign::http::Served;
use callsign::http::front::UserAuth;
use callsign::http::routes::ROUTES;
use dev_oidc::DevIssuer;
use tokio::net::TcpListener;

mod dev_oidc;
mod ready_file;
mod sample_app;
mod server;
mod tls;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() {
    callsign::logging::init_local();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        None => run(Flags::default()).await,
        Some(flag) if flag.starts_with("--") => match Flags::parse(&args) {
            Some(flags) => run(flags).await,
            None => Err(USAGE.into()),
        },
        Some("sign-event") if args.len() == 2 => sign_event(&args[1]),
        Some("authorize") if args.len() == 2 => authorize(&args[1]).await,
        Some("routes") if args.len() == 1 => {
            // The routes this server (and the deployed API) serves, one route key a line.
            ROUTES.iter().for_each(|route| println!("{}", route.key));
            Ok(())
        }
        Some("routes") if args.len() == 2 && args[1] == "--json" => print_route_table(),
        Some("metrics") if args.len() == 2 && args[1] == "--json" => print_metrics(),
        Some("regenerate-access-key") if args.len() == 2 => regenerate(&args[1]).await,
        Some("sync-access-keys") if args.len() == 1 => sync().await,
        Some("access-key-fingerprints") if args.len() == 1 => print_fingerprints().await,
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
       callsign-local --tls        run it over HTTPS (also CALLSIGN_TLS=1), with a
                                        self-signed certificate made at start
       callsign-local --sample-app also serve the sample web app (examples/web-app, or
                                        CALLSIGN_SAMPLE_APP) on its own origin (port
                                        CALLSIGN_SAMPLE_APP_PORT, 8081)
       callsign-local routes            list the route keys served (the OpenAPI contract's)
       callsign-local routes --json     the route table: route key, operation, access, the
                                        Lambda function serving it, whether it issues tokens
       callsign-local metrics --json    the metrics the functions emit, with their dimensions
                                        (the template's alarms and dashboard are checked
                                        against it)
       callsign-local sign-event FILE   print FILE (an events/ sample) signed with
                                        CALLSIGN_ACCESS_KEY, for cargo lambda invoke
       callsign-local authorize FILE    the authorizer function's answer to FILE (an API
                                        Gateway authorizer event), on the table and public
                                        keys the environment names, as deployed
       callsign-local regenerate-access-key primary|secondary
                                        replace that key in the secret named by
                                        CALLSIGN_ACCESS_KEYS_SECRET_ID, revoke the tokens
                                        the old one had issued (the fingerprint list in
                                        CALLSIGN_TABLE_NAME); print the new key
       callsign-local sync-access-keys  make the table's fingerprint list match the secret
                                        (finishes a regeneration that was interrupted)
       callsign-local access-key-fingerprints
                                        print the current access keys' fingerprints (the
                                        table's list) as JSON, for embedded verifiers
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
                "signs": route.operation.signs(),
                "gateway_path": route.gateway_path(),
            })
        })
        .collect();
    println!("{}", serde_json::to_string_pretty(&table)?);
    Ok(())
}

/// The metrics every function may emit (namespace, name, dimensions besides `Function`).
fn print_metrics() -> Result<(), Error> {
    use callsign::domain::signals::{METRICS, NAMESPACE};
    let metrics: Vec<serde_json::Value> = METRICS
        .iter()
        .map(|metric| {
            serde_json::json!({
                "namespace": NAMESPACE,
                "name": metric.name,
                "dimensions": metric.dimensions,
                "values": metric.dimensions.iter().enumerate().map(|(i, d)| (d.to_string(), metric.values_of(i))).collect::<std::collections::BTreeMap<_, _>>(),
                "meaning": metric.meaning,
            })
        })
        .collect();
    println!("{}", serde_json::to_string_pretty(&metrics)?);
    Ok(())
}

/// The access key secret and the table keeping its fingerprints, as configured.
async fn access_key_stores() -> Result<
    (
        String,
        callsign::adapters::secrets_manager::SecretsManagerSecret,
        callsign::adapters::dynamodb::DynamoDbStore,
    ),
    Error,
> {
    let config = LocalConfig::from_env()?.config;
    let secret_id = config
        .access_keys_secret_id
        .clone()
        .ok_or("CALLSIGN_ACCESS_KEYS_SECRET_ID must name the access key secret")?;
    let sdk = app::sdk_config().await;
    let secret = app::versioned_secret(&app::secrets_client(&sdk), &secret_id);
    let ledger = app::dynamodb_store(&config, &sdk)?;
    Ok((secret_id, secret, ledger))
}

/// The table's list of current fingerprints, as JSON (null: no key regenerated yet).
async fn print_fingerprints() -> Result<(), Error> {
    use callsign::domain::ports::AccessKeyLedger;
    let config = LocalConfig::from_env()?.config;
    let store = app::dynamodb_store(&config, &app::sdk_config().await)?;
    let list = store.fingerprints().await?.map(|(current, generation)| {
        serde_json::json!({"fingerprints": current.0, "generation": generation})
    });
    println!("{}", serde_json::to_string(&list)?);
    Ok(())
}

/// Finishes an interrupted regeneration: the old key's tokens die now.
async fn sync() -> Result<(), Error> {
    let (_, secret, ledger) = access_key_stores().await?;
    let generation = sync_access_keys(&secret, &ledger).await?;
    println!("access key fingerprints in step with the secret (generation {generation})");
    Ok(())
}

/// ACS's "regenerate key": the named key is replaced at once, the tokens it had issued
/// are revoked; the other key and its tokens keep working.
async fn regenerate(which: &str) -> Result<(), Error> {
    let which = WhichKey::parse(which).ok_or(USAGE)?;
    let (secret_id, secret, ledger) = access_key_stores().await?;
    let key = replace_access_key(&secret, &ledger, which).await?;
    tracing::info!(
        target: "callsign::audit",
        action = "regenerate-access-key",
        key = if which == WhichKey::Primary { "primary" } else { "secondary" },
        secret = %secret_id,
        "admin action"
    );
    // The new key is in force: print it before the last step, which may fail.
    println!("{key}");
    sync_access_keys(&secret, &ledger).await.map_err(unsynced)?;
    Ok(())
}

/// Writes one identity with a given id through the store, for sample events that name it.
async fn seed_identity(id: &str, custom_id: Option<&str>) -> Result<(), Error> {
    use callsign::domain::ports::IdentityStore;
    use callsign::{CustomId, Identity, IdentityId};
    let local = LocalConfig::from_env()?;
    let store = app::dynamodb_store(&local.config, &app::sdk_config().await)?;
    let id = IdentityId::parse(id)?;
    if id.is_teams_user() {
        return Err("a Teams user (8:orgid:) has no record here; seed an 8:acs: identity".into());
    }
    let identity = Identity::new_stable(
        id,
        custom_id.map(CustomId::parse).transpose()?,
        callsign::domain::time::now(),
    );
    let created = store.create(identity).await?;
    println!("{}", created.identity().id);
    Ok(())
}

/// The authorizer function's decision on one event, built as the function builds it.
async fn authorize(path: &str) -> Result<(), Error> {
    let config = LocalConfig::from_env()?.config;
    let authorizer = app::aws_authorizer(&config, &app::sdk_config().await).await?;
    let event = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let answer = callsign::lambda::authorizer::authorize_event(&authorizer, &event).await;
    println!("{}", serde_json::to_string(&answer)?);
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

/// The server's command-line switches (each also has its variable).
#[derive(Default)]
struct Flags {
    tls: bool,
    sample_app: bool,
}

impl Flags {
    fn parse(args: &[String]) -> Option<Self> {
        let mut flags = Self::default();
        for arg in args {
            match arg.as_str() {
                "--tls" => flags.tls = true,
                "--sample-app" => flags.sample_app = true,
                _ => return None,
            }
        }
        Some(flags)
    }
}

/// Where the sample web app is served from, when it is: its folder, and the origin its
/// own listener gives it.
async fn start_sample_app(
    local: &LocalConfig,
    flag: bool,
) -> Result<Option<(TcpListener, PathBuf, String)>, Error> {
    let dir = match (&local.sample_app, flag) {
        (Some(dir), _) => dir.clone(),
        (None, true) => PathBuf::from("examples/web-app"),
        (None, false) => return Ok(None),
    };
    let listener =
        TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], local.sample_app_port))).await?;
    let origin = format!("http://{}", listener.local_addr()?);
    Ok(Some((listener, dir, origin)))
}

async fn run(flags: Flags) -> Result<(), Error> {
    let mut local = LocalConfig::from_env()?;
    let sample = start_sample_app(&local, flags.sample_app).await?;
    if let Some((_, _, origin)) = &sample
        && local.config.front.cors_origins.is_empty()
    {
        // The sample's page calls the front from its own origin: allowed unless
        // CALLSIGN_CORS_ORIGINS says otherwise.
        local.config.front.cors_origins.push(origin.clone());
    }
    let config = &local.config;
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], local.port))).await?;
    let tls = (flags.tls || local.tls)
        .then(tls::self_signed)
        .transpose()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let endpoint = format!("{scheme}://{}", listener.local_addr()?);
    let certificate = match &tls {
        Some(tls) => {
            let path = local.tls_certificate.clone().unwrap_or_else(|| {
                std::env::temp_dir().join(format!("callsign-local-{}.pem", std::process::id()))
            });
            tls::write_certificate(tls, &path)?;
            Some(path)
        }
        None => None,
    };
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
        // The development issuer signs end users in, and stands in for a trusted bearer
        // issuer and Teams tenant unless real ones are configured.
        let trust = match &dev_issuer {
            Some(issuer) => app::Trust {
                users: Some(UserAuth::Provider(Arc::new(issuer.verifier()))),
                admins: config
                    .admin_bearer
                    .issuers
                    .is_empty()
                    .then(|| Arc::new(issuer.admin_issuers()) as Arc<dyn TrustedTokens>),
                teams: config
                    .teams
                    .issuers
                    .is_empty()
                    .then(|| Arc::new(issuer.teams_issuers()) as Arc<dyn TrustedTokens>),
            },
            None => app::Trust::default(),
        };
        let memory = app::memory_app(config, local.access_key.as_deref(), trust).await?;
        tokio::spawn(app::MemoryApp::sweep_forever(
            memory.store.clone(),
            config.sweep.clone(),
            app::MEMORY_SWEEP_EVERY,
        ));
        let key = memory.access_keys.primary().to_owned();
        (memory.app, key, "embedded (in memory)")
    };
    announce(
        &Announcement {
            endpoint: &endpoint,
            access_key: &access_key,
            resource_id: &config.token.resource_id.to_string(),
            store: store_name,
            dev_issuer: dev_issuer.as_deref(),
            certificate: certificate.as_deref(),
            sample_app: sample.as_ref().map(|(_, _, origin)| origin.as_str()),
        },
        local.ready_file.as_deref(),
    )?;
    if let Some((listener, dir, _)) = sample {
        tokio::spawn(sample_app::serve(listener, dir));
    }
    let limits = server::Limits {
        header_timeout: local.header_timeout,
        body_timeout: local.body_timeout,
        max_connections: local.max_connections,
        tls: tls.is_some(),
    };
    let served = server::serve(
        listener,
        app,
        dev_issuer,
        limits,
        tls.map(|tls| tls.acceptor),
    )
    .await;
    // A certificate made for this run goes with it (one whose path was given stays).
    if let Some(path) = certificate.filter(|_| local.tls_certificate.is_none()) {
        let _ = std::fs::remove_file(path);
    }
    served
}

/// What the server tells a developer (and a script, through the ready file) at start.
struct Announcement<'a> {
    endpoint: &'a str,
    access_key: &'a str,
    resource_id: &'a str,
    store: &'a str,
    dev_issuer: Option<&'a DevIssuer>,
    /// With TLS: the self-signed certificate clients must trust.
    certificate: Option<&'a std::path::Path>,
    /// The sample web app's origin, when it is served.
    sample_app: Option<&'a str>,
}

/// Prints what a developer needs, once, on stdout (the access key is meant to be copied
/// from here; it never goes to the logs).
fn announce(a: &Announcement<'_>, ready_file: Option<&std::path::Path>) -> Result<(), Error> {
    let (endpoint, access_key) = (a.endpoint, a.access_key);
    let connection_string = format!("endpoint={endpoint}/;accesskey={access_key}");
    println!(
        "callsign local server\n  endpoint:    {endpoint}\n  access key:  {access_key}\n  resource id: {}\n  store:       {}\n\n\
         Try it with the official Python SDK (pip install azure-communication-identity):\n\n\
         from azure.communication.identity import CommunicationIdentityClient\n\
         from azure.core.credentials import AzureKeyCredential\n\
         client = CommunicationIdentityClient(\"{endpoint}\", AzureKeyCredential(\"{access_key}\"))\n\
         user, token = client.create_user_and_token([\"chat\", \"voip\"])\n\
         print(user.properties[\"id\"], token.expires_on)",
        a.resource_id, a.store
    );
    if let Some(certificate) = a.certificate {
        let pem = certificate.display();
        println!(
            "\nOver HTTPS (a self-signed certificate, made for this run: {pem}):\n\
             connection string: {connection_string}\n\
             client = CommunicationIdentityClient.from_connection_string(\"{connection_string}\")\n\
             Trust the certificate first:\n  \
             Python (requests, sync clients): export REQUESTS_CA_BUNDLE={pem}\n  \
             Python (aiohttp, async clients): export SSL_CERT_FILE={pem}\n  \
             Node.js:                         export NODE_EXTRA_CA_CERTS={pem}"
        );
    }
    let sample_url = a
        .sample_app
        .map(|origin| format!("{origin}/?callsign={endpoint}"));
    if let Some(url) = &sample_url {
        println!("\nSample web app (another origin, calling this server): {url}");
    }
    println!("\nCtrl-C stops the server.");
    if let Some(issuer) = a.dev_issuer {
        let (identity_endpoint, identity_header) =
            (issuer.identity_endpoint(), issuer.identity_header());
        let curl = if a.certificate.is_some() {
            "curl -s --cacert \"$REQUESTS_CA_BUNDLE\""
        } else {
            "curl -s"
        };
        println!(
            "\nEnd users (development sign-in, issuer {issuer}):\n\
             id_token=$({curl} -X POST {endpoint}/dev/oidc/token -d '{{\"sub\":\"alice\"}}' | python3 -c 'import sys,json;print(json.load(sys.stdin)[\"id_token\"])')\n\
             {curl} -X POST {endpoint}/user/token -H \"Authorization: Bearer $id_token\"\n\
             Guests: {curl} -X POST {endpoint}/guest/token\n\n\
             Admin API with bearer tokens from the development issuer (roles identity.admin, token.issue, identity.read):\n\
             token=$({curl} -X POST {endpoint}/dev/oidc/admin-token -H 'X-IDENTITY-HEADER: {identity_header}' -d '{{\"roles\":[\"token.issue\"]}}' | python3 -c 'import sys,json;print(json.load(sys.stdin)[\"access_token\"])')\n\
             {curl} -X POST '{endpoint}/identities?api-version=2023-10-01' -H \"Authorization: Bearer $token\" -H 'Content-Type: application/json' -d '{{}}'\n\
             DefaultAzureCredential (Python azure-identity, JS @azure/identity; the SDKs send bearer tokens over HTTPS only, so run with --tls):\n  \
             export IDENTITY_ENDPOINT={identity_endpoint} IDENTITY_HEADER={identity_header} AZURE_TOKEN_CREDENTIALS=ManagedIdentityCredential\n  \
             client = CommunicationIdentityClient(\"{endpoint}\", DefaultAzureCredential())\n\
             Teams users: {curl} -X POST {endpoint}/dev/oidc/teams-token -d '{{\"oid\":\"<guid>\",\"appid\":\"<guid>\"}}', then client.get_token_for_teams_user(token, appid, oid)",
            issuer = issuer.issuer()
        );
    }
    if let Some(path) = ready_file {
        let ready = serde_json::json!({
            "endpoint": endpoint,
            "accessKey": access_key,
            "resourceId": a.resource_id,
            "devOidcIssuer": a.dev_issuer.map(DevIssuer::issuer),
            "identityEndpoint": a.dev_issuer.map(DevIssuer::identity_endpoint),
            "identityHeader": a.dev_issuer.map(DevIssuer::identity_header),
            "connectionString": connection_string,
            "certificate": a.certificate.map(|p| p.display().to_string()),
            "sampleAppUrl": sample_url,
        });
        ready_file::write(path, &ready.to_string())?;
    }
    Ok(())
}
