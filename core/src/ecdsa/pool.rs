//! Presignature pools: presignatures kept ready per key, each spent at most once, across crashes.
//!
//! Signing twice with one presignature reveals the key, so "at most once" must survive a crash at
//! any point. The pool makes the order explicit with writes the driver persists and acknowledges
//! ([`PoolWrite`]), the same discipline as the node's `Persist` outputs:
//!
//! 1. [`PresignaturePool::insert`] files a finished presignature and returns a
//!    [`PoolWrite::Store`] (the sealed bytes). It becomes usable only once that write is durable
//!    ([`PresignaturePool::stored`]).
//! 2. [`PresignaturePool::begin_spend`] reserves a usable presignature for one message and returns a
//!    [`PoolWrite::Consume`]: the driver must durably delete the stored presignature and record
//!    its id as spent. Nothing leaves the node yet.
//! 3. Only [`PresignaturePool::consumed`], the acknowledgement of that write, creates the online
//!    signing session ([`EcdsaSign`]), whose first outputs are the partial signature.
//!
//! A crash before step 3 loses the reservation and, if the write did not land, leaves the
//! presignature usable again (no partial signature of it ever left, so that is safe). A crash
//! after step 3 finds it deleted and spent on disk, and [`PresignaturePool::restore`] never
//! brings it back. A repeated or late request for a spent id is refused ([`PoolError::Spent`]).
//! The property test in this module crashes a node at random points (after the mark, before the
//! send, after the send) and checks that no presignature's partial signature leaves twice.
//!
//! Refill: [`PresignaturePool::wanted`] says how many presignatures a signer set lacks to reach
//! the pool's target depth; the driver starts presigning runs for them at low priority (they
//! take seconds of CPU each) so that live signing requests are never queued behind a refill.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use cggmp24::generic_ec::coords::AlwaysHasAffineX;
use cggmp24::generic_ec::{NonZero, Point, Scalar, SecretScalar};
use cggmp24::signing::{PresignatureCommitment, PresignaturePublicData};
use cggmp24::Presignature;
use zeroize::Zeroizing;

use super::online::{EcdsaSign, EcdsaSignConfig};
use super::types::EcdsaPresignature;
use super::EcdsaCurve;
use crate::codec::{DecodeError, Reader, Writer};
use crate::frost::ConfigError;
use crate::ids::ParticipantId;
use crate::time::Instant;

/// A presignature's identity, equal at every signer of its presigning run: derived from the run's
/// session id (which the node makes unique per run), so the coordinator can name it in a request.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PresignatureId(pub [u8; 32]);

impl PresignatureId {
    /// The id of the presignatures made by the presigning run `session_id`.
    pub fn of_run(session_id: &[u8]) -> Self {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(b"keyshard/ecdsa/presignature-id/v1");
        h.update((session_id.len() as u64).to_be_bytes());
        h.update(session_id);
        PresignatureId(h.finalize().into())
    }
}

impl fmt::Debug for PresignatureId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PresignatureId(")?;
        for b in &self.0[..6] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "..)")
    }
}

/// A write the driver must make durable, then acknowledge.
pub enum PoolWrite {
    /// Store this presignature (secret: the driver seals it at rest, like a key share).
    Store {
        /// Its id.
        id: PresignatureId,
        /// [`encode_presignature`]'s bytes, wiped on drop.
        bytes: Zeroizing<Vec<u8>>,
    },
    /// Delete the stored presignature and record `id` as spent, in one atomic write. Its partial
    /// signature leaves the node only after this is acknowledged.
    Consume {
        /// Its id.
        id: PresignatureId,
    },
}

impl fmt::Debug for PoolWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolWrite::Store { id, .. } => write!(f, "Store({id:?}, <redacted>)"),
            PoolWrite::Consume { id } => write!(f, "Consume({id:?})"),
        }
    }
}

/// Why a pool operation was refused. Nothing changes when one is returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PoolError {
    /// The id is already in the pool (stored, being stored or being spent).
    Duplicate(PresignatureId),
    /// The id was spent: its partial signature may have left; it can never be used again.
    Spent(PresignatureId),
    /// No usable presignature with this id (unknown, not yet durable, or being spent).
    NotReady(PresignatureId),
    /// An acknowledgement for a write the pool did not ask for (or already acknowledged).
    UnexpectedAck(PresignatureId),
    /// The presignature belongs to another key or to another participant.
    WrongKey,
    /// The signing request itself is invalid (message too large).
    Config(ConfigError),
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::Duplicate(id) => write!(f, "presignature {id:?} is already in the pool"),
            PoolError::Spent(id) => write!(f, "presignature {id:?} was already spent"),
            PoolError::NotReady(id) => write!(f, "presignature {id:?} is not ready to spend"),
            PoolError::UnexpectedAck(id) => {
                write!(
                    f,
                    "acknowledgement for presignature {id:?} that was not pending"
                )
            }
            PoolError::WrongKey => {
                f.write_str("the presignature belongs to another key or participant")
            }
            PoolError::Config(e) => write!(f, "invalid signing request: {e}"),
        }
    }
}

