//! The Portcullis gateway: a hyper/tokio reverse proxy that authorizes
//! every request through the engine's WebAssembly module (hosted by
//! wasmtime) before it reaches the upstream, and swaps directory snapshots
//! atomically (arc-swap) without a restart.
//!
//! The house, bottom to top — a module only imports from the rows above
//! it, never from the module that composes it:
//!
//! | layer | modules |
//! |---|---|
//! | vocabulary | [`response`] (bodies, JSON, `Refusal`: the one place a refusal's status is chosen), [`config`] (the TOML as written), [`metrics`], [`decision_log`], [`static_site`], [`framing`] |
//! | leaves | [`stage`]: `host`, `route_table`, `identity`, `authorize`, `forward`; [`snapshot`]: `module`, `swap`, `revision_state` |
//! | compiled state | [`compiled`] (the configuration compiled once), `shared` (what every connection shares) |
//! | composition | `checkpoint` (route → identity → decision, for every path), [`proxy`] (the proxy handler, `/-/snapshot/me`, static files), [`decision`] (`/v1/check`, adapters), `admin`, `sources` (the watched file and the polled URL) |
//! | top | [`server`] (listeners, workers, start-up), [`demo`], the CLI (`main.rs`) |

mod admin;
mod checkpoint;
pub mod compiled;
pub mod config;
pub mod decision;
pub mod decision_log;
pub mod demo;
pub mod demo_tls;
pub mod framing;
pub mod metrics;
pub mod proxy;
pub mod response;
pub mod server;
mod shared;
pub mod snapshot;
mod sources;
pub mod stage;
pub mod static_site;
pub mod tls;
