//! Credentials → principal: JWT bearer tokens verified against configured
//! keys or a JWKS file, and API keys from a configurable header.
//!
//! Every key is pinned to one algorithm, so a token cannot pick its own
//! (no `alg: none`, no HS/RS key confusion). Time claims are checked here
//! against the caller's clock, not the library's, so the gateway decides
//! with one notion of "now". Anything ambiguous — two `Authorization`
//! headers, a bearer token and an API key together — is refused.

use std::path::PathBuf;

use http::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::jwks::RemoteKeys;
use super::keys::{Key, keys_of_jwks};
use crate::config::{IdentityConfig, JwtConfig};

/// Compares tokens through their SHA-256, so the time taken says nothing
/// about how much of a guess was right.
pub fn token_ok(expected: &str, presented: &[u8]) -> bool {
    Sha256::digest(expected.as_bytes()) == Sha256::digest(presented)
}

/// The token of the request's one `Authorization: Bearer <token>` header,
/// if that is what it carries (the admin API and the decision endpoint's
/// own tokens; end users' tokens go through [`Identity::authenticate`]).
pub fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let mut all = headers.get_all(http::header::AUTHORIZATION).iter();
    match (all.next(), all.next()) {
        (Some(v), None) => bearer_token(v.to_str().ok()?).map(str::as_bytes),
        _ => None,
    }
}

/// The credential an API key's secret is: its SHA-256, looked up in the
/// snapshot.
fn api_key(secret: &[u8]) -> Credential {
    let hex: String = Sha256::digest(secret)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Credential::ApiKey(format!("apikey/{hex}"))
}

/// `<token>` of `Bearer <token>` (the scheme in any case).
fn bearer_token(value: &str) -> Option<&str> {
    match value.split_once(' ') {
        Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") && !t.trim().is_empty() => {
            Some(t.trim())
        }
        _ => None,
    }
}

