//! `--ping URL`: health-check pings in the healthchecks.io protocol, as runitor speaks it.
//! `URL/start?rid=ID` once the lock is taken; when the run is over, `URL/STATUS?rid=ID` with
//! redlock's exit status (0 is a success), `URL/fail?rid=ID`, or `URL?rid=ID` (a success),
//! with redlock's summary line as the body (`last`). The run id pairs the two pings of a run
//! when runs overlap. docs/pings.md is the user's side.
//!
//! A ping never holds up the job: the start ping goes on a thread of its own, beside the
//! command; redlock waits for the final one at most `--ping-timeout`, a retry included, and that
//! wait takes in the rest of a start ping still in flight. A failed ping is one warning line.

use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use ureq::Agent;
use ureq::tls::{Certificate, RootCerts, TlsConfig};

use super::{Outcome, Report};
use crate::duration::human;
use crate::lock::tls;

/// The pause before the retry of a ping that failed at once (refused, or a 5xx answer): a
/// server that is restarting gets a moment.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// The pings of one run.
pub struct Pings {
    endpoint: Arc<Endpoint>,
    /// Whether a busy run pings a success (`--ping-busy ok`).
    busy_ok: bool,
    /// Closed when the start ping is over (answered, failed or given up), if one was sent.
    start: Option<Receiver<()>>,
}

impl Pings {
    /// Only notes the URL and a new run id: nothing is connected, and no thread started, before
    /// the first ping.
    pub fn new(url: &str, timeout: Duration, busy_ok: bool) -> Self {
        let rid = uuid::Uuid::new_v4().to_string();
        Pings {
            endpoint: Arc::new(Endpoint::new(url, &rid, timeout)),
            busy_ok,
            start: None,
        }
    }

    /// The lock is ours and the command about to start: `URL/start`, in the background.
    pub fn start(&mut self) {
        let deadline = Instant::now() + self.endpoint.timeout;
        let endpoint = self.endpoint.clone();
        let url = endpoint.url("start");
        let (over, start) = mpsc::channel::<()>();
        let ping = {
            let url = url.clone();
            move || {
                if let Err(why) = endpoint.send(&url, None, deadline) {
                    warn(&url, &why);
                }
                drop(over);
            }
        };
        match thread::Builder::new().name("ping".into()).spawn(ping) {
            Ok(_) => self.start = Some(start),
            Err(e) => warn(&url, &format!("cannot start a thread: {e}")),
        }
    }

    /// The run is over: the final ping, for at most the time-out. It follows the start ping,
    /// so that the two arrive in order; a start ping still in flight uses up the same time-out.
    pub fn finish(&mut self, report: &Report) {
        let Some(what) = last(report, self.busy_ok) else {
            return;
        };
        let deadline = Instant::now() + self.endpoint.timeout;
        if let Some(start) = self.start.take() {
            let _ = start.recv_timeout(deadline.saturating_duration_since(Instant::now()));
        }
        let url = self.endpoint.url(&what);
        if let Err(why) = self.endpoint.send(&url, Some(&report.summary), deadline) {
            warn(&url, &why);
        }
    }
}

/// What the final ping of `report` is, as the path after URL (empty: URL itself, a success);
/// `None`: no ping at all.
fn last(report: &Report, busy_ok: bool) -> Option<String> {
    match report.outcome {
        // 126 and 127 (the command could not be started) are failures too, as any non-zero.
        Outcome::Ran => Some(report.exit_code.to_string()),
        Outcome::Lost | Outcome::Timeout | Outcome::Unavailable => Some("fail".into()),
        // The job was not due: another run was doing it.
        Outcome::Busy => busy_ok.then(String::new),
        // Another run took the job over on purpose (--replace) and pings for it: a success
        // closes this run without an alert.
        Outcome::Replaced => Some(String::new()),
    }
}

/// Where the pings go: the URL cut into the part the ping's path follows and its query.
struct Endpoint {
    /// The URL without its query, fragment or trailing `/`.
    base: String,
    /// `?` and the URL's own query and `&`, then `rid=ID`.
    query: String,
    /// `--ping-timeout`.
    timeout: Duration,
    /// Made by the first ping that needs it (on its thread), then shared.
    agent: OnceLock<Result<Agent, String>>,
}

impl Endpoint {
    fn new(url: &str, rid: &str, timeout: Duration) -> Self {
        let url = url.split_once('#').map_or(url, |(url, _)| url);
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let query = query.trim_end_matches('&');
        let query = match query {
            "" => format!("?rid={rid}"),
            query => format!("?{query}&rid={rid}"),
        };
        Endpoint {
            base: base.trim_end_matches('/').to_string(),
            query,
            timeout,
            agent: OnceLock::new(),
        }
    }

    /// `URL/what?rid=ID`, or `URL?rid=ID` for an empty `what`.
    fn url(&self, what: &str) -> String {
        match what {
            "" => format!("{}{}", self.base, self.query),
            what => format!("{}/{what}{}", self.base, self.query),
        }
    }

