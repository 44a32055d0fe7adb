//! The Portcullis gateway library: hosts the engine's WebAssembly module
//! with wasmtime ([`module`]); the `portcullis` binary and the end-to-end
//! tests build on it. (The reverse proxy itself arrives with issue #4.)

pub mod module;
pub mod route_table;
