//! The local server against hostile clients, as a process: slow headers and bodies are cut
//! off, and so are clients that stop reading their answers; a body that cannot be read is
//! refused; connections beyond the cap wait their turn, exhausted file descriptors make
//! the accept loop back off (logged once per burst), and a file or link planted at the
//! ready file's path never receives the access key.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running callsign-local, stopped (by its PID) when dropped.
struct Server {
    child: Child,
    address: String,
    log: PathBuf,
    _dir: TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "callsign-hardening-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_callsign-local")
}

/// Starts the server with `vars` (through `sh -c` with `shell_prefix`, e.g. a ulimit) and
/// waits for its ready file.
fn start_in(dir: TempDir, vars: &[(&str, &str)], shell_prefix: &str) -> Server {
    let ready = dir.0.join("ready.json");
    let log = dir.0.join("server.log");
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("{shell_prefix} exec \"$0\""))
        .arg(binary())
        .env("CALLSIGN_PORT", "0")
        .env("CALLSIGN_READY_FILE", &ready)
        .env("RUST_LOG", "info")
        .env_remove("CALLSIGN_TABLE_NAME")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    for (name, value) in vars {
        command.env(name, value);
    }
    let child = command.spawn().expect("callsign-local starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    let endpoint = loop {
        if let Ok(text) = std::fs::read_to_string(&ready)
            && let Ok(json) = serde_json::from_str::<serde_json::Value>(&text)
        {
            break json["endpoint"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "no ready file: {}", read(&log));
        std::thread::sleep(Duration::from_millis(50));
    };
    Server {
        child,
        address: endpoint.trim_start_matches("http://").to_owned(),
        log,
        _dir: dir,
    }
}

fn start(vars: &[(&str, &str)]) -> Server {
    start_in(TempDir::new(), vars, "")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn connect(server: &Server) -> TcpStream {
    let stream = TcpStream::connect(&server.address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    stream
}

/// Reads until the server closes the connection (or `limit` passes); the bytes read.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return Some(received),
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Some(received),
            Err(_) => return None, // still open when the limit passed
        }
    }
}

const JWKS_REQUEST: &[u8] = b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

#[test]
fn clients_that_never_finish_their_headers_are_cut_off() {
    let server = start(&[("CALLSIGN_HEADER_TIMEOUT_SECONDS", "1")]);
    let mut silent = connect(&server);
    let mut slow = connect(&server);
    slow.write_all(b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .unwrap();
    for (name, stream) in [("slow", &mut slow), ("silent", &mut silent)] {
        assert!(
            read_until_closed(stream, Duration::from_secs(10)).is_some(),
            "the {name} connection was still open 10 s after a 1 s header timeout"
        );
    }
    // The server still serves.
    let mut client = connect(&server);
    client.write_all(JWKS_REQUEST).unwrap();
    let mut head = [0u8; 12];
    client.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
}

#[test]
fn a_body_that_never_arrives_gets_408() {
    let server = start(&[("CALLSIGN_BODY_TIMEOUT_SECONDS", "1")]);
    let mut client = connect(&server);
    client
        .write_all(
            b"POST /guest/token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{\"sc",
        )
        .unwrap();
    let answer = read_until_closed(&mut client, Duration::from_secs(10))
        .expect("the server answered and closed within 10 s");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"RequestTimeout\""), "{answer}");
}

#[test]
fn a_body_that_cannot_be_read_gets_400_and_an_oversized_one_413() {
    let server = start(&[]);
    let head = b"POST /guest/token HTTP/1.1\r\nHost: 127.0.0.1\r\nx-ms-client-request-id: r-1\r\nTransfer-Encoding: chunked\r\n\r\n";
    // Past the 64 KiB limit, and few enough bytes for the socket to take unread.
    let oversized = [b"100000\r\n".as_slice(), &[b'x'; 70_000]].concat();
    let cases: [(&[u8], &str, &str); 2] = [
        (b"zz\r\n", "HTTP/1.1 400", "\"code\":\"InvalidRequestBody\""),
        (
            &oversized,
            "HTTP/1.1 413",
            "\"code\":\"RequestBodyTooLarge\"",
        ),
    ];
    for (body, status, code) in cases {
        let mut client = connect(&server);
        client.write_all(&[head.as_slice(), body].concat()).unwrap();
        let answer = read_until_closed(&mut client, Duration::from_secs(10))
            .expect("the server answered and closed within 10 s");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with(status), "{answer}");
        assert!(answer.contains(code), "{answer}");
        assert!(
            answer.contains("x-ms-client-request-id: r-1\r\n"),
            "{answer}"
        );
    }
}

