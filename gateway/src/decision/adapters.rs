//! The decision endpoint as the external authorization service of nginx,
//! Traefik and Envoy. Each adapter recovers the original request (method,
//! host, path) from what its gateway sends, runs it through the same
//! checkpoint (`checkpoint.rs`) as the proxy (route table, identity, engine), and
//! answers in the form that gateway understands:
//!
//! | adapter | original request from | allow | refuse |
//! |---|---|---|---|
//! | nginx `auth_request` (`/v1/nginx`) | `X-Original-Method`, `X-Original-URI`, `X-Original-Host` (or `Host`) | 200 + identity headers (`auth_request_set`) | 401 or 403 only: nginx turns any other status into a 500 |
//! | Traefik ForwardAuth (`/v1/traefik`) | `X-Forwarded-Method`, `X-Forwarded-Uri`, `X-Forwarded-Host` | 200 + identity headers (`authResponseHeaders`) | the proxy's status and JSON body, shown to the client |
//! | Envoy ext_authz HTTP (`/v1/envoy/<path>`) | the request's own method, the path after the prefix, `Host` | 200 + identity headers (`allowed_upstream_headers`) | the proxy's status and JSON body |
//!
//! The identity headers are always all present on an allow (`X-Portcullis-Acting-As`
//! empty unless an API key acted for a user), so a configuration that copies
//! them onto the upstream request replaces anything the client sent under
//! those names.

use std::time::Instant;

use http::{HeaderMap, HeaderValue, Response};
use hyper::body::Incoming;

use crate::checkpoint::{Passed, check};
use crate::response::{Body, Refusal, full};
use crate::shared::Shared;
use crate::stage::forward::method_override;
use crate::stage::host::parse_host;

/// The reason code, on every adapter answer (nginx can log it).
pub use crate::response::REASON_HEADER as REASON;
/// The identity headers an allowed answer carries.
pub use crate::stage::forward::{ACTING_AS, PRINCIPAL, REVISION};

/// Which external gateway is asking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Adapter {
    /// nginx `auth_request`.
    Nginx,
    /// Traefik ForwardAuth.
    Traefik,
    /// Envoy ext_authz, HTTP service mode.
    Envoy,
}

impl Adapter {
    /// The adapter serving `rel` (a path relative to the decision mount),
    /// and for Envoy the original path that follows its prefix.
    pub fn for_path(rel: &str) -> Option<(Adapter, &str)> {
        match rel {
            "/v1/nginx" => Some((Adapter::Nginx, "")),
            "/v1/traefik" => Some((Adapter::Traefik, "")),
            "/v1/envoy" => Some((Adapter::Envoy, "/")),
            _ => rel
                .strip_prefix("/v1/envoy")
                .filter(|p| p.starts_with('/'))
                .map(|p| (Adapter::Envoy, p)),
        }
    }

    /// The headers naming the original method, URI and host.
    fn headers(self) -> Option<[&'static str; 3]> {
        match self {
            Adapter::Nginx => Some(["x-original-method", "x-original-uri", "x-original-host"]),
            Adapter::Traefik => Some(["x-forwarded-method", "x-forwarded-uri", "x-forwarded-host"]),
            Adapter::Envoy => None,
        }
    }
}

/// The original request, as the adapter's gateway described it.
#[derive(Debug, PartialEq, Eq)]
pub struct Original {
    /// Its method.
    pub method: http::Method,
    /// Its raw path, without the query.
    pub path: String,
    /// Its host as sent (read strictly before routing).
    pub host: Option<String>,
}

/// Recovers the original request; the error says which header is missing
/// or unusable.
pub fn original(
    adapter: Adapter,
    method: &http::Method,
    headers: &HeaderMap,
    envoy_path: &str,
) -> Result<Original, String> {
    let text = |name: &str| -> Result<Option<&str>, String> {
        let mut all = headers.get_all(name).iter();
        match (all.next(), all.next()) {
            (None, _) => Ok(None),
            (Some(_), Some(_)) => Err(format!("more than one {name} header")),
            (Some(v), None) => v
                .to_str()
                .map(Some)
                .map_err(|_| format!("{name} is not visible ASCII")),
        }
    };
    let host_of = |v: Option<&str>| v.map(str::to_string);
    let (method, uri, host) = match adapter.headers() {
        Some([m, u, h]) => {
            let method = text(m)?.ok_or_else(|| format!("{m} is missing"))?;
            let method = http::Method::from_bytes(method.as_bytes())
                .map_err(|_| format!("{m}: {method:?} is not a method"))?;
            let uri = text(u)?
                .ok_or_else(|| format!("{u} is missing"))?
                .to_string();
            let host = match text(h)? {
                Some(v) => Some(v),
                None => text("host")?,
            };
            (method, uri, host_of(host))
        }
        None => (
            method.clone(),
            envoy_path.to_string(),
            host_of(text("host")?),
        ),
    };
    // Absolute-form URIs are refused by the route table like on the proxy;
    // here only the query is cut off.
    let path = uri.split_once('?').map_or(uri.as_str(), |(p, _)| p);
    if !path.starts_with('/') {
        return Err(format!(
            "the original URI {uri:?} is not an origin-form path"
        ));
    }
    Ok(Original {
        method,
        path: path.to_string(),
        host,
    })
}

