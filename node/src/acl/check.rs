//! The permission check every command goes through (Redis's `ACLCheckAllUserCommandPerm`):
//! a command runs if one of the user's selectors allows the command itself, every key it
//! names (for the access its key spec says: read, write or both) and every channel it
//! publishes or subscribes to.

use bytes::Bytes;

use super::commands::{commands, Entry};
use super::selector::{Selector, READ, WRITE};
use super::User;
use crate::dispatch::Resolved;

/// Why a command was denied. The order is Redis's: when no selector allows a command, the
/// "largest" reason is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Denied {
    /// The command (or subcommand) itself.
    Command,
    /// A key, at this argument position.
    Key(usize),
    /// A channel, at this argument position.
    Channel(usize),
}

impl Denied {
    fn rank(self) -> (u8, usize) {
        match self {
            Denied::Command => (1, 0),
            Denied::Key(at) => (2, at),
            Denied::Channel(at) => (4, at),
        }
    }

    /// The reply processCommand gives (without the `NOPERM ` prefix).
    pub fn message(self, fullname: &str) -> String {
        match self {
            Denied::Command => {
                format!("this user has no permissions to run the '{fullname}' command")
            }
            Denied::Key(_) => {
                "this user has no permissions to access one of the keys used as arguments".into()
            }
            Denied::Channel(_) => {
                "this user has no permissions to access one of the channels used as arguments"
                    .into()
            }
        }
    }

    /// The words a script's `redis.call` error uses (Redis's `getAclErrorMessage`).
    pub fn script_message(self) -> &'static str {
        match self {
            Denied::Command => "can't run this command or subcommand",
            Denied::Key(_) => {
                "can't access at least one of the keys mentioned in the command arguments"
            }
            Denied::Channel(_) => "can't publish to the channel mentioned in the command",
        }
    }

    /// EXEC's reason when the rules changed after queueing.
    pub fn exec_reason(self) -> &'static str {
        match self {
            Denied::Command => "no permission to execute the command or subcommand",
            Denied::Key(_) => "no permission to touch the specified keys",
            Denied::Channel(_) => "no permission to access one of the channels used as arguments",
        }
    }

    /// ACL LOG's `reason`.
    pub fn reason(self) -> &'static str {
        match self {
            Denied::Command => "command",
            Denied::Key(_) => "key",
            Denied::Channel(_) => "channel",
        }
    }

    /// The argument the log names (the key or channel), if any.
    pub fn position(self) -> Option<usize> {
        match self {
            Denied::Command => None,
            Denied::Key(at) | Denied::Channel(at) => Some(at),
        }
    }
}

/// Checks a resolved command line against a user.
pub fn check(user: &User, resolved: Resolved, argv: &[Bytes]) -> Result<(), Denied> {
    if user.unrestricted {
        return Ok(());
    }
    let entry = &commands().entries[commands().id_of(resolved.spec)];
    let mut keys = None;
    let mut worst: Option<Denied> = None;
    for selector in &user.selectors {
        match check_selector(selector, entry, argv, &mut keys) {
            Ok(()) => return Ok(()),
            Err(d) => {
                if worst.is_none_or(|w| d.rank() > w.rank()) {
                    worst = Some(d);
                }
            }
        }
    }
    Err(worst.unwrap_or(Denied::Command))
}

type Keys = Vec<(usize, &'static [&'static str])>;

fn check_selector(
    selector: &Selector,
    entry: &Entry,
    argv: &[Bytes],
    keys: &mut Option<Keys>,
) -> Result<(), Denied> {
    if !selector.allows_command(entry, argv) {
        return Err(Denied::Command);
    }
    if !selector.allkeys {
        let keys = keys.get_or_insert_with(|| {
            let spec = entry.spec.expect("a command that runs has a table row");
            crate::cmd::command_keys::keys_with_flags(&entry.fullname, spec, entry.meta, argv)
        });
        for &(pos, flags) in keys.iter() {
            if !selector.allows_key(&argv[pos], needed_access(flags)) {
                return Err(Denied::Key(pos));
            }
        }
    }
    if !selector.allchannels {
        let (positions, is_pattern) = channels(entry, argv);
        for pos in positions {
            if !selector.allows_channel(&argv[pos], is_pattern) {
                return Err(Denied::Channel(pos));
            }
        }
    }
    Ok(())
}

