//! TLS settings for `rediss://` servers, as redis-rs makes them (its own builder is private to
//! its blocking connection, which cannot be polled): the certificates of `--tls-ca`, else the
//! system's trusted certificates or those of the PEM file `SSL_CERT_FILE` names
//! (rustls-native-certs), and with `#insecure` no check at all. With `--tls-cert` and
//! `--tls-key`, a client certificate for servers that ask for one (mutual TLS).

use std::path::Path;
use std::sync::{Arc, OnceLock};

use anyhow::{Result, anyhow, bail};
use rustls::client::WantsClientCert;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{ClientConfig, ConfigBuilder, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// A server reached over TLS (`rediss://`); `insecure`: without checking its certificate
/// (`#insecure`).
#[derive(Clone, Copy)]
pub(super) struct Tls {
    pub insecure: bool,
}

/// What `--tls-ca`, `--tls-cert` and `--tls-key` give every `rediss://` server of the run.
#[derive(Default)]
struct Files {
    /// `--tls-ca`: the only certificates trusted; `None`: the system's.
    roots: Option<RootCertStore>,
    /// `--tls-cert` with `--tls-key`: shown to a server that asks for a client certificate.
    identity: Option<Arc<CertifiedKey>>,
}

/// The run's files, read when it starts (`use_files`), before any connection: they are the
/// same for every server, so `config` needs no more than the URL's `#insecure`.
static FILES: OnceLock<Files> = OnceLock::new();

/// Reads the files of `--tls-ca`, `--tls-cert` and `--tls-key` for every TLS connection of the
/// run. `Err`, naming the file, when one cannot be read or holds no certificate or key, or
/// when the key is not the certificate's.
pub(super) fn use_files(ca: Option<&Path>, cert: Option<&Path>, key: Option<&Path>) -> Result<()> {
    let files = read_files(ca, cert, key)?;
    // Once per run; a later call changes nothing.
    let _ = FILES.set(files);
    Ok(())
}

fn read_files(ca: Option<&Path>, cert: Option<&Path>, key: Option<&Path>) -> Result<Files> {
    let roots = ca.map(trusted).transpose()?;
    let identity = match (cert, key) {
        (Some(cert), Some(key)) => Some(Arc::new(identity(cert, key)?)),
        (None, None) => None,
        // clap makes each option require the other; this is for any other caller.
        (Some(_), None) => bail!("--tls-cert needs --tls-key"),
        (None, Some(_)) => bail!("--tls-key needs --tls-cert"),
    };
    Ok(Files { roots, identity })
}

/// The certificates of `--tls-ca`, each one a trust anchor.
fn trusted(path: &Path) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in certificates("--tls-ca", path)? {
        roots.add(cert).map_err(|e| {
            anyhow!(
                "--tls-ca {} holds a certificate that cannot be trusted: {e}",
                path.display()
            )
        })?;
    }
    Ok(roots)
}

/// The client certificate (its chain after it) and its private key, checked to belong together.
fn identity(cert: &Path, key: &Path) -> Result<CertifiedKey> {
    let chain = certificates("--tls-cert", cert)?;
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| unreadable(e, "--tls-key", key, "private key"))?;
    CertifiedKey::from_der(chain, private, &provider()).map_err(|e| {
        anyhow!(
            "--tls-key {} does not go with --tls-cert {}: {e}",
            key.display(),
            cert.display()
        )
    })
}

/// Every certificate in the PEM file `option` names; at least one.
fn certificates(option: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|found| found.collect::<Result<Vec<_>, _>>())
        .map_err(|e| unreadable(e, option, path, "certificate"))?;
    if certs.is_empty() {
        return Err(unreadable(
            pem::Error::NoItemsFound,
            option,
            path,
            "certificate",
        ));
    }
    Ok(certs)
}

/// Why the PEM file `option` names gave no `item`: the system's reason it cannot be read, or
/// what is wrong with what it holds.
fn unreadable(error: pem::Error, option: &str, path: &Path, item: &str) -> anyhow::Error {
    let path = path.display();
    match error {
        pem::Error::Io(e) => anyhow!("cannot read {option} {path}: {e}"),
        pem::Error::NoItemsFound => anyhow!("no PEM {item} in {option} {path}"),
        other => anyhow!("{option} {path} is not a valid PEM file: {other}"),
    }
}

