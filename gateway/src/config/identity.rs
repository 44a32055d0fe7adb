//! `[identity]`: how credentials are read — bearer tokens (keys inline,
//! from a JWKS file, or from the identity provider), API keys, and which
//! tokens name service accounts or the break-glass `support` principal.
//! Checked and built by `stage::identity`.

use std::path::PathBuf;

use serde::Deserialize;

/// The `[identity]` section of the gateway configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// JWT bearer tokens; absent: bearer tokens are refused.
    #[serde(default)]
    pub jwt: Option<JwtConfig>,
    /// Header carrying API keys (default `x-api-key`); the key's SHA-256
    /// is looked up in the snapshot.
    #[serde(default = "default_api_key_header")]
    pub api_key_header: String,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            jwt: None,
            api_key_header: default_api_key_header(),
        }
    }
}

fn default_api_key_header() -> String {
    "x-api-key".into()
}

/// How bearer tokens are verified.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// Accepted issuers (`iss`); empty accepts any.
    #[serde(default)]
    pub issuers: Vec<String>,
    /// Accepted audiences (`aud`); empty accepts any.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// The claim naming the principal (default `sub`). Its value is a
    /// username (`user/<value>`) unless `service_accounts` or `support`
    /// say otherwise; a value with a `/` is refused, so a token can never
    /// name a principal of another kind by itself.
    #[serde(default = "default_claim")]
    pub principal_claim: String,
    /// Which tokens name service accounts (`service/<id>`), per issuer.
    #[serde(default)]
    pub service_accounts: Vec<ServiceAccountMapping>,
    /// The exact subjects that are the break-glass `support` principal.
    #[serde(default)]
    pub support: Vec<SupportSubject>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds (default 30).
    #[serde(default = "default_leeway")]
    pub leeway_seconds: i64,
    /// Keys given inline or as files.
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
    /// A JWKS file (`{"keys": [...]}`).
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// The identity provider's keys at a URL (its `jwks_uri`), fetched at
    /// start, refreshed every `jwks_refresh_s` and on a token with an
    /// unknown `kid` (at most once per `jwks_min_refresh_s`); the last good
    /// set is kept while the provider is unreachable.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// OIDC discovery: the provider's issuer URL; its
    /// `/.well-known/openid-configuration` names the `jwks_uri` (and the
    /// issuer is accepted as `iss`).
    #[serde(default)]
    pub oidc_issuer: Option<String>,
    /// CA certificates (PEM) for the provider's HTTPS; default: the
    /// system's roots.
    #[serde(default)]
    pub jwks_ca_file: Option<PathBuf>,
    /// Seconds between refreshes of remote keys (default 3600).
    #[serde(default = "default_jwks_refresh")]
    pub jwks_refresh_s: u64,
    /// Least seconds between two fetches, however many unknown `kid`s
    /// arrive (default 30): a flood of forged tokens cannot hammer the
    /// provider.
    #[serde(default = "default_jwks_min_refresh")]
    pub jwks_min_refresh_s: u64,
    /// Time one fetch of the keys (or of the discovery document) may take
    /// as a whole — connect, TLS, headers, body — before it is abandoned
    /// (default 10 000 ms).
    #[serde(default = "default_jwks_timeout")]
    pub jwks_timeout_ms: u64,
}

fn default_jwks_timeout() -> u64 {
    10_000
}

fn default_jwks_refresh() -> u64 {
    3600
}

fn default_jwks_min_refresh() -> u64 {
    30
}

/// Tokens that name service accounts: from one issuer (or any accepted
/// one), either those whose principal claim starts with `prefix` (the rest
/// is the service account's id) or those carrying `claim` (its value is
/// the id). Exactly one of `prefix` and `claim`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceAccountMapping {
    /// The issuer (`iss`) this mapping is for; absent: every accepted issuer.
    #[serde(default)]
    pub issuer: Option<String>,
    /// A prefix of the principal claim's value, e.g. `svc:`.
    #[serde(default)]
    pub prefix: Option<String>,
    /// A claim whose string value is the service account's id.
    #[serde(default)]
    pub claim: Option<String>,
}

/// A subject that is the `support` principal: the principal claim's exact
/// value, from one issuer (or any accepted one).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupportSubject {
    /// The principal claim's value.
    pub subject: String,
    /// The issuer it must come from; absent: every issuer listed in
    /// `issuers` (required when that list is empty).
    #[serde(default)]
    pub issuer: Option<String>,
}

fn default_claim() -> String {
    "sub".into()
}

fn default_leeway() -> i64 {
    30
}

/// One verification key.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// Key id (`kid`) tokens name it by; without one, the key is tried for
    /// tokens without a `kid` whose `alg` matches.
    #[serde(default)]
    pub kid: Option<String>,
    /// `HS256`, `RS256`, `ES256` or `EdDSA`.
    pub alg: String,
    /// HS256 shared secret.
    #[serde(default)]
    pub secret: Option<String>,
    /// PEM public key (RS256, ES256, EdDSA), inline.
    #[serde(default)]
    pub pem: Option<String>,
    /// PEM public key, from a file.
    #[serde(default)]
    pub pem_file: Option<PathBuf>,
}
