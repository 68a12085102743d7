//! The one table of settings: for every [`Config`] field, its name in each front door (the
//! `switchboard serve` flag, the `--config` TOML key, the Node option, the C setter), its
//! default and what it does. `docs/limits.md`'s settings table is generated from it, and a
//! test (`core/src/bin/switchboard/settings_check.rs`) fails when a `Config` field, a flag, a
//! TOML key, a Node option or a C setter is missing from it or disagrees with it.
//!
//! The naming rule: a setting has one `name`, which is its TOML key; the CLI flag is that
//! name in kebab-case (`--rate-limit`), the Node option the same name in camelCase
//! (`rateLimit`), the C setter `sb_config_set_<name>` (`_ms` appended for milliseconds; a few
//! setters take two related values at once). Older spellings stay accepted as aliases.

use std::time::Duration;

use crate::config::{Config, ConfigError};

/// What kind of value a setting takes (the same in every front door, in its own units).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A duration in whole milliseconds.
    Millis,
    /// A size in bytes.
    Bytes,
    /// A count.
    Count,
    /// A text.
    Text,
    /// A text that is a secret: never logged, and refused when empty.
    Secret,
    /// A file-system path.
    Path,
    /// A list of texts.
    TextList,
    /// One of a few words.
    Choice,
    /// A duration in whole seconds (token times, as JWT claims count them).
    Seconds,
    /// On or off.
    Flag,
}

impl Kind {
    /// The name the Node binding uses to check an option's type.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Millis => "millis",
            Kind::Bytes => "bytes",
            Kind::Count => "count",
            Kind::Text => "text",
            Kind::Secret => "secret",
            Kind::Path => "path",
            Kind::TextList => "textList",
            Kind::Choice => "choice",
            Kind::Seconds => "seconds",
            Kind::Flag => "flag",
        }
    }
}

/// One setting and its names in every front door.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// The canonical name: the TOML key (snake_case).
    pub name: &'static str,
    /// The `Config` fields it sets.
    pub fields: &'static [&'static str],
    /// What it takes.
    pub kind: Kind,
    /// Its default, as the docs say it.
    pub default: &'static str,
    /// The `switchboard serve` flag without `--`; `None` when the CLI has no use for it.
    pub cli: Option<&'static str>,
    /// The Node option (camelCase); `None` when Node sets it another way.
    pub node: Option<&'static str>,
    /// The C setter.
    pub c: Option<&'static str>,
    /// Older spellings still accepted: CLI flags (kebab), TOML keys (snake) and Node options
    /// (camel) alike.
    pub aliases: &'static [&'static str],
    /// Why a front door lacks it (empty when none does).
    pub note: &'static str,
    /// What it does.
    pub description: &'static str,
}

mod table;

pub use crate::config::checks::{check_identity, check_values};

pub use table::SETTINGS;

/// `Config` fields no front door but Rust sets, and why.
pub const RUST_ONLY: &[(&str, &str)] = &[
    (
        "path",
        "the Socket.IO path clients use (`/socket.io/`, what socket.io-client expects); move every endpoint with `prefix`",
    ),
    (
        "yjs_path",
        "the Yjs documents' path (`/yjs/`); move every endpoint with `prefix`",
    ),
];

/// The setting a name belongs to: its canonical name, one of its front-door names or
/// aliases, or (for errors raised by setters) a `Config` field it sets.
pub fn find(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| {
        s.name == name
            || s.cli == Some(name)
            || s.node == Some(name)
            || s.aliases.contains(&name)
            || s.fields.contains(&name)
    })
}

/// Edit distance between two names, ignoring case, `-` and `_`: `rate-limit`, `rate_limit`
/// and `ratelimit` are all at distance 0 from `rateLimit`.
pub fn distance(a: &str, b: &str) -> usize {
    let norm = |s: &str| -> Vec<char> {
        s.chars()
            .filter(|c| *c != '-' && *c != '_')
            .flat_map(char::to_lowercase)
            .collect()
    };
    let (a, b) = (norm(a), norm(b));
    // Two rows of the Levenshtein table; names are short (bounded by the caller).
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j + 1] + 1).min(cur[j] + 1).min(prev[j] + cost);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The valid name closest to `unknown`, when one is close enough to be a likely typo (or the
/// same name in another binding's spelling).
pub fn suggest<'a>(unknown: &str, valid: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    // An attacker-sized key costs nothing: nobody's typo is this long.
    if unknown.len() > 64 {
        return None;
    }
    let limit = (unknown.len() / 3).max(2);
    valid
        .into_iter()
        .map(|v| (distance(unknown, v), v))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, v)| v)
}

/// "unknown option `x`; did you mean `y`?" (or without the question when nothing is close).
pub fn unknown_message<'a>(
    what: &str,
    unknown: &str,
    valid: impl IntoIterator<Item = &'a str>,
) -> String {
    let shown: String = unknown.chars().take(64).collect();
    match suggest(unknown, valid) {
        Some(s) => format!("unknown {what} `{shown}`; did you mean `{s}`?"),
        None => format!("unknown {what} `{shown}`"),
    }
}

/// A front door of the engine, for naming a setting in its own spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Front {
    /// `switchboard serve` flags.
    Cli,
    /// The `--config` TOML file.
    Toml,
    /// `new Engine(options)` / the Fastify plugin.
    Node,
    /// The C setters.
    C,
}

