//! Canonical decoding of frost-core types.
//!
//! frost-core 3.0.0's decoders ignore trailing bytes, and a truncated `PublicKeyPackage` decodes
//! with its threshold silently `None`. Every frost value that crosses a trust boundary goes
//! through [`decode`]: size first (before any parsing), then decode, then re-encode and compare,
//! so each accepted value has exactly one byte encoding.
//!
//! The two signing messages whose cost is dominated by group elements (a signer's
//! `SigningCommitments` and the coordinator's `SigningPackage`) go through [`SigningCodec`]
//! instead: an exact parser of frost-core 3.0.0's layout, with each commitment element in the
//! suite's wire encoding ([`super::wire`]). With frost's own element encoding it accepts precisely
//! the bytes [`decode`] accepts (tested against it on every suite, with mutations), without
//! re-encoding elements. Re-encoding an element costs a field inversion (SEC1 affine conversion,
//! Edwards compression), as much as decoding it again; it is not needed because every element
//! decoder accepts exactly one encoding per wire value (`element_decoders_are_canonical`,
//! `wire::tests`), so all the freedom a non-canonical encoding could use lies in the layout, which
//! the parser fixes byte for byte.

use std::collections::BTreeMap;
use std::marker::PhantomData;

use frost_core::keys::{dkg, KeyPackage, PublicKeyPackage};
use frost_core::round1::{NonceCommitment, SigningCommitments};
use frost_core::round2::SignatureShare;
use frost_core::{Ciphersuite, Field, Group, Identifier, Signature, SigningPackage, VerifyingKey};

use super::wire::CommitmentWire;
use crate::session::Rejection;

/// A frost value with a byte encoding.
pub trait Canonical: Sized {
    /// The encoding, or `None` if the library cannot encode this value.
    fn encode(&self) -> Option<Vec<u8>>;
    /// The library's (lenient) decoder.
    fn decode_lenient(bytes: &[u8]) -> Option<Self>;
}

macro_rules! canonical_fallible {
    ($($t:ident)::+) => {
        impl<C: Ciphersuite> Canonical for $($t)::+<C> {
            fn encode(&self) -> Option<Vec<u8>> {
                self.serialize().ok()
            }
            fn decode_lenient(bytes: &[u8]) -> Option<Self> {
                Self::deserialize(bytes).ok()
            }
        }
    };
}

canonical_fallible!(dkg::round1::Package);
canonical_fallible!(dkg::round2::Package);
canonical_fallible!(SigningCommitments);
canonical_fallible!(SigningPackage);
canonical_fallible!(KeyPackage);
canonical_fallible!(Signature);
canonical_fallible!(VerifyingKey);

impl<C: Ciphersuite> Canonical for SignatureShare<C> {
    fn encode(&self) -> Option<Vec<u8>> {
        Some(self.serialize())
    }
    fn decode_lenient(bytes: &[u8]) -> Option<Self> {
        Self::deserialize(bytes).ok()
    }
}

impl<C: Ciphersuite> Canonical for PublicKeyPackage<C> {
    fn encode(&self) -> Option<Vec<u8>> {
        self.serialize().ok()
    }
    fn decode_lenient(bytes: &[u8]) -> Option<Self> {
        let pkp = Self::deserialize(bytes).ok()?;
        // A package without its threshold is a truncated (or pre-3.0) encoding: refuse it
        // rather than sign with an unknown threshold.
        pkp.min_signers()?;
        Some(pkp)
    }
}

/// Decodes `bytes` as `T` only if it has exactly `expected_len` bytes (when given) and is the
/// canonical encoding of the value it decodes to.
pub fn decode<T: Canonical>(
    bytes: &[u8],
    expected_len: Option<usize>,
    field: &'static str,
) -> Result<T, Rejection> {
    if let Some(expected) = expected_len {
        if bytes.len() != expected {
            return Err(Rejection::WrongSize {
                field,
                expected,
                actual: bytes.len(),
            });
        }
    }
    let value = T::decode_lenient(bytes).ok_or(Rejection::Malformed { field })?;
    match value.encode() {
        Some(again) if again == bytes => Ok(value),
        _ => Err(Rejection::Malformed { field }),
    }
}

