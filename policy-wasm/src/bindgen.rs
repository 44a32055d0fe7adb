//! The engine for browsers: a wasm-bindgen API over the same [`Engine`]
//! the gateway's module runs (built with `--features browser` by
//! `scripts/build-browser`; the raw ABI of `abi.rs` is left out of that
//! build). Answers are permission *hints*: the gateway stays the enforcer.

use std::rc::Rc;

use js_sys::{Function, Promise, Reflect, Uint8Array};
use portcullis_snapshots::header::HEADER_LEN;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::engine::Engine;
use crate::question::{QuestionContext, parse_time};
use crate::request::{Context, Request};

#[wasm_bindgen(typescript_custom_section)]
const CONTEXT_TS: &'static str = r#"
/** What the snapshot does not know: the request format's context
 * (policy-wasm/README.md). Other fields are errors. */
export interface CheckContext {
  /** RFC 3339 ("2026-11-23T00:00:00Z") or integer Unix seconds
   * (default: the browser's clock). */
  now?: number | string;
  /** Part of a bulk operation (default false). */
  bulk?: boolean;
}
"#;

#[wasm_bindgen]
extern "C" {
    /// `{ now?: number | string, bulk?: boolean }`.
    #[wasm_bindgen(typescript_type = "CheckContext")]
    pub type CheckContext;
}

// `browser/context.js`: the common contexts, read where reading an object
// is cheap (see there).
#[wasm_bindgen(module = "/browser/context.js")]
extern "C" {
    fn portcullis_context(c: &JsValue) -> f64;
}

/// Reads a context the way the request format is read everywhere
/// (`crate::question`): `now` RFC 3339 or integer seconds, unknown fields
/// refused. Not inlined: every method reads a context, and one copy of
/// this is enough.
#[inline(never)]
fn context(c: Option<CheckContext>) -> Result<Context, JsError> {
    let clock = || (js_sys::Date::now() / 1000.0) as i64;
    let value: JsValue = match c {
        Some(c) => c.into(),
        None => return Ok(QuestionContext::default().at(clock())),
    };
    let fast = portcullis_context(&value);
    if fast == f64::INFINITY {
        return Ok(QuestionContext::default().at(clock()));
    }
    if fast.is_finite() {
        let now = (fast / 2.0).floor();
        return Ok(Context {
            now: now as i64,
            bulk: fast - 2.0 * now == 1.0,
        });
    }
    // Anything else, read here, where every mistake is named.
    let clock = clock();
    if value.is_undefined() || value.is_null() {
        return Ok(QuestionContext::default().at(clock));
    }
    if !value.is_object() {
        return Err(JsError::new("the context is an object: { now?, bulk? }"));
    }
    let mut q = QuestionContext::default();
    for key in js_sys::Object::keys(value.unchecked_ref::<js_sys::Object>()).iter() {
        let name = key.as_string().unwrap_or_default();
        let v = Reflect::get(&value, &key).unwrap_or(JsValue::UNDEFINED);
        match name.as_str() {
            _ if v.is_undefined() => {}
            "now" => {
                q.now = Some(match (v.as_f64(), v.as_string()) {
                    (Some(f), _) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 => {
                        f as i64
                    }
                    (_, Some(text)) => parse_time(&text).map_err(|e| JsError::new(&e))?,
                    _ => {
                        return Err(JsError::new(
                            "`now` is an RFC 3339 timestamp or integer Unix seconds",
                        ));
                    }
                });
            }
            "bulk" => {
                q.bulk = v
                    .as_bool()
                    .ok_or_else(|| JsError::new("`bulk` is true or false"))?;
            }
            other => {
                return Err(JsError::new(&format!(
                    "unknown field `{other}` in the context, expected `now` or `bulk`"
                )));
            }
        }
    }
    Ok(q.at(clock))
}

/// With trusted keys, the snapshot's header must be signed by one of them
/// (the body is checked against the header's hash when it is decoded).
const WARM: &[u8] = include_bytes!("../browser/warm.snap");

