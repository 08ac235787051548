//! The cggmp24 protocols as sessions: key generation, aux info, presigning, interactive signing.

use std::collections::BTreeSet;

use cggmp24::generic_ec::coords::{AlwaysHasAffineX, HasAffineX};
use cggmp24::generic_ec::{NonZero, Point, Scalar};
use cggmp24::{ExecutionId, PrehashedDataToSign};
use round_based::state_machine::wrap_protocol;

use super::mpc::{LibError, Machine, MpcSession};
use super::types::{
    EcdsaAuxOutput, EcdsaKey, EcdsaKeygenOutput, EcdsaPresignature, EcdsaSignature, Recovery,
    SafePrimes,
};
use super::{execution_id, EcdsaCurve, Hash, Level};
use crate::frost::ConfigError;
use crate::ids::ParticipantId;
use crate::rng::Seed;
use crate::time::{Duration, Instant};

/// cggmp24's key generation message (threshold variant).
pub type KeygenMsg<E> = cggmp24::keygen::ThresholdMsg<E, Level, Hash>;
/// cggmp24's aux info message.
pub type AuxMsg = cggmp24::key_refresh::msg::Msg<Hash, Level>;
/// cggmp24's signing and presigning message.
pub type SignMsg<E> = cggmp24::signing::msg::Msg<E, Hash>;

/// Distributed key generation (t-of-n, no dealer).
pub type EcdsaKeygen<E> = MpcSession<KeygenMsg<E>, EcdsaKeygenOutput<E>>;
/// Aux info generation (Paillier keys, ring-Pedersen parameters and their proofs).
pub type EcdsaAux = MpcSession<AuxMsg, EcdsaAuxOutput>;
/// Presigning among exactly t signers.
pub type EcdsaPresign<E> = MpcSession<SignMsg<E>, EcdsaPresignature<E>>;
/// The full interactive signing protocol for a 32-byte prehash.
pub type EcdsaInteractiveSign<E> = MpcSession<SignMsg<E>, EcdsaSignature>;

/// The largest keygen message accepted, per participant (honest ones are under 1 KiB per party
/// plus a fixed part; measured in the tests).
pub(crate) const KEYGEN_BYTES_BASE: usize = 16 * 1024;
pub(crate) const KEYGEN_BYTES_PER_PARTY: usize = 2 * 1024;
/// The largest aux info message accepted. The round-3 proofs (Π_mod, Π_fac) dominate and do not
/// depend on n; the round-2 message carries one ring-Pedersen proof; measured in the tests.
pub(crate) const AUX_BYTES: usize = 1024 * 1024;
/// The largest presigning or signing message accepted (Paillier ciphertexts and proofs over
/// 3072-bit moduli; independent of n).
pub(crate) const SIGN_BYTES: usize = 64 * 1024;

/// What a key generation needs.
#[derive(Clone, Debug)]
pub struct KeygenConfig {
    /// This participant.
    pub me: ParticipantId,
    /// Everyone who will hold a share, `me` included.
    pub participants: BTreeSet<ParticipantId>,
    /// How many shares it takes to sign (t >= 2).
    pub threshold: u16,
    /// Unique per run and equal at every participant (the node uses the task id).
    pub session_id: Vec<u8>,
    /// How long each round may take before the silent parties are named.
    pub round_timeout: Duration,
}

/// What an aux info run needs (the primes come separately, by value).
#[derive(Clone, Debug)]
pub struct AuxConfig {
    /// This participant.
    pub me: ParticipantId,
    /// The participants of the key(s) this aux info will serve, `me` included.
    pub participants: BTreeSet<ParticipantId>,
    /// Unique per run and equal at every participant.
    pub session_id: Vec<u8>,
    /// How long each round may take.
    pub round_timeout: Duration,
}

/// What a presigning or interactive signing run needs (the key comes separately).
#[derive(Clone, Debug)]
pub struct SignersConfig {
    /// This signer.
    pub me: ParticipantId,
    /// Exactly `threshold` of the key's participants, `me` included.
    pub signers: BTreeSet<ParticipantId>,
    /// Unique per run and equal at every signer.
    pub session_id: Vec<u8>,
    /// How long each round may take.
    pub round_timeout: Duration,
}

