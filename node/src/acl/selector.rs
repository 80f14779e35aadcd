//! A selector: one set of permissions — which commands, which keys (and for reading or
//! writing), which pub/sub channels. A user has a root selector and any number of extra
//! selectors written in parentheses; a command runs if one selector allows all of it.
//!
//! Commands are a bitmap over [`super::commands`] ids, plus, for a command without
//! subcommands, the first arguments allowed on their own (`+select|0`). `+@all` also sets a
//! "future commands" mark, which is what makes ACL LIST start from `+@all` rather than
//! `-@all`; any `-command` clears the `allcommands` fast path but not that mark, as in Redis.

use bytes::Bytes;

use super::commands::{self, category, commands, Entry, CATEGORIES, MAX_COMMANDS};
use super::RuleError;

/// Read permission on a key pattern.
pub const READ: u8 = 1;
/// Write permission on a key pattern.
pub const WRITE: u8 = 2;

/// A key pattern and what it permits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPattern {
    /// [`READ`] | [`WRITE`].
    pub perms: u8,
    /// A glob pattern.
    pub pattern: Bytes,
}

impl KeyPattern {
    /// `~p`, `%R~p` or `%W~p`, as ACL LIST prints it.
    pub fn describe(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(match self.perms {
            READ => b"%R~".as_slice(),
            WRITE => b"%W~",
            _ => b"~",
        });
        out.extend_from_slice(&self.pattern);
    }
}

const WORDS: usize = MAX_COMMANDS / 64;

/// One selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// `allkeys`: every key, whatever the access.
    pub allkeys: bool,
    /// `allchannels`.
    pub allchannels: bool,
    /// `allcommands`: every bit is set and no `-command` came after.
    pub allcommands: bool,
    /// Set by `+@all`, cleared by `-@all`: the rules start from `+@all`.
    future: bool,
    /// Allowed command ids.
    bits: [u64; WORDS],
    /// Key patterns, in the order added.
    pub patterns: Vec<KeyPattern>,
    /// Channel patterns, in the order added.
    pub channels: Vec<Bytes>,
    /// First arguments allowed for a command whose bit is clear: (command id, arguments),
    /// sorted by id.
    firstargs: Vec<(usize, Vec<Bytes>)>,
}

impl Selector {
    /// A selector that allows nothing (channels as `acl-pubsub-default` says).
    pub fn new(allchannels: bool) -> Selector {
        Selector {
            allkeys: false,
            allchannels,
            allcommands: false,
            future: false,
            bits: [0; WORDS],
            patterns: Vec::new(),
            channels: Vec::new(),
            firstargs: Vec::new(),
        }
    }

    /// Whether command `id` is allowed by its bit.
    pub fn allows(&self, id: usize) -> bool {
        self.bits[id / 64] & (1 << (id % 64)) != 0
    }

    fn set_bit(&mut self, id: usize, on: bool) {
        if on {
            self.bits[id / 64] |= 1 << (id % 64);
        } else {
            self.bits[id / 64] &= !(1 << (id % 64));
            self.allcommands = false;
        }
    }

    /// Allows or denies a command, and all its subcommands if it is a container.
    fn change(&mut self, entry: &Entry, allow: bool) {
        self.set_bit(entry.id, allow);
        self.firstargs.retain(|(id, _)| *id != entry.id);
        for &sub in &entry.subs {
            self.set_bit(sub, allow);
        }
    }

    fn set_all(&mut self, allow: bool) {
        self.bits = [if allow { u64::MAX } else { 0 }; WORDS];
        self.allcommands = allow;
        self.future = allow;
        self.firstargs.clear();
    }

    fn change_category(&mut self, flag: u32, allow: bool) {
        let all = commands();
        for entry in all.top_level() {
            if entry.categories & flag != 0 {
                self.change(entry, allow);
            }
            for &sub in &entry.subs {
                let sub = &all.entries[sub];
                if sub.categories & flag != 0 {
                    self.change(sub, allow);
                }
            }
        }
    }

