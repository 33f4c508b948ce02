//! `--ping URL`: what a health-check endpoint is sent, and that it never holds up the job. The
//! endpoint is a small HTTP server in the test that records each request.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

use crate::support::{HOLD, Holder, PATIENCE, RedisServer, code, keys, redlock, wait_until};

/// How the endpoint answers each request.
#[derive(Clone, Copy, PartialEq)]
enum Answer {
    /// `200 OK`.
    Ok,
    /// `500 Internal Server Error`.
    Fails,
    /// Not at all: the connection is held open until the endpoint is dropped.
    Never,
    /// `200 OK`, once the test calls `open` (and not before).
    WhenOpened,
}

/// One request, as the endpoint read it.
#[derive(Debug, Clone)]
struct Ping {
    method: String,
    /// The path and the query.
    target: String,
    body: String,
}

impl Ping {
    fn path(&self) -> &str {
        self.target.split('?').next().unwrap()
    }

    /// The `rid` of the query: the run's id.
    fn rid(&self) -> &str {
        let (_, rid) = self.target.rsplit_once("rid=").expect("a rid");
        assert_eq!(rid.len(), 36, "not a UUID: {rid}");
        rid
    }
}

struct Endpoint {
    port: u16,
    state: Arc<State>,
    https: bool,
}

struct State {
    answer: Answer,
    pings: Mutex<Vec<Ping>>,
    answered: AtomicUsize,
    /// `Never` and `WhenOpened` wait for this; set by `open` and by the drop.
    opened: Mutex<bool>,
    opening: Condvar,
    stopped: AtomicBool,
}

impl Endpoint {
    fn start(answer: Answer) -> Self {
        Self::start_with(answer, None)
    }

    /// An https endpoint whose certificate for 127.0.0.1 is `server.crt` in `certs` (made by
    /// `RedisServer::start_tls`, and signed by its `ca.crt`).
    fn start_tls(certs: &Path) -> Self {
        let chain = CertificateDer::pem_file_iter(certs.join("server.crt"))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(certs.join("server.key")).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        Self::start_with(Answer::Ok, Some(Arc::new(config)))
    }

    fn start_with(answer: Answer, tls: Option<Arc<ServerConfig>>) -> Self {
        let https = tls.is_some();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State {
            answer,
            pings: Mutex::new(Vec::new()),
            answered: AtomicUsize::new(0),
            opened: Mutex::new(false),
            opening: Condvar::new(),
            stopped: AtomicBool::new(false),
        });
        let shared = state.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                if shared.stopped.load(Ordering::SeqCst) {
                    break;
                }
                let state = shared.clone();
                let tls = tls.clone();
                thread::spawn(move || {
                    let stream = stream.unwrap();
                    stream.set_read_timeout(Some(PATIENCE)).unwrap();
                    match tls {
                        None => state.serve(stream),
                        Some(config) => {
                            let connection = ServerConnection::new(config).unwrap();
                            state.serve(StreamOwned::new(connection, stream));
                        }
                    }
                });
            }
        });
        Endpoint { port, state, https }
    }

    fn url(&self, path: &str) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}{path}", self.port)
    }

    fn pings(&self) -> Vec<Ping> {
        self.state.pings.lock().unwrap().clone()
    }

    fn paths(&self) -> Vec<String> {
        self.pings().iter().map(|p| p.path().to_string()).collect()
    }

    fn answered(&self) -> usize {
        self.state.answered.load(Ordering::SeqCst)
    }

    fn open(&self) {
        *self.state.opened.lock().unwrap() = true;
        self.state.opening.notify_all();
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.state.stopped.store(true, Ordering::SeqCst);
        self.open();
        // Wakes the accepting thread, which then sees `stopped`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

impl State {
    fn serve(&self, stream: impl Read + Write) {
        let mut reader = BufReader::new(stream);
        let Some(ping) = read_request(&mut reader) else {
            return;
        };
        self.pings.lock().unwrap().push(ping);
        let status = match self.answer {
            Answer::Ok => "200 OK",
            Answer::Fails => "500 Internal Server Error",
            Answer::Never | Answer::WhenOpened => {
                // At most PATIENCE: a redlock that waited for this answer would then go on,
                // and the test see it as too late, rather than hang.
                let opened = self.opened.lock().unwrap();
                let _ = self
                    .opening
                    .wait_timeout_while(opened, PATIENCE, |open| !*open);
                if self.answer == Answer::Never {
                    return;
                }
                "200 OK"
            }
        };
        let reply =
            format!("HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK");
        let _ = reader.get_mut().write_all(reply.as_bytes());
        self.answered.fetch_add(1, Ordering::SeqCst);
    }
}

/// The request line, the headers (only Content-Length matters) and the body.
fn read_request(reader: &mut BufReader<impl Read>) -> Option<Ping> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut words = line.split_whitespace();
    let (method, target) = (words.next()?.to_string(), words.next()?.to_string());
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let body = String::from_utf8(body).ok()?;
    Some(Ping {
        method,
        target,
        body,
    })
}

