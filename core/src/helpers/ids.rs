//! Random ids: session ids, node ids, boot ids, temporary names.

use std::sync::Arc;

use base64::Engine as _;
use rand::RngCore;

/// A random 20-character URL-safe id (120 bits).
pub fn new_id() -> Arc<str> {
    Id::random().as_str().into()
}

/// Longest id an [`Id`] holds.
const INLINE: usize = 23;

/// An id kept inline (up to 23 bytes of text): what a connection keeps for its life costs
/// no allocation of its own (an `Arc<str>` of 20 characters takes 40 bytes of heap).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Id {
    len: u8,
    bytes: [u8; INLINE],
}

impl Id {
    /// A random 20-character URL-safe id (120 bits), as [`new_id`].
    pub fn random() -> Id {
        let mut raw = [0u8; 15];
        rand::rng().fill_bytes(&mut raw);
        let mut bytes = [0u8; INLINE];
        let len = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode_slice(raw, &mut bytes)
            .unwrap_or(0);
        Id {
            len: len as u8,
            bytes,
        }
    }

    /// `text` as an id; `None` when it is longer than an id holds.
    pub fn new(text: &str) -> Option<Id> {
        let mut bytes = [0u8; INLINE];
        bytes
            .get_mut(..text.len())?
            .copy_from_slice(text.as_bytes());
        Some(Id {
            len: text.len() as u8,
            bytes,
        })
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        // Made from a `str` or from base64 output: always UTF-8.
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or_default()
    }
}

impl std::ops::Deref for Id {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_ids_hold_up_to_23_bytes() {
        let id = Id::random();
        assert_eq!(id.len(), 20);
        assert_ne!(id, Id::random());
        assert_eq!(Id::new(&id).unwrap(), id);
        assert_eq!(&*Id::new("pid1").unwrap(), "pid1");
        assert_eq!(Id::new(&"x".repeat(23)).unwrap().len(), 23);
        assert!(Id::new(&"x".repeat(24)).is_none());
        assert_eq!(std::mem::size_of::<Id>(), 24);
    }

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
