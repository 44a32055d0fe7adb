//! Credentials as an attacker would send them: every JWT attack the
//! hardening issue lists, API keys, and ambiguous headers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use portcullis_gateway::config::{
    IdentityConfig, JwtConfig, KeyConfig, ServiceAccountMapping, SupportSubject,
};
use portcullis_gateway::stage::identity::{
    Credential, Identity, IdentityConfigError, Unauthenticated,
};
use serde_json::{Value, json};

const NOW: i64 = 1_800_000_000;
const SECRET: &str = "test-only-hs256-secret-of-enough-length";

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/keys/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn key(kid: &str, alg: &str, file: Option<&str>) -> KeyConfig {
    KeyConfig {
        kid: Some(kid.into()),
        alg: alg.into(),
        secret: (alg == "HS256").then(|| SECRET.into()),
        pem: None,
        pem_file: file.map(|f| fixture(f).into()),
    }
}

fn identity() -> Identity {
    Identity::new(IdentityConfig {
        jwt: Some(JwtConfig {
            issuers: vec!["https://idp.example".into()],
            audiences: vec!["portcullis".into()],
            principal_claim: "sub".into(),
            service_accounts: vec![
                ServiceAccountMapping {
                    issuer: Some("https://idp.example".into()),
                    prefix: Some("svc:".into()),
                    claim: None,
                },
                ServiceAccountMapping {
                    issuer: Some("https://idp.example".into()),
                    prefix: None,
                    claim: Some("service_account".into()),
                },
            ],
            support: vec![SupportSubject {
                subject: "break-glass@vendor.example".into(),
                issuer: Some("https://idp.example".into()),
            }],
            leeway_seconds: 30,
            keys: vec![
                key("hs", "HS256", None),
                key("rsa", "RS256", Some("rsa.pub.pem")),
                key("ec", "ES256", Some("ec.pub.pem")),
                key("ed", "EdDSA", Some("ed.pub.pem")),
            ],
            jwks_file: Some(fixture("jwks.json").into()),
            jwks_url: None,
            oidc_issuer: None,
            jwks_ca_file: None,
            jwks_refresh_s: 3600,
            jwks_min_refresh_s: 30,
            jwks_timeout_ms: 10_000,
        }),
        api_key_header: "X-Api-Key".into(),
    })
    .expect("identity config")
}

fn claims() -> Value {
    json!({"sub": "olivia", "iss": "https://idp.example", "aud": "portcullis", "exp": NOW + 600, "nbf": NOW - 60})
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
    let key = match alg {
        Algorithm::HS256 => EncodingKey::from_secret(SECRET.as_bytes()),
        Algorithm::RS256 => {
            EncodingKey::from_rsa_pem(&std::fs::read(fixture("rsa.key.pem")).unwrap()).unwrap()
        }
        Algorithm::ES256 => {
            EncodingKey::from_ec_pem(&std::fs::read(fixture("ec.key.pem")).unwrap()).unwrap()
        }
        _ => EncodingKey::from_ed_pem(&std::fs::read(fixture("ed.key.pem")).unwrap()).unwrap(),
    };
    let mut h = Header::new(alg);
    h.kid = kid.map(String::from);
    encode(&h, claims, &key).unwrap()
}

fn bearer(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    h
}

fn auth(h: &HeaderMap) -> Result<Credential, Unauthenticated> {
    identity().authenticate(h, NOW)
}

#[test]
fn every_configured_algorithm_verifies() {
    for (alg, kid) in [
        (Algorithm::HS256, "hs"),
        (Algorithm::RS256, "rsa"),
        (Algorithm::ES256, "ec"),
        (Algorithm::EdDSA, "ed"),
        (Algorithm::RS256, "rsa-jwks"),
    ] {
        let t = sign(alg, Some(kid), &claims());
        assert_eq!(
            auth(&bearer(&t)),
            Ok(Credential::Token("user/olivia".into())),
            "{alg:?} {kid}"
        );
    }
}

#[test]
fn typed_principal_claims_are_refused_not_kept() {
    // Issue #12: a token used to name any principal by its spelling.
    let mut c = claims();
    c["sub"] = json!("service/ci-bot");
    assert!(matches!(
        auth(&bearer(&sign(Algorithm::HS256, Some("hs"), &c))),
        Err(Unauthenticated::InvalidToken(_))
    ));
}

