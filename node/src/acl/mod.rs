//! ACL users, as Redis 7.0 has them.
//!
//! The [`Acl`] registry maps user names to [`User`]s (sorted by name, as ACL LIST and ACL
//! SAVE print them). Each connection holds an `Arc` of its user's current version and the
//! registry's generation when it took it; any change to the registry bumps the generation,
//! and a connection whose copy is older refreshes it before its next command (see
//! [`refresh`]). So a command costs one atomic load and one flag test for a user allowed
//! everything (the `default` user of most servers), and nothing is locked per command.
//!
//! A user keeps an `incarnation` number across changes; deleting it (ACL DELUSER, ACL LOAD)
//! disconnects its clients, as Redis does, and a user re-created under the same name is a
//! different incarnation that those clients do not inherit.
//!
//! The rule language is in [`user`] and [`selector`], the permission check in [`check`], the
//! log in [`log`], and the ACL file in [`mod@file`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

pub mod check;
pub mod commands;
pub mod file;
pub mod log;
pub mod selector;
pub mod user;

pub use user::User;

/// Why a rule was refused (Redis sets `errno`; the texts are `ACLSetUserStringError`'s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleError {
    /// A command or category that does not exist.
    UnknownCommand,
    /// Anything else malformed.
    Syntax,
    /// A key pattern after `allkeys`.
    KeysAfterAll,
    /// A channel pattern after `allchannels`.
    ChannelsAfterAll,
    /// `<pass` or `!hash` of a password the user does not have.
    NoSuchPassword,
    /// `#hash` or `!hash` that is not 64 lowercase hex characters.
    BadHash,
    /// A user defined twice in the config file.
    Duplicate,
    /// `+container|sub|arg`.
    FirstArgOfSubcommand,
}

impl RuleError {
    /// Redis's wording.
    pub fn message(self) -> &'static str {
        match self {
            RuleError::UnknownCommand => "Unknown command or category name in ACL",
            RuleError::Syntax => "Syntax error",
            RuleError::KeysAfterAll => "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns",
            RuleError::ChannelsAfterAll => "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels",
            RuleError::NoSuchPassword => "The password you are trying to remove from the user does not exist",
            RuleError::BadHash => "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters",
            RuleError::Duplicate => "Duplicate user found. A user can only be defined once in config files",
            RuleError::FirstArgOfSubcommand => "Allowing first-arg of a subcommand is not supported",
        }
    }
}

/// A user as the registry holds it: the current version and its incarnation.
#[derive(Debug, Clone)]
pub struct UserEntry {
    /// The user's rules.
    pub user: Arc<User>,
    /// Stays the same across changes; new when the user is (re)created.
    pub incarnation: u64,
}

/// Every user, the ACL log, and the settings the ACL code reads.
pub struct Acl {
    users: BTreeMap<Bytes, UserEntry>,
    next_incarnation: u64,
    /// Denied commands and failed logins (ACL LOG).
    pub log: log::AclLog,
    /// `acl-pubsub-default allchannels`: new users start with every channel.
    pub pubsub_default_all: bool,
    /// `aclfile` (empty: none).
    pub filename: String,
    /// `acllog-max-len`.
    pub log_max_len: usize,
}

/// What CLIENT LIST shows as the user of an internal client (our master's link).
pub const SUPERUSER: &[u8] = b"(superuser)";

/// The incarnation of the `default` user, which is never deleted.
pub const DEFAULT_INCARNATION: u64 = 1;

impl Default for Acl {
    fn default() -> Acl {
        let mut users = BTreeMap::new();
        let default = User::default_user();
        users.insert(
            default.name.clone(),
            UserEntry { user: Arc::new(default), incarnation: DEFAULT_INCARNATION },
        );
        Acl {
            users,
            next_incarnation: DEFAULT_INCARNATION + 1,
            log: log::AclLog::default(),
            pubsub_default_all: false,
            filename: String::new(),
            log_max_len: 128,
        }
    }
}

impl Acl {
    /// A user by name.
    pub fn get(&self, name: &[u8]) -> Option<&UserEntry> {
        self.users.get(name)
    }

