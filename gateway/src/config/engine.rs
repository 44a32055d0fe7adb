//! `[engine]`: the limits of each WebAssembly instance.

use serde::Deserialize;

/// `[engine]`: limits of each WebAssembly instance.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Largest linear memory of one instance, in MiB.
    pub max_memory_mb: usize,
    /// The module's own work a decision may take before it is interrupted
    /// (→ 503): looked at after this much wall time, then counted on the
    /// worker thread's CPU clock, so a worker the machine descheduled is
    /// not cut for waiting.
    pub decision_timeout_ms: u64,
    /// Wall time after which a decision is cut whatever its CPU (a
    /// backstop; at least `decision_timeout_ms`).
    pub decision_wall_limit_ms: u64,
    /// The module's own work loading a snapshot or applying a delta may
    /// take (as for decisions: CPU time once this much wall time passed).
    pub load_timeout_ms: u64,
    /// Wall time after which a load is cut whatever its CPU.
    pub load_wall_limit_ms: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_memory_mb: 1024,
            decision_timeout_ms: 50,
            decision_wall_limit_ms: 2_000,
            load_timeout_ms: 30_000,
            load_wall_limit_ms: 300_000,
        }
    }
}

impl EngineConfig {
    /// Its own problems.
    pub(super) fn problems(&self, out: &mut Vec<String>) {
        let e = self;
        if e.max_memory_mb < 16 {
            out.push("engine.max_memory_mb: must be at least 16".into());
        }
        for (name, v) in [
            ("engine.decision_timeout_ms", e.decision_timeout_ms),
            ("engine.load_timeout_ms", e.load_timeout_ms),
        ] {
            if v == 0 {
                out.push(format!("{name}: must be greater than 0"));
            }
        }
        for (wall, cpu, limit) in [
            (
                "engine.decision_wall_limit_ms",
                "decision_timeout_ms",
                (e.decision_wall_limit_ms, e.decision_timeout_ms),
            ),
            (
                "engine.load_wall_limit_ms",
                "load_timeout_ms",
                (e.load_wall_limit_ms, e.load_timeout_ms),
            ),
        ] {
            if limit.0 < limit.1 {
                out.push(format!(
                    "{wall}: must be at least engine.{cpu} ({} ms): it bounds the wall time of a call that has not used its CPU budget",
                    limit.1
                ));
            }
        }
    }
}
