//! A store as gateways poll one: the files of a directory over HTTP, with
//! ETags (`If-None-Match` answers 304); counts the bytes sent per file.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

pub struct FileServer {
    pub origin: SocketAddr,
    sent: Arc<Mutex<BTreeMap<String, usize>>>,
}

impl FileServer {
    pub async fn start(root: PathBuf) -> FileServer {
        let sent = Arc::new(Mutex::new(BTreeMap::new()));
        let listener = tokio::net::TcpListener::bind(super::local()).await.unwrap();
        let origin = listener.local_addr().unwrap();
        let counts = Arc::clone(&sent);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (root, counts) = (root.clone(), Arc::clone(&counts));
                tokio::spawn(async move {
                    let svc = service_fn(move |req: http::Request<Incoming>| {
                        let name = req.uri().path().trim_start_matches('/').to_string();
                        let bytes = (!name.contains(".."))
                            .then(|| std::fs::read(root.join(&name)).ok())
                            .flatten();
                        let tag = bytes.as_ref().map(|b| {
                            format!(
                                "\"{}\"",
                                &hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b))[..16]
                            )
                        });
                        let matched = tag.as_ref().is_some_and(|t| {
                            req.headers()
                                .get("if-none-match")
                                .is_some_and(|v| v.as_bytes() == t.as_bytes())
                        });
                        let resp = match (bytes, tag) {
                            (Some(_), Some(_)) if matched => http::Response::builder()
                                .status(304)
                                .body(Full::new(Bytes::new())),
                            (Some(b), Some(t)) => {
                                *counts.lock().unwrap().entry(name).or_insert(0) += b.len();
                                http::Response::builder()
                                    .header("etag", t)
                                    .body(Full::new(Bytes::from(b)))
                            }
                            _ => http::Response::builder()
                                .status(404)
                                .body(Full::new(Bytes::new())),
                        };
                        async move { resp.map_err(|e| e.to_string()) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        FileServer { origin, sent }
    }

    pub fn sent(&self, name: &str) -> usize {
        self.sent.lock().unwrap().get(name).copied().unwrap_or(0)
    }
}
