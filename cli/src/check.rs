//! `portcullis check`: ad-hoc and batch decisions with explanations.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use policy_wasm::{Context, Engine, Explanation, Question, Request, parse_time};
use portcullis_host::module::{HostError, InstanceLimits, PolicyInstance, PolicyModule};
use portcullis_snapshots::header::MAGIC;

use crate::directory::compile_text;
use crate::error::CliError;
use crate::files::read_bytes;
use crate::output::say;

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The snapshot (or a directory JSON, compiled in memory).
    #[arg(long)]
    snapshot: PathBuf,
    /// `user/<username>`, `service/<id>`, `apikey/<sha256 hex>` or `support`.
    #[arg(long, required_unless_present = "batch")]
    principal: Option<String>,
    /// An action, e.g. `read`, `user:deactivate`, `manage:schemas`.
    #[arg(long, required_unless_present = "batch")]
    action: Option<String>,
    /// A resource, e.g. `catalog/sales`, `user/olivia`, `entity/schemas`.
    #[arg(long, required_unless_present = "batch")]
    resource: Option<String>,
    /// The time to decide at: RFC 3339 or integer Unix seconds (the
    /// request format of policy-wasm/README.md); defaults to now.
    #[arg(long)]
    now: Option<String>,
    /// The request is part of a bulk operation.
    #[arg(long)]
    bulk: bool,
    /// Print why: the message and the chain of facts.
    #[arg(long)]
    explain: bool,
    /// Print the decision as JSON.
    #[arg(long)]
    json: bool,
    /// A JSON-lines file of requests in the request format of
    /// policy-wasm/README.md (`{"principal", "action", "resource",
    /// "context": {"now", "bulk"}}`; unknown fields are errors); prints one
    /// JSON decision per line. `--now` and `--bulk` apply to lines that do
    /// not say. `-` reads standard input.
    #[arg(long, conflicts_with_all = ["principal", "action", "resource"])]
    batch: Option<PathBuf>,
    /// Evaluate with the native engine instead of the WebAssembly module
    /// the gateway enforces with (both must agree; the tests prove it).
    #[arg(long)]
    native: bool,
}

/// The engine, native or as the gateway runs it.
enum Evaluator {
    Native(Box<Engine>),
    Wasm(Box<PolicyInstance>),
}

impl Evaluator {
    fn explain(&mut self, req: &Request<'_>) -> Result<Explanation, CliError> {
        match self {
            Evaluator::Native(e) => Ok(e.explain(req)),
            Evaluator::Wasm(i) => i.explain(req).map_err(|e| CliError::Module(e.to_string())),
        }
    }
}

pub fn run(a: CheckArgs) -> Result<(), CliError> {
    let bytes = snapshot_bytes(&a.snapshot)?;
    let mut engine = if a.native {
        Evaluator::Native(Box::new(Engine::load(&bytes).map_err(|e| match e {
            policy_wasm::LoadError::Decode(source) => CliError::Snapshot {
                path: a.snapshot.clone(),
                source,
            },
        })?))
    } else {
        let module = PolicyModule::new_cached().map_err(|e| CliError::Module(e.to_string()))?;
        let mut inst = module
            .instantiate(InstanceLimits::default())
            .map_err(|e| CliError::Module(e.to_string()))?;
        inst.load_snapshot(&bytes).map_err(|e| match e {
            HostError::Load(msg) => CliError::Usage(format!("{}: {msg}", a.snapshot.display())),
            other => CliError::Module(other.to_string()),
        })?;
        Evaluator::Wasm(Box::new(inst))
    };
    let now = match &a.now {
        Some(s) => parse_time(s).map_err(|e| CliError::Usage(format!("--now: {e}")))?,
        None => time::OffsetDateTime::now_utc().unix_timestamp(),
    };
    let context = Context { now, bulk: a.bulk };
    if let Some(batch) = &a.batch {
        return run_batch(&mut engine, batch, context);
    }
    let req = Request {
        principal: a.principal.as_deref().unwrap_or_default(),
        action: a.action.as_deref().unwrap_or_default(),
        resource: a.resource.as_deref().unwrap_or_default(),
        context,
    };
    let ex = engine.explain(&req)?;
    if a.json {
        say!("{}", serde_json::to_string_pretty(&ex).unwrap_or_default());
    } else {
        say!("{} ({})", ex.decision, ex.reason);
        if a.explain {
            say!("{}", ex.message);
            for link in &ex.chain {
                say!("  · {link}");
            }
            for o in &ex.obligations {
                say!("  obligation: {o}");
            }
            say!("  snapshot revision {}", ex.revision);
        }
    }
    if ex.allowed {
        Ok(())
    } else {
        Err(CliError::Denied)
    }
}

fn run_batch(engine: &mut Evaluator, path: &Path, context: Context) -> Result<(), CliError> {
    let io = |source| CliError::Io {
        action: "cannot read",
        path: path.to_path_buf(),
        source,
    };
    let reader: Box<dyn BufRead> = if path == Path::new("-") {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        Box::new(BufReader::new(std::fs::File::open(path).map_err(io)?))
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for (n, line) in reader.lines().enumerate() {
        let line = line.map_err(io)?;
        if line.trim().is_empty() {
            continue;
        }
        let refuse = |out: &mut dyn Write, msg: String| {
            writeln!(out, "{}", serde_json::json!({"decision": "deny", "allowed": false, "reason": "malformed_request", "message": msg}))
                .map_err(crate::output::closed_or_failed)
        };
        let question: Question = match serde_json::from_str(&line) {
            Ok(q) => q,
            Err(e) => {
                refuse(&mut out, format!("line {}: {e}", n + 1))?;
                continue;
            }
        };
        let mut req = match question.request(context.now) {
            Ok(r) => r,
            Err(e) => {
                refuse(&mut out, format!("line {}: {e}", n + 1))?;
                continue;
            }
        };
        req.context.bulk |= context.bulk;
        let ex = engine.explain(&req)?;
        writeln!(out, "{}", serde_json::to_string(&ex).unwrap_or_default())
            .map_err(crate::output::closed_or_failed)?;
    }
    Ok(())
}

/// Reads a snapshot file, or compiles a directory JSON in memory.
fn snapshot_bytes(path: &Path) -> Result<Vec<u8>, CliError> {
    let bytes = read_bytes(path)?;
    if bytes.starts_with(&MAGIC) {
        return Ok(bytes);
    }
    let text = String::from_utf8(bytes).map_err(|_| {
        CliError::Usage(format!(
            "{}: neither a snapshot nor directory JSON",
            path.display()
        ))
    })?;
    let (dir, body) = compile_text(path, &text, false)?;
    Ok(portcullis_snapshots::encode(
        &body,
        dir.revision.unwrap_or(0),
        0,
    )?)
}
