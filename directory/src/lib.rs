//! The directory service: the living directory.
//!
//! The directory lives in a database (SQLite by default, behind
//! [`storage::Storage`]) together with an append-only change log. Every
//! write is a list of [`operation::Operation`]s; each operation is an
//! action on a resource ([`requirement`]) that the engine decides as the
//! acting principal — identified exactly as at the gateway — against the
//! revision the write applies to. The post-state is validated like a
//! directory file, then the state and the log entry are committed in one
//! transaction, and only then is the write answered. Committed revisions
//! are coalesced and published ([`publish`]) as signed snapshots, deltas
//! and the manifest gateways poll.
//!
//! Layers, top to bottom: `server` (HTTP) → `service` (one writer: decide,
//! apply, validate, commit) → `requirement`, `operation`, `storage`,
//! `publish` → `config`, `error`.

pub mod config;
pub mod error;
mod incremental;
pub mod operation;
pub mod publish;
pub mod push;
pub mod requirement;
pub mod scim;
pub mod server;
pub mod service;
pub mod storage;