/// The settings for servers whose certificate is checked, or not (`insecure`): made once per
/// run, on the first connection that needs them (loading the system's trusted certificates
/// reads files), and shared by every connection after it.
pub(super) fn config(insecure: bool) -> Result<Arc<ClientConfig>> {
    static CHECKED: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    static UNCHECKED: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    let (cell, make): (_, fn() -> Result<ClientConfig, String>) = if insecure {
        (&UNCHECKED, unchecked)
    } else {
        (&CHECKED, checked)
    };
    cell.get_or_init(|| make().map(Arc::new))
        .clone()
        .map_err(|e| anyhow!("{e}"))
}

/// The name the certificate must be for: a host name or an IP address.
pub(super) fn server_name(host: &str) -> Result<ServerName<'static>> {
    ServerName::try_from(host.to_string()).map_err(|_| anyhow!("invalid TLS server name '{host}'"))
}

fn files() -> &'static Files {
    FILES.get_or_init(Files::default)
}

fn checked() -> Result<ClientConfig, String> {
    let roots = match &files().roots {
        Some(roots) => roots.clone(),
        None => native_roots()?,
    };
    Ok(client_certificate(
        ClientConfig::builder().with_root_certificates(roots),
    ))
}

/// The system's trusted certificates, or those of `SSL_CERT_FILE`.
fn native_roots() -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    // A certificate rustls cannot use is skipped, as the system's other clients do.
    roots.add_parsable_certificates(system_certificates()?);
    Ok(roots)
}

/// The certificates redlock trusts when it is given none: the system's, or those of the PEM
/// file `SSL_CERT_FILE` names. For `rediss://` without `--tls-ca`, and for `--ping` over https.
pub fn system_certificates() -> Result<Vec<CertificateDer<'static>>, String> {
    let found = rustls_native_certs::load_native_certs();
    if let Some(error) = found.errors.first() {
        return Err(format!("cannot load the trusted certificates: {error}"));
    }
    Ok(found.certs)
}

fn unchecked() -> Result<ClientConfig, String> {
    let provider = provider();
    Ok(client_certificate(
        ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider))),
    ))
}

/// With `--tls-cert`, the settings show it to a server that asks; without, none is shown.
fn client_certificate(builder: ConfigBuilder<ClientConfig, WantsClientCert>) -> ClientConfig {
    match &files().identity {
        Some(identity) => {
            builder.with_client_cert_resolver(Arc::new(SingleCertAndKey::from(identity.clone())))
        }
        None => builder.with_no_client_auth(),
    }
}

/// rustls' cryptography: the process default if one was set, else ring (see Cargo.toml).
pub fn provider() -> Arc<CryptoProvider> {
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
}

/// `#insecure`: any certificate, for any name, is accepted; the handshake's signatures are
/// still checked, so the session is at least with the holder of that certificate's key.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

type Cert<'a> = CertificateDer<'a>;
type Dss = DigitallySignedStruct;
type Checked = Result<HandshakeSignatureValid, rustls::Error>;

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(&self, msg: &[u8], cert: &Cert, dss: &Dss) -> Checked {
        verify_tls12_signature(msg, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(&self, msg: &[u8], cert: &Cert, dss: &Dss) -> Checked {
        verify_tls13_signature(msg, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(ca: Option<&Path>, cert: Option<&Path>, key: Option<&Path>) -> String {
        match read_files(ca, cert, key) {
            Ok(_) => panic!("the files were accepted"),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn nothing_given_is_nothing_read() {
        let files = read_files(None, None, None).unwrap();
        assert!(files.roots.is_none() && files.identity.is_none());
    }

    #[test]
    fn a_file_that_cannot_be_read_is_named() {
        let missing = Path::new("/nonexistent/ca.pem");
        assert_eq!(
            error(Some(missing), None, None),
            "cannot read --tls-ca /nonexistent/ca.pem: No such file or directory (os error 2)"
        );
        let dir = tempfile::tempdir().unwrap();
        let err = error(None, Some(dir.path()), Some(dir.path()));
        assert!(err.starts_with("cannot read --tls-cert "), "{err}");
    }

    #[test]
    fn a_file_without_a_certificate_or_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "not a certificate\n").unwrap();
        assert_eq!(
            error(Some(&text), None, None),
            format!("no PEM certificate in --tls-ca {}", text.display())
        );
        let broken = dir.path().join("broken.pem");
        std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\n!!!\n").unwrap();
        let err = error(Some(&broken), None, None);
        assert!(err.contains("is not a valid PEM file"), "{err}");
    }
}