impl Setting {
    /// This setting's name in `front` (its canonical name where that front lacks it).
    pub fn name_in(&self, front: Front) -> String {
        match front {
            Front::Cli => self
                .cli
                .map_or_else(|| self.name.to_owned(), |f| format!("--{f}")),
            Front::Toml => self.name.to_owned(),
            Front::Node => self.node.unwrap_or(self.name).to_owned(),
            Front::C => self.c.unwrap_or(self.name).to_owned(),
        }
    }
}

/// A configuration error as one sentence naming the setting in `front`'s spelling:
/// "invalid `pingInterval`: must be greater than zero".
pub fn describe(err: &ConfigError, front: Front) -> String {
    match err {
        ConfigError::Invalid { setting, reason } => match find(setting) {
            // A C setter may take two settings: name the one at fault too.
            Some(s) if front == Front::C => {
                format!("invalid `{}` ({}): {reason}", s.name, s.name_in(front))
            }
            Some(s) => format!("invalid `{}`: {reason}", s.name_in(front)),
            None => err.to_string(),
        },
        ConfigError::File { .. } => err.to_string(),
    }
}

impl Config {
    /// Sets how long a connection may stay over its rate limit before it is disconnected
    /// (must be positive).
    pub fn flood_disconnect_after(mut self, d: Duration) -> Self {
        self.flood_disconnect_after = d;
        self
    }

    /// Sets the messages kept per room in history (at least 1).
    pub fn history_limit(mut self, n: usize) -> Self {
        self.history_limit = n;
        self
    }

    /// Sets the longest message text in characters (at least 1).
    pub fn max_message_chars(mut self, n: usize) -> Self {
        self.max_message_chars = n;
        self
    }

    /// Sets the largest `signal` data in bytes (at least 1024: an SDP offer must fit).
    pub fn max_signal_bytes(mut self, n: usize) -> Self {
        self.max_signal_bytes = n;
        self
    }

    /// Sets the most rooms one connection may be in (at least 1).
    pub fn max_rooms_per_connection(mut self, n: usize) -> Self {
        self.max_rooms_per_connection = n;
        self
    }
}

/// The settings table of `docs/limits.md`, generated from [`SETTINGS`] and [`RUST_ONLY`].
pub fn markdown_table() -> String {
    let code = |s: Option<&str>, prefix: &str| {
        s.map_or_else(|| "—".to_owned(), |s| format!("`{prefix}{s}`"))
    };
    let mut out = String::from(
        "| setting (TOML) | CLI | Node | C | default | what it sets |\n|---|---|---|---|---|---|\n",
    );
    for s in SETTINGS {
        let mut what = s.description.to_owned();
        if !s.aliases.is_empty() {
            let aliases: Vec<String> = s.aliases.iter().map(|a| format!("`{a}`")).collect();
            what.push_str(&format!("; also accepted: {}", aliases.join(", ")));
        }
        if !s.note.is_empty() {
            what.push_str(&format!(" ({})", s.note));
        }
        let unit = match s.kind {
            Kind::Millis => " ms",
            Kind::Bytes => " bytes",
            Kind::Seconds => " s",
            _ => "",
        };
        let default = if s.default.starts_with(|c: char| c.is_ascii_digit()) {
            format!("{}{unit}", s.default)
        } else {
            s.default.to_owned()
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} |\n",
            s.name,
            code(s.cli, "--"),
            code(s.node, ""),
            code(s.c, ""),
            default,
            what
        ));
    }
    for (field, why) in RUST_ONLY {
        out.push_str(&format!(
            "| `{field}` (Rust `Config` only) | — | — | — | see `Config` | {why} |\n"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_cover_typos_and_other_spellings() {
        let valid = ["rateLimit", "rateBurst", "jwtSecret", "pingInterval"];
        for typo in [
            "ratelimit",
            "rate-limit",
            "rate_limit",
            "rateLimt",
            "RATE_LIMIT",
        ] {
            assert_eq!(suggest(typo, valid), Some("rateLimit"), "{typo}");
        }
        assert_eq!(suggest("completelyDifferent", valid), None);
        assert_eq!(suggest(&"x".repeat(10_000), valid), None);
        assert_eq!(
            unknown_message("option", "ratelimit", valid),
            "unknown option `ratelimit`; did you mean `rateLimit`?"
        );
    }

    #[test]
    fn new_setters_and_validate_refuse_out_of_range_values() {
        assert!(Config::default().history_limit(0).validate().is_err());
        assert!(Config::default().max_message_chars(0).validate().is_err());
        assert!(Config::default().max_signal_bytes(10).validate().is_err());
        assert!(Config::default()
            .max_rooms_per_connection(0)
            .validate()
            .is_err());
        assert!(Config::default()
            .flood_disconnect_after(Duration::ZERO)
            .validate()
            .is_err());
        let err = Config::default().api_key("").validate().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid api_key: is empty; set it or remove it"
        );
        assert!(Config::default().redis_url(" ").validate().is_err());
        assert!(Config::default().jwt_public_key_pem("").validate().is_err());
        let c = Config::default().max_message_chars(10);
        assert_eq!(c.max_message_chars, 10);
    }

    #[test]
    fn every_name_finds_its_setting() {
        assert_eq!(
            find("rateLimitPerSecond").map(|s| s.name),
            Some("rate_limit")
        );
        assert_eq!(find("rate_limit_burst").map(|s| s.name), Some("rate_burst"));
        assert_eq!(
            find("cluster_heartbeat_ms").map(|s| s.name),
            Some("cluster_heartbeat")
        );
        assert!(find("nope").is_none());
    }
}
