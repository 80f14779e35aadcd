//! Fixtures the crate's unit tests share: node addresses, a connected node's view, a
//! monitored master's spec, and the runner for golden scripts.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::info::NodeInfo;
use crate::machine::{Addr, MasterSpec};
use crate::monitor::NodeView;

/// A node on 10.0.0.1 (never dialled: unit tests only compare addresses).
pub fn addr(port: u16) -> Addr {
    Addr::new("10.0.0.1".into(), port)
}

/// Master `m` at `addr` with `quorum`, 1 s down-after, 10 s failover timeout, one parallel sync.
pub fn spec(addr: Addr, quorum: u32) -> MasterSpec {
    MasterSpec {
        name: "m".into(),
        addr,
        quorum,
        down_after_ms: 1000,
        failover_timeout_ms: 10000,
        parallel_syncs: 1,
        ..Default::default()
    }
}

/// A node that answered just now with `info` (INFO text), watched for 30 s.
pub fn connected_view(now: Instant, info: &str) -> NodeView {
    let mut v = NodeView {
        last_ok: Some(now),
        last_reply: Some(now),
        connected: true,
        ..NodeView::new(now - Duration::from_secs(30))
    };
    v.observe(NodeInfo::parse(info), now);
    v
}

/// Runs every script in `dir` (under the crate) through `run`, which must give the script
/// back unchanged; `UPDATE_GOLDEN=1` rewrites the files with what `run` produced.
pub fn check_golden_dir(dir: &str, run: impl Fn(&str) -> String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(!files.is_empty(), "no scripts in {}", dir.display());
    let mut failed = Vec::new();
    for file in files {
        let script = std::fs::read_to_string(&file).unwrap();
        let got = run(&script);
        if got != script {
            if std::env::var_os("UPDATE_GOLDEN").is_some() {
                std::fs::write(&file, &got).unwrap();
            } else {
                failed.push(format!("{}:\n--- expected\n{script}\n--- got\n{got}", file.display()));
            }
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