    /// Applies one selector rule (Redis's `ACLSetSelector`).
    pub fn apply(&mut self, op: &[u8]) -> Result<(), RuleError> {
        let is = |word: &str| op.eq_ignore_ascii_case(word.as_bytes());
        if is("allkeys") || op == b"~*" {
            self.allkeys = true;
            self.patterns.clear();
        } else if is("resetkeys") {
            self.allkeys = false;
            self.patterns.clear();
        } else if is("allchannels") || op == b"&*" {
            self.allchannels = true;
            self.channels.clear();
        } else if is("resetchannels") {
            self.allchannels = false;
            self.channels.clear();
        } else if is("allcommands") || is("+@all") {
            self.set_all(true);
        } else if is("nocommands") || is("-@all") {
            self.set_all(false);
        } else if op[0] == b'~' || op[0] == b'%' {
            self.add_key_pattern(op)?;
        } else if op[0] == b'&' {
            if self.allchannels {
                return Err(RuleError::ChannelsAfterAll);
            }
            let pattern = &op[1..];
            if has_spaces(pattern) {
                return Err(RuleError::Syntax);
            }
            if !self.channels.iter().any(|c| c == pattern) {
                self.channels.push(Bytes::copy_from_slice(pattern));
            }
            self.allchannels = false;
        } else if op.len() > 1 && op[1] == b'@' && (op[0] == b'+' || op[0] == b'-') {
            let flag = category(&op[2..]).ok_or(RuleError::UnknownCommand)?;
            self.change_category(flag, op[0] == b'+');
        } else if op[0] == b'+' {
            self.allow_command(&op[1..])?;
        } else if op[0] == b'-' {
            let entry = commands().lookup(&op[1..]).ok_or(RuleError::UnknownCommand)?;
            self.change(entry, false);
        } else {
            return Err(RuleError::Syntax);
        }
        Ok(())
    }

    fn add_key_pattern(&mut self, op: &[u8]) -> Result<(), RuleError> {
        if self.allkeys {
            return Err(RuleError::KeysAfterAll);
        }
        let (perms, offset) = if op[0] == b'%' {
            let mut perms = 0;
            let mut offset = 1;
            while offset < op.len() {
                let c = op[offset].to_ascii_uppercase();
                if c == b'R' && perms & READ == 0 {
                    perms |= READ;
                } else if c == b'W' && perms & WRITE == 0 {
                    perms |= WRITE;
                } else if c == b'~' {
                    offset += 1;
                    break;
                } else {
                    return Err(RuleError::Syntax);
                }
                offset += 1;
            }
            (perms, offset)
        } else {
            (READ | WRITE, 1)
        };
        let pattern = &op[offset..];
        if has_spaces(pattern) {
            return Err(RuleError::Syntax);
        }
        match self.patterns.iter_mut().find(|p| p.pattern == pattern) {
            Some(existing) => existing.perms |= perms,
            None => {
                self.patterns.push(KeyPattern { perms, pattern: Bytes::copy_from_slice(pattern) })
            }
        }
        self.allkeys = false;
        Ok(())
    }

    /// `+name`, `+container|sub`, or `+command|first-arg`.
    fn allow_command(&mut self, name: &[u8]) -> Result<(), RuleError> {
        let all = commands();
        let Some(bar) = name.iter().rposition(|&c| c == b'|') else {
            let entry = all.lookup(name).ok_or(RuleError::UnknownCommand)?;
            self.change(entry, true);
            return Ok(());
        };
        let (base, sub) = (&name[..bar], &name[bar + 1..]);
        let entry = all.lookup(base).ok_or(RuleError::UnknownCommand)?;
        if entry.parent.is_some() {
            return Err(RuleError::FirstArgOfSubcommand);
        }
        if sub.is_empty() {
            return Err(RuleError::Syntax);
        }
        if !entry.subs.is_empty() {
            let entry = all.lookup(name).ok_or(RuleError::UnknownCommand)?;
            self.change(entry, true);
            return Ok(());
        }
        tracing::warn!(
            offender = %String::from_utf8_lossy(name),
            "Deprecation warning: allowing a first arg of an otherwise blocked command is a misuse of ACL and may get disabled in the future"
        );
        let id = entry.id;
        // Kept sorted by command id, so equal permissions compare equal.
        let slot = match self.firstargs.binary_search_by_key(&id, |(i, _)| *i) {
            Ok(i) => i,
            Err(i) => {
                self.firstargs.insert(i, (id, Vec::new()));
                i
            }
        };
        let args = &mut self.firstargs[slot].1;
        if !args.iter().any(|a| a.eq_ignore_ascii_case(sub)) {
            args.push(Bytes::copy_from_slice(sub));
        }
        Ok(())
    }

    /// Whether the selector allows running command `entry` with `argv` as far as the command
    /// itself goes (its bit, or an allowed first argument).
    pub fn allows_command(&self, entry: &Entry, argv: &[Bytes]) -> bool {
        let no_auth = entry.spec.is_some_and(|s| s.has(crate::cmd::flags::NO_AUTH));
        if self.allcommands || no_auth || self.allows(entry.id) {
            return true;
        }
        // Only commands without subcommands have first arguments, so this is argument 1.
        let Some(arg) = argv.get(1) else { return false };
        self.firstargs
            .iter()
            .find(|(id, _)| *id == entry.id)
            .is_some_and(|(_, args)| args.iter().any(|a| a.eq_ignore_ascii_case(arg)))
    }

    /// Whether a key may be used with the access `needed` ([`READ`] | [`WRITE`]).
    pub fn allows_key(&self, key: &[u8], needed: u8) -> bool {
        self.allkeys
            || self.patterns.iter().any(|p| {
                p.perms & needed == needed && common::glob::matches(&p.pattern, key, false)
            })
    }