#[test]
fn expiry_and_not_before_use_the_gateway_clock_with_leeway() {
    let mut c = claims();
    c["exp"] = json!(NOW - 31);
    assert_eq!(
        auth(&bearer(&sign(Algorithm::HS256, Some("hs"), &c))),
        Err(Unauthenticated::Expired)
    );
    c["exp"] = json!(NOW - 10); // within the 30 s leeway
    assert!(auth(&bearer(&sign(Algorithm::HS256, Some("hs"), &c))).is_ok());
    let mut c = claims();
    c["nbf"] = json!(NOW + 120);
    assert_eq!(
        auth(&bearer(&sign(Algorithm::HS256, Some("hs"), &c))),
        Err(Unauthenticated::NotYetValid)
    );
    let mut c = claims();
    c.as_object_mut().unwrap().remove("exp");
    assert!(matches!(
        auth(&bearer(&sign(Algorithm::HS256, Some("hs"), &c))),
        Err(Unauthenticated::InvalidToken(_))
    ));
}

#[test]
fn wrong_audience_or_issuer_is_refused() {
    let mut c = claims();
    c["aud"] = json!(["other"]);
    assert!(
        matches!(auth(&bearer(&sign(Algorithm::HS256, Some("hs"), &c))), Err(Unauthenticated::InvalidToken(m)) if m.contains("audience"))
    );
    let mut c = claims();
    c["iss"] = json!("https://evil.example");
    assert!(
        matches!(auth(&bearer(&sign(Algorithm::HS256, Some("hs"), &c))), Err(Unauthenticated::InvalidToken(m)) if m.contains("issuer"))
    );
}

#[test]
fn bad_signature_is_refused() {
    let t = sign(Algorithm::RS256, Some("rsa"), &claims());
    let (head, sig) = t.rsplit_once('.').unwrap();
    let mut sig = sig.as_bytes().to_vec();
    sig[5] = if sig[5] == b'A' { b'B' } else { b'A' };
    let forged = format!("{head}.{}", String::from_utf8(sig).unwrap());
    assert!(matches!(
        auth(&bearer(&forged)),
        Err(Unauthenticated::InvalidToken(_))
    ));
    // Claims swapped under a valid signature.
    let other = sign(
        Algorithm::RS256,
        Some("rsa"),
        &json!({"sub": "mallory", "exp": NOW + 60}),
    );
    let mut parts: Vec<&str> = t.split('.').collect();
    parts[1] = other.split('.').nth(1).unwrap();
    assert!(matches!(
        auth(&bearer(&parts.join("."))),
        Err(Unauthenticated::InvalidToken(_))
    ));
}

