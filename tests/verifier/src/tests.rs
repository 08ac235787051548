//! Known-answer tests from the specifications, bit-flip rejection, and garbage-input tests.

use super::*;
use k256::elliptic_curve::{
    group::{Curve, Group},
    sec1::{FromEncodedPoint, ModulusSize, ToEncodedPoint},
    AffinePoint, CurveArithmetic, FieldBytes, FieldBytesSize, PrimeField, ProjectivePoint, Scalar,
};

type Verifier = fn(&[u8], &[u8], &[u8]) -> Result<(), VerifyError>;

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).expect("test vector hex")
}

/// Asserts that `verify` accepts `(pk, msg, sig)` and rejects it when any single bit of the
/// signature, the message, or the key is flipped.
fn assert_accepts_and_rejects_every_bit_flip(verify: Verifier, pk: &[u8], msg: &[u8], sig: &[u8]) {
    assert_eq!(verify(pk, msg, sig), Ok(()), "valid signature must verify");

    for bit in 0..sig.len() * 8 {
        let mut bad = sig.to_vec();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert!(
            verify(pk, msg, &bad).is_err(),
            "signature with bit {bit} flipped was accepted"
        );
    }
    for bit in 0..msg.len() * 8 {
        let mut bad = msg.to_vec();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert_eq!(
            verify(pk, &bad, sig),
            Err(VerifyError::Mismatch),
            "message with bit {bit} flipped was accepted"
        );
    }
    for bit in 0..pk.len() * 8 {
        let mut bad = pk.to_vec();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert!(
            verify(&bad, msg, sig).is_err(),
            "key with bit {bit} flipped was accepted"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Ed25519
// ---------------------------------------------------------------------------------------

/// RFC 8032 section 7.1, TEST 1 (empty message).
const RFC8032_TEST1_PK: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const RFC8032_TEST1_SIG: &str = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";
/// RFC 8032 section 7.1, TEST 2 (one-byte message 0x72).
const RFC8032_TEST2_PK: &str = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";
const RFC8032_TEST2_MSG: &str = "72";
const RFC8032_TEST2_SIG: &str = "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00";

#[test]
fn ed25519_rfc8032_test1_verifies() {
    assert_eq!(
        ed25519(&h(RFC8032_TEST1_PK), b"", &h(RFC8032_TEST1_SIG)),
        Ok(())
    );
}

#[test]
fn ed25519_rfc8032_test2_verifies_and_rejects_bit_flips() {
    assert_accepts_and_rejects_every_bit_flip(
        ed25519,
        &h(RFC8032_TEST2_PK),
        &h(RFC8032_TEST2_MSG),
        &h(RFC8032_TEST2_SIG),
    );
}

#[test]
fn ed25519_rejects_malleated_s_plus_l() {
    // S + L is the same scalar mod L, so a lax verifier accepts it; RFC 8032 does not.
    const L_LE: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut sig = h(RFC8032_TEST2_SIG);
    let mut carry = 0u16;
    for (s, l) in sig[32..].iter_mut().zip(L_LE) {
        let sum = u16::from(*s) + u16::from(l) + carry;
        *s = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0, "S + L fits in 256 bits for this vector");
    assert!(matches!(
        ed25519(&h(RFC8032_TEST2_PK), &h(RFC8032_TEST2_MSG), &sig),
        Err(VerifyError::BadSignature(_))
    ));
}

#[test]
fn ed25519_rejects_small_order_and_non_canonical_keys() {
    let sig = h(RFC8032_TEST1_SIG);
    // The identity (y = 1): small order.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    assert!(matches!(
        ed25519(&identity, b"", &sig),
        Err(VerifyError::BadPublicKey(_))
    ));
    // y = p + 1 = 2^255 - 18: a non-canonical encoding of the identity.
    let mut non_canonical = [0xffu8; 32];
    non_canonical[0] = 0xee;
    non_canonical[31] = 0x7f;
    assert!(matches!(
        ed25519(&non_canonical, b"", &sig),
        Err(VerifyError::BadPublicKey(_))
    ));
}

// ---------------------------------------------------------------------------------------
// BIP-340
// ---------------------------------------------------------------------------------------

/// BIP-340 test-vectors.csv, index 1.
const BIP340_V1_PK: &str = "DFF1D77F2A671C5F36183726DB2341BE58FEAE1DA2DECED843240F7B502BA659";
const BIP340_V1_MSG: &str = "243F6A8885A308D313198A2E03707344A4093822299F31D0082EFA98EC4E6C89";
const BIP340_V1_SIG: &str = "6896BD60EEAE296DB48A229FF71DFE071BDE413E6D43F917DC8DCF8C78DE33418906D11AC976ABCCB20B091292BFF4EA897EFCB639EA871CFA95F6DE339E4B0A";
/// BIP-340 test-vectors.csv, index 0 (secret key 3, all-zero message).
const BIP340_V0_PK: &str = "F9308A019258C31049344F85F89D5229B531C845836F99B08601F113BCE036F9";
const BIP340_V0_SIG: &str = "E907831F80848D1069A5371B402410364BDF1C5F8307B0084C55F1CE2DCA821525F66A4A85EA8B71E482A74F382D2CE5EBEEE8FDB2172F477DF4900D310536C0";

#[test]
fn bip340_vector1_verifies_and_rejects_bit_flips() {
    assert_accepts_and_rejects_every_bit_flip(
        bip340,
        &h(BIP340_V1_PK),
        &h(BIP340_V1_MSG),
        &h(BIP340_V1_SIG),
    );
}

#[test]
fn bip340_vector0_verifies() {
    assert_eq!(
        bip340(&h(BIP340_V0_PK), &[0u8; 32], &h(BIP340_V0_SIG)),
        Ok(())
    );
}

#[test]
fn bip340_accepts_33_byte_compressed_key_of_either_parity() {
    let pk = h(BIP340_V1_PK);
    let msg = h(BIP340_V1_MSG);
    let sig = h(BIP340_V1_SIG);
    for tag in [0x02u8, 0x03] {
        let compressed: Vec<u8> = std::iter::once(tag).chain(pk.iter().copied()).collect();
        assert_eq!(bip340(&compressed, &msg, &sig), Ok(()), "tag {tag:#04x}");
    }
    // But not an uncompressed tag with a 33-byte length, nor a corrupted x.
    let mut bad_tag = vec![0x04u8];
    bad_tag.extend_from_slice(&pk);
    assert!(matches!(
        bip340(&bad_tag, &msg, &sig),
        Err(VerifyError::BadPublicKey(_))
    ));
}

#[test]
fn bip340_rejects_x_not_on_curve_and_oversized_r() {
    // BIP-340 test-vectors.csv index 5: public key not on the curve.
    let off_curve = h("EEFDEA4CDB677750A420FEE807EACF21EB9898AE79B9768766E4FAA04A2D4A34");
    assert!(matches!(
        bip340(&off_curve, &h(BIP340_V1_MSG), &h(BIP340_V1_SIG)),
        Err(VerifyError::BadPublicKey(_))
    ));
    // r = p (field modulus) is not a valid field element.
    let mut sig = h(BIP340_V1_SIG);
    sig[..32].copy_from_slice(&h(SECP256K1_P));
    assert!(matches!(
        bip340(&h(BIP340_V1_PK), &h(BIP340_V1_MSG), &sig),
        Err(VerifyError::BadSignature(_))
    ));
}

// ---------------------------------------------------------------------------------------
// RFC 9591 (FROST)
// ---------------------------------------------------------------------------------------

/// secp256k1 field modulus p.
const SECP256K1_P: &str = "fffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2f";
/// secp256k1 group order n.
const SECP256K1_N: &str = "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141";
/// P-256 group order n.
const P256_N: &str = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";

/// One RFC 9591 Appendix E test vector (only what a verifier needs, plus one binding
/// factor to check H1 and the group secret key to check the key and sign extra messages).
struct FrostVector {
    verify: Verifier,
    context: &'static [u8],
    group_secret_key: &'static str,
    verifying_key: &'static str,
    message: &'static str,
    binding_factor_input: &'static str,
    binding_factor: &'static str,
    sig: &'static str,
    order: &'static str,
}

/// RFC 9591 Appendix E.5, FROST(secp256k1, SHA-256).
const RFC9591_E5_SECP256K1: FrostVector = FrostVector {
    verify: frost_secp256k1,
    context: FROST_SECP256K1_CONTEXT,
    group_secret_key: "0d004150d27c3bf2a42f312683d35fac7394b1e9e318249c1bfe7f0795a83114",
    verifying_key: "02f37c34b66ced1fb51c34a90bdae006901f10625cc06c4f64663b0eae87d87b4f",
    message: "74657374",
    // Participant 1's binding factor.
    binding_factor_input: "02f37c34b66ced1fb51c34a90bdae006901f10625cc06c4f64663b0eae87d87b4fff9b5210ffbb3c07a73a7c8935be4a8c62cf015f6cf7ade6efac09a6513540fcfac8df6fa81b3f4d9ced4be2474894308232dc0be75dbf81f5a103579a8236310000000000000000000000000000000000000000000000000000000000000001",
    binding_factor: "9bee5aef4012de4b94c9fc1a9a9572181079e293bf1d7545a5af0ef86f824a91",
    sig: "024c1ad4e031872661fa6ebd05dfc7fb30db08b38d79f0edbc82051ae931381bc6a46881e25c7989d3816eae32074f1ab0d49ee908a59713ed5284c6bade7cfb02",
    order: SECP256K1_N,
};

/// RFC 9591 Appendix E.4, FROST(P-256, SHA-256).
const RFC9591_E4_P256: FrostVector = FrostVector {
    verify: frost_p256,
    context: FROST_P256_CONTEXT,
    group_secret_key: "8ba9bba2e0fd8c4767154d35a0b7562244a4aaf6f36c8fb8735fa48b301bd8de",
    verifying_key: "023a309ad94e9fe8a7ba45dfc58f38bf091959d3c99cfbd02b4dc00585ec45ab70",
    message: "74657374",
    // Participant 1's binding factor.
    binding_factor_input: "023a309ad94e9fe8a7ba45dfc58f38bf091959d3c99cfbd02b4dc00585ec45ab70825371853e974bc30ac5b947b216d70461919666584c70c51f9f56f117736c5d3a27b8c270f59cc19034e43e42b66179dafc795f55807cce71610b4366c2cad60000000000000000000000000000000000000000000000000000000000000001",
    binding_factor: "f3524ed2b393ae51a66c8de55b65bea32532d7d90e34a6419ec32ea42201b846",
    sig: "02aea65143565d19f2811d6c1d7a7486fdd57dd3f6b08d8653ca260ec0ebe00b61ca5d775641ac46891ac3d6089e1db471b3ab173ccb586035582185e43f13f245",
    order: P256_N,
};

fn scalar_from_hex<C: CurveArithmetic>(s: &str) -> Scalar<C> {
    let mut repr = FieldBytes::<C>::default();
    repr.copy_from_slice(&h(s));
    Option::from(Scalar::<C>::from_repr(repr)).expect("canonical scalar")
}

fn compress<C>(p: ProjectivePoint<C>) -> Vec<u8>
where
    C: CurveArithmetic,
    FieldBytesSize<C>: ModulusSize,
    AffinePoint<C>: FromEncodedPoint<C> + ToEncodedPoint<C>,
{
    p.to_affine().to_encoded_point(true).as_bytes().to_vec()
}

/// Single-signer RFC 9591 Schnorr signature: R = k*G, z = k + c*sk. A FROST aggregate
/// signature is exactly this with the group secret key, which is what makes it usable
/// to exercise the verifier on more messages than the RFC's one.
fn schnorr_sign<C>(context: &[u8], sk: Scalar<C>, nonce: Scalar<C>, msg: &[u8]) -> Vec<u8>
where
    C: CurveArithmetic,
    FieldBytesSize<C>: ModulusSize,
    AffinePoint<C>: FromEncodedPoint<C> + ToEncodedPoint<C>,
{
    let pk = compress::<C>(ProjectivePoint::<C>::generator() * sk);
    let r = compress::<C>(ProjectivePoint::<C>::generator() * nonce);
    let c = rfc9591::hash_to_scalar::<C>(&[context, b"chal"], &[&r, &pk, msg]);
    let z = nonce + c * sk;
    let mut sig = r;
    sig.extend_from_slice(&z.to_repr());
    sig
}

/// Everything checked per FROST ciphersuite.
fn check_frost_suite<C>(v: &FrostVector)
where
    C: CurveArithmetic,
    FieldBytesSize<C>: ModulusSize,
    AffinePoint<C>: FromEncodedPoint<C> + ToEncodedPoint<C>,
{
    let pk = h(v.verifying_key);
    let msg = h(v.message);
    let sig = h(v.sig);

    // H1 against the RFC's binding factor: checks expand_message_xmd, the DST handling and
    // the 48-byte reduction on a real value with a non-zero high half.
    let rho = rfc9591::hash_to_scalar::<C>(&[v.context, b"rho"], &[&h(v.binding_factor_input)]);
    assert_eq!(
        rho.to_repr().to_vec(),
        h(v.binding_factor),
        "H1 binding factor"
    );

    // The vector's group key really is group_secret_key * G.
    let sk = scalar_from_hex::<C>(v.group_secret_key);
    assert_eq!(compress::<C>(ProjectivePoint::<C>::generator() * sk), pk);

    // The RFC's final signature verifies, and every single-bit change is rejected.
    assert_accepts_and_rejects_every_bit_flip(v.verify, &pk, &msg, &sig);

    // Messages of other lengths, signed here with the group secret key.
    let nonce =
        scalar_from_hex::<C>("5f3a1b2c3d4e5f60718293a4b5c6d7e8f90123456789abcdef0123456789abcd");
    for msg in [&b""[..], &[0u8; 32], &[0xa5; 1000]] {
        let sig = schnorr_sign::<C>(v.context, sk, nonce, msg);
        assert_eq!((v.verify)(&pk, msg, &sig), Ok(()), "len {}", msg.len());
        assert_eq!(
            (v.verify)(&pk, b"other", &sig),
            Err(VerifyError::Mismatch),
            "len {}",
            msg.len()
        );
    }

    // z = n (not reduced) is rejected as a bad encoding rather than reduced to 0.
    let mut z_eq_n = sig.clone();
    z_eq_n[33..].copy_from_slice(&h(v.order));
    assert!(matches!(
        (v.verify)(&pk, &msg, &z_eq_n),
        Err(VerifyError::BadSignature(_))
    ));

    // Uncompressed / identity / wrong tags are rejected for both R and PK.
    for tag in [0x00u8, 0x01, 0x04, 0x05, 0x06, 0x07, 0xff] {
        let mut bad_pk = pk.clone();
        bad_pk[0] = tag;
        assert!(matches!(
            (v.verify)(&bad_pk, &msg, &sig),
            Err(VerifyError::BadPublicKey(_))
        ));
        let mut bad_sig = sig.clone();
        bad_sig[0] = tag;
        assert!(matches!(
            (v.verify)(&pk, &msg, &bad_sig),
            Err(VerifyError::BadSignature(_))
        ));
    }
    assert!(matches!(
        (v.verify)(&[0u8; 33], &msg, &sig),
        Err(VerifyError::BadPublicKey(_))
    ));

    // A 65-byte uncompressed key would be the same point but is not the RFC's encoding.
    let uncompressed = ProjectivePoint::<C>::generator() * sk;
    let uncompressed = uncompressed.to_affine().to_encoded_point(false);
    assert!(matches!(
        (v.verify)(uncompressed.as_bytes(), &msg, &sig),
        Err(VerifyError::BadPublicKey(_))
    ));
}

#[test]
fn frost_secp256k1_rfc9591_e5_vector() {
    check_frost_suite::<k256::Secp256k1>(&RFC9591_E5_SECP256K1);
}

#[test]
fn frost_p256_rfc9591_e4_vector() {
    check_frost_suite::<p256::NistP256>(&RFC9591_E4_P256);
}

#[test]
fn frost_secp256k1_rejects_x_not_below_field_modulus() {
    let v = &RFC9591_E5_SECP256K1;
    let mut pk = vec![0x02];
    pk.extend_from_slice(&h(SECP256K1_P));
    assert!(matches!(
        frost_secp256k1(&pk, &h(v.message), &h(v.sig)),
        Err(VerifyError::BadPublicKey(_))
    ));
}

#[test]
fn expand_message_xmd_rfc9380_k1_vectors() {
    // RFC 9380 Appendix K.1, expand_message_xmd(SHA-256), DST below.
    const DST: &[u8] = b"QUUX-V01-CS02-with-expander-SHA256-128";
    let out: [u8; 32] = xmd::expand_message_xmd(&[b""], &[DST]);
    assert_eq!(
        out.to_vec(),
        h("68a985b87eb6b46952128911f2a4412bbc302a9d759667f87f7a21d803f07235")
    );
    // Message given in parts must hash like the concatenation.
    let out: [u8; 32] = xmd::expand_message_xmd(
        &[b"a", b"", b"bc"],
        &[b"QUUX-V01-CS02-", b"with-expander-SHA256-128"],
    );
    assert_eq!(
        out.to_vec(),
        h("d8ccab23b5985ccea865c6c97b6e5b8350e794e603b4b97902f53a8a0d605615")
    );
    let out: [u8; 128] = xmd::expand_message_xmd(&[b"abc"], &[DST]);
    assert_eq!(
        out.to_vec(),
        h("abba86a6129e366fc877aab32fc4ffc70120d8996c88aee2fe4b32d6c7b6437a647e6c3163d40b76a73cf6a5674ef1d890f95b664ee0afa5359a5c4e07985635bbecbac65d747d3d2da7ec2b8221b17b0ca9dc8a1ac1c07ea6a1e60583e2cb00058e77b7b72a298425cd1b941ad4ec65e8afc50303a22c0f99b0509b4c895f40")
    );
}

#[test]
fn expand_message_xmd_rfc9380_k1_oversize_dst() {
    // RFC 9380 Appendix K.1, long-DST section: a 256-byte DST is first hashed (section 5.3.3).
    let mut dst = b"QUUX-V01-CS02-with-expander-SHA256-128-long-DST-".to_vec();
    dst.resize(256, b'1');
    let out: [u8; 32] = xmd::expand_message_xmd(&[b""], &[&dst]);
    assert_eq!(
        out.to_vec(),
        h("e8dc0c8b686b7ef2074086fbdd2f30e3f8bfbd3bdf177f73f04b97ce618a3ed3")
    );
}

// ---------------------------------------------------------------------------------------
// Garbage input
// ---------------------------------------------------------------------------------------

/// Tiny deterministic generator so the test needs no RNG dependency.
struct XorShift(u64);
impl XorShift {
    fn next_byte(&mut self) -> u8 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 24) as u8
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_byte()).collect()
    }
}