fn check_group(
    me: ParticipantId,
    participants: &BTreeSet<ParticipantId>,
) -> Result<u16, ConfigError> {
    let n = participants.len();
    if !(2..=usize::from(u16::MAX)).contains(&n) {
        return Err(ConfigError::BadParticipantCount(n));
    }
    if !participants.contains(&me) {
        return Err(ConfigError::NotAParticipant);
    }
    Ok(n as u16)
}

fn index_in(p: ParticipantId, list: &[ParticipantId]) -> Option<u16> {
    list.iter()
        .position(|x| *x == p)
        .and_then(|i| u16::try_from(i).ok())
}

impl<E: EcdsaCurve> MpcSession<KeygenMsg<E>, EcdsaKeygenOutput<E>>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
{
    /// Starts a key generation and queues this participant's first messages.
    pub fn new(config: KeygenConfig, seed: &Seed, now: Instant) -> Result<Self, ConfigError> {
        let n = check_group(config.me, &config.participants)?;
        if config.threshold < 2 || config.threshold > n {
            return Err(ConfigError::BadThreshold {
                threshold: config.threshold,
                participants: usize::from(n),
            });
        }
        let parties: Vec<ParticipantId> = config.participants.iter().copied().collect();
        let i = index_in(config.me, &parties).ok_or(ConfigError::NotAParticipant)?;
        let eid = execution_id("keygen", Some(E::SCHEME), &config.session_id);
        let t = config.threshold;
        let mut rng = seed.rng();
        let out_parties = parties.clone();
        let machine: Machine<KeygenMsg<E>, EcdsaKeygenOutput<E>> =
            Box::new(wrap_protocol(move |party| async move {
                let share = cggmp24::keygen::<E>(ExecutionId::new(&eid), i, n)
                    .set_threshold(t)
                    .start(&mut rng, party)
                    .await
                    .map_err(|e| LibError::of(&e))?;
                Ok(EcdsaKeygenOutput {
                    share,
                    parties: out_parties,
                })
            }));
        let max = KEYGEN_BYTES_BASE + KEYGEN_BYTES_PER_PARTY * usize::from(n);
        Ok(MpcSession::start(
            "keygen",
            config.me,
            parties,
            max,
            config.round_timeout,
            machine,
            now,
        ))
    }
}

impl MpcSession<AuxMsg, EcdsaAuxOutput> {
    /// Starts an aux info run with this party's pregenerated safe primes.
    pub fn new(
        config: AuxConfig,
        primes: SafePrimes,
        seed: &Seed,
        now: Instant,
    ) -> Result<Self, ConfigError> {
        let n = check_group(config.me, &config.participants)?;
        let parties: Vec<ParticipantId> = config.participants.iter().copied().collect();
        let i = index_in(config.me, &parties).ok_or(ConfigError::NotAParticipant)?;
        let eid = execution_id("aux", None, &config.session_id);
        let mut rng = seed.rng();
        let out_parties = parties.clone();
        let machine: Machine<AuxMsg, EcdsaAuxOutput> =
            Box::new(wrap_protocol(move |party| async move {
                let aux = cggmp24::aux_info_gen(ExecutionId::new(&eid), i, n, primes.0)
                    .start(&mut rng, party)
                    .await
                    .map_err(|e| LibError::of(&e))?;
                Ok(EcdsaAuxOutput {
                    aux,
                    parties: out_parties,
                })
            }));
        Ok(MpcSession::start(
            "aux",
            config.me,
            parties,
            AUX_BYTES,
            config.round_timeout,
            machine,
            now,
        ))
    }
}

