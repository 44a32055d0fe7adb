//! SCIM's error answer (RFC 7644 §3.12): a status, a `scimType` where the
//! RFC names one, and a detail that says what to change.

use serde_json::{Value, json};

/// The SCIM error schema.
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// A refused SCIM request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScimError {
    /// The HTTP status.
    pub status: u16,
    /// RFC 7644's `scimType` (`invalidFilter`, `uniqueness`, …).
    pub scim_type: Option<String>,
    /// What is wrong, and what to do.
    pub detail: String,
    /// The engine's reason code, for a refusal it decided.
    pub reason: Option<String>,
}

impl ScimError {
    fn new(status: u16, scim_type: Option<&str>, detail: impl Into<String>) -> ScimError {
        ScimError {
            status,
            scim_type: scim_type.map(str::to_string),
            detail: detail.into(),
            reason: None,
        }
    }

    /// 400 `invalidFilter`.
    pub fn invalid_filter(detail: impl Into<String>) -> ScimError {
        ScimError::new(400, Some("invalidFilter"), detail)
    }

    /// 400 `invalidPath`.
    pub fn invalid_path(detail: impl Into<String>) -> ScimError {
        ScimError::new(400, Some("invalidPath"), detail)
    }

    /// 400 `invalidSyntax`.
    pub fn invalid_syntax(detail: impl Into<String>) -> ScimError {
        ScimError::new(400, Some("invalidSyntax"), detail)
    }

    /// 400 `invalidValue`.
    pub fn invalid_value(detail: impl Into<String>) -> ScimError {
        ScimError::new(400, Some("invalidValue"), detail)
    }

    /// 400 `mutability`.
    pub fn mutability(detail: impl Into<String>) -> ScimError {
        ScimError::new(400, Some("mutability"), detail)
    }

    /// 400 `noTarget`.
    pub fn no_target(detail: impl Into<String>) -> ScimError {
        ScimError::new(400, Some("noTarget"), detail)
    }

    /// 400 `tooMany`.
    pub fn too_many(detail: impl Into<String>) -> ScimError {
        ScimError::new(400, Some("tooMany"), detail)
    }

    /// 409 `uniqueness`.
    pub fn uniqueness(detail: impl Into<String>) -> ScimError {
        ScimError::new(409, Some("uniqueness"), detail)
    }

    /// 401.
    pub fn unauthorized(detail: impl Into<String>) -> ScimError {
        ScimError::new(401, None, detail)
    }

    /// 403, with the engine's reason.
    pub fn forbidden(reason: impl Into<String>, detail: impl Into<String>) -> ScimError {
        let mut e = ScimError::new(403, None, detail);
        e.reason = Some(reason.into());
        e
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> ScimError {
        ScimError::new(404, None, detail)
    }

    /// 405.
    pub fn not_allowed(detail: impl Into<String>) -> ScimError {
        ScimError::new(405, None, detail)
    }

    /// 412: the resource changed since the version the client sent.
    pub fn precondition(detail: impl Into<String>) -> ScimError {
        ScimError::new(412, None, detail)
    }

    /// 413.
    pub fn too_large(detail: impl Into<String>) -> ScimError {
        ScimError::new(413, None, detail)
    }

    /// 501.
    pub fn not_implemented(detail: impl Into<String>) -> ScimError {
        ScimError::new(501, None, detail)
    }

    /// 503: the directory cannot answer now; retry.
    pub fn unavailable(detail: impl Into<String>) -> ScimError {
        ScimError::new(503, None, detail)
    }

    /// 500: the store failed; nothing was changed.
    pub fn internal(detail: impl Into<String>) -> ScimError {
        ScimError::new(500, None, detail)
    }

    /// The body.
    pub fn body(&self) -> Value {
        let mut b = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.to_string(),
            "detail": self.detail,
        });
        if let (Some(t), Some(o)) = (&self.scim_type, b.as_object_mut()) {
            o.insert("scimType".into(), Value::String(t.clone()));
        }
        b
    }
}
