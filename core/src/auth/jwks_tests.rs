//! JWKS against a local provider: an in-process HTTPS server (rcgen certificate, trusted
//! through `jwks_ca_file`) whose key set and health the tests change, and which counts the
//! requests it gets.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use parking_lot::Mutex;
use serde_json::{json, Value};

use super::*;
use crate::auth::{AuthError, JwtVerifier};
use crate::config::{Config, TlsSource};

/// A signing key and its public JWK.
struct Signer {
    kid: String,
    alg: Algorithm,
    key: EncodingKey,
    jwk: Value,
}

fn signer(kid: &str, alg: Algorithm) -> Signer {
    let scheme = match alg {
        Algorithm::ES256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        Algorithm::ES384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        Algorithm::EdDSA => &rcgen::PKCS_ED25519,
        other => panic!("no test key for {other:?}"),
    };
    let pair = rcgen::KeyPair::generate_for(scheme).unwrap();
    let pem = pair.serialize_pem();
    let key = match alg {
        Algorithm::EdDSA => EncodingKey::from_ed_pem(pem.as_bytes()).unwrap(),
        _ => EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
    };
    let mut jwk = match alg {
        // `Jwk::from_encoding_key` expects the short PKCS#8 form; rcgen writes the one with
        // the public key, which is what a JWK carries anyway.
        Algorithm::EdDSA => {
            use base64::Engine as _;
            let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key_raw());
            json!({"kty": "OKP", "crv": "Ed25519", "x": x})
        }
        _ => serde_json::to_value(Jwk::from_encoding_key(&key, alg).unwrap()).unwrap(),
    };
    jwk["kid"] = json!(kid);
    Signer {
        kid: kid.into(),
        alg,
        key,
        jwk,
    }
}

impl Signer {
    fn token(&self, sub: &str) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        let claims = json!({"sub": sub, "exp": jsonwebtoken::get_current_timestamp() + 60});
        encode(&header, &claims, &self.key).unwrap()
    }
}

