//! HyperLogLog as Redis stores it in a string, so keys move between warden-node and Redis
//! (RDB files, replication) and count the same.
//!
//! The string: a 16-byte header (`HYLL`, encoding byte, 3 unused bytes, the cached cardinality
//! as 8 little-endian bytes whose top bit marks it stale), then the registers: 16384 of 6 bits
//! each, packed from the least significant bit (dense), or runs of equal registers (sparse:
//! ZERO `00xxxxxx`, XZERO `01xxxxxx yyyyyyyy`, VAL `1vvvvvxx`). Elements are hashed with
//! MurmurHash64A (seed 0xadc83b19); the low 14 bits pick the register, the position of the
//! first set bit in the rest is the value. The count is Ertl's estimator, as Redis 7's.
//!
//! Writes follow Redis's own steps (`hllSparseSet`: split the run holding the register, merge
//! equal neighbours, turn dense past `hll-sparse-max-bytes` or a value above 32), so a key
//! holds the same bytes here as in Redis, and a small one stays small.

/// Registers (2^14).
pub const REGISTERS: usize = 1 << 14;
const P: u32 = 14;
const Q: u32 = 64 - P;
const BITS: usize = 6;
const MAX_VALUE: u8 = (1 << BITS) - 1;
const HEADER: usize = 16;
/// The size of a dense string.
pub const DENSE_SIZE: usize = HEADER + (REGISTERS * BITS).div_ceil(8);
const DENSE: u8 = 0;
const SPARSE: u8 = 1;

/// Why a string is not a usable HyperLogLog.
#[derive(Debug, PartialEq, Eq)]
pub enum HllError {
    /// Not one at all (`WRONGTYPE Key is not a valid HyperLogLog string value.`).
    NotHll,
    /// A sparse string whose runs do not add up (`INVALIDOBJ Corrupted HLL object detected`).
    Corrupt,
}

/// The registers of a HyperLogLog, one byte each.
pub struct Registers(pub Vec<u8>);

impl Registers {
    /// All zero: the empty set.
    pub fn new() -> Registers {
        Registers(vec![0; REGISTERS])
    }

    /// Decodes a HyperLogLog string (either encoding).
    pub fn decode(s: &[u8]) -> Result<Registers, HllError> {
        if s.len() < HEADER || &s[..4] != b"HYLL" {
            return Err(HllError::NotHll);
        }
        match s[4] {
            DENSE if s.len() == DENSE_SIZE => {
                Ok(Registers((0..REGISTERS).map(|r| dense_get(&s[HEADER..], r)).collect()))
            }
            SPARSE => decode_sparse(&s[HEADER..]),
            _ => Err(HllError::NotHll),
        }
    }

    /// Takes the larger of each register (PFMERGE, and PFCOUNT over several keys).
    pub fn merge(&mut self, other: &Registers) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a = (*a).max(*b);
        }
    }

    /// The estimated cardinality (Redis's `hllCount`).
    pub fn count(&self) -> u64 {
        let m = REGISTERS as f64;
        let mut histogram = [0u32; 64];
        for &r in &self.0 {
            histogram[r as usize] += 1;
        }
        let mut z = m * tau((m - histogram[Q as usize + 1] as f64) / m);
        for j in (1..=Q as usize).rev() {
            z += histogram[j] as f64;
            z *= 0.5;
        }
        z += m * sigma(histogram[0] as f64 / m);
        // 0.5 / ln 2, as Redis's HLL_ALPHA_INF (a double).
        const ALPHA_INF: f64 = 0.7213475204444817;
        (ALPHA_INF * m * m / z).round() as u64
    }

    /// The dense string, with `cached` as its cardinality (`None`: marked stale).
    pub fn encode_dense(&self, cached: Option<u64>) -> Vec<u8> {
        let mut s = vec![0u8; DENSE_SIZE];
        s[..4].copy_from_slice(b"HYLL");
        s[4] = DENSE;
        set_cached(&mut s, cached);
        for (r, &v) in self.0.iter().enumerate() {
            dense_set(&mut s[HEADER..], r, v);
        }
        s
    }
}

