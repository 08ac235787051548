//! Verification of RFC 9591 (FROST) Schnorr signatures over prime-order short-Weierstrass
//! groups with 32-byte field elements and SHA-256: FROST(secp256k1, SHA-256) (section 6.5)
//! and FROST(P-256, SHA-256) (section 6.4).
//!
//! Written from the RFC on top of the curves' plain group arithmetic, so it shares nothing
//! with the frost crates beyond the curve arithmetic itself. The traits come from
//! `elliptic_curve`, which `k256` and `p256` both re-export (the same crate version).

use crate::xmd::expand_message_xmd;
use crate::VerifyError;
use k256::elliptic_curve::{
    group::Group,
    ops::Reduce,
    sec1::{EncodedPoint, FromEncodedPoint, ModulusSize, ToEncodedPoint},
    AffinePoint, CurveArithmetic, FieldBytes, FieldBytesSize, PrimeField, ProjectivePoint, Scalar,
};

/// Output length of `hash_to_field` for both ciphersuites: L = ceil((ceil(log2(p)) + k) / 8)
/// with k = 128, i.e. 48 bytes, so the reduction mod the order is statistically uniform.
const HASH_TO_FIELD_LEN: usize = 48;

/// RFC 9591 section 5.3 / 6.x `verify` for the prime-order ciphersuites:
/// with `c = H2(encode(R) || encode(PK) || msg)`, accept iff `z*G == R + c*PK`.
///
/// `context` is the ciphersuite's contextString. `public_key` is a SEC1 compressed point;
/// `signature` is `encode(R) || encode(z)` (compressed point, big-endian scalar).
pub(crate) fn verify<C>(
    context: &[u8],
    public_key: &[u8],
    message: &[u8],
    signature: &[u8],
) -> Result<(), VerifyError>
where
    C: CurveArithmetic,
    FieldBytesSize<C>: ModulusSize,
    AffinePoint<C>: FromEncodedPoint<C> + ToEncodedPoint<C>,
{
    let scalar_len = FieldBytes::<C>::default().len();
    let point_len = scalar_len + 1;

    if public_key.len() != point_len {
        return Err(VerifyError::BadPublicKey(format!(
            "expected a {point_len}-byte compressed point, got {} bytes",
            public_key.len()
        )));
    }
    if signature.len() != point_len + scalar_len {
        return Err(VerifyError::BadSignature(format!(
            "expected {} bytes (R || z), got {} bytes",
            point_len + scalar_len,
            signature.len()
        )));
    }

    let pk = decode_point::<C>(public_key).map_err(VerifyError::BadPublicKey)?;
    let (r_bytes, z_bytes) = signature.split_at(point_len);
    let r = decode_point::<C>(r_bytes).map_err(|e| VerifyError::BadSignature(format!("R: {e}")))?;
    let z = decode_scalar::<C>(z_bytes).ok_or_else(|| {
        VerifyError::BadSignature("z is not a canonical scalar (must be < group order)".into())
    })?;

    // The challenge hashes the encodings as received; they were checked to be canonical,
    // so these are also exactly encode(R) and encode(PK).
    let c = hash_to_scalar::<C>(&[context, b"chal"], &[r_bytes, public_key, message]);

    // Both ciphersuites have cofactor 1, so the RFC's check is the plain equation.
    if ProjectivePoint::<C>::generator() * z == r + pk * c {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

/// RFC 9591's `DeserializeElement` for these suites: SEC1 compressed encoding only, the point
/// must be on the curve, not the identity, and the encoding must be the canonical one
/// (x < p). Re-encoding and comparing catches any leniency in the underlying decoder.
fn decode_point<C>(bytes: &[u8]) -> Result<ProjectivePoint<C>, String>
where
    C: CurveArithmetic,
    FieldBytesSize<C>: ModulusSize,
    AffinePoint<C>: FromEncodedPoint<C> + ToEncodedPoint<C>,
{
    match bytes.first() {
        Some(0x02 | 0x03) => {}
        Some(tag) => {
            return Err(format!(
                "SEC1 tag 0x{tag:02x} is not a compressed point (0x02/0x03)"
            ))
        }
        None => return Err("empty point encoding".into()),
    }
    let encoded = EncodedPoint::<C>::from_bytes(bytes)
        .map_err(|_| String::from("malformed SEC1 encoding"))?;
    let affine: AffinePoint<C> = Option::from(AffinePoint::<C>::from_encoded_point(&encoded))
        .ok_or_else(|| String::from("not a point on the curve (or x >= field modulus)"))?;
    let point = ProjectivePoint::<C>::from(affine);
    if bool::from(point.is_identity()) {
        return Err("identity element".into());
    }
    if affine.to_encoded_point(true).as_bytes() != bytes {
        return Err("non-canonical point encoding".into());
    }
    Ok(point)
}

/// RFC 9591's `DeserializeScalar`: big-endian, must be strictly below the group order.
fn decode_scalar<C: CurveArithmetic>(bytes: &[u8]) -> Option<Scalar<C>> {
    let mut repr = FieldBytes::<C>::default();
    repr.copy_from_slice(bytes);
    Option::from(Scalar::<C>::from_repr(repr))
}

/// `hash_to_field(msg, 1)` with `expand_message_xmd`/SHA-256 and L = 48 (the definition of
/// H1..H5 in RFC 9591 sections 6.4 and 6.5): expand, read the 48 bytes as a big-endian
/// integer, reduce it mod the group order.
pub(crate) fn hash_to_scalar<C: CurveArithmetic>(dst: &[&[u8]], msg: &[&[u8]]) -> Scalar<C> {
    let uniform = expand_message_xmd::<HASH_TO_FIELD_LEN>(msg, dst);
    reduce_48_bytes::<C>(&uniform)
}

/// Reduces a 384-bit big-endian integer mod the group order using only scalar arithmetic:
/// v = hi * 2^192 + lo with hi and lo 192-bit halves. Both halves, and 2^192 itself, are
/// below the (roughly 2^256) order of either curve, so turning them into scalars involves no
/// reduction at all, and the field operations do the rest.
fn reduce_48_bytes<C: CurveArithmetic>(bytes: &[u8; HASH_TO_FIELD_LEN]) -> Scalar<C> {
    let (hi, lo) = bytes.split_at(HASH_TO_FIELD_LEN / 2);
    let two_pow_192 = {
        let mut b = FieldBytes::<C>::default();
        let len = b.len();
        b[len - 25] = 1;
        b
    };
    let widen = |half: &[u8]| {
        let mut b = FieldBytes::<C>::default();
        let len = b.len();
        b[len - half.len()..].copy_from_slice(half);
        b
    };
    let reduce = |b: &FieldBytes<C>| <Scalar<C> as Reduce<C::Uint>>::reduce_bytes(b);
    reduce(&widen(hi)) * reduce(&two_pow_192) + reduce(&widen(lo))
}
