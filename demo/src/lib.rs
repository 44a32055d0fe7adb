//! `portcullis demo`: the gateway with the embedded example directory
//! (`snapshots/examples/acme.json`), a built-in upstream that echoes what
//! it was sent, demo tokens and keys, and ready-to-paste curl commands —
//! or, with `--walkthrough`, the same steps run and checked in-process.
//!
//! Also the fixtures the test suites start gateways with
//! ([`DemoOptions::for_tests`], [`demo_config`], [`echo_upstream`],
//! [`event_stream_upstream`], [`example_snapshot`], [`demo_token`]): they
//! live here, above the gateway, so that no fixture is public API of the
//! gateway library.

pub mod tls;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use portcullis_gateway::config::{
    AdminConfig, GatewayConfig, LogConfig, ServerConfig, SnapshotConfig, UpstreamConfig,
};
use portcullis_gateway::config::{
    IdentityConfig, JwtConfig, KeyConfig, RouteSpec, ServiceAccountMapping,
};
use portcullis_gateway::response::{Body, empty, full, json_response};
use portcullis_gateway::server::{Running, start_with_site};
use portcullis_gateway::static_site::StaticSite;

/// The example directory, compiled into the binary.
pub const EXAMPLE_DIRECTORY: &str = include_str!("../../snapshots/examples/acme.json");
/// HS256 secret of the demo tokens. Demo only: anyone can mint tokens with it.
pub const DEMO_SECRET: &str = "portcullis-demo-secret-do-not-use-in-production";
/// The demo's admin token for snapshot pushes.
pub const DEMO_ADMIN_TOKEN: &str = "demo-admin-token-0123456789";
/// Sam's API key in the example directory (its SHA-256 is stored there).
pub const DEMO_API_KEY: &str = "pk_demo_sam_deploy";
const ISSUER: &str = "portcullis-demo";

/// Where the demo listens.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// The proxy listener.
    pub listen: SocketAddr,
    /// The admin listener.
    pub admin_listen: SocketAddr,
    /// Decision log target (`stdout`, `stderr`, `off`, a path).
    pub decision_log: String,
    /// Where the second revision is written for the push step.
    pub work_dir: PathBuf,
    /// The browser package (`scripts/build-browser`) for the demo page;
    /// without it the page explains how to build it.
    pub browser_pkg: Option<PathBuf>,
    /// `server.header_read_timeout_ms`: how long a client may take to send
    /// a request head (and how long an idle connection is kept).
    pub header_read_timeout_ms: u64,
    /// HTTPS on the proxy listener, with a CA and certificate made in
    /// `work_dir` (`demo --tls`).
    pub tls: bool,
    /// The directory service beside the gateway (its database in
    /// `work_dir`, made afresh from the example): the demo page's buttons
    /// are its writes, pushed to the gateway as they commit. `None`: no
    /// directory service (the test fixtures).
    pub directory_listen: Option<SocketAddr>,
}

impl DemoOptions {
    /// Both listeners on free ports of 127.0.0.1, no decision log, no
    /// browser package, files in `work_dir`: the demo configuration as
    /// tests and fuzz targets use it.
    pub fn for_tests(work_dir: &std::path::Path) -> Self {
        let local = SocketAddr::from(([127, 0, 0, 1], 0));
        DemoOptions {
            listen: local,
            admin_listen: local,
            decision_log: "off".into(),
            work_dir: work_dir.to_path_buf(),
            browser_pkg: None,
            header_read_timeout_ms: ServerConfig::default().header_read_timeout_ms,
            tls: false,
            directory_listen: None,
        }
    }
}

/// A running demo.
pub struct Demo {
    /// The gateway.
    pub gateway: Running,
    /// The built-in upstream.
    pub upstream: SocketAddr,
    /// Revision 2 of the example (pat becomes a writer on `catalog/sales`).
    pub v2_path: PathBuf,
    /// Tokens by username.
    pub tokens: BTreeMap<&'static str, String>,
    /// With `--tls`: the CA certificate clients trust.
    pub ca: Option<PathBuf>,
    /// The directory service, when the demo runs one.
    pub directory: Option<DirectoryDemo>,
}