#[test]
fn connections_beyond_the_cap_wait_for_one_to_close() {
    let server = start(&[
        ("CALLSIGN_MAX_CONNECTIONS", "1"),
        ("CALLSIGN_HEADER_TIMEOUT_SECONDS", "60"),
    ]);
    let mut holder = connect(&server);
    holder.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap(); // unfinished
    std::thread::sleep(Duration::from_millis(300)); // accepted: it holds the one slot
    let mut waiting = connect(&server);
    waiting.write_all(JWKS_REQUEST).unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut head = [0u8; 12];
    assert!(
        waiting.read_exact(&mut head).is_err(),
        "a second connection was served while the cap of one was taken"
    );
    drop(holder);
    waiting
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    waiting.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
}

#[test]
fn a_client_that_never_reads_its_answers_is_cut_off() {
    let server = start(&[
        ("CALLSIGN_MAX_CONNECTIONS", "1"),
        ("CALLSIGN_BODY_TIMEOUT_SECONDS", "1"),
    ]);
    let hog = connect(&server);
    let mut writer = hog.try_clone().unwrap();
    // Requests back to back whose answers are never read: the server's writes stall once
    // the socket buffers are full (this write blocks too, until the server cuts it off).
    let burst = std::thread::spawn(move || {
        let _ = writer.write_all(&JWKS_REQUEST.repeat(20_000));
    });
    std::thread::sleep(Duration::from_millis(500));
    let mut next = connect(&server);
    next.write_all(JWKS_REQUEST).unwrap();
    let mut head = [0u8; 12];
    next.read_exact(&mut head)
        .expect("the one slot was freed: the stalled connection was cut off");
    assert_eq!(&head, b"HTTP/1.1 200");
    drop(hog);
    burst.join().unwrap();
}

/// The CPU seconds a process has used (utime + stime, in clock ticks of 1/100 s).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after "pid (comm) ".
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn exhausted_descriptors_make_accept_back_off_with_one_log_line_per_burst() {
    // 48 descriptors: the runtime and listener take a handful; connections take the rest.
    let server = start_in(TempDir::new(), &[], "ulimit -n 48;");
    let mut held: Vec<TcpStream> = (0..80).map(|_| connect(&server)).collect();
    std::thread::sleep(Duration::from_millis(500)); // the server ran out of descriptors
    let before = cpu_ticks(server.child.id());
    std::thread::sleep(Duration::from_secs(3));
    let used = cpu_ticks(server.child.id()) - before;
    assert!(
        used < 100,
        "the accept loop used {used}/100 CPU seconds in 3 s while descriptors were exhausted"
    );
    let log = read(&server.log);
    let failures = log.matches("accept failed").count();
    assert!(failures >= 1, "no accept failure was logged: {log}");
    assert!(
        failures <= 2,
        "{failures} accept failures logged in one burst"
    );
    held.clear(); // free the descriptors: the server recovers without a restart
    let mut client = connect(&server);
    client.write_all(JWKS_REQUEST).unwrap();
    let mut head = [0u8; 12];
    client.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !read(&server.log).contains("accepting connections again") {
        assert!(Instant::now() < deadline, "the recovery was not logged");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_planted_link_or_file_never_receives_the_access_key() {
    for planted_link in [true, false] {
        let dir = TempDir::new();
        let victim = dir.0.join("victim");
        std::fs::write(&victim, "untouched").unwrap();
        let partial = dir.0.join("ready.json.partial");
        if planted_link {
            std::os::unix::fs::symlink(&victim, &partial).unwrap();
        } else {
            std::fs::write(&partial, "planted").unwrap();
            std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o666)).unwrap();
        }
        let ready = dir.0.join("ready.json");
        let server = start_in(dir, &[], "");
        assert_eq!(read(&victim), "untouched", "link planted: {planted_link}");
        let metadata = std::fs::symlink_metadata(&ready).unwrap();
        assert!(metadata.file_type().is_file());
        assert_eq!(metadata.permissions().mode() & 0o777, 0o600);
        let json: serde_json::Value = serde_json::from_str(&read(&ready)).unwrap();
        assert!(json["accessKey"].as_str().is_some_and(|k| !k.is_empty()));
        drop(server);
    }
}
