//! Wire codecs with no IO: bytes in, values or errors out.

pub mod engineio;
pub mod frame;
pub mod socketio;
