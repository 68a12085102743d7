//! What the bindings need to hand the engine's `tracing` events to a host's logger: a filter
//! in `RUST_LOG`'s directive syntax and an event flattened to plain data. The subscriber
//! itself lives in each binding (Node: the `logger` option; C: `sb_set_log_callback`); the
//! standalone server keeps `tracing-subscriber`'s formatter.

use std::cell::Cell;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{Event, Metadata};

/// The filter a binding uses when its host names none: the engine's informational events.
pub const DEFAULT_FILTER: &str = "switchboard=info";

/// Longest text kept of one field or message, in bytes: a log line cannot grow with a
/// client's input.
pub const MAX_FIELD_BYTES: usize = 4096;

thread_local! {
    /// The engine whose thread this is; 0 for none.
    static ENGINE: Cell<u64> = const { Cell::new(0) };
}

static NEXT_ENGINE: AtomicU64 = AtomicU64::new(1);

/// The engine (`Engine::log_id`) whose runtime thread (or start-up) is logging;
/// `None` on other threads (a host's thread calling into an engine).
pub fn current_engine() -> Option<u64> {
    let id = ENGINE.with(Cell::get);
    (id != 0).then_some(id)
}

pub(crate) fn new_engine_id() -> u64 {
    NEXT_ENGINE.fetch_add(1, Ordering::Relaxed)
}

/// Marks the calling thread as engine `id`'s for good (its runtime's threads).
pub(crate) fn tag_thread(id: u64) {
    ENGINE.with(|e| e.set(id));
}

/// Marks the calling thread as engine `id`'s until the guard drops.
pub(crate) fn tag_scope(id: u64) -> TagGuard {
    TagGuard(ENGINE.with(|e| e.replace(id)))
}

/// Restores the thread's previous engine (see [`tag_scope`]).
pub(crate) struct TagGuard(u64);

impl Drop for TagGuard {
    fn drop(&mut self) {
        ENGINE.with(|e| e.set(self.0));
    }
}

/// `RUST_LOG`-style directives: `level` or `target=level`, comma-separated
/// (`switchboard=debug,switchboard::cluster=trace`). The longest matching target wins; a bare
/// level applies to every target; targets matched by nothing are off. Span filters
/// (`[span]`) and regular expressions are not supported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directives {
    rules: Vec<(String, LevelFilter)>,
}

fn level(word: &str) -> Option<LevelFilter> {
    Some(match word.trim().to_ascii_lowercase().as_str() {
        "trace" => LevelFilter::TRACE,
        "debug" => LevelFilter::DEBUG,
        "info" => LevelFilter::INFO,
        "warn" | "warning" => LevelFilter::WARN,
        "error" | "fatal" => LevelFilter::ERROR,
        "off" | "silent" => LevelFilter::OFF,
        _ => return None,
    })
}

impl Directives {
    /// Parses directives; the error names the part that is not one. A bare level (pino's
    /// `info`, `debug`, …) means the engine's events at that level: `switchboard=<level>`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.len() > 4096 {
            return Err("is longer than 4096 bytes".into());
        }
        let mut rules = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (target, lvl) = match part.split_once('=') {
                Some((t, l)) => (t.trim().to_owned(), l),
                None => ("switchboard".to_owned(), part),
            };
            let lvl = level(lvl).ok_or_else(|| {
                format!("`{part}` is not `level` or `target=level` (levels: trace, debug, info, warn, error, off)")
            })?;
            rules.push((target, lvl));
        }
        if rules.is_empty() {
            return Err("is empty".into());
        }
        // Longest target first, so the first match is the most specific.
        rules.sort_by_key(|(t, _)| std::cmp::Reverse(t.len()));
        Ok(Directives { rules })
    }

    /// The host's explicit filter, else `SWITCHBOARD_LOG`, else `RUST_LOG`, else
    /// [`DEFAULT_FILTER`]. An unusable environment variable falls back to the default.
    pub fn from_option_or_env(option: Option<&str>) -> Result<Self, String> {
        if let Some(text) = option {
            return Self::parse(text);
        }
        for var in ["SWITCHBOARD_LOG", "RUST_LOG"] {
            if let Ok(text) = std::env::var(var) {
                if let Ok(d) = Self::parse(&text) {
                    return Ok(d);
                }
            }
        }
        Self::parse(DEFAULT_FILTER)
    }

    /// Whether an event or span with this metadata passes.
    pub fn enabled(&self, meta: &Metadata<'_>) -> bool {
        let target = meta.target();
        for (prefix, lvl) in &self.rules {
            let matches = prefix.is_empty()
                || target == prefix
                || (target.starts_with(prefix.as_str())
                    && target[prefix.len()..].starts_with("::"));
            if matches {
                return *meta.level() <= *lvl;
            }
        }
        false
    }

    /// The most verbose level any directive lets through.
    pub fn max_level(&self) -> LevelFilter {
        self.rules
            .iter()
            .map(|(_, l)| *l)
            .max()
            .unwrap_or(LevelFilter::OFF)
    }
}

/// An event as plain data: level (`trace` … `error`, pino's names), target, message and its
/// other fields (`sid`, `room`, `reason`, …) as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// `trace`, `debug`, `info`, `warn` or `error`.
    pub level: &'static str,
    /// The module that logged it (`switchboard::chat`, …).
    pub target: String,
    /// The message.
    pub message: String,
    /// The other fields.
    pub fields: Map<String, Value>,
}

fn cut(mut s: String) -> String {
    if s.len() > MAX_FIELD_BYTES {
        let mut end = MAX_FIELD_BYTES;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

struct Fields<'a>(&'a mut Record);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        self.put(field, Value::String(cut(text)));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(cut(value.to_owned())));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::String(cut(value.to_string())));
    }
}

impl Fields<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.0.message = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
        } else {
            self.0.fields.insert(field.name().to_owned(), value);
        }
    }
}

impl Record {
    /// Flattens an event.
    pub fn from_event(event: &Event<'_>) -> Self {
        let meta = event.metadata();
        let level = match *meta.level() {
            tracing::Level::TRACE => "trace",
            tracing::Level::DEBUG => "debug",
            tracing::Level::INFO => "info",
            tracing::Level::WARN => "warn",
            _ => "error",
        };
        let mut record = Record {
            level,
            target: meta.target().to_owned(),
            message: String::new(),
            fields: Map::new(),
        };
        event.record(&mut Fields(&mut record));
        record
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_parse_like_rust_log() {
        let d = Directives::parse("switchboard=debug,switchboard::cluster=off").unwrap();
        assert_eq!(d.max_level(), LevelFilter::DEBUG);
        assert!(Directives::parse("loud").is_err());
        assert!(Directives::parse("").is_err());
        let d = Directives::parse("warn").unwrap();
        assert_eq!(d.rules, vec![("switchboard".to_owned(), LevelFilter::WARN)]);
        assert_eq!(
            Directives::parse("switchboard=nope").unwrap_err(),
            "`switchboard=nope` is not `level` or `target=level` (levels: trace, debug, info, warn, error, off)"
        );
    }

    #[test]
    fn long_fields_are_cut() {
        let s = cut("é".repeat(5000));
        assert!(s.len() <= MAX_FIELD_BYTES + 3);
    }
}
