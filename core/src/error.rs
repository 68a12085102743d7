//! The engine's error type.

use std::net::SocketAddr;

/// Everything that can stop the engine from starting or serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is invalid; fix the named setting.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The JWT public key could not be used; provide an RSA or EC public key in PEM form.
    #[error(transparent)]
    JwtKey(#[from] crate::auth::KeyError),
    /// The TLS certificate or key cannot be served; the message names the file and what is
    /// wrong with it.
    #[error(transparent)]
    Tls(#[from] crate::transport::tls::TlsError),
    /// The address could not be bound (in use, or not a local address).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The engine's runtime could not start (out of threads or memory).
    #[error("cannot start the engine's runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The cluster could not be set up (an invalid Redis URL).
    #[error("cluster: {0}")]
    Cluster(String),
    /// The history store could not be opened or written.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}
