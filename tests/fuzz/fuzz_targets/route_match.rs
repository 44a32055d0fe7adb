//! Path normalization and the route table (the demo's routes): method,
//! host and raw path from the input, one per line. Whatever matches must
//! be a normalized path that normalizes to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_gateway::stage::route_table::{RouteTable, normalize_path};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\n');
    let (method, host, path) = match (parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(h), Some(p)) => (m, Some(h).filter(|h| !h.is_empty()), p),
        _ => ("GET", None, text.as_ref()),
    };
    if let Ok(normal) = normalize_path(path) {
        assert_eq!(normalize_path(&normal).as_deref(), Ok(normal.as_str()));
    }
    let table = portcullis_fuzz::routes();
    if let Ok(r) = table.resolve(method, host, path) {
        assert!(r.path.starts_with('/'));
        assert!(!r.path.contains("/../") && !r.path.contains("//"));
        assert_eq!(normalize_path(&r.path).as_deref(), Ok(r.path.as_str()));
    }
    let _ = RouteTable::new(Vec::new());
});
