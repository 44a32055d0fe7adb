//! The engine's host: the policy engine's WebAssembly module run by
//! wasmtime, and the snapshots it serves.
//!
//! What it holds, bottom to top: [`module`] (the module compiled once,
//! cheap instances, calls bounded by their own work — [`deadline`],
//! [`cpu_time`]); [`memory_image`] (every instance's linear memory mapped
//! from one loaded snapshot, copy-on-write: **the only unsafe code of the
//! project**, see `docs/SECURITY.md`); [`swap`] (a generation of
//! instances behind an arc-swap, every candidate validated first, deltas
//! applied in place; the engine pool and its epoch clock);
//! [`revision_state`] (the accepted revision across restarts); [`views`]
//! (each principal's browser view, cut on the [`view_builder`] threads,
//! below the workers' [`priority`]).
//!
//! [`engine_host`] is what the gateway asks of a host; [`native`] runs the
//! same engine compiled into the process behind it, for comparison.
//!
//! It knows nothing of HTTP: the gateway (`portcullis-gateway`) asks it
//! for decisions and hands it candidates.

pub mod cpu_time;
pub mod deadline;
pub mod engine_host;
mod image_module;
pub mod memory_image;
pub mod module;
pub mod native;
pub mod priority;
pub mod revision_state;
pub mod swap;
pub mod view_builder;
pub mod views;
