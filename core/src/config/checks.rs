//! The rules every setting's value must follow, in one place. The [`Config`] setters only
//! store what they are given (so a builder chain needs no `unwrap`); the engine checks the
//! whole configuration once when it is built ([`Config::validate`]). The C setters call
//! [`check_values`] after each change, so `sb_config_set_*` still refuses a bad value at the
//! call that passed it. The rules live with the configuration, not in `settings` (which
//! describes each setting to the front doors), so that `config` imports nothing above it.

use std::time::Duration;

use super::{check_jwt_secret, Config, ConfigError, JwtKey, TlsSource};

/// Longest accepted `prefix`, in bytes (a path segment or two, not a request head's worth).
pub(crate) const MAX_PREFIX_BYTES: usize = 256;

/// Checks the values the setters take: ranges, pairs that must agree, paths and names. The
/// messages (and `setting` names) are the ones the setters returned when they checked
/// themselves; [`crate::settings::describe`] turns them into each front door's spelling.
pub fn check_values(c: &Config) -> Result<(), ConfigError> {
    positive("ping_interval", c.ping_interval)?;
    positive("request_timeout", c.request_timeout)?;
    positive("upgrade_timeout", c.upgrade_timeout)?;
    positive("connect_timeout", c.connect_timeout)?;
    positive("send_timeout", c.send_timeout)?;
    at_least("max_header_bytes", c.max_header_bytes, 8 * 1024)?;
    at_least(
        "max_queued_event_bytes",
        c.max_queued_event_bytes,
        64 * 1024,
    )?;
    positive("ping_timeout", c.ping_timeout)?;
    at_least("max_payload", c.max_payload, 128)?;
    if c.rate_limit_per_second > 0 && c.rate_limit_burst == 0 {
        return Err(ConfigError::Invalid {
            setting: "rate_limit_burst",
            reason: "must be at least 1 when rate limiting is on".into(),
        });
    }
    at_least("outbound_queue_frames", c.outbound_queue_frames, 16)?;
    at_least("outbound_queue_bytes", c.outbound_queue_bytes, 64 * 1024)?;
    positive("typing_timeout", c.typing_timeout)?;
    at_least("recovery_log_bytes", c.recovery_log_bytes, 64 * 1024)?;
    positive("sse_ping_interval", c.sse_ping_interval)?;
    at_least("history_cache_rooms", c.history_cache_rooms, 1)?;
    at_least("history_cache_bytes", c.history_cache_bytes, 1024 * 1024)?;
    if c.cluster_heartbeat < Duration::from_millis(100) {
        return Err(ConfigError::Invalid {
            setting: "cluster_heartbeat",
            reason: "must be at least 100 ms".into(),
        });
    }
    check_tls(c.tls.as_ref())?;
    if let Some(n) = c.worker_threads {
        at_least("worker_threads", n, 1)?;
    }
    positive("host_callback_timeout", c.host_callback_timeout)?;
    check_yjs(c)?;
    check_identity(c)?;
    positive("flood_disconnect_after", c.flood_disconnect_after)?;
    at_least("history_limit", c.history_limit, 1)?;
    at_least("max_message_chars", c.max_message_chars, 1)?;
    at_least("max_signal_bytes", c.max_signal_bytes, 1024)?;
    at_least("max_rooms_per_connection", c.max_rooms_per_connection, 1)?;
    check_prefix(&c.prefix)?;
    Ok(())
}