impl std::error::Error for PoolError {}

/// When the online signing session (and so the partial signature) is created. Only
/// `AfterDurableMark` is reachable outside this module's tests; the other order exists so the
/// crash property test can show that it catches the bug it is there for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SpendOrder {
    AfterDurableMark,
    #[cfg(test)]
    BeforeDurableMark,
}

enum Spending<E: EcdsaCurve>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
{
    Waiting {
        presignature: EcdsaPresignature<E>,
        config: EcdsaSignConfig,
        now: Instant,
    },
    #[cfg(test)]
    Started(Box<EcdsaSign<E>>),
}

/// One participant's presignatures for one key (any signer sets).
pub struct PresignaturePool<E: EcdsaCurve>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
{
    me: ParticipantId,
    public_key: Vec<u8>,
    target_depth: usize,
    storing: BTreeMap<PresignatureId, EcdsaPresignature<E>>,
    ready: BTreeMap<PresignatureId, EcdsaPresignature<E>>,
    spending: BTreeMap<PresignatureId, Spending<E>>,
    spent: BTreeSet<PresignatureId>,
    order: SpendOrder,
}

impl<E: EcdsaCurve> fmt::Debug for PresignaturePool<E>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresignaturePool")
            .field("scheme", &E::SCHEME)
            .field("me", &self.me)
            .field("storing", &self.storing.len())
            .field("ready", &self.ready.len())
            .field("spending", &self.spending.len())
            .field("spent", &self.spent.len())
            .finish()
    }
}

impl<E: EcdsaCurve> PresignaturePool<E>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
{
    /// An empty pool for participant `me` of the key `public_key` (SEC1 compressed), refilled
    /// to `target_depth` presignatures per signer set.
    pub fn new(me: ParticipantId, public_key: Vec<u8>, target_depth: usize) -> Self {
        PresignaturePool {
            me,
            public_key,
            target_depth,
            storing: BTreeMap::new(),
            ready: BTreeMap::new(),
            spending: BTreeMap::new(),
            spent: BTreeSet::new(),
            order: SpendOrder::AfterDurableMark,
        }
    }

    /// The pool after a restart, from what is durable: the stored presignatures and the spent
    /// ids. A stored presignature whose id is spent is dropped (its delete did not land but its
    /// mark did); one that does not decode, or belongs elsewhere, is reported and skipped.
    pub fn restore(
        me: ParticipantId,
        public_key: Vec<u8>,
        target_depth: usize,
        stored: impl IntoIterator<Item = (PresignatureId, Zeroizing<Vec<u8>>)>,
        spent: BTreeSet<PresignatureId>,
    ) -> (Self, Vec<(PresignatureId, String)>) {
        let mut pool = PresignaturePool::new(me, public_key, target_depth);
        let mut skipped = Vec::new();
        for (id, bytes) in stored {
            if spent.contains(&id) {
                continue;
            }
            match decode_presignature::<E>(&bytes) {
                Ok(p) if pool.belongs(&p) => {
                    pool.ready.insert(id, p);
                }
                Ok(_) => skipped.push((id, PoolError::WrongKey.to_string())),
                Err(e) => skipped.push((id, format!("does not decode: {e}"))),
            }
        }
        pool.spent = spent;
        (pool, skipped)
    }

    fn belongs(&self, p: &EcdsaPresignature<E>) -> bool {
        p.me == self.me && p.public_key.to_bytes(true).as_ref() == self.public_key.as_slice()
    }

    fn known(&self, id: &PresignatureId) -> Result<(), PoolError> {
        if self.spent.contains(id) {
            return Err(PoolError::Spent(*id));
        }
        if self.storing.contains_key(id)
            || self.ready.contains_key(id)
            || self.spending.contains_key(id)
        {
            return Err(PoolError::Duplicate(*id));
        }
        Ok(())
    }

    /// Files a finished presignature; it is usable once the returned write is acknowledged.
    pub fn insert(
        &mut self,
        id: PresignatureId,
        presignature: EcdsaPresignature<E>,
    ) -> Result<PoolWrite, PoolError> {
        self.known(&id)?;
        if !self.belongs(&presignature) {
            return Err(PoolError::WrongKey);
        }
        let bytes = encode_presignature(&presignature);
        self.storing.insert(id, presignature);
        Ok(PoolWrite::Store { id, bytes })
    }