/// `redlock run -n NAME ARGS -- sh -c SCRIPT` against `redis`.
fn run(redis: &str, name: &str, args: &[&str], script: &str) -> (Option<i32>, String) {
    let Output { status, stderr, .. } = redlock(redis)
        .args(["run", "-n", name])
        .args(args)
        .args(["--", "sh", "-c", script])
        .output()
        .unwrap();
    (status.code(), String::from_utf8(stderr).unwrap())
}

fn host() -> String {
    nix::unistd::gethostname().unwrap().into_string().unwrap()
}

/// A port on which nothing listens.
fn dead_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn start_and_exit_pings_carry_one_run_id_in_order() {
    let server = RedisServer::start();
    let endpoint = Endpoint::start(Answer::Ok);
    let ping = endpoint.url("/check/abc");
    let (code, stderr) = run(&server.url(), "pinged", &["--ping", &ping], "true");
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stderr, "");
    let pings = endpoint.pings();
    assert_eq!(endpoint.paths(), ["/check/abc/start", "/check/abc/0"]);
    assert!(pings.iter().all(|p| p.method == "POST"), "{pings:?}");
    assert_eq!(pings[0].rid(), pings[1].rid());
    assert_eq!(pings[0].body, "");
    // The final ping's body is redlock's summary line.
    let summary = &pings[1].body;
    let expected = format!("redlock: 'pinged' on {}: ran for ", host());
    assert!(summary.starts_with(&expected), "{summary}");
    assert!(summary.ends_with(", exit 0, the command's 0"), "{summary}");
    // Another run, another id.
    let (code, stderr) = run(&server.url(), "pinged", &["--ping", &ping], "true");
    assert_eq!(code, Some(0), "{stderr}");
    let pings = endpoint.pings();
    assert_eq!(pings.len(), 4);
    assert_eq!(pings[2].rid(), pings[3].rid());
    assert_ne!(pings[0].rid(), pings[2].rid());
}

#[test]
fn the_exit_status_is_the_path_and_the_url_keeps_its_query() {
    let server = RedisServer::start();
    let endpoint = Endpoint::start(Answer::Ok);
    let ping = endpoint.url("/key/job/?create=1");
    let (code, stderr) = run(&server.url(), "job", &["--ping", &ping], "exit 3");
    assert_eq!(code, Some(3), "{stderr}");
    let pings = endpoint.pings();
    let rid = pings[0].rid();
    let targets: Vec<_> = pings.iter().map(|p| p.target.as_str()).collect();
    assert_eq!(
        targets,
        [
            format!("/key/job/start?create=1&rid={rid}"),
            format!("/key/job/3?create=1&rid={rid}"),
        ]
    );
}

#[test]
fn a_lost_lock_pings_fail() {
    let server = RedisServer::start();
    let endpoint = Endpoint::start(Answer::Ok);
    let ping = endpoint.url("/check");
    let mut holder = Holder::start(
        &server.url(),
        &["-n", "gone", "--ttl", "2s", "--ping", &ping],
    );
    let _: () = server.cmd(&["DEL", &keys("gone").lock]);
    let (status, stderr) = holder.wait();
    assert_eq!(status.code(), Some(code::LOCK_LOST), "{stderr}");
    let pings = endpoint.pings();
    assert_eq!(endpoint.paths(), ["/check/start", "/check/fail"]);
    assert_eq!(pings[0].rid(), pings[1].rid());
    assert!(pings[1].body.contains(": lost for "), "{}", pings[1].body);
    assert!(pings[1].body.contains(", exit 76, "), "{}", pings[1].body);
}

#[test]
fn unavailable_redis_pings_fail_without_a_start() {
    let endpoint = Endpoint::start(Answer::Ok);
    let redis = format!("redis://127.0.0.1:{}", dead_port());
    let (code, stderr) = run(&redis, "job", &["--ping", &endpoint.url("/check")], "true");
    assert_eq!(code, Some(code::UNAVAILABLE), "{stderr}");
    let pings = endpoint.pings();
    assert_eq!(endpoint.paths(), ["/check/fail"]);
    pings[0].rid();
    assert!(
        pings[0].body.contains(": unavailable, exit 69: "),
        "{}",
        pings[0].body
    );
}

#[test]
fn a_busy_run_pings_nothing_unless_ping_busy_ok() {
    let server = RedisServer::start();
    let endpoint = Endpoint::start(Answer::Ok);
    let ping = endpoint.url("/check");
    let mut holder = Holder::start(&server.url(), &["-n", "job"]);
    let (code, stderr) = run(&server.url(), "job", &["--ping", &ping], "true");
    assert_eq!(code, Some(code::BUSY), "{stderr}");
    // redlock waits for a final ping before it exits: none is coming.
    assert!(endpoint.pings().is_empty(), "{:?}", endpoint.pings());
    let busy_ok = ["--ping", &ping, "--ping-busy", "ok"];
    let (code, stderr) = run(&server.url(), "job", &busy_ok, "true");
    assert_eq!(code, Some(code::BUSY), "{stderr}");
    let pings = endpoint.pings();
    assert_eq!(endpoint.paths(), ["/check"], "a success ping");
    pings[0].rid();
    assert!(
        pings[0].body.contains(": busy, exit 75: "),
        "{}",
        pings[0].body
    );
    assert!(holder.finish().0.success());
}

