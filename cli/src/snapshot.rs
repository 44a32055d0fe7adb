//! `portcullis snapshot …`: build, sign, inspect, diff and generate
//! snapshots; make and apply deltas.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use portcullis_snapshots::generate::{GenerateParams, generate};
use portcullis_snapshots::header::MAGIC;
use portcullis_snapshots::source::{self, Directory, Timestamp};
use portcullis_snapshots::vocabulary::UserStatus;
use portcullis_snapshots::{Snapshot, decode, delta, diff, encode, signature};
use serde_json::json;

use super::output::{say, say_raw};
use crate::error::CliError;

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Validate a directory source and compile it into a snapshot.
    ///
    /// Every problem in the directory is reported with its JSON pointer,
    /// line and column; if there is any, nothing is written.
    Build(BuildArgs),
    /// Validate a directory source without writing anything.
    Validate {
        /// The directory source (JSON).
        directory: PathBuf,
        /// Print the problems as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a snapshot's header and record counts.
    Inspect {
        /// The snapshot file.
        snapshot: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show what changed between two snapshots (or directory sources):
    /// principals, nodes, roles, grants and permissions added, removed or changed.
    Diff {
        /// The snapshot (or directory JSON) currently deployed.
        old: PathBuf,
        /// The candidate: a snapshot, directory JSON, or a delta that
        /// applies to OLD.
        new: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write the delta from the deployed snapshot to a candidate.
    ///
    /// What a gateway serving the deployed revision needs to serve the
    /// candidate (`PATCH /-/snapshot`, `snapshot push --delta`, `snapshot
    /// publish`). Format: snapshots/FORMAT.md, "Deltas".
    Delta {
        /// The snapshot deployed (the delta applies to exactly this one).
        deployed: PathBuf,
        /// The candidate snapshot (a full build).
        candidate: PathBuf,
        /// Where to write the delta.
        #[arg(short, long)]
        output: PathBuf,
        /// Sign the delta with this private key (PKCS#8 PEM).
        #[arg(long, value_name = "KEY")]
        sign: Option<PathBuf>,
    },
    /// Apply a delta to the snapshot it was made from.
    ///
    /// Writes the candidate's snapshot: the same body and SHA-256 as its
    /// full build (unsigned: sign it with `snapshot sign`).
    Apply {
        /// The snapshot the delta applies to.
        deployed: PathBuf,
        /// The delta.
        delta: PathBuf,
        /// Where to write the resulting snapshot.
        #[arg(short, long)]
        output: PathBuf,
        /// Refuse the delta unless it is signed by one of these public keys
        /// (SPKI PEM).
        #[arg(long = "trust", value_name = "PUBLIC_KEY")]
        trust: Vec<PathBuf>,
    },
    /// Publish a snapshot, with the delta from the last one, into a store directory.
    ///
    /// Writes the snapshot, the delta from the revision published before
    /// it, and the manifest (`latest.json`, written last) that polling
    /// gateways read (`snapshot.poll_url = ".../latest.json"`). Files
    /// already there are left for replicas still fetching them.
    Publish {
        /// The snapshot to publish (a full build).
        snapshot: PathBuf,
        /// The store directory (created if missing).
        #[arg(long)]
        dir: PathBuf,
        /// Deltas the manifest lists, newest first: a replica this many
        /// revisions behind still gets deltas rather than the snapshot.
        #[arg(long, default_value_t = 10)]
        keep: usize,
        /// Sign the snapshot and the delta with this private key.
        #[arg(long, value_name = "KEY")]
        sign: Option<PathBuf>,
    },
    /// Write a deterministic, realistic large directory (for benchmarks).
    ///
    /// Writes a snapshot when OUT ends in `.snap`, directory JSON otherwise.
    /// Generated API key secrets are `pk_<seed>_<index>`.
    Generate(GenerateArgs),
    /// Send a snapshot (or, with --delta, a delta) to a running gateway (validated there before the swap).
    Push(super::push::PushArgs),
    /// Make an Ed25519 key pair for signing snapshots: the private key
    /// (PKCS#8 PEM, readable by its owner only) and the public key (SPKI
    /// PEM) that gateways list in `snapshot.trusted_keys`.
    Keygen {
        /// Where to write the private key.
        #[arg(short, long)]
        output: PathBuf,
        /// Where to write the public key (default: OUTPUT with `.pub`).
        #[arg(long)]
        public: Option<PathBuf>,
    },
    /// Sign a snapshot (an existing signature is replaced).
    Sign {
        /// The snapshot file.
        snapshot: PathBuf,
        /// The private key (PKCS#8 PEM).
        #[arg(long)]
        key: PathBuf,
        /// Where to write the signed snapshot (default: in place).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Write the snapshot without personal data or API keys — or, with
    /// `--for`, one principal's view: what the gateway serves its browser
    /// at `GET /-/snapshot/me` (policy-wasm/README.md#views).
    Redact {
        /// The snapshot file.
        snapshot: PathBuf,
        /// Where to write the redacted snapshot or the view.
        #[arg(short, long)]
        output: PathBuf,
        /// Write this principal's view (`user/…` or `service/…`): only
        /// what decides its own requests, and nobody else's personal data.
        #[arg(long = "for", value_name = "PRINCIPAL")]
        principal: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The directory source (JSON).
    directory: PathBuf,
    /// Where to write the snapshot.
    #[arg(short, long)]
    output: PathBuf,
    /// Revision to stamp (overrides "revision" in the directory).
    #[arg(long)]
    revision: Option<u64>,
    /// Creation time to stamp (RFC 3339). Defaults to $SOURCE_DATE_EPOCH, then now.
    #[arg(long)]
    created_at: Option<String>,
    /// Print the problems as JSON.
    #[arg(long)]
    json: bool,
    /// Sign the snapshot with this private key (PKCS#8 PEM; see `keygen`)
    /// — and the delta, with `--delta-from`.
    #[arg(long, value_name = "KEY")]
    sign: Option<PathBuf>,
    /// Also write the delta from this deployed snapshot to the one built
    /// (to OUTPUT with `.delta` added, or `--delta-output`).
    #[arg(long, value_name = "DEPLOYED")]
    delta_from: Option<PathBuf>,
    /// Where to write the delta of `--delta-from`.
    #[arg(long, value_name = "PATH", requires = "delta_from")]
    delta_output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Where to write (`.snap`: a snapshot; anything else: directory JSON).
    #[arg(short, long)]
    output: PathBuf,
    /// Users.
    #[arg(long, default_value_t = GenerateParams::default().users)]
    users: usize,
    /// Groups (about 50 members each).
    #[arg(long, default_value_t = GenerateParams::default().groups)]
    groups: usize,
    /// Organizations, the domain included.
    #[arg(long, default_value_t = GenerateParams::default().orgs)]
    orgs: usize,
    /// Environments.
    #[arg(long, default_value_t = GenerateParams::default().envs)]
    envs: usize,
    /// Catalogs.
    #[arg(long, default_value_t = GenerateParams::default().catalogs)]
    catalogs: usize,
    /// Role grants.
    #[arg(long, default_value_t = GenerateParams::default().grants)]
    grants: usize,
    /// Random seed: the same seed and sizes give the same directory.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Revision to stamp.
    #[arg(long, default_value_t = 1)]
    revision: u64,
}

pub fn run(cmd: SnapshotCommand) -> Result<(), CliError> {
    match cmd {
        SnapshotCommand::Build(a) => build(a),
        SnapshotCommand::Validate { directory, json } => {
            let text = read_text(&directory)?;
            let (dir, _) = compile_text(&directory, &text, json)?;
            warn_unverified(&directory, &dir);
            say!(
                "{}: valid ({} users, {} grants)",
                directory.display(),
                dir.users.len(),
                dir.grants.len()
            );
            Ok(())
        }
        SnapshotCommand::Inspect { snapshot, json } => inspect(&snapshot, json),
        SnapshotCommand::Diff { old, new, json } => diff_cmd(&old, &new, json),
        SnapshotCommand::Delta {
            deployed,
            candidate,
            output,
            sign,
        } => {
            let (base, target) = (read_bytes(&deployed)?, read_bytes(&candidate)?);
            write_delta(
                &deployed,
                &base,
                &candidate,
                &target,
                &output,
                sign.as_deref(),
            )
        }
        SnapshotCommand::Apply {
            deployed,
            delta,
            output,
            trust,
        } => apply_cmd(&deployed, &delta, &output, &trust),
        SnapshotCommand::Publish {
            snapshot,
            dir,
            keep,
            sign,
        } => publish(&snapshot, &dir, keep, sign.as_deref()),
        SnapshotCommand::Generate(a) => generate_cmd(a),
        SnapshotCommand::Push(a) => super::push::run(a),
        SnapshotCommand::Keygen { output, public } => keygen(&output, public),
        SnapshotCommand::Sign {
            snapshot,
            key,
            output,
        } => {
            let bytes = read_bytes(&snapshot)?;
            let signed = sign_with(&key, &snapshot, &bytes)?;
            let output = output.unwrap_or(snapshot);
            write_atomic(&output, &signed)?;
            say!("signed {}", output.display());
            Ok(())
        }
        SnapshotCommand::Redact {
            snapshot,
            output,
            principal,
        } => {
            let bytes = read_bytes(&snapshot)?;
            let Some(principal) = principal else {
                let redacted =
                    portcullis_snapshots::scope::redact_snapshot(&bytes).map_err(|source| {
                        CliError::Snapshot {
                            path: snapshot.clone(),
                            source,
                        }
                    })?;
                write_atomic(&output, &redacted)?;
                say!(
                    "wrote {} ({} bytes, from {} bytes): no personal data, no API keys",
                    output.display(),
                    redacted.len(),
                    bytes.len()
                );
                return Ok(());
            };
            let engine = policy_wasm::Engine::load(&bytes).map_err(|e| match e {
                policy_wasm::LoadError::Decode(source) => CliError::Snapshot {
                    path: snapshot.clone(),
                    source,
                },
            })?;
            let view = engine.view(&principal)?;
            write_atomic(&output, &view)?;
            let body = decode_file(&output, &view)?.body;
            let counts = body.counts();
            // The stand-in for team owners outside the view names nobody.
            let others = body
                .users
                .iter()
                .filter(|u| !body.str(u.username).is_empty())
                .count()
                .saturating_sub(usize::from(principal.starts_with("user/")));
            say!(
                "wrote {} ({} bytes, from {} bytes): the view of {principal} — {others} other users, {} organizations, {} environments, {} catalogs, {} objects, {} teams, {} grants; nobody else's personal data, no API keys",
                output.display(),
                view.len(),
                bytes.len(),
                counts.organizations,
                counts.environments,
                counts.catalogs,
                counts.objects,
                counts.teams,
                counts.grants,
            );
            Ok(())
        }
    }
}

fn build(a: BuildArgs) -> Result<(), CliError> {
    let text = read_text(&a.directory)?;
    let (dir, body) = compile_text(&a.directory, &text, a.json)?;
    warn_unverified(&a.directory, &dir);
    let revision = a
        .revision
        .or(dir.revision)
        .ok_or_else(|| CliError::NoRevision {
            path: a.directory.clone(),
        })?;
    let created_at = created_at(a.created_at.as_deref())?;
    let mut bytes = encode(&body, revision, created_at)?;
    if let Some(key) = &a.sign {
        bytes = sign_with(key, &a.output, &bytes)?;
    }
    // The deployed snapshot is read (and the delta made) before anything
    // is written: a bad deployed file leaves nothing behind.
    let delta = match &a.delta_from {
        Some(deployed) => {
            let base = read_bytes(deployed)?;
            let delta = make_delta(deployed, &base, &a.output, &bytes)?;
            let path = a.delta_output.clone().unwrap_or_else(|| {
                let mut p = a.output.as_os_str().to_owned();
                p.push(".delta");
                PathBuf::from(p)
            });
            let delta = match &a.sign {
                Some(key) => sign_delta_with(key, &path, &delta)?,
                None => delta,
            };
            Some((path, delta))
        }
        None => None,
    };
    write_atomic(&a.output, &bytes)?;
    let c = body.counts();
    eprintln!(
        "wrote {} ({} bytes, revision {revision}): {} users, {} groups, {} grants, {} permissions",
        a.output.display(),
        bytes.len(),
        c.users,
        c.groups,
        c.grants,
        c.permissions
    );
    if let Some((path, delta)) = delta {
        write_atomic(&path, &delta)?;
        eprintln!(
            "wrote {} ({} bytes): the delta from {}",
            path.display(),
            delta.len(),
            a.delta_from.as_deref().unwrap_or(Path::new("")).display()
        );
    }
    Ok(())
}

/// The delta from `base` (at `deployed`) to `target` (at `candidate`),
/// unsigned.
fn make_delta(
    deployed: &Path,
    base: &[u8],
    candidate: &Path,
    target: &[u8],
) -> Result<Vec<u8>, CliError> {
    let (old, new) = (
        decode_file(deployed, base)?,
        decode_file(candidate, target)?,
    );
    for (path, s) in [(deployed, &old), (candidate, &new)] {
        if s.header.is_view() {
            return Err(CliError::Usage(format!(
                "{}: a principal's view, not a directory snapshot",
                path.display()
            )));
        }
    }
    let as_delta = |source| CliError::Delta {
        path: candidate.to_path_buf(),
        source,
    };
    let body = delta::compute(&old.body, &new.body).map_err(as_delta)?;
    delta::encode_delta(&old.header, &new.header, &body).map_err(as_delta)
}

fn write_delta(
    deployed: &Path,
    base: &[u8],
    candidate: &Path,
    target: &[u8],
    output: &Path,
    sign: Option<&Path>,
) -> Result<(), CliError> {
    let mut bytes = make_delta(deployed, base, candidate, target)?;
    if let Some(key) = sign {
        bytes = sign_delta_with(key, output, &bytes)?;
    }
    write_atomic(output, &bytes)?;
    let d = delta::decode_delta(&bytes).map_err(|source| CliError::Delta {
        path: output.to_path_buf(),
        source,
    })?;
    let (removed, inserted) = d.body.edits();
    say!(
        "wrote {} ({} bytes, {:.2}% of the candidate's {} bytes): revision {} → {}, {removed} rows removed, {inserted} inserted or changed",
        output.display(),
        bytes.len(),
        bytes.len() as f64 * 100.0 / target.len().max(1) as f64,
        target.len(),
        d.header.base_revision,
        d.header.target_revision,
    );
    Ok(())
}

fn sign_delta_with(key_file: &Path, path: &Path, bytes: &[u8]) -> Result<Vec<u8>, CliError> {
    let key = signature::read_private(&read_text(key_file)?)
        .map_err(|e| CliError::Usage(format!("{}: {e}", key_file.display())))?;
    signature::sign_delta(bytes, &key).map_err(|source| CliError::Delta {
        path: path.to_path_buf(),
        source,
    })
}

/// The delta in `bytes` (read from `path`), refused unless signed by one
/// of `trust` (when given).
fn read_delta(path: &Path, bytes: &[u8], trust: &[PathBuf]) -> Result<delta::Delta, CliError> {
    let as_delta = |source| CliError::Delta {
        path: path.to_path_buf(),
        source,
    };
    let d = delta::decode_delta(bytes).map_err(as_delta)?;
    if !trust.is_empty() {
        let keys = trust
            .iter()
            .map(|k| {
                signature::read_public(&read_text(k)?)
                    .map_err(|e| CliError::Usage(format!("{}: {e}", k.display())))
            })
            .collect::<Result<Vec<_>, _>>()?;
        match signature::verify_delta(bytes, &keys) {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(CliError::Usage(format!(
                    "{}: the delta is not signed, and --trust asks for a signature",
                    path.display()
                )));
            }
            Err(e) => return Err(CliError::Usage(format!("{}: {e}", path.display()))),
        }
    }
    Ok(d)
}

fn apply_cmd(
    deployed: &Path,
    delta: &Path,
    output: &Path,
    trust: &[PathBuf],
) -> Result<(), CliError> {
    let d = read_delta(delta, &read_bytes(delta)?, trust)?;
    let base = read_bytes(deployed)?;
    let out = d.apply_to(&base).map_err(|source| CliError::Delta {
        path: delta.to_path_buf(),
        source,
    })?;
    write_atomic(output, &out)?;
    say!(
        "wrote {} ({} bytes, revision {}, SHA-256 {}): {} with {} applied",
        output.display(),
        out.len(),
        d.header.target_revision,
        hex::encode(d.header.target_sha256),
        deployed.display(),
        delta.display()
    );
    Ok(())
}

/// `bytes` (the snapshot at `path`) signed with the key in `key_file`.
fn sign_with(key_file: &Path, path: &Path, bytes: &[u8]) -> Result<Vec<u8>, CliError> {
    let key = signature::read_private(&read_text(key_file)?)
        .map_err(|e| CliError::Usage(format!("{}: {e}", key_file.display())))?;
    signature::sign(bytes, &key).map_err(|source| CliError::Snapshot {
        path: path.to_path_buf(),
        source,
    })
}

fn keygen(output: &Path, public: Option<PathBuf>) -> Result<(), CliError> {
    let public = public.unwrap_or_else(|| {
        let mut p = output.as_os_str().to_owned();
        p.push(".pub");
        PathBuf::from(p)
    });
    let key = signature::generate().map_err(|e| CliError::Usage(e.to_string()))?;
    let private = signature::private_pem(&key).map_err(|e| CliError::Usage(e.to_string()))?;
    let public_text =
        signature::public_pem(&key.verifying_key()).map_err(|e| CliError::Usage(e.to_string()))?;
    if output.exists() {
        return Err(CliError::Usage(format!(
            "{} exists; keygen never overwrites a key (remove it first)",
            output.display()
        )));
    }
    write_private(output, private.as_bytes())?;
    write_atomic(&public, public_text.as_bytes())?;
    say!(
        "wrote {} (private: keep it secret) and {} (public, key {}): list the public key in snapshot.trusted_keys",
        output.display(),
        public.display(),
        signature::fingerprint(&key.verifying_key())
    );
    Ok(())
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let io = |source| CliError::Io {
        action: "cannot write",
        path: path.to_path_buf(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path).map_err(io)?;
    f.write_all(bytes).map_err(io)
}

/// Users who could act but for an unverified email: `email_verified`
/// defaults to false (fail closed), so a directory written by hand without
/// it denies those users every interactive action. It builds — that may be
/// meant — but the operator hears about it, on standard error.
fn warn_unverified(path: &Path, dir: &Directory) {
    let unverified: Vec<&str> = dir
        .users
        .iter()
        .filter(|u| !u.email_verified && u.allow_login && u.status == UserStatus::Active)
        .map(|u| u.username.as_str())
        .collect();
    if unverified.is_empty() {
        return;
    }
    let named = unverified
        .iter()
        .take(5)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    let more = if unverified.len() > 5 { ", …" } else { "" };
    eprintln!(
        "warning: {}: {} active user{} without \"email_verified\": true ({named}{more}): every interactive action of theirs is denied until their email is verified",
        path.display(),
        unverified.len(),
        if unverified.len() == 1 { "" } else { "s" },
    );
}

/// Parses and compiles, turning problems into a rendered [`CliError`].
pub(super) fn compile_text(
    path: &Path,
    text: &str,
    json: bool,
) -> Result<(Directory, portcullis_snapshots::body::Body), CliError> {
    source::build(text).map_err(|problems| CliError::Directory {
        rendered: if json {
            serde_json::to_string_pretty(&json!({
                "file": path.display().to_string(),
                "problems": problems.0,
            }))
            .unwrap_or_default()
        } else {
            problems.render(&path.display().to_string())
        },
        problems,
    })
}

fn created_at(flag: Option<&str>) -> Result<i64, CliError> {
    if let Some(s) = flag {
        return Timestamp::parse(s)
            .map(|t| t.0)
            .map_err(|e| CliError::Usage(format!("--created-at: {e}")));
    }
    if let Ok(s) = std::env::var("SOURCE_DATE_EPOCH") {
        return s
            .trim()
            .parse()
            .map_err(|_| CliError::Usage(format!("SOURCE_DATE_EPOCH={s:?} is not Unix seconds")));
    }
    Ok(time::OffsetDateTime::now_utc().unix_timestamp())
}

fn inspect(path: &Path, json: bool) -> Result<(), CliError> {
    let bytes = read_bytes(path)?;
    if delta::is_delta(&bytes) {
        return inspect_delta(path, &bytes, json);
    }
    let snap = decode_file(path, &bytes)?;
    let h = snap.header;
    let b = &snap.body;
    let domain = b
        .orgs
        .get(b.domain as usize)
        .map_or("", |o| b.str(o.id))
        .to_string();
    let counts = b.counts();
    let signer = signature::signer(&bytes)
        .ok()
        .flatten()
        .map(|k| signature::fingerprint(&k));
    if json {
        let out = json!({
            "file": path.display().to_string(),
            "bytes": bytes.len(),
            "format_version": h.format_version,
            "signed_by": signer,
            "revision": h.revision,
            "created_at": Timestamp(h.created_at).to_string(),
            "sha256": hex::encode(h.body_sha256),
            "body_bytes": h.body_len,
            "domain": format!("org/{domain}"),
            "counts": counts,
        });
        say!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return Ok(());
    }
    say!("snapshot    {} ({} bytes)", path.display(), bytes.len());
    say!("format      {}", h.format_version);
    say!("revision    {}", h.revision);
    say!("created     {}", Timestamp(h.created_at));
    say!("sha256      {}", hex::encode(h.body_sha256));
    say!(
        "signed      {}",
        signer.map_or_else(
            || "no".to_string(),
            |k| format!("by key {k} (not verified here)")
        )
    );
    say!("domain      org/{domain}");
    let rows = [
        ("organizations", counts.organizations),
        ("environments", counts.environments),
        ("catalogs", counts.catalogs),
        ("objects", counts.objects),
        ("users", counts.users),
        ("service accounts", counts.service_accounts),
        ("api keys", counts.api_keys),
        ("groups", counts.groups),
        ("memberships", counts.group_memberships),
        ("teams", counts.teams),
        ("custom roles", counts.custom_roles),
        ("grants", counts.grants),
        ("permissions", counts.permissions),
        ("strings", counts.strings),
    ];
    for (name, n) in rows {
        say!("  {name:<17} {n:>9}");
    }
    Ok(())
}

fn inspect_delta(path: &Path, bytes: &[u8], json: bool) -> Result<(), CliError> {
    let d = delta::decode_delta(bytes).map_err(|source| CliError::Delta {
        path: path.to_path_buf(),
        source,
    })?;
    let h = d.header;
    let (removed, inserted) = d.body.edits();
    let signer = signature::delta_signer(bytes)
        .ok()
        .flatten()
        .map(|k| signature::fingerprint(&k));
    if json {
        let out = json!({
            "file": path.display().to_string(),
            "bytes": bytes.len(),
            "delta": true,
            "signed_by": signer,
            "base_revision": h.base_revision,
            "base_sha256": hex::encode(h.base_sha256),
            "revision": h.target_revision,
            "created_at": Timestamp(h.target_created_at).to_string(),
            "sha256": hex::encode(h.target_sha256),
            "rows_removed": removed,
            "rows_inserted": inserted,
        });
        say!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return Ok(());
    }
    say!("delta       {} ({} bytes)", path.display(), bytes.len());
    say!(
        "applies to  revision {} ({})",
        h.base_revision,
        hex::encode(h.base_sha256)
    );
    say!(
        "makes       revision {} ({})",
        h.target_revision,
        hex::encode(h.target_sha256)
    );
    say!("created     {}", Timestamp(h.target_created_at));
    say!(
        "signed      {}",
        signer.map_or_else(
            || "no".to_string(),
            |k| format!("by key {k} (not verified here)")
        )
    );
    say!("rows        {removed} removed, {inserted} inserted or changed");
    Ok(())
}

fn publish(snapshot: &Path, dir: &Path, keep: usize, sign: Option<&Path>) -> Result<(), CliError> {
    use portcullis_gateway::manifest::{DeltaEntry, MANIFEST_FORMAT, Manifest};
    let mut bytes = read_bytes(snapshot)?;
    let header = decode_file(snapshot, &bytes)?.header;
    if header.is_view() {
        return Err(CliError::Usage(format!(
            "{}: a principal's view, not a directory snapshot",
            snapshot.display()
        )));
    }
    if let Some(key) = sign {
        bytes = sign_with(key, snapshot, &bytes)?;
    }
    fs::create_dir_all(dir).map_err(|source| CliError::Io {
        action: "cannot create",
        path: dir.to_path_buf(),
        source,
    })?;
    let manifest_path = dir.join("latest.json");
    let previous = if manifest_path.exists() {
        let m = Manifest::parse(&read_bytes(&manifest_path)?)
            .map_err(|e| CliError::Usage(format!("{}: {e}", manifest_path.display())))?;
        if m.revision >= header.revision {
            return Err(CliError::Usage(format!(
                "{}: revision {} is not newer than revision {} published in {}; build with a higher --revision",
                snapshot.display(),
                header.revision,
                m.revision,
                manifest_path.display()
            )));
        }
        Some(m)
    } else {
        None
    };
    let sha256 = hex::encode(header.body_sha256);
    let name = format!("snapshot-{}.snap", header.revision);
    let mut deltas = Vec::new();
    let mut delta_file = None;
    if let Some(m) = &previous {
        let base_path = dir.join(&m.snapshot);
        let base = read_bytes(&base_path)?;
        let mut delta = make_delta(&base_path, &base, snapshot, &bytes)?;
        if let Some(key) = sign {
            delta = sign_delta_with(key, snapshot, &delta)?;
        }
        let path = format!("delta-{}-{}.delta", m.revision, header.revision);
        deltas.push(DeltaEntry {
            from: m.revision,
            from_sha256: m.sha256.clone(),
            to: header.revision,
            to_sha256: sha256.clone(),
            path: path.clone(),
            bytes: delta.len() as u64,
        });
        delta_file = Some((path, delta));
        deltas.extend(m.deltas.iter().cloned());
    }
    deltas.truncate(keep);
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        revision: header.revision,
        sha256,
        snapshot: name.clone(),
        bytes: bytes.len() as u64,
        deltas,
    };
    // The files the manifest names first, the manifest last: a replica
    // never reads a manifest whose files are not there yet.
    write_atomic(&dir.join(&name), &bytes)?;
    if let Some((path, delta)) = &delta_file {
        write_atomic(&dir.join(path), delta)?;
    }
    let text = serde_json::to_vec_pretty(&manifest).map_err(|e| CliError::Usage(e.to_string()))?;
    write_atomic(&manifest_path, &text)?;
    say!(
        "published revision {} in {}: {name} ({} bytes){}, latest.json ({} deltas listed)",
        header.revision,
        dir.display(),
        bytes.len(),
        delta_file
            .as_ref()
            .map_or_else(String::new, |(p, d)| format!(", {p} ({} bytes)", d.len())),
        manifest.deltas.len()
    );
    Ok(())
}

/// Loads a snapshot or a directory source as a directory, with its revision.
fn load_any(path: &Path, bytes: &[u8]) -> Result<Directory, CliError> {
    if bytes.starts_with(&MAGIC) {
        let snap = decode_file(path, bytes)?;
        return Ok(source::decompile(&snap.body, Some(snap.header.revision)));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| {
        CliError::Usage(format!(
            "{}: neither a snapshot nor UTF-8 directory JSON",
            path.display()
        ))
    })?;
    Ok(compile_text(path, text, false)?.0)
}

fn diff_cmd(old: &Path, new: &Path, json: bool) -> Result<(), CliError> {
    let old_bytes = read_bytes(old)?;
    let o = load_any(old, &old_bytes)?;
    let new_bytes = read_bytes(new)?;
    // A delta as NEW: what it changes in OLD (the snapshot it applies to).
    let n = if delta::is_delta(&new_bytes) {
        let d = read_delta(new, &new_bytes, &[])?;
        let applied = d.apply_to(&old_bytes).map_err(|source| CliError::Delta {
            path: new.to_path_buf(),
            source,
        })?;
        let snap = decode_file(new, &applied)?;
        source::decompile(&snap.body, Some(snap.header.revision))
    } else {
        load_any(new, &new_bytes)?
    };
    let d = diff::diff(&o, &n);
    if json {
        let out = json!({
            "old_revision": o.revision,
            "new_revision": n.revision,
            "sections": d.sections,
        });
        say!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return Ok(());
    }
    let rev = |r: Option<u64>| r.map_or_else(|| "none".to_string(), |r| r.to_string());
    say!("revision: {} → {}", rev(o.revision), rev(n.revision));
    if o.revision.is_some() && n.revision <= o.revision {
        say!("warning: the new revision is not greater; gateways will refuse it unless forced");
    }
    say_raw!("{}", d.render());
    Ok(())
}

fn generate_cmd(a: GenerateArgs) -> Result<(), CliError> {
    let params = GenerateParams {
        users: a.users,
        groups: a.groups,
        orgs: a.orgs,
        envs: a.envs,
        catalogs: a.catalogs,
        grants: a.grants,
        seed: a.seed,
    };
    let mut dir = generate(params);
    dir.revision = Some(a.revision);
    let bytes = if a.output.extension().is_some_and(|e| e == "snap") {
        let body = source::compile(&dir).map_err(|p| CliError::Directory {
            rendered: format!(
                "generated directory is invalid (a bug): {}",
                source::Problems(p.clone())
            ),
            problems: source::Problems(p),
        })?;
        encode(&body, a.revision, created_at(None)?)?
    } else {
        serde_json::to_vec(&dir).map_err(|e| CliError::Usage(e.to_string()))?
    };
    write_atomic(&a.output, &bytes)?;
    eprintln!(
        "wrote {} ({} bytes): {} users, {} groups, {} catalogs, {} grants",
        a.output.display(),
        bytes.len(),
        dir.users.len(),
        dir.groups.len(),
        dir.catalogs.len(),
        dir.grants.len()
    );
    Ok(())
}

fn decode_file(path: &Path, bytes: &[u8]) -> Result<Snapshot, CliError> {
    decode(bytes).map_err(|source| CliError::Snapshot {
        path: path.to_path_buf(),
        source,
    })
}

pub(super) fn read_bytes(path: &Path) -> Result<Vec<u8>, CliError> {
    fs::read(path).map_err(|source| CliError::Io {
        action: "cannot read",
        path: path.to_path_buf(),
        source,
    })
}

fn read_text(path: &Path) -> Result<String, CliError> {
    let bytes = read_bytes(path)?;
    String::from_utf8(bytes)
        .map_err(|e| CliError::Usage(format!("{}: not UTF-8 text: {e}", path.display())))
}

/// Writes via a temporary file and a rename, so readers (a watching
/// gateway) never see half a snapshot and a failure leaves the old file.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let io = |source| CliError::Io {
        action: "cannot write",
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map_or_else(|| "snapshot".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io)
}
