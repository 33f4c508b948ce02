//! TLS settings for `rediss://` servers, as redis-rs makes them (its own builder is private to
//! its blocking connection, which cannot be polled): the system's trusted certificates, or the
//! PEM file `SSL_CERT_FILE` names (rustls-native-certs), and with `#insecure` no check at all.

use std::sync::{Arc, OnceLock};

use anyhow::{Result, anyhow};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// The settings for servers whose certificate is checked, or not (`insecure`): made once per
/// run, on the first connection that needs them (loading the trusted certificates reads
/// files), and shared by every connection after it.
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

fn checked() -> Result<ClientConfig, String> {
    let found = rustls_native_certs::load_native_certs();
    if let Some(error) = found.errors.first() {
        return Err(format!("cannot load the trusted certificates: {error}"));
    }
    let mut roots = RootCertStore::empty();
    // A certificate rustls cannot use is skipped, as the system's other clients do.
    roots.add_parsable_certificates(found.certs);
    Ok(ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn unchecked() -> Result<ClientConfig, String> {
    let provider = CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    Ok(ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth())
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
