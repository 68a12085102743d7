//! TLS on the engine's own listeners: a PEM certificate chain and its private key loaded into
//! a rustls server configuration (TLS 1.2 and 1.3, ALPN `http/1.1`, the `ring` provider), and
//! connections accepted under a handshake deadline.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// How long a client may take to complete its TLS handshake. Without a deadline a client that
/// connects and sends nothing (or a partial ClientHello) holds a socket and a task forever;
/// 10 s is what the HTTP header timeout allows too, far above a real handshake on a slow
/// mobile link (a few round trips).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The content type of a TLS record carrying a handshake message: every TLS connection
/// starts with one (the ClientHello).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

pub use crate::config::TlsSource;

/// Which of the two PEM inputs an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PemPart {
    /// The certificate chain.
    Certificate,
    /// The private key.
    Key,
}

impl fmt::Display for PemPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PemPart::Certificate => "certificate",
            PemPart::Key => "key",
        })
    }
}

/// Why a certificate and key cannot be served. Every message names the file (or `tls.cert` /
/// `tls.key` for PEM contents) so that one line tells an operator what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The file could not be read: check the path and the server's permission to read it.
    #[error("cannot read TLS {part} {}: {source}", path.display())]
    Read {
        /// Certificate or key.
        part: PemPart,
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The input has a PEM block that does not decode (a truncated or edited file).
    #[error("TLS {part} {origin} is not valid PEM: {reason}")]
    Pem {
        /// Certificate or key.
        part: PemPart,
        /// The file, or `tls.cert` / `tls.key`.
        origin: String,
        /// The PEM parser's complaint.
        reason: String,
    },
    /// No `BEGIN CERTIFICATE` block (a key given as the certificate, a DER file).
    #[error("no certificate in {origin} (expected a PEM \"BEGIN CERTIFICATE\" block)")]
    NoCertificate {
        /// The file, or `tls.cert`.
        origin: String,
    },
    /// No private key block (a certificate given as the key, an encrypted key).
    #[error(
        "no private key in {origin} (expected an unencrypted PEM \"BEGIN PRIVATE KEY\", \
         \"BEGIN RSA PRIVATE KEY\" or \"BEGIN EC PRIVATE KEY\" block)"
    )]
    NoKey {
        /// The file, or `tls.key`.
        origin: String,
    },
    /// The certificate does not parse as X.509.
    #[error("TLS certificate {origin} cannot be used: {reason}")]
    BadCertificate {
        /// The file, or `tls.cert`.
        origin: String,
        /// rustls's complaint.
        reason: String,
    },
    /// The key is of a kind the server cannot sign with (or is corrupt).
    #[error("TLS key {origin} cannot be used: {reason}")]
    BadKey {
        /// The file, or `tls.key`.
        origin: String,
        /// rustls's complaint.
        reason: String,
    },
    /// The key is not the certificate's: give the key the certificate was issued for.
    #[error("TLS key {key} does not match the certificate {cert}")]
    KeyMismatch {
        /// The certificate's file, or `tls.cert`.
        cert: String,
        /// The key's file, or `tls.key`.
        key: String,
    },
}

/// Reads one input: its bytes and the name errors give it.
fn read(source: &TlsSource, part: PemPart) -> Result<(Vec<u8>, String), TlsError> {
    match source {
        TlsSource::Files { cert, key } => {
            let path = if part == PemPart::Certificate {
                cert
            } else {
                key
            };
            let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
                part,
                path: path.clone(),
                source,
            })?;
            Ok((bytes, path.display().to_string()))
        }
        TlsSource::Pem { cert, key } => Ok(match part {
            PemPart::Certificate => (cert.clone(), "tls.cert".to_owned()),
            PemPart::Key => (key.clone(), "tls.key".to_owned()),
        }),
    }
}

fn pem_error(part: PemPart, origin: &str, e: pem::Error) -> TlsError {
    match (e, part) {
        (pem::Error::NoItemsFound, PemPart::Certificate) => TlsError::NoCertificate {
            origin: origin.to_owned(),
        },
        (pem::Error::NoItemsFound, PemPart::Key) => TlsError::NoKey {
            origin: origin.to_owned(),
        },
        (e, part) => TlsError::Pem {
            part,
            origin: origin.to_owned(),
            reason: e.to_string(),
        },
    }
}