/// The directory service the demo runs, stopped when this is dropped.
pub struct DirectoryDemo {
    /// Where its API listens.
    pub addr: SocketAddr,
    _stop: tokio::sync::watch::Sender<bool>,
}

/// Builds the example directory as a snapshot; `edit` may change the JSON
/// first (revision, grants, …).
pub fn example_snapshot(edit: impl FnOnce(&mut Value)) -> Result<Vec<u8>, String> {
    let mut v: Value = serde_json::from_str(EXAMPLE_DIRECTORY).map_err(|e| e.to_string())?;
    edit(&mut v);
    let text = v.to_string();
    let (directory, body) = portcullis_snapshots::source::build(&text)
        .map_err(|p| p.render("snapshots/examples/acme.json"))?;
    let revision = directory.revision.unwrap_or(1);
    let created = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    portcullis_snapshots::encode(&body, revision, created).map_err(|e| e.to_string())
}

/// Revision 2: pat gets writer on the sales catalog.
pub fn example_v2() -> Result<Vec<u8>, String> {
    example_snapshot(|v| {
        v["revision"] = json!(2);
        if let Some(grants) = v["grants"].as_array_mut() {
            grants.push(json!({"principal": "user/pat", "role": "writer", "on": "catalog/sales"}));
        }
    })
}

/// A demo bearer token for `username`, valid for a week.
pub fn demo_token(username: &str) -> Result<String, String> {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    demo_sign(&json!({
        "sub": username,
        "iss": ISSUER,
        "aud": ISSUER,
        "iat": now,
        "exp": now + 7 * 24 * 3600,
    }))
}

/// Any claims, signed as the demo's identity provider signs them (HS256
/// with [`DEMO_SECRET`]): for trying odd tokens against the demo.
pub fn demo_sign(claims: &Value) -> Result<String, String> {
    jsonwebtoken::encode(
        &Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(DEMO_SECRET.as_bytes()),
    )
    .map_err(|e| e.to_string())
}

/// The demo's routes over the example directory.
pub fn demo_routes() -> Vec<RouteSpec> {
    let route =
        |name: &str, methods: &[&str], path: &str, action: &str, resource: &str| RouteSpec {
            name: Some(name.into()),
            host: None,
            methods: methods.iter().map(|m| m.to_string()).collect(),
            path: path.into(),
            upstream: "app".into(),
            action: action.into(),
            resource: resource.into(),
            shadow: false,
            assertion: false,
        };
    vec![
        route(
            "read-table",
            &["GET", "HEAD"],
            "/envs/{env}/catalogs/{catalog}/tables/*",
            "read",
            "catalog/{catalog}",
        ),
        route(
            "write-table",
            &["PUT", "POST", "PATCH", "DELETE"],
            "/envs/{env}/catalogs/{catalog}/tables/*",
            "write",
            "catalog/{catalog}",
        ),
        route("open-env", &["GET"], "/envs/{env}", "env:open", "env/{env}"),
        route(
            "view-user",
            &["GET"],
            "/users/{user}",
            "user:view",
            "user/{user}",
        ),
        route(
            "update-user",
            &["PATCH", "PUT"],
            "/users/{user}",
            "user:update",
            "user/{user}",
        ),
        route(
            "deactivate-user",
            &["POST"],
            "/users/{user}/deactivate",
            "user:deactivate",
            "user/{user}",
        ),
        route(
            "sso-settings",
            &["GET", "PUT"],
            "/orgs/{org}/sso",
            "admin:sso",
            "org/{org}",
        ),
    ]
}

