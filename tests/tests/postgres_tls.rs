//! The directory service's PostgreSQL store over TLS, against a real
//! PostgreSQL server (Debian's, `scripts/postgres`, a cluster of this
//! test's own) that accepts only TLS connections: `sslmode=verify-full`
//! with the server's CA connects; without TLS the server refuses; a server
//! certificate from another CA, or for another name, is refused by the
//! client.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

mod common;
use common::ca::{Ca, write};

use std::path::Path;
use std::process::Command;

use portcullis_directory::storage::{Postgres, Storage};

fn script(args: &[&str]) -> String {
    let out = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/postgres"))
        .args(args)
        .output()
        .expect("scripts/postgres runs");
    assert!(
        out.status.success(),
        "scripts/postgres {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Files PostgreSQL reads: owned by its user when the test runs as root.
fn owned(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    let _ = Command::new("chown")
        .args(["postgres:", path.to_str().unwrap()])
        .status();
}

fn open(url: &str) -> Result<u64, String> {
    // The store's client runs a runtime of its own: any thread will do.
    let url = url.to_string();
    std::thread::spawn(move || {
        let mut s = Postgres::open(&url).map_err(|e| e.to_string())?;
        s.load().map(|st| st.revision).map_err(|e| e.to_string())
    })
    .join()
    .unwrap()
}

#[test]
fn the_store_speaks_verified_tls_to_a_server_that_requires_it() {
    let server = script(&["start", "tls"]);
    let port = server
        .rsplit_once(':')
        .unwrap()
        .1
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let data = Path::new("/tmp/portcullis-postgres-tls/data");
    let ca = Ca::new("PostgreSQL test CA");
    let (cert, key) = ca.issue(&["localhost"], false);
    owned(&write(data, "server.crt", &cert), 0o644);
    owned(&write(data, "server.key", &key), 0o600);
    // TLS only, over TCP; trust, as the tests' servers do.
    owned(
        &write(
            data,
            "pg_hba.conf",
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
        ),
        0o600,
    );
    let sock = "/tmp/portcullis-postgres-tls";
    let out = Command::new("psql")
        .args([
            "-h",
            sock,
            "-p",
            &port,
            "-U",
            "postgres",
            "-q",
            "-c",
            "ALTER SYSTEM SET ssl = on",
            "-c",
            "SELECT pg_reload_conf()",
        ])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let ca_file = write(dir.path(), "ca.pem", &ca.pem);
    let base = format!("postgres://postgres@localhost:{port}/postgres");
    let verified = format!(
        "{base}?sslmode=verify-full&sslrootcert={}",
        ca_file.display()
    );
    // The reload takes a moment to apply.
    let t = std::time::Instant::now();
    let mut got = open(&verified);
    while got.is_err() && t.elapsed() < std::time::Duration::from_secs(20) {
        std::thread::sleep(std::time::Duration::from_millis(100));
        got = open(&verified);
    }
    assert!(got.is_ok(), "verified TLS: {got:?}");
    // Without TLS: the server refuses.
    let plain = open(&base).unwrap_err();
    assert!(
        plain.contains("no encryption") || plain.contains("pg_hba") || plain.contains("rejects"),
        "{plain}"
    );
    // Another CA: the client refuses the server.
    let other = Ca::new("Another CA");
    let other_file = write(dir.path(), "other.pem", &other.pem);
    let e = open(&format!(
        "{base}?sslmode=verify-full&sslrootcert={}",
        other_file.display()
    ))
    .unwrap_err();
    assert!(
        e.contains("certificate") || e.contains("UnknownIssuer"),
        "{e}"
    );
    // A name the certificate does not hold: refused too.
    let by_ip = format!(
        "postgres://postgres@127.0.0.1:{port}/postgres?sslmode=verify-full&sslrootcert={}",
        ca_file.display()
    );
    let e = open(&by_ip).unwrap_err();
    assert!(
        e.contains("certificate") || e.contains("NotValidForName"),
        "{e}"
    );
    // A bad sslmode is named.
    let e = open(&format!("{base}?sslmode=sometimes")).unwrap_err();
    assert!(e.contains("sslmode"), "{e}");
    script(&["stop", "tls"]);
}
