//! `portcullis snapshot push`: send a snapshot (PUT) or a delta (PATCH) to
//! a running gateway's admin API, which validates it completely before
//! swapping it in.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use http::{Method, Request, header};
use http_body_util::BodyExt;
use portcullis_gateway::{response::full, stage::forward::http_client};
use portcullis_snapshots::Candidate;

use crate::error::CliError;
use crate::files::read_bytes;
use crate::output::say;

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The snapshot file (or, with `--delta`, the delta file).
    file: PathBuf,
    /// The gateway's admin URL, e.g. http://127.0.0.1:9090.
    #[arg(long)]
    to: String,
    /// The admin token (or set PORTCULLIS_ADMIN_TOKEN).
    #[arg(long, env = "PORTCULLIS_ADMIN_TOKEN", hide_env_values = true)]
    token: String,
    /// Install even if the revision is not newer (a deliberate rollback).
    #[arg(long)]
    force: bool,
    /// FILE is a delta (`snapshot delta`, `build --delta-from`): the gateway
    /// applies it to the revision it serves, which must be the delta's base.
    #[arg(long)]
    delta: bool,
}

pub fn run(a: PushArgs) -> Result<(), CliError> {
    let candidate = Candidate::of(read_bytes(&a.file)?);
    if candidate.is_delta() != a.delta {
        return Err(CliError::Usage(if candidate.is_delta() {
            format!("{}: a delta; push it with --delta", a.file.display())
        } else {
            format!(
                "{}: not a delta (push a snapshot without --delta)",
                a.file.display()
            )
        }));
    }
    let method = if candidate.is_delta() {
        Method::PATCH
    } else {
        Method::PUT
    };
    let base = a.to.trim_end_matches('/');
    let url = format!(
        "{base}/-/snapshot{}",
        if a.force { "?force=true" } else { "" }
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Start(e.to_string()))?;
    let (status, body) = rt.block_on(async {
        let client = http_client(Duration::from_secs(5), 1);
        let req = Request::builder()
            .method(method)
            .uri(&url)
            .header(header::AUTHORIZATION, format!("Bearer {}", a.token))
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(full(candidate.into_bytes()))
            .map_err(|e| CliError::Usage(format!("--to {:?}: {e}", a.to)))?;
        let resp = client
            .request(req)
            .await
            .map_err(|e| CliError::Push(format!("cannot reach {url}: {e}")))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| CliError::Push(format!("{url}: {e}")))?
            .to_bytes();
        Ok::<_, CliError>((status, body))
    })?;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if status.is_success() {
        say!(
            "{}: revision {} serving (was {}){}",
            a.file.display(),
            v.get("revision").unwrap_or(&serde_json::Value::Null),
            v.get("previous").unwrap_or(&serde_json::Value::Null),
            if a.delta { ", applied as a delta" } else { "" }
        );
        Ok(())
    } else {
        Err(CliError::Refused(format!(
            "{}: refused by the gateway ({}): {}",
            a.file.display(),
            status.as_u16(),
            v.get("message")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("no reason given")
        )))
    }
}
