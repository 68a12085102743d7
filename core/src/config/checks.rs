//! The checks of settings that may be set directly (fields, not setters), run by
//! [`Config::validate`]. Kept with the configuration (not in `settings`, which extends
//! `Config` with its table and setters) so that `config` imports nothing above it.

use super::{Config, ConfigError, JwtKey};

fn empty(setting: &'static str) -> ConfigError {
    ConfigError::Invalid {
        setting,
        reason: "is empty; set it or remove it".into(),
    }
}

/// `n`, or an error naming `setting` when it is below `min` (the setters in `settings` use it too).
pub(crate) fn at_least(setting: &'static str, n: usize, min: usize) -> Result<usize, ConfigError> {
    if n < min {
        return Err(ConfigError::Invalid {
            setting,
            reason: format!("must be at least {min}, got {n}"),
        });
    }
    Ok(n)
}

/// The checks [`Config::validate`] adds for settings that may be set directly: empty texts
/// where a text is required, and the ranges of the setters in `settings`.
pub(super) fn validate(c: &Config) -> Result<(), ConfigError> {
    if matches!(&c.jwt, JwtKey::PublicKeyPem(p) if p.trim().is_empty()) {
        return Err(empty("jwt_public_key"));
    }
    if c.api_key.as_deref().is_some_and(str::is_empty) {
        return Err(empty("api_key"));
    }
    if c.redis_url.as_deref().is_some_and(|u| u.trim().is_empty()) {
        return Err(empty("redis_url"));
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
    at_least("history_limit", c.history_limit, 1)?;
    at_least("max_message_chars", c.max_message_chars, 1)?;
    at_least("max_signal_bytes", c.max_signal_bytes, 1024)?;
    at_least("max_rooms_per_connection", c.max_rooms_per_connection, 1)?;
    Ok(())
}