/// The access a key spec's flags ask for.
fn needed_access(flags: &[&str]) -> u8 {
    let mut needed = 0;
    for f in flags {
        match *f {
            "access" => needed |= READ,
            "insert" | "delete" | "update" => needed |= WRITE,
            _ => {}
        }
    }
    needed
}

/// The channels a command publishes or subscribes to, and whether they are patterns
/// (Redis's `getChannelsFromCommand`, keeping only publish and subscribe uses).
fn channels(entry: &Entry, argv: &[Bytes]) -> (std::ops::Range<usize>, bool) {
    match entry.fullname.as_str() {
        "publish" | "spublish" => (1..2.min(argv.len()), false),
        "subscribe" | "ssubscribe" => (1..argv.len(), false),
        "psubscribe" => (1..argv.len(), true),
        _ => (0..0, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::resolve;

    fn user(rules: &[&str]) -> User {
        let mut u = User::new(Bytes::from_static(b"u"), false);
        let rules: Vec<Bytes> =
            rules.iter().map(|r| Bytes::copy_from_slice(r.as_bytes())).collect();
        u.apply_all(&rules, false).expect("valid rules");
        u
    }

    fn run(u: &User, line: &str) -> Result<(), Denied> {
        let argv: Vec<Bytes> =
            line.split(' ').map(|w| Bytes::copy_from_slice(w.as_bytes())).collect();
        check(u, resolve(&argv).expect("a valid line"), &argv)
    }

    #[test]
    fn commands_keys_and_channels() {
        let u =
            user(&["on", "~k*", "&c*", "+get", "+set", "+publish", "+psubscribe", "+client|id"]);
        assert_eq!(run(&u, "get k1"), Ok(()));
        assert_eq!(run(&u, "get x"), Err(Denied::Key(1)));
        assert_eq!(run(&u, "hget k1 f"), Err(Denied::Command));
        assert_eq!(run(&u, "publish c1 m"), Ok(()));
        assert_eq!(run(&u, "publish d1 m"), Err(Denied::Channel(1)));
        assert_eq!(run(&u, "psubscribe c*"), Ok(()));
        assert_eq!(run(&u, "psubscribe c1*"), Err(Denied::Channel(1)));
        assert_eq!(run(&u, "client id"), Ok(()));
        assert_eq!(run(&u, "client list"), Err(Denied::Command));
        // AUTH-like commands are always allowed.
        assert_eq!(run(&u, "auth x"), Ok(()));
    }

    #[test]
    fn read_and_write_patterns() {
        let u = user(&["%R~r*", "%W~w*", "+@all"]);
        assert_eq!(run(&u, "get r1"), Ok(()));
        assert_eq!(run(&u, "set r1 v"), Err(Denied::Key(1)));
        assert_eq!(run(&u, "set w1 v"), Ok(()));
        assert_eq!(run(&u, "get w1"), Err(Denied::Key(1)));
        assert_eq!(run(&u, "copy r1 w1"), Ok(()));
        assert_eq!(run(&u, "copy w1 r1"), Err(Denied::Key(1)));
    }

    #[test]
    fn selectors_and_first_args() {
        let u = user(&["+select|0", "(~g*", "+get)"]);
        assert_eq!(run(&u, "select 0"), Ok(()));
        assert_eq!(run(&u, "select 1"), Err(Denied::Command));
        assert_eq!(run(&u, "get g1"), Ok(()));
        assert_eq!(run(&u, "get x"), Err(Denied::Key(1)));
    }

    #[test]
    fn the_default_user_is_unrestricted() {
        assert!(User::default_user().unrestricted);
        assert!(!user(&["+@all", "~*"]).unrestricted);
    }
}