    /// The `default` user.
    pub fn default_entry(&self) -> &UserEntry {
        self.users.get(b"default".as_slice()).expect("the default user always exists")
    }

    /// Every user, by name.
    pub fn iter(&self) -> impl Iterator<Item = &UserEntry> {
        self.users.values()
    }

    /// ACL SETUSER: applies `rules` to the user `name`, creating it if needed, all or nothing.
    /// Returns the user before the change (`None` if it was created).
    pub fn set_user(&mut self, name: &[u8], rules: &[Bytes]) -> Result<Option<Arc<User>>, String> {
        let all = self.pubsub_default_all;
        let name = Bytes::copy_from_slice(name);
        match self.users.get_mut(&name) {
            Some(entry) => {
                let mut user = (*entry.user).clone();
                user.apply_all(rules, all)?;
                let before = std::mem::replace(&mut entry.user, Arc::new(user));
                Ok(Some(before))
            }
            None => {
                let mut user = User::new(name.clone(), all);
                user.apply_all(rules, all)?;
                let incarnation = self.next_incarnation;
                self.next_incarnation += 1;
                self.users.insert(name, UserEntry { user: Arc::new(user), incarnation });
                Ok(None)
            }
        }
    }

    /// Removes a user; the `default` user is never removed. Returns its incarnation.
    pub fn remove(&mut self, name: &[u8]) -> Option<u64> {
        if name == b"default" {
            return None;
        }
        self.users.remove(name).map(|e| e.incarnation)
    }

    /// `requirepass`: the default user gets this one password, or `nopass` when empty.
    pub fn set_default_password(&mut self, password: Option<&str>) {
        let rules: Vec<Bytes> = match password {
            Some(p) => vec![Bytes::from_static(b"resetpass"), Bytes::from(format!(">{p}"))],
            None => vec![Bytes::from_static(b"resetpass"), Bytes::from_static(b"nopass")],
        };
        self.set_user(b"default", &rules).expect("password rules are valid");
    }

    /// Whether a client that has not authenticated must (Redis's `authRequired`): the default
    /// user has a password or is off.
    pub fn auth_required(&self) -> bool {
        let d = &self.default_entry().user;
        !d.nopass || !d.enabled
    }

    /// Replaces every user but keeps the default user's incarnation (ACL LOAD). The caller
    /// disconnects the clients of every other user.
    pub fn replace_users(&mut self, users: Vec<User>) {
        let mut fresh = BTreeMap::new();
        let mut default = None;
        for user in users {
            if user.name.as_ref() == b"default" {
                default = Some(user);
                continue;
            }
            let incarnation = self.next_incarnation;
            self.next_incarnation += 1;
            fresh.insert(user.name.clone(), UserEntry { user: Arc::new(user), incarnation });
        }
        let default = default.unwrap_or_else(User::default_user);
        fresh.insert(
            default.name.clone(),
            UserEntry { user: Arc::new(default), incarnation: DEFAULT_INCARNATION },
        );
        self.users = fresh;
    }
}

/// What a connection knows of its user: the version it checks commands against, and the
/// registry generation it was read at.
#[derive(Debug, Clone)]
pub struct ClientUser {
    /// The user (`None`: an internal client, such as our master's link, that may run anything).
    pub user: Option<Arc<User>>,
    /// Its incarnation.
    pub incarnation: u64,
    /// The registry generation `user` was read at.
    pub generation: u64,
}

impl ClientUser {
    /// An internal client: no user, no checks.
    pub fn internal() -> ClientUser {
        ClientUser { user: None, incarnation: 0, generation: 0 }
    }

    /// The name CLIENT LIST shows.
    pub fn name(&self) -> &[u8] {
        self.user.as_ref().map_or(SUPERUSER, |u| &u.name)
    }
}

/// The registry and its generation, as the server holds them.
#[derive(Default)]
pub struct AclState {
    /// The users. Lock order: after `keyspace`; `clients` and `pubsub` are never taken while
    /// it is held, nor it while they are.
    pub acl: parking_lot::RwLock<Acl>,
    /// Bumped after every change to a user (see the module docs).
    pub generation: AtomicU64,
}

