//! `X-Portcullis-Assertion` (issue #15, part 4): on a route with
//! `assertion = true` the upstream gets a JWT the gateway signed (EdDSA)
//! naming the principal, the route, action and resource, the revision, the
//! upstream as audience and a short expiry; the public keys — the signing
//! one and those being retired — are at `/.well-known/jwks.json` on the
//! admin listener; an upstream verifies it as `docs/gateway.md` shows
//! (the Rust lines below, and the Python ones when `cryptography` is
//! installed). A client cannot send one of its own.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

mod common;
use common::*;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use portcullis_gateway::config::{AssertionConfig, AssertionKey};
use portcullis_snapshots::signature::{generate, private_pem, public_pem};
use serde_json::Value;

const TABLE: &str = "/envs/prod/catalogs/sales/tables/orders";

/// How an upstream verifies an assertion (docs/gateway.md, "Signed
/// identity"): the key its `kid` names in the gateway's JWK Set; EdDSA
/// only; the gateway as issuer, this upstream as audience; not expired.
fn verify(token: &str, jwks: &JwkSet, upstream: &str) -> Result<Value, String> {
    let kid = decode_header(token)
        .map_err(|e| e.to_string())?
        .kid
        .ok_or("no kid")?;
    let jwk = jwks.find(&kid).ok_or("unknown kid")?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut rules = Validation::new(Algorithm::EdDSA);
    rules.set_issuer(&["portcullis-test"]);
    rules.set_audience(&[upstream]);
    rules.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    decode::<Value>(token, &key, &rules)
        .map(|t| t.claims)
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstreams_get_an_assertion_they_can_verify() {
    let (current, retiring, stranger) = (
        generate().unwrap(),
        generate().unwrap(),
        generate().unwrap(),
    );
    let gw = gateway_with(Some(revision(1)), |c, dir| {
        let new = dir.join("assertion-new.pem");
        std::fs::write(&new, private_pem(&current).unwrap()).unwrap();
        let old = dir.join("assertion-old.pub");
        std::fs::write(&old, public_pem(&retiring.verifying_key()).unwrap()).unwrap();
        c.assertion = Some(AssertionConfig {
            issuer: "portcullis-test".into(),
            ttl_s: 60,
            keys: vec![
                AssertionKey {
                    kid: "2026-11".into(),
                    private_key: Some(new),
                    public_key: None,
                },
                AssertionKey {
                    kid: "2026-10".into(),
                    private_key: None,
                    public_key: Some(old),
                },
            ],
        });
        for r in c
            .routes
            .iter_mut()
            .filter(|r| matches!(r.name.as_deref(), Some("read-table" | "sso-settings")))
        {
            r.assertion = true;
        }
    })
    .await;
    let (status, body) = gw.admin_get("/.well-known/jwks.json").await;
    assert_eq!(status, http::StatusCode::OK, "{body}");
    let jwks: JwkSet = serde_json::from_str(&body).unwrap();
    let kids: Vec<_> = jwks
        .keys
        .iter()
        .filter_map(|k| k.common.key_id.clone())
        .collect();
    assert_eq!(
        kids,
        ["2026-11", "2026-10"],
        "the signing key and the one being retired"
    );

    // A client's own assertion is not passed on; the gateway's is.
    let a = gw
        .get(
            TABLE,
            &[
                ("authorization", &bearer("pat")),
                ("x-portcullis-assertion", "forged.by.client"),
            ],
        )
        .await;
    assert_eq!(a.status, http::StatusCode::OK, "{}", a.body);
    let token = a.body["x-portcullis-assertion"]
        .as_str()
        .expect("an assertion")
        .to_string();
    assert_ne!(token, "forged.by.client");
    let claims = verify(&token, &jwks, "app").expect("verifies");
    assert_eq!(claims["sub"], "user/pat");
    assert_eq!(claims["iss"], "portcullis-test");
    assert_eq!(claims["aud"], "app");
    assert_eq!(claims["route"], "read-table");
    assert_eq!(claims["action"], "read");
    assert_eq!(claims["resource"], "catalog/sales");
    assert_eq!(claims["rev"], 1);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        60
    );
    assert!(claims.get("acting_as").is_none());
    assert_eq!(
        decode_header(&token).unwrap().kid.as_deref(),
        Some("2026-11")
    );

    // For another upstream, or tampered with, or signed by a key the
    // gateway does not publish: refused.
    assert!(verify(&token, &jwks, "billing").is_err());
    let mut tampered = token.clone();
    tampered.replace_range(tampered.len() - 4.., "AAAA");
    assert!(verify(&tampered, &jwks, "app").is_err());
    let mut header = jsonwebtoken::Header::new(Algorithm::EdDSA);
    header.kid = Some("2026-11".into());
    let forged = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ed_pem(private_pem(&stranger).unwrap().as_bytes())
            .unwrap(),
    )
    .unwrap();
    assert!(verify(&forged, &jwks, "app").is_err());

    // An API key: the key is the subject, and the user it acts as is
    // asserted too.
    let a = gw
        .get(
            "/orgs/acme/sso",
            &[("x-api-key", portcullis_demo::DEMO_API_KEY)],
        )
        .await;
    assert_eq!(a.status, http::StatusCode::OK, "{}", a.body);
    let claims = verify(
        a.body["x-portcullis-assertion"]
            .as_str()
            .unwrap_or_else(|| panic!("{}", a.body)),
        &jwks,
        "app",
    )
    .unwrap();
    assert!(
        claims["sub"].as_str().unwrap().starts_with("apikey/"),
        "{claims}"
    );
    assert_eq!(claims["acting_as"], "user/sam");
    assert_eq!(claims["route"], "sso-settings");

    // A route without `assertion = true` sends none — and not the client's.
    let a = gw
        .get(
            "/users/pat",
            &[
                ("authorization", &bearer("pat")),
                ("x-portcullis-assertion", "forged.by.client"),
            ],
        )
        .await;
    assert!(a.body["x-portcullis-assertion"].is_null(), "{}", a.body);

    // The Python lines of docs/gateway.md, where `cryptography` is there.
    let python = r#"
