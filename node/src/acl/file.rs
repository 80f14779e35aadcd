//! The ACL file (`aclfile`): one `user <name> <rules…>` line per user, as ACL SAVE writes it
//! and ACL LOAD and startup read it. Loading is all or nothing: every line is checked, and
//! any error leaves the users as they were, with every problem reported in one message
//! (Redis's `ACLLoadFromFile`). Comments are errors, since ACL SAVE would lose them.

use std::io::Write;
use std::path::Path;

use bytes::Bytes;

use super::selector::has_spaces;
use super::user::merge_selectors;
use super::{Acl, RuleError, User};

/// Parses an ACL file's text. `Err` is the one-line description Redis gives, ending with the
/// note that nothing changed.
pub fn parse(text: &[u8], filename: &str, allchannels: bool) -> Result<Vec<User>, String> {
    let mut errors = String::new();
    let mut users: Vec<User> = Vec::new();
    for (i, line) in text.split(|&c| c == b'\n').enumerate() {
        let linenum = i + 1;
        let line = trim(line);
        if line.is_empty() {
            continue;
        }
        let words: Vec<&[u8]> = line.split(|&c| c == b' ').collect();
        if words[0] != b"user" || words.len() < 2 {
            errors.push_str(&format!(
                "{filename}:{linenum} should start with user keyword followed by the username. "
            ));
            continue;
        }
        let name = words[1];
        if has_spaces(name) {
            errors.push_str(&format!(
                "'{filename}:{linenum}: username '{}' contains invalid characters. ",
                String::from_utf8_lossy(name)
            ));
            continue;
        }
        if users.iter().any(|u| u.name.as_ref() == name) {
            errors.push_str(&format!(
                "WARNING: Duplicate user '{}' found on line {linenum}. ",
                String::from_utf8_lossy(name)
            ));
            continue;
        }
        let mut user = User::new(Bytes::copy_from_slice(name), allchannels);
        let rules: Vec<Bytes> = words[2..].iter().map(|w| Bytes::copy_from_slice(w)).collect();
        let Ok(rules) = merge_selectors(&rules) else {
            errors.push_str(&format!(
                "{filename}:{linenum}: Unmatched parenthesis in selector definition."
            ));
            continue;
        };
        let mut syntax_error = false;
        for rule in rules {
            let rule = trim_tabs(&rule);
            if let Err(e) = user.apply(rule, allchannels) {
                if e == RuleError::UnknownCommand {
                    errors.push_str(&format!(
                        "{filename}:{linenum}: Error in applying operation '{}': {}. ",
                        String::from_utf8_lossy(rule),
                        e.message()
                    ));
                } else if !syntax_error {
                    errors.push_str(&format!("{filename}:{linenum}: {}. ", e.message()));
                    syntax_error = true;
                }
            }
        }
        users.push(user);
    }
    if errors.is_empty() {
        Ok(users)
    } else {
        errors.push_str(
            "WARNING: ACL errors detected, no change to the previously active ACL rules was performed",
        );
        Err(errors)
    }
}

fn trim(line: &[u8]) -> &[u8] {
    let is_trim = |c: &u8| matches!(c, b' ' | b'\t' | b'\r' | b'\n');
    let start = line.iter().position(|c| !is_trim(c)).unwrap_or(line.len());
    let end = line.iter().rposition(|c| !is_trim(c)).map_or(start, |e| e + 1);
    &line[start..end.max(start)]
}

fn trim_tabs(rule: &[u8]) -> &[u8] {
    let is_trim = |c: &u8| matches!(c, b'\t' | b'\r' | b'\n');
    let start = rule.iter().position(|c| !is_trim(c)).unwrap_or(rule.len());
    let end = rule.iter().rposition(|c| !is_trim(c)).map_or(start, |e| e + 1);
    &rule[start..end.max(start)]
}

/// Reads and parses the ACL file.
pub fn load(filename: &str, allchannels: bool) -> Result<Vec<User>, String> {
    let text = std::fs::read(filename)
        .map_err(|e| format!("Error loading ACLs, opening file '{filename}': {}", strerror(&e)))?;
    parse(&text, filename, allchannels)
}

/// An I/O error as C's `strerror` words it (without Rust's "(os error N)").
pub fn strerror(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// The file's text for the current users, sorted by name.
pub fn render(acl: &Acl) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in acl.iter() {
        out.extend_from_slice(&entry.user.line());
        out.push(b'\n');
    }
    out
}

/// Writes the file as ACL SAVE does: to a temporary file next to it, then renamed over it.
/// Unlike Redis 7.0 the temporary file is also fsynced before the rename, so a crash never
/// leaves an empty ACL file behind.
pub fn save(filename: &str, text: &[u8]) -> std::io::Result<()> {
    let tmp = format!("{filename}.tmp-{}-{}", std::process::id(), crate::server::unix_ms());
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text)?;
        f.sync_all()?;
        std::fs::rename(&tmp, filename)?;
        if let Some(dir) = Path::new(filename).parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_file_loads_back_to_the_same_users() {
        let mut acl = Acl::default();
        let rules: Vec<Bytes> = ["on", ">pw", "~k*", "&c*", "+@read", "-get", "(+set ~s*)"]
            .iter()
            .map(|r| Bytes::copy_from_slice(r.as_bytes()))
            .collect();
        acl.set_user(b"alice", &rules).unwrap();
        let text = render(&acl);
        let users = parse(&text, "users.acl", false).unwrap();
        let alice = users.iter().find(|u| u.name.as_ref() == b"alice").unwrap();
        assert_eq!(alice, acl.get(b"alice").unwrap().user.as_ref());
    }

    /// What the `acl_file` fuzz target checks, on stable Rust: accepted text describes itself
    /// as rules that parse back to the same users.
    #[test]
    fn accepted_files_round_trip_through_their_description() {
        let inputs: [&[u8]; 5] = [
            b"user a on nopass %RW~x %R~y %W~z &c* +@all -@dangerous +client|id\n",
            b"  user b off #5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8\t\r\n",
            b"user c -@all +select|0 +SELECT|0 +debug|object (~k* +get) (+set %W~w*)\n\n",
            b"user d reset skip-sanitize-payload allkeys allchannels nocommands +@read -get\n",
            b"user e  on  >p  ~a ~a &x &x clearselectors (&y)\n",
        ];
        for input in inputs {
            let users = parse(input, "f.acl", false).expect("a valid file");
            let mut text = Vec::new();
            for u in &users {
                text.extend_from_slice(&u.line());
                text.push(b'\n');
            }
            let again = parse(&text, "f.acl", false).expect("a described user parses back");
            assert_eq!(users, again, "{}", String::from_utf8_lossy(&text));
        }
    }

    #[test]
    fn errors_name_the_file_and_line_and_change_nothing() {
        let text = b"user a on +get\n# comment\nuser b on +nosuchcommand\nuser c on %X~k\n";
        let e = parse(text, "f.acl", false).unwrap_err();
        assert_eq!(
            e,
            "f.acl:2 should start with user keyword followed by the username. f.acl:3: Error in applying operation '+nosuchcommand': Unknown command or category name in ACL. f.acl:4: Syntax error. WARNING: ACL errors detected, no change to the previously active ACL rules was performed"
        );
    }
}
