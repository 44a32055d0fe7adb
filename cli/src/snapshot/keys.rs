//! `snapshot keygen` and `snapshot sign`: an Ed25519 key pair for
//! signing snapshots, and a snapshot signed with it.

use std::path::{Path, PathBuf};

use clap::Args;
use portcullis_snapshots::signature;

use crate::error::CliError;
use crate::files::{read_bytes, write_atomic, write_private};
use crate::output::say;
use crate::signing::sign_with;

/// The arguments of `snapshot keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the private key.
    #[arg(short, long)]
    output: PathBuf,
    /// Where to write the public key (default: OUTPUT with `.pub`).
    #[arg(long)]
    public: Option<PathBuf>,
}

/// The arguments of `snapshot sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// The snapshot file.
    snapshot: PathBuf,
    /// The private key (PKCS#8 PEM).
    #[arg(long)]
    key: PathBuf,
    /// Where to write the signed snapshot (default: in place).
    #[arg(short, long)]
    output: Option<PathBuf>,
}

/// `snapshot keygen`.
pub(super) fn keygen_cmd(a: KeygenArgs) -> Result<(), CliError> {
    keygen(&a.output, a.public)
}

/// `snapshot sign`.
pub(super) fn sign(a: SignArgs) -> Result<(), CliError> {
    let bytes = read_bytes(&a.snapshot)?;
    let signed = sign_with(&a.key, &a.snapshot, &bytes)?;
    let output = a.output.unwrap_or(a.snapshot);
    write_atomic(&output, &signed)?;
    say!("signed {}", output.display());
    Ok(())
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
