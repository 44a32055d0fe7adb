//! The store's manifest, `latest.json`: the revision to serve, its
//! snapshot, and the deltas from recent revisions to it. `portcullis
//! snapshot publish` writes it (last, after the files it names); a polling
//! gateway reads it and fetches the chain of deltas from the revision it
//! serves when the manifest lists one, the full snapshot otherwise.
//!
//! Files are named relative to the manifest and must stay beside it: a
//! manifest cannot send the gateway to another host, or up the store's
//! tree (`..`), whoever wrote it.

use serde::{Deserialize, Serialize};

/// The manifest format whose snapshot is the revision to serve. This
/// build reads it and [`MANIFEST_FORMAT_CHAINED`], and writes it whenever
/// the snapshot is the revision's (so a gateway of an earlier build reads
/// it too).
pub const MANIFEST_FORMAT: u32 = 1;

/// The manifest format whose snapshot is an earlier revision
/// ([`Manifest::snapshot_of`]), the deltas leading from it to the revision
/// to serve: a store writes a full snapshot only every few revisions.
pub const MANIFEST_FORMAT_CHAINED: u32 = 2;

/// `latest.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: u32,
    /// The revision to serve.
    pub revision: u64,
    /// Its body SHA-256 (hex).
    pub sha256: String,
    /// Its snapshot file, relative to the manifest.
    pub snapshot: String,
    /// The snapshot's size in bytes.
    pub bytes: u64,
    /// Deltas between recent revisions, newest first.
    #[serde(default)]
    pub deltas: Vec<DeltaEntry>,
    /// The revision the snapshot file holds, when it is an earlier one
    /// than `revision` (format [`MANIFEST_FORMAT_CHAINED`]): `deltas` then
    /// lead from it to `revision` (`sha256` stays the body hash of the
    /// revision to serve; `bytes` is the file's size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_of: Option<SnapshotOf>,
}

/// The revision an earlier snapshot holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotOf {
    /// Its revision.
    pub revision: u64,
    /// Its body SHA-256 (hex).
    pub sha256: String,
}

impl Manifest {
    /// The revision and body SHA-256 of the snapshot file.
    pub fn snapshot_holds(&self) -> (u64, &str) {
        match &self.snapshot_of {
            Some(of) => (of.revision, of.sha256.as_str()),
            None => (self.revision, self.sha256.as_str()),
        }
    }
}

/// One delta the store holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaEntry {
    /// The revision it applies to.
    pub from: u64,
    /// That revision's body SHA-256 (hex).
    pub from_sha256: String,
    /// The revision it makes.
    pub to: u64,
    /// That revision's body SHA-256 (hex).
    pub to_sha256: String,
    /// The delta file, relative to the manifest.
    pub path: String,
    /// Its size in bytes.
    pub bytes: u64,
}

impl Manifest {
    /// Reads a manifest; refused when it is not one this build reads or
    /// names a file outside its directory.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, String> {
        let m: Manifest =
            serde_json::from_slice(bytes).map_err(|e| format!("not a manifest: {e}"))?;
        match (m.format, &m.snapshot_of) {
            (MANIFEST_FORMAT, None) => {}
            (MANIFEST_FORMAT_CHAINED, Some(of)) if of.revision < m.revision => {
                if m.chain(of.revision, &of.sha256).is_none() {
                    return Err(format!(
                        "the manifest's snapshot is revision {} but its deltas do not lead from it to revision {}",
                        of.revision, m.revision
                    ));
                }
            }
            (MANIFEST_FORMAT | MANIFEST_FORMAT_CHAINED, _) => {
                return Err(format!(
                    "a manifest of format {} {} name the revision its snapshot holds",
                    m.format,
                    if m.format == MANIFEST_FORMAT {
                        "does not"
                    } else {
                        "must (an earlier one)"
                    }
                ));
            }
            _ => {
                return Err(format!(
                    "manifest format {} is not supported (this build reads {MANIFEST_FORMAT} and {MANIFEST_FORMAT_CHAINED})",
                    m.format
                ));
            }
        }
        for path in std::iter::once(&m.snapshot).chain(m.deltas.iter().map(|d| &d.path)) {
            check_name(path)?;
        }
        Ok(m)
    }

    /// Whether `revision` with body `sha256` is the manifest's.
    pub fn is_serving(&self, revision: u64, sha256: &str) -> bool {
        self.revision == revision && self.sha256.eq_ignore_ascii_case(sha256)
    }

    /// The deltas that lead from `revision` (body `sha256`) to the
    /// manifest's revision, in the order to apply them; `None` when the
    /// manifest has no such chain (a gap: fetch the snapshot).
    pub fn chain(&self, revision: u64, sha256: &str) -> Option<Vec<&DeltaEntry>> {
        let mut at = (revision, sha256.to_ascii_lowercase());
        let mut chain = Vec::new();
        while !self.is_serving(at.0, &at.1) {
            if chain.len() >= self.deltas.len() {
                return None;
            }
            let next = self
                .deltas
                .iter()
                .find(|d| d.from == at.0 && d.from_sha256.eq_ignore_ascii_case(&at.1))?;
            chain.push(next);
            at = (next.to, next.to_sha256.to_ascii_lowercase());
        }
        Some(chain)
    }
}