/// The checks [`Config::validate`] adds for what no C setter can get wrong on its own: the
/// HS256 secret's length, and empty texts where a text is required (a field set directly, or
/// a setter given an empty string).
pub(crate) fn check_required(c: &Config) -> Result<(), ConfigError> {
    if let JwtKey::Secret(secret) = &c.jwt {
        check_jwt_secret(secret)?;
    }
    if matches!(&c.jwt, JwtKey::PublicKeyPem(p) if p.trim().is_empty()) {
        return Err(empty("jwt_public_key"));
    }
    if c.api_key.as_deref().is_some_and(str::is_empty) {
        return Err(empty("api_key"));
    }
    if c.redis_url.as_deref().is_some_and(|u| u.trim().is_empty()) {
        return Err(empty("redis_url"));
    }
    if let Some(url) = &c.redis_url {
        super::redis_url::parse_redis_url(url).map_err(|reason| ConfigError::Invalid {
            setting: "redis_url",
            reason,
        })?;
    }
    if c.data_dir
        .as_ref()
        .is_some_and(|d| d.as_os_str().is_empty())
    {
        return Err(empty("data_dir"));
    }
    if c.cors_origins.iter().any(|o| o.trim().is_empty()) {
        return Err(ConfigError::Invalid {
            setting: "cors_origins",
            reason: "holds an empty origin".into(),
        });
    }
    Ok(())
}

fn check_tls(tls: Option<&TlsSource>) -> Result<(), ConfigError> {
    let reason = match tls {
        Some(TlsSource::Files { cert, key })
            if cert.as_os_str().is_empty() || key.as_os_str().is_empty() =>
        {
            "give both a certificate file and a key file"
        }
        Some(TlsSource::Pem { cert, key }) if cert.is_empty() || key.is_empty() => {
            "give both a PEM certificate and a PEM key"
        }
        _ => return Ok(()),
    };
    Err(ConfigError::Invalid {
        setting: "tls",
        reason: reason.into(),
    })
}

fn check_yjs(c: &Config) -> Result<(), ConfigError> {
    let p = &c.yjs_path;
    if !p.starts_with('/') || !p.ends_with('/') || p.len() < 2 {
        return Err(ConfigError::Invalid {
            setting: "yjs_path",
            reason: format!("must start and end with `/`, like `/yjs/`, got `{p}`"),
        });
    }
    positive("yjs_idle_unload", c.yjs_idle_unload)?;
    if c.yjs_store_max_delay < c.yjs_store_debounce {
        return Err(ConfigError::Invalid {
            setting: "yjs_store_max_delay",
            reason: "must be at least the debounce".into(),
        });
    }
    positive("yjs_store_max_delay", c.yjs_store_max_delay)?;
    at_least("yjs_max_update_bytes", c.yjs_max_update_bytes, 1024)?;
    at_least("yjs_max_document_bytes", c.yjs_max_document_bytes, 1024)?;
    at_least("yjs_max_awareness_bytes", c.yjs_max_awareness_bytes, 64)?;
    at_least("yjs_max_awareness_clients", c.yjs_max_awareness_clients, 1)?;
    positive("yjs_ping_interval", c.yjs_ping_interval)?;
    Ok(())
}

/// The identity settings' rules (JWKS refetch interval, leeway, claim names), part of
/// [`check_values`]; the CLI checks them on their own to word their errors its own way.
pub fn check_identity(c: &Config) -> Result<(), ConfigError> {
    if c.jwks_refetch_interval < Duration::from_millis(500) {
        return Err(ConfigError::Invalid {
            setting: "jwks_refetch_interval",
            reason: "must be at least 500 ms".into(),
        });
    }
    if c.jwt_leeway > Duration::from_secs(300) {
        return Err(ConfigError::Invalid {
            setting: "jwt_leeway",
            reason: "must be at most 300 s".into(),
        });
    }
    for (setting, claim) in [
        ("jwt_user_id_claim", &c.jwt_user_id_claim),
        ("jwt_username_claim", &c.jwt_username_claim),
    ] {
        if claim.is_empty() {
            return Err(ConfigError::Invalid {
                setting,
                reason: "must name a claim, like `sub` or `email`".into(),
            });
        }
    }
    Ok(())
}