import base64, json, sys, time
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
def b64(s): return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
def verify(token, jwks, audience):
    head, body, sig = token.split(".")
    header, claims = json.loads(b64(head)), json.loads(b64(body))
    if header.get("alg") != "EdDSA": raise ValueError("not EdDSA")
    jwk = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    Ed25519PublicKey.from_public_bytes(b64(jwk["x"])).verify(b64(sig), f"{head}.{body}".encode())
    if claims["aud"] != audience or claims["exp"] < time.time(): raise ValueError("not for us, or expired")
    return claims
token, jwks = sys.argv[1], json.loads(sys.argv[2])
print(verify(token, jwks, "app")["sub"])
try:
    verify(token[:-4] + "AAAA", jwks, "app"); print("tampered accepted")
except Exception:
    print("tampered refused")
"#;
    let has_cryptography = std::process::Command::new("python3")
        .args(["-c", "import cryptography"])
        .status()
        .is_ok_and(|s| s.success());
    if has_cryptography {
        let out = std::process::Command::new("python3")
            .args(["-c", python, &token, &body])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "user/pat\ntampered refused",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        eprintln!("python3 without `cryptography`: the Python verification was not run");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_keys_there_is_no_jwks_and_no_assertion_route() {
    let gw = gateway().await;
    let (status, _) = gw.admin_get("/.well-known/jwks.json").await;
    assert_eq!(status, http::StatusCode::NOT_FOUND);
    let dir = tempfile::tempdir().unwrap();
    let mut config = demo_gateway_config(dir.path()).await;
    config.routes[0].assertion = true;
    let err = portcullis_gateway::server::start(config, Some(revision(1)))
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("no [assertion] section"), "{err}");
}
