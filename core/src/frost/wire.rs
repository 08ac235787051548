//! How a signer's nonce commitments travel between keyshard nodes.
//!
//! RFC 9591 requires every party to validate each commitment it receives: a point of the
//! prime-order subgroup, not the identity. For the SEC1 suites (cofactor 1) that is decoding
//! itself, and the wire carries frost's own encoding. Ed25519's group has cofactor 8, and
//! frost-ed25519's decoder checks subgroup membership with a full scalar multiplication
//! (`is_torsion_free`, [ℓ]P): at 3-of-5 that is twelve scalar multiplications per signature, about
//! half of all signing work, which bare in-memory frost never does.
//!
//! Ed25519 commitments therefore travel **as an eighth**: for a commitment `D = d·B` the signer
//! sends `Q = (d·8⁻¹ mod ℓ)·B` (a fixed-base multiplication, cheap), and a receiver decodes any
//! canonically encoded curve point `Q` and takes `D = [8]Q` (three doublings). `[8]Q` lies in the
//! prime-order subgroup for *every* curve point `Q`, because the curve group is ℤ/ℓ × ℤ/8; so the
//! receiver holds a validated element without the scalar multiplication, and a sender gains
//! nothing by choosing `Q` freely: any `D'` of the subgroup it could send anyway, and a torsion
//! part of `Q` vanishes. The identity (`[8]Q = 0`, i.e. `Q` of small order) is refused. The
//! protocol itself is unchanged: binding factors, the group commitment and the signature are
//! computed from `D` exactly as RFC 9591 says; only the encoding on keyshard's own wire differs.

use frost_core::keys::SigningShare;
use frost_core::round1::{self, Nonce, NonceCommitment, SigningCommitments, SigningNonces};
use frost_core::Ciphersuite;
use zeroize::Zeroize;

use crate::rng::CoreRng;

/// A suite's nonce commitments: how they are computed and how they travel on keyshard's wire.
pub trait CommitmentWire: Ciphersuite {
    /// The exact byte length of one encoded commitment element.
    const ELEMENT_LEN: usize;

    /// Draws this signer's nonce pair from `secret` and `rng` (hedged as frost's `round1::commit`:
    /// each nonce is `H3(random || secret)`), and returns the nonces with the wire encodings of
    /// their commitments, hiding then binding.
    fn commit(
        secret: &SigningShare<Self>,
        rng: &mut CoreRng,
    ) -> Result<(SigningNonces<Self>, [Vec<u8>; 2]), String>;

    /// The validated commitment `bytes` encode (a prime-order, non-identity element; each
    /// accepted wire value has exactly one accepted encoding), or `None`.
    fn element_from_wire(bytes: &[u8]) -> Option<NonceCommitment<Self>>;
}

/// frost's own encoding of both commitments.
fn frost_encoded<C: Ciphersuite>(nonces: &SigningNonces<C>) -> Result<[Vec<u8>; 2], String> {
    let c = nonces.commitments();
    Ok([
        c.hiding().serialize().map_err(|e| e.to_string())?,
        c.binding().serialize().map_err(|e| e.to_string())?,
    ])
}

impl CommitmentWire for frost_p256::P256Sha256 {
    const ELEMENT_LEN: usize = 33;

    /// frost's `round1::commit` as it is (p256 has no precomputed generator tables).
    fn commit(
        secret: &SigningShare<Self>,
        rng: &mut CoreRng,
    ) -> Result<(SigningNonces<Self>, [Vec<u8>; 2]), String> {
        let (nonces, _) = round1::commit(secret, rng);
        let wire = frost_encoded(&nonces)?;
        Ok((nonces, wire))
    }

    fn element_from_wire(bytes: &[u8]) -> Option<NonceCommitment<Self>> {
        NonceCommitment::deserialize(bytes).ok()
    }
}

/// secp256k1 (plain and Taproot): the same nonces as frost's `round1::commit` from the same RNG
/// state, with the commitments computed by k256's precomputed-table `mul_by_generator` instead of
/// frost's generic `generator() * scalar`; frost's own encoding on the wire.
macro_rules! secp256k1_commitments {
    ($suite:ty) => {
        impl CommitmentWire for $suite {
            const ELEMENT_LEN: usize = 33;

            fn commit(
                secret: &SigningShare<Self>,
                rng: &mut CoreRng,
            ) -> Result<(SigningNonces<Self>, [Vec<u8>; 2]), String> {
                use k256::elliptic_curve::ops::MulByGenerator;
                let hiding = Nonce::<Self>::new(secret, rng);
                let binding = Nonce::<Self>::new(secret, rng);
                let commit = |nonce: &Nonce<Self>| {
                    let mut scalar = nonce.to_scalar();
                    let point = k256::ProjectivePoint::mul_by_generator(&scalar);
                    scalar.zeroize();
                    NonceCommitment::new(point)
                };
                let commitments = SigningCommitments::new(commit(&hiding), commit(&binding));
                let nonces =
                    SigningNonces::from_nonces_and_commitments(hiding, binding, commitments);
                let wire = frost_encoded(&nonces)?;
                Ok((nonces, wire))
            }

            fn element_from_wire(bytes: &[u8]) -> Option<NonceCommitment<Self>> {
                NonceCommitment::deserialize(bytes).ok()
            }
        }
    };
}

