//! LZF, the compression RDB strings use (`rdbcompression yes`), written from the format.
//!
//! # Format
//!
//! A compressed block is a sequence of instructions, each starting with a control byte `c`:
//!
//! - `000LLLLL` (`c < 32`): a literal run; the next `L + 1` bytes (1 to 32) are copied as is.
//! - `LLLooooo oooooooo` (`L` in 1..=6): a back-reference of `L + 2` bytes (3 to 8) starting
//!   `((c & 0x1F) << 8 | next) + 1` bytes back in the output (1 to 8192).
//! - `111ooooo LLLLLLLL oooooooo`: the same with a length of `7 + LLLLLLLL + 2` (9 to 264).
//!
//! A back-reference may overlap the bytes it produces (`off < len` repeats a pattern), so it is
//! copied byte by byte. The block carries no length: RDB stores the compressed and the original
//! length before it, and a valid block decodes to exactly the original length.
//!
//! # Compressor
//!
//! [`Compressor`] reproduces liblzf 3.6 (the library Debian's `redis-server` links) in its
//! default configuration: a 2^16-slot hash table of positions keyed by a multiplicative hash of
//! the next three bytes (and, as in liblzf, the byte before them), `VERY_FAST` re-hashing of
//! two positions after each match, and the same output-budget checks, so it gives up on exactly
//! the inputs where Redis would store a string raw, and produces the same bytes when its table
//! holds what liblzf's holds (see [`Compressor`] for that one subtlety).
//!
//! # Decompressor
//!
//! [`decompress`] checks every read against the input and every write against the declared
//! length (liblzf's `CHECK_INPUT`), so hostile input yields an error, never a panic or an
//! out-of-bounds access.

/// log2 of the hash table size (liblzf's `HLOG`).
const HLOG: u32 = 16;
const HSIZE: usize = 1 << HLOG;
/// Longest literal run.
const MAX_LIT: usize = 1 << 5;
/// Farthest back-reference.
const MAX_OFF: usize = 1 << 13;
/// Longest back-reference.
const MAX_REF: usize = (1 << 8) + (1 << 3);

/// The most output one compressed byte can stand for: a 3-byte back-reference yields 264 bytes.
pub const MAX_EXPANSION: u64 = 88;

/// Why a compressed block could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LzfError {
    /// An instruction needs more input than the block holds.
    TruncatedInput,
    /// The output would exceed the declared length.
    OutputOverflow,
    /// A back-reference points before the start of the output.
    BadReference,
    /// The block decoded to fewer bytes than declared.
    ShortOutput,
}

impl std::fmt::Display for LzfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LzfError::TruncatedInput => "an LZF instruction runs past the compressed data",
            LzfError::OutputOverflow => "LZF data decodes to more than the declared length",
            LzfError::BadReference => "an LZF back-reference points before the start",
            LzfError::ShortOutput => "LZF data decodes to less than the declared length",
        })
    }
}

/// Decodes `input` into exactly `out_len` bytes.
pub fn decompress(input: &[u8], out_len: usize) -> Result<Vec<u8>, LzfError> {
    let mut out = Vec::new();
    decompress_into(input, out_len, &mut out)?;
    Ok(out)
}

/// Decodes `input` into `out` (cleared first), which must end up exactly `out_len` bytes long.
/// The caller bounds `out_len` (see [`MAX_EXPANSION`]): it is reserved up front.
pub fn decompress_into(input: &[u8], out_len: usize, out: &mut Vec<u8>) -> Result<(), LzfError> {
    out.clear();
    out.reserve(out_len);
    let mut ip = 0;
    while ip < input.len() {
        let ctrl = input[ip] as usize;
        ip += 1;
        if ctrl < 32 {
            let len = ctrl + 1;
            if out.len() + len > out_len {
                return Err(LzfError::OutputOverflow);
            }
            let lit = input.get(ip..ip + len).ok_or(LzfError::TruncatedInput)?;
            out.extend_from_slice(lit);
            ip += len;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                len += *input.get(ip).ok_or(LzfError::TruncatedInput)? as usize;
                ip += 1;
            }
            let low = *input.get(ip).ok_or(LzfError::TruncatedInput)? as usize;
            ip += 1;
            let back = ((ctrl & 0x1F) << 8) + low + 1;
            let len = len + 2;
            if back > out.len() {
                return Err(LzfError::BadReference);
            }
            if out.len() + len > out_len {
                return Err(LzfError::OutputOverflow);
            }
            let start = out.len() - back;
            if back >= len {
                out.extend_from_within(start..start + len);
            } else {
                for i in 0..len {
                    let b = out[start + i];
                    out.push(b);
                }
            }
        }
    }
    if out.len() != out_len {
        return Err(LzfError::ShortOutput);
    }
    Ok(())
}

