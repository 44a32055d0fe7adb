//! Hostile inputs through the real gateway (issue #7): every request is
//! written byte for byte on a raw socket, and every case asserts the exact
//! status and what reached the upstream — nothing, for a refusal; exactly
//! the normalized path with the gateway's own identity headers, for an
//! allowed request. The upstream records everything it receives.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use portcullis_demo::{
    DEMO_ADMIN_TOKEN, DEMO_SECRET, DemoOptions, demo_config, demo_token, example_snapshot,
};
use portcullis_gateway::config::KeyConfig;
use portcullis_gateway::server::{Running, start};
use serde_json::{Value, json};

/// What the upstream received.
#[derive(Clone, Debug)]
struct Seen {
    target: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

type Log = Arc<Mutex<Vec<Seen>>>;

async fn recording_upstream() -> (SocketAddr, Log) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let log: Log = Arc::default();
    let record = Arc::clone(&log);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let record = Arc::clone(&record);
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let seen = Seen {
                        target: req.uri().to_string(),
                        headers: req
                            .headers()
                            .iter()
                            .map(|(k, v)| {
                                (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into())
                            })
                            .collect(),
                    };
                    record.lock().expect("log").push(seen);
                    async {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::from_static(b"upstream"),
                        )))
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, log)
}

fn fixture(name: &str) -> String {
    format!(
        "{}/../gateway/tests/fixtures/keys/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

struct Target {
    running: Running,
    addr: SocketAddr,
    log: Log,
    pat: String,
    _dir: tempfile::TempDir,
}

impl Target {
    /// Sends `request` exactly as written; the status (0: no answer).
    fn raw(&self, request: &[u8]) -> (u16, String) {
        raw(self.addr, request)
    }

    fn seen(&self) -> usize {
        self.log.lock().expect("log").len()
    }

    fn last(&self) -> Option<Seen> {
        self.log.lock().expect("log").last().cloned()
    }
}

fn raw(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return (0, String::new());
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

async fn target() -> Target {
    target_with(|_| {}).await
}

async fn target_with(edit: impl FnOnce(&mut portcullis_gateway::config::GatewayConfig)) -> Target {
    let dir = tempfile::tempdir().expect("tempdir");
    let (upstream, log) = recording_upstream().await;
    let mut config = demo_config(&DemoOptions::for_tests(dir.path()), upstream);
    config.server.header_read_timeout_ms = 1_000;
    config.server.max_body_bytes = 64 * 1024;
    config.server.workers = Some(2);
    // An RS256 key beside the HS256 secret: for key-confusion attacks.
    if let Some(jwt) = config.identity.jwt.as_mut() {
        jwt.keys.push(KeyConfig {
            kid: Some("rsa".into()),
            alg: "RS256".into(),
            secret: None,
            pem: None,
            pem_file: Some(fixture("rsa.pub.pem").into()),
        });
    }
    edit(&mut config);
    let snapshot = example_snapshot(|_| {}).expect("example");
    let running = start(config, Some(snapshot)).await.expect("gateway");
    Target {
        addr: running.proxy_addr,
        running,
        log,
        pat: demo_token("pat").expect("token"),
        _dir: dir,
    }
}

const TABLE: &str = "/envs/prod/catalogs/sales/tables/orders";

fn get(target: &str, headers: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: app.example\r\n{headers}Connection: close\r\n\r\n")
        .into_bytes()
}

/// Runs `cases` (name, request, status, the path the upstream must get or
/// None for nothing) against `t` — blocking I/O, off the async workers.
async fn run(t: &Arc<Target>, cases: Vec<(&'static str, Vec<u8>, u16, Option<&'static str>)>) {
    let t = Arc::clone(t);
    tokio::task::spawn_blocking(move || {
        for (name, request, status, reaches) in cases {
            let before = t.seen();
            let (got, text) = t.raw(&request);
            assert_eq!(got, status, "{name}: {text}");
            match reaches {
                None => assert_eq!(t.seen(), before, "{name}: reached the upstream"),
                Some(path) => {
                    assert_eq!(
                        t.seen(),
                        before + 1,
                        "{name}: did not reach the upstream once"
                    );
                    let seen = t.last().expect("seen");
                    assert_eq!(seen.target.split('?').next(), Some(path), "{name}");
                    assert_eq!(seen.header("x-portcullis-principal").len(), 1, "{name}");
                }
            }
        }
    })
    .await
    .expect("cases");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_tricks_are_normalized_or_refused() {
    let t = Arc::new(target().await);
    let auth = format!("Authorization: Bearer {}\r\n", t.pat);
    let g = |target: &str| get(target, &auth);
    run(
        &t,
        vec![
            ("plain", g(TABLE), 200, Some(TABLE)),
            (
                "raw dot segments resolve before matching",
                g("/envs/prod/catalogs/finance/../sales/tables/./orders"),
                200,
                Some(TABLE),
            ),
            (
                "dot segments climbing into another route",
                g("/envs/prod/catalogs/sales/tables/../../../../../orgs/acme/sso"),
                403,
                None,
            ),
            (
                "encoded dot segments are dot segments",
                g("/envs/prod/catalogs/finance/%2e%2E/sales/tables/orders"),
                200,
                Some(TABLE),
            ),
            ("dots above the root", g("/../../envs/prod"), 400, None),
            (
                "encoded slash",
                g("/envs/prod/catalogs/sales%2Ftables/orders"),
                400,
                None,
            ),
            (
                "encoded slash, lower case",
                g("/envs/prod/catalogs/sales%2ftables/orders"),
                400,
                None,
            ),
            (
                "raw backslash",
                g("/envs/prod\\catalogs/sales/tables/orders"),
                400,
                None,
            ),
            ("encoded backslash", g("/envs/prod%5Ccatalogs"), 400, None),
            (
                "encoded NUL",
                g("/envs/prod%00/catalogs/sales/tables/orders"),
                400,
                None,
            ),
            ("encoded newline", g("/envs/prod%0a/catalogs"), 400, None),
            ("encoded DEL", g("/envs/prod%7F"), 400, None),
            ("invalid encoding", g("/envs/prod%zz"), 400, None),
            (
                "overlong UTF-8 dots stay opaque",
                g("/envs/prod/catalogs/%C0%AE%C0%AE/tables/orders"),
                403,
                None,
            ),
            (
                "fullwidth dots stay opaque",
                g("/envs/prod/catalogs/%EF%BC%8E%EF%BC%8E/tables/orders"),
                403,
                None,
            ),
            (
                "a path parameter is refused by default (issue #12)",
                g("/orgs/acme/sso;jsessionid=x"),
                400,
                None,
            ),
            (
                "repeated slashes collapse",
                g("//envs///prod//catalogs/sales/tables//orders"),
                200,
                Some(TABLE),
            ),
            (
                "trailing dot is another name",
                g("/envs/prod/catalogs/sales./tables/orders"),
                403,
                None,
            ),
            (
                "trailing dot segment",
                g("/envs/prod/catalogs/sales/tables/orders/."),
                200,
                Some(TABLE),
            ),
            (
                "absolute-form target",
                g(&format!("http://evil.example{TABLE}")),
                400,
                None,
            ),
            ("asterisk-form target", g("*"), 400, None),
        ],
    )
    .await;
    // Raw control and non-ASCII bytes never get past the HTTP parser.
    let mut nul = get("/envs/prod", &auth);
    nul[9] = 0;
    let high = get("/envs/pr\u{e9}d", &auth);
    run(
        &t,
        vec![
            ("raw NUL in the target", nul, 400, None),
            ("raw non-ASCII in the target", high, 400, None),
        ],
    )
    .await;
    drop(t);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_identity_and_credential_tricks() {
    let t = Arc::new(target().await);
    let pat = t.pat.clone();
    let auth = format!("Authorization: Bearer {pat}\r\n");
    let req = |head: String| head.into_bytes();
    run(
        &t,
        vec![
            (
                "two Host headers",
                req(format!("GET {TABLE} HTTP/1.1\r\nHost: app.example\r\nHost: admin.example\r\n{auth}Connection: close\r\n\r\n")),
                400,
                None,
            ),
            (
                "no Host in HTTP/1.1",
                req(format!("GET {TABLE} HTTP/1.1\r\n{auth}Connection: close\r\n\r\n")),
                400,
                None,
            ),
            (
                "duplicated Authorization",
                req(format!("GET {TABLE} HTTP/1.1\r\nHost: a\r\n{auth}{auth}Connection: close\r\n\r\n")),
                401,
                None,
            ),
            (
                "a bearer token and an API key",
                req(format!("GET {TABLE} HTTP/1.1\r\nHost: a\r\n{auth}X-Api-Key: pk_x\r\nConnection: close\r\n\r\n")),
                401,
                None,
            ),
            (
                "spoofed and duplicated identity headers are replaced",
                req(format!(
                    "GET {TABLE} HTTP/1.1\r\nHost: a\r\n{auth}X-Portcullis-Principal: user/olivia\r\nx-portcullis-principal: user/sam\r\nX-PORTCULLIS-ACTING-AS: user/olivia\r\nX-Portcullis-Revision: 999\r\nConnection: close\r\n\r\n"
                )),
                200,
                Some(TABLE),
            ),
        ],
    )
    .await;
    let seen = t.last().expect("seen");
    assert_eq!(seen.header("x-portcullis-acting-as"), Vec::<&str>::new());
    assert_eq!(seen.header("x-portcullis-revision"), ["1"]);
    drop(t);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_attacks_are_401() {
    let t = Arc::new(target().await);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let claims = |exp: i64, nbf: i64, aud: &str| json!({"sub": "pat", "iss": "portcullis-demo", "aud": aud, "exp": exp, "nbf": nbf});
    let valid = claims(now + 600, now - 60, "portcullis-demo");
    let hs = |c: &Value, secret: &[u8], kid: Option<&str>| {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = kid.map(String::from);
        jsonwebtoken::encode(&h, c, &EncodingKey::from_secret(secret)).expect("sign")
    };
    let b64 = |v: &Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let rsa_public = std::fs::read(fixture("rsa.pub.pem")).expect("key");
    let rsa_private = std::fs::read(fixture("rsa.key.pem")).expect("key");
    let rs = |c: &Value| {
        let mut h = Header::new(Algorithm::RS256);
        h.kid = Some("rsa".into());
        jsonwebtoken::encode(
            &h,
            c,
            &EncodingKey::from_rsa_pem(&rsa_private).expect("pem"),
        )
        .expect("sign")
    };
    let good_hs = hs(&valid, DEMO_SECRET.as_bytes(), None);
    let mut bad_signature = good_hs.clone();
    let last = bad_signature.pop().expect("token");
    bad_signature.push(if last == 'A' { 'E' } else { 'A' });
    let tokens: Vec<(&'static str, String, u16)> = vec![
        ("valid HS256", good_hs.clone(), 200),
        ("valid RS256", rs(&valid), 200),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT"})),
                b64(&valid)
            ),
            401,
        ),
        (
            "alg none, signature kept",
            format!(
                "{}.{}.{}",
                b64(&json!({"alg": "none"})),
                b64(&valid),
                good_hs.rsplit('.').next().unwrap_or("")
            ),
            401,
        ),
        (
            "HS256 keyed with the RSA public key (key confusion)",
            hs(&valid, &rsa_public, Some("rsa")),
            401,
        ),
        (
            "expired",
            hs(
                &claims(now - 3600, now - 7200, "portcullis-demo"),
                DEMO_SECRET.as_bytes(),
                None,
            ),
            401,
        ),
        (
            "not yet valid",
            hs(
                &claims(now + 7200, now + 3600, "portcullis-demo"),
                DEMO_SECRET.as_bytes(),
                None,
            ),
            401,
        ),
        (
            "wrong audience",
            hs(
                &claims(now + 600, now - 60, "someone-else"),
                DEMO_SECRET.as_bytes(),
                None,
            ),
            401,
        ),
        ("bad signature", bad_signature, 401),
        (
            "unknown kid",
            hs(&valid, DEMO_SECRET.as_bytes(), Some("nobody")),
            401,
        ),
        ("garbage", "not.a.jwt".into(), 401),
    ];
    let cases = tokens
        .into_iter()
        .map(|(name, token, status)| {
            (
                name,
                get(TABLE, &format!("Authorization: Bearer {token}\r\n")),
                status,
                (status == 200).then_some(TABLE),
            )
        })
        .collect();
    run(&t, cases).await;
    drop(t);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggling_and_oversized_requests_are_refused() {
    let t = Arc::new(target().await);
    let auth = format!("Authorization: Bearer {}\r\n", t.pat);
    // carol may write catalog/finance: her requests get as far as the body.
    let carol = format!(
        "Authorization: Bearer {}\r\n",
        demo_token("carol").expect("token")
    );
    let put = |extra: &str, body: &str| {
        format!(
            "PUT /envs/prod/catalogs/finance/tables/ledger HTTP/1.1\r\nHost: a\r\n{carol}{extra}Connection: close\r\n\r\n{body}"
        )
        .into_bytes()
    };
    let huge_header = format!("X-Big: {}\r\n", "a".repeat(20 * 1024));
    run(
        &t,
        vec![
            (
                "two different Content-Lengths",
                put("Content-Length: 4\r\nContent-Length: 5\r\n", "abcde"),
                400,
                None,
            ),
            (
                "obsolete line folding",
                get(TABLE, &format!("{auth}X-Folded: a\r\n  b\r\n")),
                400,
                None,
            ),
            (
                "a header over the limit",
                get(TABLE, &format!("{auth}{huge_header}")),
                431,
                None,
            ),
            (
                "a declared body over the limit",
                put(&format!("Content-Length: {}\r\n", 1 << 20), ""),
                413,
                None,
            ),
        ],
    )
    .await;

    // Content-Length with Transfer-Encoding (issue #12, hole 6): refused
    // with a 400 and the connection closed, in either order of the two
    // headers, so nothing reaches the upstream and what hides behind the
    // declared length is never read as a request. A well-framed request
    // pipelined before it on the same connection is still served.
    let t2 = Arc::clone(&t);
    tokio::task::spawn_blocking(move || {
        for (order, framing) in [
            ("CL first", "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n"),
            ("TE first", "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n"),
        ] {
            let before = t2.seen();
            let smuggle = format!(
                "PUT /envs/prod/catalogs/finance/tables/ledger HTTP/1.1\r\nHost: a\r\n{carol}{framing}\r\n0\r\n\r\nGET /orgs/acme/sso HTTP/1.1\r\nHost: a\r\n\r\n"
            );
            let (status, text) = t2.raw(smuggle.as_bytes());
            assert_eq!(status, 400, "{order}: {text}");
            assert!(text.to_ascii_lowercase().contains("connection: close"), "{order}: {text}");
            assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "{order}: a second answer: {text}");
            assert_eq!(t2.seen(), before, "{order}: reached the upstream");

            let before = t2.seen();
            let pipelined = format!(
                "PUT /envs/prod/catalogs/finance/tables/ledger HTTP/1.1\r\nHost: a\r\n{carol}Content-Length: 2\r\n\r\nok{smuggle}"
            );
            let (status, text) = t2.raw(pipelined.as_bytes());
            assert_eq!(status, 200, "{order}: {text}");
            assert_eq!(text.matches("HTTP/1.1 200").count(), 1, "{order}: {text}");
            assert_eq!(text.matches("HTTP/1.1 400").count(), 1, "{order}: {text}");
            assert_eq!(t2.seen(), before + 1, "{order}: {text}");

            // What might make a reader of the wire lose its place, before
            // the smuggling request: an Upgrade the gateway does not honour,
            // empty lines, a repeated equal Content-Length.
            let before = t2.seen();
            let disguised = format!(
                "PUT /envs/prod/catalogs/finance/tables/ledger HTTP/1.1\r\nHost: a\r\n{carol}Upgrade: websocket\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nok\r\n\r\n{smuggle}"
            );
            let (status, text) = t2.raw(disguised.as_bytes());
            assert_eq!(status, 200, "{order}: {text}");
            assert_eq!(text.matches("HTTP/1.1 400").count(), 1, "{order}: {text}");
            assert_eq!(t2.seen(), before + 1, "{order}: {text}");
        }
    })
    .await
    .expect("smuggling case");
    drop(t);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_is_not_on_the_public_listener() {
    let t = Arc::new(target().await);
    let auth = format!("Authorization: Bearer {}\r\n", t.pat);
    let before = t.running.revision();
    run(
        &t,
        vec![
            ("snapshot", get("/-/snapshot", &auth), 403, None),
            (
                "push",
                format!(
                    "PUT /-/snapshot?force=true HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {DEMO_ADMIN_TOKEN}\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
                )
                .into_bytes(),
                403,
                None,
            ),
            ("metrics", get("/-/metrics", ""), 403, None),
            ("readiness", get("/-/readyz", ""), 403, None),
        ],
    )
    .await;
    assert_eq!(t.running.revision(), before);
    drop(t);
}

/// A wildcard route whose rest hides dot segments behind path parameters
/// or one more encoding: Tomcat, Jetty and Spring cut `..;` to `..`, and an
/// upstream that decodes twice reads `%252e` as `.`. Issue #12, hole 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_segments_behind_path_parameters_or_double_encoding_are_refused() {
    let t = Arc::new(target().await);
    let auth = format!("Authorization: Bearer {}\r\n", t.pat);
    let g = |target: &str| get(target, &auth);
    run(
        &t,
        vec![
            (
                "..; climbs out of the wildcard in a servlet container",
                g("/envs/prod/catalogs/sales/tables/..;/..;/..;/..;/staging/catalogs/staging-sales/data"),
                400,
                None,
            ),
            (
                "%2e%2e; likewise",
                g("/envs/prod/catalogs/sales/tables/%2e%2e;/%2e%2e;/%2e%2e;/%2e%2e;/staging/catalogs/staging-sales/data"),
                400,
                None,
            ),
            (
                "a dot segment with a parameter value",
                g("/envs/prod/catalogs/sales/tables/.;x=1/orders"),
                400,
                None,
            ),
            (
                "..%3B for upstreams that decode before they split",
                g("/envs/prod/catalogs/sales/tables/..%3B/..%3B/x"),
                400,
                None,
            ),
            (
                "double-encoded dots",
                g("/envs/prod/catalogs/sales/tables/%252e%252e/%252e%252e/x"),
                400,
                None,
            ),
            (
                "double-encoded slash",
                g("/envs/prod/catalogs/sales/tables/a%252f..%252f..%252fx"),
                400,
                None,
            ),
            (
                "double encoding spelled with an encoded digit",
                g("/envs/prod/catalogs/sales/tables/%25%32e%25%32e/x"),
                400,
                None,
            ),
            (
                "a literal percent sign is still data",
                g("/envs/prod/catalogs/sales/tables/100%25"),
                200,
                Some("/envs/prod/catalogs/sales/tables/100%25"),
            ),
        ],
    )
    .await;
    drop(t);

    // The documented switch lets matrix parameters through, never a dot
    // segment carrying them.
    let t = Arc::new(target_with(|c| c.server.allow_path_parameters = true).await);
    let auth = format!("Authorization: Bearer {}\r\n", t.pat);
    let g = |target: &str| get(target, &auth);
    run(
        &t,
        vec![
            (
                "matrix parameters allowed",
                g("/envs/prod/catalogs/sales/tables/orders;v=2"),
                200,
                Some("/envs/prod/catalogs/sales/tables/orders;v=2"),
            ),
            (
                "..; still refused",
                g("/envs/prod/catalogs/sales/tables/..;/..;/..;/..;/staging/catalogs/staging-sales/data"),
                400,
                None,
            ),
        ],
    )
    .await;
    drop(t);
}

fn demo_claims(sub: &str) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    json!({"sub": sub, "iss": "portcullis-demo", "aud": "portcullis-demo", "exp": now + 600, "nbf": now - 60})
}

fn demo_sign(claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(DEMO_SECRET.as_bytes()),
    )
    .expect("sign")
}

/// A token whose subject spells another kind of principal: `support`
/// used to become the break-glass principal, `service/…` a service
/// account. Tokens name users unless the configuration maps them. Issue
/// #12, hole 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_subjects_cannot_name_support_or_other_kinds() {
    let t = Arc::new(target().await);
    let bearer = |sub: &str| format!("Authorization: Bearer {}\r\n", demo_sign(&demo_claims(sub)));
    let put = |sub: &str| {
        format!(
            "PUT /envs/prod/catalogs/sales/tables/orders HTTP/1.1\r\nHost: a\r\n{}Content-Length: 0\r\nConnection: close\r\n\r\n",
            bearer(sub)
        )
        .into_bytes()
    };
    run(
        &t,
        vec![
            (
                "sub support is a user named support, whom no directory holds",
                get("/orgs/acme/sso", &bearer("support")),
                403,
                None,
            ),
            (
                "sub service/… is refused",
                put("service/etl-loader"),
                401,
                None,
            ),
            (
                "sub apikey/… is refused",
                get(TABLE, &bearer("apikey/abc")),
                401,
                None,
            ),
            (
                "the demo's explicit mapping names the service account",
                put("svc:etl-loader"),
                200,
                Some("/envs/prod/catalogs/sales/tables/orders"),
            ),
        ],
    )
    .await;
    assert_eq!(
        t.last().expect("seen").header("x-portcullis-principal"),
        ["service/etl-loader"]
    );
    drop(t);

    // An explicit support subject is the only way to break glass.
    let t = Arc::new(
        target_with(|c| {
            if let Some(jwt) = c.identity.jwt.as_mut() {
                jwt.support
                    .push(portcullis_gateway::config::SupportSubject {
                        subject: "break-glass@vendor.example".into(),
                        issuer: Some("portcullis-demo".into()),
                    });
            }
        })
        .await,
    );
    run(
        &t,
        vec![
            (
                "support by name: still nobody",
                get("/orgs/acme/sso", &bearer("support")),
                403,
                None,
            ),
            (
                "the configured support subject",
                get("/orgs/acme/sso", &bearer("break-glass@vendor.example")),
                200,
                Some("/orgs/acme/sso"),
            ),
        ],
    )
    .await;
    assert_eq!(
        t.last().expect("seen").header("x-portcullis-principal"),
        ["support"]
    );
    drop(t);
}

/// CGI, WSGI and PHP read `X_Portcullis_Principal` as
/// `X-Portcullis-Principal`; `Forwarded` and `X-Forwarded-*` are the
/// gateway's to write. Issue #12, hole 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn look_alike_identity_and_forwarding_headers_are_stripped() {
    let t = Arc::new(target().await);
    let auth = format!("Authorization: Bearer {}\r\n", t.pat);
    run(
        &t,
        vec![(
            "look-alikes",
            get(
                TABLE,
                &format!(
                    "{auth}X_Portcullis_Principal: user/olivia\r\nx_portcullis_acting_as: user/olivia\r\nX-Portcullis_Revision: 9\r\nX_Forwarded_Host: admin.internal\r\nX_Forwarded_For: 10.0.0.1\r\nX-Forwarded-Port: 443\r\nX-Forwarded-Prefix: /admin\r\nX-Forwarded-Proto: https\r\nForwarded: for=10.0.0.1;host=admin.internal;proto=https\r\nX_Api_Key: pk_demo_sam_deploy\r\n"
                ),
            ),
            200,
            Some(TABLE),
        )],
    )
    .await;
    let seen = t.last().expect("seen");
    for (name, _) in &seen.headers {
        let n = name.replace('_', "-");
        assert!(
            !(name.contains('_')
                && (n.starts_with("x-portcullis-")
                    || n.starts_with("x-forwarded-")
                    || n == "x-api-key")),
            "{name} reached the upstream: {:?}",
            seen.headers
        );
    }
    assert_eq!(seen.header("x-portcullis-principal"), ["user/pat"]);
    assert_eq!(seen.header("forwarded"), Vec::<&str>::new());
    assert_eq!(seen.header("x-forwarded-port"), Vec::<&str>::new());
    assert_eq!(seen.header("x-forwarded-prefix"), Vec::<&str>::new());
    assert_eq!(seen.header("x-forwarded-proto"), ["http"]);
    assert_eq!(seen.header("x-forwarded-host"), ["app.example"]);

    // HTTP/1.0 without Host: no X-Forwarded-Host at all, not the client's.
    run(
        &t,
        vec![(
            "HTTP/1.0 without Host",
            format!("GET {TABLE} HTTP/1.0\r\n{auth}X-Forwarded-Host: admin.internal\r\n\r\n")
                .into_bytes(),
            200,
            Some(TABLE),
        )],
    )
    .await;
    assert_eq!(
        t.last().expect("seen").header("x-forwarded-host"),
        Vec::<&str>::new()
    );
    drop(t);
}