/// Why the identity configuration is unusable (a start-up error).
#[derive(Debug, Error)]
pub enum IdentityConfigError {
    /// An algorithm outside the supported four.
    #[error("key {index}: algorithm {alg:?} is not supported; use HS256, RS256, ES256 or EdDSA")]
    Algorithm {
        /// Position in `keys`.
        index: usize,
        /// The algorithm given.
        alg: String,
    },
    /// Key material missing, unreadable or invalid.
    #[error("key {index}: {problem}")]
    Key {
        /// Position in `keys` (or in the JWKS file).
        index: usize,
        /// What is wrong.
        problem: String,
    },
    /// A service-account or support mapping is unusable.
    #[error("identity.jwt mapping {index}: {problem}")]
    Mapping {
        /// Position in its list.
        index: usize,
        /// What is wrong.
        problem: String,
    },
    /// `jwks_url` or `oidc_issuer` is unusable.
    #[error("{0}")]
    Remote(String),
    /// The JWKS file is unreadable or invalid.
    #[error("JWKS file {path}: {problem}")]
    Jwks {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
}

/// Why a request's credentials were refused (401).
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum Unauthenticated {
    /// No credentials.
    #[error("no credentials: send a bearer token or an API key")]
    Missing,
    /// More than one credential, or a repeated header.
    #[error("ambiguous credentials: {0}")]
    Ambiguous(&'static str),
    /// The `Authorization` header is not `Bearer <token>`.
    #[error("the Authorization header is not a bearer token")]
    NotBearer,
    /// Bearer tokens are not configured.
    #[error("bearer tokens are not accepted here")]
    JwtDisabled,
    /// The token names a key this gateway does not know.
    #[error("unknown signing key")]
    UnknownKey,
    /// The token is malformed, badly signed, or fails a claim check.
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// The token is expired.
    #[error("token expired")]
    Expired,
    /// The token is not valid yet.
    #[error("token not valid yet")]
    NotYetValid,
}

/// Who is asking, as the engine names principals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// From a verified bearer token: `user/…` (or whatever typed
    /// reference the claim holds, e.g. `service/…`).
    Token(String),
    /// From an API key: `apikey/<sha256 hex>`; the engine resolves the
    /// user it acts as.
    ApiKey(String),
    /// From the connection's client certificate, mapped by the TLS
    /// listener's `client_principals`: `service/…`.
    Certificate(String),
}

impl Credential {
    /// The principal reference to check.
    pub fn principal(&self) -> &str {
        match self {
            Credential::Token(p) | Credential::ApiKey(p) | Credential::Certificate(p) => p,
        }
    }
}

/// A token whose signature, issuer and audience were verified; its time
/// claims are checked again on every use.
#[derive(Clone)]
struct Verified {
    principal: String,
    exp: i64,
    nbf: Option<i64>,
    /// The provider's key set it was verified against (`RemoteKeys`).
    keys: u64,
}

/// Tokens remembered after verification. Clients reuse a token for many
/// requests; the signature check and claim parsing are the costliest part
/// of a request, so they run once per distinct token. The key is the whole
/// token, so only byte-identical tokens hit.
const TOKEN_CACHE: usize = 65_536;

/// Verifies credentials. Built once from the configuration.
pub struct Identity {
    keys: Vec<Key>,
    /// Keys fetched from the provider (`jwks_url`, `oidc_issuer`).
    remote: Option<std::sync::Arc<RemoteKeys>>,
    jwt: Option<JwtConfig>,
    api_key_header: http::HeaderName,
    verified: quick_cache::sync::Cache<String, Verified>,
}

fn parse_alg(s: &str) -> Option<Algorithm> {
    match s {
        "HS256" => Some(Algorithm::HS256),
        "RS256" => Some(Algorithm::RS256),
        "ES256" => Some(Algorithm::ES256),
        "EdDSA" => Some(Algorithm::EdDSA),
        _ => None,
    }
}

impl Identity {
    /// Loads every key; any unusable key is a start-up error.
    pub fn new(config: IdentityConfig) -> Result<Self, IdentityConfigError> {
        let mut keys = Vec::new();
        if let Some(jwt) = &config.jwt {
            for (index, k) in jwt.keys.iter().enumerate() {
                let alg = parse_alg(&k.alg).ok_or_else(|| IdentityConfigError::Algorithm {
                    index,
                    alg: k.alg.clone(),
                })?;
                let bad = |problem: String| IdentityConfigError::Key { index, problem };
                let pem = match (&k.pem, &k.pem_file) {
                    (Some(p), _) => Some(p.clone().into_bytes()),
                    (None, Some(path)) => Some(
                        std::fs::read(path)
                            .map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?,
                    ),
                    (None, None) => None,
                };
                let key = match (alg, &k.secret, pem) {
                    (Algorithm::HS256, Some(secret), None) => {
                        DecodingKey::from_secret(secret.as_bytes())
                    }
                    (Algorithm::HS256, _, _) => {
                        return Err(bad("HS256 takes a `secret` (and no PEM)".into()));
                    }
                    (_, Some(_), _) => {
                        return Err(bad(format!("{} takes a public key, not a secret", k.alg)));
                    }
                    (_, None, None) => return Err(bad("give `pem` or `pem_file`".into())),
                    (Algorithm::RS256, None, Some(p)) => {
                        DecodingKey::from_rsa_pem(&p).map_err(|e| bad(e.to_string()))?
                    }
                    (Algorithm::ES256, None, Some(p)) => {
                        DecodingKey::from_ec_pem(&p).map_err(|e| bad(e.to_string()))?
                    }
                    (_, None, Some(p)) => {
                        DecodingKey::from_ed_pem(&p).map_err(|e| bad(e.to_string()))?
                    }
                };
                keys.push(Key {
                    kid: k.kid.clone(),
                    alg,
                    key,
                });
            }
            if let Some(path) = &jwt.jwks_file {
                keys.extend(load_jwks(path)?);
            }
            for (index, m) in jwt.service_accounts.iter().enumerate() {
                match (&m.prefix, &m.claim) {
                    (Some(p), None) if !p.is_empty() => {}
                    (None, Some(c)) if !c.is_empty() => {}
                    _ => {
                        return Err(IdentityConfigError::Mapping {
                            index,
                            problem: "give exactly one of `prefix` and `claim`, not empty".into(),
                        });
                    }
                }
            }
            for (index, s) in jwt.support.iter().enumerate() {
                if s.subject.is_empty() {
                    return Err(IdentityConfigError::Mapping {
                        index,
                        problem: "support: an empty `subject`".into(),
                    });
                }
                // Break-glass is bound to an issuer: with none here and
                // none in `issuers`, any issuer whose tokens a configured
                // key verifies could name the subject.
                if s.issuer.is_none() && jwt.issuers.is_empty() {
                    return Err(IdentityConfigError::Mapping {
                        index,
                        problem: format!(
                            "support subject {:?} needs an `issuer` when identity.jwt.issuers accepts any",
                            s.subject
                        ),
                    });
                }
            }
        }
        let api_key_header =
            http::HeaderName::from_bytes(config.api_key_header.to_ascii_lowercase().as_bytes())
                .map_err(|e| IdentityConfigError::Key {
                    index: 0,
                    problem: format!("api_key_header {:?}: {e}", config.api_key_header),
                })?;
        let remote = match &config.jwt {
            Some(jwt) => RemoteKeys::new(jwt).map_err(IdentityConfigError::Remote)?,
            None => None,
        };
        let mut jwt = config.jwt;
        // A discovered issuer is the one accepted, unless others are named.
        if let Some(j) = jwt.as_mut()
            && let Some(issuer) = &j.oidc_issuer
            && j.issuers.is_empty()
        {
            j.issuers.push(issuer.clone());
        }
        Ok(Identity {
            keys,
            remote,
            jwt,
            api_key_header,
            verified: quick_cache::sync::Cache::new(TOKEN_CACHE),
        })
    }