/// Encodes a value the session itself built. frost-core only fails to encode values that hold an
/// identity element, which honest construction never produces; the error path still exists so
/// that a library surprise ends the session cleanly instead of panicking.
pub fn encode<T: Canonical>(value: &T) -> Result<Vec<u8>, String> {
    value
        .encode()
        .ok_or_else(|| "frost-core could not encode a value it produced".to_string())
}

/// Bytes of frost-core 3.0.0's serialization header at the start of every encoded
/// `SigningCommitments` and `SigningPackage`: format version (0) and the 4-byte ciphersuite id.
pub const HEADER_LEN: usize = 5;

/// The most bytes a postcard varint (LEB128 of a `u64`) takes.
const MAX_VARINT_LEN: usize = 10;

/// Exact decoding and direct encoding of the signing session's frost messages, in frost-core
/// 3.0.0's postcard layout with each commitment element in the suite's wire encoding
/// ([`CommitmentWire`]; frost's own encoding except Ed25519's, see [`super::wire`]):
///
/// ```text
/// SigningCommitments = header(5) | hiding element | binding element
/// SigningPackage     = header(5) | varint count | { identifier scalar | SigningCommitments } * count
///                      | varint message length | message
/// ```
///
/// Identifiers strictly increase (the order of frost's `BTreeMap`), varints are minimal, nothing
/// follows the message.
#[derive(Clone, Debug)]
pub struct SigningCodec<C: Ciphersuite> {
    header: [u8; HEADER_LEN],
    element_len: usize,
    scalar_len: usize,
    elements: ElementEncoding,
    _suite: PhantomData<C>,
}

/// How the codec reads commitment elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ElementEncoding {
    /// The suite's wire encoding: what keyshard nodes send each other.
    Wire,
    /// frost's own serialization, so that the layout tests can compare with frost's decoder
    /// on every suite (for all but Ed25519 it is the wire encoding).
    #[cfg(test)]
    Frost,
}

/// A structurally valid signing package: identifiers decoded and in order, commitments not yet
/// decoded (the caller decides which need decoding), message as sent.
#[derive(Debug)]
pub struct PackageParts<'a, C: Ciphersuite> {
    /// Each signer's identifier and the bytes of its commitments (exactly
    /// [`SigningCodec::commitments_len`] long), in identifier order.
    pub entries: Vec<(Identifier<C>, &'a [u8])>,
    /// The message to sign.
    pub message: &'a [u8],
}

impl<C: CommitmentWire> SigningCodec<C> {
    /// The layout of this suite's signing messages. The header is learned from frost's encoding
    /// of an empty signing package (no element to encode, so no field inversion).
    pub fn new() -> Result<Self, String> {
        let empty = encode(&SigningPackage::<C>::new(BTreeMap::new(), &[]))?;
        let header: [u8; HEADER_LEN] = empty
            .get(..HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| {
                format!(
                    "a {}-byte empty signing package does not have frost-core 3.0.0's layout",
                    empty.len()
                )
            })?;
        let one = <<C::Group as Group>::Field as Field>::one();
        let scalar_len = <<C::Group as Group>::Field as Field>::serialize(&one)
            .as_ref()
            .len();
        Ok(SigningCodec {
            header,
            element_len: C::ELEMENT_LEN,
            scalar_len,
            elements: ElementEncoding::Wire,
            _suite: PhantomData,
        })
    }

    /// The same layout with frost's own element encoding (layout tests against frost's decoder).
    #[cfg(test)]
    pub(crate) fn frost_encoded() -> Result<Self, String> {
        Ok(SigningCodec {
            elements: ElementEncoding::Frost,
            ..Self::new()?
        })
    }

    /// The exact size of one encoded `SigningCommitments`.
    pub fn commitments_len(&self) -> usize {
        HEADER_LEN + 2 * self.element_len
    }