/// A host is a name or an IP literal with an optional decimal port; junk
/// after it used to route as the name and reach the upstream in
/// `X-Forwarded-Host`. Issue #12, hole 4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_with_junk_are_refused() {
    let t = Arc::new(target().await);
    let auth = format!("Authorization: Bearer {}\r\n", t.pat);
    let with_host = |host: &str| {
        format!("GET {TABLE} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n")
            .into_bytes()
    };
    run(
        &t,
        vec![
            (
                "userinfo after a port",
                with_host("admin.internal:1@evil.example"),
                400,
                None,
            ),
            (
                "a port that is not a number",
                with_host("admin.internal:evil"),
                400,
                None,
            ),
            ("an empty port", with_host("admin.internal:"), 400, None),
            (
                "a port over 65535",
                with_host("admin.internal:70000"),
                400,
                None,
            ),
            ("a space", with_host("admin internal"), 400, None),
            ("an unclosed IPv6 literal", with_host("[::1"), 400, None),
            (
                "a trailing dot is normalized",
                with_host("App.Example."),
                200,
                Some(TABLE),
            ),
        ],
    )
    .await;
    assert_eq!(
        t.last().expect("seen").header("x-forwarded-host"),
        ["app.example"]
    );

    // HTTP/2: :authority and Host must name the same host (RFC 9113 §8.3.1).
    let stream = tokio::net::TcpStream::connect(t.addr)
        .await
        .expect("connect");
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(conn);
    let before = t.seen();
    let request = |host: &str| {
        hyper::Request::builder()
            .uri(format!("http://app.example{TABLE}"))
            .header("host", host)
            .header("authorization", format!("Bearer {}", t.pat))
            .body(http_body_util::Empty::<Bytes>::new())
            .expect("request")
    };
    let r = sender
        .send_request(request("admin.internal"))
        .await
        .expect("h2 answer");
    assert_eq!(r.status(), 400);
    assert_eq!(
        t.seen(),
        before,
        "a mismatched :authority reached the upstream"
    );
    let r = sender
        .send_request(request("app.example"))
        .await
        .expect("h2 answer");
    assert_eq!(r.status(), 200);
    drop(t);
}