#[test]
fn an_endpoint_that_fails_is_a_warning_only() {
    let server = RedisServer::start();
    let endpoint = Endpoint::start(Answer::Fails);
    let ping = endpoint.url("/check");
    let (code, stderr) = run(&server.url(), "job", &["--ping", &ping], "exit 3");
    assert_eq!(code, Some(3), "{stderr}");
    // Each ping is tried twice: a server error may pass.
    assert_eq!(
        endpoint.paths(),
        ["/check/start", "/check/start", "/check/3", "/check/3"]
    );
    let rid = endpoint.pings()[0].rid().to_string();
    let expected = format!(
        "redlock: warning: ping {ping}/3?rid={rid}: the server answered HTTP 500 (after one retry)\n"
    );
    assert!(stderr.ends_with(&expected), "{stderr}");
    assert_eq!(stderr.lines().count(), 2, "{stderr}");
}

#[test]
fn a_dead_endpoint_is_a_warning_only() {
    let server = RedisServer::start();
    let ping = format!("http://127.0.0.1:{}/check", dead_port());
    let (code, stderr) = run(&server.url(), "job", &["--ping", &ping], "true");
    assert_eq!(code, Some(0), "{stderr}");
    let lines: Vec<_> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    for (line, what) in lines.iter().zip(["start", "0"]) {
        let expected = format!("redlock: warning: ping {ping}/{what}?rid=");
        assert!(line.starts_with(&expected), "{stderr}");
        assert!(line.contains("refused"), "{stderr}");
    }
}

#[test]
fn the_command_does_not_wait_for_the_start_ping() {
    let server = RedisServer::start();
    let endpoint = Endpoint::start(Answer::WhenOpened);
    let ping = endpoint.url("/check");
    let args = ["-n", "job", "--ping", &ping, "--ping-timeout", "60s"];
    let mut holder = Holder::start_script(&server.url(), &args, &format!("touch started; {HOLD}"));
    // The command runs while the start ping waits for its answer.
    wait_until("the start ping arrives", || !endpoint.pings().is_empty());
    assert!(holder.path("started").exists());
    assert_eq!(
        endpoint.answered(),
        0,
        "the command waited for the start ping"
    );
    endpoint.open();
    let (status, stderr) = holder.finish();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(endpoint.paths(), ["/check/start", "/check/0"]);
}

#[test]
fn redlock_exits_within_the_ping_bound_when_the_endpoint_never_answers() {
    let server = RedisServer::start();
    let endpoint = Endpoint::start(Answer::Never);
    let ping = endpoint.url("/check");
    let bound = Duration::from_secs(1);
    let args = ["-n", "job", "--ping", &ping, "--ping-timeout", "1s"];
    let mut holder = Holder::start(&server.url(), &args);
    wait_until("the start ping arrives", || !endpoint.pings().is_empty());
    // The command ends while the start ping is in flight: the final ping waits for it, both
    // within the one bound.
    let ended = Instant::now();
    let (status, stderr) = holder.finish();
    let exited = ended.elapsed();
    assert_eq!(status.code(), Some(0), "{stderr}");
    // The margin is for what the bound does not cover: the command's exit, the release of the
    // lock and redlock's own exit, seen by a test on two cores shared with other builds. A
    // redlock that waited for the answer would wait for the endpoint's PATIENCE (20 s).
    let margin = Duration::from_secs(2);
    assert!(
        exited < bound + margin,
        "redlock exited {exited:?} after its command"
    );
    assert!(
        stderr.starts_with(&format!("redlock: warning: ping {ping}/start?rid=")),
        "{stderr}"
    );
    assert!(
        stderr
            .lines()
            .all(|line| line.starts_with("redlock: warning: ping ")),
        "{stderr}"
    );
}

#[test]
fn an_https_endpoint_is_trusted_as_rediss_servers_are() {
    let (server, certs) = RedisServer::start_tls();
    let endpoint = Endpoint::start_tls(certs.path());
    let ping = endpoint.url("/check");
    let ca = certs.path().join("ca.crt");
    let redis = format!("rediss://127.0.0.1:{}", server.port);
    let output = redlock(&redis)
        .env("SSL_CERT_FILE", &ca)
        .args(["run", "-n", "tls", "--ping", &ping, "--", "true"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(stderr, "");
    assert_eq!(endpoint.paths(), ["/check/start", "/check/0"]);
    // A certificate the system does not trust: a warning, and nothing sent.
    let redis = format!("{redis}/#insecure");
    let (code, stderr) = run(&redis, "tls", &["--ping", &ping], "true");
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stderr.lines().count(), 2, "{stderr}");
    assert!(
        stderr.starts_with(&format!("redlock: warning: ping {ping}/start?rid=")),
        "{stderr}"
    );
    assert!(stderr.contains("certificate"), "{stderr}");
    assert!(
        !stderr.contains("retry"),
        "a certificate is not tried again: {stderr}"
    );
    assert_eq!(endpoint.paths().len(), 2);
}