secp256k1_commitments!(frost_secp256k1::Secp256K1Sha256);
secp256k1_commitments!(frost_secp256k1_tr::Secp256K1Sha256TR);

impl CommitmentWire for frost_ed25519::Ed25519Sha512 {
    const ELEMENT_LEN: usize = 32;

    /// Each nonce is drawn as an eighth `e` (hedged as frost does); the nonce is `d = 8e`, its
    /// commitment `D = [8]Q` with `Q = e·B` from curve25519-dalek's precomputed basepoint table,
    /// and `Q` is what travels.
    fn commit(
        secret: &SigningShare<Self>,
        rng: &mut CoreRng,
    ) -> Result<(SigningNonces<Self>, [Vec<u8>; 2]), String> {
        use curve25519_dalek::{EdwardsPoint, Scalar};
        let eight = Scalar::from(8u8);
        let mut draw = || {
            let eighth_nonce = Nonce::<Self>::new(secret, rng);
            let mut eighth = eighth_nonce.to_scalar();
            let q = EdwardsPoint::mul_base(&eighth);
            let mut d = eighth * eight;
            let nonce = Nonce::<Self>::from_scalar(d);
            eighth.zeroize();
            d.zeroize();
            (nonce, NonceCommitment::new(q.mul_by_cofactor()), q)
        };
        let (hiding, hiding_commitment, hiding_q) = draw();
        let (binding, binding_commitment, binding_q) = draw();
        let commitments = SigningCommitments::new(hiding_commitment, binding_commitment);
        let nonces = SigningNonces::from_nonces_and_commitments(hiding, binding, commitments);
        let wire = [
            hiding_q.compress().to_bytes().to_vec(),
            binding_q.compress().to_bytes().to_vec(),
        ];
        Ok((nonces, wire))
    }

    fn element_from_wire(bytes: &[u8]) -> Option<NonceCommitment<Self>> {
        use curve25519_dalek::edwards::CompressedEdwardsY;
        use curve25519_dalek::traits::IsIdentity;
        let bytes: [u8; 32] = bytes.try_into().ok()?;
        if !y_is_canonical(&bytes) {
            return None;
        }
        let eighth = CompressedEdwardsY(bytes).decompress()?;
        // The sign bit of x = 0 (y = ±1) has one canonical value; both such points have small
        // order and are refused below, whatever the sign bit says.
        let point = eighth.mul_by_cofactor();
        if point.is_identity() {
            return None;
        }
        Some(NonceCommitment::new(point))
    }
}

