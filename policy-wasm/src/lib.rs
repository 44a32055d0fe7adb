//! The Portcullis engine: decides who may do what in a directory snapshot.
//!
//! [`Engine::load`] decodes, verifies and indexes a snapshot once;
//! [`Engine::check`] then answers a [`Request`] with a [`Decision`] — allow
//! or deny, a stable [`Reason`], the [`Basis`] that decided, the user an API
//! key acted as, and the snapshot revision — and [`Engine::explain`] renders
//! it for people. [`Engine::permissions`] and [`Engine::list`] answer what a
//! UI needs to draw a page.
//!
//! Decisions are pure functions of (snapshot, request): no clock (the caller
//! passes `now`), no I/O. The same crate builds natively and for
//! `wasm32-unknown-unknown`, where `abi` exports a small raw ABI for
//! wasmtime. The action and resource vocabulary is in `policy-wasm/README.md`.

#[cfg(any(
    all(target_arch = "wasm32", not(feature = "browser")),
    feature = "native-abi"
))]
pub mod abi;
pub mod action;
#[cfg(all(target_arch = "wasm32", feature = "browser"))]
mod bindgen;
mod csr;
mod decision;
mod engine;
mod explain;
mod facts;
mod index;
mod lists;
#[cfg(not(all(target_arch = "wasm32", feature = "browser")))]
mod patch;
#[cfg(any(not(target_arch = "wasm32"), feature = "browser"))]
mod question;
mod request;
mod rules;
#[cfg(not(target_arch = "wasm32"))]
mod tree;
#[cfg(not(target_arch = "wasm32"))]
mod view;
pub mod wire;

pub use decision::{Basis, Decision, Obligation, Reason, Via};
pub use engine::{Engine, LoadError, check_reference};
pub use explain::Explanation;
#[cfg(not(all(target_arch = "wasm32", feature = "browser")))]
pub use patch::PatchError;
#[cfg(any(not(target_arch = "wasm32"), feature = "browser"))]
pub use question::{Asking, Credentials, Question, QuestionContext, QuestionError, parse_time};
pub use request::{Context, OwnedRequest, Request};
#[cfg(not(target_arch = "wasm32"))]
pub use view::{ViewError, ViewScope};