/// A file name a manifest may use: one or more path segments of letters,
/// digits, `.`, `_` and `-`, none of them `.` or `..`.
fn check_name(path: &str) -> Result<(), String> {
    let ok = !path.is_empty()
        && path.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "the manifest names {path:?}: files must be beside the manifest (letters, digits, '.', '_', '-', subdirectories without '..')"
        ))
    }
}

/// The URL of `name` (checked by [`Manifest::parse`]) beside the manifest
/// at `manifest`: its last path segment replaced, its query kept off.
pub fn beside(manifest: &http::Uri, name: &str) -> Result<http::Uri, String> {
    let path = manifest.path();
    let dir = path.rfind('/').and_then(|i| path.get(..=i)).unwrap_or("/");
    let mut parts = manifest.clone().into_parts();
    parts.path_and_query = Some(
        format!("{dir}{name}")
            .parse()
            .map_err(|e| format!("{name:?}: {e}"))?,
    );
    http::Uri::from_parts(parts).map_err(|e| format!("{name:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(from: u64, to: u64) -> DeltaEntry {
        DeltaEntry {
            from,
            from_sha256: format!("{from:064x}"),
            to,
            to_sha256: format!("{to:064x}"),
            path: format!("delta-{from}-{to}.delta"),
            bytes: 100,
        }
    }

    fn manifest(deltas: Vec<DeltaEntry>) -> Manifest {
        Manifest {
            format: 1,
            revision: 7,
            sha256: format!("{:064x}", 7),
            snapshot: "snapshot-7.snap".into(),
            bytes: 1000,
            deltas,
            snapshot_of: None,
        }
    }

    #[test]
    fn a_chain_leads_from_the_revision_serving_to_the_manifests() {
        let m = manifest(vec![entry(6, 7), entry(5, 6), entry(4, 5)]);
        let chain = m.chain(4, &format!("{:064x}", 4)).unwrap_or_default();
        assert_eq!(
            chain.iter().map(|d| (d.from, d.to)).collect::<Vec<_>>(),
            vec![(4, 5), (5, 6), (6, 7)]
        );
        assert_eq!(m.chain(7, &format!("{:064x}", 7)).map(|c| c.len()), Some(0));
        // A gap, or the right revision with other contents: no chain.
        let gap = manifest(vec![entry(6, 7), entry(4, 5)]);
        assert!(gap.chain(4, &format!("{:064x}", 4)).is_none());
        assert!(m.chain(6, &format!("{:064x}", 99)).is_none());
        // A cycle ends.
        let cycle = manifest(vec![entry(5, 6), entry(6, 5)]);
        assert!(cycle.chain(5, &format!("{:064x}", 5)).is_none());
    }

    #[test]
    fn an_earlier_snapshot_needs_the_chain_from_it() {
        let parse = |m: &Manifest| Manifest::parse(&serde_json::to_vec(m).unwrap_or_default());
        let mut m = manifest(vec![entry(6, 7), entry(5, 6)]);
        m.format = MANIFEST_FORMAT_CHAINED;
        m.snapshot = "snapshot-5.snap".into();
        m.snapshot_of = Some(SnapshotOf {
            revision: 5,
            sha256: format!("{:064x}", 5),
        });
        assert_eq!(parse(&m).ok(), Some(m.clone()));
        assert_eq!(m.snapshot_holds(), (5, format!("{:064x}", 5).as_str()));
        // A gap between the snapshot and the revision: refused.
        let mut gap = m.clone();
        gap.deltas = vec![entry(6, 7)];
        assert!(parse(&gap).is_err());
        // Each format says, or does not say, what the snapshot holds.
        let mut unsaid = m.clone();
        unsaid.snapshot_of = None;
        assert!(parse(&unsaid).is_err());
        let mut said = m.clone();
        said.format = MANIFEST_FORMAT;
        assert!(parse(&said).is_err());
        let mut later = m;
        later.snapshot_of = Some(SnapshotOf {
            revision: 7,
            sha256: format!("{:064x}", 7),
        });
        assert!(parse(&later).is_err());
    }

    #[test]
    fn names_outside_the_manifests_directory_are_refused() {
        for bad in [
            "../secret.snap",
            "/etc/passwd",
            "http://elsewhere/x.snap",
            "a/../b",
            "x?y",
            "",
            "a//b",
        ] {
            let mut m = manifest(vec![]);
            m.snapshot = bad.into();
            let text = serde_json::to_vec(&m).unwrap_or_default();
            assert!(Manifest::parse(&text).is_err(), "{bad:?}");
        }
        let m = manifest(vec![entry(6, 7)]);
        let text = serde_json::to_vec(&m).unwrap_or_default();
        assert_eq!(Manifest::parse(&text).ok(), Some(m));
    }

    #[test]
    fn files_are_fetched_beside_the_manifest() {
        let base: http::Uri = "http://store:8080/snaps/prod/latest.json?x=1"
            .parse()
            .unwrap_or_default();
        assert_eq!(
            beside(&base, "delta-6-7.delta").map(|u| u.to_string()),
            Ok("http://store:8080/snaps/prod/delta-6-7.delta".to_string())
        );
    }
}
