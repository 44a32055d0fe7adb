//! The one request format people and programs write: a JSON question, read
//! the same way by `portcullis check --batch`, the gateway's `/v1/check` and
//! `/v1/check/batch`, and (its context) the browser package.
//!
//! ```json
//! {"principal": "user/pat", "action": "read", "resource": "catalog/sales",
//!  "context": {"now": "2026-11-23T00:00:00Z", "bulk": false}}
//! ```
//!
//! Unknown fields are errors — a misspelt `"contxt"` must not be decided at
//! another time than meant. `now` is an RFC 3339 timestamp or integer Unix
//! seconds; left out, the caller's clock decides (the CLI's `--now`, the
//! gateway's clock, the browser's). `credentials` (instead of `principal`)
//! are for the gateway, which verifies them like the proxy does. The format
//! is documented in `policy-wasm/README.md`.

use serde::{Deserialize, Deserializer, Serialize};

use crate::request::{Context, Request};

/// One question.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Question {
    /// Who, as the engine names principals (`user/pat`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// Or the end user's own credentials (the gateway only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Credentials>,
    /// An action of the vocabulary.
    pub action: String,
    /// A resource reference.
    pub resource: String,
    /// Time and bulk flag.
    #[serde(default)]
    pub context: QuestionContext,
}

/// Credentials a gateway verifies before it asks the engine.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// The `Authorization` header's value (`Bearer <jwt>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<String>,
    /// An API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
}

/// What the caller knows that the snapshot does not.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuestionContext {
    /// Unix seconds; written as RFC 3339 or integer seconds. Left out: the
    /// caller's clock.
    #[serde(
        default,
        deserialize_with = "deserialize_now",
        skip_serializing_if = "Option::is_none"
    )]
    pub now: Option<i64>,
    /// Part of a bulk operation.
    #[serde(default)]
    pub bulk: bool,
}

impl QuestionContext {
    /// The engine's context, at `clock` when the question gave no time.
    pub fn at(&self, clock: i64) -> Context {
        Context {
            now: self.now.unwrap_or(clock),
            bulk: self.bulk,
        }
    }
}

/// Why a question cannot be asked as written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuestionError {
    /// `principal` and `credentials` both, or neither.
    #[error("give exactly one of `principal` and `credentials`")]
    Who,
    /// `credentials` where only a principal can be asked about.
    #[error("`credentials` are verified by the gateway; here, name the `principal`")]
    CredentialsHere,
}

/// Who a question is about: exactly one of the two ways of saying it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Asking<'a> {
    /// A principal named by the caller.
    Principal(&'a str),
    /// Credentials for a gateway to verify.
    Credentials(&'a Credentials),
}

impl Question {
    /// Who is asked about: `principal` or `credentials`, never both or
    /// neither.
    pub fn asking(&self) -> Result<Asking<'_>, QuestionError> {
        match (&self.principal, &self.credentials) {
            (Some(p), None) => Ok(Asking::Principal(p)),
            (None, Some(c)) => Ok(Asking::Credentials(c)),
            _ => Err(QuestionError::Who),
        }
    }

    /// The principal, where credentials cannot be verified (the CLI, the
    /// browser).
    pub fn principal(&self) -> Result<&str, QuestionError> {
        match self.asking()? {
            Asking::Principal(p) => Ok(p),
            Asking::Credentials(_) => Err(QuestionError::CredentialsHere),
        }
    }

    /// The engine's request, for a question that names its principal.
    pub fn request(&self, clock: i64) -> Result<Request<'_>, QuestionError> {
        Ok(Request {
            principal: self.principal()?,
            action: &self.action,
            resource: &self.resource,
            context: self.context.at(clock),
        })
    }
}

