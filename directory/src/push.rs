//! Pushing revisions to gateways' admin APIs: a delta (`PATCH /-/snapshot`)
//! when the gateway holds the revision it applies to, the whole snapshot
//! (`PUT /-/snapshot`) otherwise or when the delta is refused. Each
//! exchange is bounded as a whole by a deadline: a gateway that does not
//! answer delays its own copy, never the others or the writes.

use std::time::Duration;

use http::{Method, Request, header};
use http_body_util::BodyExt;
use portcullis_gateway::response::full;
use portcullis_gateway::stage::forward::{HttpClient, http_client};

/// A gateway the service pushes to.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushTarget {
    /// The gateway's admin listener, `http://host:port`.
    pub admin_url: String,
    /// Its `admin.token`.
    pub token: String,
}

/// Pushes to gateways from the publisher's thread.
pub struct Pusher {
    rt: tokio::runtime::Runtime,
    client: HttpClient,
    timeout: Duration,
}

impl Pusher {
    /// A pusher whose every exchange must complete within `timeout`.
    pub fn new(timeout: Duration) -> std::io::Result<Pusher> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let client = rt.block_on(async { http_client(timeout, 4) });
        Ok(Pusher {
            rt,
            client,
            timeout,
        })
    }

    /// The revision `target` serves (`GET /-/snapshot`), when it answers:
    /// a gateway that already serves a revision is not sent it again.
    pub fn serving(&self, target: &PushTarget) -> Option<u64> {
        let url = format!("{}/-/snapshot", target.admin_url.trim_end_matches('/'));
        let req = Request::builder()
            .method(Method::GET)
            .uri(&url)
            .header(header::AUTHORIZATION, format!("Bearer {}", target.token))
            .body(portcullis_gateway::response::empty())
            .ok()?;
        let exchange = async {
            let resp = self.client.request(req).await.ok()?;
            if !resp.status().is_success() {
                return None;
            }
            let body = resp.into_body().collect().await.ok()?.to_bytes();
            serde_json::from_slice::<serde_json::Value>(&body)
                .ok()?
                .get("revision")?
                .as_u64()
        };
        self.rt.block_on(async {
            tokio::time::timeout(self.timeout, exchange)
                .await
                .ok()
                .flatten()
        })
    }

    fn send(&self, target: &PushTarget, method: Method, bytes: &[u8]) -> Result<(), String> {
        let url = format!("{}/-/snapshot", target.admin_url.trim_end_matches('/'));
        let req = Request::builder()
            .method(method)
            .uri(&url)
            .header(header::AUTHORIZATION, format!("Bearer {}", target.token))
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(full(bytes.to_vec()))
            .map_err(|e| format!("{url}: {e}"))?;
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| format!("cannot reach {url}: {e}"))?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("{url}: {e}"))?
                .to_bytes();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            // A gateway already at this revision or a later one (a
            // restarted service, a gateway fed from elsewhere too) holds it.
            let held = status == http::StatusCode::CONFLICT
                && v.get("reason").and_then(|r| r.as_str()) == Some("stale_revision");
            if status.is_success() || held {
                Ok(())
            } else {
                Err(format!(
                    "{url} refused it ({}): {}",
                    status.as_u16(),
                    v.get("message")
                        .and_then(|m| m.as_str())
                        .unwrap_or("no reason given")
                ))
            }
        };
        self.rt.block_on(async {
            tokio::time::timeout(self.timeout, exchange)
                .await
                .unwrap_or_else(|_| Err(format!("{url}: no answer within {:?}", self.timeout)))
        })
    }

    /// Brings `target` to the revision of `snapshot`: the `delta` first
    /// when there is one for the revision the gateway holds, the snapshot
    /// when there is none or it is refused.
    pub fn push(
        &self,
        target: &PushTarget,
        delta: Option<&[u8]>,
        snapshot: &[u8],
    ) -> Result<(), String> {
        if let Some(d) = delta
            && self.send(target, Method::PATCH, d).is_ok()
        {
            return Ok(());
        }
        self.send(target, Method::PUT, snapshot)
    }
}
