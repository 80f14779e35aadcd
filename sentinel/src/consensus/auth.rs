//! Peer authentication between supervisors: a mutual HMAC-SHA256 challenge over fresh nonces,
//! keyed by the shared `supervisor-auth` secret. The secret itself never crosses the wire and
//! is never logged; each side proves it holds it by answering the other's random challenge,
//! and MACs are compared in constant time. No Raft byte is read from a peer before it passed.
//!
//! ```text
//! connector → acceptor   "WRDNAUTH" version:u32 id:u64 nonce_c[32]
//! acceptor  → connector  nonce_a[32] mac_a[32]   mac_a = HMAC(secret, "acceptor"  nonce_c nonce_a id)
//! connector → acceptor   mac_c[32]               mac_c = HMAC(secret, "connector" nonce_a nonce_c id)
//! ```

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// First bytes of a connector's hello.
pub const MAGIC: &[u8; 8] = b"WRDNAUTH";
/// The handshake version.
pub const VERSION: u32 = 1;
/// Length of the connector's hello.
pub const HELLO_LEN: usize = 8 + 4 + 8 + 32;

/// The shared secret. Its `Debug` form hides the value so it cannot leak into logs.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps the configured secret.
    pub fn new(secret: &str) -> Secret {
        Secret(secret.as_bytes().to_vec())
    }

    fn mac(&self, role: &[u8], first: &[u8; 32], second: &[u8; 32], id: u64) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC accepts keys of any length");
        mac.update(role);
        mac.update(first);
        mac.update(second);
        mac.update(&id.to_le_bytes());
        mac
    }

    /// The acceptor's proof for a connector's nonce.
    pub fn acceptor_proof(&self, nonce_c: &[u8; 32], nonce_a: &[u8; 32], id: u64) -> [u8; 32] {
        self.mac(b"acceptor", nonce_c, nonce_a, id).finalize().into_bytes().into()
    }

    /// The connector's proof for the acceptor's nonce.
    pub fn connector_proof(&self, nonce_a: &[u8; 32], nonce_c: &[u8; 32], id: u64) -> [u8; 32] {
        self.mac(b"connector", nonce_a, nonce_c, id).finalize().into_bytes().into()
    }

    /// Checks an acceptor's proof in constant time.
    pub fn verify_acceptor(
        &self,
        nonce_c: &[u8; 32],
        nonce_a: &[u8; 32],
        id: u64,
        proof: &[u8],
    ) -> bool {
        self.mac(b"acceptor", nonce_c, nonce_a, id).verify_slice(proof).is_ok()
    }

    /// Checks a connector's proof in constant time.
    pub fn verify_connector(
        &self,
        nonce_a: &[u8; 32],
        nonce_c: &[u8; 32],
        id: u64,
        proof: &[u8],
    ) -> bool {
        self.mac(b"connector", nonce_a, nonce_c, id).verify_slice(proof).is_ok()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<hidden>)")
    }
}

/// Encodes a connector's hello.
pub fn hello(id: u64, nonce: &[u8; 32]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(nonce);
    out
}

/// Decodes a connector's hello into its claimed id and nonce.
pub fn parse_hello(bytes: &[u8; HELLO_LEN]) -> Result<(u64, [u8; 32]), &'static str> {
    if &bytes[..8] != MAGIC {
        return Err("not a warden supervisor (bad handshake magic)");
    }
    if bytes[8..12] != VERSION.to_le_bytes() {
        return Err("unsupported handshake version");
    }
    let id = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
    let nonce: [u8; 32] = bytes[20..52].try_into().expect("32 bytes");
    Ok((id, nonce))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_prove_the_secret_and_a_wrong_one_fails() {
        let (a, b, wrong) = (Secret::new("s3cret"), Secret::new("s3cret"), Secret::new("guess"));
        let (nc, na) = ([1u8; 32], [2u8; 32]);
        let pa = a.acceptor_proof(&nc, &na, 7);
        assert!(b.verify_acceptor(&nc, &na, 7, &pa));
        assert!(!b.verify_acceptor(&nc, &na, 8, &pa), "bound to the claimed id");
        assert!(!wrong.verify_acceptor(&nc, &na, 7, &pa));
        let pc = b.connector_proof(&na, &nc, 7);
        assert!(a.verify_connector(&na, &nc, 7, &pc));
        assert!(!a.verify_acceptor(&nc, &na, 7, &pc), "roles are not interchangeable");
        assert!(!format!("{a:?}").contains("s3cret"));
    }

    #[test]
    fn hello_round_trip_and_garbage() {
        let h: [u8; HELLO_LEN] = hello(3, &[9; 32]).try_into().unwrap();
        assert_eq!(parse_hello(&h).unwrap(), (3, [9; 32]));
        assert!(parse_hello(&[0; HELLO_LEN]).is_err());
    }
}
