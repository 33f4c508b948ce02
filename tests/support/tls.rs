//! TLS servers, with certificates made by one signer (`Certs`): a CA of the test's own, the
//! certificates it signs, and strangers it does not.

use std::path::Path;
use std::process::{Command, Stdio};

use tempfile::TempDir;

use super::server::{RedisServer, free_port};

/// A directory of certificates, made with openssl: `ca.crt` and `ca.key` first.
pub struct Certs {
    pub dir: TempDir,
    /// How each key is made.
    new_key: &'static [&'static str],
}

/// EC keys: made in a moment, where RSA keys take a good part of a second each.
const EC: &[&str] = &[
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];
/// RSA keys, as most servers' certificates still have.
const RSA: &[&str] = &["-newkey", "rsa:2048", "-nodes"];

impl Certs {
    /// A new CA, its certificates with EC keys.
    pub fn new() -> Self {
        Certs::with_keys(EC)
    }

    /// A new CA, its certificates with keys made by `new_key` (`EC`, `RSA`).
    fn with_keys(new_key: &'static [&'static str]) -> Self {
        let certs = Certs {
            dir: tempfile::tempdir().unwrap(),
            new_key,
        };
        certs.self_signed("ca", "/CN=redlock test CA");
        certs
    }

    /// `NAME.crt` with `NAME.key`, for `subject`, signed by none: a CA, or a stranger.
    pub fn self_signed(&self, name: &str, subject: &str) {
        let (key, crt) = (format!("{name}.key"), format!("{name}.crt"));
        let args = [
            &["req", "-x509"],
            self.new_key,
            &["-keyout", &key, "-out", &crt],
        ];
        self.openssl(&[&args.concat()[..], &["-days", "2", "-subj", subject]].concat());
    }

    /// `NAME.crt` with `NAME.key`, for `subject`, signed by the CA, with `extension` (a line of
    /// openssl's extension file: `subjectAltName=IP:127.0.0.1`).
    pub fn signed(&self, name: &str, subject: &str, extension: &str) {
        let (key, csr, crt, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("{name}.ext"),
        );
        let args = [&["req"], self.new_key, &["-keyout", &key, "-out", &csr]].concat();
        self.openssl(&[&args[..], &["-subj", subject]].concat());
        std::fs::write(self.dir.path().join(&ext), format!("{extension}\n")).unwrap();
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "2",
            "-extfile",
            &ext,
        ]);
    }

    /// One of the files, by name.
    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_string()
    }

    /// A server's certificate for 127.0.0.1, and the arguments that make a server speak TLS
    /// on `tls_port` with it, trusting the CA; `clients`: whether clients need a certificate
    /// the CA signed.
    fn server_args(&self, tls_port: u16, clients: bool) -> Vec<String> {
        if !Path::new(&self.path("server.crt")).exists() {
            self.signed("server", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1");
        }
        let clients = if clients { "yes" } else { "no" };
        let (crt, key, ca) = (
            self.path("server.crt"),
            self.path("server.key"),
            self.path("ca.crt"),
        );
        ["--tls-port", &tls_port.to_string(), "--tls-cert-file", &crt]
            .into_iter()
            .chain(["--tls-key-file", &key, "--tls-ca-cert-file", &ca])
            .chain(["--tls-auth-clients", clients])
            .map(String::from)
            .collect()
    }

    fn openssl(&self, args: &[&str]) {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .stderr(Stdio::null())
            .status();
        assert!(
            status.expect("openssl must be installed").success(),
            "openssl {args:?}"
        );
    }
}

impl RedisServer {
    /// A server that speaks only TLS on its port, with a certificate for 127.0.0.1 signed by a
    /// CA of its own (RSA keys; the mutual TLS fixture's are EC); returns it with the
    /// directory that holds the CA's `ca.crt`.
    pub fn start_tls() -> (Self, TempDir) {
        let certs = Certs::with_keys(RSA);
        let args = |port: u16| -> Vec<String> {
            let plain = ["--port", "0"].map(String::from);
            plain
                .into_iter()
                .chain(certs.server_args(port, false))
                .collect()
        };
        let ready_url = |port: u16| format!("rediss://127.0.0.1:{port}/#insecure");
        (Self::launch(args, ready_url), certs.dir)
    }
}

/// A server that speaks TLS only to clients with a certificate its CA signed
/// (`--tls-auth-clients yes`), with the files a client needs in `certs`: `ca.crt`, and
/// `client.crt` with `client.key`; `stranger.crt` with `stranger.key` are a certificate the
/// server does not trust. Its plain port (`server.url()`) is for the test's own inspection.
pub struct MutualTls {
    pub server: RedisServer,
    pub tls_port: u16,
    pub certs: Certs,
}

impl MutualTls {
    pub fn start() -> Self {
        let certs = Certs::new();
        certs.signed("client", "/CN=redlock", "extendedKeyUsage=clientAuth");
        certs.self_signed("stranger", "/CN=stranger");
        // The plain port tells when the server is ready (the fixture's client has no
        // certificate); the TLS port is taken afresh with each attempt, as the plain one is.
        let tls_port = std::cell::Cell::new(0);
        let args = |port: u16| -> Vec<String> {
            tls_port.set(free_port());
            let plain = ["--port".to_string(), port.to_string()];
            let tls = certs.server_args(tls_port.get(), true);
            plain.into_iter().chain(tls).collect()
        };
        let server = RedisServer::launch(args, |port| format!("redis://127.0.0.1:{port}"));
        MutualTls {
            server,
            tls_port: tls_port.get(),
            certs,
        }
    }

    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.tls_port)
    }

    /// One of the files in `certs`, by name.
    pub fn file(&self, name: &str) -> String {
        self.certs.path(name)
    }
}