/// Runs once when the module is instantiated (in `init()`): loads a tiny
/// built-in snapshot (`policy-wasm/browser/warm.snap`, built from
/// `warm.json`) and asks it a question. Browsers compile WebAssembly
/// functions lazily, on their first call, so without this the page's first
/// real load paid for compiling the decoder, the indexes and the rules
/// (4–6 ms for a 767-byte view); now `init()` does.
#[wasm_bindgen(start)]
fn warm_up() {
    if let Ok(engine) = Engine::load(WARM) {
        let req = Request {
            principal: "user/u",
            action: "read",
            resource: "catalog/c",
            context: Context::default(),
        };
        let decision = engine.check(&req);
        let _ = engine.explain_decision(&req, &decision);
        let _ = engine.permissions("user/u", "catalog/c", Context::default());
    }
    // And the asynchronous path (WebCrypto's digest and the promise glue),
    // which `loadAsync` takes.
    wasm_bindgen_futures::spawn_local(async {
        let _ = PolicyEngine::load_async(Uint8Array::from(WARM), None).await;
    });
}

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): the raw
/// key's 32 bytes follow it.
const SPKI_ED25519: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// A trusted key: 64 hex digits, or an SPKI PEM (`portcullis snapshot
/// keygen`'s `.pub`).
fn public_key(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    let mut key = [0u8; 32];
    if hex::decode_to_slice(text, &mut key).is_ok() {
        return Some(key);
    }
    let b64: String = text
        .strip_prefix("-----BEGIN PUBLIC KEY-----")?
        .trim_end()
        .strip_suffix("-----END PUBLIC KEY-----")?
        .split_whitespace()
        .collect();
    // The browser's own base64 decoder (`atob`): a binary string.
    let atob: Function = Reflect::get(&js_sys::global(), &JsValue::from_str("atob"))
        .ok()?
        .dyn_into()
        .ok()?;
    let der: Vec<u8> = atob
        .call1(&JsValue::NULL, &JsValue::from_str(&b64))
        .ok()?
        .as_string()?
        .chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect::<Option<_>>()?;
    let raw = der.strip_prefix(&SPKI_ED25519)?;
    key.copy_from_slice(raw.get(..32).filter(|_| raw.len() == 32)?);
    Some(key)
}

/// The trusted keys, or none when the caller gave none.
fn trusted(keys: Option<Vec<String>>) -> Result<Vec<[u8; 32]>, JsError> {
    keys.unwrap_or_default()
        .iter()
        .map(|k| {
            public_key(k).ok_or_else(|| {
                JsError::new(
                    "trustedKeys: each key is an Ed25519 public key, as SPKI PEM or 64 hex digits",
                )
            })
        })
        .collect()
}

/// Calls `crypto.subtle[method](...args)` and awaits its promise.
async fn subtle(method: &str, args: &[JsValue]) -> Result<JsValue, JsValue> {
    let get = |o: &JsValue, k: &str| Reflect::get(o, &JsValue::from_str(k));
    let crypto = get(&js_sys::global(), "crypto")?;
    let subtle = get(&crypto, "subtle")?;
    let f: Function = get(&subtle, method)?.dyn_into()?;
    let args: js_sys::Array = args.iter().collect();
    let promise: Promise = Reflect::apply(&f, &subtle, &args)?.dyn_into()?;
    JsFuture::from(promise).await
}