/// The gateway configuration of the demo.
pub fn demo_config(opts: &DemoOptions, upstream: SocketAddr) -> GatewayConfig {
    GatewayConfig {
        server: ServerConfig {
            listen: opts.listen,
            header_read_timeout_ms: opts.header_read_timeout_ms,
            ..ServerConfig::default()
        },
        admin: AdminConfig {
            listen: opts.admin_listen,
            token: Some(DEMO_ADMIN_TOKEN.into()),
            token_file: None,
            tls: None,
        },
        snapshot: SnapshotConfig::default(),
        engine: Default::default(),
        // The decision endpoint on the proxy listener, for `curl` and for
        // trying an nginx/Traefik/Envoy configuration against the demo.
        decision: portcullis_gateway::config::DecisionConfig {
            path_prefix: Some("/-/authz".into()),
            ..Default::default()
        },
        identity: IdentityConfig {
            jwt: Some(JwtConfig {
                issuers: vec![ISSUER.into()],
                audiences: vec![ISSUER.into()],
                principal_claim: "sub".into(),
                // The demo's service account signs in as `svc:<id>`.
                service_accounts: vec![ServiceAccountMapping {
                    issuer: None,
                    prefix: Some("svc:".into()),
                    claim: None,
                }],
                support: Vec::new(),
                leeway_seconds: 30,
                keys: vec![KeyConfig {
                    kid: None,
                    alg: "HS256".into(),
                    secret: Some(DEMO_SECRET.into()),
                    pem: None,
                    pem_file: None,
                }],
                jwks_file: None,
                jwks_url: None,
                oidc_issuer: None,
                jwks_ca_file: None,
                jwks_refresh_s: 3600,
                jwks_min_refresh_s: 30,
                jwks_timeout_ms: 10_000,
            }),
            api_key_header: "x-api-key".into(),
        },
        upstreams: BTreeMap::from([(
            "app".to_string(),
            UpstreamConfig {
                url: format!("http://{upstream}"),
                protocol: Default::default(),
                ca_file: None,
                server_name: None,
                connect_timeout_ms: 2_000,
                timeout_ms: 30_000,
                pool_max_idle: 64,
                forward_authorization: false,
            },
        )]),
        routes: demo_routes(),
        log: LogConfig {
            decisions: opts.decision_log.clone(),
        },
        assertion: None,
    }
}

/// A body that sends `data: N` every 50 ms, without end: a stream of
/// server-sent events.
struct Ticking {
    every: tokio::time::Interval,
    n: u64,
}

impl hyper::body::Body for Ticking {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        match self.every.poll_tick(cx) {
            std::task::Poll::Ready(_) => {
                self.n += 1;
                let event = format!("data: {}\n\n", self.n);
                std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(event.into()))))
            }
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}

