//! The bottom layer: small pure functions every other layer uses (ids, percent-decoding,
//! finding a client's token). It imports nothing of the crate, so anything may import it.

pub mod ids;
pub mod percent;
pub mod token;

/// Pushes onto a list a connection keeps for its life (its rooms, its sockets), growing it
/// one element at a time up to four: a first push would otherwise reserve four, and most
/// such lists hold one or two. Past four it grows as `Vec::push` does.
pub fn push_snug<T>(list: &mut Vec<T>, item: T) {
    if list.len() == list.capacity() && list.len() < 4 {
        list.reserve_exact(1);
    }
    list.push(item);
}

#[cfg(test)]
mod tests {
    #[test]
    fn push_snug_grows_by_one_up_to_four() {
        let mut v = Vec::new();
        for i in 0..4 {
            super::push_snug(&mut v, i);
            assert_eq!(v.capacity(), i + 1);
        }
        super::push_snug(&mut v, 4);
        assert!(v.capacity() >= 5);
        assert_eq!(v, vec![0, 1, 2, 3, 4]);
    }
}