    /// The `SigningCommitments` encoding of this signer's own commitment elements, already in
    /// the suite's wire encoding ([`CommitmentWire::commit`]).
    pub fn encode_commitments(&self, elements: &[Vec<u8>; 2]) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(self.commitments_len());
        out.extend_from_slice(&self.header);
        for element in elements {
            if element.len() != self.element_len {
                return Err(format!(
                    "a {}-byte commitment element; the layout has {}",
                    element.len(),
                    self.element_len
                ));
            }
            out.extend_from_slice(element);
        }
        Ok(out)
    }

    fn decode_element(&self, bytes: &[u8]) -> Option<NonceCommitment<C>> {
        match self.elements {
            ElementEncoding::Wire => C::element_from_wire(bytes),
            #[cfg(test)]
            ElementEncoding::Frost => NonceCommitment::deserialize(bytes).ok(),
        }
    }

    /// Decodes one signer's commitments: exact size first, then the header byte for byte, then
    /// both elements with the suite's (canonical, validating) wire decoder.
    pub fn decode_commitments(
        &self,
        bytes: &[u8],
        field: &'static str,
    ) -> Result<SigningCommitments<C>, Rejection> {
        if bytes.len() != self.commitments_len() {
            return Err(Rejection::WrongSize {
                field,
                expected: self.commitments_len(),
                actual: bytes.len(),
            });
        }
        let (header, elements) = bytes.split_at(HEADER_LEN);
        if header != self.header {
            return Err(Rejection::Malformed { field });
        }
        let (hiding, binding) = elements.split_at(self.element_len);
        let hiding = self
            .decode_element(hiding)
            .ok_or(Rejection::Malformed { field })?;
        let binding = self
            .decode_element(binding)
            .ok_or(Rejection::Malformed { field })?;
        Ok(SigningCommitments::new(hiding, binding))
    }

    /// The `SigningPackage` encoding of `entries` (each signer's encoded commitments, as accepted
    /// by [`Self::decode_commitments`] or produced by [`Self::encode_commitments`]) and
    /// `message`, without re-encoding a single element. With frost's element encoding these are
    /// exactly the bytes frost's `serialize` gives for the same package.
    pub fn encode_package(
        &self,
        entries: &BTreeMap<Identifier<C>, &[u8]>,
        message: &[u8],
    ) -> Vec<u8> {
        let len = HEADER_LEN
            + 2 * MAX_VARINT_LEN
            + entries.len() * (self.scalar_len + self.commitments_len())
            + message.len();
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(&self.header);
        push_varint(&mut out, entries.len() as u64);
        for (id, commitments) in entries {
            out.extend_from_slice(&id.serialize());
            out.extend_from_slice(commitments);
        }
        push_varint(&mut out, message.len() as u64);
        out.extend_from_slice(message);
        out
    }

    /// Parses a `SigningPackage` encoding, refusing (as `Malformed { field }`) anything that is
    /// not exactly the canonical layout: wrong header, non-minimal varint, invalid, repeated or
    /// unordered identifier, truncation, trailing bytes. Commitments are returned undecoded.
    pub fn parse_package<'a>(
        &self,
        bytes: &'a [u8],
        field: &'static str,
    ) -> Result<PackageParts<'a, C>, Rejection> {
        let malformed = Rejection::Malformed { field };
        let rest = bytes
            .strip_prefix(self.header.as_slice())
            .ok_or(malformed.clone())?;
        let (count, mut rest) = take_varint(rest).ok_or(malformed.clone())?;
        let entry_len = self.scalar_len + self.commitments_len();
        // Each entry has a fixed size: refuse impossible counts before allocating for them.
        let count = usize::try_from(count)
            .ok()
            .filter(|c| c.checked_mul(entry_len).is_some_and(|n| n <= rest.len()))
            .ok_or(malformed.clone())?;
        let mut entries: Vec<(Identifier<C>, &'a [u8])> = Vec::with_capacity(count);
        for _ in 0..count {
            let (id, tail) = rest.split_at(self.scalar_len);
            let (commitments, tail) = tail.split_at(self.commitments_len());
            let id = Identifier::<C>::deserialize(id).map_err(|_| malformed.clone())?;
            if entries.last().is_some_and(|(previous, _)| *previous >= id) {
                return Err(malformed);
            }
            entries.push((id, commitments));
            rest = tail;
        }
        let (message_len, message) = take_varint(rest).ok_or(malformed.clone())?;
        if u64::try_from(message.len()).ok() != Some(message_len) {
            return Err(malformed);
        }
        Ok(PackageParts { entries, message })
    }
}

