//! Scheme-erased sessions: the node runs sessions of every scheme side by side, so it drives them
//! through one object-safe interface and gets results as bytes.

use std::collections::BTreeSet;

use frost_core::keys::{KeyPackage, PublicKeyPackage};

use cggmp24::supported_curves::{Secp256k1, Secp256r1};

use crate::ecdsa::SafePrimes;
use crate::frost::{
    canonical, ConfigError, DkgConfig, FrostDkg, FrostSign, SignConfig, SignOutput,
};
use crate::ids::ParticipantId;
use crate::node::ecdsa::{EcdsaNodeDkg, EcdsaNodeReshare, EcdsaNodeSign, EcdsaRunParams};
use crate::persist::{KeyVersion, SecretBytes};
use crate::reshare::{FrostReshare, ReshareConfig, ReshareOutput};
use crate::rng::Seed;
use crate::scheme::{FrostScheme, Scheme};
use crate::session::{Failure, Payload, Rejection, Session, SessionInput, SessionOutput};
use crate::time::Instant;

/// A session's output with scheme-specific values encoded.
#[derive(Debug)]
pub enum ErasedOutput {
    /// Send a message.
    Send {
        /// To whom.
        to: ParticipantId,
        /// What.
        payload: Payload,
    },
    /// A peer's message was refused.
    Misbehaved {
        /// Who sent it.
        from: ParticipantId,
        /// Why.
        reason: Rejection,
    },
    /// A DKG ended: this node's key package (secret) and the public key package.
    DkgDone(Result<(SecretBytes, Vec<u8>), Failure>),
    /// A signing session ended: `Some(signatures)` at the coordinator, `None` at a signer.
    SignDone(Result<Option<Vec<Vec<u8>>>, Failure>),
    /// A reshare ended: `Some` at a new member (its share of the new version, secret; the
    /// new public key package; the confirmation digest), `None` at a dealer that is not one.
    ReshareDone(Result<Option<ReshareShare>, Failure>),
    /// An ECDSA presigning run ended: this signer's presignature, encoded (secret).
    PresignDone(Result<SecretBytes, Failure>),
}

/// A new member's result of a reshare, encoded.
#[derive(Debug)]
pub struct ReshareShare {
    /// The new version.
    pub version: KeyVersion,
    /// This member's key package of the new version (secret).
    pub share: SecretBytes,
    /// The new public key package.
    pub public_key_package: Vec<u8>,
    /// The digest every new member confirmed.
    pub confirmation_digest: [u8; 32],
}