#[test]
fn alg_none_is_refused() {
    use base64_url as b64;
    let head = b64(br#"{"alg":"none","typ":"JWT","kid":"hs"}"#);
    let body = b64(claims().to_string().as_bytes());
    for token in [format!("{head}.{body}."), format!("{head}.{body}")] {
        assert!(auth(&bearer(&token)).is_err(), "{token}");
    }
}

#[test]
fn hs_rs_key_confusion_is_refused() {
    // Sign HS256 with the RSA *public* key as the HMAC secret, naming the RSA key.
    let public = std::fs::read(fixture("rsa.pub.pem")).unwrap();
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("rsa".into());
    let t = encode(&h, &claims(), &EncodingKey::from_secret(&public)).unwrap();
    assert!(matches!(
        auth(&bearer(&t)),
        Err(Unauthenticated::InvalidToken(_))
    ));
    // Without a kid there is no HS256 key without a kid to try: unknown key.
    let t = encode(
        &Header::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(&public),
    )
    .unwrap();
    assert_eq!(auth(&bearer(&t)), Err(Unauthenticated::UnknownKey));
}

#[test]
fn unknown_kid_is_refused() {
    assert_eq!(
        auth(&bearer(&sign(Algorithm::HS256, Some("nope"), &claims()))),
        Err(Unauthenticated::UnknownKey)
    );
}

#[test]
fn api_keys_are_hashed_never_passed_on() {
    let mut h = HeaderMap::new();
    h.insert("x-api-key", HeaderValue::from_static("pk_demo_sam_deploy"));
    assert_eq!(
        auth(&h),
        Ok(Credential::ApiKey(
            "apikey/3f50f96db4bdb3282068d277cf77e98750d393ad80b6e1d4c01e28a30fa286dd".into()
        ))
    );
}

#[test]
fn missing_ambiguous_and_malformed_credentials_are_refused() {
    assert_eq!(auth(&HeaderMap::new()), Err(Unauthenticated::Missing));
    let t = sign(Algorithm::HS256, Some("hs"), &claims());
    let mut h = bearer(&t);
    h.append(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {t}")).unwrap(),
    );
    assert!(matches!(auth(&h), Err(Unauthenticated::Ambiguous(_))));
    let mut h = bearer(&t);
    h.insert("x-api-key", HeaderValue::from_static("k"));
    assert!(matches!(auth(&h), Err(Unauthenticated::Ambiguous(_))));
    let mut h = HeaderMap::new();
    h.insert("x-api-key", HeaderValue::from_static("a"));
    h.append("x-api-key", HeaderValue::from_static("b"));
    assert!(matches!(auth(&h), Err(Unauthenticated::Ambiguous(_))));
    let mut h = HeaderMap::new();
    h.insert(
        AUTHORIZATION,
        HeaderValue::from_static("Basic b2xpdmlhOnB3"),
    );
    assert_eq!(auth(&h), Err(Unauthenticated::NotBearer));
    assert!(matches!(
        auth(&bearer("not.a.jwt")),
        Err(Unauthenticated::InvalidToken(_))
    ));
}

#[test]
fn bad_configuration_is_a_clear_startup_error() {
    let cfg = |k: KeyConfig| IdentityConfig {
        jwt: Some(JwtConfig {
            issuers: vec![],
            audiences: vec![],
            principal_claim: "sub".into(),
            service_accounts: vec![],
            support: vec![],
            leeway_seconds: 0,
            keys: vec![k],
            jwks_file: None,
            jwks_url: None,
            oidc_issuer: None,
            jwks_ca_file: None,
            jwks_refresh_s: 3600,
            jwks_min_refresh_s: 30,
            jwks_timeout_ms: 10_000,
        }),
        api_key_header: "x-api-key".into(),
    };
    let e = Identity::new(cfg(key("a", "HS512", None))).err().unwrap();
    assert!(matches!(e, IdentityConfigError::Algorithm { .. }), "{e}");
    let mut k = key("a", "RS256", None);
    k.pem_file = None;
    assert!(
        Identity::new(cfg(k))
            .err()
            .unwrap()
            .to_string()
            .contains("pem")
    );
    let mut k = key("a", "RS256", Some("rsa.pub.pem"));
    k.secret = Some("x".into());
    assert!(
        Identity::new(cfg(k))
            .err()
            .unwrap()
            .to_string()
            .contains("not a secret")
    );
    let k = key("a", "RS256", Some("missing.pem"));
    assert!(
        Identity::new(cfg(k))
            .err()
            .unwrap()
            .to_string()
            .contains("cannot read")
    );
}

fn base64_url(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(T[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

#[test]
fn a_remembered_token_still_expires_and_only_identical_tokens_hit() {
    let id = identity();
    let mut c = claims();
    c["exp"] = json!(NOW + 60);
    c["nbf"] = json!(NOW - 10);
    let token = sign(Algorithm::HS256, Some("hs"), &c);
    assert_eq!(id.verify(&token, NOW), Ok("user/olivia".into()));
    // Verified once; later uses are checked against the clock again.
    assert_eq!(id.verify(&token, NOW + 30), Ok("user/olivia".into()));
    assert_eq!(id.verify(&token, NOW + 91), Err(Unauthenticated::Expired));
    assert_eq!(
        id.verify(&token, NOW - 100),
        Err(Unauthenticated::NotYetValid)
    );
    // A forged signature on the same claims is not the cached token.
    let mut forged = token.clone().into_bytes();
    let at = forged.len() - 6;
    forged[at] = if forged[at] == b'x' { b'y' } else { b'x' };
    let forged = String::from_utf8(forged).unwrap();
    assert!(matches!(
        id.verify(&forged, NOW),
        Err(Unauthenticated::InvalidToken(_))
    ));
}

/// Issue #12, hole 2: a token names a user unless the configuration maps
/// it to a service account or to support — never by its own spelling.
#[test]
fn subjects_name_users_unless_mapped() {
    let id = identity();
    let with = |sub: &str, extra: Option<(&str, Value)>| {
        let mut c = claims();
        c["sub"] = json!(sub);
        if let Some((k, v)) = extra {
            c[k] = v;
        }
        id.verify(&sign(Algorithm::HS256, Some("hs"), &c), NOW)
    };
    assert_eq!(with("olivia", None).as_deref(), Ok("user/olivia"));
    // A subject spelled like another kind of principal is no principal.
    assert_eq!(with("support", None).as_deref(), Ok("user/support"));
    for sub in ["service/ci-bot", "apikey/abc", "user/olivia", "group/g"] {
        assert!(
            matches!(with(sub, None), Err(Unauthenticated::InvalidToken(_))),
            "{sub}"
        );
    }
    // Explicit mappings.
    assert_eq!(with("svc:ci-bot", None).as_deref(), Ok("service/ci-bot"));
    assert_eq!(
        with("anything", Some(("service_account", json!("etl")))).as_deref(),
        Ok("service/etl")
    );
    assert!(with("x", Some(("service_account", json!(7)))).is_err());
    assert_eq!(
        with("break-glass@vendor.example", None).as_deref(),
        Ok("support")
    );
    // The mappings are per issuer.
    let mut other = claims();
    other["iss"] = json!("https://other.example");
    other["sub"] = json!("break-glass@vendor.example");
    let mut open = identity_with_issuers(vec![]);
    assert_eq!(
        open.verify(&sign(Algorithm::HS256, Some("hs"), &other), NOW)
            .as_deref(),
        Ok("user/break-glass@vendor.example")
    );
    other["sub"] = json!("svc:ci-bot");
    open = identity_with_issuers(vec![]);
    assert_eq!(
        open.verify(&sign(Algorithm::HS256, Some("hs"), &other), NOW)
            .as_deref(),
        Ok("user/svc:ci-bot")
    );
}

fn identity_with_issuers(issuers: Vec<String>) -> Identity {
    Identity::new(IdentityConfig {
        jwt: Some(JwtConfig {
            issuers,
            audiences: vec![],
            principal_claim: "sub".into(),
            service_accounts: vec![ServiceAccountMapping {
                issuer: Some("https://idp.example".into()),
                prefix: Some("svc:".into()),
                claim: None,
            }],
            support: vec![SupportSubject {
                subject: "break-glass@vendor.example".into(),
                issuer: Some("https://idp.example".into()),
            }],
            leeway_seconds: 30,
            keys: vec![key("hs", "HS256", None)],
            jwks_file: None,
            jwks_url: None,
            oidc_issuer: None,
            jwks_ca_file: None,
            jwks_refresh_s: 3600,
            jwks_min_refresh_s: 30,
            jwks_timeout_ms: 10_000,
        }),
        api_key_header: "x-api-key".into(),
    })
    .expect("identity config")
}

/// Issue #12, hole 5: every time claim is an integer NumericDate, or the
/// token is refused — `exp`, `nbf` and `iat` alike.
#[test]
fn time_claims_of_the_wrong_type_are_refused() {
    let id = identity();
    for (claim, value) in [
        ("exp", json!((NOW + 600) as f64 + 0.5)),
        ("exp", json!((NOW + 600).to_string())),
        ("nbf", json!((NOW + 3600) as f64 + 0.5)),
        ("nbf", json!((NOW + 3600).to_string())),
        ("nbf", json!((NOW - 60) as f64 + 0.5)),
        ("nbf", json!(null)),
        ("iat", json!("yesterday")),
        ("iat", json!(1.5)),
    ] {
        let mut c = claims();
        c[claim] = value.clone();
        assert!(
            matches!(
                id.verify(&sign(Algorithm::HS256, Some("hs"), &c), NOW),
                Err(Unauthenticated::InvalidToken(_))
            ),
            "{claim} = {value}"
        );
    }
    let mut c = claims();
    c["iat"] = json!(NOW - 10);
    assert!(
        id.verify(&sign(Algorithm::HS256, Some("hs"), &c), NOW)
            .is_ok()
    );
}

/// Break-glass is bound to an issuer: a `support` subject without one is
/// refused when any issuer is accepted.
#[test]
fn a_support_subject_needs_an_issuer_when_any_issuer_is_accepted() {
    let cfg = |issuers: Vec<String>| IdentityConfig {
        jwt: Some(JwtConfig {
            issuers,
            audiences: vec![],
            principal_claim: "sub".into(),
            service_accounts: vec![],
            support: vec![SupportSubject {
                subject: "break-glass@vendor.example".into(),
                issuer: None,
            }],
            leeway_seconds: 0,
            keys: vec![key("hs", "HS256", None)],
            jwks_file: None,
            jwks_url: None,
            oidc_issuer: None,
            jwks_ca_file: None,
            jwks_refresh_s: 3600,
            jwks_min_refresh_s: 30,
            jwks_timeout_ms: 10_000,
        }),
        api_key_header: "x-api-key".into(),
    };
    let e = Identity::new(cfg(vec![])).err().unwrap();
    assert!(matches!(e, IdentityConfigError::Mapping { .. }), "{e}");
    assert!(e.to_string().contains("issuer"), "{e}");
    assert!(Identity::new(cfg(vec!["https://idp.example".into()])).is_ok());
}

#[test]
fn a_scim_bearer_token_that_is_no_jwt_is_an_api_keys_secret() {
    let id = identity();
    let mut h = HeaderMap::new();
    h.insert(
        "authorization",
        HeaderValue::from_static("Bearer pk_demo_sam_deploy"),
    );
    assert_eq!(
        id.authenticate_bearer_keys(&h, NOW),
        Ok(Credential::ApiKey(
            "apikey/3f50f96db4bdb3282068d277cf77e98750d393ad80b6e1d4c01e28a30fa286dd".into()
        ))
    );
    // Only there: the gateway's own reading is unchanged.
    assert!(!matches!(auth(&h), Ok(Credential::ApiKey(_))));
    h.insert("x-api-key", HeaderValue::from_static("other"));
    assert!(matches!(
        id.authenticate_bearer_keys(&h, NOW),
        Err(Unauthenticated::Ambiguous(_))
    ));
}