/// Appends `value` as a postcard varint (LEB128, least significant group first).
fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads a minimal postcard varint; `None` if truncated, over-long, overflowing or not minimal.
fn take_varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (i, byte) in bytes.iter().enumerate().take(MAX_VARINT_LEN) {
        let group = u64::from(byte & 0x7f);
        let shift = 7 * i as u32;
        if shift == 63 && group > 1 {
            return None;
        }
        value |= group << shift;
        if byte & 0x80 == 0 {
            // A last byte of zero after the first is a longer encoding of a smaller number.
            if i > 0 && *byte == 0 {
                return None;
            }
            return Some((value, &bytes[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frost::testkit::trusted_dealer;
    use frost_ed25519::Ed25519Sha512 as E;

    #[test]
    fn truncated_public_key_package_is_refused() {
        let (_, pkp) = trusted_dealer::<E>(2, 3, 1);
        let bytes = pkp.serialize().unwrap();
        // frost-core itself accepts the truncation and reports no threshold.
        let lenient = PublicKeyPackage::<E>::deserialize(&bytes[..bytes.len() - 2]).unwrap();
        assert_eq!(lenient.min_signers(), None);
        assert!(matches!(
            decode::<PublicKeyPackage<E>>(&bytes[..bytes.len() - 2], None, "pkp"),
            Err(Rejection::Malformed { field: "pkp" })
        ));
        assert_eq!(
            decode::<PublicKeyPackage<E>>(&bytes, None, "pkp").unwrap(),
            pkp
        );
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let (kps, _) = trusted_dealer::<E>(2, 3, 2);
        let kp = kps.values().next().unwrap();
        let mut bytes = kp.serialize().unwrap();
        bytes.push(0);
        // frost-core itself ignores the trailing byte.
        assert!(KeyPackage::<E>::deserialize(&bytes).is_ok());
        assert!(matches!(
            decode::<KeyPackage<E>>(&bytes, None, "kp"),
            Err(Rejection::Malformed { .. })
        ));
    }

    #[test]
    fn wrong_size_is_refused_before_decoding() {
        assert_eq!(
            decode::<SignatureShare<E>>(&[0u8; 31], Some(32), "share").unwrap_err(),
            Rejection::WrongSize {
                field: "share",
                expected: 32,
                actual: 31
            }
        );
    }
}

/// The fast signing codec against the generic decode-re-encode-compare path, and the property it
/// rests on: each suite's element decoder accepts exactly one encoding per element.
#[cfg(test)]
mod signing_codec_tests {
    use super::*;
    use crate::frost::testkit::{for_each_suite, trusted_dealer};
    use crate::rng::CoreRng;
    use frost_core::round1;
    use frost_ed25519::Ed25519Sha512 as E;
    use rand_core::RngCore;

    fn rng(seed: u64) -> CoreRng {
        crate::rng::Seed::from_u64(seed).rng()
    }

    /// Real commitments for signers `ids`.
    fn commitments<C: Ciphersuite>(
        ids: &[u16],
        rng: &mut CoreRng,
    ) -> BTreeMap<Identifier<C>, SigningCommitments<C>> {
        let (kps, _) = trusted_dealer::<C>(2, 3, 1);
        let share = *kps.values().next().unwrap().signing_share();
        ids.iter()
            .map(|i| {
                let (_, c) = round1::commit(&share, rng);
                (Identifier::try_from(*i).unwrap(), c)
            })
            .collect()
    }

    /// The codec with frost's element encoding: these tests compare the layout with frost's
    /// own decoder (the Ed25519 wire encoding is tested in `wire`).
    fn codec<C: CommitmentWire>() -> SigningCodec<C> {
        SigningCodec::frost_encoded().unwrap()
    }

    /// The fast path's verdict on a signing package: parse, then decode every commitment.
    fn fast_package<C: CommitmentWire>(
        codec: &SigningCodec<C>,
        bytes: &[u8],
    ) -> Result<SigningPackage<C>, Rejection> {
        let parts = codec.parse_package(bytes, "package")?;
        let mut map = BTreeMap::new();
        for (id, c) in parts.entries {
            map.insert(id, codec.decode_commitments(c, "package")?);
        }
        Ok(SigningPackage::new(map, parts.message))
    }

    /// Single-bit flips (at every position, or `sample` random ones), every truncation, and
    /// one extra byte at either end.
    fn mutations(bytes: &[u8], sample: Option<usize>, rng: &mut CoreRng) -> Vec<Vec<u8>> {
        let mut out = vec![bytes.to_vec()];
        let positions: Vec<usize> = match sample {
            None => (0..bytes.len()).collect(),
            Some(k) => (0..k)
                .map(|_| rng.next_u32() as usize % bytes.len())
                .collect(),
        };
        for i in positions {
            let mut b = bytes.to_vec();
            b[i] ^= 1 << (rng.next_u32() % 8);
            out.push(b);
        }
        out.extend((0..bytes.len()).map(|n| bytes[..n].to_vec()));
        out.push([bytes, &[0]].concat());
        out.push([&[0], bytes].concat());
        out
    }

    /// Layout-aware mutations of a package with at least two signers: entries swapped,
    /// duplicated, dropped without fixing the count, counts off by one, over-long varints.
    fn structural_mutations<C: CommitmentWire>(
        codec: &SigningCodec<C>,
        bytes: &[u8],
    ) -> Vec<Vec<u8>> {
        let entry = codec.scalar_len + codec.commitments_len();
        let (head, rest) = bytes.split_at(HEADER_LEN);
        let (count, body) = take_varint(rest).unwrap();
        let count = count as usize;
        let (entries, tail) = body.split_at(count * entry);
        let e = |i: usize| &entries[i * entry..(i + 1) * entry];
        let varint = |v: u64| {
            let mut out = Vec::new();
            push_varint(&mut out, v);
            out
        };
        let with =
            |count: Vec<u8>, entries: Vec<u8>, tail: &[u8]| [head, &count, &entries, tail].concat();
        let mut swapped = entries.to_vec();
        swapped[..entry].copy_from_slice(e(1));
        swapped[entry..2 * entry].copy_from_slice(e(0));
        let (message_len, message) = take_varint(tail).unwrap();
        vec![
            with(varint(count as u64), swapped, tail),
            with(
                varint(count as u64 + 1),
                [entries, e(count - 1)].concat(),
                tail,
            ),
            with(varint(count as u64 + 1), [e(0), entries].concat(), tail),
            with(varint(count as u64), entries[entry..].to_vec(), tail),
            with(varint(count as u64 - 1), entries.to_vec(), tail),
            with(varint(count as u64 + 1), entries.to_vec(), tail),
            with(vec![count as u8 | 0x80, 0], entries.to_vec(), tail),
            with(
                varint(count as u64),
                entries.to_vec(),
                &[&[message_len as u8 | 0x80, 0][..], message].concat(),
            ),
            with(
                varint(count as u64),
                entries.to_vec(),
                &[&varint(message_len + 1)[..], message].concat(),
            ),
            with(
                varint(count as u64),
                entries.to_vec(),
                &[&varint(message_len.saturating_sub(1))[..], message].concat(),
            ),
            with(varint(u64::MAX), entries.to_vec(), tail),
        ]
    }

    fn codec_matches_generic_decode<C: CommitmentWire>() {
        let codec = codec::<C>();
        let mut rng = rng(7);
        let mut accepted_mutants = 0;
        // Commitments, exactly as the coordinator receives them.
        for c in commitments::<C>(&[1, 2], &mut rng).values() {
            let bytes = c.serialize().unwrap();
            assert_eq!(bytes.len(), codec.commitments_len());
            for m in mutations(&bytes, None, &mut rng) {
                let generic =
                    decode::<SigningCommitments<C>>(&m, Some(codec.commitments_len()), "c");
                let fast = codec.decode_commitments(&m, "c");
                assert_eq!(fast, generic, "{:?} commitments {m:02x?}", C::ID);
                accepted_mutants += usize::from(fast.is_ok() && m != bytes);
            }
        }
        // Packages: 2 to 5 signers (random ids, some above 255), messages around the varint
        // boundary.
        for (n, message_len) in [(2, 0), (3, 5), (5, 127), (2, 128), (4, 300)] {
            let ids: Vec<u16> = (0..n)
                .map(|i| 1 + i * 97 + (rng.next_u32() % 90) as u16)
                .collect();
            let message: Vec<u8> = (0..message_len).map(|_| rng.next_u32() as u8).collect();
            let package = SigningPackage::new(commitments::<C>(&ids, &mut rng), &message);
            let bytes = package.serialize().unwrap();
            let mut cases = mutations(&bytes, Some(150), &mut rng);
            cases.extend(structural_mutations(&codec, &bytes));
            for m in cases {
                let generic = decode::<SigningPackage<C>>(&m, None, "package");
                let fast = fast_package(&codec, &m);
                assert_eq!(fast, generic, "{:?} package {m:02x?}", C::ID);
                accepted_mutants += usize::from(fast.is_ok() && m != bytes);
            }
        }
        // Some mutants are other valid encodings (a flipped message bit, a flipped SEC1 parity
        // tag): both paths must accept those too, or the comparison would be one-sided.
        assert!(accepted_mutants > 0, "{:?}", C::ID);
    }

    #[test]
    fn signing_codec_accepts_exactly_what_decode_accepts() {
        for_each_suite!(codec_matches_generic_decode);
    }

    fn codec_encodes_like_frost<C: CommitmentWire>() {
        let codec = codec::<C>();
        let mut rng = rng(8);
        // 130 signers and a 16 KiB message take the varints past one byte.
        for (n, message_len) in [(2u16, 0usize), (3, 127), (130, 128), (2, 16_384)] {
            let ids: Vec<u16> = (1..=n).map(|i| i * 3).collect();
            let message: Vec<u8> = (0..message_len).map(|_| rng.next_u32() as u8).collect();
            let map = commitments::<C>(&ids, &mut rng);
            let encoded: Vec<Vec<u8>> = map.values().map(|c| c.serialize().unwrap()).collect();
            let entries: BTreeMap<Identifier<C>, &[u8]> = map
                .keys()
                .copied()
                .zip(encoded.iter().map(Vec::as_slice))
                .collect();
            let package = SigningPackage::new(map, &message);
            let bytes = codec.encode_package(&entries, &message);
            assert_eq!(bytes, package.serialize().unwrap(), "{:?} n={n}", C::ID);
            assert_eq!(fast_package(&codec, &bytes).unwrap(), package);
        }
    }

    #[test]
    fn signing_codec_encodes_exactly_like_frost() {
        for_each_suite!(codec_encodes_like_frost);
    }

    /// Random element-sized bytes: whatever the suite's decoder accepts re-encodes to itself.
    fn random_elements_round_trip<C: CommitmentWire>() {
        let codec = codec::<C>();
        let mut rng = rng(9);
        let mut accepted = 0;
        for _ in 0..3000 {
            let mut b = vec![0u8; codec.element_len];
            rng.fill_bytes(&mut b);
            if codec.element_len == 33 {
                b[0] = 2 + (b[0] & 1); // SEC1 compressed tags, so that half of them decode
            }
            if let Ok(e) = NonceCommitment::<C>::deserialize(&b) {
                assert_eq!(e.serialize().unwrap(), b, "{:?}", C::ID);
                accepted += 1;
            }
        }
        assert!(accepted > 100, "{:?}: {accepted}", C::ID);
    }

    /// A SEC1 x-coordinate given as x + p (still below 2^256) is refused: `sec1_p` is the field
    /// modulus, big-endian.
    fn sec1_x_beyond_p_is_refused<C: CommitmentWire>(sec1_p: [u8; 32]) {
        let x = (1u8..=255)
            .find(|x| {
                let mut b = [0u8; 33];
                b[0] = 2;
                b[32] = *x;
                NonceCommitment::<C>::deserialize(&b).is_ok()
            })
            .expect("a small x on the curve");
        for tag in [2u8, 3] {
            let mut b = [0u8; 33];
            b[0] = tag;
            let mut carry = u16::from(x);
            for i in (0..32).rev() {
                let sum = u16::from(sec1_p[i]) + carry;
                b[i + 1] = sum as u8;
                carry = sum >> 8;
            }
            assert_eq!(carry, 0, "x + p fits in 256 bits");
            assert!(
                NonceCommitment::<C>::deserialize(&b).is_err(),
                "{:?}",
                C::ID
            );
            b[0] = 4;
            assert!(
                NonceCommitment::<C>::deserialize(&b).is_err(),
                "{:?}",
                C::ID
            );
        }
    }

    #[test]
    fn element_decoders_are_canonical() {
        for_each_suite!(random_elements_round_trip);

        let secp256k1_p: [u8; 32] = {
            let mut p = [0xff; 32];
            p[27] = 0xfe;
            p[30] = 0xfc;
            p[31] = 0x2f;
            p
        };
        let p256_p: [u8; 32] = {
            let mut p = [0u8; 32];
            p[..4].copy_from_slice(&[0xff; 4]);
            p[7] = 1;
            p[20..].copy_from_slice(&[0xff; 12]);
            p
        };
        sec1_x_beyond_p_is_refused::<frost_secp256k1::Secp256K1Sha256>(secp256k1_p);
        sec1_x_beyond_p_is_refused::<frost_secp256k1_tr::Secp256K1Sha256TR>(secp256k1_p);
        sec1_x_beyond_p_is_refused::<frost_p256::P256Sha256>(p256_p);

        // Ed25519: every y in [p, 2^255) (p = 2^255 - 19), either sign, and the "negative zero"
        // x of y = 1 and y = -1: all non-canonical, all refused.
        let mut non_canonical = Vec::new();
        for k in 0u8..19 {
            let mut y = [0xffu8; 32];
            y[0] = 0xed + k; // p = 0x7fff..ffed, little-endian
            y[31] = 0x7f;
            non_canonical.push(y);
        }
        let mut one = [0u8; 32];
        one[0] = 1;
        let mut minus_one = [0xffu8; 32];
        minus_one[0] = 0xec;
        minus_one[31] = 0x7f;
        non_canonical.extend([one, minus_one]);
        for mut y in non_canonical {
            for sign in [0u8, 0x80] {
                y[31] = (y[31] & 0x7f) | sign;
                assert!(NonceCommitment::<E>::deserialize(&y).is_err(), "{y:02x?}");
            }
        }
    }

    #[test]
    fn varints_are_minimal_and_bounded() {
        for v in [
            0u64,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u32::MAX.into(),
            u64::MAX,
        ] {
            let mut b = Vec::new();
            push_varint(&mut b, v);
            assert_eq!(take_varint(&b), Some((v, &[][..])), "{v}");
            assert_eq!(take_varint(&b[..b.len() - 1]), None, "{v} truncated");
        }
        assert_eq!(take_varint(&[0x80, 0x00]), None, "over-long zero");
        assert_eq!(take_varint(&[0x81, 0x00]), None, "over-long one");
        assert_eq!(take_varint(&[0xff; 10]), None, "more than 64 bits");
        assert_eq!(
            take_varint(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]),
            None,
            "2^64"
        );
        assert_eq!(take_varint(&[0x05, 0x09]), Some((5, &[0x09][..])));
    }

    #[test]
    fn an_impossible_count_is_refused_before_allocating() {
        let codec = codec::<E>();
        let mut b = codec.header.to_vec();
        push_varint(&mut b, u64::MAX / 2);
        b.push(0);
        assert_eq!(
            codec.parse_package(&b, "p").unwrap_err(),
            Rejection::Malformed { field: "p" }
        );
    }
}
