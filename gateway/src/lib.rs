//! The Portcullis gateway library, one module per stage of a request:
//! [`route_table`] (request → upstream, action, resource), [`identity`]
//! (credentials → principal), and [`module`] (the engine's WebAssembly
//! module under wasmtime). The `portcullis` binary and the end-to-end tests
//! build on it; the proxy that composes the stages arrives with issue #4.

pub mod identity;
pub mod module;
pub mod route_table;
