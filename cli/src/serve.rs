//! `portcullis serve` and `portcullis demo`. The proxy runs on its own
//! worker threads (one per core, see `server.rs`); this runtime carries the
//! admin listener, the snapshot sources and start-up.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use portcullis_demo::{DemoOptions, start_demo};
use portcullis_gateway::compiled::{CompileError, CompiledConfig};
use portcullis_gateway::config::GatewayConfig;
use portcullis_gateway::server::{StartError, start_compiled};

use crate::error::CliError;
use crate::output::{say, say_raw};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The configuration file (see docs/gateway.md).
    #[arg(long, short)]
    config: PathBuf,
    /// Check the configuration and exit.
    #[arg(long)]
    check: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The proxy listener.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The admin listener.
    #[arg(long, default_value = "127.0.0.1:9090")]
    admin_listen: SocketAddr,
    /// Run the demo's steps, check every answer, print them, and exit.
    #[arg(long)]
    walkthrough: bool,
    /// The browser package for the demo page (built by scripts/build-browser).
    #[arg(long, default_value = "target/browser-pkg")]
    browser_pkg: PathBuf,
    /// How long a client may take to send a request head, and how long an
    /// idle connection is kept, in milliseconds (slowloris protection).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    header_read_timeout_ms: u64,
    /// Serve the proxy over HTTPS, with a certificate for 127.0.0.1 and
    /// localhost from a CA made for this run (printed: trust it with
    /// `curl --cacert` or CURL_CA_BUNDLE).
    #[arg(long)]
    tls: bool,
    /// The directory service's API (the demo page's buttons are its writes);
    /// `off` runs none.
    #[arg(long, default_value = "127.0.0.1:7070", value_parser = parse_directory_listen)]
    directory_listen: DirectoryListen,
}

/// Where the demo's directory service listens, or nowhere.
#[derive(Clone, Debug)]
struct DirectoryListen(Option<SocketAddr>);

fn parse_directory_listen(s: &str) -> Result<DirectoryListen, String> {
    if s == "off" {
        return Ok(DirectoryListen(None));
    }
    s.parse()
        .map(|a| DirectoryListen(Some(a)))
        .map_err(|e| format!("{s:?}: {e} (an address such as 127.0.0.1:7070, or off)"))
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("portcullis-admin")
        .enable_all()
        .build()
        .map_err(|e| CliError::Start(format!("cannot start the runtime: {e}")))
}

pub(crate) fn init_logs() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("PORTCULLIS_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

pub fn serve(a: ServeArgs) -> Result<(), CliError> {
    let config = GatewayConfig::load(&a.config).map_err(|e| CliError::Config(e.to_string()))?;
    // Compiled once, here: routes, keys and tokens are read and built, and
    // the server runs on exactly what `--check` approves.
    let compiled = CompiledConfig::compile(config).map_err(|e| match e.in_file(&a.config) {
        e @ CompileError::Invalid(_) => CliError::Config(e.to_string()),
        e @ CompileError::Unreadable(_) if a.check => CliError::Config(e.to_string()),
        e @ CompileError::Unreadable(_) => CliError::Start(e.to_string()),
    })?;
    if a.check {
        say!(
            "{}: ok ({} routes, {} upstreams)",
            a.config.display(),
            compiled.config.routes.len(),
            compiled.config.upstreams.len()
        );
        return Ok(());
    }
    init_logs();
    let rt = runtime()?;
    rt.block_on(async {
        let running = start_compiled(compiled, None, None)
            .await
            .map_err(|e| match e {
                StartError::Config(_) | StartError::Snapshot { .. } => {
                    CliError::Config(e.to_string())
                }
                _ => CliError::Start(e.to_string()),
            })?;
        running.run_until_signal().await;
        Ok(())
    })
}

pub fn demo(a: DemoArgs) -> Result<(), CliError> {
    if !a.walkthrough {
        init_logs();
    }
    let rt = runtime()?;
    rt.block_on(async {
        let demo = start_demo(DemoOptions {
            listen: a.listen,
            admin_listen: a.admin_listen,
            decision_log: if a.walkthrough {
                "off".into()
            } else {
                "stdout".into()
            },
            work_dir: std::env::temp_dir().join(format!("portcullis-demo-{}", std::process::id())),
            browser_pkg: Some(a.browser_pkg),
            header_read_timeout_ms: a.header_read_timeout_ms,
            tls: a.tls,
            directory_listen: a.directory_listen.0,
        })
        .await
        .map_err(CliError::Start)?;
        if a.walkthrough {
            let report = demo.walkthrough().await;
            demo.gateway.shutdown().await;
            let report = report.map_err(CliError::Start)?;
            say_raw!("{report}");
            say!("walkthrough: every step answered as expected");
            return Ok(());
        }
        println!("{}", demo.instructions());
        demo.gateway.run_until_signal().await;
        Ok(())
    })
}
