//! TLS on the gateway's listeners (rustls, through tokio-rustls).
//!
//! Each listener with a `tls` section gets a [`Tls`]: a rustls server
//! configuration — TLS 1.2 and 1.3 only, ALPN `h2` and `http/1.1`, the
//! certificate picked by the client's SNI (`sni.rs`), client certificates
//! verified against `client_ca` when it is set — held in an `ArcSwap`, so
//! that [`watch`] can replace it when the files change. A new set that does
//! not load (a key that is not the certificate's, an expired certificate,
//! an unreadable file) is refused, logged and counted, and the old one
//! keeps serving. Handshakes that fail or time out are counted too.
//!
//! The `ring` provider, as for the store client (`snapshot/store.rs`):
//! aws-lc-rs would add a C and assembly build to every CI run for
//! primitives ring has.

mod accept;
mod certs;
mod listener;
mod peer;
mod sni;
mod stream;

use std::sync::Arc;

pub use accept::{certificate_withdrawn, handshake, until_withdrawn, withdrawn};
pub use certs::Loaded;
pub use listener::{Tls, watch};
pub use peer::{PeerCertificate, Withdrawn};
pub use stream::MaybeTls;

/// The connection's verified client certificate, put in each request's
/// extensions by the server.
#[derive(Clone, Debug)]
pub struct ClientCertificate(pub Arc<PeerCertificate>);
