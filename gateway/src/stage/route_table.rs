//! Request → (upstream, action, resource): the gateway's declarative route
//! table, and the path normalization that runs before any matching.
//!
//! The path is normalized once, strictly, and the upstream later receives
//! exactly the normalized path that was authorized: a path the gateway and
//! the upstream could read differently is refused rather than guessed at.

use crate::config::RouteSpec;
use thiserror::Error;

/// Why the route table could not be built.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RouteError {
    /// A path pattern is malformed.
    #[error("route {index} ({path:?}): {problem}")]
    Pattern {
        /// Position of the route in the table.
        index: usize,
        /// Its path pattern.
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// The resource template names a segment the pattern does not capture.
    #[error(
        "route {index}: resource {resource:?} uses {{{name}}}, which the path pattern does not capture"
    )]
    UnknownCapture {
        /// Position of the route in the table.
        index: usize,
        /// The template.
        resource: String,
        /// The missing capture.
        name: String,
    },
}

/// Why a request was refused before authorization.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum Rejection {
    /// The path is not acceptable (bad encoding, encoded slash, control byte, …).
    #[error("malformed path: {0}")]
    MalformedPath(&'static str),
    /// No route matches: denied by default.
    #[error("no route matches {method} {path}")]
    NoRoute {
        /// The method.
        method: String,
        /// The normalized path.
        path: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Capture(String),
}

#[derive(Clone, Debug)]
struct Route {
    spec: RouteSpec,
    host: Option<String>,
    methods: Vec<String>,
    segments: Vec<Segment>,
    rest: bool,
}

/// A request resolved to a route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved<'t> {
    /// The route that matched.
    pub route: &'t RouteSpec,
    /// Its position in the table.
    pub index: usize,
    /// The action to check.
    pub action: &'t str,
    /// The resource to check, template filled.
    pub resource: String,
    /// The normalized path: what was authorized, and what the upstream gets.
    pub path: String,
}

/// The compiled route table; the first matching route wins.
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
    paths: PathRules,
}

/// How strictly paths are read before matching.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PathRules {
    /// Accept `;` path parameters (matrix parameters) in segments. Off by
    /// default: servlet containers (Tomcat, Jetty, Spring) cut a segment at
    /// its `;` before resolving dot segments, so `..;` climbs there while
    /// the gateway reads a name. Dot segments carrying parameters are
    /// refused either way.
    pub allow_path_parameters: bool,
}

impl RouteTable {
    /// Compiles and checks every route.
    pub fn new(specs: Vec<RouteSpec>) -> Result<Self, RouteError> {
        let mut routes = Vec::with_capacity(specs.len());
        for (index, spec) in specs.into_iter().enumerate() {
            let bad = |problem: &str| RouteError::Pattern {
                index,
                path: spec.path.clone(),
                problem: problem.to_string(),
            };
            if !spec.path.starts_with('/') {
                return Err(bad("a path pattern starts with '/'"));
            }
            let parts: Vec<&str> = spec.path[1..].split('/').collect();
            let mut segments = Vec::new();
            let mut rest = false;
            for (i, part) in parts.iter().enumerate() {
                let last = i + 1 == parts.len();
                match *part {
                    "*" if last => rest = true,
                    "*" => return Err(bad("'*' is only allowed as the last segment")),
                    "" if last && parts.len() > 1 => {
                        return Err(bad("a trailing '/' is not allowed"));
                    }
                    "" if parts.len() > 1 => return Err(bad("empty segment ('//')")),
                    "" => {}
                    p if p.starts_with('{') && p.ends_with('}') && p.len() > 2 => {
                        segments.push(Segment::Capture(p[1..p.len() - 1].to_string()));
                    }
                    p if p.contains(['{', '}', '%']) || p == "." || p == ".." => {
                        return Err(bad("a segment is a literal, {name} or a final *"));
                    }
                    p => segments.push(Segment::Literal(p.to_string())),
                }
            }
            for name in template_names(&spec.resource) {
                if !segments.contains(&Segment::Capture(name.to_string())) {
                    return Err(RouteError::UnknownCapture {
                        index,
                        resource: spec.resource.clone(),
                        name: name.to_string(),
                    });
                }
            }
            let host = spec
                .host
                .as_deref()
                .filter(|h| *h != "*")
                .map(str::to_ascii_lowercase);
            let methods = spec
                .methods
                .iter()
                .filter(|m| *m != "*")
                .map(|m| m.to_ascii_uppercase())
                .collect();
            routes.push(Route {
                host,
                methods,
                segments,
                rest,
                spec,
            });
        }
        Ok(RouteTable {
            routes,
            paths: PathRules::default(),
        })
    }

