//! The values the ECDSA sessions take and produce.

use core::fmt;

use cggmp24::generic_ec::coords::AlwaysHasAffineX;
use cggmp24::generic_ec::{NonZero, Point, Scalar};
use cggmp24::key_share::AuxInfo;
use cggmp24::signing::PresignaturePublicData;
use cggmp24::{IncompleteKeyShare, KeyShare, PregeneratedPrimes, Presignature};
use rand_core::{CryptoRng, RngCore};

use super::{EcdsaCurve, EcdsaScheme, Level};
use crate::ids::ParticipantId;
use crate::transcript::{Recordable, Transcript};

/// One party's four safe primes for aux info generation (1536 bits each at 128-bit security).
///
/// Generating them is the slow part of ECDSA setup (minutes of CPU with the pure-Rust backend):
/// the driver generates them in the background with [`SafePrimes::generate`] from OS randomness
/// and keeps a pool; a session only ever receives them. Secret: they are the factors of this
/// party's Paillier modulus. (cggmp24's big integers are not wiped on drop; see docs/security.md.)
pub struct SafePrimes(pub(crate) PregeneratedPrimes<Level>);

impl SafePrimes {
    /// Generates four safe primes. Driver work: minutes of CPU; never called by a session.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        SafePrimes(PregeneratedPrimes::generate(rng))
    }

    /// The primes as JSON, for the driver's own sealed store (and the test fixtures).
    pub fn to_json(&self) -> Result<String, String> {
        serde_json::to_string(&self.0).map_err(|e| e.to_string())
    }

    /// Primes stored by [`to_json`](Self::to_json). Refuses numbers smaller than the security
    /// level needs; whether they are safe primes is checked by the aux protocol's proofs.
    pub fn from_json(json: &str) -> Result<Self, String> {
        let p: PregeneratedPrimes<Level> = serde_json::from_str(json).map_err(|e| e.to_string())?;
        // Deserialisation does not check sizes; the TryFrom constructor does.
        PregeneratedPrimes::<Level>::try_from(p.into_primes())
            .map(SafePrimes)
            .map_err(|_| "a prime is smaller than the security level requires".to_string())
    }
}

impl fmt::Debug for SafePrimes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SafePrimes(<redacted>)")
    }
}

/// A key generation's result: this party's share, without Paillier keys yet.
pub struct EcdsaKeygenOutput<E: EcdsaCurve>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
{
    /// cggmp24's incomplete key share (validated by cggmp24). Secret.
    pub share: IncompleteKeyShare<E>,
    /// The key's participants in cggmp24 index order (index = position).
    pub parties: Vec<ParticipantId>,
}

impl<E: EcdsaCurve> EcdsaKeygenOutput<E>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
{
    /// The group public key, SEC1 compressed (33 bytes).
    pub fn public_key(&self) -> Vec<u8> {
        self.share
            .shared_public_key
            .to_bytes(true)
            .as_ref()
            .to_vec()
    }

    /// The threshold.
    pub fn threshold(&self) -> u16 {
        self.share
            .vss_setup
            .as_ref()
            .map_or(self.share.n(), |s| s.min_signers)
    }
}

impl<E: EcdsaCurve> fmt::Debug for EcdsaKeygenOutput<E>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EcdsaKeygenOutput")
            .field("scheme", &E::SCHEME)
            .field("share", &"<redacted>")
            .field("parties", &self.parties)
            .finish()
    }
}

impl<E: EcdsaCurve> Recordable for EcdsaKeygenOutput<E>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
{
    fn record(&self, t: &mut Transcript) {
        t.record("ecdsa keygen public key", &self.public_key());
        for (i, p) in self.share.public_shares.iter().enumerate() {
            t.record(
                &format!("ecdsa keygen public share {i}"),
                p.to_bytes(true).as_ref(),
            );
        }
    }
}

