//! Verification keys from an identity provider's JWKS URL, fetched over HTTPS (rustls on
//! `ring`, roots from `webpki-roots` plus an optional extra CA) and kept fresh without a
//! restart.
//!
//! Costs an attacker cannot raise: a token's key is looked up in an immutable snapshot
//! (an `Arc` cloned under a read lock held for nothing else, never by a fetch); a fetch is
//! bounded in time ([`FETCH_TIMEOUT`]) and size ([`MAX_BODY`], [`MAX_KEYS`]); and a token
//! naming an unknown `kid` causes at most one fetch per refetch interval, shared by every
//! token waiting for it (single flight), so a flood of forged `kid`s costs the provider one
//! request per interval.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use parking_lot::RwLock;
use serde_json::Value;

use super::AuthError;

/// Longest a fetch (connect, TLS, request, body) may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest JWKS response read; a larger one fails the fetch (the last good set stays).
pub const MAX_BODY: usize = 256 * 1024;
/// Most keys taken from one JWKS (providers publish two or three).
pub const MAX_KEYS: usize = 64;
/// Shortest time a fetched set is used before it is refetched, whatever `Cache-Control` says.
pub const MIN_CACHE: Duration = Duration::from_secs(60);
/// Longest time a fetched set is used before it is refetched.
pub const MAX_CACHE: Duration = Duration::from_secs(24 * 3600);
/// How long a set is used when the response has no `max-age`.
pub const DEFAULT_CACHE: Duration = Duration::from_secs(300);