    /// The identity provider's keys, when they come from a URL.
    pub fn remote_keys(&self) -> Option<&std::sync::Arc<RemoteKeys>> {
        self.remote.as_ref()
    }

    /// The header API keys arrive in.
    pub fn api_key_header(&self) -> &http::HeaderName {
        &self.api_key_header
    }

    /// [`Identity::authenticate`], except that a bearer token that is no
    /// JWT (no `.`) is an API key's secret: how SCIM clients send their
    /// token (`Authorization: Bearer <secret>`).
    pub fn authenticate_bearer_keys(
        &self,
        headers: &HeaderMap,
        now: i64,
    ) -> Result<Credential, Unauthenticated> {
        let mut auth = headers.get_all(http::header::AUTHORIZATION).iter();
        if let (Some(a), None) = (auth.next(), auth.next())
            && let Some(secret) = a.to_str().ok().and_then(bearer_token)
            && !secret.contains('.')
        {
            if headers.contains_key(&self.api_key_header) {
                return Err(Unauthenticated::Ambiguous(
                    "both a bearer token and an API key",
                ));
            }
            return Ok(api_key(secret.as_bytes()));
        }
        self.authenticate(headers, now)
    }

    /// Verifies the request's credentials at Unix time `now`.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        now: i64,
    ) -> Result<Credential, Unauthenticated> {
        let mut auth = headers.get_all(http::header::AUTHORIZATION).iter();
        let mut keys = headers.get_all(&self.api_key_header).iter();
        let (auth, auth2, key, key2) = (auth.next(), auth.next(), keys.next(), keys.next());
        if auth2.is_some() {
            return Err(Unauthenticated::Ambiguous(
                "more than one Authorization header",
            ));
        }
        if key2.is_some() {
            return Err(Unauthenticated::Ambiguous("more than one API key header"));
        }
        match (auth, key) {
            (None, None) => Err(Unauthenticated::Missing),
            (Some(_), Some(_)) => Err(Unauthenticated::Ambiguous(
                "both a bearer token and an API key",
            )),
            (None, Some(k)) => {
                let k = k.as_bytes();
                if k.is_empty() {
                    return Err(Unauthenticated::Missing);
                }
                Ok(api_key(k))
            }
            (Some(a), None) => {
                let a = a.to_str().map_err(|_| Unauthenticated::NotBearer)?;
                let token = bearer_token(a).ok_or(Unauthenticated::NotBearer)?;
                self.verify(token, now).map(Credential::Token)
            }
        }
    }