/// `prefix` as its setter stored it (trailing `/` already dropped).
fn check_prefix(prefix: &str) -> Result<(), ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        setting: "prefix",
        reason,
    };
    if !prefix.is_empty() && !prefix.starts_with('/') {
        return Err(invalid(format!(
            "must start with `/`, like `/rt`, got `{prefix}`"
        )));
    }
    if prefix.len() > MAX_PREFIX_BYTES {
        return Err(invalid(format!("must be at most {MAX_PREFIX_BYTES} bytes")));
    }
    // Characters that end a path or need escaping could never match a request path.
    if let Some(c) = prefix
        .chars()
        .find(|c| matches!(c, '?' | '#' | '%') || c.is_whitespace() || c.is_control())
    {
        return Err(invalid(format!("may not contain {c:?}, got `{prefix}`")));
    }
    Ok(())
}

fn positive(setting: &'static str, d: Duration) -> Result<(), ConfigError> {
    if d.is_zero() {
        return Err(ConfigError::Invalid {
            setting,
            reason: "must be greater than zero".into(),
        });
    }
    Ok(())
}

fn at_least(setting: &'static str, n: usize, min: usize) -> Result<(), ConfigError> {
    if n < min {
        return Err(ConfigError::Invalid {
            setting,
            reason: format!("must be at least {min}, got {n}"),
        });
    }
    Ok(())
}

fn empty(setting: &'static str) -> ConfigError {
    ConfigError::Invalid {
        setting,
        reason: "is empty; set it or remove it".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setters_store_and_build_refuses_with_the_settings_name() {
        // A builder chain needs no `unwrap`; the bad value is refused once, at build.
        let config = Config::default()
            .jwt_secret("dev-secret-change-me")
            .ping_interval(Duration::ZERO)
            .prefix("/rt/");
        assert_eq!(config.prefix, "/rt");
        let Err(err) = crate::Engine::builder(config.clone()).build() else {
            panic!("a zero ping interval was accepted");
        };
        assert!(err.to_string().contains("ping_interval"), "{err}");
        assert_eq!(
            check_values(&config),
            Err(ConfigError::Invalid {
                setting: "ping_interval",
                reason: "must be greater than zero".into(),
            })
        );
        // Checked before the runtime is made (tokio panics on 0 workers).
        let zero = Config::default()
            .jwt_secret("dev-secret-change-me")
            .worker_threads(0);
        assert!(crate::Engine::builder(zero).build().is_err());
    }

    #[test]
    fn check_values_accepts_the_defaults_and_names_each_setting() {
        assert_eq!(check_values(&Config::default()), Ok(()));
        let setting = |c: Config| match check_values(&c) {
            Err(ConfigError::Invalid { setting, .. }) => setting,
            other => panic!("{other:?}"),
        };
        let d = Config::default;
        assert_eq!(setting(d().rate_limit(5, 0)), "rate_limit_burst");
        assert_eq!(
            setting(d().outbound_queue(8, 1 << 20)),
            "outbound_queue_frames"
        );
        assert_eq!(setting(d().history_cache(1, 10)), "history_cache_bytes");
        assert_eq!(
            setting(d().cluster_heartbeat(Duration::from_millis(10))),
            "cluster_heartbeat"
        );
        assert_eq!(setting(d().tls_pem("", "key")), "tls");
        assert_eq!(
            setting(d().jwt_leeway(Duration::from_secs(301))),
            "jwt_leeway"
        );
        assert_eq!(setting(d().jwt_username_claim("  ")), "jwt_username_claim");
        assert_eq!(
            setting(d().jwks_refetch_interval(Duration::from_millis(1))),
            "jwks_refetch_interval"
        );
        assert_eq!(setting(d().yjs_path("/yjs")), "yjs_path");
        assert_eq!(setting(d().prefix("rt")), "prefix");
        // Required texts are `validate`'s, not the C setters' (an empty PEM fails at build).
        assert_eq!(check_values(&d().jwt_public_key_pem("")), Ok(()));
        assert!(d().jwt_public_key_pem("").validate().is_err());
    }
}