/// Checks a signing configuration against the key; returns (signers in index order, my signing
/// index, each signer's keygen index).
fn signing_setup<E: EcdsaCurve>(
    config: &SignersConfig,
    key: &EcdsaKey<E>,
) -> Result<(Vec<ParticipantId>, u16, Vec<u16>), ConfigError>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
{
    let t = key.threshold();
    if config.signers.len() != usize::from(t) {
        return Err(ConfigError::BadThreshold {
            threshold: t,
            participants: config.signers.len(),
        });
    }
    if !config.signers.contains(&config.me) {
        return Err(ConfigError::NotAParticipant);
    }
    if index_in(config.me, &key.parties) != Some(key.share.core.i) {
        return Err(ConfigError::KeyMaterialMismatch(
            "the key share belongs to another participant",
        ));
    }
    let signers: Vec<ParticipantId> = config.signers.iter().copied().collect();
    let at_keygen = signers
        .iter()
        .map(|s| index_in(*s, &key.parties))
        .collect::<Option<Vec<u16>>>()
        .ok_or(ConfigError::KeyMaterialMismatch(
            "a signer does not hold a share of this key",
        ))?;
    let i = index_in(config.me, &signers).ok_or(ConfigError::NotAParticipant)?;
    Ok((signers, i, at_keygen))
}

impl<E: EcdsaCurve> MpcSession<SignMsg<E>, EcdsaPresignature<E>>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
    Point<E>: HasAffineX<E>,
{
    /// Starts presigning with `key` among exactly `threshold` signers.
    pub fn new(
        config: SignersConfig,
        key: &EcdsaKey<E>,
        seed: &Seed,
        now: Instant,
    ) -> Result<Self, ConfigError> {
        let (signers, i, at_keygen) = signing_setup(&config, key)?;
        let eid = execution_id("presign", Some(E::SCHEME), &config.session_id);
        let share = key.share.clone();
        let mut rng = seed.rng();
        let out_signers = signers.clone();
        let me = config.me;
        let machine: Machine<SignMsg<E>, EcdsaPresignature<E>> =
            Box::new(wrap_protocol(move |party| async move {
                let (presignature, public) =
                    cggmp24::signing(ExecutionId::new(&eid), i, &at_keygen, &share)
                        .generate_presignature(&mut rng, party)
                        .await
                        .map_err(|e| LibError::of(&e))?;
                Ok(EcdsaPresignature {
                    presignature,
                    public,
                    signers: out_signers,
                    me,
                    public_key: *share.core.shared_public_key,
                })
            }));
        Ok(MpcSession::start(
            "presign",
            config.me,
            signers,
            SIGN_BYTES,
            config.round_timeout,
            machine,
            now,
        ))
    }
}

impl<E: EcdsaCurve> MpcSession<SignMsg<E>, EcdsaSignature>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
    Point<E>: HasAffineX<E>,
{
    /// Starts the full interactive signing protocol for a 32-byte `prehash` (reduced mod the
    /// curve order, as ECDSA does with a 256-bit hash). Use this, not a presignature, whenever
    /// only a hash is known: presignatures with caller-chosen hashes allow forgeries
    /// (CVE-2025-66017); here the hash is fixed before any nonce is drawn.
    ///
    /// Every signer checks the final signature against the group key before reporting success.
    pub fn new(
        config: SignersConfig,
        key: &EcdsaKey<E>,
        prehash: [u8; 32],
        seed: &Seed,
        now: Instant,
    ) -> Result<Self, ConfigError> {
        let (signers, i, at_keygen) = signing_setup(&config, key)?;
        let eid = execution_id("sign", Some(E::SCHEME), &config.session_id);
        let share = key.share.clone();
        let mut rng = seed.rng();
        let machine: Machine<SignMsg<E>, EcdsaSignature> =
            Box::new(wrap_protocol(move |party| async move {
                let data = PrehashedDataToSign::<E>::from_scalar(
                    Scalar::<E>::from_be_bytes_mod_order(prehash),
                );
                let sig = cggmp24::signing(ExecutionId::new(&eid), i, &at_keygen, &share)
                    .sign(&mut rng, party, &data)
                    .await
                    .map_err(|e| LibError::of(&e))?;
                sig.verify(&share.core.shared_public_key, &data)
                    .map_err(|_| LibError::msg("the combined signature does not verify"))?;
                EcdsaSignature::from_cggmp(
                    &sig,
                    Recovery::Search {
                        public_key: &share.core.shared_public_key,
                        z: &cggmp24::signing::AnyDataToSign::to_scalar(&data),
                    },
                )
                .ok_or_else(|| LibError::msg("signature scalars are not 32 bytes"))
            }));
        Ok(MpcSession::start(
            "sign",
            config.me,
            signers,
            SIGN_BYTES,
            config.round_timeout,
            machine,
            now,
        ))
    }
}