    /// The same table reading paths by `rules`.
    pub fn with_path_rules(mut self, rules: PathRules) -> Self {
        self.paths = rules;
        self
    }

    /// The route at `index` (as [`Resolved::index`] gives it).
    pub fn spec(&self, index: usize) -> Option<&RouteSpec> {
        self.routes.get(index).map(|r| &r.spec)
    }

    /// Every route as configured, in order.
    pub fn specs(&self) -> impl Iterator<Item = &RouteSpec> {
        self.routes.iter().map(|r| &r.spec)
    }

    /// Normalizes the path and finds the first route matching method, host
    /// and path.
    pub fn resolve(
        &self,
        method: &str,
        host: Option<&str>,
        raw_path: &str,
    ) -> Result<Resolved<'_>, Rejection> {
        let path = normalize_path_with(raw_path, self.paths)?;
        let host = host.map(|h| strip_port(h).to_ascii_lowercase());
        let parts: Vec<&str> = if path == "/" {
            Vec::new()
        } else {
            path[1..].split('/').collect()
        };
        for (index, r) in self.routes.iter().enumerate() {
            if !r.methods.is_empty() && !r.methods.iter().any(|m| m.eq_ignore_ascii_case(method)) {
                continue;
            }
            if r.host
                .as_deref()
                .is_some_and(|h| host.as_deref() != Some(h))
            {
                continue;
            }
            if let Some(captures) = match_segments(&r.segments, r.rest, &parts) {
                let resource = fill(&r.spec.resource, &captures);
                return Ok(Resolved {
                    route: &r.spec,
                    index,
                    action: &r.spec.action,
                    resource,
                    path,
                });
            }
        }
        Err(Rejection::NoRoute {
            method: method.to_string(),
            path,
        })
    }
}

fn strip_port(host: &str) -> &str {
    // IPv6 literals keep their brackets; a port follows the last ':'.
    match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => &host[..i],
        _ => host,
    }
}

fn template_names(t: &str) -> impl Iterator<Item = &str> {
    t.split('{')
        .skip(1)
        .filter_map(|s| s.split_once('}').map(|(n, _)| n))
}

