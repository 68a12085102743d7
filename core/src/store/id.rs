//! Unique, time-sortable message ids (ULID layout, monotonic within the process).

use parking_lot::Mutex;
use rand::RngCore;

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Makes 26-character ids: 48 bits of milliseconds, then 80 bits that are random for a new
/// millisecond and incremented within one, so ids sort in the order they were made.
pub struct MessageIdGenerator {
    last: Mutex<(u64, u128)>,
}

impl Default for MessageIdGenerator {
    fn default() -> Self {
        MessageIdGenerator {
            last: Mutex::new((0, 0)),
        }
    }
}

impl MessageIdGenerator {
    /// A new id and the millisecond it carries.
    pub fn next(&self, now_ms: u64) -> (String, u64) {
        let mut last = self.last.lock();
        let (ms, random) = if now_ms <= last.0 {
            // Same millisecond (or the clock stepped back): keep the order by incrementing.
            (last.0, (last.1 + 1) & ((1u128 << 80) - 1))
        } else {
            let mut bytes = [0u8; 16];
            rand::rng().fill_bytes(&mut bytes);
            // Leave headroom so increments within the millisecond do not wrap.
            (now_ms, u128::from_be_bytes(bytes) & ((1u128 << 79) - 1))
        };
        *last = (ms, random);
        drop(last);
        let value = (u128::from(ms) << 80) | random;
        let mut out = [0u8; 26];
        for (i, c) in out.iter_mut().enumerate() {
            let shift = 5 * (25 - i);
            *c = ALPHABET[((value >> shift) & 0x1f) as usize];
        }
        (String::from_utf8_lossy(&out).into_owned(), ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase_within_and_across_milliseconds() {
        let g = MessageIdGenerator::default();
        let mut prev = String::new();
        for ms in [5, 5, 5, 6, 6, 4, 7] {
            let (id, _) = g.next(ms);
            assert_eq!(id.len(), 26);
            assert!(id > prev, "{id} after {prev}");
            prev = id;
        }
    }
}
