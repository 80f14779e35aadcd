//! warden-sentinel as a process: configuration errors, signals, peer authentication.

use std::time::Duration;

use integration_tests::{bin_dir, ha, ports, process::Proc, wait};

fn sentinel_bin() -> std::path::PathBuf {
    bin_dir().join("warden-sentinel")
}

fn write_conf(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_bad_config_stops_startup_naming_file_line_and_directive() {
    let dir = tempfile::tempdir().unwrap();
    let conf = write_conf(
        dir.path(),
        "bad.conf",
        "raft-id 1\nraft-peer 1 127.0.0.1 26479\nsupervisor-auth s\nsentinel monitor mymaster 127.0.0.1 6379 1\nsentinel down-after-milliseconds mymaster soon\n",
    );
    let mut p = Proc::start("sentinel-bad", &sentinel_bin(), &[conf.display().to_string()]);
    let status = p.wait_exit(Duration::from_secs(10)).expect("it was running");
    assert!(!status.success());
    let log = p.log();
    assert!(
        log.contains(&format!(
            "{}:5: directive 'sentinel': invalid duration 'soon'",
            conf.display()
        )),
        "{log}"
    );
    assert!(!log.contains("panicked"), "{log}");

    let mut p = Proc::start("sentinel-flag", &sentinel_bin(), &["--raft-id".into(), "zero".into()]);
    assert!(!p.wait_exit(Duration::from_secs(10)).unwrap().success());
    assert!(p.log().contains("command line: directive 'raft-id'"), "{}", p.log());
}

#[test]
fn the_shipped_example_starts_and_sigterm_stops_it_cleanly() {
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/configs/sentinel.conf");
    let (port, raft) = (ports::allocate(), ports::allocate());
    let args: Vec<String> = [
        example.display().to_string(),
        "--port".into(),
        port.to_string(),
        "--dir".into(),
        "data".into(),
        "--raft-peer".into(),
        "9".into(),
        "127.0.0.1".into(),
        raft.to_string(),
        "--raft-id".into(),
        "9".into(),
    ]
    .to_vec();
    let mut p = Proc::start("sentinel-example", &sentinel_bin(), &args);
    wait::until("the supervisor to answer PING", Duration::from_secs(10), || {
        let mut c = ha::connect(port)?;
        redis::cmd("PING").query::<String>(&mut c).map_err(|e| e.to_string())
    });
    p.signal(libc::SIGTERM);
    let status = p.wait_exit(Duration::from_secs(10)).expect("it was running");
    assert!(status.success(), "{status:?}\n{}", p.log());
    assert!(p.dir().join("data/raft/raft.log").exists());
    assert!(p.dir().join("data/myid").exists());
}

#[test]
fn a_peer_without_the_secret_is_refused_and_the_secret_is_never_logged() {
    let dir = tempfile::tempdir().unwrap();
    let (r1, r2) = (ports::allocate(), ports::allocate());
    let (p1, p2) = (ports::allocate(), ports::allocate());
    let base = format!(
        "bind 127.0.0.1\nraft-peer 1 127.0.0.1 {r1}\nraft-peer 2 127.0.0.1 {r2}\n\
         sentinel monitor mymaster 127.0.0.1 1 1\n"
    );
    let good =
        write_conf(dir.path(), "good.conf", &format!("{base}supervisor-auth right-secret-xyz\n"));
    let bad =
        write_conf(dir.path(), "bad.conf", &format!("{base}supervisor-auth wrong-secret-abc\n"));
    let a = Proc::start(
        "sentinel-good",
        &sentinel_bin(),
        &[
            good.display().to_string(),
            "--raft-id".into(),
            "1".into(),
            "--port".into(),
            p1.to_string(),
            "--dir".into(),
            "d".into(),
        ],
    );
    let b = Proc::start(
        "sentinel-intruder",
        &sentinel_bin(),
        &[
            bad.display().to_string(),
            "--raft-id".into(),
            "2".into(),
            "--port".into(),
            p2.to_string(),
            "--dir".into(),
            "d".into(),
        ],
    );
    // Each side refuses the other: the dialler checks the acceptor's proof first.
    wait::until("the good supervisor to refuse the intruder", Duration::from_secs(10), || {
        if a.log().contains("peer 2 failed authentication") {
            Ok(())
        } else {
            Err(a.log().lines().last().unwrap_or_default().to_string())
        }
    });
    wait::until("the intruder to fail the acceptor's proof", Duration::from_secs(10), || {
        if b.log().contains("peer 1 failed authentication") {
            Ok(())
        } else {
            Err("not yet")
        }
    });
    // Without a second voter nothing is ever committed: the master stays unknown to clients.
    let addr = ha::master_addr(p1);
    assert!(addr.is_err(), "{addr:?}");
    for p in [&a, &b] {
        let log = p.log();
        assert!(
            !log.contains("right-secret-xyz") && !log.contains("wrong-secret-abc"),
            "secret in log:\n{log}"
        );
    }
}