/// An LZF compressor with its hash table.
///
/// liblzf keeps its table on the stack and never clears it, so positions left by the previous
/// call (as offsets into *that* input) are seen by the next one, and can yield matches a clean
/// table would not (always valid ones: the bytes are compared). Redis compresses the nodes of a
/// list one after the other, so its output depends on that history. We keep the table across
/// calls in the same way, and start from an empty one at each [`Compressor::reset`] (one DUMP
/// payload, one RDB file), which makes our output deterministic for a given payload or file and
/// identical to Redis's whenever Redis started from the same state.
pub struct Compressor {
    /// Slot → offset into the input of the call that last wrote it (0: nothing useful).
    table: Vec<u32>,
    /// The table holds offsets from earlier calls.
    used: bool,
}

impl Default for Compressor {
    fn default() -> Self {
        Compressor::new()
    }
}

#[inline]
fn first(input: &[u8], ip: usize) -> u32 {
    (input[ip] as u32) << 8 | input[ip + 1] as u32
}

#[inline]
fn next(v: u32, input: &[u8], ip: usize) -> u32 {
    v << 8 | input[ip + 2] as u32
}

#[inline]
fn idx(h: u32) -> usize {
    ((h.wrapping_mul(0x1E35_A7BD) >> (32 - HLOG - 8)) as usize) & (HSIZE - 1)
}

impl Compressor {
    /// A compressor with an empty table.
    pub fn new() -> Compressor {
        Compressor { table: vec![0; HSIZE], used: false }
    }

    /// Forgets the history of earlier calls (done lazily, on the next compression).
    pub fn reset(&mut self) {
        if self.used {
            self.table.iter_mut().for_each(|s| *s = 0);
            self.used = false;
        }
    }

    /// Compresses `input` into `out` (cleared first) if the result fits in `max_out` bytes, as
    /// `lzf_compress(in, len, out, max_out)`; returns false (and leaves `out` unspecified) when
    /// it does not, or when `input` or `max_out` is empty.
    pub fn compress(&mut self, input: &[u8], max_out: usize, out: &mut Vec<u8>) -> bool {
        out.clear();
        if input.is_empty() || max_out == 0 || input.len() > u32::MAX as usize {
            return false;
        }
        self.used = true;
        let in_end = input.len();
        // `op` is liblzf's output pointer as an index; `out` is written through `buf`, with a
        // few bytes of slack so that the placeholder writes liblzf makes past the budget land.
        out.resize(max_out + 4, 0);
        let buf = out.as_mut_slice();
        let out_end = max_out;
        let mut op: usize = 1; // start a run: its control byte goes at op - lit - 1
        let mut lit: usize = 0;
        let mut ip: usize = 0;
        let mut hval = if in_end >= 2 { first(input, 0) } else { 0 };
        while in_end > 2 && ip < in_end - 2 {
            hval = next(hval, input, ip);
            let slot = idx(hval);
            // liblzf: `ref > in_data && ip - ref - 1 < MAX_OFF` (unsigned), then the bytes.
            let r = self.table[slot] as usize;
            self.table[slot] = ip as u32;
            let matched = r > 0
                && r < ip
                && ip - r - 1 < MAX_OFF
                && input[r + 2] == input[ip + 2]
                && input[r] == input[ip]
                && input[r + 1] == input[ip + 1];
            if matched {
                let off = ip - r - 1;
                let mut len = 2;
                let maxlen = (in_end - ip - len).min(MAX_REF);
                if op + 3 + 1 >= out_end && op - (lit == 0) as usize + 3 + 1 >= out_end {
                    return false;
                }
                buf[op - lit - 1] = (lit as u8).wrapping_sub(1); // stop the run
                op -= (lit == 0) as usize; // undo the run if it is empty
                if maxlen > 16 {
                    // liblzf's unrolled loop compares 16 bytes before checking `maxlen`.
                    let mut unrolled = 0;
                    while unrolled < 16 {
                        len += 1;
                        if input[r + len] != input[ip + len] {
                            break;
                        }
                        unrolled += 1;
                    }
                    if unrolled == 16 {
                        len = extend(input, r, ip, len, maxlen);
                    }
                } else {
                    len = extend(input, r, ip, len, maxlen);
                }
                len -= 2; // now the encoded length
                ip += 1;
                if len < 7 {
                    buf[op] = ((off >> 8) + (len << 5)) as u8;
                    op += 1;
                } else {
                    buf[op] = ((off >> 8) + (7 << 5)) as u8;
                    buf[op + 1] = (len - 7) as u8;
                    op += 2;
                }
                buf[op] = off as u8;
                op += 1;
                lit = 0;
                op += 1; // start a run
                ip += len + 1;
                if ip >= in_end - 2 {
                    break;
                }
                // VERY_FAST: hash the last two positions of the match.
                ip -= 2;
                hval = first(input, ip);
                hval = next(hval, input, ip);
                self.table[idx(hval)] = ip as u32;
                ip += 1;
                hval = next(hval, input, ip);
                self.table[idx(hval)] = ip as u32;
                ip += 1;
            } else {
                if op >= out_end {
                    return false;
                }
                lit += 1;
                buf[op] = input[ip];
                op += 1;
                ip += 1;
                if lit == MAX_LIT {
                    buf[op - lit - 1] = (lit - 1) as u8;
                    lit = 0;
                    op += 1;
                }
            }
        }
        if op + 3 > out_end {
            return false;
        }
        while ip < in_end {
            lit += 1;
            buf[op] = input[ip];
            op += 1;
            ip += 1;
            if lit == MAX_LIT {
                buf[op - lit - 1] = (lit - 1) as u8;
                lit = 0;
                op += 1;
            }
        }
        buf[op - lit - 1] = (lit as u8).wrapping_sub(1);
        op -= (lit == 0) as usize;
        out.truncate(op);
        op <= max_out
    }
}