#[test]
fn garbage_short_and_long_inputs_are_rejected_without_panicking() {
    let verifiers: [(&str, Verifier, Vec<u8>); 4] = [
        ("ed25519", ed25519, h(RFC8032_TEST2_PK)),
        ("bip340", bip340, h(BIP340_V1_PK)),
        (
            "frost_secp256k1",
            frost_secp256k1,
            h(RFC9591_E5_SECP256K1.verifying_key),
        ),
        ("frost_p256", frost_p256, h(RFC9591_E4_P256.verifying_key)),
    ];
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for (name, verify, valid_pk) in &verifiers {
        for len in 0..=140 {
            let random = rng.bytes(len);
            for filler in [vec![0u8; len], vec![0xffu8; len], random] {
                // Garbage signature under a valid key, and garbage key with garbage signature.
                assert!(
                    verify(valid_pk, b"msg", &filler).is_err(),
                    "{name} sig len {len}"
                );
                assert!(
                    verify(&filler, b"msg", &filler).is_err(),
                    "{name} key len {len}"
                );
                // Garbage key of every length with a well-formed-length random signature.
                let sig = rng.bytes(if name.starts_with("frost") { 65 } else { 64 });
                assert!(
                    verify(&filler, &filler, &sig).is_err(),
                    "{name} key len {len}"
                );
            }
        }
    }
}

/// A raw `r || s` signature whose `r` starts with 0x30 is not DER (before the fix it was parsed
/// as DER and refused: one P-256 signature in 256 from the cluster failed verification).
#[test]
fn a_raw_ecdsa_signature_whose_r_starts_like_der_verifies() {
    use p256::ecdsa::signature::Signer;
    let key = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
    let public = key.verifying_key().to_encoded_point(true);
    let mut found = 0;
    for i in 0u32..20_000 {
        let msg = i.to_be_bytes();
        let sig: p256::ecdsa::Signature = key.sign(&msg);
        let sig = sig.normalize_s().unwrap_or(sig);
        if sig.to_bytes()[0] == 0x30 {
            assert_eq!(ecdsa_p256(public.as_bytes(), &msg, &sig.to_bytes()), Ok(()));
            assert_eq!(
                ecdsa_p256(public.as_bytes(), &msg, sig.to_der().as_bytes()),
                Ok(())
            );
            found += 1;
            if found == 3 {
                return;
            }
        }
    }
    panic!("no signature with a leading 0x30 in 20,000");
}