    /// POSTs `body` (none: an empty one) to `url` by `deadline`, and once more after a failure
    /// that came at once; why it failed, if it did.
    fn send(&self, url: &str, body: Option<&str>, deadline: Instant) -> Result<(), String> {
        let agent = self
            .agent
            .get_or_init(|| agent(self.base.to_ascii_lowercase().starts_with("https:")))
            .as_ref()?;
        let mut retried = false;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("not sent: --ping-timeout ran out waiting for the start ping".into());
            }
            let request = agent
                .post(url)
                .config()
                .timeout_global(Some(left))
                .build()
                .content_type("text/plain; charset=utf-8");
            let sent = match body {
                Some(body) => request.send(body),
                None => request.send_empty(),
            };
            let error = match sent {
                Ok(_) => return Ok(()),
                Err(error) => error,
            };
            let pause = RETRY_PAUSE.min(deadline.saturating_duration_since(Instant::now()));
            if retried || !passing(&error) || pause < RETRY_PAUSE {
                let again = if retried { " (after one retry)" } else { "" };
                return Err(format!("{}{again}", self.describe(&error)));
            }
            retried = true;
            thread::sleep(pause);
        }
    }

    /// A failed ping's cause, in words.
    fn describe(&self, error: &ureq::Error) -> String {
        match error {
            ureq::Error::StatusCode(code) => format!("the server answered HTTP {code}"),
            ureq::Error::Timeout(_) => {
                format!("no answer within --ping-timeout {}", human(self.timeout))
            }
            ureq::Error::Io(e) => e.to_string(),
            ureq::Error::HostNotFound => "host not found".into(),
            other => other.to_string(),
        }
    }
}

/// An agent that trusts the certificates `rediss://` trusts without `--tls-ca`, with rustls and
/// ring as redis-rs has them; for an `http:` URL, a missing certificate store does not matter.
fn agent(https: bool) -> Result<Agent, String> {
    let roots = match tls::system_certificates() {
        Ok(certs) => certs,
        Err(e) if https => return Err(e),
        // Only a redirect to https could need them, and it then fails.
        Err(_) => Vec::new(),
    };
    let roots = roots
        .iter()
        .map(|cert| Certificate::from_der(cert).to_owned())
        .collect::<Vec<_>>();
    let tls = TlsConfig::builder()
        .root_certs(RootCerts::Specific(Arc::new(roots)))
        .unversioned_rustls_crypto_provider(tls::provider())
        .build();
    Ok(Agent::config_builder()
        .tls_config(tls)
        .user_agent(concat!("redlock/", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent())
}

/// Whether a failure may pass if the ping is sent again: the server could not be reached, or
/// answered with a server error. Not a client error (4xx: the URL is wrong), nor a TLS one (an
/// untrusted certificate, which rustls gives as invalid data).
fn passing(error: &ureq::Error) -> bool {
    match error {
        ureq::Error::StatusCode(code) => *code >= 500,
        ureq::Error::Io(e) => e.kind() != std::io::ErrorKind::InvalidData,
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => true,
        _ => false,
    }
}

/// `redlock: warning: ping URL: why`, or a JSON `warning` event (say.rs).
fn warn(url: &str, why: &str) {
    crate::say::warning(format!("ping {url}: {why}"), &[("ping", url.into())]);
}

/// Whether `--ping`'s value is an http:// or https:// URL with a host.
pub fn check_url(text: &str) -> Result<(), String> {
    let uri: ureq::http::Uri = text.parse().map_err(|e| format!("not a URL: {e}"))?;
    let scheme = uri.scheme_str().unwrap_or_default();
    if !["http", "https"].contains(&scheme.to_ascii_lowercase().as_str()) {
        return Err("must be an http:// or https:// URL".into());
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("the URL has no host".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    const RID: &str = "2f0c3a52-0c4e-4c7e-9d8e-6f1b2b6f2a11";

    fn urls(url: &str) -> [String; 3] {
        let endpoint = Endpoint::new(url, RID, Duration::from_secs(5));
        ["start", "0", ""].map(|what| endpoint.url(what))
    }

    #[test]
    fn the_ping_follows_the_path_and_the_rid_ends_the_query() {
        let plain = [
            format!("https://hc.example/abc/start?rid={RID}"),
            format!("https://hc.example/abc/0?rid={RID}"),
            format!("https://hc.example/abc?rid={RID}"),
        ];
        assert_eq!(urls("https://hc.example/abc"), plain);
        assert_eq!(urls("https://hc.example/abc/"), plain);
        assert_eq!(urls("https://hc.example/abc?"), plain);
        assert_eq!(urls("https://hc.example/abc#notes"), plain);
        assert_eq!(
            urls("https://hc.example/key/backup/?create=1"),
            [
                format!("https://hc.example/key/backup/start?create=1&rid={RID}"),
                format!("https://hc.example/key/backup/0?create=1&rid={RID}"),
                format!("https://hc.example/key/backup?create=1&rid={RID}"),
            ]
        );
    }

    fn report(outcome: Outcome, exit_code: u8) -> Report {
        Report {
            name: "job".into(),
            outcome,
            exit_code,
            began: SystemTime::now(),
            waited: Duration::ZERO,
            started: None,
            ran: None,
            fence: None,
            summary: String::new(),
        }
    }

    #[test]
    fn each_outcome_has_its_final_ping() {
        let cases = [
            (Outcome::Ran, 0, false, Some("0")),
            (Outcome::Ran, 3, false, Some("3")),
            (Outcome::Ran, 127, false, Some("127")),
            (Outcome::Lost, 76, false, Some("fail")),
            (Outcome::Timeout, 124, false, Some("fail")),
            (Outcome::Unavailable, 69, false, Some("fail")),
            (Outcome::Replaced, 77, false, Some("")),
            (Outcome::Busy, 75, false, None),
            (Outcome::Busy, 75, true, Some("")),
        ];
        for (outcome, code, busy, expected) in cases {
            let got = last(&report(outcome, code), busy);
            assert_eq!(got.as_deref(), expected, "{outcome:?} {code} {busy:?}");
        }
    }

    #[test]
    fn only_http_urls_are_taken() {
        assert!(check_url("https://hc-ping.com/abc").is_ok());
        assert!(check_url("HTTP://127.0.0.1:8000/ping?x=1").is_ok());
        for bad in [
            "hc-ping.com/abc",
            "ftp://host/x",
            "https://",
            "not a url",
            "",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }
}
