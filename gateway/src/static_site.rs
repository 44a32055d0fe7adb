//! Files served as they are under a path prefix on the proxy listener,
//! without authentication (the demo's page and the browser package).

use std::collections::HashMap;

use http::{HeaderValue, Method, Response, header};

use crate::response::{Body, Refusal, full};

/// A set of static files under one prefix.
#[derive(Default)]
pub struct StaticSite {
    prefix: String,
    files: HashMap<String, (&'static str, bytes::Bytes)>,
}

impl StaticSite {
    /// An empty site under `prefix` (e.g. `/-/demo/`).
    pub fn new(prefix: &str) -> Self {
        StaticSite {
            prefix: prefix.to_string(),
            files: HashMap::new(),
        }
    }

    /// Adds a file at `prefix` + `name` (`""` for the prefix itself).
    pub fn add(&mut self, name: &str, content_type: &'static str, body: impl Into<bytes::Bytes>) {
        self.files.insert(
            format!("{}{name}", self.prefix),
            (content_type, body.into()),
        );
    }

    /// The answer for `path` if it is under the prefix.
    pub(crate) fn serve(&self, method: &Method, path: &str) -> Option<Response<Body>> {
        if !path.starts_with(&self.prefix) {
            return None;
        }
        let Some((content_type, body)) = self.files.get(path) else {
            return Some(Refusal::not_found("not_found", "no such file").into_response());
        };
        if method != Method::GET && method != Method::HEAD {
            return Some(Refusal::method_not_allowed("GET, HEAD", "use GET").into_response());
        }
        let mut r = Response::new(full(body.clone()));
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        Some(r)
    }
}
