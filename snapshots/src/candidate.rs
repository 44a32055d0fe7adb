//! What a gateway is handed to serve next: a whole snapshot, or a delta to
//! the one it serves — told apart once, by the first bytes, where the
//! bytes enter (a push, the watched file, the polled store), and carried
//! typed from there.

use crate::delta::is_delta;

/// A candidate for the serving snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Candidate {
    /// A whole snapshot (or bytes that are neither: refused as a bad
    /// snapshot header, with a message that says what was expected).
    Snapshot(Vec<u8>),
    /// A delta to the snapshot serving.
    Delta(Vec<u8>),
}

impl Candidate {
    /// The candidate `bytes` are, by their magic.
    pub fn of(bytes: Vec<u8>) -> Candidate {
        if is_delta(&bytes) {
            Candidate::Delta(bytes)
        } else {
            Candidate::Snapshot(bytes)
        }
    }

    /// Whether it is a delta.
    pub fn is_delta(&self) -> bool {
        matches!(self, Candidate::Delta(_))
    }

    /// Its bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Candidate::Snapshot(b) | Candidate::Delta(b) => b,
        }
    }

    /// Its bytes, given up.
    pub fn into_bytes(self) -> Vec<u8> {
        match self {
            Candidate::Snapshot(b) | Candidate::Delta(b) => b,
        }
    }

    /// What it is, for messages: `a snapshot` or `a delta`.
    pub fn noun(&self) -> &'static str {
        if self.is_delta() {
            "a delta"
        } else {
            "a snapshot"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::DELTA_MAGIC;

    #[test]
    fn told_apart_by_the_magic() {
        let mut delta = DELTA_MAGIC.to_vec();
        delta.extend_from_slice(b"rest");
        assert!(Candidate::of(delta).is_delta());
        assert!(!Candidate::of(crate::header::MAGIC.to_vec()).is_delta());
        assert!(!Candidate::of(Vec::new()).is_delta());
        assert_eq!(Candidate::of(b"x".to_vec()).noun(), "a snapshot");
    }
}
