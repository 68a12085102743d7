//! Switchboard: an embeddable real-time engine.
//!
//! It speaks Socket.IO v4 (WebSocket, long-polling and the upgrade between them) to unmodified
//! `socket.io-client`s, and implements rooms, presence, typing indicators, messages with acks
//! and history, and signaling on its own tokio runtime. Start one with [`Engine::builder`]:
//!
//! ```no_run
//! use switchboard::{chat, Config, Engine};
//! let config = Config::default().jwt_secret("dev-secret-change-me");
//! let engine = chat::install(Engine::builder(config), chat::Hooks::default())
//!     .unwrap()
//!     .build()
//!     .unwrap();
//! let listening = engine.listen("127.0.0.1:3000".parse().unwrap()).unwrap();
//! println!("listening on {listening}"); // http://127.0.0.1:3000 (https:// with `Config::tls_files`)
//! ```
//!
//! ## Where to look
//!
//! - [`Config`] (every setting, with defaults; setters never fail, [`EngineBuilder::build`]
//!   checks them all once), [`Engine`] and [`EngineBuilder`]: start, listen, emit, shut down.
//! - [`chat`]: the chat contract (rooms, presence, typing, messages with acks and history,
//!   signaling) over Socket.IO, server-sent events and the HTTP API, with its host hooks.
//! - [`yjs`]: collaborative documents for `y-websocket` clients.
//! - [`ws`]: the chat contract as JSON frames over a plain WebSocket (`GET /ws`), for clients
//!   without a Socket.IO library.
//! - [`ws`]: the chat contract as JSON frames over a plain WebSocket at `/ws`, for clients
//!   without a Socket.IO library.
//! - [`socketio`]: namespaces and events of your own ([`EngineBuilder::namespace`]),
//!   [`Socket`], [`Payload`], acks; [`server`]: connection hooks, broadcasts, `fetchSockets`.
//! - [`tower`]: the engine inside an axum or hyper app, on the app's port
//!   ([`Engine::layer`]).
//! - [`host`]: the whole product (chat, SSE, `/ws`, Yjs, app events) assembled as the C and Node
//!   bindings and the `switchboard` command start it.
//!
//! Cargo features: `cli` (default) builds the `switchboard` command; an embedding program
//! turns it off with `default-features = false`. `testing` exposes the entry points of the
//! fuzz targets and property tests (not a supported API).
#![deny(missing_docs)]

// What a Rust program uses: the engine, its configuration, Socket.IO namespaces and sockets,
// the chat contract, plain WebSocket and Yjs documents as features, the assembled product, and mounting in
// axum. Everything else is the engine's own; `bindings` holds what the C and Node bindings
// and the `switchboard` command need beyond this (hidden: not a stable API).
pub mod chat;
pub mod host;
pub mod server;
pub mod socketio;
pub mod tower;
pub mod ws;
pub mod yjs;

mod auth;
mod cluster;
mod config;
mod endpoints;
mod engine;
mod error;
mod helpers;
mod hub;
mod log;
mod metrics;
mod protocol;
mod settings;
mod sse;
mod store;
mod transport;

#[doc(hidden)]
pub mod bindings;
#[cfg(feature = "testing")]
#[doc(hidden)]
pub mod testing;

pub use auth::{Claims, User};
pub use config::{
    Config, ConfigError, JwksSource, JwtKey, RoomPolicy, TlsSource, MIN_JWT_SECRET_BYTES,
};
pub use engine::{Engine, EngineBuilder, Listening};
pub use error::Error;
pub use socketio::{AckSender, HookError, Namespace, Payload, Socket};
pub use tower::{EngineLayer, EngineService};

/// The crate README's example program, compiled and run by `cargo test` so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