impl Default for Registers {
    fn default() -> Registers {
        Registers::new()
    }
}

/// A new, empty HyperLogLog string (sparse: one XZERO run over every register).
pub fn new_sparse() -> Vec<u8> {
    let mut s = vec![0u8; HEADER];
    s[..4].copy_from_slice(b"HYLL");
    s[4] = SPARSE;
    let run = REGISTERS - 1;
    s.extend_from_slice(&[0x40 | (run >> 8) as u8, (run & 0xff) as u8]);
    s
}

/// True if the string is in the sparse encoding.
pub fn is_sparse(s: &[u8]) -> bool {
    s.get(4) == Some(&SPARSE)
}

/// Converts a (valid) sparse string to the dense encoding, keeping its header's cached count.
pub fn to_dense(s: &[u8]) -> Result<Vec<u8>, HllError> {
    let registers = decode_sparse(&s[HEADER..])?;
    let mut dense = registers.encode_dense(None);
    dense[8..16].copy_from_slice(&s[8..16]);
    Ok(dense)
}

/// What a sparse update did.
#[derive(Debug, PartialEq, Eq)]
pub enum SparseSet {
    /// The register already held as much.
    Unchanged,
    /// Updated in place.
    Updated,
    /// The update needs the dense encoding (a value above 32, or the string would outgrow
    /// `hll-sparse-max-bytes`): the caller converts and sets the register there.
    Promote,
}

const VAL_MAX_VALUE: u8 = 32;
const VAL_MAX_LEN: usize = 4;
const ZERO_MAX_LEN: usize = 64;

fn is_zero(op: u8) -> bool {
    op & 0xc0 == 0
}

fn is_xzero(op: u8) -> bool {
    op & 0xc0 == 0x40
}

fn is_val(op: u8) -> bool {
    op & 0x80 != 0
}

fn val_op(value: u8, len: usize) -> u8 {
    0x80 | ((value - 1) << 2) | (len as u8 - 1)
}

/// The ZERO or XZERO opcode(s) for a run of `len` zero registers.
fn zero_ops(len: usize, out: &mut Vec<u8>) {
    if len > ZERO_MAX_LEN {
        let l = len - 1;
        out.extend_from_slice(&[0x40 | (l >> 8) as u8, (l & 0xff) as u8]);
    } else {
        out.push(len as u8 - 1);
    }
}

/// Registers an opcode at `s[p]` covers, and its size in bytes.
fn op_span(s: &[u8], p: usize) -> (usize, usize) {
    let op = s[p];
    if is_zero(op) {
        ((op & 0x3f) as usize + 1, 1)
    } else if is_val(op) {
        ((op & 0x3) as usize + 1, 1)
    } else {
        let low = s.get(p + 1).copied().unwrap_or(0) as usize;
        ((((op & 0x3f) as usize) << 8 | low) + 1, 2)
    }
}

