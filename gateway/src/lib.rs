//! The Portcullis gateway: a hyper/tokio reverse proxy that authorizes
//! every request through the engine's WebAssembly module (hosted by
//! wasmtime) before it reaches the upstream, and swaps directory snapshots
//! atomically (arc-swap) without a restart.
//!
//! One module per stage of a request: [`route_table`] (request → upstream,
//! action, resource), [`identity`] (credentials → principal),
//! [`authorize`] (→ decision, in [`module`] instances owned by a
//! [`swap::Generation`]), [`forward`] (→ upstream); [`server`] composes them
//! and serves `admin`. Snapshots arrive through [`swap`] from pushes,
//! the watched file and the polled URL (`sources`). Configuration:
//! [`config`]; observability: [`metrics`] and [`decision_log`].

pub mod adapters;
mod admin;
pub mod authorize;
mod browser;
mod checkpoint;
pub mod config;
pub mod decision_api;
pub mod decision_log;
pub mod demo;
pub mod forward;
pub mod host;
pub mod identity;
pub mod metrics;
pub mod module;
pub mod revision_state;
pub mod route_table;
pub mod server;
mod sources;
pub mod swap;