/// An upstream that answers every request with a stream of server-sent
/// events that never ends (for the tests of long-lived responses).
pub async fn event_stream_upstream(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(|_: Request<Incoming>| async {
                    hyper::Response::builder()
                        .header("content-type", "text/event-stream")
                        .body(Ticking {
                            every: tokio::time::interval(std::time::Duration::from_millis(50)),
                            n: 0,
                        })
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(local)
}

/// An upstream that answers every request with what it received: the
/// method, the path and the gateway's identity headers.
pub async fn echo_upstream(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = service_fn(|req: Request<Incoming>| async move {
                    let h = |n: &str| {
                        req.headers()
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string)
                    };
                    let seen = json!({
                        "upstream": "demo",
                        "method": req.method().as_str(),
                        "path": req.uri().path(),
                        "query": req.uri().query(),
                        "x-portcullis-principal": h("x-portcullis-principal"),
                        "x-portcullis-acting-as": h("x-portcullis-acting-as"),
                        "x-portcullis-revision": h("x-portcullis-revision"),
                        "x-forwarded-for": h("x-forwarded-for"),
                        "x-forwarded-host": h("x-forwarded-host"),
                        "x-forwarded-proto": h("x-forwarded-proto"),
                        "x-portcullis-assertion": h("x-portcullis-assertion"),
                    });
                    Ok::<_, std::convert::Infallible>(json_response(StatusCode::OK, &seen))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(local)
}

/// The users of the demo's token picker: a reader, a writer of one
/// catalog, owners and administrators, team members, a disabled account.
pub const DEMO_USERS: [&str; 9] = [
    "pat", "carol", "wendy", "olivia", "sam", "adam", "lee", "kim", "dan",
];

/// The demo page's path on the proxy listener.
pub const DEMO_PAGE: &str = "/-/demo/";

/// The page, its `info` (tokens and the example's ids) and, if built, the
/// browser package.
fn demo_site(
    tokens: &BTreeMap<&'static str, String>,
    pkg: Option<&std::path::Path>,
    directory: Option<SocketAddr>,
) -> Result<StaticSite, String> {
    let mut site = StaticSite::new(DEMO_PAGE);
    let dir: Value = serde_json::from_str(EXAMPLE_DIRECTORY).map_err(|e| e.to_string())?;
    let ids = |section: &str, key: &str| -> Vec<Value> {
        dir.get(section)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|x| x.get(key).cloned().unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default()
    };
    let info = json!({
        "tokens": tokens,
        "environments": ids("environments", "id"),
        "catalogs": ids("catalogs", "id"),
        "users": ids("users", "username"),
        "directory": directory.map(|a| format!("http://{a}")),
    });
    site.add("info", "application/json", info.to_string());
    let built = pkg.filter(|p| p.join("portcullis_bg.wasm").is_file());
    match built {
        Some(pkg) => {
            site.add("", "text/html; charset=utf-8", include_str!("../page/index.html"));
            let mut files = vec![
                ("portcullis.js".to_string(), "text/javascript"),
                ("portcullis_bg.wasm".to_string(), "application/wasm"),
            ];
            // The JavaScript the module imports (wasm-bindgen's snippets).
            files.extend(
                snippets(&pkg.join("snippets"), "snippets")
                    .into_iter()
                    .map(|name| (name, "text/javascript")),
            );
            for (name, kind) in files {
                let bytes = std::fs::read(pkg.join(&name))
                    .map_err(|e| format!("{}: {e}", pkg.join(&name).display()))?;
                site.add(&format!("pkg/{name}"), kind, bytes);
            }
        }
        None => site.add(
            "",
            "text/html; charset=utf-8",
            "<!doctype html><title>Portcullis demo</title><p>The browser package is not built: run \
             <code>scripts/build-browser</code> (or <code>scripts/demo</code>, which does) and restart the demo.",
        ),
    }
    Ok(site)
}

/// The `.js` files below `dir`, as paths relative to the package (`rel`).
fn snippets(dir: &Path, rel: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if path.is_dir() {
            out.extend(snippets(&path, &format!("{rel}/{name}")));
        } else if name.ends_with(".js") {
            out.push(format!("{rel}/{name}"));
        }
    }
    out.sort();
    out
}

/// Starts the upstream and the gateway with revision 1 of the example,
/// and writes revision 2 for the push step.
pub async fn start_demo(opts: DemoOptions) -> Result<Demo, String> {
    let upstream = echo_upstream(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .map_err(|e| format!("demo upstream: {e}"))?;
    let v1 = example_snapshot(|_| {})?;
    std::fs::create_dir_all(&opts.work_dir)
        .map_err(|e| format!("cannot create {}: {e}", opts.work_dir.display()))?;
    let v2_path = opts.work_dir.join("acme-v2.snap");
    std::fs::write(&v2_path, example_v2()?)
        .map_err(|e| format!("cannot write {}: {e}", v2_path.display()))?;
    let mut tokens = BTreeMap::new();
    for user in DEMO_USERS {
        tokens.insert(user, demo_token(user)?);
    }
    // The directory service's listener first: the page needs its address.
    let directory_listener = match opts.directory_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|e| format!("directory service on {addr}: {e}"))?,
        ),
        None => None,
    };
    let directory_addr = directory_listener
        .as_ref()
        .and_then(|l| l.local_addr().ok());
    let site = demo_site(&tokens, opts.browser_pkg.as_deref(), directory_addr)?;
    let mut config = demo_config(&opts, upstream);
    let identity = config.identity.clone();
    let mut ca = None;
    if opts.tls {
        let tls = crate::tls::make(&opts.work_dir)?;
        config.server.tls = Some(tls.config);
        ca = Some(tls.ca);
    }
    let scheme = if opts.tls { "https" } else { "http" };
    let gateway = start_with_site(config, Some(v1), Some(site))
        .await
        .map_err(|e| e.to_string())?;
    let directory = match directory_listener {
        Some(listener) => Some(
            start_directory(
                &opts.work_dir,
                listener,
                identity,
                format!("{scheme}://{}", gateway.proxy_addr),
                gateway.admin_addr,
            )
            .await?,
        ),
        None => None,
    };
    Ok(Demo {
        gateway,
        upstream,
        v2_path,
        tokens,
        ca,
        directory,
    })
}