/// An aux info run's result: this party's Paillier secret and everyone's public parameters.
pub struct EcdsaAuxOutput {
    /// cggmp24's aux info (validated by cggmp24). Secret (holds this party's Paillier primes).
    pub aux: AuxInfo<Level>,
    /// The participants in cggmp24 index order.
    pub parties: Vec<ParticipantId>,
}

impl EcdsaAuxOutput {
    /// The aux info as JSON, for the driver's sealed store (and the test fixtures).
    pub fn to_json(&self) -> Result<String, String> {
        serde_json::to_string(&self.aux).map_err(|e| e.to_string())
    }

    /// Aux info stored by [`to_json`](Self::to_json), for `parties` (cggmp24 validates it while
    /// decoding: Paillier key sizes, one entry per party).
    pub fn from_json(json: &str, parties: Vec<ParticipantId>) -> Result<Self, String> {
        let aux: AuxInfo<Level> = serde_json::from_str(json).map_err(|e| e.to_string())?;
        if aux.N.len() != parties.len() {
            return Err(format!(
                "aux info for {} parties, {} given",
                aux.N.len(),
                parties.len()
            ));
        }
        Ok(EcdsaAuxOutput { aux, parties })
    }
}

impl fmt::Debug for EcdsaAuxOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EcdsaAuxOutput")
            .field("aux", &"<redacted>")
            .field("parties", &self.parties)
            .finish()
    }
}

impl Recordable for EcdsaAuxOutput {
    fn record(&self, t: &mut Transcript) {
        for (i, n) in self.aux.N.iter().enumerate() {
            t.record(
                &format!("ecdsa aux paillier N {i}"),
                n.to_string().as_bytes(),
            );
        }
    }
}

/// Why a key share could not be assembled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyError {
    /// The key generation and the aux info were run by different participant lists.
    PartiesDiffer,
    /// cggmp24 refused the combination.
    Invalid(String),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::PartiesDiffer => {
                f.write_str("key generation and aux info have different participants")
            }
            KeyError::Invalid(e) => write!(f, "invalid ECDSA key share: {e}"),
        }
    }
}

impl std::error::Error for KeyError {}

/// A complete ECDSA key share: the keygen share and the aux info, validated together.
pub struct EcdsaKey<E: EcdsaCurve>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
{
    /// cggmp24's key share. Secret.
    pub share: KeyShare<E, Level>,
    /// The participants in cggmp24 index order.
    pub parties: Vec<ParticipantId>,
}

impl<E: EcdsaCurve> EcdsaKey<E>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
{
    /// Joins a keygen share and the aux info of the same parties, and validates the result with
    /// cggmp24's key share validation (Paillier key sizes, the share matches its public share,
    /// the public shares interpolate to the public key, same `n` and index).
    pub fn from_parts(keygen: EcdsaKeygenOutput<E>, aux: EcdsaAuxOutput) -> Result<Self, KeyError> {
        if keygen.parties != aux.parties {
            return Err(KeyError::PartiesDiffer);
        }
        let share = KeyShare::from_parts((keygen.share, aux.aux))
            .map_err(|e| KeyError::Invalid(format!("{:?}", e.error())))?;
        Ok(EcdsaKey {
            share,
            parties: keygen.parties,
        })
    }

    /// The group public key, SEC1 compressed (33 bytes).
    pub fn public_key(&self) -> Vec<u8> {
        self.share
            .core
            .shared_public_key
            .to_bytes(true)
            .as_ref()
            .to_vec()
    }

    /// The group public key, SEC1 uncompressed (65 bytes).
    pub fn public_key_uncompressed(&self) -> Vec<u8> {
        self.share
            .core
            .shared_public_key
            .to_bytes(false)
            .as_ref()
            .to_vec()
    }

    /// The threshold.
    pub fn threshold(&self) -> u16 {
        self.share
            .core
            .vss_setup
            .as_ref()
            .map_or(self.share.core.public_shares.len() as u16, |s| {
                s.min_signers
            })
    }
}

