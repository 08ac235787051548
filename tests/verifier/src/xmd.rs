//! `expand_message_xmd` (RFC 9380 section 5.3.1) instantiated with SHA-256.
//!
//! Written out here rather than taken from `elliptic_curve::hash2curve` so that the
//! RFC 9591 challenge computation in this crate shares no hashing code with the frost
//! crates (which use that module). It is checked against RFC 9380 Appendix K.1.

use sha2::{Digest, Sha256};

/// SHA-256 output size (`b_in_bytes`).
const B_IN_BYTES: usize = 32;
/// SHA-256 block size (`s_in_bytes`), the length of `Z_pad`.
const S_IN_BYTES: usize = 64;
/// Prefix for hashing a domain separation tag that is too long (RFC 9380 section 5.3.3).
const OVERSIZE_DST_PREFIX: &[u8] = b"H2C-OVERSIZE-DST-";

/// Produces `N` uniformly random bytes from the concatenation of `msg` under the
/// concatenation of `dst`.
///
/// Message and tag are taken as lists of parts so callers can hash
/// `encode(R) || encode(PK) || msg` without first copying them into one buffer.
///
/// The RFC's abort conditions are dealt with so that this function is total:
/// `N` is bounded at compile time (`ell <= 255`, `len_in_bytes <= 65535`), and a tag longer
/// than 255 bytes is replaced by its hash as section 5.3.3 prescribes.
pub(crate) fn expand_message_xmd<const N: usize>(msg: &[&[u8]], dst: &[&[u8]]) -> [u8; N] {
    const {
        assert!(N > 0 && N <= 255 * B_IN_BYTES && N <= u16::MAX as usize);
    }

    // Section 5.3.3: a DST over 255 bytes is replaced by H("H2C-OVERSIZE-DST-" || DST).
    let dst_len: usize = dst.iter().map(|part| part.len()).sum();
    let hashed_dst: [u8; B_IN_BYTES];
    let hashed_parts: [&[u8]; 1];
    let dst_parts: &[&[u8]] = if dst_len > 255 {
        let mut h = Sha256::new();
        h.update(OVERSIZE_DST_PREFIX);
        for part in dst {
            h.update(part);
        }
        hashed_dst = h.finalize().into();
        hashed_parts = [&hashed_dst];
        &hashed_parts
    } else {
        dst
    };
    // Fits in one byte: either <= 255 by the branch above, or exactly 32.
    let dst_len = dst_parts.iter().map(|part| part.len()).sum::<usize>() as u8;

    let dst_prime = |h: &mut Sha256| {
        for part in dst_parts {
            h.update(part);
        }
        h.update([dst_len]);
    };

    let ell = N.div_ceil(B_IN_BYTES);
    // Lossless: N <= 65535 is asserted at compile time above.
    let l_i_b_str = (N as u16).to_be_bytes();

    // b_0 = H(Z_pad || msg || l_i_b_str || I2OSP(0, 1) || DST_prime)
    let mut h = Sha256::new();
    h.update([0u8; S_IN_BYTES]);
    for part in msg {
        h.update(part);
    }
    h.update(l_i_b_str);
    h.update([0u8]);
    dst_prime(&mut h);
    let b_0 = h.finalize();

    // b_1 = H(b_0 || I2OSP(1, 1) || DST_prime)
    // b_i = H(strxor(b_0, b_(i-1)) || I2OSP(i, 1) || DST_prime)
    let mut out = [0u8; N];
    let mut b_prev = [0u8; B_IN_BYTES];
    for (i, chunk) in (1..=ell).zip(out.chunks_mut(B_IN_BYTES)) {
        let mut input = [0u8; B_IN_BYTES];
        for (x, (b0, prev)) in input.iter_mut().zip(b_0.iter().zip(b_prev.iter())) {
            // For i = 1, b_prev is all zeroes and this is just b_0.
            *x = b0 ^ prev;
        }
        let mut h = Sha256::new();
        h.update(input);
        // Lossless: ell <= 255 is asserted at compile time above.
        h.update([i as u8]);
        dst_prime(&mut h);
        b_prev.copy_from_slice(&h.finalize());
        chunk.copy_from_slice(&b_prev[..chunk.len()]);
    }
    out
}
