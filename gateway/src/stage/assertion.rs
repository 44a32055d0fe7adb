//! `X-Portcullis-Assertion`: a short-lived JWT the gateway signs for the
//! upstream of a route with `assertion = true`, saying who asked
//! (`sub`, `acting_as`), what was allowed (`route`, `action`, `resource`),
//! on which snapshot (`rev`), for which upstream (`aud`), until when
//! (`exp`). The other `X-Portcullis-*` headers are trustworthy only if
//! nothing but the gateway can reach the upstream; an assertion verifies
//! anywhere, against the public keys at `/.well-known/jwks.json`.
//!
//! EdDSA (Ed25519): small keys, fast deterministic signatures, no nonce
//! to get wrong; signed with `jsonwebtoken`, which the gateway already
//! uses to verify tokens. A signature costs tens of microseconds, so each
//! worker keeps the assertions it signed and reuses one until half its
//! lifetime is gone.

use std::cell::RefCell;
use std::collections::HashMap;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use serde_json::{Value, json};

use crate::config::AssertionConfig;

/// The signing key, and the public set to publish.
pub struct Assertions {
    kid: String,
    key: EncodingKey,
    issuer: String,
    ttl: i64,
    jwks: Value,
}

/// What an assertion says.
#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    acting_as: Option<&'a str>,
    aud: &'a str,
    route: &'a str,
    action: &'a str,
    resource: &'a str,
    rev: u64,
    iat: i64,
    exp: i64,
}

/// What one request asks to be asserted.
#[derive(Clone, Copy, Debug)]
pub struct Statement<'a> {
    /// The principal (`sub`).
    pub principal: &'a str,
    /// For an API key, the user it acted as.
    pub acting_as: Option<&'a str>,
    /// The upstream's name (`aud`).
    pub upstream: &'a str,
    /// The route's label.
    pub route: &'a str,
    /// The action allowed.
    pub action: &'a str,
    /// The resource it was allowed on.
    pub resource: &'a str,
    /// The snapshot revision that decided.
    pub revision: u64,
}

/// Signed assertions cached per worker: (statement) → (token, expiry).
type Cache = HashMap<(String, Option<String>, String, String, String, String, u64), (String, i64)>;

thread_local! {
    static SIGNED: RefCell<Cache> = RefCell::new(HashMap::new());
}

/// Entries a worker keeps at most (then it starts over).
const CACHE_ENTRIES: usize = 65_536;

impl Assertions {
    /// Reads the keys of `[assertion]`; every problem named.
    pub fn new(config: &AssertionConfig) -> Result<Assertions, Vec<String>> {
        let mut problems = Vec::new();
        let mut published = Vec::new();
        let mut signer = None;
        for k in &config.keys {
            let public = match (&k.private_key, &k.public_key) {
                (Some(path), _) => {
                    let pem = std::fs::read(path)
                        .map_err(|e| format!("assertion.keys.{}: {}: {e}", k.kid, path.display()));
                    let parsed = pem.as_ref().ok().map(|pem| {
                        (
                            EncodingKey::from_ed_pem(pem),
                            std::str::from_utf8(pem)
                                .map_err(|e| e.to_string())
                                .and_then(|t| {
                                    portcullis_snapshots::signature::read_private(t)
                                        .map_err(|e| e.to_string())
                                }),
                        )
                    });
                    match (pem, parsed) {
                        (Ok(_), Some((Ok(key), Ok(private)))) => {
                            if signer.is_none() {
                                signer = Some((k.kid.clone(), key));
                            }
                            Some(private.verifying_key())
                        }
                        (Err(e), _) => {
                            problems.push(e);
                            None
                        }
                        _ => {
                            problems.push(format!(
                                "assertion.keys.{}: {}: not an Ed25519 private key (PKCS#8 PEM; `portcullis snapshot keygen` writes one)",
                                k.kid,
                                path.display()
                            ));
                            None
                        }
                    }
                }
                (None, Some(path)) => match crate::config::read_public_key(path) {
                    Ok(key) => Some(key),
                    Err(e) => {
                        problems.push(format!("assertion.keys.{}: {e}", k.kid));
                        None
                    }
                },
                (None, None) => None,
            };
            if let Some(public) = public {
                published.push(json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "use": "sig",
                    "alg": "EdDSA",
                    "kid": k.kid,
                    "x": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(public.to_bytes()),
                }));
            }
        }
        match signer {
            Some((kid, key)) if problems.is_empty() => Ok(Assertions {
                kid,
                key,
                issuer: config.issuer.clone(),
                ttl: i64::try_from(config.ttl_s).unwrap_or(60),
                jwks: json!({ "keys": published }),
            }),
            Some(_) => Err(problems),
            None => {
                problems.push("assertion.keys: no private key to sign with".into());
                Err(problems)
            }
        }
    }

    /// The public keys, as a JWK Set.
    pub fn jwks(&self) -> &Value {
        &self.jwks
    }

    /// The assertion for `s` at Unix time `now`: one signed before if more
    /// than half its lifetime is left, else a new one.
    pub fn sign(&self, s: &Statement<'_>, now: i64) -> Result<String, jsonwebtoken::errors::Error> {
        let key = (
            s.principal.to_string(),
            s.acting_as.map(str::to_string),
            s.upstream.to_string(),
            s.route.to_string(),
            s.action.to_string(),
            s.resource.to_string(),
            s.revision,
        );
        let fresh_until = |exp: i64| exp - self.ttl / 2;
        if let Some(token) = SIGNED.with_borrow(|c| {
            c.get(&key)
                .filter(|(_, exp)| now < fresh_until(*exp))
                .map(|(t, _)| t.clone())
        }) {
            return Ok(token);
        }
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        let exp = now + self.ttl;
        let token = jsonwebtoken::encode(
            &header,
            &Claims {
                iss: &self.issuer,
                sub: s.principal,
                acting_as: s.acting_as,
                aud: s.upstream,
                route: s.route,
                action: s.action,
                resource: s.resource,
                rev: s.revision,
                iat: now,
                exp,
            },
            &self.key,
        )?;
        SIGNED.with_borrow_mut(|c| {
            if c.len() >= CACHE_ENTRIES {
                c.clear();
            }
            c.insert(key, (token.clone(), exp));
        });
        Ok(token)
    }
}