    /// The [`PoolWrite::Store`] of `id` is durable.
    pub fn stored(&mut self, id: PresignatureId) -> Result<(), PoolError> {
        let p = self
            .storing
            .remove(&id)
            .ok_or(PoolError::UnexpectedAck(id))?;
        self.ready.insert(id, p);
        Ok(())
    }

    /// A usable presignature for exactly these signers (in id order), if any.
    pub fn next_for(&self, signers: &BTreeSet<ParticipantId>) -> Option<PresignatureId> {
        self.ready
            .iter()
            .find(|(_, p)| p.signers.iter().eq(signers.iter()))
            .map(|(id, _)| *id)
    }

    /// How many more presignatures the signer set needs to reach the target depth (counting
    /// those still being stored).
    pub fn wanted(&self, signers: &BTreeSet<ParticipantId>) -> usize {
        let have = self
            .ready
            .values()
            .chain(self.storing.values())
            .filter(|p| p.signers.iter().eq(signers.iter()))
            .count();
        self.target_depth.saturating_sub(have)
    }

    /// Usable presignatures in the pool.
    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// The key's group public key (SEC1 compressed).
    pub fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    /// Whether `id` is usable now (stored, not reserved, not spent).
    pub fn is_ready(&self, id: &PresignatureId) -> bool {
        self.ready.contains_key(id)
    }

    /// Drops a usable presignature without spending it (the pool is over its bound, or its
    /// signers will never sign together again). Nothing of it ever left the node, so dropping is
    /// safe; the id stays unknown and could be filed again only by a new presigning run, which
    /// never reuses an id. Returns whether it was there.
    pub fn discard(&mut self, id: &PresignatureId) -> bool {
        self.ready.remove(id).is_some()
    }

    /// Reserves presignature `id` for `config.message`; returns the write that marks it spent.
    /// No partial signature exists until [`PresignaturePool::consumed`].
    pub fn begin_spend(
        &mut self,
        id: PresignatureId,
        config: EcdsaSignConfig,
        now: Instant,
    ) -> Result<PoolWrite, PoolError> {
        if self.spent.contains(&id) {
            return Err(PoolError::Spent(id));
        }
        if config.message.len() > super::online::MAX_MESSAGE_BYTES {
            return Err(PoolError::Config(ConfigError::MessageTooLarge(
                config.message.len(),
            )));
        }
        let presignature = self.ready.remove(&id).ok_or(PoolError::NotReady(id))?;
        let entry = match self.order {
            SpendOrder::AfterDurableMark => Spending::Waiting {
                presignature,
                config,
                now,
            },
            #[cfg(test)]
            SpendOrder::BeforeDurableMark => Spending::Started(Box::new(
                EcdsaSign::new(config, presignature, now).map_err(PoolError::Config)?,
            )),
        };
        self.spending.insert(id, entry);
        Ok(PoolWrite::Consume { id })
    }

    /// The [`PoolWrite::Consume`] of `id` is durable: spends the presignature and returns the
    /// online signing session, whose first outputs carry this node's partial signature.
    pub fn consumed(&mut self, id: PresignatureId) -> Result<EcdsaSign<E>, PoolError> {
        let entry = self
            .spending
            .remove(&id)
            .ok_or(PoolError::UnexpectedAck(id))?;
        self.spent.insert(id);
        match entry {
            Spending::Waiting {
                presignature,
                config,
                now,
            } => EcdsaSign::new(config, presignature, now).map_err(PoolError::Config),
            #[cfg(test)]
            Spending::Started(s) => Ok(*s),
        }
    }

    #[cfg(test)]
    fn with_order(mut self, order: SpendOrder) -> Self {
        self.order = order;
        self
    }

    /// Test-only access to a reserved session when the (buggy) early order is used.
    #[cfg(test)]
    fn started_mut(&mut self, id: &PresignatureId) -> Option<&mut EcdsaSign<E>> {
        match self.spending.get_mut(id) {
            Some(Spending::Started(s)) => Some(s),
            _ => None,
        }
    }
}

const PRESIGNATURE_FORMAT: u8 = 1;
/// More signers than any cluster has (the node caps clusters far below this).
const MAX_SIGNERS: usize = 1024;