/// What the provider answers, and how often it was asked.
#[derive(Clone)]
struct Provider {
    answer: Arc<Mutex<(u16, String, &'static str)>>,
    requests: Arc<AtomicUsize>,
    url: String,
    ca: std::path::PathBuf,
    _dir: Arc<TempDir>,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Provider {
    fn serve(&self, keys: &[&Signer]) {
        let keys: Vec<&Value> = keys.iter().map(|s| &s.jwk).collect();
        *self.answer.lock() = (200, json!({ "keys": keys }).to_string(), "max-age=600");
    }

    fn fail(&self) {
        *self.answer.lock() = (503, "down".into(), "no-store");
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

async fn provider() -> Provider {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let dir = std::env::temp_dir().join(format!(
        "sb-jwks-{}-{}",
        std::process::id(),
        crate::helpers::ids::new_id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, c.cert.pem()).unwrap();
    let tls = crate::transport::tls::server_config(&TlsSource::Pem {
        cert: c.cert.pem().into_bytes(),
        key: c.signing_key.serialize_pem().into_bytes(),
    })
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let p = Provider {
        answer: Arc::new(Mutex::new((503, String::new(), ""))),
        requests: Arc::default(),
        url: format!("https://localhost:{port}/.well-known/jwks.json"),
        ca,
        _dir: Arc::new(TempDir(dir)),
    };
    let state = p.clone();
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, state) = (acceptor.clone(), state.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |_req| {
                    state.requests.fetch_add(1, Ordering::SeqCst);
                    let (status, body, cache) = state.answer.lock().clone();
                    async move {
                        http::Response::builder()
                            .status(status)
                            .header("cache-control", cache)
                            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    p
}

fn verifier(p: &Provider, interval: Duration) -> JwtVerifier {
    let config = Config::default()
        .jwks_url(p.url.clone())
        .jwks_ca_file(&p.ca)
        .jwks_refetch_interval(interval);
    JwtVerifier::new(&config).unwrap()
}

#[tokio::test]
async fn keys_are_selected_by_kid_and_rotation_needs_no_restart() {
    let p = provider().await;
    let (a, b) = (signer("a", Algorithm::ES256), signer("b", Algorithm::EdDSA));
    p.serve(&[&a]);
    let v = verifier(&p, Duration::from_millis(500));
    v.preload().await;
    assert_eq!(p.requests(), 1);
    assert_eq!(v.verify(&a.token("alice")).await.unwrap().id, "alice");
    // A known kid costs no fetch.
    assert_eq!(v.verify(&a.token("bob")).await.unwrap().id, "bob");
    assert_eq!(p.requests(), 1);
    // The provider rotates to `b`: once the interval has passed, `b`'s tokens are accepted.
    p.serve(&[&a, &b]);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(v.verify(&b.token("carol")).await.unwrap().id, "carol");
    assert_eq!(p.requests(), 2);
}

#[tokio::test]
async fn forged_kids_cost_one_fetch_per_interval_and_a_down_provider_keeps_the_last_set() {
    let p = provider().await;
    let good = signer("good", Algorithm::ES384);
    p.serve(&[&good]);
    let v = verifier(&p, Duration::from_secs(30));
    v.preload().await;
    let forgers: Vec<Signer> = (0..3)
        .map(|i| signer(&format!("forged-{i}"), Algorithm::ES256))
        .collect();
    let forged: Vec<String> = (0..50).map(|i| forgers[i % 3].token("mallory")).collect();
    // Concurrent unknown kids: every one refused, all within one interval of the start-up
    // fetch, so the provider is not asked again.
    let results = futures_util::future::join_all(forged.iter().map(|t| v.verify(t))).await;
    assert!(results.iter().all(|r| *r == Err(AuthError::UnknownKey)));
    assert_eq!(p.requests(), 1);
    assert_eq!(AuthError::UnknownKey.to_string(), "Unknown signing key");

    // Another verifier of a fresh interval: 50 concurrent forged tokens share one fetch.
    let v = verifier(&p, Duration::from_secs(30));
    let results = futures_util::future::join_all(forged.iter().map(|t| v.verify(t))).await;
    assert!(results.iter().all(|r| *r == Err(AuthError::UnknownKey)));
    assert_eq!(p.requests(), 2);

    // The provider goes down: known keys keep working.
    let v = verifier(&p, Duration::from_millis(500));
    v.preload().await;
    p.fail();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let unknown = signer("new", Algorithm::ES256).token("x");
    let before = p.requests();
    assert_eq!(v.verify(&unknown).await, Err(AuthError::UnknownKey));
    assert_eq!(
        p.requests(),
        before + 1,
        "the unknown kid asked the provider"
    );
    assert_eq!(v.verify(&good.token("alice")).await.unwrap().id, "alice");
}

#[tokio::test]
async fn a_token_whose_alg_does_not_fit_its_key_is_refused() {
    let p = provider().await;
    let ec = signer("ec", Algorithm::ES256);
    let mut pinned = signer("pinned", Algorithm::ES256);
    pinned.jwk["alg"] = json!("ES384");
    p.serve(&[&ec, &pinned]);
    let v = verifier(&p, Duration::from_secs(30));
    v.preload().await;
    // HS256 with the EC key's public JSON as the secret (algorithm confusion).
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("ec".into());
    let claims = json!({"sub": "mallory", "exp": jsonwebtoken::get_current_timestamp() + 60});
    let confused = encode(
        &header,
        &claims,
        &EncodingKey::from_secret(ec.jwk.to_string().as_bytes()),
    )
    .unwrap();
    assert_eq!(v.verify(&confused).await, Err(AuthError::Invalid));
    // A token claiming ES384 on the P-256 key: refused before any signature check.
    let token = ec.token("a");
    let parts: Vec<&str> = token.split('.').collect();
    let b64 = |v: &Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let relabelled = format!(
        "{}.{}.{}",
        b64(&json!({"alg": "ES384", "kid": "ec"})),
        parts[1],
        parts[2]
    );
    assert_eq!(v.verify(&relabelled).await, Err(AuthError::Invalid));
    // A JWK whose `alg` does not fit its curve is not used at all.
    assert_eq!(
        v.verify(&pinned.token("a")).await,
        Err(AuthError::UnknownKey)
    );
}

#[test]
fn unusable_keys_are_skipped_and_documents_bounded() {
    let es = signer("es", Algorithm::ES256);
    let mut enc = signer("enc", Algorithm::ES256).jwk;
    enc["use"] = json!("enc");
    let oct = json!({"kty": "oct", "kid": "oct", "k": "c2VjcmV0"});
    let unknown = json!({"kty": "XYZ", "kid": "x"});
    let keys = parse(
        json!({"keys": [es.jwk, enc, oct, unknown]})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(keys.keys().collect::<Vec<_>>(), vec!["es"]);
    assert!(parse(b"{\"nokeys\": 1}").is_err());
    assert!(parse(b"<html>").is_err());
}

#[test]
fn cache_control_is_clamped() {
    assert_eq!(
        cache_duration(Some("public, max-age=3600")),
        Duration::from_secs(3600)
    );
    assert_eq!(cache_duration(Some("max-age=5")), MIN_CACHE);
    assert_eq!(cache_duration(Some("max-age=999999999")), MAX_CACHE);
    assert_eq!(cache_duration(Some("no-cache")), DEFAULT_CACHE);
    assert_eq!(cache_duration(None), DEFAULT_CACHE);
}

#[test]
fn plain_http_only_to_loopback() {
    let make = |url: &str| Jwks::new(url, None, Duration::from_secs(10)).map(|_| ());
    assert!(make("http://127.0.0.1:8080/jwks").is_ok());
    assert!(make("http://localhost/jwks").is_ok());
    assert!(make("https://idp.example.com/.well-known/jwks.json").is_ok());
    let err = make("http://idp.example.com/jwks").unwrap_err();
    assert!(
        err.to_string().contains("only allowed to a loopback host"),
        "{err}"
    );
    assert!(make("ftp://idp.example.com/jwks").is_err());
    assert!(make("not a url").is_err());
}
