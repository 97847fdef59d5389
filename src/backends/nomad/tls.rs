//! TLS for `https://` Nomad addresses (rustls with the ring provider): CA certificates from
//! `nomad.ca_cert` / `nomad.ca_path` (else the system's), a client certificate and key (both or
//! neither), verification against `nomad.tls_server_name` instead of the address's host, and
//! `nomad.skip_verify`. The same config serves the HTTP client and the exec websocket.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::client::TlsSettings;
use crate::lease::LeaseError;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, LeaseError> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| LeaseError::Config(format!("cannot read `{}`: {e}", path.display())))?
        .collect();
    certs.map_err(|e| LeaseError::Config(format!("cannot read `{}`: {e}", path.display())))
}

/// Build the rustls client config for `tls`.
///
/// # Errors
/// A file cannot be read or parsed, or only one of client cert and key is set.
pub fn client_config(tls: &TlsSettings) -> Result<rustls::ClientConfig, LeaseError> {
    let mut roots = rustls::RootCertStore::empty();
    if tls.ca_cert.is_none() && tls.ca_path.is_none() {
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
    }
    if let Some(file) = &tls.ca_cert {
        for cert in read_certs(file)? {
            roots.add(cert).map_err(|e| {
                LeaseError::Config(format!("bad CA certificate in `{}`: {e}", file.display()))
            })?;
        }
    }
    if let Some(dir) = &tls.ca_path {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| LeaseError::Config(format!("cannot read `{}`: {e}", dir.display())))?;
        for entry in entries.flatten() {
            if entry.path().is_file() {
                for cert in read_certs(&entry.path())? {
                    let _ = roots.add(cert);
                }
            }
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .map_err(|e| LeaseError::Config(format!("TLS setup failed: {e}")))?;
    let roots = Arc::new(roots);
    let builder = if tls.skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider())))
    } else if let Some(name) = &tls.tls_server_name {
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::clone(&roots),
            provider(),
        )
        .build()
        .map_err(|e| LeaseError::Config(format!("TLS setup failed: {e}")))?;
        let name = ServerName::try_from(name.clone()).map_err(|e| {
            LeaseError::Config(format!(
                "`nomad.tls_server_name` `{name}` is not a server name: {e}"
            ))
        })?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NamedVerify { inner, name }))
    } else {
        builder.with_root_certificates(Arc::clone(&roots))
    };
    let mut config = match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert)?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                LeaseError::Config(format!(
                    "cannot read the client key `{}`: {e}",
                    key.display()
                ))
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| LeaseError::Config(format!("bad client certificate or key: {e}")))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(LeaseError::Config(
                "set both `nomad.client_cert` and `nomad.client_key` (`NOMAD_CLIENT_CERT`/`NOMAD_CLIENT_KEY`), or neither".into(),
            ));
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Verifies the certificate against a configured name instead of the address's host.
#[derive(Debug)]
struct NamedVerify {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for NamedVerify {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `nomad.skip_verify`: accepts any certificate (signatures are still checked).
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
