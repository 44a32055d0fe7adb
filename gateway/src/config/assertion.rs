//! `[assertion]`: the keys that sign `X-Portcullis-Assertion`.

use std::path::PathBuf;

use serde::Deserialize;

/// `[assertion]`: identity the upstream can verify (`docs/gateway.md`,
/// "Signed identity").
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssertionConfig {
    /// `iss` of every assertion.
    #[serde(default = "default_assertion_issuer")]
    pub issuer: String,
    /// Lifetime of an assertion, in seconds (`exp` − `iat`).
    #[serde(default = "default_assertion_ttl")]
    pub ttl_s: u64,
    /// Ed25519 keys, by `kid`. The first with a `private_key` signs; every
    /// one is published at `/.well-known/jwks.json` on the admin listener,
    /// so that assertions signed by a key being retired still verify.
    pub keys: Vec<AssertionKey>,
}

fn default_assertion_issuer() -> String {
    "portcullis".into()
}

fn default_assertion_ttl() -> u64 {
    60
}

/// One assertion key: a private key (PKCS#8 PEM, `portcullis snapshot
/// keygen` writes one) that can sign, or a public key (SPKI PEM) that is
/// only published.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssertionKey {
    /// The key's `kid`.
    pub kid: String,
    /// A private key: this one can sign.
    #[serde(default)]
    pub private_key: Option<PathBuf>,
    /// A public key: published only.
    #[serde(default)]
    pub public_key: Option<PathBuf>,
}

impl AssertionConfig {
    /// Its own problems: a lifetime for one request, a key to sign with,
    /// each key named once and one of private or public.
    pub(super) fn problems(&self, out: &mut Vec<String>) {
        if !(1..=3600).contains(&self.ttl_s) {
            out.push(
                "assertion.ttl_s: between 1 and 3600 seconds (an assertion is for one request)"
                    .into(),
            );
        }
        if !self.keys.iter().any(|k| k.private_key.is_some()) {
            out.push("assertion.keys: at least one needs a private_key to sign with".into());
        }
        let mut kids = std::collections::BTreeSet::new();
        for k in &self.keys {
            if k.kid.is_empty() || !kids.insert(k.kid.as_str()) {
                out.push(format!(
                    "assertion.keys: kid {:?} is empty or used twice",
                    k.kid
                ));
            }
            if k.private_key.is_some() == k.public_key.is_some() {
                out.push(format!(
                    "assertion.keys.{}: give a private_key or a public_key (one of them)",
                    k.kid
                ));
            }
        }
    }
}
