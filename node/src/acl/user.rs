//! A user: whether it may log in, its passwords (SHA-256, hex), and its selectors (the root
//! one first). Rules change a user as ACL SETUSER, `user` config lines and ACL files say
//! (Redis's `ACLSetUser`), and [`User::describe`] gives them back in ACL LIST's canonical form.

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::selector::Selector;
use super::RuleError;

/// `sanitize-payload` / `skip-sanitize-payload` (neither until one is given or `reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sanitize {
    /// Neither flag.
    Unset,
    /// `sanitize-payload`.
    Always,
    /// `skip-sanitize-payload`.
    Skip,
}

/// One ACL user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Its name.
    pub name: Bytes,
    /// `on` (may authenticate) or `off`.
    pub enabled: bool,
    /// `nopass`: any password works.
    pub nopass: bool,
    /// The payload sanitization flag.
    pub sanitize: Sanitize,
    /// SHA-256 hashes (64 lowercase hex characters), in the order added.
    pub passwords: Vec<String>,
    /// The root selector first, then the `(…)` ones.
    pub selectors: Vec<Selector>,
    /// True when the user may run anything on any key and channel (the common case, checked
    /// before anything else on every command).
    pub unrestricted: bool,
}

/// The hex SHA-256 of a password, as stored.
pub fn hash_password(password: &[u8]) -> String {
    let digest = Sha256::digest(password);
    let mut hex = String::with_capacity(64);
    for b in digest {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

fn is_hash(hash: &[u8]) -> bool {
    hash.len() == 64 && hash.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

impl User {
    /// A new user as Redis creates one: off, no passwords, no permissions; channels as
    /// `acl-pubsub-default` says.
    pub fn new(name: Bytes, allchannels: bool) -> User {
        User {
            name,
            enabled: false,
            nopass: false,
            sanitize: Sanitize::Unset,
            passwords: Vec::new(),
            selectors: vec![Selector::new(allchannels)],
            unrestricted: false,
        }
    }

    /// The `default` user of a fresh server: on, nopass, everything allowed.
    pub fn default_user() -> User {
        let mut u = User::new(Bytes::from_static(b"default"), false);
        for rule in ["+@all", "~*", "&*", "on", "nopass"] {
            u.apply(rule.as_bytes(), false).expect("the default user's rules are valid");
        }
        u
    }

    /// The root selector.
    pub fn root(&self) -> &Selector {
        &self.selectors[0]
    }

    /// Applies one rule (Redis's `ACLSetUser`); `allchannels` is `acl-pubsub-default`.
    pub fn apply(&mut self, op: &[u8], allchannels: bool) -> Result<(), RuleError> {
        let result = self.apply_rule(op, allchannels);
        let root = self.root();
        self.unrestricted =
            root.allcommands && root.allkeys && root.allchannels && self.selectors.len() == 1;
        result
    }

    fn apply_rule(&mut self, op: &[u8], allchannels: bool) -> Result<(), RuleError> {
        if op.is_empty() {
            return Ok(());
        }
        let is = |word: &str| op.eq_ignore_ascii_case(word.as_bytes());
        if is("on") {
            self.enabled = true;
        } else if is("off") {
            self.enabled = false;
        } else if is("skip-sanitize-payload") {
            self.sanitize = Sanitize::Skip;
        } else if is("sanitize-payload") {
            self.sanitize = Sanitize::Always;
        } else if is("nopass") {
            self.nopass = true;
            self.passwords.clear();
        } else if is("resetpass") {
            self.nopass = false;
            self.passwords.clear();
        } else if op[0] == b'>' || op[0] == b'#' {
            let hash = if op[0] == b'>' {
                hash_password(&op[1..])
            } else if is_hash(&op[1..]) {
                String::from_utf8_lossy(&op[1..]).into_owned()
            } else {
                return Err(RuleError::BadHash);
            };
            if !self.passwords.contains(&hash) {
                self.passwords.push(hash);
            }
            self.nopass = false;
        } else if op[0] == b'<' || op[0] == b'!' {
            let hash = if op[0] == b'<' {
                hash_password(&op[1..])
            } else if is_hash(&op[1..]) {
                String::from_utf8_lossy(&op[1..]).into_owned()
            } else {
                return Err(RuleError::BadHash);
            };
            let at =
                self.passwords.iter().position(|p| *p == hash).ok_or(RuleError::NoSuchPassword)?;
            self.passwords.remove(at);
        } else if op[0] == b'(' && op[op.len() - 1] == b')' {
            let inner = &op[1..op.len() - 1];
            let words = common::config::split_args(inner).map_err(|_| RuleError::Syntax)?;
            let mut selector = Selector::new(allchannels);
            for word in words {
                selector.apply(&word)?;
            }
            self.selectors.push(selector);
        } else if is("clearselectors") {
            self.selectors.truncate(1);
        } else if is("reset") {
            for rule in ["resetpass", "resetkeys", "resetchannels"] {
                self.apply_rule(rule.as_bytes(), allchannels)?;
            }
            if allchannels {
                self.apply_rule(b"allchannels", allchannels)?;
            }
            for rule in ["off", "sanitize-payload", "clearselectors", "-@all"] {
                self.apply_rule(rule.as_bytes(), allchannels)?;
            }
        } else {
            self.selectors[0].apply(op)?;
        }
        Ok(())
    }

    /// Applies rules all or nothing (Redis's `ACLStringSetUser`): selectors spread over
    /// several words are joined first. Errors are ACL SETUSER's text (without `ERR `).
    pub fn apply_all(&mut self, rules: &[Bytes], allchannels: bool) -> Result<(), String> {
        let merged = merge_selectors(rules).map_err(|start| {
            format!(
                "Unmatched parenthesis in acl selector starting at '{}'.",
                String::from_utf8_lossy(&rules[start])
            )
        })?;
        let mut staged = self.clone();
        for rule in &merged {
            staged.apply(rule, allchannels).map_err(|e| {
                format!(
                    "Error in ACL SETUSER modifier '{}': {}",
                    String::from_utf8_lossy(rule),
                    e.message()
                )
            })?;
        }
        *self = staged;
        Ok(())
    }

    /// Whether `password` logs this user in (an `off` user never does).
    pub fn accepts(&self, password: &[u8]) -> bool {
        if !self.enabled {
            return false;
        }
        if self.nopass {
            return true;
        }
        let hash = hash_password(password);
        // Every stored hash is compared in full, so timing says nothing about which matched.
        self.passwords
            .iter()
            .fold(false, |found, p| found | constant_time_eq(p.as_bytes(), hash.as_bytes()))
    }

    /// The flags as ACL GETUSER lists them.
    pub fn flags(&self) -> Vec<&'static str> {
        let mut flags = vec![if self.enabled { "on" } else { "off" }];
        if self.nopass {
            flags.push("nopass");
        }
        match self.sanitize {
            Sanitize::Skip => flags.push("skip-sanitize-payload"),
            Sanitize::Always => flags.push("sanitize-payload"),
            Sanitize::Unset => {}
        }
        flags
    }

    /// `user <name> <rules>`: the line ACL LIST shows and ACL SAVE writes for this user.
    pub fn line(&self) -> Vec<u8> {
        let mut line = b"user ".to_vec();
        line.extend_from_slice(&self.name);
        line.push(b' ');
        line.extend_from_slice(&self.describe());
        line
    }

    /// The rules that rebuild this user, as ACL LIST and ACL SAVE write them (without
    /// `user <name> `).
    pub fn describe(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for flag in self.flags() {
            out.extend_from_slice(flag.as_bytes());
            out.push(b' ');
        }
        for p in &self.passwords {
            out.push(b'#');
            out.extend_from_slice(p.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(&self.selectors[0].describe());
        for s in &self.selectors[1..] {
            out.extend_from_slice(b" (");
            out.extend_from_slice(&s.describe());
            out.push(b')');
        }
        out
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Joins a selector written over several words (`(~k*` `+get)`) into one rule, as Redis's
/// `ACLMergeSelectorArguments`. `Err` holds the index of an opening word never closed.
pub fn merge_selectors(rules: &[Bytes]) -> Result<Vec<Bytes>, usize> {
    let mut merged = Vec::with_capacity(rules.len());
    let mut open: Option<(usize, Vec<u8>)> = None;
    for (i, rule) in rules.iter().enumerate() {
        if let Some((_, selector)) = open.as_mut() {
            selector.push(b' ');
            selector.extend_from_slice(rule);
            if rule.last() == Some(&b')') {
                let (_, selector) = open.take().expect("a selector is open");
                merged.push(Bytes::from(selector));
            }
            continue;
        }
        if rule.first() == Some(&b'(') && rule.last() != Some(&b')') {
            open = Some((i, rule.to_vec()));
            continue;
        }
        merged.push(rule.clone());
    }
    match open {
        Some((start, _)) => Err(start),
        None => Ok(merged),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn described(rules: &str) -> String {
        let mut u = User::new(Bytes::from_static(b"u"), false);
        let rules: Vec<Bytes> = rules
            .split(' ')
            .filter(|r| !r.is_empty())
            .map(|r| Bytes::from(r.to_string()))
            .collect();
        u.apply_all(&rules, false).expect("valid rules");
        String::from_utf8(u.describe()).expect("descriptions are text")
    }

    /// Each expected text is what Redis 7.0.15's ACL LIST printed for the same ACL SETUSER.
    #[test]
    fn descriptions_match_redis() {
        assert_eq!(described(""), "off resetchannels -@all");
        assert_eq!(described("reset"), "off sanitize-payload resetchannels -@all");
        assert_eq!(described("+@all -@dangerous"), "off resetchannels +@all -@dangerous");
        assert_eq!(
            described("-@all +@hash +@string -hset"),
            "off resetchannels -@all +@string +@hash -hset"
        );
        assert_eq!(described("allkeys allchannels allcommands -config"), "off ~* &* +@all -config");
        assert_eq!(
            described("+@all -client +client|id"),
            "off resetchannels +@all -client +client|id"
        );
        assert_eq!(
            described("on >p1 ~k* %R~r* %W~w* %RW~x* &ch* (+get ~g*)"),
            "on #f64551fcd6f07823cb87971cfb91446425da18286b3ab1ef935e0cbd7a69f68a ~k* %R~r* %W~w* ~x* resetchannels &ch* -@all (~g* resetchannels -@all +get)"
        );
        assert_eq!(
            described("-@all +select|0 +select|1 +SELECT|1"),
            "off resetchannels -@all +select|0 +select|1"
        );
        assert_eq!(described("nocommands +@set +@list"), "off resetchannels -@all +@list +@set");
    }

    #[test]
    fn bad_rules_change_nothing_and_say_why() {
        let mut u = User::default_user();
        let rules = [Bytes::from_static(b"resetpass"), Bytes::from_static(b"~more")];
        let e = u.apply_all(&rules, false).unwrap_err();
        assert!(e.starts_with("Error in ACL SETUSER modifier '~more': Adding a pattern"), "{e}");
        assert_eq!(u, User::default_user());
        let e = u.apply_all(&[Bytes::from_static(b"(~x"), Bytes::from_static(b"+get")], false);
        assert_eq!(e.unwrap_err(), "Unmatched parenthesis in acl selector starting at '(~x'.");
    }

    #[test]
    fn passwords_are_hashed_and_checked() {
        let mut u = User::new(Bytes::from_static(b"u"), false);
        u.apply_all(&[Bytes::from_static(b">secret")], false).unwrap();
        assert!(!u.accepts(b"secret"), "an off user never logs in");
        u.apply(b"on", false).unwrap();
        assert!(u.accepts(b"secret"));
        assert!(!u.accepts(b"other"));
        assert_eq!(u.passwords, [hash_password(b"secret")]);
        u.apply(b"nopass", false).unwrap();
        assert!(u.accepts(b"anything"));
    }
}