/// Serves one adapter request.
pub(crate) fn handle(
    shared: &Shared,
    adapter: Adapter,
    req: hyper::Request<Incoming>,
    envoy_path: &str,
    started: Instant,
) -> Response<Body> {
    // The body (if any) is not needed: dropping it closes what the gateway
    // sent (nginx and Traefik send none; Envoy only with `with_request_body`).
    let (parts, _body) = req.into_parts();
    let answer = original(adapter, &parts.method, &parts.headers, envoy_path)
        .map_err(|why| {
            Refusal::missing_original_request(format!(
                "the {adapter:?} adapter cannot tell what the original request was: {why}"
            ))
        })
        .and_then(|original| {
            // The external gateway forwards the client's headers as they
            // are: a method override it would pass on is refused unless
            // allowed, and then it is the method authorized.
            let method = match method_override(&parts.headers) {
                Ok(None) => original.method,
                Ok(Some(m)) if shared.config().server.allow_method_override => m,
                Ok(Some(_)) | Err(_) => return Err(Refusal::method_override()),
            };
            // The original host is read as strictly as the proxy reads its own.
            let host = original
                .host
                .as_deref()
                .map(parse_host)
                .transpose()
                .map_err(Refusal::malformed_host)?;
            check(
                shared,
                &method,
                host.as_deref(),
                &original.path,
                &parts.headers,
                // The client's certificate is the fronting proxy's to check.
                None,
                started,
            )
        });
    match answer {
        Ok(passed) => allowed(&passed),
        // nginx turns any status but 401 and 403 into a 500.
        Err(refused) if adapter == Adapter::Nginx => refused.as_status_for_nginx().into_response(),
        Err(refused) => refused.into_response(),
    }
}

fn allowed(passed: &Passed<'_>) -> Response<Body> {
    let mut r = Response::new(full(Vec::new()));
    let h = r.headers_mut();
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    put(PRINCIPAL, passed.credential.principal());
    put(
        ACTING_AS,
        passed.verdict.acting_as.as_deref().unwrap_or_default(),
    );
    put(REVISION, &passed.verdict.revision.to_string());
    put(REASON, &passed.verdict.reason);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn paths_pick_the_adapter() {
        assert_eq!(Adapter::for_path("/v1/nginx"), Some((Adapter::Nginx, "")));
        assert_eq!(
            Adapter::for_path("/v1/envoy/api/x"),
            Some((Adapter::Envoy, "/api/x"))
        );
        assert_eq!(Adapter::for_path("/v1/envoy"), Some((Adapter::Envoy, "/")));
        assert_eq!(Adapter::for_path("/v1/envoyx"), None);
        assert_eq!(Adapter::for_path("/v1/nginx/x"), None);
    }

    #[test]
    fn nginx_original_request_comes_from_its_headers() {
        let h = headers(&[
            ("x-original-method", "DELETE"),
            ("x-original-uri", "/api/catalogs/sales?x=1"),
            ("host", "shop.example:8443"),
        ]);
        let o = original(Adapter::Nginx, &http::Method::GET, &h, "").unwrap();
        assert_eq!(o.method, http::Method::DELETE);
        assert_eq!(o.path, "/api/catalogs/sales");
        assert_eq!(o.host.as_deref(), Some("shop.example:8443"));
        let missing = original(Adapter::Nginx, &http::Method::GET, &headers(&[]), "");
        assert!(missing.unwrap_err().contains("x-original-method"));
        let twice = headers(&[
            ("x-forwarded-method", "GET"),
            ("x-forwarded-uri", "/a"),
            ("x-forwarded-uri", "/b"),
        ]);
        assert!(
            original(Adapter::Traefik, &http::Method::GET, &twice, "")
                .unwrap_err()
                .contains("more than one")
        );
    }

    #[test]
    fn envoy_original_request_is_the_request_itself() {
        let h = headers(&[("host", "api.example")]);
        let o = original(Adapter::Envoy, &http::Method::PUT, &h, "/api/x").unwrap();
        assert_eq!(
            o,
            Original {
                method: http::Method::PUT,
                path: "/api/x".into(),
                host: Some("api.example".into())
            }
        );
    }
}