/// Why a JWKS URL or its CA cannot be used, or a fetch failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    /// The URL does not parse, or is plain `http://` to a host other than loopback.
    #[error("invalid jwks_url `{url}`: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong and what would work.
        reason: &'static str,
    },
    /// The extra CA file could not be read or holds no PEM certificate.
    #[error("jwks_ca_file {path}: {reason}")]
    Ca {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The provider could not be reached or answered something unusable.
    #[error("JWKS fetch from {url} failed: {reason}")]
    Fetch {
        /// The JWKS URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
}

/// A verification key of the set, with the algorithms a token signed with it may use.
pub(crate) struct VerifyKey {
    pub key: DecodingKey,
    pub algorithms: Vec<Algorithm>,
}

/// One fetched set: keys by `kid`, and until when it is fresh.
#[derive(Default)]
struct KeySet {
    keys: HashMap<String, Arc<VerifyKey>>,
    /// `None` until a fetch succeeded.
    fresh_until: Option<Instant>,
}

/// Where the set comes from.
struct Source {
    url: String,
    host: String,
    port: u16,
    path: String,
    /// `None` for `http://` on loopback.
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// A provider's key set, shared by every verifier of an engine.
pub(crate) struct Jwks {
    source: Source,
    refetch_interval: Duration,
    set: RwLock<Arc<KeySet>>,
    /// Held while a fetch runs: callers that need one wait for it instead of starting their
    /// own. Holds when the last fetch started.
    fetching: tokio::sync::Mutex<Option<Instant>>,
    /// A background refresh of a stale set is under way.
    refreshing: AtomicBool,
}

impl Jwks {
    /// Prepares the set of `url` (nothing is fetched yet). `http://` is refused except for
    /// loopback hosts (a provider on the same machine, in development and tests): keys fetched
    /// in clear text over a network could be replaced by anyone on the path.
    pub(crate) fn new(
        url: &str,
        ca_file: Option<&Path>,
        refetch_interval: Duration,
    ) -> Result<Self, JwksError> {
        let bad = |reason| JwksError::Url {
            url: url.to_owned(),
            reason,
        };
        let uri = http::Uri::from_str(url).map_err(|_| bad("not a URL"))?;
        let host = uri
            .host()
            .ok_or_else(|| bad("the URL has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let tls = match uri.scheme_str() {
            Some("https") => Some(Arc::new(client_config(ca_file)?)),
            Some("http") if is_loopback(&host) => None,
            Some("http") => {
                return Err(bad(
                    "plain http:// is only allowed to a loopback host; use https://",
                ))
            }
            _ => return Err(bad("the URL must start with https://")),
        };
        let port = uri
            .port_u16()
            .unwrap_or(if tls.is_some() { 443 } else { 80 });
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        Ok(Jwks {
            source: Source {
                url: url.to_owned(),
                host,
                port,
                path,
                tls,
            },
            refetch_interval,
            set: RwLock::new(Arc::new(KeySet::default())),
            fetching: tokio::sync::Mutex::new(None),
            refreshing: AtomicBool::new(false),
        })
    }

    /// The key for a token's `kid` (a token without one uses the set's only key). An unknown
    /// `kid` refetches the set first, at most once per refetch interval; a stale set is
    /// used while it is refreshed in the background.
    pub(crate) async fn key(
        self: &Arc<Self>,
        kid: Option<&str>,
    ) -> Result<Arc<VerifyKey>, AuthError> {
        let set = self.snapshot();
        if let Some(key) = find(&set, kid) {
            if set.fresh_until.is_some_and(|t| t <= Instant::now()) {
                self.refresh_in_background();
            }
            return Ok(key);
        }
        self.refresh().await;
        find(&self.snapshot(), kid).ok_or(AuthError::UnknownKey)
    }

    /// Fetches the set once now (at start-up), logging the outcome.
    pub(crate) async fn load(&self) {
        self.refresh().await;
    }

    fn snapshot(&self) -> Arc<KeySet> {
        self.set.read().clone()
    }

    fn refresh_in_background(self: &Arc<Self>) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        // Nothing to start while a fetch runs or within the interval of the last one (a
        // provider that is down): no task per token.
        match self.fetching.try_lock() {
            Ok(last) if last.is_some_and(|t| t.elapsed() < self.refetch_interval) => return,
            Ok(_) => {}
            Err(_) => return,
        }
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let jwks = self.clone();
        handle.spawn(async move {
            jwks.refresh().await;
            jwks.refreshing.store(false, Ordering::Release);
        });
    }

    /// Fetches the set unless a fetch started less than the refetch interval ago; a caller
    /// arriving while a fetch runs waits for it and then uses its result.
    async fn refresh(&self) {
        let mut last = self.fetching.lock().await;
        if last.is_some_and(|t| t.elapsed() < self.refetch_interval) {
            return;
        }
        *last = Some(Instant::now());
        match tokio::time::timeout(FETCH_TIMEOUT, fetch(&self.source)).await {
            Ok(Ok((keys, max_age))) => {
                tracing::info!(
                    url = %self.source.url,
                    keys = keys.len(),
                    cache_secs = max_age.as_secs(),
                    "JWKS loaded"
                );
                *self.set.write() = Arc::new(KeySet {
                    keys,
                    fresh_until: Some(Instant::now() + max_age),
                });
            }
            Ok(Err(e)) => self.failed(&e),
            Err(_) => self.failed(&format!("no answer within {}s", FETCH_TIMEOUT.as_secs())),
        }
    }

    fn failed(&self, reason: &str) {
        let kept = self.snapshot().keys.len();
        tracing::warn!(
            url = %self.source.url,
            error = %reason,
            kept_keys = kept,
            refetch_interval_secs = self.refetch_interval.as_secs_f64(),
            "JWKS fetch failed; keeping the last good key set"
        );
    }
}

fn find(set: &KeySet, kid: Option<&str>) -> Option<Arc<VerifyKey>> {
    match kid {
        Some(kid) => set.keys.get(kid).cloned(),
        None if set.keys.len() == 1 => set.keys.values().next().cloned(),
        None => None,
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, JwksError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        let ca = |reason: String| JwksError::Ca {
            path: path.to_owned(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| ca(e.to_string()))?;
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| ca(e.to_string()))?;
            roots.add(cert).map_err(|e| ca(e.to_string()))?;
            added += 1;
        }
        if added == 0 {
            return Err(ca("no PEM certificate in it".into()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| JwksError::Ca {
            path: ca_file.map(Path::to_owned).unwrap_or_default(),
            reason: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

type Fetched = (HashMap<String, Arc<VerifyKey>>, Duration);

/// One GET of the JWKS: a fresh connection (a fetch happens at most once per refetch
/// interval: no pool to keep), HTTP/1.1, the body read up to [`MAX_BODY`].
async fn fetch(source: &Source) -> Result<Fetched, String> {
    let tcp = tokio::net::TcpStream::connect((source.host.as_str(), source.port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    match &source.tls {
        Some(config) => {
            let name = rustls::pki_types::ServerName::try_from(source.host.clone())
                .map_err(|e| format!("server name: {e}"))?;
            let tls = tokio_rustls::TlsConnector::from(config.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            get(source, tls).await
        }
        None => get(source, tcp).await,
    }
}

async fn get<S>(source: &Source, stream: S) -> Result<Fetched, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
    let conn = tokio::spawn(conn);
    let host = if matches!(
        (source.port, source.tls.is_some()),
        (443, true) | (80, false)
    ) {
        source.host.clone()
    } else {
        format!("{}:{}", source.host, source.port)
    };
    let request = http::Request::get(source.path.as_str())
        .header(http::header::HOST, host)
        .header(http::header::ACCEPT, "application/json")
        .header(http::header::USER_AGENT, "switchboard")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        conn.abort();
        return Err(format!("HTTP status {status}"));
    }
    let max_age = cache_duration(
        response
            .headers()
            .get(http::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok()),
    );
    let body = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("body: {e} (at most {MAX_BODY} bytes)"))?
        .to_bytes();
    conn.abort();
    Ok((parse(&body)?, max_age))
}

/// How long a response may be used: its `max-age`, clamped to [`MIN_CACHE`] … [`MAX_CACHE`].
pub(crate) fn cache_duration(cache_control: Option<&str>) -> Duration {
    let max_age = cache_control.and_then(|v| {
        v.split(',').find_map(|d| {
            let (name, value) = d.trim().split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("max-age")
                .then(|| value.trim().trim_matches('"').parse::<u64>().ok())?
        })
    });
    max_age
        .map_or(DEFAULT_CACHE, Duration::from_secs)
        .clamp(MIN_CACHE, MAX_CACHE)
}

/// The usable signing keys of a JWKS document. Keys this engine cannot or must not use are
/// skipped, not fatal: encryption keys, symmetric (`oct`) keys (a secret published in a key
/// set is no secret), unknown types and curves, and keys without a `kid` when there are
/// several.
pub(crate) fn parse(body: &[u8]) -> Result<HashMap<String, Arc<VerifyKey>>, String> {
    #[derive(serde::Deserialize)]
    struct Document {
        keys: Vec<Value>,
    }
    let doc: Document =
        serde_json::from_slice(body).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut keys = HashMap::new();
    for raw in doc.keys.into_iter().take(MAX_KEYS) {
        let Ok(jwk) = serde_json::from_value::<Jwk>(raw) else {
            continue;
        };
        if let Some((kid, key)) = verify_key(&jwk) {
            keys.insert(kid, Arc::new(key));
        }
    }
    Ok(keys)
}

fn verify_key(jwk: &Jwk) -> Option<(String, VerifyKey)> {
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    use Algorithm::*;
    let by_type: Vec<Algorithm> = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => vec![RS256, RS384, RS512, PS256, PS384, PS512],
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => vec![ES256],
            EllipticCurve::P384 => vec![ES384],
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => vec![EdDSA],
        _ => return None,
    };
    // A key that names its algorithm is used with that one only.
    let algorithms = match jwk.common.key_algorithm {
        Some(alg) => {
            let alg = Algorithm::from_str(&alg.to_string()).ok()?;
            by_type.contains(&alg).then(|| vec![alg])?
        }
        None => by_type,
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    let kid = jwk.common.key_id.clone().unwrap_or_default();
    Some((kid, VerifyKey { key, algorithms }))
}

pub use crate::config::JwksSource;

/// The key set of a [`JwksSource`], prepared on first use with the configuration's CA file and
/// refetch interval and shared by the clones of that configuration.
pub(crate) fn jwks_of(
    source: &JwksSource,
    config: &crate::config::Config,
) -> Result<Arc<Jwks>, JwksError> {
    let (ca, interval) = (&config.jwks_ca_file, config.jwks_refetch_interval);
    source.shared(ca, interval, || {
        Ok(Arc::new(Jwks::new(source.url(), ca.as_deref(), interval)?))
    })
}

#[cfg(test)]
#[path = "jwks_tests.rs"]
mod tests;
