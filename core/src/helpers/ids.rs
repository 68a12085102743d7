//! Random ids: session ids, node ids, boot ids, temporary names.

use std::sync::Arc;

use base64::Engine as _;
use rand::RngCore;

/// A random 20-character URL-safe id (120 bits).
pub fn new_id() -> Arc<str> {
    let mut raw = [0u8; 15];
    rand::rng().fill_bytes(&mut raw);
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(raw)
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_url_safe_and_distinct() {
        let (a, b) = (new_id(), new_id());
        assert_eq!(a.len(), 20);
        assert_ne!(a, b);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }
}
