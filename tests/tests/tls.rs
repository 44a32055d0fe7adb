//! TLS on the gateway's listeners (issue #15, part 1), with real clients —
//! curl and Python's `ssl` — against a test CA: the certificate a client
//! names by SNI, the default one for a name none carries, ALPN `h2`, TLS
//! 1.2 and 1.3 only, certificates reloaded when their files change (a bad
//! new pair refused while the old one serves, counted), an expired
//! certificate refused at start, client certificates (mTLS) from the
//! configured CA only, and TLS on the admin listener.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::ca::{Ca, write};
use portcullis_gateway::config::{CertificatePair, ClientCertificates, GatewayConfig, TlsConfig};

const TABLE: &str = "/envs/prod/catalogs/sales/tables/orders";

/// A pair written into `dir` as `<name>.pem` and `<name>.key`.
fn pair(dir: &Path, name: &str, (cert, key): &(String, String)) -> CertificatePair {
    CertificatePair {
        cert: write(dir, &format!("{name}.pem"), cert),
        key: write(dir, &format!("{name}.key"), key),
    }
}

fn tls(certificates: Vec<CertificatePair>) -> TlsConfig {
    TlsConfig {
        certificates,
        client_ca: None,
        client_crl: None,
        client_certificates: ClientCertificates::Required,
        handshake_timeout_ms: 5_000,
        client_principals: Default::default(),
    }
}

