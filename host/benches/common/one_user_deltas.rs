//! A stream of one-user changes as deltas, shared by the host's
//! benchmarks (included with `#[path]`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

use portcullis_snapshots::encode;
use portcullis_snapshots::source::compile;

/// `n` deltas, each from the revision before: user 42 + k loses its
/// grants and gets three new ones, leaves two groups and joins two.
pub fn one_user_deltas(dir: &portcullis_snapshots::source::Directory, n: usize) -> Vec<Vec<u8>> {
    let mut before = encode(&compile(dir).expect("valid"), 1, 0).expect("encode");
    let mut d = dir.clone();
    let mut out = Vec::new();
    for k in 0..n {
        let user = format!("user/user{}", 42 + k);
        d.grants.retain(|g| g.principal != user);
        for (i, at) in [1_000usize, 200_000, 400_000].into_iter().enumerate() {
            d.grants.insert(
                at + k,
                portcullis_snapshots::source::Grant {
                    principal: user.clone(),
                    role: "reader".into(),
                    on: format!("catalog/{}", d.catalogs[i * 7 + k].id),
                },
            );
        }
        let mut left = 0;
        for g in d.groups.iter_mut() {
            if left < 2 && g.members.contains(&user) {
                g.members.retain(|m| *m != user);
                left += 1;
            }
        }
        for g in [11usize + k, 1_500 + k] {
            if !d.groups[g].members.contains(&user) {
                d.groups[g].members.push(user.clone());
            }
        }
        let after = encode(&compile(&d).expect("valid"), k as u64 + 2, 0).expect("encode");
        let (sa, sb) = (
            portcullis_snapshots::decode(&before).expect("decode"),
            portcullis_snapshots::decode(&after).expect("decode"),
        );
        let body = portcullis_snapshots::delta::compute(&sa.body, &sb.body).expect("delta");
        out.push(
            portcullis_snapshots::delta::encode_delta(&sa.header, &sb.header, &body)
                .expect("encode"),
        );
        before = after;
    }
    out
}