/// An object-safe session of any scheme.
pub trait ErasedSession {
    /// See [`Session::handle_input`].
    fn handle_input(&mut self, input: SessionInput<'_>);
    /// See [`Session::poll_output`], with results encoded.
    fn poll_output(&mut self) -> Option<ErasedOutput>;
    /// See [`Session::poll_timeout`].
    fn deadline(&self) -> Option<Instant>;
    /// Whether the run waits for one set of this node's pregenerated safe primes (an ECDSA aux
    /// info generation); the node answers with [`ErasedSession::give_primes`].
    fn wants_primes(&self) -> bool {
        false
    }
    /// The primes asked for, or `None` if the node has none ready (the run then fails, saying so).
    fn give_primes(&mut self, primes: Option<SafePrimes>) {
        drop(primes);
    }
}

pub(crate) fn library_failure(what: &str) -> Failure {
    Failure {
        kind: crate::session::FailureKind::Library(what.to_string()),
        culprits: BTreeSet::new(),
    }
}

impl<C: FrostScheme> ErasedSession for FrostDkg<C> {
    fn handle_input(&mut self, input: SessionInput<'_>) {
        Session::handle_input(self, input)
    }
    fn poll_output(&mut self) -> Option<ErasedOutput> {
        Some(match Session::poll_output(self)? {
            SessionOutput::Send { to, payload } => ErasedOutput::Send { to, payload },
            SessionOutput::Misbehaved { from, reason } => ErasedOutput::Misbehaved { from, reason },
            SessionOutput::Done(Ok(out)) => {
                let kp = canonical::encode(&out.key_package);
                let pkp = canonical::encode(&out.public_key_package);
                ErasedOutput::DkgDone(match (kp, pkp) {
                    (Ok(kp), Ok(pkp)) => Ok((SecretBytes::new(kp), pkp)),
                    _ => Err(library_failure("could not encode the DKG result")),
                })
            }
            SessionOutput::Done(Err(f)) => ErasedOutput::DkgDone(Err(f)),
        })
    }
    fn deadline(&self) -> Option<Instant> {
        self.poll_timeout().map(|(at, _)| at)
    }
}

impl<C: FrostScheme> ErasedSession for FrostSign<C> {
    fn handle_input(&mut self, input: SessionInput<'_>) {
        Session::handle_input(self, input)
    }
    fn poll_output(&mut self) -> Option<ErasedOutput> {
        Some(match Session::poll_output(self)? {
            SessionOutput::Send { to, payload } => ErasedOutput::Send { to, payload },
            SessionOutput::Misbehaved { from, reason } => ErasedOutput::Misbehaved { from, reason },
            SessionOutput::Done(Ok(SignOutput::Signatures(sigs))) => {
                let encoded: Result<Vec<_>, _> = sigs.iter().map(canonical::encode).collect();
                ErasedOutput::SignDone(
                    encoded
                        .map(Some)
                        .map_err(|_| library_failure("could not encode a signature")),
                )
            }
            SessionOutput::Done(Ok(SignOutput::SharesSent)) => ErasedOutput::SignDone(Ok(None)),
            SessionOutput::Done(Err(f)) => ErasedOutput::SignDone(Err(f)),
        })
    }
    fn deadline(&self) -> Option<Instant> {
        self.poll_timeout().map(|(at, _)| at)
    }
}

impl<C: FrostScheme> ErasedSession for FrostReshare<C> {
    fn handle_input(&mut self, input: SessionInput<'_>) {
        Session::handle_input(self, input)
    }
    fn poll_output(&mut self) -> Option<ErasedOutput> {
        Some(match Session::poll_output(self)? {
            SessionOutput::Send { to, payload } => ErasedOutput::Send { to, payload },
            SessionOutput::Misbehaved { from, reason } => ErasedOutput::Misbehaved { from, reason },
            SessionOutput::Done(Ok(ReshareOutput::Dealt { .. })) => {
                ErasedOutput::ReshareDone(Ok(None))
            }
            SessionOutput::Done(Ok(ReshareOutput::Member(m))) => {
                let kp = canonical::encode(&m.key_package);
                let pkp = canonical::encode(&m.public_key_package);
                ErasedOutput::ReshareDone(match (kp, pkp) {
                    (Ok(kp), Ok(pkp)) => Ok(Some(ReshareShare {
                        version: m.version,
                        share: SecretBytes::new(kp),
                        public_key_package: pkp,
                        confirmation_digest: m.confirmation_digest,
                    })),
                    _ => Err(library_failure("could not encode the reshare result")),
                })
            }
            SessionOutput::Done(Err(f)) => ErasedOutput::ReshareDone(Err(f)),
        })
    }
    fn deadline(&self) -> Option<Instant> {
        self.poll_timeout().map(|(at, _)| at)
    }
}

/// Why a session could not be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartError {
    /// The configuration is invalid.
    Config(ConfigError),
    /// Stored key material did not decode (corrupt store or wrong scheme).
    BadKeyMaterial(&'static str),
}

/// Starts a DKG session of `scheme`; `ecdsa` is used by the ECDSA schemes only.
pub fn start_dkg(
    scheme: Scheme,
    config: DkgConfig,
    ecdsa: EcdsaRunParams,
    seed: &Seed,
    now: Instant,
) -> Result<Box<dyn ErasedSession>, StartError> {
    fn make<C: FrostScheme>(
        config: DkgConfig,
        seed: &Seed,
        now: Instant,
    ) -> Result<Box<dyn ErasedSession>, StartError> {
        Ok(Box::new(
            FrostDkg::<C>::new(config, seed, now).map_err(StartError::Config)?,
        ))
    }
    match scheme {
        Scheme::FrostEd25519 => make::<frost_ed25519::Ed25519Sha512>(config, seed, now),
        Scheme::FrostSecp256k1 => make::<frost_secp256k1::Secp256K1Sha256>(config, seed, now),
        Scheme::FrostP256 => make::<frost_p256::P256Sha256>(config, seed, now),
        Scheme::FrostSecp256k1Taproot => {
            make::<frost_secp256k1_tr::Secp256K1Sha256TR>(config, seed, now)
        }
        Scheme::EcdsaSecp256k1 => Ok(Box::new(EcdsaNodeDkg::<Secp256k1>::new(
            config, ecdsa, seed, now,
        )?)),
        Scheme::EcdsaP256 => Ok(Box::new(EcdsaNodeDkg::<Secp256r1>::new(
            config, ecdsa, seed, now,
        )?)),
    }
}

/// Starts a signing session of `scheme`. `key_package` is this node's share if it signs;
/// `public_key_package` is required if it coordinates. `session_id` is unique per run and equal
/// at every signer (the ECDSA runs bind their messages to it).
pub fn start_sign(
    scheme: Scheme,
    config: SignConfig,
    key_package: Option<&SecretBytes>,
    public_key_package: Option<&[u8]>,
    session_id: &[u8],
    seed: &Seed,
    now: Instant,
) -> Result<Box<dyn ErasedSession>, StartError> {
    fn make<C: FrostScheme>(
        config: SignConfig,
        key_package: Option<&SecretBytes>,
        public_key_package: Option<&[u8]>,
        seed: &Seed,
        now: Instant,
    ) -> Result<Box<dyn ErasedSession>, StartError> {
        let kp = key_package
            .map(|b| canonical::decode::<KeyPackage<C>>(b.expose(), None, "key package"))
            .transpose()
            .map_err(|_| StartError::BadKeyMaterial("stored key package does not decode"))?;
        let pkp = public_key_package
            .map(|b| canonical::decode::<PublicKeyPackage<C>>(b, None, "public key package"))
            .transpose()
            .map_err(|_| StartError::BadKeyMaterial("public key package does not decode"))?;
        Ok(Box::new(
            FrostSign::<C>::new(config, kp, pkp, seed, now).map_err(StartError::Config)?,
        ))
    }
    match scheme {
        Scheme::FrostEd25519 => {
            make::<frost_ed25519::Ed25519Sha512>(config, key_package, public_key_package, seed, now)
        }
        Scheme::FrostSecp256k1 => make::<frost_secp256k1::Secp256K1Sha256>(
            config,
            key_package,
            public_key_package,
            seed,
            now,
        ),
        Scheme::FrostP256 => {
            make::<frost_p256::P256Sha256>(config, key_package, public_key_package, seed, now)
        }
        Scheme::FrostSecp256k1Taproot => make::<frost_secp256k1_tr::Secp256K1Sha256TR>(
            config,
            key_package,
            public_key_package,
            seed,
            now,
        ),
        Scheme::EcdsaSecp256k1 => Ok(Box::new(EcdsaNodeSign::<Secp256k1>::new(
            config,
            key_package,
            public_key_package,
            session_id,
            seed,
            now,
        )?)),
        Scheme::EcdsaP256 => Ok(Box::new(EcdsaNodeSign::<Secp256r1>::new(
            config,
            key_package,
            public_key_package,
            session_id,
            seed,
            now,
        )?)),
    }
}

/// The group public key (the standard encoding for the scheme) from a public key package.
/// An ECDSA key's package is the FROST package of its curve: its key is SEC1 compressed.
pub fn group_public_key(scheme: Scheme, public_key_package: &[u8]) -> Option<Vec<u8>> {
    fn get<C: FrostScheme>(pkp: &[u8]) -> Option<Vec<u8>> {
        let pkp = canonical::decode::<PublicKeyPackage<C>>(pkp, None, "pkp").ok()?;
        pkp.verifying_key().serialize().ok()
    }
    match scheme {
        Scheme::FrostEd25519 => get::<frost_ed25519::Ed25519Sha512>(public_key_package),
        Scheme::FrostSecp256k1 => get::<frost_secp256k1::Secp256K1Sha256>(public_key_package),
        Scheme::FrostP256 => get::<frost_p256::P256Sha256>(public_key_package),
        Scheme::FrostSecp256k1Taproot => {
            get::<frost_secp256k1_tr::Secp256K1Sha256TR>(public_key_package)
        }
        Scheme::EcdsaSecp256k1 => get::<frost_secp256k1::Secp256K1Sha256>(public_key_package),
        Scheme::EcdsaP256 => get::<frost_p256::P256Sha256>(public_key_package),
    }
}

/// The FROST key package (canonical encoding) in a stored share of `scheme`: the share itself
/// for FROST schemes, its FROST form for ECDSA. For checkers that inspect stored shares.
pub fn frost_key_package(scheme: Scheme, share: &SecretBytes) -> Result<SecretBytes, StartError> {
    match scheme {
        Scheme::FrostEd25519
        | Scheme::FrostSecp256k1
        | Scheme::FrostP256
        | Scheme::FrostSecp256k1Taproot => Ok(share.clone()),
        Scheme::EcdsaSecp256k1 => {
            crate::node::ecdsa::frost_key_package::<Secp256k1>(share.expose())
        }
        Scheme::EcdsaP256 => crate::node::ecdsa::frost_key_package::<Secp256r1>(share.expose()),
    }
}

/// Starts a reshare session of `scheme`. `old_key_package` is this node's share of the version
/// being reshared (required of a dealer); `old_public_key_package` is that version's package.
pub fn start_reshare(
    scheme: Scheme,
    config: ReshareConfig,
    old_key_package: Option<&SecretBytes>,
    old_public_key_package: &[u8],
    ecdsa: EcdsaRunParams,
    seed: &Seed,
    now: Instant,
) -> Result<Box<dyn ErasedSession>, StartError> {
    fn make<C: FrostScheme>(
        config: ReshareConfig,
        old_key_package: Option<&SecretBytes>,
        old_public_key_package: &[u8],
        seed: &Seed,
        now: Instant,
    ) -> Result<Box<dyn ErasedSession>, StartError> {
        let kp = old_key_package
            .map(|b| canonical::decode::<KeyPackage<C>>(b.expose(), None, "key package"))
            .transpose()
            .map_err(|_| StartError::BadKeyMaterial("stored key package does not decode"))?;
        let pkp = canonical::decode::<PublicKeyPackage<C>>(
            old_public_key_package,
            None,
            "public key package",
        )
        .map_err(|_| StartError::BadKeyMaterial("public key package does not decode"))?;
        Ok(Box::new(
            FrostReshare::<C>::new(config, kp.as_ref(), pkp, seed, now)
                .map_err(StartError::Config)?,
        ))
    }
    let (kp, pkp) = (old_key_package, old_public_key_package);
    match scheme {
        Scheme::FrostEd25519 => make::<frost_ed25519::Ed25519Sha512>(config, kp, pkp, seed, now),
        Scheme::FrostSecp256k1 => {
            make::<frost_secp256k1::Secp256K1Sha256>(config, kp, pkp, seed, now)
        }
        Scheme::FrostP256 => make::<frost_p256::P256Sha256>(config, kp, pkp, seed, now),
        Scheme::FrostSecp256k1Taproot => {
            make::<frost_secp256k1_tr::Secp256K1Sha256TR>(config, kp, pkp, seed, now)
        }
        Scheme::EcdsaSecp256k1 => Ok(Box::new(EcdsaNodeReshare::<Secp256k1>::new(
            config, kp, pkp, ecdsa, seed, now,
        )?)),
        Scheme::EcdsaP256 => Ok(Box::new(EcdsaNodeReshare::<Secp256r1>::new(
            config, kp, pkp, ecdsa, seed, now,
        )?)),
    }
}