/// Loads `source` into a server configuration: TLS 1.2 and 1.3 only, ALPN `http/1.1` (the
/// engine speaks HTTP/1.1; WebSocket upgrades need it), no client certificates.
pub fn server_config(source: &TlsSource) -> Result<Arc<ServerConfig>, TlsError> {
    let (cert_pem, cert_origin) = read(source, PemPart::Certificate)?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(PemPart::Certificate, &cert_origin, e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            origin: cert_origin,
        });
    }
    let (key_pem, key_origin) = read(source, PemPart::Key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| pem_error(PemPart::Key, &key_origin, e))?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        // Only fails for a provider without suites for these versions; ring has them.
        .map_err(|e| TlsError::BadKey {
            origin: key_origin.clone(),
            reason: e.to_string(),
        })?
        .with_no_client_auth();
    // `with_single_cert` parses the key, then compares its public half with the certificate's
    // (`CertifiedKey::keys_match`), so a key of another certificate is refused here, at start.
    let mut config = builder.with_single_cert(certs, key).map_err(|e| match e {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
            TlsError::KeyMismatch {
                cert: cert_origin.clone(),
                key: key_origin.clone(),
            }
        }
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
            TlsError::BadCertificate {
                origin: cert_origin.clone(),
                reason: e.to_string(),
            }
        }
        other => TlsError::BadKey {
            origin: key_origin.clone(),
            reason: other.to_string(),
        },
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The TLS side of a listener: the server configuration in use, replaced whole by
/// [`TlsAcceptor::reload`] (connections already open keep the one they started with).
pub struct TlsAcceptor {
    source: TlsSource,
    current: RwLock<Arc<ServerConfig>>,
}

impl fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsAcceptor")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl TlsAcceptor {
    /// Loads `source`; fails with the reason naming the file.
    pub fn new(source: TlsSource) -> Result<Self, TlsError> {
        let config = server_config(&source)?;
        Ok(TlsAcceptor {
            source,
            current: RwLock::new(config),
        })
    }

    /// Reads the source again (renewed certificate files) and serves new connections with
    /// it. On failure the configuration in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = server_config(&self.source)?;
        *self.current.write() = config;
        Ok(())
    }

    /// Runs the server side of the handshake, within [`HANDSHAKE_TIMEOUT`]. A connection
    /// that does not start with a TLS handshake record (plain HTTP to the TLS port) is refused
    /// before anything is written to it: the client gets no answer at all, not a TLS alert
    /// it would show as garbage.
    pub async fn accept(&self, stream: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        let config = self.current.read().clone();
        let handshake = async move {
            let mut first = [0u8; 1];
            if stream.peek(&mut first).await? == 0 || first[0] != TLS_HANDSHAKE_RECORD {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "not a TLS handshake (plain HTTP to the TLS port?)",
                ));
            }
            tokio_rustls::TlsAcceptor::from(config).accept(stream).await
        };
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (String, String) {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("rcgen");
        (c.cert.pem(), c.signing_key.serialize_pem())
    }

    fn pem(cert: &str, key: &str) -> TlsSource {
        TlsSource::Pem {
            cert: cert.as_bytes().to_vec(),
            key: key.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_matching_pair_loads_with_http11_alpn() {
        let (cert, key) = pair();
        let config = server_config(&pem(&cert, &key)).expect("loads");
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    #[test]
    fn errors_name_what_is_wrong() {
        let (cert, key) = pair();
        let (_, other_key) = pair();
        let e = server_config(&pem(&cert, &other_key)).unwrap_err();
        assert!(matches!(e, TlsError::KeyMismatch { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            "TLS key tls.key does not match the certificate tls.cert"
        );
        let e = server_config(&pem(&key, &key)).unwrap_err();
        assert!(
            e.to_string().starts_with("no certificate in tls.cert"),
            "{e}"
        );
        let e = server_config(&pem(&cert, &cert)).unwrap_err();
        assert!(
            e.to_string().starts_with("no private key in tls.key"),
            "{e}"
        );
        let broken = cert.replace("-----END CERTIFICATE-----", "");
        let e = server_config(&pem(&broken, &key)).unwrap_err();
        assert!(matches!(e, TlsError::Pem { .. }), "{e}");
    }

    #[test]
    fn a_missing_file_is_named() {
        let source = TlsSource::Files {
            cert: "/nonexistent/cert.pem".into(),
            key: "/nonexistent/key.pem".into(),
        };
        let e = server_config(&source).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot read TLS certificate /nonexistent/cert.pem: "),
            "{e}"
        );
    }

    #[test]
    fn pem_contents_are_not_debug_printed() {
        let (cert, key) = pair();
        assert!(!format!("{:?}", pem(&cert, &key)).contains("PRIVATE"));
    }
}
