//! Messages, their ids, and the history store.

mod history;
mod id;

pub use history::History;
pub use id::MessageIdGenerator;

use serde::{Deserialize, Serialize};

/// A chat message as clients receive it in `message` events and `getHistory`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessage {
    /// Unique, time-sortable id.
    pub id: String,
    /// The room it was sent to.
    pub room_id: String,
    /// The text.
    pub text: String,
    /// The sender's user id.
    pub user_id: String,
    /// The sender's display name.
    pub username: String,
    /// When the server accepted it, ISO-8601 UTC with milliseconds.
    pub timestamp: String,
}

/// Why history could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The embedded database failed (disk full, corrupt file, permissions).
    #[error("history store: {0}")]
    Database(String),
    /// The store's writer thread is gone (the engine is shutting down).
    #[error("history store is closed")]
    Closed,
    /// A host persistence hook failed with this message.
    #[error("{0}")]
    Host(String),
}

/// Formats milliseconds since the Unix epoch as ISO-8601 UTC with milliseconds.
pub fn iso8601_millis(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{:03}Z",
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_timestamps() {
        assert_eq!(iso8601_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601_millis(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(
            iso8601_millis(1_795_000_000_999),
            "2026-11-18T11:06:40.999Z"
        );
    }
}
