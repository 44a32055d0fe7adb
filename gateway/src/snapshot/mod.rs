//! Snapshots in the gateway: the policy [`module`] compiled once and its
//! instances, [`swap`] (a generation of loaded instances behind an
//! arc-swap, every candidate validated first), and [`revision_state`] (the
//! accepted revision across restarts), [`views`] (each principal's browser
//! view, cut on the [`view_builder`] threads).

pub mod cpu_time;
pub mod deadline;
mod image_module;
pub mod manifest;
pub mod memory_image;
pub mod module;
pub mod priority;
pub mod revision_state;
pub mod store;
pub mod swap;
pub mod view_builder;
pub mod views;
