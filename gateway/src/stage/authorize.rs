//! Credential + (action, resource) → decision, through the WebAssembly
//! engine of the current snapshot generation.
//!
//! The fast path is one `check` call. The engine is asked to `explain`
//! only when the answer needs strings: a denial (its 403 body carries the
//! message) or an API key (the upstream gets the user it acted as).

use std::borrow::Cow;
use std::sync::Arc;

use policy_wasm::{Context, Request};

use crate::stage::identity::Credential;
use portcullis_host::swap::{EnginePool, Generation, Unavailable};

/// The engine's answer, as the gateway uses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Allowed?
    pub allowed: bool,
    /// The stable reason code.
    pub reason: Cow<'static, str>,
    /// A sentence for people (denials only; empty on the fast path).
    pub message: String,
    /// For an API key: the user it acted as.
    pub acting_as: Option<String>,
    /// The revision that decided.
    pub revision: u64,
    /// That revision came as a delta to the one before it.
    pub delta: bool,
}

impl Verdict {
    /// An API key the snapshot does not know is a credential problem (401),
    /// not a denial: the caller is not anyone the directory names.
    pub fn unknown_api_key(&self, credential: &Credential) -> bool {
        matches!(credential, Credential::ApiKey(_)) && self.reason == "unknown_principal"
    }
}

/// Decides one request on `generation` (kept by the caller for the whole
/// request, so it is decided on the snapshot it started with).
pub fn decide(
    generation: &Arc<Generation>,
    pool: &Arc<EnginePool>,
    credential: &Credential,
    action: &str,
    resource: &str,
    now: i64,
    bulk: bool,
) -> Result<Verdict, Unavailable> {
    let request = Request {
        principal: credential.principal(),
        action,
        resource,
        context: Context { now, bulk },
    };
    generation.with_instance(pool, |instance| {
        if matches!(
            credential,
            Credential::Token(_) | Credential::Certificate(_)
        ) {
            let d = instance.check(&request)?;
            if d.allowed {
                return Ok(Verdict {
                    allowed: true,
                    reason: Cow::Borrowed(d.reason.code()),
                    message: String::new(),
                    acting_as: None,
                    revision: d.revision,
                    delta: generation.delta,
                });
            }
        }
        let e = instance.explain(&request)?;
        Ok(Verdict {
            allowed: e.allowed,
            reason: Cow::Owned(e.reason),
            message: e.message,
            acting_as: e.acting_as,
            revision: e.revision,
            delta: generation.delta,
        })
    })
}
