//! `[log]`.

use serde::Deserialize;

/// `[log]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Where the decision log goes: `stdout`, `stderr`, `off`, or a file path
    /// (appended). One JSON object per line.
    pub decisions: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            decisions: "stdout".into(),
        }
    }
}