    /// Whether a channel may be used; a pattern (PSUBSCRIBE's argument) must appear literally.
    pub fn allows_channel(&self, channel: &[u8], is_pattern: bool) -> bool {
        self.allchannels
            || self.channels.iter().any(|p| {
                if is_pattern {
                    p == channel
                } else {
                    common::glob::matches(p, channel, false)
                }
            })
    }

    /// The key patterns as ACL GETUSER shows them (`~*` for allkeys).
    pub fn describe_keys(&self) -> Vec<u8> {
        if self.allkeys {
            return b"~*".to_vec();
        }
        let mut out = Vec::new();
        for (i, p) in self.patterns.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            p.describe(&mut out);
        }
        out
    }

    /// The channel patterns as ACL GETUSER shows them (`&*` for allchannels).
    pub fn describe_channels(&self) -> Vec<u8> {
        if self.allchannels {
            return b"&*".to_vec();
        }
        let mut out = Vec::new();
        for (i, c) in self.channels.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            out.push(b'&');
            out.extend_from_slice(c);
        }
        out
    }

    /// The whole selector as rules (ACL LIST), keys, then channels, then commands.
    pub fn describe(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.allkeys {
            out.extend_from_slice(b"~* ");
        } else {
            for p in &self.patterns {
                p.describe(&mut out);
                out.push(b' ');
            }
        }
        if self.allchannels {
            out.extend_from_slice(b"&* ");
        } else {
            out.extend_from_slice(b"resetchannels ");
            for c in &self.channels {
                out.push(b'&');
                out.extend_from_slice(c);
                out.push(b' ');
            }
        }
        out.extend_from_slice(self.describe_commands().as_bytes());
        out
    }

    /// The command rules that rebuild this selector's bitmap (Redis's
    /// `ACLDescribeSelectorCommandRules`): `+@all` or `-@all`, then the categories that fit
    /// best, one at a time, then single commands and first arguments for what is left.
    pub fn describe_commands(&self) -> String {
        let mut rules = String::new();
        let additive = !self.future;
        let mut fake = Selector::new(false);
        if additive {
            rules.push_str("-@all ");
            fake.set_all(false);
        } else {
            rules.push_str("+@all ");
            fake.set_all(true);
        }
        let mut temp = Selector::new(false);
        temp.bits = self.bits;
        let mut applied = [false; CATEGORIES.len()];
        loop {
            let mut best = None;
            let (mut mindiff, mut maxsame) = (usize::MAX, 0);
            for (j, name) in CATEGORIES.iter().enumerate() {
                if applied[j] {
                    continue;
                }
                let (on, off) = temp.count_category(1 << j);
                let (diff, same) = if additive { (off, on) } else { (on, off) };
                if same > diff && (diff < mindiff || (diff == mindiff && same > maxsame)) {
                    best = Some((j, *name));
                    mindiff = diff;
                    maxsame = same;
                }
            }
            let Some((j, name)) = best else { break };
            fake.change_category(1 << j, additive);
            temp.change_category(1 << j, !additive);
            rules.push_str(if additive { "+@" } else { "-@" });
            rules.push_str(name);
            rules.push(' ');
            applied[j] = true;
        }
        let all = commands();
        for entry in all.top_level() {
            self.describe_single(entry, &mut fake, &mut rules);
            for &sub in &entry.subs {
                self.describe_single(&all.entries[sub], &mut fake, &mut rules);
            }
        }
        rules.pop();
        debug_assert_eq!(fake.bits, self.bits, "the described rules rebuild the bitmap");
        rules
    }

    fn describe_single(&self, entry: &Entry, fake: &mut Selector, rules: &mut String) {
        let mine = self.allows(entry.id);
        if mine != fake.allows(entry.id) {
            rules.push(if mine { '+' } else { '-' });
            rules.push_str(&entry.fullname);
            rules.push(' ');
            fake.change(entry, mine);
        }
        if mine || entry.parent.is_some() {
            return;
        }
        if let Some((_, args)) = self.firstargs.iter().find(|(id, _)| *id == entry.id) {
            for arg in args {
                rules.push('+');
                rules.push_str(&entry.fullname);
                rules.push('|');
                rules.push_str(&String::from_utf8_lossy(arg));
                rules.push(' ');
            }
        }
    }

    /// How many commands of a category this selector allows and denies.
    fn count_category(&self, flag: u32) -> (usize, usize) {
        let (mut on, mut off) = (0, 0);
        for e in &commands::commands().entries {
            if e.categories & flag != 0 {
                if self.allows(e.id) {
                    on += 1;
                } else {
                    off += 1;
                }
            }
        }
        (on, off)
    }
}

/// Patterns and names may not hold spaces or NULs (Redis's `ACLStringHasSpaces`).
pub fn has_spaces(s: &[u8]) -> bool {
    s.iter().any(|&c| c.is_ascii_whitespace() || c == 0x0b || c == 0)
}
