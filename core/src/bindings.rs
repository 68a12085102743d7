//! What the C and Node bindings and the `switchboard` command use beyond the public API: the
//! settings table they describe and check options with, the log records they forward, and
//! the HTTP pieces a host hands requests and sockets through. Hidden from the documentation
//! and not a stable API: it changes with the bindings, which live in this repository.

/// Every setting, in each front door's spelling, and the checks of their values.
pub mod settings {
    pub use crate::config::check_jwt_secret;
    pub use crate::settings::*;
}

/// Log records and filters, for a host's logger.
pub mod log {
    pub use crate::log::*;
}

/// Requests and connections a host hands to the engine.
pub mod http {
    pub use crate::helpers::percent::query_param;
    pub use crate::transport::http::{
        serve_connection_with_prefix, BodyStream, EioError, RequestHead, Routed,
    };
}
