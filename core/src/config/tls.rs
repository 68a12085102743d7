//! Where a listener's certificate and key come from: configuration, kept here (not in
//! `transport`, which loads it) so that `config` imports nothing above it.

use std::fmt;
use std::path::PathBuf;

/// Where a listener's certificate chain and private key come from, both PEM.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsSource {
    /// PEM files, read when the engine starts and again on `Engine::reload_tls`
    /// (`switchboard serve --tls-cert FILE --tls-key FILE`, `sb_config_set_tls`). Errors name
    /// the file.
    Files {
        /// The certificate chain: the server's certificate first, then intermediates.
        cert: PathBuf,
        /// The private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
        key: PathBuf,
    },
    /// PEM contents (what Node's `fs.readFileSync` gives, `engine.listen({ tls })`). Errors
    /// call them `tls.cert` and `tls.key`.
    Pem {
        /// The certificate chain, as [`TlsSource::Files::cert`].
        cert: Vec<u8>,
        /// The private key, as [`TlsSource::Files::key`].
        key: Vec<u8>,
    },
}

impl fmt::Debug for TlsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsSource::Files { cert, key } => f
                .debug_struct("Files")
                .field("cert", cert)
                .field("key", key)
                .finish(),
            // The key's contents are a secret: never in logs.
            TlsSource::Pem { cert, .. } => {
                write!(f, "Pem {{ cert: {} bytes, key: .. }}", cert.len())
            }
        }
    }
}