/// Whether the y coordinate (the low 255 bits, little-endian) is below p = 2^255 − 19: curve25519-
/// dalek reduces y ≥ p silently, which would give one point 2 encodings.
fn y_is_canonical(bytes: &[u8; 32]) -> bool {
    let top = bytes[31] & 0x7f;
    // y ≥ p exactly when the high 250 bits are all ones and the low byte is ≥ 0xed.
    !(top == 0x7f && bytes[1..31].iter().all(|b| *b == 0xff) && bytes[0] >= 0xed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frost::testkit::{for_each_suite, trusted_dealer};
    use crate::rng::Seed;
    use curve25519_dalek::constants::EIGHT_TORSION;
    use curve25519_dalek::edwards::CompressedEdwardsY;
    use curve25519_dalek::{EdwardsPoint, Scalar};
    use frost_core::Group;
    use frost_ed25519::Ed25519Sha512 as E;
    use rand_core::RngCore;

    fn share<C: Ciphersuite>(seed: u64) -> SigningShare<C> {
        let (kps, _) = trusted_dealer::<C>(2, 3, seed);
        *kps.values().next().unwrap().signing_share()
    }

    fn element_len_is_frosts<C: CommitmentWire>() {
        let g = <C::Group as Group>::generator();
        let encoded = <C::Group as Group>::serialize(&g).unwrap();
        assert_eq!(encoded.as_ref().len(), C::ELEMENT_LEN, "{}", C::ID);
    }

    #[test]
    fn element_lengths_match_frost() {
        for_each_suite!(element_len_is_frosts);
    }

    /// The commitments are exactly frost's for the same nonces, and the wire decodes to them.
    fn commitments_are_frosts_and_decode<C: CommitmentWire>() {
        for seed in 0..20 {
            let (nonces, wire) =
                C::commit(&share::<C>(seed), &mut Seed::from_u64(seed).rng()).unwrap();
            let by_frost = SigningNonces::from_nonces(*nonces.hiding(), *nonces.binding());
            assert!(
                by_frost == nonces,
                "{}: commitments differ from G * nonce",
                C::ID
            );
            let c = nonces.commitments();
            for (bytes, commitment) in wire.iter().zip([c.hiding(), c.binding()]) {
                assert_eq!(bytes.len(), C::ELEMENT_LEN);
                assert_eq!(
                    C::element_from_wire(bytes).as_ref(),
                    Some(commitment),
                    "{}",
                    C::ID
                );
            }
        }
    }

    #[test]
    fn every_suite_commits_like_frost_and_decodes_what_it_sends() {
        for_each_suite!(commitments_are_frosts_and_decode);
    }

    /// secp256k1's faster commitments come from the very nonces frost would draw.
    fn same_nonces_as_round1_commit<C: CommitmentWire>() {
        for seed in 0..5 {
            let ours = C::commit(&share::<C>(seed), &mut Seed::from_u64(seed).rng())
                .unwrap()
                .0;
            let frosts = round1::commit(&share::<C>(seed), &mut Seed::from_u64(seed).rng()).0;
            assert!(ours == frosts, "{}", C::ID);
        }
    }

    #[test]
    fn sec1_suites_draw_frosts_nonces() {
        same_nonces_as_round1_commit::<frost_secp256k1::Secp256K1Sha256>();
        same_nonces_as_round1_commit::<frost_secp256k1_tr::Secp256K1Sha256TR>();
        same_nonces_as_round1_commit::<frost_p256::P256Sha256>();
    }

    /// The slow reference: decompress, insist on the one canonical encoding by re-compressing,
    /// multiply by the cofactor, and let frost-ed25519's own decoder (identity and full
    /// [ℓ]P subgroup check) judge the result.
    fn reference(bytes: &[u8; 32]) -> Option<NonceCommitment<E>> {
        let q = CompressedEdwardsY(*bytes).decompress()?;
        if q.compress().to_bytes() != *bytes {
            return None;
        }
        NonceCommitment::deserialize(q.mul_by_cofactor().compress().as_bytes()).ok()
    }

    #[test]
    fn ed25519_wire_decoding_matches_the_slow_reference() {
        let mut rng = Seed::from_u64(3).rng();
        let mut accepted = 0;
        let mut cases: Vec<[u8; 32]> = (0..3000)
            .map(|_| {
                let mut b = [0u8; 32];
                rng.fill_bytes(&mut b);
                b
            })
            .collect();
        // Every non-canonical y (y in [p, 2^255)) with either sign bit, the small-order points
        // with either sign bit, and honest points plus each torsion point.
        for k in 0u8..19 {
            let mut y = [0xffu8; 32];
            y[0] = 0xed + k;
            y[31] = 0x7f;
            cases.push(y);
            y[31] = 0xff;
            cases.push(y);
        }
        for t in EIGHT_TORSION {
            let mut b = t.compress().to_bytes();
            cases.push(b);
            b[31] ^= 0x80;
            cases.push(b);
            let honest = EdwardsPoint::mul_base(&Scalar::from(rng.next_u64()));
            cases.push((honest + t).compress().to_bytes());
        }
        for b in cases {
            let fast = E::element_from_wire(&b);
            assert_eq!(fast, reference(&b), "{b:02x?}");
            accepted += usize::from(fast.is_some());
        }
        assert!(accepted > 1000, "{accepted}");
    }

    #[test]
    fn a_torsion_part_of_the_eighth_vanishes_and_small_order_points_are_refused() {
        let (nonces, wire) = E::commit(&share::<E>(5), &mut Seed::from_u64(5).rng()).unwrap();
        let hiding = nonces.commitments().hiding();
        let q = CompressedEdwardsY(wire[0].as_slice().try_into().unwrap())
            .decompress()
            .unwrap();
        for t in EIGHT_TORSION {
            let shifted = (q + t).compress().to_bytes();
            assert_eq!(E::element_from_wire(&shifted).as_ref(), Some(hiding));
            assert_eq!(E::element_from_wire(&t.compress().to_bytes()), None);
        }
        assert_eq!(E::element_from_wire(&wire[0][..31]), None);
        assert_eq!(
            E::element_from_wire(&[wire[0].clone(), vec![0]].concat()),
            None
        );
    }
}