impl<E: EcdsaCurve> fmt::Debug for EcdsaKey<E>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EcdsaKey")
            .field("scheme", &E::SCHEME)
            .field("share", &"<redacted>")
            .field("parties", &self.parties)
            .finish()
    }
}

/// One signer's presignature: usable for exactly one signature, by exactly these signers.
///
/// Not `Clone`: [`EcdsaSign`](super::EcdsaSign) takes it by value, so this API cannot sign twice
/// with one presignature (which would reveal the key). Keeping that true across crashes (marking
/// it consumed durably before the partial signature leaves) is the node's job.
pub struct EcdsaPresignature<E: EcdsaCurve>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
{
    pub(crate) presignature: Presignature<E>,
    pub(crate) public: PresignaturePublicData<E>,
    /// The signers in signing index order.
    pub(crate) signers: Vec<ParticipantId>,
    pub(crate) me: ParticipantId,
    pub(crate) public_key: Point<E>,
}

impl<E: EcdsaCurve> EcdsaPresignature<E>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
{
    /// The signers who hold the matching presignatures, in signing index order.
    pub fn signers(&self) -> &[ParticipantId] {
        &self.signers
    }

    /// The participant this presignature belongs to.
    pub fn me(&self) -> ParticipantId {
        self.me
    }

    /// The public nonce point Γ (SEC1 compressed): equal at every signer of one presigning run.
    pub fn nonce_point(&self) -> Vec<u8> {
        self.public.Gamma.to_bytes(true).as_ref().to_vec()
    }
}

impl<E: EcdsaCurve> fmt::Debug for EcdsaPresignature<E>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EcdsaPresignature")
            .field("scheme", &E::SCHEME)
            .field("presignature", &"<redacted>")
            .field("signers", &self.signers)
            .field("me", &self.me)
            .finish()
    }
}

impl<E: EcdsaCurve> Recordable for EcdsaPresignature<E>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
{
    fn record(&self, t: &mut Transcript) {
        t.record("ecdsa presignature Gamma", &self.nonce_point());
        for (i, c) in self.public.commitments.iter().enumerate() {
            t.record(
                &format!("ecdsa presignature commitment {i}"),
                &[
                    c.tilde_Delta.to_bytes(true).as_ref(),
                    c.tilde_S.to_bytes(true).as_ref(),
                ]
                .concat(),
            );
        }
    }
}

/// An ECDSA signature `(r, s)` with `s` in the lower half (low-S), 32-byte big-endian scalars.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct EcdsaSignature {
    /// The scheme it was made under.
    pub scheme: EcdsaScheme,
    /// `r`, big-endian.
    pub r: [u8; 32],
    /// `s`, big-endian, `s <= n/2`.
    pub s: [u8; 32],
    /// The recovery id: 0 or 1, the parity of the nonce point's y coordinate (for the low-S
    /// `s` above), with which a verifier recovers the public key from `(r, s)` and the message
    /// hash (Ethereum's `v` is `27 + id`). `None` only if the nonce point's x coordinate was not
    /// below the group order (probability about 2^-128), where ids 2 and 3 would be needed.
    pub recovery_id: Option<u8>,
}

impl EcdsaSignature {
    /// From cggmp24's signature (either sign of `s`), low-S normalised, with the recovery id
    /// found as `recovery` says.
    pub(crate) fn from_cggmp<E: EcdsaCurve>(
        sig: &cggmp24::Signature<E>,
        recovery: Recovery<'_, E>,
    ) -> Option<Self>
    where
        NonZero<Point<E>>: AlwaysHasAffineX<E>,
    {
        let normalized = sig.normalize_s();
        let r: [u8; 32] = normalized.r.to_be_bytes().as_ref().try_into().ok()?;
        let s: [u8; 32] = normalized.s.to_be_bytes().as_ref().try_into().ok()?;
        let recovery_id = match recovery {
            Recovery::NoncePoint(big_r) => {
                // v is the parity of R's y, flipped when normalising negated s (which turns the
                // signature into the one for -R); R's x must be r itself (no reduction).
                let enc = big_r.to_bytes(true);
                let enc = enc.as_ref();
                let negated = normalized.s != sig.s;
                (enc.len() == 33 && enc[1..] == r)
                    .then(|| u8::from(enc[0] == 0x03) ^ u8::from(negated))
            }
            Recovery::Search { public_key, z } => {
                recovery_id(&normalized.r, &normalized.s, z, public_key)
            }
            Recovery::Skip => None,
        };
        Some(EcdsaSignature {
            scheme: E::SCHEME,
            r,
            s,
            recovery_id,
        })
    }

