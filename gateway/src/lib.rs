//! The Portcullis gateway: a hyper/tokio reverse proxy that authorizes
//! every request through the engine's WebAssembly module (hosted by
//! `portcullis-host` in wasmtime) before it reaches the upstream, and swaps
//! directory snapshots atomically (arc-swap) without a restart; the
//! decision endpoint for the gateways already at the edge; the admin API.
//!
//! The house, bottom to top — a module only imports from the rows above
//! it, never from the module that composes it:
//!
//! | layer | modules |
//! |---|---|
//! | vocabulary | [`response`] (bodies, JSON, `Refusal`: the one place a refusal's status is chosen), [`config`] (the TOML as written), [`metrics`], [`decision_log`], [`static_site`], [`framing`] |
//! | leaves | [`stage`]: `host`, `route_table`, `identity`, `jwks`, `authorize`, `assertion`, `forward`; [`store`] (the outbound HTTP client), [`manifest`]; [`tls`] |
//! | compiled state | [`compiled`] (the configuration compiled once), `shared` (what every connection shares) |
//! | composition | `checkpoint` (route → identity → decision, for every path), [`proxy`] (the proxy handler, `/-/snapshot/me`, static files), [`decision`] (`/v1/check`, adapters), `admin`, `sources` (the watched file and the polled URL) |
//! | top | [`server`] (listeners, workers, start-up) |
//!
//! Above it: `portcullis-demo` (the demo, and the tests' fixtures) and the
//! `portcullis` binary.

mod admin;
mod checkpoint;
pub mod compiled;
pub mod config;
pub mod decision;
pub mod decision_log;
pub mod framing;
pub mod manifest;
pub mod metrics;
pub mod proxy;
pub mod response;
pub mod server;
mod shared;
mod sources;
pub mod stage;
pub mod static_site;
pub mod store;
pub mod tls;
