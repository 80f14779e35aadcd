//! `wardenctl members [add <id> <raft-ip:port> | remove <id>]`: the supervisor group through
//! `SENTINEL MEMBERS`. `add` waits until the new supervisor has caught up and been promoted
//! from learner to voter (the leader does that by itself), so the command returns when the
//! group really has one more voter.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{connect, list};

/// How long `members add` waits for the learner to become a voter.
const PROMOTION_TIMEOUT: Duration = Duration::from_secs(60);

/// `SENTINEL MEMBERS` as JSON objects. Only the leader knows match indexes, so a follower's
/// answer is completed by asking the leader at the client address it announced (falling back
/// to the follower's view if the leader cannot be reached from here).
pub fn members(host: &str, port: u16) -> Result<Value, String> {
    let mut c = connect(host, port)?;
    let here = list(&c.call(&["SENTINEL", "MEMBERS"])?);
    let leader_addr = here
        .iter()
        .find(|m| m["leader"].as_str() == Some("1") && m["match-index"].as_str() == Some(""))
        .and_then(|m| m["client-addr"].as_str())
        .and_then(|a| a.rsplit_once(':'))
        .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)));
    if let Some((h, p)) = leader_addr {
        let from_leader = connect(&h, p).and_then(|mut l| l.call(&["SENTINEL", "MEMBERS"]));
        if let Ok(frame) = from_leader {
            return Ok(Value::Array(list(&frame)));
        }
    }
    Ok(Value::Array(here))
}

/// One line per supervisor.
pub fn render(v: &Value) -> String {
    let s = |m: &Value, k: &str| m[k].as_str().unwrap_or("").to_string();
    let mut out = format!(
        "{:<6} {:<8} {:<7} {:<22} {:<22} {:>6} {:>5}\n",
        "id", "role", "leader", "raft", "client", "match", "lag"
    );
    for m in v.as_array().into_iter().flatten() {
        let or_dash = |t: String| if t.is_empty() { "-".to_string() } else { t };
        out.push_str(&format!(
            "{:<6} {:<8} {:<7} {:<22} {:<22} {:>6} {:>5}\n",
            s(m, "id"),
            s(m, "role"),
            if s(m, "leader") == "1" { "yes" } else { "" },
            or_dash(s(m, "raft-addr")),
            or_dash(s(m, "client-addr")),
            or_dash(s(m, "match-index")),
            or_dash(s(m, "lag")),
        ));
    }
    out
}

/// Adds a supervisor and follows it until it is a voter. Returns the report.
pub fn add(host: &str, port: u16, id: &str, raft_addr: &str, quiet: bool) -> Value {
    let say = |line: String| {
        if !quiet {
            println!("{line}");
        }
    };
    let fail = |e: String| json!({ "ok": false, "id": id, "error": e });
    let mut c = match connect(host, port) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    if let Err(e) = c.call(&["SENTINEL", "MEMBERS", "ADD", id, raft_addr]) {
        return fail(e);
    }
    say(format!("supervisor {id} added as a learner at {raft_addr}; waiting for it to catch up"));
    let started = Instant::now();
    loop {
        let members = match c.call(&["SENTINEL", "MEMBERS"]) {
            Ok(f) => list(&f),
            Err(e) => return fail(e),
        };
        let role = members
            .iter()
            .find(|m| m["id"].as_str() == Some(id))
            .and_then(|m| m["role"].as_str().map(str::to_string));
        if role.as_deref() == Some("voter") {
            say(format!("supervisor {id} is a voter ({} ms)", started.elapsed().as_millis()));
            return json!({ "ok": true, "id": id, "raft_addr": raft_addr, "role": "voter",
                           "after_ms": started.elapsed().as_millis() as u64 });
        }
        if started.elapsed() > PROMOTION_TIMEOUT {
            return fail(format!(
                "still {} after {PROMOTION_TIMEOUT:?}: is it running with 'sentinel join yes' and reachable at {raft_addr}?",
                role.unwrap_or_else(|| "not a member".into())
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Removes a supervisor (the supervisor hands leadership over first if it leads).
pub fn remove(host: &str, port: u16, id: &str) -> Value {
    let result =
        connect(host, port).and_then(|mut c| c.call(&["SENTINEL", "MEMBERS", "REMOVE", id]));
    match result {
        Ok(_) => json!({ "ok": true, "id": id, "removed": true }),
        Err(e) => json!({ "ok": false, "id": id, "error": e }),
    }
}