/// liblzf's `do len++; while (len < maxlen && ref[len] == ip[len]);`
#[inline]
fn extend(input: &[u8], r: usize, ip: usize, mut len: usize, maxlen: usize) -> usize {
    loop {
        len += 1;
        if !(len < maxlen && input[r + len] == input[ip + len]) {
            return len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(data: &[u8]) -> Option<Vec<u8>> {
        let mut c = Compressor::new();
        let mut out = Vec::new();
        if !c.compress(data, data.len().saturating_sub(4).max(1), &mut out) {
            return None;
        }
        assert_eq!(decompress(&out, data.len()).expect("own output decodes"), data);
        Some(out)
    }

    #[test]
    fn reference_example_decodes() {
        // 100 × "a", as Redis 7.0.15 writes it (replication reference §4.3).
        let block = [0x01, 0x61, 0x61, 0xE0, 0x57, 0x00, 0x01, 0x61, 0x61];
        assert_eq!(decompress(&block, 100).expect("valid"), vec![b'a'; 100]);
        assert_eq!(roundtrip(&[b'a'; 100]).expect("compressible"), block);
    }

    #[test]
    fn compresses_and_round_trips() {
        let text = b"hello world, hello world, hello world, hello world, hello!".repeat(20);
        let out = roundtrip(&text).expect("repetitive text compresses");
        assert!(out.len() < text.len() / 5);
        let mut x = 0x1234_5678u32;
        let noise: Vec<u8> = (0..5000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        assert!(roundtrip(&noise).is_none(), "random bytes do not shrink by 4 bytes");
        for len in 1..80 {
            let data: Vec<u8> = (0..len).map(|i| b"abcab"[i % 5]).collect();
            roundtrip(&data);
        }
    }

    #[test]
    fn hostile_blocks_are_errors() {
        assert_eq!(decompress(&[0x05, b'a'], 6), Err(LzfError::TruncatedInput));
        assert_eq!(decompress(&[0x00, b'a', 0x20, 0x05], 10), Err(LzfError::BadReference));
        assert_eq!(decompress(&[0x00, b'a', 0x20, 0x00], 3), Err(LzfError::OutputOverflow));
        assert_eq!(decompress(&[0x00, b'a'], 2), Err(LzfError::ShortOutput));
        assert_eq!(decompress(&[0x00, b'a', 0xE0], 100), Err(LzfError::TruncatedInput));
        assert_eq!(decompress(&[], 0), Ok(Vec::new()));
    }
}