/// Checks that `bytes` is signed by one of `keys`, with the browser's
/// WebCrypto (Ed25519: Chrome 137, Firefox 129, Safari 17 and later) — the
/// same bytes `portcullis_snapshots::signature` signs, without shipping an
/// Ed25519 implementation in the package.
async fn verify_signature(bytes: &[u8], keys: &[[u8; 32]]) -> Result<(), JsError> {
    use portcullis_snapshots::header::{signature_trailer, signed_message};
    let header =
        portcullis_snapshots::Header::parse(bytes).map_err(|e| JsError::new(&e.to_string()))?;
    let Some((signer, signature)) =
        signature_trailer(bytes, &header).filter(|_| header.is_signed())
    else {
        return Err(JsError::new(
            "the snapshot is not signed, and trustedKeys requires a signature: the gateway signs views with snapshot.browser_signing_key",
        ));
    };
    if !keys.contains(&signer) {
        return Err(JsError::new(&format!(
            "the snapshot is signed by key {}, which is not trusted: pass its public key in trustedKeys",
            hex::encode(signer)
        )));
    }
    let message = signed_message(bytes.get(..HEADER_LEN).unwrap_or_default());
    let algorithm = js_sys::Object::new();
    let _ = Reflect::set(&algorithm, &"name".into(), &"Ed25519".into());
    let unsupported = |e: JsValue| {
        JsError::new(&format!(
            "this browser cannot verify Ed25519 signatures with WebCrypto ({}): load without trustedKeys, or use a browser that can",
            e.as_string()
                .or_else(|| js_sys::Error::from(e).message().as_string())
                .unwrap_or_default()
        ))
    };
    let key = subtle(
        "importKey",
        &[
            "raw".into(),
            Uint8Array::from(&signer[..]).into(),
            algorithm.clone().into(),
            false.into(),
            std::iter::once(JsValue::from("verify"))
                .collect::<js_sys::Array>()
                .into(),
        ],
    )
    .await
    .map_err(unsupported)?;
    let valid = subtle(
        "verify",
        &[
            algorithm.into(),
            key,
            Uint8Array::from(&signature[..]).into(),
            Uint8Array::from(&message[..]).into(),
        ],
    )
    .await
    .map_err(unsupported)?;
    if valid.as_bool() == Some(true) {
        Ok(())
    } else {
        Err(JsError::new(
            "the snapshot's signature does not verify: it was changed after signing or signed wrongly; do not load it",
        ))
    }
}

/// `crypto.subtle.digest("SHA-256", body)`, or None where the page has no
/// WebCrypto.
fn webcrypto_digest(body: &Uint8Array) -> Option<Promise> {
    let get = |o: &JsValue, k: &str| Reflect::get(o, &JsValue::from_str(k)).ok();
    let subtle = get(&js_sys::global(), "crypto").and_then(|c| get(&c, "subtle"))?;
    let digest: Function = get(&subtle, "digest")?.dyn_into().ok()?;
    digest
        .call2(&subtle, &JsValue::from_str("SHA-256"), body)
        .ok()?
        .dyn_into()
        .ok()
}

/// A decision: allowed or not, the stable reason code, and a sentence to
/// show on hover.
#[wasm_bindgen]
pub struct CheckResult {
    decision: crate::Decision,
    /// The request, kept to write the message if it is asked for (most
    /// callers only read `allowed`): principal, action and resource, with
    /// the ends of the first two.
    request: String,
    ends: (usize, usize),
    engine: Rc<Engine>,
}

impl CheckResult {
    fn parts(&self) -> (&str, &str, &str) {
        let (a, b) = self.ends;
        (
            self.request.get(..a).unwrap_or_default(),
            self.request.get(a..b).unwrap_or_default(),
            self.request.get(b..).unwrap_or_default(),
        )
    }
}

#[wasm_bindgen]
impl CheckResult {
    /// Whether the action is allowed.
    #[wasm_bindgen(getter)]
    pub fn allowed(&self) -> bool {
        self.decision.allowed
    }

    /// The stable reason code (`grant`, `no_grant`, `account_disabled`, …).
    #[wasm_bindgen(getter)]
    pub fn reason(&self) -> String {
        self.decision.reason.code().to_string()
    }

    /// One sentence for people (written when asked for).
    #[wasm_bindgen(getter)]
    pub fn message(&self) -> String {
        let (principal, action, resource) = self.parts();
        let req = Request {
            principal,
            action,
            resource,
            context: Context::default(),
        };
        self.engine.explain_decision(&req, &self.decision).message
    }
}