/// `nbf` as a float or a string used to be ignored (a not-yet-valid token
/// was accepted) while a float `exp` was refused. Issue #12, hole 5.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_claims_of_the_wrong_json_type_are_401() {
    let t = Arc::new(target().await);
    let later = demo_claims("pat")["exp"].as_i64().unwrap_or(0) + 3600;
    let token = |claim: &str, value: Value| {
        let mut c = demo_claims("pat");
        c[claim] = value;
        format!("Authorization: Bearer {}\r\n", demo_sign(&c))
    };
    run(
        &t,
        vec![
            (
                "nbf a float in the future",
                get(TABLE, &token("nbf", json!(later as f64 + 0.5))),
                401,
                None,
            ),
            (
                "nbf a string in the future",
                get(TABLE, &token("nbf", json!(later.to_string()))),
                401,
                None,
            ),
            (
                "exp a float",
                get(TABLE, &token("exp", json!(later as f64 + 0.5))),
                401,
                None,
            ),
            (
                "exp a string",
                get(TABLE, &token("exp", json!(later.to_string()))),
                401,
                None,
            ),
            (
                "iat a string",
                get(TABLE, &token("iat", json!("now"))),
                401,
                None,
            ),
            (
                "integers",
                get(TABLE, &token("iat", json!(later - 7200))),
                200,
                Some(TABLE),
            ),
        ],
    )
    .await;
    drop(t);
}