    /// Verifies again the bearer token of an `Authorization` value that
    /// was accepted at Unix time `accepted`: against the keys serving now
    /// (a key withdrawn since fails it), its time claims as they were then.
    pub fn reverify_bearer(
        &self,
        authorization: &http::HeaderValue,
        accepted: i64,
    ) -> Result<String, Unauthenticated> {
        let a = authorization
            .to_str()
            .map_err(|_| Unauthenticated::NotBearer)?;
        let token = bearer_token(a).ok_or(Unauthenticated::NotBearer)?;
        self.verify(token, accepted)
    }

    /// Verifies a JWT and returns the principal its claim names.
    pub fn verify(&self, token: &str, now: i64) -> Result<String, Unauthenticated> {
        let jwt = self.jwt.as_ref().ok_or(Unauthenticated::JwtDisabled)?;
        let keys = self.remote.as_ref().map_or(0, |r| r.generation());
        if let Some(v) = self.verified.get(token)
            && v.keys == keys
        {
            check_times(jwt, v.exp, v.nbf, now)?;
            return Ok(v.principal);
        }
        let mut v = self.verify_uncached(jwt, token, now)?;
        v.keys = keys;
        let principal = v.principal.clone();
        self.verified.insert(token.to_string(), v);
        Ok(principal)
    }

    fn verify_uncached(
        &self,
        jwt: &JwtConfig,
        token: &str,
        now: i64,
    ) -> Result<Verified, Unauthenticated> {
        let header =
            decode_header(token).map_err(|e| Unauthenticated::InvalidToken(e.to_string()))?;
        // Keys are pinned to one algorithm: a token's `alg` only selects
        // among keys that were configured for it.
        let remote = self.remote.as_ref().map(|r| r.keys());
        let all = self.keys.iter().chain(remote.iter().flat_map(|r| r.iter()));
        let candidates: Vec<&Key> = match &header.kid {
            Some(kid) => all
                .filter(|k| k.kid.as_deref() == Some(kid.as_str()))
                .collect(),
            None => all
                .filter(|k| k.kid.is_none() && k.alg == header.alg)
                .collect(),
        };
        if candidates.is_empty() {
            // Perhaps the provider rotated: ask for its keys again (rate
            // limited), for the next request.
            if let Some(r) = &self.remote {
                r.unknown_kid();
            }
            return Err(Unauthenticated::UnknownKey);
        }
        let mut last = Unauthenticated::UnknownKey;
        for k in candidates {
            let mut v = Validation::new(k.alg);
            // Time is checked below against the gateway's clock.
            v.validate_exp = false;
            v.validate_nbf = false;
            v.required_spec_claims.clear();
            v.validate_aud = false;
            match decode::<serde_json::Map<String, serde_json::Value>>(token, &k.key, &v) {
                Ok(data) => return check_claims(jwt, &data.claims, now),
                Err(e) => last = Unauthenticated::InvalidToken(e.to_string()),
            }
        }
        Err(last)
    }
}

fn check_times(
    jwt: &JwtConfig,
    exp: i64,
    nbf: Option<i64>,
    now: i64,
) -> Result<(), Unauthenticated> {
    if now >= exp.saturating_add(jwt.leeway_seconds) {
        return Err(Unauthenticated::Expired);
    }
    if let Some(nbf) = nbf
        && now + jwt.leeway_seconds < nbf
    {
        return Err(Unauthenticated::NotYetValid);
    }
    Ok(())
}