/// The directory service of the demo: a new database holding the example
/// (revision 1, as the gateway's), identifying callers as the gateway
/// does, pushing every revision to the gateway's admin API, answering the
/// demo page's origin.
async fn start_directory(
    work_dir: &Path,
    listener: TcpListener,
    identity: IdentityConfig,
    page_origin: String,
    admin: SocketAddr,
) -> Result<DirectoryDemo, String> {
    use portcullis_directory::config::{DirectoryConfig, PublishConfig};
    use portcullis_directory::push::PushTarget;
    use portcullis_directory::service::{Provenance, Service};
    use portcullis_directory::storage::Sqlite;

    let database = work_dir.join("directory.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", database.display()));
    }
    let (directory, _) = portcullis_snapshots::source::build(EXAMPLE_DIRECTORY)
        .map_err(|p| p.render("snapshots/examples/acme.json"))?;
    {
        let storage = Sqlite::open(&database).map_err(|e| e.to_string())?;
        let service = Service::open(Box::new(storage)).map_err(|e| e.to_string())?;
        service
            .import(
                &directory,
                "operator",
                false,
                &Provenance {
                    via: "import",
                    ..Provenance::default()
                },
            )
            .map_err(|e| e.to_string())?;
    }
    let config = DirectoryConfig {
        max_database_mb: None,
        listen: listener.local_addr().map_err(|e| e.to_string())?,
        database,
        identity,
        max_body_bytes: 1 << 20,
        publish: PublishConfig {
            coalesce_ms: 100,
            gateways: vec![PushTarget {
                admin_url: format!("http://{admin}"),
                token: DEMO_ADMIN_TOKEN.into(),
            }],
            ..PublishConfig::default()
        },
        cors_origins: vec![page_origin],
        tls: None,
    };
    let api = portcullis_directory::server::start(&config)?;
    let addr = config.listen;
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        if let Err(e) = portcullis_directory::server::serve(api, listener, stop).await {
            eprintln!("the demo's directory service stopped: {e}");
        }
    });
    Ok(DirectoryDemo {
        addr,
        _stop: stop_tx,
    })
}