impl AclState {
    /// The default user, as a new connection starts with it.
    pub fn default_user(&self) -> ClientUser {
        let generation = self.generation.load(Ordering::Acquire);
        let acl = self.acl.read();
        ClientUser {
            user: Some(acl.default_entry().user.clone()),
            incarnation: DEFAULT_INCARNATION,
            generation,
        }
    }

    /// Marks every connection's copy of its user stale.
    pub fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// What [`refresh`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Refreshed {
    /// Up to date.
    Current,
    /// The user is gone (its clients are being disconnected).
    Deleted,
}

/// Brings a connection's copy of its user up to date if the registry changed since.
#[inline]
pub fn refresh(state: &AclState, client: &mut ClientUser) -> Refreshed {
    let generation = state.generation.load(Ordering::Acquire);
    if generation == client.generation || client.user.is_none() {
        return Refreshed::Current;
    }
    refresh_slow(state, client, generation)
}

#[cold]
fn refresh_slow(state: &AclState, client: &mut ClientUser, generation: u64) -> Refreshed {
    let acl = state.acl.read();
    let name = client.name().to_vec();
    match acl.get(&name).filter(|e| e.incarnation == client.incarnation) {
        Some(entry) => {
            client.user = Some(entry.user.clone());
            client.generation = generation;
            Refreshed::Current
        }
        None => {
            // As Redis does for a client of a deleted user: back to the default user, not
            // authenticated, until the disconnection lands.
            client.user = Some(acl.default_entry().user.clone());
            client.incarnation = DEFAULT_INCARNATION;
            client.generation = generation;
            Refreshed::Deleted
        }
    }
}

/// Records a denied command in the ACL log (Redis's `addACLLogEntry`). `running` is the
/// command the client-info line names: the denied one, or for a script the EVAL that ran it.
pub fn log_denied(
    shared: &crate::server::Shared,
    client: &crate::client::ClientState,
    resolved: crate::dispatch::Resolved,
    argv: &[Bytes],
    denied: check::Denied,
    context: log::Context,
    running: &str,
) {
    let object = match denied.position() {
        Some(at) => argv[at].clone(),
        None => Bytes::from(resolved.fullname()),
    };
    let username = Bytes::copy_from_slice(client.user.name());
    add_log_entry(shared, client, running, denied.reason(), context, object, username);
}

/// Records a failed login: the object is the command as typed, the user the one asked for.
pub fn log_failed_auth(
    shared: &crate::server::Shared,
    client: &crate::client::ClientState,
    command: &Bytes,
    username: &[u8],
) {
    let context = if client.multi.is_some() { log::Context::Multi } else { log::Context::Toplevel };
    let fullname = String::from_utf8_lossy(command).to_ascii_lowercase();
    let username = Bytes::copy_from_slice(username);
    add_log_entry(shared, client, &fullname, "auth", context, command.clone(), username);
}

fn add_log_entry(
    shared: &crate::server::Shared,
    client: &crate::client::ClientState,
    fullname: &str,
    reason: &'static str,
    context: log::Context,
    object: Bytes,
    username: Bytes,
) {
    let now = crate::server::unix_ms();
    let client_info = crate::cmd::client::info_line(shared, client, fullname, now);
    let entry =
        log::LogEntry { count: 1, reason, context, object, username, time_ms: now, client_info };
    let mut acl = shared.acl.acl.write();
    let max_len = acl.log_max_len;
    acl.log.add(entry, max_len);
}

/// Loads `aclfile`, if one is configured, before clients are served (Redis's
/// `ACLLoadUsersAtStartup`). `Err` is the message the server aborts with.
pub fn load_file_at_startup(shared: &crate::server::Shared) -> Result<(), String> {
    let (filename, all) = {
        let acl = shared.acl.acl.read();
        (acl.filename.clone(), acl.pubsub_default_all)
    };
    if filename.is_empty() {
        return Ok(());
    }
    let users = file::load(&filename, all)
        .map_err(|e| format!("Aborting Redis startup because of ACL errors: {e}"))?;
    shared.acl.acl.write().replace_users(users);
    shared.acl.changed();
    Ok(())
}