/// `/-/snapshot/me` is an action like any other: a disabled or unknown
/// principal is denied it. Issue #12, hole 9.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_snapshots_are_denied_to_principals_who_cannot_act() {
    let t = Arc::new(target().await);
    let t2 = Arc::clone(&t);
    tokio::task::spawn_blocking(move || {
        for (who, status, reason) in [
            ("pat", 200, None),
            ("dan", 403, Some("account_disabled")),
            ("zoe", 403, Some("account_deactivated")),
            ("eve", 403, Some("account_expired")),
            ("nina", 403, Some("notification_only")),
            ("nobody", 403, Some("unknown_principal")),
        ] {
            let token = demo_token(who).expect("token");
            let (got, text) = t2.raw(&get(
                "/-/snapshot/me",
                &format!("Authorization: Bearer {token}\r\n"),
            ));
            assert_eq!(got, status, "{who}: {text}");
            if let Some(reason) = reason {
                assert!(
                    text.contains(&format!("\"reason\":\"{reason}\"")),
                    "{who}: {text}"
                );
            }
        }
    })
    .await
    .expect("cases");
    drop(t);
}

/// `X-HTTP-Method-Override` and its cousins let a client turn an allowed
/// GET into a DELETE at upstreams that honour them. Stripped by default;
/// with the switch, the overriding method is the one authorized. Issue
/// #12, hole 10.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_overrides_are_stripped_or_authorized() {
    let t = Arc::new(target().await);
    let auth = format!("Authorization: Bearer {}\r\n", t.pat);
    run(
        &t,
        vec![(
            "overrides on an allowed GET",
            get(
                TABLE,
                &format!("{auth}X-HTTP-Method-Override: DELETE\r\nX-HTTP-Method: DELETE\r\nX-Method-Override: DELETE\r\nX_HTTP_Method_Override: DELETE\r\n"),
            ),
            200,
            Some(TABLE),
        )],
    )
    .await;
    let seen = t.last().expect("seen");
    for name in [
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
        "x_http_method_override",
    ] {
        assert_eq!(
            seen.header(name),
            Vec::<&str>::new(),
            "{name} reached the upstream"
        );
    }
    drop(t);

    let t = Arc::new(target_with(|c| c.server.allow_method_override = true).await);
    let auth = format!("Authorization: Bearer {}\r\n", t.pat);
    run(
        &t,
        vec![
            (
                "an override is authorized as the method it names (pat may not write)",
                get(TABLE, &format!("{auth}X-HTTP-Method-Override: DELETE\r\n")),
                403,
                None,
            ),
            (
                "overrides that disagree",
                get(
                    TABLE,
                    &format!("{auth}X-HTTP-Method-Override: GET\r\nX-HTTP-Method: DELETE\r\n"),
                ),
                400,
                None,
            ),
            (
                "an override naming the method it is",
                get(TABLE, &format!("{auth}X-HTTP-Method-Override: GET\r\n")),
                200,
                Some(TABLE),
            ),
        ],
    )
    .await;
    assert_eq!(
        t.last().expect("seen").header("x-http-method-override"),
        ["GET"]
    );
    drop(t);
}

