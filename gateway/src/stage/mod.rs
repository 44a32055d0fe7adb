//! The stages a request passes, each a leaf that knows nothing of the
//! others or of listeners: [`host`] and [`route_table`] (request → route,
//! action, resource), [`identity`] (credentials → principal),
//! [`authorize`] (→ decision in the engine), [`forward`] (→ upstream).
//! `crate::checkpoint` and the proxy handler compose them.

pub mod assertion;
pub mod authorize;
pub mod forward;
pub mod host;
pub mod identity;
pub mod jwks;
mod keys;
pub mod route_table;