/// Raises register `index` of a sparse string to `count`, as Redis's `hllSparseSet` does it.
pub fn sparse_set(
    s: &mut crate::db::Sds,
    index: usize,
    count: u8,
    max_bytes: usize,
) -> Result<SparseSet, HllError> {
    if count > VAL_MAX_VALUE {
        return Ok(SparseSet::Promote);
    }
    // Find the opcode covering the register.
    let (mut p, mut first, mut prev) = (HEADER, 0usize, None);
    let (span, oplen) = loop {
        if p >= s.len() {
            return Err(HllError::Corrupt);
        }
        let (span, oplen) = op_span(s, p);
        if index < first + span {
            break (span, oplen);
        }
        prev = Some(p);
        p += oplen;
        first += span;
    };
    let op = s[p];
    if is_val(op) {
        let old = ((op >> 2) & 0x1f) + 1;
        if old >= count {
            return Ok(SparseSet::Unchanged);
        }
    }
    if (is_val(op) || is_zero(op)) && span == 1 {
        s[p] = val_op(count, 1);
    } else {
        // Split the run: what comes before the register, the register, what comes after.
        let last = first + span - 1;
        let mut seq = Vec::with_capacity(5);
        if is_val(op) {
            let value = ((op >> 2) & 0x1f) + 1;
            if index != first {
                seq.push(val_op(value, index - first));
            }
            seq.push(val_op(count, 1));
            if index != last {
                seq.push(val_op(value, last - index));
            }
        } else {
            if index != first {
                zero_ops(index - first, &mut seq);
            }
            seq.push(val_op(count, 1));
            if index != last {
                zero_ops(last - index, &mut seq);
            }
        }
        let grows = seq.len() > oplen;
        if grows && s.len() + seq.len() - oplen > max_bytes {
            return Ok(SparseSet::Promote);
        }
        let tail = s[p + oplen..].to_vec();
        s.truncate(p);
        s.extend_from_slice(&seq);
        s.extend_from_slice(&tail);
    }
    // Merge neighbouring VAL runs of equal value, looking at up to five opcodes from the one
    // before the change.
    let mut q = prev.unwrap_or(HEADER);
    let mut scan = 5;
    while q < s.len() && scan > 0 {
        scan -= 1;
        let op = s[q];
        if is_xzero(op) {
            q += 2;
            continue;
        }
        if is_zero(op) {
            q += 1;
            continue;
        }
        if q + 1 < s.len() && is_val(s[q + 1]) {
            let (v1, v2) = (((op >> 2) & 0x1f) + 1, ((s[q + 1] >> 2) & 0x1f) + 1);
            let len = (op & 0x3) as usize + 1 + (s[q + 1] & 0x3) as usize + 1;
            if v1 == v2 && len <= VAL_MAX_LEN {
                s[q + 1] = val_op(v1, len);
                s.remove(q);
                // Try again from here: the merged run may merge with the next one.
                continue;
            }
        }
        q += 1;
    }
    set_cached(s, None);
    Ok(SparseSet::Updated)
}

/// Sets register `index` of a dense string to `value` if that raises it; true if it did.
pub fn dense_raise(s: &mut [u8], index: usize, value: u8) -> bool {
    let registers = &mut s[HEADER..];
    if dense_get(registers, index) < value {
        dense_set(registers, index, value);
        true
    } else {
        false
    }
}

/// A sparse string's opcodes as PFDEBUG DECODE spells them: `z:<run>` (ZERO), `Z:<run>`
/// (XZERO), `v:<value>,<run>` (VAL), space-separated.
pub fn describe_sparse(s: &[u8]) -> Result<String, HllError> {
    let mut ops = s.get(HEADER..).ok_or(HllError::Corrupt)?;
    let mut words = Vec::new();
    while let Some(&op) = ops.first() {
        match op >> 6 {
            0 => {
                words.push(format!("z:{}", (op & 0x3f) as usize + 1));
                ops = &ops[1..];
            }
            1 => {
                let low = *ops.get(1).ok_or(HllError::Corrupt)? as usize;
                words.push(format!("Z:{}", (((op & 0x3f) as usize) << 8 | low) + 1));
                ops = &ops[2..];
            }
            _ => {
                words.push(format!("v:{},{}", ((op >> 2) & 0x1f) + 1, (op & 3) + 1));
                ops = &ops[1..];
            }
        }
    }
    Ok(words.join(" "))
}

/// The cached cardinality in a HyperLogLog string's header, if valid.
pub fn cached(s: &[u8]) -> Option<u64> {
    let card: [u8; 8] = s.get(8..16)?.try_into().ok()?;
    (card[7] & 0x80 == 0).then(|| u64::from_le_bytes(card))
}

/// Writes (or with `None` invalidates) the cached cardinality.
pub fn set_cached(s: &mut [u8], cached: Option<u64>) {
    match cached {
        Some(card) => s[8..16].copy_from_slice(&card.to_le_bytes()),
        None => s[15] |= 0x80,
    }
}