/// The framing follower must follow every head hyper accepts: with
/// `server.max_header_bytes` above the follower's own floor, one large (but
/// accepted) head must not make it lose its place, and a smuggling request
/// after it on the same connection is still refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_accepted_head_does_not_hide_a_smuggling_request() {
    let t = Arc::new(
        target_with(|c| {
            c.server.max_header_bytes = 256 * 1024;
        })
        .await,
    );
    let carol = format!(
        "Authorization: Bearer {}\r\n",
        demo_token("carol").expect("token")
    );
    let big = format!("X-Big: {}\r\n", "a".repeat(100 * 1024));
    let t2 = Arc::clone(&t);
    tokio::task::spawn_blocking(move || {
        let before = t2.seen();
        let wire = format!(
            "PUT /envs/prod/catalogs/finance/tables/ledger HTTP/1.1\r\nHost: a\r\n{carol}{big}Content-Length: 2\r\n\r\nok\
PUT /envs/prod/catalogs/finance/tables/ledger HTTP/1.1\r\nHost: a\r\n{carol}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /orgs/acme/sso HTTP/1.1\r\nHost: a\r\n\r\n"
        );
        // In pieces, as a slow network delivers it: the large head reaches
        // the gateway over several reads.
        let mut s = TcpStream::connect(t2.addr).expect("connect");
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        for piece in wire.as_bytes().chunks(16 * 1024) {
            s.write_all(piece).expect("write");
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert_eq!(text.matches("HTTP/1.1 400").count(), 1, "{text}");
        assert_eq!(t2.seen(), before + 1, "{text}");
    })
    .await
    .expect("case");
    drop(t);
}
