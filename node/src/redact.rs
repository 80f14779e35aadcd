//! Secrets in commands shown to other clients: MONITOR and SLOWLOG print `(redacted)` in
//! their place, as Redis does.

use std::borrow::Cow;

use bytes::Bytes;

use crate::cmd::args::is;

const REDACTED: Bytes = Bytes::from_static(b"(redacted)");

/// `argv` with passwords replaced: AUTH's arguments, ACL SETUSER's, HELLO's `AUTH <user> <pass>`, MIGRATE's
/// `AUTH <pass>` and `AUTH2 <user> <pass>`, and the value of CONFIG SET masterauth or
/// requirepass.
pub fn redacted(argv: &[Bytes]) -> Cow<'_, [Bytes]> {
    let Some(name) = argv.first() else { return Cow::Borrowed(argv) };
    let mut secret = vec![false; argv.len()];
    if is(name, "auth") {
        secret[1..].fill(true);
    } else if is(name, "hello") {
        mark_after(argv, &mut secret, 2, &[("auth", 2)]);
    } else if is(name, "migrate") {
        mark_after(argv, &mut secret, 6, &[("auth", 1), ("auth2", 2)]);
    } else if is(name, "acl") && argv.get(1).is_some_and(|a| is(a, "setuser")) {
        // The user name too, as Redis hides everything after SETUSER.
        secret[2..].fill(true);
    } else if is(name, "config") && argv.get(1).is_some_and(|a| is(a, "set")) {
        for i in (2..argv.len()).step_by(2) {
            let name = crate::config::canonical_name(&String::from_utf8_lossy(&argv[i]));
            if matches!(name, Some("masterauth" | "requirepass")) && i + 1 < argv.len() {
                secret[i + 1] = true;
            }
        }
    }
    if !secret.contains(&true) {
        return Cow::Borrowed(argv);
    }
    let shown = argv.iter().zip(secret).map(|(a, s)| if s { REDACTED } else { a.clone() });
    Cow::Owned(shown.collect())
}

/// Marks the `count` arguments after each `option` word found from `from` on.
fn mark_after(argv: &[Bytes], secret: &mut [bool], from: usize, options: &[(&str, usize)]) {
    let mut i = from;
    while i < argv.len() {
        match options.iter().find(|(word, _)| is(&argv[i], word)) {
            Some((_, count)) => {
                let end = (i + 1 + count).min(argv.len());
                secret[i + 1..end].fill(true);
                i = end;
            }
            None => i += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(line: &str) -> String {
        let argv: Vec<Bytes> =
            line.split(' ').map(|w| Bytes::copy_from_slice(w.as_bytes())).collect();
        let out = redacted(&argv);
        out.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn secrets_are_redacted_as_redis_does() {
        assert_eq!(shown("auth x"), "auth (redacted)");
        assert_eq!(shown("AUTH user pw"), "AUTH (redacted) (redacted)");
        assert_eq!(
            shown("hello 3 auth default pw setname n"),
            "hello 3 auth (redacted) (redacted) setname n"
        );
        assert_eq!(shown("migrate h 1 k 0 10 AUTH pw3"), "migrate h 1 k 0 10 AUTH (redacted)");
        assert_eq!(
            shown("migrate h 1 k 0 10 COPY AUTH2 u pw4"),
            "migrate h 1 k 0 10 COPY AUTH2 (redacted) (redacted)"
        );
        assert_eq!(
            shown("config set masterauth s hz 10"),
            "config set masterauth (redacted) hz 10"
        );
        assert_eq!(shown("config set requirepass p"), "config set requirepass (redacted)");
        assert_eq!(shown("acl setuser u on >p"), "acl setuser (redacted) (redacted) (redacted)");
        assert_eq!(shown("set auth x"), "set auth x");
        assert_eq!(shown("hello 3"), "hello 3");
    }
}
