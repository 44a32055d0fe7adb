//! Verification keys, each pinned to one algorithm so that a token cannot
//! pick its own; the keys of a JWK Set (a file, or the identity
//! provider's `jwks_uri`).

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};

/// A key and the one algorithm it verifies.
#[derive(Clone)]
pub(crate) struct Key {
    pub(crate) kid: Option<String>,
    pub(crate) alg: Algorithm,
    pub(crate) key: DecodingKey,
}

/// The keys of a JWK Set (RSA, EC P-256, Ed25519; each pinned to its
/// algorithm).
pub(crate) fn keys_of_jwks(text: &str) -> Result<Vec<Key>, String> {
    let bad = |problem: String| problem;
    let set: JwkSet = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    let mut keys = Vec::new();
    for (i, jwk) in set.keys.iter().enumerate() {
        let alg = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Algorithm::RS256,
            AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
                Algorithm::ES256
            }
            AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
            _ => {
                return Err(bad(format!(
                    "key {i}: only RSA, EC P-256 and Ed25519 keys are accepted"
                )));
            }
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| bad(format!("key {i}: {e}")))?;
        keys.push(Key {
            kid: jwk.common.key_id.clone(),
            alg,
            key,
        });
    }
    Ok(keys)
}
