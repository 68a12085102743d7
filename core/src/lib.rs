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
#![deny(missing_docs)]

pub mod auth;
pub mod chat;
pub mod cluster;
pub mod config;
pub mod endpoints;
mod engine;
mod error;
pub mod helpers;
pub mod host;
pub mod hub;
pub mod log;
pub mod metrics;
pub mod protocol;
pub mod server;
pub mod settings;
pub mod socketio;
pub mod sse;
pub mod store;
#[cfg(feature = "testing")]
#[doc(hidden)]
pub mod testing;
pub mod tower;
pub mod transport;
pub mod ws;
pub mod yjs;

pub use auth::User;
pub use config::{Config, ConfigError, JwtKey, RoomPolicy, TlsSource};
pub use engine::{Engine, EngineBuilder, Listening};
pub use error::Error;
pub use socketio::{AckSender, Namespace, Payload, Socket};

/// The crate README's example program, compiled and run by `cargo test` so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