/// The captures (name, value) if `parts` match the pattern.
fn match_segments<'r, 'p>(
    pattern: &'r [Segment],
    rest: bool,
    parts: &[&'p str],
) -> Option<Vec<(&'r str, &'p str)>> {
    if parts.len() < pattern.len() || (!rest && parts.len() != pattern.len()) {
        return None;
    }
    let mut captures = Vec::new();
    for (seg, part) in pattern.iter().zip(parts) {
        match seg {
            Segment::Literal(l) if l == part => {}
            Segment::Literal(_) => return None,
            Segment::Capture(name) => captures.push((name.as_str(), *part)),
        }
    }
    Some(captures)
}

fn fill(template: &str, captures: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let name = &after[..close];
                let value = captures
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map_or("", |(_, v)| *v);
                out.push_str(value);
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The upper-case hex digit of a nibble.
fn upper_hex(nibble: u8) -> char {
    char::from_digit(u32::from(nibble), 16)
        .unwrap_or('0')
        .to_ascii_uppercase()
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// [`normalize_path_with`] the default (strict) rules.
pub fn normalize_path(raw: &str) -> Result<String, Rejection> {
    normalize_path_with(raw, PathRules::default())
}

/// `%25` followed by these two bytes encodes an encoded `.`, `/` or `\\`.
fn double_encoded_separator(next: Option<&[u8]>) -> bool {
    match next {
        Some([h, l]) => matches!(
            (h.to_ascii_lowercase(), l.to_ascii_lowercase()),
            (b'2', b'e') | (b'2', b'f') | (b'5', b'c')
        ),
        _ => false,
    }
}

/// `.` or `..` once path parameters are cut off (`;`, or its encoding,
/// which a decode-then-split upstream reads as one): `..;`, `.;x=1`,
/// `..%3B`.
fn is_dot_segment_with_parameters(seg: &str) -> bool {
    let cut = [seg.find(';'), seg.find("%3B")].into_iter().flatten().min();
    match cut {
        Some(i) => matches!(&seg[..i], "." | ".."),
        None => false,
    }
}

/// Normalizes a request path (without query):
/// - percent-encodings of unreserved characters are decoded, others are
///   kept with upper-case hex;
/// - encoded `/`, `\`, NUL and control bytes, invalid encodings, raw
///   backslashes, control bytes and non-ASCII bytes are refused;
/// - a double-encoded `.`, `/` or `\` (`%252e`, `%252f`, `%255c`) is
///   refused: an upstream that decodes twice would read a dot segment or
///   a separator the gateway never saw;
/// - `;` path parameters are refused unless `rules` allow them, and a dot
///   segment carrying parameters (`..;x`, `.;`) is refused always;
/// - repeated slashes collapse, `.` and `..` segments are resolved (a `..`
///   above the root is refused), a trailing slash is dropped.
pub fn normalize_path_with(raw: &str, rules: PathRules) -> Result<String, Rejection> {
    use Rejection::MalformedPath as Bad;
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(Bad("the path must start with '/'"));
    }
    // Pass 1: decode unreserved percent-encodings, validate the rest.
    let mut decoded = String::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let (Some(h), Some(l)) = (
                    bytes.get(i + 1).copied().and_then(hex_val),
                    bytes.get(i + 2).copied().and_then(hex_val),
                ) else {
                    return Err(Bad("invalid percent-encoding"));
                };
                let v = h * 16 + l;
                if v == b'/' || v == b'\\' {
                    return Err(Bad("encoded slash or backslash"));
                }
                if v < 0x20 || v == 0x7f {
                    return Err(Bad("encoded control character"));
                }
                if is_unreserved(v) {
                    decoded.push(v as char);
                } else {
                    decoded.push('%');
                    decoded.push(upper_hex(h));
                    decoded.push(upper_hex(l));
                }
                i += 3;
            }
            b'\\' => return Err(Bad("backslash in path")),
            0..=0x1f | 0x7f => return Err(Bad("control character in path")),
            0x80.. => return Err(Bad("non-ASCII byte in path (percent-encode it)")),
            b'?' | b'#' => return Err(Bad("query or fragment in path")),
            b';' if !rules.allow_path_parameters => {
                return Err(Bad(
                    "path parameter (';') in path; upstreams that use matrix parameters need server.allow_path_parameters",
                ));
            }
            _ => {
                decoded.push(b as char);
                i += 1;
            }
        }
    }
    // What the upstream gets is this decoded form: it must not hide an
    // encoded separator one more decoding away (`%25` + `2e`, which may
    // itself have been written `%32e`).
    let db = decoded.as_bytes();
    if db
        .windows(3)
        .enumerate()
        .any(|(at, w)| w == b"%25" && double_encoded_separator(db.get(at + 3..at + 5)))
    {
        return Err(Bad(
            "double-encoded '.', '/' or '\\' (%25 followed by 2e, 2f or 5c)",
        ));
    }
    // Pass 2: segments.
    let mut out: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        if is_dot_segment_with_parameters(seg) {
            return Err(Bad(
                "a dot segment with path parameters ('..;'), which servlet containers read as '..'",
            ));
        }
        match seg {
            "" | "." => {}
            ".." => {
                if out.pop().is_none() {
                    return Err(Bad("'..' above the root"));
                }
            }
            s => out.push(s),
        }
    }
    let mut path = String::with_capacity(decoded.len());
    for s in &out {
        path.push('/');
        path.push_str(s);
    }
    if path.is_empty() {
        path.push('/');
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        let spec =
            |host: Option<&str>, methods: &[&str], path: &str, action: &str, resource: &str| {
                RouteSpec {
                    name: None,
                    host: host.map(String::from),
                    methods: methods.iter().map(|m| m.to_string()).collect(),
                    path: path.into(),
                    upstream: "data".into(),
                    action: action.into(),
                    resource: resource.into(),
                    shadow: false,
                    assertion: false,
                }
            };
        RouteTable::new(vec![
            spec(
                None,
                &["GET"],
                "/envs/{env}/catalogs/{catalog}/tables/*",
                "read",
                "catalog/{catalog}",
            ),
            spec(
                None,
                &["PUT", "POST"],
                "/envs/{env}/catalogs/{catalog}/tables/*",
                "write",
                "catalog/{catalog}",
            ),
            spec(
                Some("admin.example.com"),
                &[],
                "/users/{user}",
                "user:update",
                "user/{user}",
            ),
            spec(None, &["GET"], "/envs/{env}", "env:open", "env/{env}"),
        ])
        .unwrap()
    }

    #[test]
    fn matches_method_path_and_fills_the_resource() {
        let t = table();
        let r = t
            .resolve(
                "GET",
                Some("api.example.com"),
                "/envs/prod/catalogs/sales/tables/orders",
            )
            .unwrap();
        assert_eq!(
            (r.action, r.resource.as_str(), r.index),
            ("read", "catalog/sales", 0)
        );
        let r = t
            .resolve("post", None, "/envs/prod/catalogs/sales/tables/x/y")
            .unwrap();
        assert_eq!((r.action, r.resource.as_str()), ("write", "catalog/sales"));
        let r = t.resolve("GET", None, "/envs/prod").unwrap();
        assert_eq!(r.resource, "env/prod");
    }

    #[test]
    fn unmatched_requests_are_denied_by_default() {
        let t = table();
        assert!(matches!(
            t.resolve("DELETE", None, "/envs/prod/catalogs/sales/tables/x"),
            Err(Rejection::NoRoute { .. })
        ));
        assert!(matches!(
            t.resolve("GET", None, "/nothing"),
            Err(Rejection::NoRoute { .. })
        ));
        // The wildcard needs the literal prefix, and `{x}` exactly one segment.
        assert!(matches!(
            t.resolve("GET", None, "/envs/prod/catalogs/sales"),
            Err(Rejection::NoRoute { .. })
        ));
    }

    #[test]
    fn hosts_match_case_insensitively_without_port() {
        let t = table();
        assert!(
            t.resolve("PUT", Some("ADMIN.example.com:8443"), "/users/olivia")
                .is_ok()
        );
        assert!(
            t.resolve("PUT", Some("api.example.com"), "/users/olivia")
                .is_err()
        );
        assert!(t.resolve("PUT", None, "/users/olivia").is_err());
    }

    #[test]
    fn dot_segments_and_slashes_are_resolved_before_matching() {
        let t = table();
        let r = t
            .resolve(
                "GET",
                None,
                "/envs/staging/../prod//catalogs/./sales/tables/t",
            )
            .unwrap();
        assert_eq!(
            (r.resource.as_str(), r.path.as_str()),
            ("catalog/sales", "/envs/prod/catalogs/sales/tables/t")
        );
        // Encoded dots are unreserved: decoded, then resolved.
        let r = t
            .resolve("GET", None, "/envs/x/%2e%2e/prod/catalogs/sales/tables/t")
            .unwrap();
        assert_eq!(r.path, "/envs/prod/catalogs/sales/tables/t");
        let r = t.resolve("GET", None, "/envs/x/%2E%2E/prod").unwrap();
        assert_eq!(r.resource, "env/prod");
    }

    #[test]
    fn hostile_paths_are_refused() {
        for p in [
            "/envs/prod%2Fcatalogs/sales",
            "/envs/prod%2fcatalogs",
            "/envs/prod%5C..",
            "/envs/prod\\..\\x",
            "/envs/%00",
            "/envs/%zz",
            "/envs/%4",
            "/envs/\u{7f}",
            "/../etc/passwd",
            "/envs/%2e%2e/%2e%2e/x",
            "envs/prod",
            "/envs/é",
            "/envs/prod?x=1",
        ] {
            assert!(
                matches!(normalize_path(p), Err(Rejection::MalformedPath(_))),
                "{p:?} should be refused"
            );
        }
    }

    #[test]
    fn dot_segments_behind_path_parameters_and_double_encodings_are_refused() {
        let allow = PathRules {
            allow_path_parameters: true,
        };
        for p in [
            "/envs/prod/catalogs/sales/tables/..;/..;/x",
            "/envs/prod/catalogs/sales/tables/%2e%2e;/x",
            "/envs/prod/catalogs/sales/tables/%2E%2E;jsessionid=1/x",
            "/a/.;x=1/b",
            "/a/..%3Bx/b",
            "/a/..%3b/b",
        ] {
            for rules in [PathRules::default(), allow] {
                assert!(
                    matches!(
                        normalize_path_with(p, rules),
                        Err(Rejection::MalformedPath(_))
                    ),
                    "{p:?} should be refused ({rules:?})"
                );
            }
        }
        for p in [
            "/a/%252e%252e/b",
            "/a/%252E/b",
            "/a/%252f",
            "/a/%255C",
            "/a/%25%32e",
        ] {
            assert!(
                matches!(normalize_path(p), Err(Rejection::MalformedPath(_))),
                "{p:?} should be refused"
            );
        }
        // A literal percent sign, and %25 before anything else, is data.
        assert_eq!(normalize_path("/a/100%25/b").unwrap(), "/a/100%25/b");
        assert_eq!(normalize_path("/a/%2541").unwrap(), "/a/%2541");
        // Matrix parameters: refused by default, kept when allowed.
        assert!(matches!(
            normalize_path("/orgs/acme/sso;jsessionid=x"),
            Err(Rejection::MalformedPath(_))
        ));
        assert_eq!(
            normalize_path_with("/cars;color=red/x", allow).unwrap(),
            "/cars;color=red/x"
        );
    }

    #[test]
    fn normalization_is_canonical() {
        assert_eq!(normalize_path("/a/%7euser/%41B").unwrap(), "/a/~user/AB");
        assert_eq!(normalize_path("/a/%3a%3A/").unwrap(), "/a/%3A%3A");
        assert_eq!(normalize_path("//").unwrap(), "/");
        assert_eq!(normalize_path("/a/b/..").unwrap(), "/a");
        // Idempotent: the upstream gets a path that normalizes to itself.
        for p in ["/a/./b//c/../d/", "/x/%7E/%3a", "/"] {
            let once = normalize_path(p).unwrap();
            assert_eq!(normalize_path(&once).unwrap(), once);
        }
    }

    #[test]
    fn bad_tables_are_refused_with_the_route_named() {
        let spec = |path: &str, resource: &str| RouteSpec {
            name: None,
            host: None,
            methods: vec![],
            path: path.into(),
            upstream: "u".into(),
            action: "read".into(),
            resource: resource.into(),
            shadow: false,
            assertion: false,
        };
        assert!(matches!(
            RouteTable::new(vec![spec("/a/*/b", "x")]),
            Err(RouteError::Pattern { index: 0, .. })
        ));
        assert!(matches!(
            RouteTable::new(vec![spec("a", "x")]),
            Err(RouteError::Pattern { .. })
        ));
        assert!(matches!(
            RouteTable::new(vec![spec("/a//b", "x")]),
            Err(RouteError::Pattern { .. })
        ));
        let e = RouteTable::new(vec![
            spec("/ok", "x"),
            spec("/c/{cat}", "catalog/{catalog}"),
        ])
        .unwrap_err();
        assert_eq!(
            e,
            RouteError::UnknownCapture {
                index: 1,
                resource: "catalog/{catalog}".into(),
                name: "catalog".into()
            }
        );
    }
}
