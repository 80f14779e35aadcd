//! Secrets in the Raft store are sealed: ARCHITECTURE.md promises that a supervisor never
//! writes a secret to disk, yet `SENTINEL SET <name> auth-pass` must reach every supervisor
//! and survive restarts, so it travels through the log and its snapshots. What is stored is
//! `sealed:v1:<hex(nonce ‖ ciphertext ‖ tag)>`, encrypted under a key derived from the
//! group's `supervisor-auth` secret (which stays in the operator's config file and never
//! crosses the wire): every supervisor of the group can open it, the disk alone cannot.
//!
//! The construction uses only HMAC-SHA256 (already ours for peer authentication): the
//! keystream is `HMAC(k_enc, nonce ‖ counter)` blocks (a PRF in counter mode) and the tag is
//! `HMAC(k_mac, nonce ‖ ciphertext)`, checked in constant time before anything is decrypted.

use std::sync::OnceLock;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const PREFIX: &str = "sealed:v1:";
const NONCE: usize = 16;
const TAG: usize = 16;

struct Keys {
    enc: Vec<u8>,
    mac: Vec<u8>,
}

static KEYS: OnceLock<Keys> = OnceLock::new();

fn derive(secret: &[u8], purpose: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(b"warden sealed secret ");
    mac.update(purpose);
    mac.finalize().into_bytes().to_vec()
}

/// Installs the group secret (at supervisor startup, before the store is opened). Unit tests
/// that never install one seal under the empty secret.
pub fn install(group_secret: &str) {
    let _ = KEYS.set(keys_for(group_secret.as_bytes()));
}

fn keys_for(secret: &[u8]) -> Keys {
    Keys { enc: derive(secret, b"encryption"), mac: derive(secret, b"authentication") }
}

fn keys() -> &'static Keys {
    KEYS.get_or_init(|| keys_for(b""))
}

fn keystream_xor(keys: &Keys, nonce: &[u8], data: &mut [u8]) {
    for (counter, block) in data.chunks_mut(32).enumerate() {
        let mut mac = HmacSha256::new_from_slice(&keys.enc).expect("any key length");
        mac.update(nonce);
        mac.update(&(counter as u64).to_be_bytes());
        let stream = mac.finalize().into_bytes();
        for (b, s) in block.iter_mut().zip(stream.iter()) {
            *b ^= s;
        }
    }
}

fn tag(keys: &Keys, nonce: &[u8], ciphertext: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(&keys.mac).expect("any key length");
    mac.update(nonce);
    mac.update(ciphertext);
    mac
}

/// Seals `plain` for the store.
pub fn seal(plain: &str) -> String {
    seal_with(keys(), plain)
}

fn seal_with(keys: &Keys, plain: &str) -> String {
    let mut nonce = [0u8; NONCE];
    rand::thread_rng().fill_bytes(&mut nonce);
    let mut body = plain.as_bytes().to_vec();
    keystream_xor(keys, &nonce, &mut body);
    let t = tag(keys, &nonce, &body).finalize().into_bytes();
    let mut out = String::from(PREFIX);
    for b in nonce.iter().chain(&body).chain(&t[..TAG]) {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Opens a sealed value. A value without the prefix was written before secrets were sealed
/// and is taken as it is.
pub fn open(stored: &str) -> Result<String, String> {
    open_with(keys(), stored)
}

fn open_with(keys: &Keys, stored: &str) -> Result<String, String> {
    let Some(hex) = stored.strip_prefix(PREFIX) else { return Ok(stored.to_string()) };
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2).unwrap_or("zz"), 16))
        .collect::<Result<_, _>>()
        .map_err(|_| "a sealed secret is not hex".to_string())?;
    if hex.len() % 2 != 0 || bytes.len() < NONCE + TAG {
        return Err("a sealed secret is truncated".into());
    }
    let (nonce, rest) = bytes.split_at(NONCE);
    let (body, t) = rest.split_at(rest.len() - TAG);
    tag(keys, nonce, body).verify_truncated_left(t).map_err(|_| {
        "a sealed secret does not open with this supervisor-auth secret".to_string()
    })?;
    let mut plain = body.to_vec();
    keystream_xor(keys, nonce, &mut plain);
    String::from_utf8(plain).map_err(|_| "a sealed secret is not UTF-8".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_the_group_secret() {
        let ours = keys_for(b"group secret");
        let theirs = keys_for(b"another group");
        let long = "p".repeat(100);
        for plain in ["", "hunter2", long.as_str()] {
            let stored = seal_with(&ours, plain);
            assert!(stored.starts_with(PREFIX));
            assert!(plain.is_empty() || !stored.contains(plain), "{stored}");
            assert_eq!(open_with(&ours, &stored).unwrap(), plain);
            assert!(open_with(&theirs, &stored).is_err());
        }
        // Two seals of one secret differ (fresh nonces), and a flipped bit is refused.
        let a = seal_with(&ours, "pw");
        assert_ne!(a, seal_with(&ours, "pw"));
        let mut flipped = a.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        assert!(open_with(&ours, std::str::from_utf8(&flipped).unwrap()).is_err());
        assert!(open_with(&ours, "sealed:v1:zz").is_err());
        assert_eq!(open_with(&ours, "legacy-plain").unwrap(), "legacy-plain");
    }
}