fn check_claims(
    jwt: &JwtConfig,
    c: &serde_json::Map<String, serde_json::Value>,
    now: i64,
) -> Result<Verified, Unauthenticated> {
    let exp = numeric_date(c, "exp")?
        .ok_or_else(|| Unauthenticated::InvalidToken("no `exp` claim".into()))?;
    let nbf = numeric_date(c, "nbf")?;
    // Not checked against the clock, but held to the same type as the others.
    numeric_date(c, "iat")?;
    check_times(jwt, exp, nbf, now)?;
    let iss = c.get("iss").and_then(serde_json::Value::as_str);
    if !jwt.issuers.is_empty() && !iss.is_some_and(|i| jwt.issuers.iter().any(|x| x == i)) {
        return Err(Unauthenticated::InvalidToken("issuer not accepted".into()));
    }
    if !jwt.audiences.is_empty() {
        let ok = match c.get("aud") {
            Some(serde_json::Value::String(a)) => jwt.audiences.contains(a),
            Some(serde_json::Value::Array(list)) => list
                .iter()
                .filter_map(serde_json::Value::as_str)
                .any(|a| jwt.audiences.iter().any(|x| x == a)),
            _ => false,
        };
        if !ok {
            return Err(Unauthenticated::InvalidToken(
                "audience not accepted".into(),
            ));
        }
    }
    let value = c
        .get(&jwt.principal_claim)
        .and_then(serde_json::Value::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            Unauthenticated::InvalidToken(format!("no `{}` claim", jwt.principal_claim))
        })?;
    Ok(Verified {
        principal: principal_of(jwt, c, iss, value)?,
        exp,
        nbf,
        keys: 0,
    })
}

/// A time claim: absent, or an integer NumericDate (RFC 7519 §2, held to
/// integers here). A float or a string is refused rather than ignored, the
/// same way for every time claim.
fn numeric_date(
    c: &serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Result<Option<i64>, Unauthenticated> {
    match c.get(name) {
        None => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| {
            Unauthenticated::InvalidToken(format!(
                "`{name}` is not an integer NumericDate (seconds since 1970)"
            ))
        }),
    }
}

/// The principal a verified token names. Only the configuration can make
/// a token name anything but a user: an exact `support` subject, or a
/// service-account mapping; otherwise the value is a username, and one
/// that spells a typed reference (`service/x`, `apikey/x`) is refused.
fn principal_of(
    jwt: &JwtConfig,
    c: &serde_json::Map<String, serde_json::Value>,
    iss: Option<&str>,
    value: &str,
) -> Result<String, Unauthenticated> {
    let from = |issuer: &Option<String>| issuer.as_deref().is_none_or(|i| Some(i) == iss);
    if jwt
        .support
        .iter()
        .any(|s| s.subject == value && from(&s.issuer))
    {
        return Ok("support".into());
    }
    for m in jwt.service_accounts.iter().filter(|m| from(&m.issuer)) {
        let id = match (&m.prefix, &m.claim) {
            (Some(prefix), _) => value.strip_prefix(prefix.as_str()).map(str::to_string),
            (None, Some(claim)) => match c.get(claim) {
                None => None,
                Some(serde_json::Value::String(id)) => Some(id.clone()),
                Some(_) => {
                    return Err(Unauthenticated::InvalidToken(format!(
                        "`{claim}` is not a string"
                    )));
                }
            },
            (None, None) => None,
        };
        if let Some(id) = id {
            if id.is_empty() || id.contains('/') {
                return Err(Unauthenticated::InvalidToken(
                    "the token names a service account id that is empty or has a '/'".into(),
                ));
            }
            return Ok(format!("service/{id}"));
        }
    }
    if value.contains('/') {
        return Err(Unauthenticated::InvalidToken(format!(
            "`{}` holds a '/': tokens name users by username (service accounts and support are mapped in identity.jwt)",
            jwt.principal_claim
        )));
    }
    Ok(format!("user/{value}"))
}

fn load_jwks(path: &PathBuf) -> Result<Vec<Key>, IdentityConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| IdentityConfigError::Jwks {
        path: path.clone(),
        problem: e.to_string(),
    })?;
    keys_of_jwks(&text).map_err(|problem| IdentityConfigError::Jwks {
        path: path.clone(),
        problem,
    })
}