    /// The 65-byte `r || s || v` encoding with `v` the recovery id (0 or 1), as secp256k1
    /// key-recovering verifiers take it; `None` without a recovery id.
    pub fn to_recoverable(&self) -> Option<[u8; 65]> {
        let v = self.recovery_id?;
        let mut out = [0u8; 65];
        out[..64].copy_from_slice(&self.to_compact());
        out[64] = v;
        Some(out)
    }

    /// The 64-byte `r || s` encoding.
    pub fn to_compact(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&self.r);
        out[32..].copy_from_slice(&self.s);
        out
    }

    /// The DER encoding (`SEQUENCE { INTEGER r, INTEGER s }`, minimal integers), as X.509, TLS
    /// and OpenSSL expect.
    pub fn to_der(&self) -> Vec<u8> {
        fn integer(bytes: &[u8; 32]) -> Vec<u8> {
            let start = bytes.iter().position(|b| *b != 0).unwrap_or(31);
            let mut v = Vec::with_capacity(35);
            v.push(0x02);
            let body = &bytes[start..];
            let pad = body[0] & 0x80 != 0;
            v.push((body.len() + usize::from(pad)) as u8);
            if pad {
                v.push(0);
            }
            v.extend_from_slice(body);
            v
        }
        let (r, s) = (integer(&self.r), integer(&self.s));
        let mut out = Vec::with_capacity(2 + r.len() + s.len());
        out.push(0x30);
        out.push((r.len() + s.len()) as u8);
        out.extend_from_slice(&r);
        out.extend_from_slice(&s);
        out
    }
}

/// How [`EcdsaSignature::from_cggmp`] finds the recovery id.
pub(crate) enum Recovery<'a, E: EcdsaCurve>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
{
    /// From the nonce point `R` (whose x is `r`): free.
    NoncePoint(&'a Point<E>),
    /// By recovering the key for both parities and comparing (five scalar multiplications),
    /// when `R` is not known (cggmp24's interactive signing returns only `(r, s)`).
    Search {
        public_key: &'a Point<E>,
        z: &'a Scalar<E>,
    },
    /// None (the bare benchmark baseline in `fixtures`).
    #[cfg_attr(not(feature = "test-fixtures"), allow(dead_code))]
    Skip,
}

/// The `v` in {0, 1} for which the point `R` with x = `r` and y parity `v` satisfies
/// `Q = r⁻¹ (s·R − z·G)`, i.e. with which a verifier recovers `public_key`.
fn recovery_id<E: EcdsaCurve>(
    r: &NonZero<Scalar<E>>,
    s: &NonZero<Scalar<E>>,
    z: &Scalar<E>,
    public_key: &Point<E>,
) -> Option<u8>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
{
    let r_inv = r.invert();
    let x = r.to_be_bytes();
    (0u8..2).find(|v| {
        let mut compressed = Vec::with_capacity(1 + x.len());
        compressed.push(0x02 + v);
        compressed.extend_from_slice(x.as_ref());
        Point::<E>::from_bytes(&compressed).is_ok_and(|big_r| {
            (big_r * s.as_ref() - Point::generator() * z) * r_inv.as_ref() == *public_key
        })
    })
}

impl Recordable for EcdsaSignature {
    fn record(&self, t: &mut Transcript) {
        t.record("ecdsa signature", &self.to_compact());
    }
}