impl Demo {
    /// `https` with `--tls`.
    fn scheme(&self) -> &'static str {
        if self.ca.is_some() { "https" } else { "http" }
    }

    fn token(&self, user: &str) -> &str {
        self.tokens.get(user).map_or("", |t| t.as_str())
    }

    /// The curl commands to paste, with what each shows.
    pub fn instructions(&self) -> String {
        let gw = self.gateway.proxy_addr;
        let admin = self.gateway.admin_addr;
        let scheme = self.scheme();
        let trust = match &self.ca {
            Some(ca) => format!(
                "\n# HTTPS with a CA made for this run (not for production): curl trusts it with\nexport CURL_CA_BUNDLE={}\n",
                ca.display()
            ),
            None => String::new(),
        };
        format!(
            r#"Portcullis demo: gateway on {scheme}://{gw}, admin API on http://{admin}, demo upstream on http://{up}
Directory: snapshots/examples/acme.json (revision 1), decided in the WebAssembly engine.
{trust}
# Demo credentials (HS256 tokens valid for a week, and sam's API key):
export PAT={pat}
export ADAM={adam}
export KEY={key}

# 1. Allowed: pat reads the sales catalog (group analysts holds reader on env/prod).
curl -s {scheme}://{gw}/envs/prod/catalogs/sales/tables/orders -H "Authorization: Bearer $PAT"

# 2. Denied, with the reason: pat may not write there.
curl -s -X PUT {scheme}://{gw}/envs/prod/catalogs/sales/tables/orders -H "Authorization: Bearer $PAT"

# 3. Denied by a rule no grant overrides: an administrator cannot act on an owner.
curl -s -X PATCH {scheme}://{gw}/users/olivia -H "Authorization: Bearer $ADAM"

# 4. 401: no credentials (see the WWW-Authenticate header).
curl -si {scheme}://{gw}/envs/prod/catalogs/sales/tables/orders

# 5. An API key acts as its creator; a forged identity header is stripped.
curl -s {scheme}://{gw}/orgs/acme/sso -H "X-API-Key: $KEY" -H "X-Portcullis-Principal: user/olivia"

# 6. Path tricks are normalized before matching or refused (this one is 400).
curl -s --path-as-is "{scheme}://{gw}/envs/prod/catalogs/sales%2Ftables/orders" -H "Authorization: Bearer $PAT"

{step7}
# 8. The decision endpoint, for services that ask before they act (and the
#    nginx auth_request / Traefik / Envoy adapters beside it: docs/gateway.md).
curl -s {scheme}://{gw}/-/authz/v1/check -d '{{"principal": "user/adam", "action": "user:update", "resource": "user/olivia"}}'
curl -s -o /dev/null -w '%{{http_code}}\n' {scheme}://{gw}/-/authz/v1/nginx -H "X-Original-Method: GET" \
     -H "X-Original-URI: /envs/prod/catalogs/sales/tables/orders" -H "Authorization: Bearer $PAT"

# Operations: readiness, metrics, the serving snapshot.
curl -s http://{admin}/-/readyz; curl -s http://{admin}/-/metrics | grep portcullis_requests; curl -s http://{admin}/-/snapshot

# In a browser: permission hints from the same engine, compiled to WebAssembly.
#    {scheme}://{gw}/-/demo/   (sign in as a demo user; push revision 2 and press Refresh)

Every decision is logged below as one JSON line. Ctrl-C stops the demo.
"#,
            up = self.upstream,
            pat = self.token("pat"),
            adam = self.token("adam"),
            key = DEMO_API_KEY,
            step7 = self.step7(),
        )
    }

    /// Step 7 of the instructions: a write through the directory service
    /// (or, without one, a hand-built revision pushed).
    fn step7(&self) -> String {
        let gw = self.gateway.proxy_addr;
        let admin = self.gateway.admin_addr;
        let v2 = self.v2_path.display();
        let scheme = self.scheme();
        let tok = DEMO_ADMIN_TOKEN;
        let push = format!(
            "curl -s -X PUT --data-binary @{v2} http://{admin}/-/snapshot -H \"Authorization: Bearer {tok}\""
        );
        match &self.directory {
            Some(d) => format!(
                r#"# 7. The directory service (http://{dir}): olivia (an owner) grants pat write access on
#    catalog/sales. The engine decides the write as olivia; the answer names the revision that
#    holds it, pushed to the gateway at once. Repeat step 2 at that revision: now allowed.
export OLIVIA={olivia}
curl -s -X POST http://{dir}/v1/directory/grants -H "Authorization: Bearer $OLIVIA" \
     -d '{{"grant": {{"principal": "user/pat", "role": "writer", "on": "catalog/sales"}}}}'
curl -s -X PUT {scheme}://{gw}/envs/prod/catalogs/sales/tables/orders -H "Authorization: Bearer $PAT" \
     -H "X-Portcullis-Min-Revision: 2"
#    Refused, with the seed's reason: an administrator deactivating an owner.
curl -s -X POST http://{dir}/v1/directory/users/olivia/deactivate -H "Authorization: Bearer $ADAM"
#    The change log: who changed what, and the decision that allowed it.
curl -s http://{dir}/v1/directory/changes -H "Authorization: Bearer $OLIVIA"

# 9. SCIM 2.0 for identity providers: base URL http://{dir}/scim/v2/acme, token $KEY (sam's API key;
#    sam is a super administrator). First an owner or super administrator names the key as acme's
#    SCIM token; then provision as Okta or Entra would (create, probe, deactivate with PATCH).
curl -s -X PUT http://{dir}/v1/directory/settings/scim -H "Authorization: Bearer $OLIVIA" \
     -d '{{"organizations": {{"acme": {{"credentials": ["key/sam-deploy"]}}}}}}'
curl -s -X POST http://{dir}/scim/v2/acme/Users -H "Authorization: Bearer $KEY" -H "Content-Type: application/scim+json" \
     -d '{{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "jo@acme.example", "emails": [{{"value": "jo@acme.example", "primary": true}}], "active": true}}'
curl -s -G http://{dir}/scim/v2/acme/Users -H "Authorization: Bearer $KEY" --data-urlencode 'filter=userName eq "jo@acme.example"'
curl -s -X PATCH http://{dir}/scim/v2/acme/Users/jo@acme.example -H "Authorization: Bearer $KEY" \
     -d '{{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{{"op": "replace", "value": {{"active": false}}}}]}}'
#    (Without the directory service, push a hand-built revision 2 instead:
#     {push})"#,
                dir = d.addr,
                olivia = self.token("olivia"),
            ),
            None => format!(
                r#"# 7. Push revision 2 (pat becomes a writer on catalog/sales), then repeat step 2: now allowed.
{push}
#    (or: portcullis snapshot push {v2} --to http://{admin} --token {tok})
curl -s -X PUT {scheme}://{gw}/envs/prod/catalogs/sales/tables/orders -H "Authorization: Bearer $PAT""#
            ),
        }
    }

    /// Runs the demo's steps against the live gateway and checks each
    /// answer; returns a report, or the first step that went wrong.
    pub async fn walkthrough(&self) -> Result<String, String> {
        let client = crate::tls::walk_client(self.ca.as_deref())?;
        let gw = format!("{}://{}", self.scheme(), self.gateway.proxy_addr);
        let admin = format!("http://{}", self.gateway.admin_addr);
        let pat = format!("Bearer {}", self.token("pat"));
        let adam = format!("Bearer {}", self.token("adam"));
        let bearer = format!("Bearer {DEMO_ADMIN_TOKEN}");
        let table = format!("{gw}/envs/prod/catalogs/sales/tables/orders");
        let v2 = std::fs::read(&self.v2_path).map_err(|e| e.to_string())?;
        let olivia = format!("Bearer {}", self.token("olivia"));
        let grant =
            json!({"grant": {"principal": "user/pat", "role": "writer", "on": "catalog/sales"}})
                .to_string()
                .into_bytes();
        // Step 7 through the directory service when the demo runs one.
        let step7: Vec<Step<'_>> = match &self.directory {
            Some(d) => vec![
                (
                    "7. olivia (owner) grants pat write on catalog/sales through the directory service",
                    Method::POST,
                    format!("http://{}/v1/directory/grants", d.addr),
                    vec![("authorization", &olivia)],
                    Some(grant),
                    StatusCode::OK,
                ),
                (
                    "   pat writes catalog/sales again, at the revision of the grant",
                    Method::PUT,
                    table.clone(),
                    vec![("authorization", &pat), ("x-portcullis-min-revision", "2")],
                    None,
                    StatusCode::OK,
                ),
                (
                    "   adam (administrator) deactivates olivia (owner) through the directory service",
                    Method::POST,
                    format!("http://{}/v1/directory/users/olivia/deactivate", d.addr),
                    vec![("authorization", &adam)],
                    None,
                    StatusCode::FORBIDDEN,
                ),
            ],
            None => vec![
                (
                    "7. push revision 2",
                    Method::PUT,
                    format!("{admin}/-/snapshot"),
                    vec![("authorization", &bearer)],
                    Some(v2),
                    StatusCode::OK,
                ),
                (
                    "   pat writes catalog/sales again",
                    Method::PUT,
                    table.clone(),
                    vec![("authorization", &pat)],
                    None,
                    StatusCode::OK,
                ),
            ],
        };
        let steps: Vec<Step<'_>> = vec![
            (
                "1. pat reads catalog/sales",
                Method::GET,
                table.clone(),
                vec![("authorization", &pat)],
                None,
                StatusCode::OK,
            ),
            (
                "2. pat writes catalog/sales",
                Method::PUT,
                table.clone(),
                vec![("authorization", &pat)],
                None,
                StatusCode::FORBIDDEN,
            ),
            (
                "3. adam (administrator) updates olivia (owner)",
                Method::PATCH,
                format!("{gw}/users/olivia"),
                vec![("authorization", &adam)],
                None,
                StatusCode::FORBIDDEN,
            ),
            (
                "4. no credentials",
                Method::GET,
                table.clone(),
                vec![],
                None,
                StatusCode::UNAUTHORIZED,
            ),
            (
                "5. sam's API key reads SSO settings (forged header sent)",
                Method::GET,
                format!("{gw}/orgs/acme/sso"),
                vec![
                    ("x-api-key", DEMO_API_KEY),
                    ("x-portcullis-principal", "user/olivia"),
                ],
                None,
                StatusCode::OK,
            ),
            (
                "6. an encoded slash",
                Method::GET,
                format!("{gw}/envs/prod/catalogs/sales%2Ftables/orders"),
                vec![("authorization", &pat)],
                None,
                StatusCode::BAD_REQUEST,
            ),
            (
                "8. the decision endpoint: may adam update olivia?",
                Method::POST,
                format!("{gw}/-/authz/v1/check"),
                vec![("content-type", "application/json")],
                Some(
                    json!({"principal": "user/adam", "action": "user:update", "resource": "user/olivia"})
                        .to_string()
                        .into_bytes(),
                ),
                StatusCode::OK,
            ),
        ];
        let key = format!("Bearer {DEMO_API_KEY}");
        let scim: Vec<Step<'_>> = match &self.directory {
            Some(d) => {
                let scim = format!("http://{}/scim/v2/acme", d.addr);
                vec![
                    (
                        "9. olivia (owner) names sam's key as acme's SCIM token",
                        Method::PUT,
                        format!("http://{}/v1/directory/settings/scim", d.addr),
                        vec![("authorization", &olivia)],
                        Some(
                            json!({"organizations": {"acme": {"credentials": ["key/sam-deploy"]}}})
                                .to_string()
                                .into_bytes(),
                        ),
                        StatusCode::OK,
                    ),
                    (
                        "   SCIM: the identity provider creates jo@acme.example with sam's key",
                        Method::POST,
                        format!("{scim}/Users"),
                        vec![("authorization", &key)],
                        Some(
                            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                   "userName": "jo@acme.example", "active": true,
                                   "emails": [{"value": "jo@acme.example", "primary": true}]})
                            .to_string()
                            .into_bytes(),
                        ),
                        StatusCode::CREATED,
                    ),
                    (
                        "   SCIM: and deactivates jo (PATCH active false, as Okta does)",
                        Method::PATCH,
                        format!("{scim}/Users/jo@acme.example"),
                        vec![("authorization", &key)],
                        Some(
                            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                                   "Operations": [{"op": "replace", "value": {"active": false}}]})
                            .to_string()
                            .into_bytes(),
                        ),
                        StatusCode::OK,
                    ),
                    (
                        "   SCIM: pat's key is no SCIM token of acme",
                        Method::GET,
                        format!("{scim}/Users"),
                        vec![("authorization", &pat)],
                        None,
                        StatusCode::FORBIDDEN,
                    ),
                ]
            }
            None => Vec::new(),
        };
        let (before, after): (Vec<_>, Vec<_>) =
            steps.into_iter().partition(|s| !s.0.starts_with("8."));
        let steps = before.into_iter().chain(step7).chain(after).chain(scim);
        let mut report = String::new();
        for (title, method, url, headers, body, want) in steps {
            let (status, body) = send(&client, method, &url, &headers, body).await?;
            report.push_str(&format!("{title}\n  → {} {body}\n", status.as_u16()));
            if status != want {
                return Err(format!("{title}: expected {want}, got {status} {body}"));
            }
            if title.starts_with("8.")
                && body.get("reason") != Some(&json!("administrator_over_owner"))
            {
                return Err(format!(
                    "{title}: expected administrator_over_owner: {body}"
                ));
            }
            if title.contains("deactivates olivia")
                && body.get("reason") != Some(&json!("administrator_over_owner"))
            {
                return Err(format!(
                    "{title}: expected administrator_over_owner: {body}"
                ));
            }
            if title.starts_with("5.")
                && body.get("x-portcullis-acting-as") != Some(&json!("user/sam"))
            {
                return Err(format!(
                    "{title}: the upstream did not see acting-as user/sam: {body}"
                ));
            }
        }
        Ok(report)
    }
}

/// One walkthrough step: title, request (method, URL, headers, body) and
/// the status it must get.
type Step<'a> = (
    &'a str,
    Method,
    String,
    Vec<(&'a str, &'a str)>,
    Option<Vec<u8>>,
    StatusCode,
);

async fn send(
    client: &crate::tls::WalkClient,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Result<(StatusCode, Value), String> {
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let body: Body = body.map_or_else(empty, full);
    let req = req.body(body).map_err(|e| e.to_string())?;
    let resp = client
        .request(req)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok((status, value))
}
