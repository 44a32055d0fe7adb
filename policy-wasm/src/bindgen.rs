//! The engine for browsers: a wasm-bindgen API over the same [`Engine`]
//! the gateway's module runs (built with `--features browser` by
//! `scripts/build-browser`; the raw ABI of `abi.rs` is left out of that
//! build). Answers are permission *hints*: the gateway stays the enforcer.

use js_sys::Reflect;
use wasm_bindgen::prelude::*;

use crate::engine::Engine;
use crate::request::{Context, Request};

#[wasm_bindgen(typescript_custom_section)]
const CONTEXT_TS: &'static str = r#"
/** What the snapshot does not know. */
export interface CheckContext {
  /** Unix seconds (default: the browser's clock). */
  now?: number;
  /** Part of a bulk operation (default false). */
  bulk?: boolean;
}
"#;

#[wasm_bindgen]
extern "C" {
    /// `{ now?: number, bulk?: boolean }`.
    #[wasm_bindgen(typescript_type = "CheckContext")]
    pub type CheckContext;
}

fn context(c: Option<CheckContext>) -> Context {
    let field = |name: &str| {
        c.as_ref()
            .and_then(|c| Reflect::get(c, &JsValue::from_str(name)).ok())
    };
    let now = field("now")
        .and_then(|v| v.as_f64())
        .unwrap_or_else(|| js_sys::Date::now() / 1000.0);
    Context {
        now: now as i64,
        bulk: field("bulk").and_then(|v| v.as_bool()).unwrap_or(false),
    }
}

/// A decision: allowed or not, the stable reason code, and a sentence to
/// show on hover.
#[wasm_bindgen]
pub struct CheckResult {
    allowed: bool,
    reason: String,
    message: String,
}

#[wasm_bindgen]
impl CheckResult {
    /// Whether the action is allowed.
    #[wasm_bindgen(getter)]
    pub fn allowed(&self) -> bool {
        self.allowed
    }

    /// The stable reason code (`grant`, `no_grant`, `account_disabled`, …).
    #[wasm_bindgen(getter)]
    pub fn reason(&self) -> String {
        self.reason.clone()
    }

    /// One sentence for people.
    #[wasm_bindgen(getter)]
    pub fn message(&self) -> String {
        self.message.clone()
    }
}

/// A loaded snapshot, ready to answer.
#[wasm_bindgen]
pub struct PolicyEngine {
    engine: Engine,
}

#[wasm_bindgen]
impl PolicyEngine {
    /// Loads a snapshot (the bytes of the gateway's `GET /-/snapshot/me`).
    /// Throws an `Error` saying why when the bytes are not a valid snapshot.
    pub fn load(bytes: &[u8]) -> Result<PolicyEngine, JsError> {
        Engine::load(bytes)
            .map(|engine| PolicyEngine { engine })
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
    ) -> CheckResult {
        let e = self.engine.explain(&Request {
            principal,
            action,
            resource,
            context: self::context(context),
        });
        CheckResult {
            allowed: e.allowed,
            reason: e.reason,
            message: e.message,
        }
    }

    /// Every action `principal` may do on `resource`.
    pub fn permissions(
        &self,
        principal: &str,
        resource: &str,
        context: Option<CheckContext>,
    ) -> Vec<String> {
        self.engine
            .permissions(principal, resource, self::context(context))
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
            .list(principal, action, kind, under, self::context(context))
            .map_err(|r| JsError::new(r.code()))
    }
}
