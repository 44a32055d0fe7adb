//! The directory service for the end-to-end tests: the example
//! directory imported into a new database, the service on 127.0.0.1
//! identifying callers as the demo gateway does, and a client.

use std::sync::Arc;

use http::Method;
use portcullis_directory::config::{DirectoryConfig, PublishConfig};
use portcullis_directory::server::{Api, serve, start};
use portcullis_directory::service::{Provenance, Service};
use portcullis_directory::storage::Sqlite;
use serde_json::Value;

use super::{Answer, TestClient, bearer, demo_gateway_config, local, send};

pub struct Directory {
    pub base: String,
    pub api: Arc<Api>,
    pub client: TestClient,
    pub store: std::path::PathBuf,
    _stop: tokio::sync::watch::Sender<bool>,
}

/// The example directory imported into a new database, and the service
/// on it, identifying callers with the demo gateway's identity section,
/// publishing into `dir/store`.
pub async fn directory(dir: &std::path::Path, max_body_bytes: usize) -> Directory {
    directory_with(dir, max_body_bytes, |_| {}).await
}

/// [`directory`], its publishing configured by `tweak`.
pub async fn directory_with(
    dir: &std::path::Path,
    max_body_bytes: usize,
    tweak: impl FnOnce(&mut PublishConfig),
) -> Directory {
    directory_configured(dir, max_body_bytes, |c| tweak(&mut c.publish)).await
}

/// [`directory`], its whole configuration changed by `tweak` (`base` is
/// `https://directory.test:<port>` when it sets `tls`).
pub async fn directory_configured(
    dir: &std::path::Path,
    max_body_bytes: usize,
    tweak: impl FnOnce(&mut DirectoryConfig),
) -> Directory {
    let database = dir.join("directory.db");
    {
        let s = Service::open(Box::new(Sqlite::open(&database).unwrap())).unwrap();
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../snapshots/examples/acme.json"),
        )
        .unwrap();
        let d = portcullis_snapshots::source::build(&text).unwrap().0;
        s.import(
            &d,
            "operator",
            false,
            &Provenance {
                via: "import",
                ..Provenance::default()
            },
        )
        .unwrap();
    }
    let identity = demo_gateway_config(dir).await.identity;
    let store = dir.join("store");
    let mut config = DirectoryConfig {
        max_database_mb: None,
        cors_origins: Vec::new(),
        listen: local(),
        database,
        identity,
        max_body_bytes,
        publish: PublishConfig {
            store_dir: Some(store.clone()),
            coalesce_ms: 100,
            ..PublishConfig::default()
        },
        tls: None,
    };
    tweak(&mut config);
    let api = start(&config).unwrap();
    let listener = tokio::net::TcpListener::bind(local()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let base = if config.tls.is_some() {
        format!("https://directory.test:{}", addr.port())
    } else {
        format!("http://{addr}")
    };
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(serve(api.clone(), listener, stop));
    Directory {
        base,
        api,
        client: hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http(),
        store,
        _stop: stop_tx,
    }
}

impl Directory {
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        as_user: Option<&str>,
        body: Value,
    ) -> Answer {
        self.call_with(method, path, as_user, body, &[]).await
    }

    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        as_user: Option<&str>,
        body: Value,
        extra: &[(&str, &str)],
    ) -> Answer {
        let auth = as_user.map(bearer);
        let mut headers: Vec<(&str, &str)> = extra.to_vec();
        if let Some(a) = &auth {
            headers.push(("authorization", a));
        }
        let bytes = if body.is_null() {
            vec![]
        } else {
            serde_json::to_vec(&body).unwrap()
        };
        send(
            &self.client,
            method,
            &format!("{}{path}", self.base),
            &headers,
            bytes,
        )
        .await
    }

    pub async fn raw(&self, method: Method, path: &str, as_user: &str, body: Vec<u8>) -> Answer {
        let auth = bearer(as_user);
        send(
            &self.client,
            method,
            &format!("{}{path}", self.base),
            &[("authorization", &auth)],
            body,
        )
        .await
    }
}