/// A loaded snapshot, ready to answer.
#[wasm_bindgen]
pub struct PolicyEngine {
    /// Shared with the results of `check`, which write their message on
    /// demand.
    engine: Rc<Engine>,
}

#[wasm_bindgen]
impl PolicyEngine {
    /// Loads a snapshot (the bytes of the gateway's `GET /-/snapshot/me`).
    /// Throws an `Error` saying why when the bytes are not a valid snapshot.
    ///
    /// Signatures are checked by `loadAsync` only (the browser's WebCrypto
    /// verifies them, asynchronously): with `trustedKeys`, `load` throws
    /// and says so.
    pub fn load(
        bytes: &[u8],
        #[wasm_bindgen(js_name = trustedKeys)] trusted_keys: Option<Vec<String>>,
    ) -> Result<PolicyEngine, JsError> {
        if !trusted(trusted_keys)?.is_empty() {
            return Err(JsError::new(
                "checking signatures needs loadAsync(bytes, trustedKeys): the browser verifies Ed25519 with WebCrypto, which is asynchronous",
            ));
        }
        Engine::load(bytes)
            .map(|engine| PolicyEngine {
                engine: Rc::new(engine),
            })
            .map_err(|e| JsError::new(&e.to_string()))
    }

    /// [`PolicyEngine::load`], faster: the snapshot's SHA-256 (most of a
    /// load's time in WebAssembly) is computed by the browser's native
    /// WebCrypto. Where WebCrypto is missing (pages not served over HTTPS
    /// or from localhost) it hashes in WebAssembly like `load`. Rejects with
    /// an `Error` saying why when the bytes are not a valid snapshot.
    #[wasm_bindgen(js_name = loadAsync)]
    pub async fn load_async(
        bytes: Uint8Array,
        #[wasm_bindgen(js_name = trustedKeys)] trusted_keys: Option<Vec<String>>,
    ) -> Result<PolicyEngine, JsError> {
        // Copied and handed to WebCrypto (which copies too) before the first
        // await, so both see the same bytes even if the caller reuses its array.
        let copy = bytes.to_vec();
        let keys = trusted(trusted_keys)?;
        if !keys.is_empty() {
            verify_signature(&copy, &keys).await?;
        }
        // The body only: a signed snapshot's trailer follows it. A header
        // that does not parse is reported by the load below.
        let digest = match portcullis_snapshots::Header::parse(&copy) {
            Ok(h) => {
                webcrypto_digest(&bytes.subarray(HEADER_LEN as u32, h.body_range().end as u32))
            }
            Err(_) => None,
        };
        let digest = match digest {
            Some(pending) => JsFuture::from(pending).await.ok().and_then(|d| {
                let d = Uint8Array::new(&d);
                let mut out = [0u8; 32];
                (d.length() == 32).then(|| {
                    d.copy_to(&mut out);
                    out
                })
            }),
            None => None,
        };
        match digest {
            Some(d) => Engine::load_with_digest(&copy, d),
            None => Engine::load(&copy),
        }
        .map(|engine| PolicyEngine {
            engine: Rc::new(engine),
        })
        .map_err(|e| JsError::new(&e.to_string()))
    }

    /// The snapshot's revision.
    #[wasm_bindgen(getter)]
    pub fn revision(&self) -> f64 {
        self.engine.revision() as f64
    }

    /// May `principal` do `action` on `resource`?
    pub fn check(
        &self,
        principal: &str,
        action: &str,
        resource: &str,
        context: Option<CheckContext>,
    ) -> Result<CheckResult, JsError> {
        let decision = self.engine.check(&Request {
            principal,
            action,
            resource,
            context: self::context(context)?,
        });
        let mut request = String::with_capacity(principal.len() + action.len() + resource.len());
        request.push_str(principal);
        request.push_str(action);
        request.push_str(resource);
        Ok(CheckResult {
            decision,
            request,
            ends: (principal.len(), principal.len() + action.len()),
            engine: Rc::clone(&self.engine),
        })
    }