/// curl's answer: (exit code, `%{http_code} %{http_version}`).
fn curl(args: &[&str]) -> (i32, String) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{http_version}",
        ])
        .args(args)
        .output()
        .expect("curl runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// [`curl`] presenting the client certificate `p`.
fn curl_as(p: &CertificatePair, args: &[&str]) -> (i32, String) {
    let (cert, key) = (p.cert.display().to_string(), p.key.display().to_string());
    let mut all = vec!["--cert", &cert, "--key", &key];
    all.extend_from_slice(args);
    curl(&all)
}

/// Python's `ssl` against `port`: prints the names of the certificate the
/// server sent (or the error), for `server_name`, TLS versions between
/// `min` and `max`.
fn python_tls(ca: &Path, port: u16, server_name: &str, min: &str, max: &str) -> String {
    let script = format!(
        r#"
import socket, ssl
ctx = ssl.create_default_context(cafile={ca:?})
ctx.minimum_version = ssl.TLSVersion.{min}
ctx.maximum_version = ssl.TLSVersion.{max}
ctx.set_alpn_protocols(["h2", "http/1.1"])
try:
    with socket.create_connection(("127.0.0.1", {port}), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname={server_name:?}) as s:
            names = sorted(v for k, v in s.getpeercert()["subjectAltName"] if k == "DNS")
            print("ok", s.version(), s.selected_alpn_protocol(), ",".join(names))
except Exception as e:
    print("error", type(e).__name__, e)
"#,
        ca = ca.display().to_string(),
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3 runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

struct TlsGw {
    gw: Gw,
    ca: PathBuf,
    port: u16,
}

async fn tls_gateway(ca: &Ca, tweak: impl FnOnce(&mut GatewayConfig, &Path)) -> TlsGw {
    let ca_pem = ca.pem.clone();
    let mut ca_path = PathBuf::new();
    let gw = gateway_with(Some(revision(1)), |c, dir| {
        ca_path = write(dir, "ca.pem", &ca_pem);
        tweak(c, dir);
    })
    .await;
    let port = gw.running.proxy_addr.port();
    TlsGw {
        gw,
        ca: ca_path,
        port,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_the_certificate_each_client_names() {
    let ca = Ca::new("Portcullis test CA");
    let default = ca.issue(&["api.test", "localhost"], false);
    let admin = ca.issue(&["*.admin.test"], false);
    let t = tls_gateway(&ca, |c, dir| {
        c.server.tls = Some(tls(vec![
            pair(dir, "api", &default),
            pair(dir, "admin", &admin),
        ]));
    })
    .await;
    let (ca_file, port) = (t.ca.display().to_string(), t.port);
    let token = format!("authorization: {}", bearer("pat"));
    let url = |host: &str| format!("https://{host}:{port}{TABLE}");
    let resolve = |host: &str| format!("{host}:{port}:127.0.0.1");
    // curl to `host` (resolved to the gateway), trusting the test CA.
    let to = |host: &str, extra: &[&str]| {
        let (resolved, url, token) = (resolve(host), url(host), token.clone());
        let mut args = vec!["--cacert", &ca_file, "--resolve", &resolved];
        args.extend_from_slice(extra);
        if !extra.contains(&"--no-token") {
            args.extend(["-H", &token]);
        }
        args.retain(|a| *a != "--no-token");
        args.push(&url);
        curl(&args)
    };

    // HTTP/2 by ALPN, and HTTP/1.1 when asked; the request is authorized
    // as over plain HTTP.
    assert_eq!(to("api.test", &[]), (0, "200 2".into()));
    assert_eq!(to("api.test", &["--http1.1"]), (0, "200 1.1".into()));
    assert_eq!(
        to("api.test", &["--no-token"]),
        (0, "401 2".into()),
        "no token: denied as ever"
    );

    // The second certificate for its (wildcard) name.
    assert_eq!(to("ops.admin.test", &[]).0, 0);
    assert_eq!(
        python_tls(&t.ca, port, "ops.admin.test", "TLSv1_2", "TLSv1_3"),
        "ok TLSv1.3 h2 *.admin.test"
    );
    // A name no certificate carries gets the first one — which the client
    // then refuses for the name it wanted (curl: 60, peer certificate).
    assert_eq!(
        python_tls(&t.ca, port, "api.test", "TLSv1_2", "TLSv1_3"),
        "ok TLSv1.3 h2 api.test,localhost"
    );
    assert_eq!(
        to("other.test", &[]).0,
        60,
        "the wrong name is the client's to refuse"
    );
    // Not trusted without the CA.
    let (code, _) = curl(&["--resolve", &resolve("api.test"), &url("api.test")]);
    assert_eq!(code, 60);

    // TLS 1.2 and 1.3 only.
    assert!(python_tls(&t.ca, port, "api.test", "TLSv1_2", "TLSv1_2").starts_with("ok TLSv1.2 h2"));
    let old = python_tls(&t.ca, port, "api.test", "TLSv1", "TLSv1_1");
    assert!(old.starts_with("error"), "{old}");

    // The upstream is told the client came over TLS.
    let out = Command::new("curl")
        .args([
            "-sS",
            "--cacert",
            &ca_file,
            "--resolve",
            &resolve("api.test"),
            "-H",
            &token,
            &url("api.test"),
        ])
        .output()
        .unwrap();
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["x-forwarded-proto"], "https", "{seen}");

    // Plain HTTP on a TLS listener is a failed handshake, counted.
    let (code, _) = curl(&[&format!("http://127.0.0.1:{port}{TABLE}")]);
    assert_ne!(code, 0);
    let (_, metrics) = t.gw.admin_get("/-/metrics").await;
    assert!(
        metrics.contains("portcullis_tls_handshake_failures_total{listener=\"proxy\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("portcullis_tls_certificate_expiry_timestamp_seconds{listener=\"proxy\""),
        "{metrics}"
    );
}

/// The DNS names of the certificate served for `name`, once they are
/// `want` (polling: the reload follows a file event).
fn served_eventually(ca: &Path, port: u16, name: &str, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = python_tls(ca, port, name, "TLSv1_2", "TLSv1_3");
        if got.ends_with(want) || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until `n` reloads of the proxy's certificates have been refused.
async fn refused(gw: &Gw, n: u32) {
    let want = format!("portcullis_tls_reloads_total{{listener=\"proxy\",result=\"refused\"}} {n}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, metrics) = gw.admin_get("/-/metrics").await;
        if metrics.contains(&want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "refusal {n} not counted: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_reloaded_and_a_bad_pair_keeps_the_old_one_serving() {
    let ca = Ca::new("Portcullis test CA");
    let first = ca.issue(&["first.test"], false);
    let mut dir_path = PathBuf::new();
    let t = tls_gateway(&ca, |c, dir| {
        dir_path = dir.to_path_buf();
        c.server.tls = Some(tls(vec![pair(dir, "site", &first)]));
    })
    .await;
    assert!(python_tls(&t.ca, t.port, "first.test", "TLSv1_2", "TLSv1_3").ends_with("first.test"));

    // Renewed: the new pair serves without a restart.
    let second = ca.issue(&["second.test"], false);
    pair(&dir_path, "site", &second);
    assert!(
        served_eventually(&t.ca, t.port, "second.test", "second.test").ends_with("second.test")
    );

    // An expired certificate, then a key that is not the certificate's:
    // refused, counted, and the second pair keeps serving.
    pair(&dir_path, "site", &ca.issue(&["expired.test"], true));
    refused(&t.gw, 1).await;
    assert!(
        python_tls(&t.ca, t.port, "second.test", "TLSv1_2", "TLSv1_3").ends_with("second.test")
    );
    let other_key = ca.issue(&["third.test"], false).1;
    write(&dir_path, "site.pem", &ca.issue(&["third.test"], false).0);
    write(&dir_path, "site.key", &other_key);
    refused(&t.gw, 2).await;
    assert!(
        python_tls(&t.ca, t.port, "second.test", "TLSv1_2", "TLSv1_3").ends_with("second.test")
    );
    let (_, metrics) = t.gw.admin_get("/-/metrics").await;
    assert!(
        metrics.contains("portcullis_tls_reloads_total{listener=\"proxy\",result=\"ok\"} 1"),
        "{metrics}"
    );
}

/// `config` does not start, and says all of `said`.
async fn refused_start(config: GatewayConfig, said: &[&str]) {
    let err = portcullis_gateway::server::start(config, Some(revision(1)))
        .await
        .err()
        .expect("refused");
    let msg = err.to_string();
    assert!(said.iter().all(|s| msg.contains(s)), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_or_mismatched_certificate_stops_the_start() {
    let ca = Ca::new("Portcullis test CA");
    let dir = tempfile::tempdir().unwrap();
    let mut config = demo_gateway_config(dir.path()).await;
    config.server.tls = Some(tls(vec![pair(
        dir.path(),
        "old",
        &ca.issue(&["old.test"], true),
    )]));
    refused_start(config, &["server.tls.certificates", "expired"]).await;

    let mut config = demo_gateway_config(dir.path()).await;
    let (cert, _) = ca.issue(&["a.test"], false);
    let (_, key) = ca.issue(&["b.test"], false);
    config.admin.tls = Some(tls(vec![pair(dir.path(), "mixed", &(cert, key))]));
    refused_start(config, &["admin.tls", "does not belong"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_from_another_ca_are_refused() {
    let ca = Ca::new("Portcullis test CA");
    let clients = Ca::new("Clients CA");
    let strangers = Ca::new("Another CA");
    let server = ca.issue(&["api.test"], false);
    let clients_pem = clients.pem.clone();
    let mut dir_path = PathBuf::new();
    let t = tls_gateway(&ca, |c, dir| {
        dir_path = dir.to_path_buf();
        let mut settings = tls(vec![pair(dir, "api", &server)]);
        settings.client_ca = Some(write(dir, "clients.pem", &clients_pem));
        c.server.tls = Some(settings);
    })
    .await;
    let (ca_file, port) = (t.ca.display().to_string(), t.port);
    let resolve = format!("api.test:{port}:127.0.0.1");
    let url = format!("https://api.test:{port}{TABLE}");
    let token = format!("authorization: {}", bearer("pat"));
    let mine = pair(
        &dir_path,
        "client",
        &clients.issue(&["billing.svc.test"], false),
    );
    let theirs = pair(
        &dir_path,
        "stranger",
        &strangers.issue(&["billing.svc.test"], false),
    );
    let with = |p: &CertificatePair| {
        curl_as(
            p,
            &[
                "--cacert",
                &ca_file,
                "--resolve",
                &resolve,
                "-H",
                &token,
                &url,
            ],
        )
    };
    assert_eq!(with(&mine), (0, "200 2".to_string()));
    // Never implicit: without client_principals a verified certificate
    // only opens the connection; the request still needs credentials.
    let unmapped = fetch_with(&ca_file, &resolve, &url, &mine, &[]);
    assert_eq!(unmapped["status"], "401", "{unmapped}");
    let (code, _) = with(&theirs);
    assert_ne!(
        code, 0,
        "a certificate from another CA is refused in the handshake"
    );
    let (code, _) = curl(&[
        "--cacert",
        &ca_file,
        "--resolve",
        &resolve,
        "-H",
        &token,
        &url,
    ]);
    assert_ne!(
        code, 0,
        "no certificate: refused (client_certificates = required)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_client_certificates_are_refused_and_the_crl_reloads() {
    let ca = Ca::new("Portcullis test CA");
    let clients = Ca::new("Clients CA");
    let server = ca.issue(&["api.test"], false);
    let (clients_pem, first_crl) = (clients.pem.clone(), clients.crl(&[7]));
    let mut dir_path = PathBuf::new();
    let t = tls_gateway(&ca, |c, dir| {
        dir_path = dir.to_path_buf();
        let mut settings = tls(vec![pair(dir, "api", &server)]);
        settings.client_ca = Some(write(dir, "clients.pem", &clients_pem));
        settings.client_crl = Some(write(dir, "clients.crl", &first_crl));
        c.server.tls = Some(settings);
    })
    .await;
    let (ca_file, port) = (t.ca.display().to_string(), t.port);
    let resolve = format!("api.test:{port}:127.0.0.1");
    let url = format!("https://api.test:{port}{TABLE}");
    let token = format!("authorization: {}", bearer("pat"));
    let seven = pair(
        &dir_path,
        "seven",
        &clients.issue_serial(&["a.svc.test"], 7),
    );
    let eight = pair(
        &dir_path,
        "eight",
        &clients.issue_serial(&["b.svc.test"], 8),
    );
    let with = |p: &CertificatePair| {
        curl_as(
            p,
            &[
                "--cacert",
                &ca_file,
                "--resolve",
                &resolve,
                "-H",
                &token,
                &url,
            ],
        )
        .0
    };
    assert_ne!(
        with(&seven),
        0,
        "serial 7 is revoked: refused in the handshake"
    );
    assert_eq!(with(&eight), 0, "serial 8 is not");

    // A new CRL (8 revoked, 7 no longer) serves without a restart.
    write(&dir_path, "clients.crl", &clients.crl(&[8]));
    let deadline = Instant::now() + Duration::from_secs(10);
    while with(&seven) != 0 {
        assert!(Instant::now() < deadline, "the new CRL was not loaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_ne!(with(&eight), 0, "serial 8 is revoked now");

    // A broken CRL is refused; the last good one keeps serving.
    write(&dir_path, "clients.crl", "not a CRL");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(with(&seven), 0);
    assert_ne!(with(&eight), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_and_decision_listeners_speak_tls_too() {
    let ca = Ca::new("Portcullis test CA");
    let admin = ca.issue(&["admin.test"], false);
    let decision = ca.issue(&["decide.test"], false);
    let t = tls_gateway(&ca, |c, dir| {
        c.admin.tls = Some(tls(vec![pair(dir, "admin", &admin)]));
        c.decision.listen = Some(local());
        c.decision.tls = Some(tls(vec![pair(dir, "decide", &decision)]));
    })
    .await;
    let ca_file = t.ca.display().to_string();
    let https = |host: &str, port: u16, path: &str, extra: &[&str]| {
        let (resolved, url) = (
            format!("{host}:{port}:127.0.0.1"),
            format!("https://{host}:{port}{path}"),
        );
        let mut args = vec!["-sS", "--cacert", &ca_file, "--resolve", &resolved];
        args.extend_from_slice(extra);
        args.push(&url);
        let out = Command::new("curl").args(&args).output().unwrap();
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap_or_default()
    };
    let admin_port = t.gw.running.admin_addr.port();
    let ready = https("admin.test", admin_port, "/-/readyz", &[]);
    assert_eq!(ready["ready"], true, "{ready}");
    let decision_port =
        t.gw.running
            .decision_addr
            .expect("decision listener")
            .port();
    let body = r#"{"principal": "user/pat", "action": "read", "resource": "catalog/sales"}"#;
    let answer = https(
        "decide.test",
        decision_port,
        "/v1/check",
        &["-H", "content-type: application/json", "-d", body],
    );
    assert_eq!(answer["decision"], "allow", "{answer}");
    // The proxy listener is still plain HTTP.
    let a = t.gw.get(TABLE, &[("authorization", &bearer("pat"))]).await;
    assert_eq!(a.status, http::StatusCode::OK);
}

/// `GET url` over TLS with a client certificate (and the headers given):
/// the status and what the upstream was told.
fn fetch_with(
    ca: &str,
    resolve: &str,
    url: &str,
    cert: &CertificatePair,
    headers: &[&str],
) -> serde_json::Value {
    let (cert, key) = (
        cert.cert.display().to_string(),
        cert.key.display().to_string(),
    );
    let mut args = vec![
        "-sS",
        "-w",
        "\n%{http_code}",
        "--cacert",
        ca,
        "--resolve",
        resolve,
    ];
    args.extend(["--cert", &cert, "--key", &key]);
    for h in headers {
        args.extend(["-H", h]);
    }
    args.push(url);
    let out = Command::new("curl").args(&args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", ""));
    let mut v: serde_json::Value = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
    if !v.is_object() {
        v = serde_json::json!({});
    }
    v["status"] = serde_json::json!(status);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_service_accounts_only_where_mapped() {
    let ca = Ca::new("Portcullis test CA");
    let clients = Ca::new("Clients CA");
    let server = ca.issue(&["api.test"], false);
    let clients_pem = clients.pem.clone();
    let mut dir_path = PathBuf::new();
    let t = tls_gateway(&ca, |c, dir| {
        dir_path = dir.to_path_buf();
        let mut settings = tls(vec![pair(dir, "api", &server)]);
        settings.client_ca = Some(write(dir, "clients.pem", &clients_pem));
        settings.client_certificates = ClientCertificates::Optional;
        settings.client_principals = [
            ("spiffe://test/ns/prod/sa/etl", "service/etl-loader"),
            ("ci.svc.test", "service/ci-bot"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        c.server.tls = Some(settings);
    })
    .await;
    let (ca_file, port) = (t.ca.display().to_string(), t.port);
    let resolve = format!("api.test:{port}:127.0.0.1");
    let url = format!("https://api.test:{port}{TABLE}");
    let etl = pair(
        &dir_path,
        "etl",
        &clients.issue_uri("spiffe://test/ns/prod/sa/etl"),
    );
    let ci = pair(&dir_path, "ci", &clients.issue(&["ci.svc.test"], false));
    let nobody = pair(
        &dir_path,
        "nobody",
        &clients.issue(&["other.svc.test"], false),
    );
    let get = |cert: &CertificatePair, headers: &[&str]| {
        fetch_with(&ca_file, &resolve, &url, cert, headers)
    };

    // A SPIFFE ID and a DNS name, each mapped: that service account.
    let a = get(&etl, &[]);
    assert_eq!(a["status"], "200", "{a}");
    assert_eq!(a["x-portcullis-principal"], "service/etl-loader");
    let a = get(&ci, &[]);
    assert_eq!(a["status"], "200", "{a}");
    assert_eq!(a["x-portcullis-principal"], "service/ci-bot");
    // Credentials in the request come first.
    let token = format!("authorization: {}", bearer("pat"));
    let a = get(&etl, &[&token]);
    assert_eq!(a["x-portcullis-principal"], "user/pat", "{a}");
    // A valid certificate the map does not name is nobody: 401, and a
    // forged identity header changes nothing.
    let a = get(&nobody, &["x-portcullis-principal: service/etl-loader"]);
    assert_eq!(a["status"], "401", "{a}");
    // A look-alike header does not pass for the certificate's principal
    // (nor reach the upstream).
    let a = get(&etl, &["X_Portcullis_Principal: user/olivia"]);
    assert_eq!(
        (a["status"].as_str(), a["x-portcullis-principal"].as_str()),
        (Some("200"), Some("service/etl-loader")),
        "{a}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_principals_name_service_accounts_on_the_proxy_only() {
    let ca = Ca::new("Portcullis test CA");
    let dir = tempfile::tempdir().unwrap();
    let server = pair(dir.path(), "api", &ca.issue(&["api.test"], false));
    let mut settings = tls(vec![server]);
    settings.client_principals = [("ci.svc.test".to_string(), "user/pat".to_string())].into();
    let mut config = demo_gateway_config(dir.path()).await;
    config.server.tls = Some(settings.clone());
    refused_start(config, &["is not a service account", "needs client_ca"]).await;
    let mut config = demo_gateway_config(dir.path()).await;
    config.admin.tls = Some(settings);
    refused_start(
        config,
        &["admin.tls.client_principals: only the proxy listener"],
    )
    .await;
}

/// Runs curl over one connection (`protocol`: `--http1.1` or `--http2`)
/// presenting `cert`, `count` requests at `rate` per second, in the
/// background: each line is `<status> <num_connects>`.
fn curl_paced(
    t: &TlsGw,
    cert: &CertificatePair,
    protocol: &str,
    count: usize,
    rate: &str,
) -> std::process::Child {
    let (ca_file, port) = (t.ca.display().to_string(), t.port);
    let mut c = Command::new("curl");
    c.args(["-sS", "-w", "%{http_code} %{num_connects}\n", protocol])
        .args(["--rate", rate])
        .args(["--cert", &cert.cert.display().to_string()])
        .args(["--key", &cert.key.display().to_string()])
        .args(["--cacert", &ca_file])
        .args(["--resolve", &format!("api.test:{port}:127.0.0.1")]);
    for _ in 0..count {
        c.args([
            "-o",
            "/dev/null",
            &format!("https://api.test:{port}{TABLE}"),
        ]);
    }
    c.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("curl runs")
}

/// The lines of a finished [`curl_paced`]: (status, connections made).
fn paced_lines(child: std::process::Child) -> Vec<(String, String)> {
    let out = child.wait_with_output().expect("curl ends");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let mut w = l.split_whitespace();
            (
                w.next().unwrap_or_default().to_string(),
                w.next().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// `portcullis_tls_client_certificates_withdrawn_total` for `reason`.
async fn withdrawn(t: &TlsGw, reason: &str) -> u64 {
    let (_, metrics) = t.gw.admin_get("/-/metrics").await;
    let series = format!(
        "portcullis_tls_client_certificates_withdrawn_total{{listener=\"proxy\",reason=\"{reason}\"}} "
    );
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Served on one connection until it stops being served, then never again
/// (a new handshake is refused too).
fn served_then_stopped(lines: &[(String, String)], what: &str) {
    assert!(lines.len() > 4, "{what}: {lines:?}");
    assert_eq!(lines[0].0, "200", "{what}: {lines:?}");
    assert!(
        lines[1].0 == "200" && lines[1].1 == "0",
        "{what}: the second request reused the connection: {lines:?}"
    );
    let stop = lines
        .iter()
        .position(|(status, _)| status != "200")
        .unwrap_or_else(|| panic!("{what}: served to the end: {lines:?}"));
    assert!(
        lines[stop..].iter().all(|(status, _)| status != "200"),
        "{what}: {lines:?}"
    );
}

/// A gateway whose proxy listener asks for client certificates of
/// `clients` (revoking `crl`'s serials, when given) and names those for
/// `etl.svc.test` `service/etl-loader`; the directory of its files.
async fn mtls_gateway(ca: &Ca, clients: &Ca, crl: Option<&[u64]>) -> (TlsGw, PathBuf) {
    let server = ca.issue(&["api.test"], false);
    let (clients_pem, crl) = (clients.pem.clone(), crl.map(|c| clients.crl(c)));
    let mut dir_path = PathBuf::new();
    let t = tls_gateway(ca, |c, dir| {
        dir_path = dir.to_path_buf();
        let mut settings = tls(vec![pair(dir, "api", &server)]);
        settings.client_ca = Some(write(dir, "clients.pem", &clients_pem));
        settings.client_crl = crl.map(|crl| write(dir, "clients.crl", &crl));
        settings.client_principals =
            [("etl.svc.test".to_string(), "service/etl-loader".to_string())].into();
        c.server.tls = Some(settings);
    })
    .await;
    (t, dir_path)
}

/// Issue #23, case 3: a client certificate listed by a CRL reloaded while
/// its connections are open stops being that service on them — HTTP/1.1
/// keep-alive and HTTP/2 alike: they are closed (or their next request
/// refused with 401 `certificate_revoked`), counted and logged. Before, the
/// identity computed at the handshake outlived the revocation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_revoked_mid_connection_stops_its_connections() {
    let (ca, clients) = (Ca::new("Portcullis test CA"), Ca::new("Clients CA"));
    let (t, dir_path) = mtls_gateway(&ca, &clients, Some(&[99])).await;
    let etl = pair(
        &dir_path,
        "etl",
        &clients.issue_serial(&["etl.svc.test"], 7),
    );
    let one = curl_paced(&t, &etl, "--http1.1", 24, "6/s");
    let two = curl_paced(&t, &etl, "--http2", 24, "6/s");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    write(&dir_path, "clients.crl", &clients.crl(&[7, 99]));
    let (one, two) = (paced_lines(one), paced_lines(two));
    served_then_stopped(&one, "HTTP/1.1");
    served_then_stopped(&two, "HTTP/2");
    // Both connections (new handshakes are refused by the new CRL).
    assert_eq!(withdrawn(&t, "revoked").await, 2);
}

/// Issue #23, case 3: a client certificate whose `notAfter` passes during a
/// long connection stops being that service on it, as it would at a new
/// handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_that_expires_mid_connection_stops_its_connections() {
    let (ca, clients) = (Ca::new("Portcullis test CA"), Ca::new("Clients CA"));
    let (t, dir_path) = mtls_gateway(&ca, &clients, None).await;
    let etl = pair(
        &dir_path,
        "etl",
        &clients.issue_expiring(&["etl.svc.test"], 11, 3),
    );
    let one = curl_paced(&t, &etl, "--http1.1", 30, "5/s");
    let two = curl_paced(&t, &etl, "--http2", 30, "5/s");
    let (one, two) = (paced_lines(one), paced_lines(two));
    served_then_stopped(&one, "HTTP/1.1");
    served_then_stopped(&two, "HTTP/2");
    // Both connections, and any made in the second the certificate
    // expired in (a handshake may still pass then).
    assert!(withdrawn(&t, "expired").await >= 2);
}
