//! Picking a listener's certificate by the name a client asks for (SNI).

use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::certs::Loaded;

/// Certificates by the DNS names their leaves carry; the first one for a
/// client that sends no name, or a name none carries (as nginx's default
/// server: the client's own check of the name then fails, visibly).
#[derive(Debug)]
pub struct BySni {
    entries: Vec<(Vec<String>, Arc<CertifiedKey>)>,
}

impl BySni {
    pub fn new(loaded: &[Loaded]) -> BySni {
        BySni {
            entries: loaded
                .iter()
                .map(|l| (l.names.clone(), Arc::clone(&l.key)))
                .collect(),
        }
    }
}

/// Whether `pattern` (a certificate's DNS name, maybe `*.` one label deep)
/// covers `host`.
fn covers(pattern: &str, host: &str) -> bool {
    if let Some(suffix) = pattern.strip_prefix("*.") {
        host.split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix)
    } else {
        pattern == host
    }
}

impl ResolvesServerCert for BySni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = hello.server_name() {
            let host = name.trim_end_matches('.').to_ascii_lowercase();
            // An exact name before a wildcard, whatever the order given.
            let exact = self.entries.iter().find(|(names, _)| names.contains(&host));
            let wild = || {
                self.entries
                    .iter()
                    .find(|(names, _)| names.iter().any(|n| covers(n, &host)))
            };
            if let Some((_, key)) = exact.or_else(wild) {
                return Some(Arc::clone(key));
            }
        }
        self.entries.first().map(|(_, key)| Arc::clone(key))
    }
}

#[cfg(test)]
mod tests {
    use super::covers;

    #[test]
    fn wildcards_cover_one_label() {
        assert!(covers("api.example.com", "api.example.com"));
        assert!(covers("*.example.com", "api.example.com"));
        assert!(!covers("*.example.com", "example.com"));
        assert!(!covers("*.example.com", "a.b.example.com"));
        assert!(!covers("*.example.com", ".example.com"));
        assert!(!covers("api.example.com", "web.example.com"));
    }
}