/// Reads a time as the request format writes it: integer Unix seconds, or
/// an RFC 3339 timestamp (`2026-11-23T00:00:00Z`, any offset, fractions of
/// a second dropped).
pub fn parse_time(text: &str) -> Result<i64, String> {
    let t = text.trim();
    if !t.is_empty()
        && t.bytes()
            .enumerate()
            .all(|(i, b)| b.is_ascii_digit() || (i == 0 && b == b'-'))
    {
        return t
            .parse::<i64>()
            .map_err(|e| format!("{text:?} is not a time: {e}"));
    }
    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
        .map(|d| d.unix_timestamp())
        .map_err(|e| {
            format!("{text:?} is not a time: write RFC 3339 (2026-11-23T00:00:00Z) or integer Unix seconds ({e})")
        })
}

fn deserialize_now<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Now {
        Seconds(i64),
        Text(String),
        Other(serde::de::IgnoredAny),
    }
    match Option::<Now>::deserialize(d)? {
        None => Ok(None),
        Some(Now::Seconds(s)) => Ok(Some(s)),
        Some(Now::Text(t)) => parse_time(&t).map(Some).map_err(serde::de::Error::custom),
        Some(Now::Other(_)) => Err(serde::de::Error::custom(
            "`now` is an RFC 3339 timestamp or integer Unix seconds",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Question, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn now_is_rfc3339_or_integer_seconds() {
        let q = parse(r#"{"principal":"user/pat","action":"read","resource":"catalog/sales","context":{"now":"2026-11-23T00:00:00Z"}}"#).unwrap();
        assert_eq!(q.context.now, Some(1_795_392_000));
        let q = parse(r#"{"principal":"user/pat","action":"read","resource":"catalog/sales","context":{"now":"2026-11-23T01:00:00+01:00","bulk":true}}"#).unwrap();
        assert_eq!(
            q.context,
            QuestionContext {
                now: Some(1_795_392_000),
                bulk: true
            }
        );
        let q = parse(r#"{"principal":"user/pat","action":"read","resource":"catalog/sales","context":{"now":1795392000}}"#).unwrap();
        assert_eq!(q.context.at(7).now, 1_795_392_000);
        let q = parse(r#"{"principal":"user/pat","action":"read","resource":"catalog/sales"}"#)
            .unwrap();
        assert_eq!(
            q.context.at(7),
            Context {
                now: 7,
                bulk: false
            }
        );
        for bad in [r#"1.5"#, r#""yesterday""#, r#"true"#, r#""2026-11-23""#] {
            let text = format!(
                r#"{{"principal":"user/pat","action":"read","resource":"x","context":{{"now":{bad}}}}}"#
            );
            assert!(parse(&text).is_err(), "{bad}");
        }
    }

    #[test]
    fn misspelt_fields_are_errors() {
        for text in [
            r#"{"principal":"user/pat","action":"read","resource":"x","contxt":{"now":1}}"#,
            r#"{"principal":"user/pat","action":"read","resource":"x","context":{"nw":1}}"#,
            r#"{"principal":"user/pat","action":"read","resource":"x","credentials":{"token":"t"}}"#,
            r#"{"principal":"user/pat","action":"read"}"#,
        ] {
            assert!(parse(text).is_err(), "{text}");
        }
        let e = parse(r#"{"principal":"user/pat","action":"read","resource":"x","contxt":{}}"#)
            .unwrap_err();
        assert!(e.contains("contxt"), "{e}");
    }

    #[test]
    fn who_is_asking_is_one_of_principal_and_credentials() {
        let mut q = Question {
            action: "read".into(),
            resource: "catalog/sales".into(),
            ..Default::default()
        };
        assert_eq!(q.principal(), Err(QuestionError::Who));
        q.credentials = Some(Credentials::default());
        assert_eq!(q.principal(), Err(QuestionError::CredentialsHere));
        q.principal = Some("user/pat".into());
        assert_eq!(q.principal(), Err(QuestionError::Who));
        q.credentials = None;
        assert_eq!(q.request(5).unwrap().principal, "user/pat");
    }
}