    pub fn permissions(
        &self,
        principal: &str,
        resource: &str,
        context: Option<CheckContext>,
    ) -> Result<Vec<String>, JsError> {
        Ok(self
            .engine
            .permissions(principal, resource, self::context(context)?))
    }

    /// Whether the snapshot is one principal's view (what
    /// `GET /-/snapshot/me` serves) rather than a whole directory.
    #[wasm_bindgen(getter, js_name = isView)]
    pub fn is_view(&self) -> bool {
        self.engine.is_view()
    }

    /// The usernames the snapshot holds: in a view, the principal and the
    /// people it may act on (an administrator's users), nobody else.
    pub fn people(&self) -> Vec<String> {
        self.engine.people()
    }

    /// What the snapshot holds: `{ users, organizations, environments,
    /// catalogs, objects, teams, groups, grants, permissions }`.
    pub fn counts(&self) -> js_sys::Object {
        let c = self.engine.counts();
        let out = js_sys::Object::new();
        for (k, v) in [
            ("users", c.users),
            ("organizations", c.organizations),
            ("environments", c.environments),
            ("catalogs", c.catalogs),
            ("objects", c.objects),
            ("teams", c.teams),
            ("groups", c.groups),
            ("grants", c.grants),
            ("permissions", c.permissions),
        ] {
            let _ = Reflect::set(&out, &JsValue::from_str(k), &JsValue::from_f64(v as f64));
        }
        out
    }

    /// `permissions` for many resources in one call (a page of them): one
    /// array of allowed actions per resource, in order. One crossing into
    /// WebAssembly and one reading of the context for the whole page.
    #[wasm_bindgen(js_name = permissionsMany)]
    pub fn permissions_many(
        &self,
        principal: &str,
        resources: Vec<String>,
        context: Option<CheckContext>,
    ) -> Result<js_sys::Array, JsError> {
        let context = self::context(context)?;
        Ok(resources
            .iter()
            .map(|r| {
                self.engine
                    .permissions(principal, r, context)
                    .iter()
                    .map(|a| JsValue::from_str(a))
                    .collect::<js_sys::Array>()
            })
            .collect())
    }

    /// Whether `principal` may do `actions[i]` on `resources[i]`, for every
    /// `i`: one byte per pair, 1 allowed, 0 denied (ask `check` for the
    /// reason of the ones a page explains). For drawing many controls at
    /// once; throws if the arrays differ in length.
    #[wasm_bindgen(js_name = checkMany)]
    pub fn check_many(
        &self,
        principal: &str,
        actions: Vec<String>,
        resources: Vec<String>,
        context: Option<CheckContext>,
    ) -> Result<Vec<u8>, JsError> {
        if actions.len() != resources.len() {
            return Err(JsError::new(
                "checkMany takes as many actions as resources (one pair per check)",
            ));
        }
        let context = self::context(context)?;
        Ok(actions
            .iter()
            .zip(&resources)
            .map(|(action, resource)| {
                u8::from(
                    self.engine
                        .check(&Request {
                            principal,
                            action,
                            resource,
                            context,
                        })
                        .allowed,
                )
            })
            .collect())
    }

    /// The nodes of `kind` (`org`, `env`, `catalog`, `object`, `team`) at or
    /// below `under` on which `principal` may do `action`. Throws an `Error`
    /// with the reason code when the principal or node is unknown.
    pub fn list(
        &self,
        principal: &str,
        action: &str,
        kind: &str,
        under: &str,
        context: Option<CheckContext>,
    ) -> Result<Vec<String>, JsError> {
        self.engine
            .list(principal, action, kind, under, self::context(context)?)
            .map_err(|r| JsError::new(r.code()))
    }
}