/// A presignature as stored: format, scheme, owner, signers, group key, Γ, the two secret
/// scalars and the commitments. The result is secret and wiped on drop.
pub fn encode_presignature<E: EcdsaCurve>(p: &EcdsaPresignature<E>) -> Zeroizing<Vec<u8>>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
{
    let mut w = Writer::new();
    w.u8(PRESIGNATURE_FORMAT)
        .u8(E::SCHEME.tag())
        .u16(p.me.get());
    w.count(p.signers.len());
    for s in &p.signers {
        w.u16(s.get());
    }
    w.bytes(p.public_key.to_bytes(true).as_ref());
    w.bytes(p.presignature.Gamma.to_bytes(true).as_ref());
    w.count(p.public.commitments.len());
    for c in &p.public.commitments {
        w.bytes(c.tilde_Delta.to_bytes(true).as_ref());
        w.bytes(c.tilde_S.to_bytes(true).as_ref());
    }
    let public = w.finish();
    // The secret scalars go into a buffer of the final size, so no reallocation leaves a copy.
    let k = p.presignature.tilde_k.as_ref().to_be_bytes();
    let chi = p.presignature.tilde_chi.as_ref().to_be_bytes();
    let mut out = Zeroizing::new(Vec::with_capacity(public.len() + 8 + k.len() + chi.len()));
    out.extend_from_slice(&public);
    for s in [k.as_ref(), chi.as_ref()] {
        out.extend_from_slice(&(s.len() as u32).to_be_bytes());
        out.extend_from_slice(s);
    }
    out
}

fn point<E: EcdsaCurve>(r: &mut Reader<'_>, what: &'static str) -> Result<Point<E>, DecodeError>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
{
    let b = r.bytes(what, 133)?;
    Point::<E>::from_bytes(&b).map_err(|_| DecodeError::Invalid(what))
}

fn secret<E: EcdsaCurve>(
    r: &mut Reader<'_>,
    what: &'static str,
) -> Result<SecretScalar<E>, DecodeError>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
{
    let b = Zeroizing::new(r.bytes(what, 66)?);
    let mut s = Scalar::<E>::from_be_bytes(b.as_slice()).map_err(|_| DecodeError::Invalid(what))?;
    Ok(SecretScalar::new(&mut s))
}

/// Decodes [`encode_presignature`]'s bytes, checking every value: the scheme, the signer list
/// (strictly increasing, the owner in it, one commitment per signer), points on the curve, Γ not
/// the identity, scalars canonical.
pub fn decode_presignature<E: EcdsaCurve>(bytes: &[u8]) -> Result<EcdsaPresignature<E>, DecodeError>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
{
    let mut r = Reader::new(bytes);
    let format = r.u8("format")?;
    if format != PRESIGNATURE_FORMAT {
        return Err(DecodeError::BadTag {
            what: "presignature format",
            tag: format,
        });
    }
    let scheme = r.u8("scheme")?;
    if scheme != E::SCHEME.tag() {
        return Err(DecodeError::BadTag {
            what: "presignature scheme",
            tag: scheme,
        });
    }
    let me = ParticipantId::new(r.u16("owner")?).ok_or(DecodeError::Invalid("owner"))?;
    let n = r.count("signers", MAX_SIGNERS, 2)?;
    let mut signers = Vec::with_capacity(n);
    for _ in 0..n {
        let s = ParticipantId::new(r.u16("signer")?).ok_or(DecodeError::Invalid("signer"))?;
        if signers.last().is_some_and(|l| *l >= s) {
            return Err(DecodeError::Invalid("signer order"));
        }
        signers.push(s);
    }
    if signers.len() < 2 || !signers.contains(&me) {
        return Err(DecodeError::Invalid("signer set"));
    }
    let public_key = point::<E>(&mut r, "public key")?;
    let gamma =
        NonZero::from_point(point::<E>(&mut r, "Gamma")?).ok_or(DecodeError::Invalid("Gamma"))?;
    let m = r.count("commitments", MAX_SIGNERS, 8)?;
    if m != signers.len() {
        return Err(DecodeError::Invalid("commitment count"));
    }
    let mut commitments = Vec::with_capacity(m);
    for _ in 0..m {
        let delta = point::<E>(&mut r, "commitment Delta")?;
        let s = point::<E>(&mut r, "commitment S")?;
        commitments.push(PresignatureCommitment {
            tilde_Delta: delta,
            tilde_S: s,
        });
    }
    let tilde_k = secret::<E>(&mut r, "k")?;
    let tilde_chi = secret::<E>(&mut r, "chi")?;
    r.finish()?;
    Ok(EcdsaPresignature {
        presignature: Presignature {
            Gamma: gamma,
            tilde_k,
            tilde_chi,
        },
        public: PresignaturePublicData {
            Gamma: gamma,
            commitments,
        },
        signers,
        me,
        public_key,
    })
}

#[cfg(test)]
mod tests;
