//! The bottom layer: small pure functions every other layer uses (ids, percent-decoding,
//! finding a client's token). It imports nothing of the crate, so anything may import it.

pub mod ids;
pub mod percent;
pub mod token;
