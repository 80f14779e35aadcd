//! ACL users with a real warden-node process: `user` lines in the config file, an `aclfile`
//! read at startup and by ACL LOAD and written by ACL SAVE, CONFIG REWRITE of `user` lines,
//! and the startup refusals Redis has for bad ACL configuration.

use std::time::Duration;

use integration_tests::{bin_dir, ports, process::Proc, wait};

fn node_bin() -> std::path::PathBuf {
    bin_dir().join("warden-node")
}

/// A connection, logged in as `user` when given.
fn connect(port: u16, user: Option<(&str, &str)>) -> Result<redis::Connection, String> {
    let url = match user {
        Some((name, pass)) => format!("redis://{name}:{pass}@127.0.0.1:{port}/"),
        None => format!("redis://127.0.0.1:{port}/"),
    };
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    client.get_connection_with_timeout(Duration::from_secs(1)).map_err(|e| e.to_string())
}

fn query<T: redis::FromRedisValue>(
    c: &mut redis::Connection,
    args: &[&str],
) -> redis::RedisResult<T> {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(c)
}

fn started(node: &Proc, port: u16) {
    wait::until("warden-node to answer PING", Duration::from_secs(10), || {
        let mut c = connect(port, None)?;
        query::<String>(&mut c, &["PING"]).map_err(|e| format!("{e}\n{}", node.log()))
    });
}

fn refused(args: &[String], expected: &str) {
    let mut node = Proc::start("node", &node_bin(), args);
    let status = node.wait_exit(Duration::from_secs(10)).expect("it was running");
    assert!(!status.success(), "started despite bad ACL configuration:\n{}", node.log());
    assert!(node.log().contains(expected), "expected {expected:?} in:\n{}", node.log());
}

#[test]
fn user_lines_in_the_config_file_define_users_and_config_rewrite_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("node.conf");
    let port = ports::allocate();
    std::fs::write(
        &conf,
        format!(
            "port {port}\nbind 127.0.0.1\nrequirepass ignored\n\
             user default on nopass ~* &* +@all\n\
             user alice on >wonderland ~a:* +@all\n"
        ),
    )
    .unwrap();
    let node = Proc::start("node", &node_bin(), &[conf.display().to_string()]);
    started(&node, port);

    let mut alice = connect(port, Some(("alice", "wonderland"))).expect("alice logs in");
    assert_eq!(query::<String>(&mut alice, &["ACL", "WHOAMI"]).unwrap(), "alice");
    let _: () = query(&mut alice, &["SET", "a:1", "v"]).unwrap();
    let denied = query::<String>(&mut alice, &["GET", "b:1"]).unwrap_err();
    assert_eq!(denied.code(), Some("NOPERM"), "{denied}");
    let list: Vec<String> = query(&mut alice, &["CLIENT", "LIST"])
        .map(|l: String| l.lines().map(str::to_string).collect())
        .unwrap();
    assert!(list.iter().any(|l| l.contains(" user=alice ")), "{list:?}");

    let mut admin = connect(port, None).unwrap();
    let _: () =
        query(&mut admin, &["ACL", "SETUSER", "bob", "on", ">builder", "+get", "~*"]).unwrap();
    let _: () = query(&mut admin, &["CONFIG", "REWRITE"]).unwrap();
    let text = std::fs::read_to_string(&conf).unwrap();
    let users: Vec<&str> = text.lines().filter(|l| l.starts_with("user ")).collect();
    let listed: Vec<String> = query(&mut admin, &["ACL", "LIST"]).unwrap();
    assert_eq!(users, listed, "{text}");
    assert!(listed[0].starts_with("user alice on #"), "{listed:?}");
}

#[test]
fn acl_file_is_loaded_at_startup_saved_and_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let acl = dir.path().join("users.acl");
    std::fs::write(&acl, "user default on nopass ~* &* +@all\n\nuser alice on >pw ~* +@all\n")
        .unwrap();
    let port = ports::allocate();
    let args: Vec<String> = ["--port", &port.to_string(), "--bind", "127.0.0.1", "--aclfile"]
        .iter()
        .map(|s| s.to_string())
        .chain([acl.display().to_string()])
        .collect();
    let node = Proc::start("node", &node_bin(), &args);
    started(&node, port);

    let mut admin = connect(port, None).unwrap();
    let users: Vec<String> = query(&mut admin, &["ACL", "USERS"]).unwrap();
    assert_eq!(users, ["alice", "default"]);
    let file: Vec<String> = query(&mut admin, &["CONFIG", "GET", "aclfile"]).unwrap();
    assert_eq!(file, ["aclfile".to_string(), acl.display().to_string()]);

    // ACL SAVE writes what ACL LIST shows, one line per user.
    let _: () = query(&mut admin, &["ACL", "SETUSER", "bob", "on", ">b", "~b:*", "+get"]).unwrap();
    let _: () = query(&mut admin, &["ACL", "SAVE"]).unwrap();
    let listed: Vec<String> = query(&mut admin, &["ACL", "LIST"]).unwrap();
    let saved = std::fs::read_to_string(&acl).unwrap();
    assert_eq!(saved, listed.iter().map(|l| format!("{l}\n")).collect::<String>());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // ACL LOAD replaces the users; clients of users that were reloaded are disconnected.
    let mut alice = connect(port, Some(("alice", "pw"))).expect("alice logs in");
    std::fs::write(&acl, "user carol on >c ~* +@all\n").unwrap();
    let _: () = query(&mut admin, &["ACL", "LOAD"]).unwrap();
    let users: Vec<String> = query(&mut admin, &["ACL", "USERS"]).unwrap();
    assert_eq!(users, ["carol", "default"]);
    wait::until("alice's connection to be closed", Duration::from_secs(10), || {
        match query::<String>(&mut alice, &["PING"]) {
            Ok(pong) => Err(format!("still answering: {pong}")),
            Err(_) => Ok(()),
        }
    });
    assert_eq!(query::<String>(&mut admin, &["PING"]).unwrap(), "PONG");

    // A bad file changes nothing, and says what is wrong where.
    std::fs::write(&acl, "user dan on +nosuch\n# a comment\n").unwrap();
    let e = query::<()>(&mut admin, &["ACL", "LOAD"]).unwrap_err();
    let text = e.to_string();
    assert!(text.contains(":1: Error in applying operation '+nosuch'"), "{text}");
    assert!(text.contains(":2 should start with user keyword"), "{text}");
    let users: Vec<String> = query(&mut admin, &["ACL", "USERS"]).unwrap();
    assert_eq!(users, ["carol", "default"]);
}

#[test]
fn bad_acl_configuration_stops_startup() {
    let dir = tempfile::tempdir().unwrap();
    let port = ports::allocate().to_string();
    let conf = dir.path().join("bad-user.conf");
    std::fs::write(&conf, format!("port {port}\nuser alice on %X~k\n")).unwrap();
    refused(&[conf.display().to_string()], "Error in user declaration");

    let acl = dir.path().join("users.acl");
    std::fs::write(&acl, "user alice on >pw +nosuch\n").unwrap();
    let args: Vec<String> =
        vec!["--port".into(), port.clone(), "--aclfile".into(), acl.display().to_string()];
    refused(&args, "Aborting Redis startup because of ACL errors");

    let both = dir.path().join("both.conf");
    std::fs::write(&both, format!("port {port}\naclfile {}\nuser alice on >pw\n", acl.display()))
        .unwrap();
    refused(&[both.display().to_string()], "please define either an ACL file or declare users");
}