/// Register `r` of a dense string's registers (the bytes after the header).
pub fn dense_get(regs: &[u8], r: usize) -> u8 {
    let bit = r * BITS;
    let (byte, shift) = (bit / 8, bit % 8);
    let b0 = regs[byte] as u16;
    let b1 = regs.get(byte + 1).copied().unwrap_or(0) as u16;
    (((b0 >> shift) | (b1 << (8 - shift))) & MAX_VALUE as u16) as u8
}

/// Sets register `r` of a dense string's registers to `v` (at most 63).
pub fn dense_set(regs: &mut [u8], r: usize, v: u8) {
    let bit = r * BITS;
    let (byte, shift) = (bit / 8, bit % 8);
    let v = v as u16;
    regs[byte] &= !((MAX_VALUE as u16) << shift) as u8;
    regs[byte] |= (v << shift) as u8;
    if let Some(next) = regs.get_mut(byte + 1) {
        *next &= !((MAX_VALUE as u16) >> (8 - shift)) as u8;
        *next |= (v >> (8 - shift)) as u8;
    }
}

fn decode_sparse(mut ops: &[u8]) -> Result<Registers, HllError> {
    let mut regs = Vec::with_capacity(REGISTERS);
    while let Some(&op) = ops.first() {
        let (value, run, used) = match op >> 6 {
            0 => (0u8, (op & 0x3f) as usize + 1, 1),
            1 => {
                let low = *ops.get(1).ok_or(HllError::Corrupt)? as usize;
                (0, (((op & 0x3f) as usize) << 8 | low) + 1, 2)
            }
            _ => (((op >> 2) & 0x1f) + 1, (op & 0x3) as usize + 1, 1),
        };
        if regs.len() + run > REGISTERS {
            return Err(HllError::Corrupt);
        }
        regs.resize(regs.len() + run, value);
        ops = &ops[used..];
    }
    if regs.len() != REGISTERS {
        return Err(HllError::Corrupt);
    }
    Ok(Registers(regs))
}

/// The register an element falls in and the value it sets (Redis's `hllPatLen`).
pub fn element_pattern(element: &[u8]) -> (usize, u8) {
    let hash = murmur64a(element, 0xadc83b19);
    let index = (hash & (REGISTERS as u64 - 1)) as usize;
    let rest = (hash >> P) | (1u64 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

/// MurmurHash64A, little-endian, as Redis hashes HyperLogLog elements.
fn murmur64a(key: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4a7935bd1e995;
    const R: u32 = 47;
    let mut h = seed ^ (key.len() as u64).wrapping_mul(M);
    let mut chunks = key.chunks_exact(8);
    for chunk in &mut chunks {
        let mut k = u64::from_le_bytes(chunk.try_into().expect("8-byte chunk"));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate().rev() {
            h ^= (b as u64) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let previous = z;
        z += x * y;
        y += y;
        if previous == z {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let previous = z;
        y *= 0.5;
        z -= (1.0 - x).powi(2) * y;
        if previous == z {
            return z / 3.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_registers_round_trip() {
        let mut regs = Registers::new();
        for (i, r) in regs.0.iter_mut().enumerate() {
            *r = (i % 64) as u8;
        }
        let s = regs.encode_dense(Some(7));
        assert_eq!(s.len(), DENSE_SIZE);
        assert_eq!(cached(&s), Some(7));
        assert_eq!(Registers::decode(&s).unwrap().0, regs.0);
    }

    /// A string Redis 7.0.15 wrote after `PFADD h a b c` (sparse) decodes and counts 3.
    #[test]
    fn reads_redis_sparse_strings() {
        let s = b"HYLL\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80\x60\xf3\x80\x50\xb1\x84\x4b\xfb\x80\x42\x5a";
        let regs = Registers::decode(s).unwrap();
        assert_eq!(regs.count(), 3);
        assert_eq!(cached(s), None);
        let mut mine = Registers::new();
        for e in [b"a", b"b", b"c"] {
            let (index, value) = element_pattern(e);
            mine.0[index] = mine.0[index].max(value);
        }
        assert_eq!(mine.0, regs.0, "our hashing puts a, b, c where Redis put them");
    }
}
