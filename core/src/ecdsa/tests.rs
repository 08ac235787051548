//! ECDSA session tests: full runs on both curves at 2-of-3 and 3-of-5 checked by independent
//! verifiers (RustCrypto k256/p256 and the OpenSSL command line), determinism, and hostile input
//! in every phase.
//!
//! Aux info comes from the committed fixtures (`core/tests/fixtures/ecdsa/`, made by
//! `cargo run --release -p keyshard-core --features test-fixtures --example ecdsa_fixtures`), so
//! these tests do not spend minutes on safe primes.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use cggmp24::generic_ec::coords::{AlwaysHasAffineX, HasAffineX};
use cggmp24::generic_ec::{NonZero, Point};
use cggmp24::supported_curves::{Secp256k1, Secp256r1};
use keyshard_verifier::openssl;

use super::mpc::{KIND_BROADCAST, KIND_P2P};
use super::*;
use crate::ids::ParticipantId;
use crate::rng::Seed;
use crate::session::local::{Delivery, LocalNet};
use crate::session::{FailureKind, Frame, Rejection, Session, SessionInput, SessionOutput};
use crate::time::{Duration, Instant};

pub(super) const ROUND: Duration = Duration::from_secs(60);

pub(super) fn p(n: u16) -> ParticipantId {
    ParticipantId::new(n).unwrap()
}

pub(super) fn ids(list: &[u16]) -> BTreeSet<ParticipantId> {
    list.iter().map(|n| p(*n)).collect()
}

pub(super) fn all(n: u16) -> BTreeSet<ParticipantId> {
    (1..=n).map(p).collect()
}

fn seed(tag: &str, who: ParticipantId, run: u64) -> Seed {
    Seed::from_u64(run).child(tag.as_bytes(), &who.get().to_be_bytes())
}

const AUX_N3: [&str; 3] = [
    include_str!("../../tests/fixtures/ecdsa/aux-n3-p1.json"),
    include_str!("../../tests/fixtures/ecdsa/aux-n3-p2.json"),
    include_str!("../../tests/fixtures/ecdsa/aux-n3-p3.json"),
];
const AUX_N5: [&str; 5] = [
    include_str!("../../tests/fixtures/ecdsa/aux-n5-p1.json"),
    include_str!("../../tests/fixtures/ecdsa/aux-n5-p2.json"),
    include_str!("../../tests/fixtures/ecdsa/aux-n5-p3.json"),
    include_str!("../../tests/fixtures/ecdsa/aux-n5-p4.json"),
    include_str!("../../tests/fixtures/ecdsa/aux-n5-p5.json"),
];
const PRIMES: [&str; 3] = [
    include_str!("../../tests/fixtures/ecdsa/primes-p1.json"),
    include_str!("../../tests/fixtures/ecdsa/primes-p2.json"),
    include_str!("../../tests/fixtures/ecdsa/primes-p3.json"),
];

pub(super) fn fixture_aux(n: u16) -> Vec<EcdsaAuxOutput> {
    let jsons: &[&str] = if n == 3 { &AUX_N3 } else { &AUX_N5 };
    let parties: Vec<ParticipantId> = all(n).into_iter().collect();
    jsons
        .iter()
        .map(|j| EcdsaAuxOutput::from_json(j, parties.clone()).unwrap())
        .collect()
}

fn keygen_sessions<E: EcdsaCurve>(n: u16, t: u16, run: u64) -> Vec<EcdsaKeygen<E>>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
    Point<E>: HasAffineX<E>,
{
    all(n)
        .into_iter()
        .map(|me| {
            let config = KeygenConfig {
                me,
                participants: all(n),
                threshold: t,
                session_id: format!("keygen {run}").into_bytes(),
                round_timeout: ROUND,
            };
            EcdsaKeygen::<E>::new(config, &seed("keygen", me, run), Instant::ZERO).unwrap()
        })
        .collect()
}

pub(super) fn run_keygen<E: EcdsaCurve>(n: u16, t: u16, run: u64) -> Vec<EcdsaKeygenOutput<E>>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
    Point<E>: HasAffineX<E>,
{
    let mut net = LocalNet::new(
        keygen_sessions::<E>(n, t, run),
        Delivery::Random(Seed::from_u64(run)),
        Instant::ZERO,
    );
    net.run(100_000);
    assert!(net.rejections.is_empty(), "{:?}", net.rejections);
    let outs: Vec<_> = all(n)
        .into_iter()
        .map(|me| net.results.remove(&me).unwrap().unwrap())
        .collect();
    for o in &outs {
        assert_eq!(o.public_key(), outs[0].public_key());
        assert_eq!(o.threshold(), t);
    }
    outs
}

pub(super) fn keys<E: EcdsaCurve>(n: u16, t: u16, run: u64) -> Vec<EcdsaKey<E>>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
    Point<E>: HasAffineX<E>,
{
    run_keygen::<E>(n, t, run)
        .into_iter()
        .zip(fixture_aux(n))
        .map(|(k, a)| EcdsaKey::from_parts(k, a).unwrap())
        .collect()
}

pub(super) fn key_of<E: EcdsaCurve>(keys: &[EcdsaKey<E>], me: ParticipantId) -> &EcdsaKey<E>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
    Point<E>: HasAffineX<E>,
{
    &keys[usize::from(me.get() - 1)]
}

fn presign_sessions<E: EcdsaCurve>(
    keys: &[EcdsaKey<E>],
    signers: &BTreeSet<ParticipantId>,
    run: u64,
) -> Vec<EcdsaPresign<E>>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
    Point<E>: HasAffineX<E>,
{
    signers
        .iter()
        .map(|me| {
            let config = SignersConfig {
                me: *me,
                signers: signers.clone(),
                session_id: format!("presign {run}").into_bytes(),
                round_timeout: ROUND,
            };
            EcdsaPresign::<E>::new(
                config,
                key_of(keys, *me),
                &seed("presign", *me, run),
                Instant::ZERO,
            )
            .unwrap()
        })
        .collect()
}

pub(super) fn presign<E: EcdsaCurve>(
    keys: &[EcdsaKey<E>],
    signers: &BTreeSet<ParticipantId>,
    run: u64,
) -> BTreeMap<ParticipantId, EcdsaPresignature<E>>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
    Point<E>: HasAffineX<E>,
{
    let mut net = LocalNet::new(
        presign_sessions(keys, signers, run),
        Delivery::Random(Seed::from_u64(run)),
        Instant::ZERO,
    );
    net.run(100_000);
    assert!(net.rejections.is_empty(), "{:?}", net.rejections);
    let out: BTreeMap<_, _> = std::mem::take(&mut net.results)
        .into_iter()
        .map(|(k, v)| (k, v.unwrap()))
        .collect();
    assert_eq!(out.len(), signers.len());
    let gamma = out.values().next().unwrap().nonce_point();
    assert!(out.values().all(|x| x.nonce_point() == gamma));
    out
}

fn sign_sessions<E: EcdsaCurve>(
    presigs: BTreeMap<ParticipantId, EcdsaPresignature<E>>,
    message: &[u8],
) -> Vec<EcdsaSign<E>>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
    Point<E>: HasAffineX<E>,
{
    presigs
        .into_values()
        .map(|ps| {
            let config = EcdsaSignConfig {
                message: message.to_vec(),
                round_timeout: ROUND,
            };
            EcdsaSign::new(config, ps, Instant::ZERO).unwrap()
        })
        .collect()
}

pub(super) fn sign<E: EcdsaCurve>(
    presigs: BTreeMap<ParticipantId, EcdsaPresignature<E>>,
    message: &[u8],
) -> EcdsaSignature
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
    Point<E>: HasAffineX<E>,
{
    let mut net = LocalNet::new(
        sign_sessions(presigs, message),
        Delivery::Random(Seed::from_u64(9)),
        Instant::ZERO,
    );
    net.run(100_000);
    assert!(net.rejections.is_empty(), "{:?}", net.rejections);
    let sigs: Vec<EcdsaSignature> = net.results.values().map(|r| *r.as_ref().unwrap()).collect();
    assert!(sigs.iter().all(|s| *s == sigs[0]));
    sigs[0]
}

/// Checks a signature with RustCrypto and OpenSSL (skipped, loudly, only if openssl is absent).
pub(super) fn verify_everywhere<E: EcdsaCurve>(
    key: &EcdsaKey<E>,
    message: &[u8],
    sig: &EcdsaSignature,
) where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
    Point<E>: HasAffineX<E>,
{
    let pk = key.public_key();
    type Verify = fn(&[u8], &[u8], &[u8]) -> Result<(), keyshard_verifier::VerifyError>;
    let (rust, curve): (Verify, _) = match E::SCHEME {
        EcdsaScheme::Secp256k1 => (
            keyshard_verifier::ecdsa_secp256k1,
            openssl::Curve::Secp256k1,
        ),
        EcdsaScheme::P256 => (keyshard_verifier::ecdsa_p256, openssl::Curve::P256),
    };
    rust(&pk, message, &sig.to_der()).unwrap();
    rust(&pk, message, &sig.to_compact()).unwrap();
    rust(&key.public_key_uncompressed(), message, &sig.to_der()).unwrap();
    assert!(rust(&pk, b"another message", &sig.to_der()).is_err());
    // The recovery id recovers the key (k256's recovery, for secp256k1 where it is used).
    let recoverable = sig.to_recoverable().expect("a recovery id");
    if E::SCHEME == EcdsaScheme::Secp256k1 {
        assert_eq!(
            keyshard_verifier::ecdsa_secp256k1_recover(message, &recoverable).unwrap(),
            pk
        );
        let mut flipped = recoverable;
        flipped[64] ^= 1;
        assert_ne!(
            keyshard_verifier::ecdsa_secp256k1_recover(message, &flipped).ok(),
            Some(pk.clone())
        );
    }
    match openssl::verify_ecdsa_sha256(
        curve,
        &key.public_key_uncompressed(),
        message,
        &sig.to_der(),
    )
    .unwrap()
    {
        openssl::Outcome::Verified => {}
        openssl::Outcome::Absent => {
            eprintln!("SKIPPED the OpenSSL check: no `openssl` binary on this machine")
        }
        openssl::Outcome::Refused(why) => panic!("OpenSSL refused the signature: {why}"),
    }
}

fn full_flow<E: EcdsaCurve>(n: u16, t: u16, signers: &[u16], run: u64)
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
    Point<E>: HasAffineX<E>,
{
    let keys = keys::<E>(n, t, run);
    let signers = ids(signers);
    let presigs = presign(&keys, &signers, run);
    let message = format!("keyshard ecdsa {} {t}-of-{n} run {run}", E::SCHEME).into_bytes();
    let sig = sign(presigs, &message);
    assert_eq!(sig.scheme, E::SCHEME);
    verify_everywhere(&keys[0], &message, &sig);
}

#[test]
fn secp256k1_2_of_3_keygen_aux_presign_sign() {
    full_flow::<Secp256k1>(3, 2, &[1, 3], 1);
}

#[test]
fn p256_2_of_3_keygen_aux_presign_sign() {
    full_flow::<Secp256r1>(3, 2, &[2, 3], 2);
}

#[test]
fn secp256k1_3_of_5_keygen_aux_presign_sign() {
    full_flow::<Secp256k1>(5, 3, &[1, 4, 5], 3);
}

#[test]
fn p256_3_of_5_keygen_aux_presign_sign() {
    full_flow::<Secp256r1>(5, 3, &[2, 3, 5], 4);
}

fn interactive<E: EcdsaCurve>(
    keys: &[EcdsaKey<E>],
    signers: &BTreeSet<ParticipantId>,
    prehash: [u8; 32],
    run: u64,
) -> LocalNet<EcdsaInteractiveSign<E>>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
    Point<E>: HasAffineX<E>,
{
    let sessions = signers
        .iter()
        .map(|me| {
            let config = SignersConfig {
                me: *me,
                signers: signers.clone(),
                session_id: format!("sign {run}").into_bytes(),
                round_timeout: ROUND,
            };
            EcdsaInteractiveSign::<E>::new(
                config,
                key_of(keys, *me),
                prehash,
                &seed("sign", *me, run),
                Instant::ZERO,
            )
            .unwrap()
        })
        .collect::<Vec<_>>();
    LocalNet::new(
        sessions,
        Delivery::Random(Seed::from_u64(run)),
        Instant::ZERO,
    )
}

fn interactive_prehash<E: EcdsaCurve>(run: u64)
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
    Point<E>: HasAffineX<E>,
{
    use sha2::Digest;
    let keys = keys::<E>(3, 2, run);
    let message = b"only the hash of this message is given to the cluster";
    let prehash: [u8; 32] = sha2::Sha256::digest(message).into();
    let mut net = interactive(&keys, &ids(&[1, 2]), prehash, run);
    net.run(100_000);
    assert!(net.rejections.is_empty(), "{:?}", net.rejections);
    let sigs: Vec<EcdsaSignature> = net.results.values().map(|r| *r.as_ref().unwrap()).collect();
    assert_eq!(sigs.len(), 2);
    assert_eq!(sigs[0], sigs[1]);
    let check = match E::SCHEME {
        EcdsaScheme::Secp256k1 => keyshard_verifier::ecdsa_secp256k1_prehash,
        EcdsaScheme::P256 => keyshard_verifier::ecdsa_p256_prehash,
    };
    check(&keys[0].public_key(), &prehash, &sigs[0].to_der()).unwrap();
    // A SHA-256 prehash of a message is an ordinary signature of that message.
    verify_everywhere(&keys[0], message, &sigs[0]);
}

#[test]
fn secp256k1_interactive_signing_of_a_prehash() {
    interactive_prehash::<Secp256k1>(5);
}

#[test]
fn p256_interactive_signing_of_a_prehash() {
    interactive_prehash::<Secp256r1>(6);
}

/// Everything that left every session, and every output, twice from the same seeds: equal;
/// from another seed: different.
#[test]
fn same_seeds_same_transcript() {
    fn transcripts(run: u64) -> ([u8; 32], [u8; 32], [u8; 32]) {
        let mut kg = LocalNet::new(
            keygen_sessions::<Secp256k1>(3, 2, run),
            Delivery::Random(Seed::from_u64(run)),
            Instant::ZERO,
        );
        kg.run(100_000);
        let keys: Vec<EcdsaKey<Secp256k1>> = all(3)
            .into_iter()
            .zip(fixture_aux(3))
            .map(|(me, aux)| {
                EcdsaKey::from_parts(kg.results.remove(&me).unwrap().unwrap(), aux).unwrap()
            })
            .collect();
        let signers = ids(&[1, 2]);
        let mut ps = LocalNet::new(
            presign_sessions(&keys, &signers, run),
            Delivery::Random(Seed::from_u64(run)),
            Instant::ZERO,
        );
        ps.run(100_000);
        let presigs = std::mem::take(&mut ps.results)
            .into_iter()
            .map(|(k, v)| (k, v.unwrap()))
            .collect();
        let mut sg = LocalNet::new(
            sign_sessions(presigs, b"determinism"),
            Delivery::Random(Seed::from_u64(run)),
            Instant::ZERO,
        );
        sg.run(100_000);
        assert_eq!(sg.results.len(), 2);
        (kg.transcript(), ps.transcript(), sg.transcript())
    }
    let a = transcripts(11);
    let b = transcripts(11);
    let c = transcripts(12);
    assert_eq!(a, b, "same seeds must give byte-identical runs");
    assert_ne!(a.0, c.0);
    assert_ne!(a.1, c.1);
    assert_ne!(a.2, c.2);
}

/// Aux info generation itself, with the fixture primes, at n = 3, then keys, presigning and a
/// verified signature from its output: about a minute of CPU even with dependencies optimised.
/// (`ecdsa_fixtures aux` runs the same session for n = 3 and n = 5 when the fixtures are made.)
#[test]
fn aux_info_generation_with_fixture_primes_2_of_3() {
    let out = fixtures::run_aux(&PRIMES.map(String::from), b"aux test run").unwrap();
    assert_eq!(out.len(), 3);
    // The same Paillier moduli as the fixtures (same primes), fresh ring-Pedersen parameters.
    for (o, f) in out.iter().zip(fixture_aux(3)) {
        assert_eq!(o.aux.N, f.aux.N);
    }
    // And the output makes working keys.
    let keygen = run_keygen::<Secp256r1>(3, 2, 21);
    let keys: Vec<_> = keygen
        .into_iter()
        .zip(out)
        .map(|(k, a)| EcdsaKey::from_parts(k, a).unwrap())
        .collect();
    let presigs = presign(&keys, &ids(&[1, 2]), 21);
    let sig = sign(presigs, b"fresh aux");
    verify_everywhere(&keys[0], b"fresh aux", &sig);
}

#[test]
fn aux_info_is_curve_independent_and_checked_against_the_key() {
    // One aux set serves both curves (cggmp24's AuxInfo has no curve parameter).
    let k1 = keys::<Secp256k1>(3, 2, 31);
    let r1 = keys::<Secp256r1>(3, 2, 31);
    assert_eq!(k1.len(), 3);
    assert_eq!(r1.len(), 3);
    // Aux info of another group size does not fit.
    let kg = run_keygen::<Secp256k1>(3, 2, 32);
    let wrong = fixture_aux(5).remove(0);
    assert!(EcdsaKey::from_parts(kg.into_iter().next().unwrap(), wrong).is_err());
    // Another party's aux info does not fit either (index mismatch in the Paillier secret).
    let kg = run_keygen::<Secp256k1>(3, 2, 33);
    let mut aux = fixture_aux(3);
    let other = aux.remove(1);
    assert!(EcdsaKey::from_parts(kg.into_iter().next().unwrap(), other).is_err());
}

#[test]
fn configuration_errors_are_refused_up_front() {
    let base = KeygenConfig {
        me: p(1),
        participants: all(3),
        threshold: 2,
        session_id: b"x".to_vec(),
        round_timeout: ROUND,
    };
    let s = Seed::from_u64(1);
    let bad = |c: KeygenConfig| EcdsaKeygen::<Secp256k1>::new(c, &s, Instant::ZERO).err();
    assert!(bad(KeygenConfig {
        threshold: 1,
        ..base.clone()
    })
    .is_some());
    assert!(bad(KeygenConfig {
        threshold: 4,
        ..base.clone()
    })
    .is_some());
    assert!(bad(KeygenConfig {
        me: p(9),
        ..base.clone()
    })
    .is_some());
    assert!(bad(KeygenConfig {
        participants: ids(&[1]),
        ..base.clone()
    })
    .is_some());
    let keys = keys::<Secp256k1>(3, 2, 41);
    let cfg = |signers: &[u16], me| SignersConfig {
        me: p(me),
        signers: ids(signers),
        session_id: b"y".to_vec(),
        round_timeout: ROUND,
    };
    // Wrong number of signers, me not a signer, someone else's key.
    assert!(EcdsaPresign::new(cfg(&[1, 2, 3], 1), &keys[0], &s, Instant::ZERO).is_err());
    assert!(EcdsaPresign::new(cfg(&[2, 3], 1), &keys[0], &s, Instant::ZERO).is_err());
    assert!(EcdsaPresign::new(cfg(&[1, 2], 1), &keys[1], &s, Instant::ZERO).is_err());
    assert!(EcdsaPresign::new(cfg(&[1, 7], 1), &keys[0], &s, Instant::ZERO).is_err());
}

// ---- Hostile input ----

/// Changes one value inside a cggmp24 message so that it still decodes as `M` and is canonical:
/// only the protocol's own checks can catch it. Tries the leaves of the JSON tree from the last
/// one back (a hex digit of a string changed, a byte of an array bumped) until the result is a
/// valid `M`. Returns `None` if the payload is no such message.
fn tamper_as<M: serde::Serialize + serde::de::DeserializeOwned>(payload: &[u8]) -> Option<Vec<u8>> {
    tamper_leaf::<M>(payload, true)
}

/// [`tamper_as`], trying the leaves from the first one forward if `from_end` is false.
fn tamper_leaf<M: serde::Serialize + serde::de::DeserializeOwned>(
    payload: &[u8],
    from_end: bool,
) -> Option<Vec<u8>> {
    use serde_json::Value;
    fn leaves(v: &Value, path: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    path.push(Step::Key(k.clone()));
                    leaves(x, path, out);
                    path.pop();
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    path.push(Step::Index(i));
                    leaves(x, path, out);
                    path.pop();
                }
            }
            Value::String(_) | Value::Number(_) => out.push(path.clone()),
            _ => {}
        }
    }
    #[derive(Clone)]
    enum Step {
        Key(String),
        Index(usize),
    }
    let frame = Frame::decode(payload).ok()?;
    if !matches!(frame.kind, KIND_BROADCAST | KIND_P2P) {
        return None;
    }
    let value: Value = serde_json::from_slice(frame.fields.first()?).ok()?;
    let mut paths = Vec::new();
    leaves(&value, &mut Vec::new(), &mut paths);
    if from_end {
        paths.reverse();
    }
    for path in paths.iter() {
        let mut v = value.clone();
        let mut leaf = &mut v;
        for step in path {
            leaf = match step {
                Step::Key(k) => leaf.get_mut(k.as_str())?,
                Step::Index(i) => leaf.get_mut(*i)?,
            };
        }
        match leaf {
            Value::String(s) => {
                let mut b = s.clone().into_bytes();
                if b.is_empty() {
                    continue;
                }
                let at = b.len() / 2;
                b[at] = match b[at] {
                    b'0'..=b'8' => b[at] + 1,
                    b'9' => b'0',
                    b'a'..=b'e' => b[at] + 1,
                    b'f' => b'a',
                    _ => continue,
                };
                *s = String::from_utf8(b).ok()?;
            }
            Value::Number(n) => {
                let x = n.as_u64()?;
                *leaf = Value::from(if x == 255 { 0 } else { x + 1 });
            }
            _ => continue,
        }
        if let Ok(m) = serde_json::from_value::<M>(v) {
            let body = serde_json::to_vec(&m).ok()?;
            if body != frame.fields[0] {
                return Some(Frame::new(frame.kind, vec![body]).encode());
            }
        }
    }
    None
}

/// Runs `sessions` with the `nth` message (0-based) from `from` to `to` replaced by `f(bytes)`.
/// Returns the finished network.
fn run_with<S: Session>(
    sessions: Vec<S>,
    from: ParticipantId,
    to: ParticipantId,
    nth: usize,
    f: impl Fn(&[u8]) -> Option<Vec<u8>> + 'static,
) -> (LocalNet<S>, bool)
where
    S::Output: crate::transcript::Recordable,
{
    let mut net = LocalNet::new(sessions, Delivery::Fifo, Instant::ZERO);
    let count = Rc::new(RefCell::new(0usize));
    let hit = Rc::new(RefCell::new(false));
    let (c, h) = (count.clone(), hit.clone());
    net.intercept(Box::new(move |a, b, bytes| {
        if a == from && b == to {
            let k = *c.borrow();
            *c.borrow_mut() += 1;
            if k == nth {
                if let Some(x) = f(bytes) {
                    *h.borrow_mut() = true;
                    return vec![x];
                }
            }
        }
        vec![bytes.to_vec()]
    }));
    net.run(100_000);
    let tampered = *hit.borrow();
    (net, tampered)
}

/// What a tampered run must show: no panic (we got here), the run did not succeed at the
/// receiver, and whoever is blamed by the receiver is the tamperer. Returns a summary line.
fn judge<O>(
    net: &LocalNet<impl Session<Output = O>>,
    from: ParticipantId,
    to: ParticipantId,
) -> String
where
    O: crate::transcript::Recordable,
{
    let mut rejected = net
        .rejections
        .iter()
        .filter(|(by, whom, _)| *by == to && *whom == from)
        .map(|(_, _, r)| format!("{r:?}"))
        .peekable();
    if rejected.peek().is_some() {
        // Our own checks refused it before cggmp24 saw it: the honest run goes on without it
        // and times out naming the sender (who never sent a valid message).
        let r: Vec<String> = rejected.collect();
        let res = net.results.get(&to).map(|r| r.as_ref().err().cloned());
        if let Some(Some(f)) = &res {
            assert!(f.culprits.iter().all(|c| *c == from), "{f:?}");
        }
        return format!("refused by keyshard: {r:?}; receiver result: {res:?}");
    }
    let res = net.results.get(&to).expect("the receiver finished");
    let Some(f) = res.as_ref().err() else {
        return "NOT DETECTED".to_string();
    };
    assert!(
        f.culprits.iter().all(|c| *c == from),
        "an honest party was blamed: {f:?}"
    );
    format!("failed: {:?}, culprits {:?}", f.kind, f.culprits)
}

#[test]
fn tampered_keygen_messages_end_the_run_and_blame_only_the_sender() {
    let (from, to) = (p(2), p(1));
    let mut tampered_any = 0;
    for nth in 0..8 {
        let (net, tampered) = run_with(
            keygen_sessions::<Secp256k1>(3, 2, 51),
            from,
            to,
            nth,
            tamper_as::<sessions::KeygenMsg<Secp256k1>>,
        );
        if !tampered {
            continue;
        }
        tampered_any += 1;
        let verdict = judge(&net, from, to);
        println!("keygen message {nth} from P2 to P1 tampered: {verdict}");
        assert_ne!(verdict, "NOT DETECTED", "keygen message {nth} accepted");
    }
    assert!(tampered_any >= 3, "keygen has several rounds");
}

/// The messages of a signing or presigning run from `from` to `to`, each tampered at its last and
/// at its first value. Every tampering must end the receiver's run blaming nobody but the sender.
/// (Message 1, round 1b, carries the Π_enc-elg proofs ψ⁰ for `K_j` and ψ¹ for `G_j`: its first
/// value is in ψ⁰, its last in ψ¹; upstream cggmp24 missed either alone, see
/// `an_invalid_enc_proof_alone_ends_presigning_naming_the_sender`.)
fn tamper_signing_run<S: Session>(
    make: impl Fn() -> Vec<S>,
    from: ParticipantId,
    to: ParticipantId,
    tamper: fn(&[u8], bool) -> Option<Vec<u8>>,
    label: &str,
) -> usize
where
    S::Output: crate::transcript::Recordable,
{
    let mut tampered_any = 0;
    for nth in 0..6 {
        for from_end in [true, false] {
            let (net, tampered) = run_with(make(), from, to, nth, move |b| tamper(b, from_end));
            if !tampered {
                continue;
            }
            tampered_any += 1;
            let verdict = judge(&net, from, to);
            println!("{label} message {nth} from {from:?} to {to:?} tampered (from_end {from_end}): {verdict}");
            assert_ne!(
                verdict, "NOT DETECTED",
                "{label} message {nth} (from_end {from_end}) was tampered and accepted"
            );
        }
    }
    tampered_any
}

#[test]
fn tampered_presign_messages_end_the_run_and_blame_only_the_sender() {
    let keys = keys::<Secp256k1>(3, 2, 52);
    let signers = ids(&[1, 2]);
    let n = tamper_signing_run(
        || presign_sessions(&keys, &signers, 52),
        p(2),
        p(1),
        tamper_leaf::<sessions::SignMsg<Secp256k1>>,
        "presign",
    );
    assert!(n >= 8, "presigning has five messages per pair");
}

/// A flaw in upstream cggmp24 0.7.0-alpha.3 (signing.rs, "Verify psi0, psi1 proofs"), fixed in
/// our patched copy (third_party/README.md): the check was `verify(psi0).err()?;
/// verify(psi1).err()` inside a closure that returns `Some` for a faulty party, so a party was
/// blamed only if both proofs were invalid. A signer could send its nonce ciphertext `K_j` with
/// an invalid range proof. Failed before the patch (the first two cases were accepted).
#[test]
fn an_invalid_enc_proof_alone_ends_presigning_naming_the_sender() {
    let keys = keys::<Secp256k1>(3, 2, 55);
    let signers = ids(&[1, 2]);
    fn round1b(b: &[u8]) -> bool {
        Frame::decode(b).is_ok_and(|f| {
            f.fields
                .first()
                .is_some_and(|x| x.starts_with(b"{\"Round1b\""))
        })
    }
    // ψ¹ only, ψ⁰ only, both: each refused, naming the sender.
    type Tamper = fn(&[u8]) -> Option<Vec<u8>>;
    let cases: [Tamper; 3] = [
        |b| {
            round1b(b)
                .then(|| tamper_leaf::<sessions::SignMsg<Secp256k1>>(b, true))
                .flatten()
        },
        |b| {
            round1b(b)
                .then(|| tamper_leaf::<sessions::SignMsg<Secp256k1>>(b, false))
                .flatten()
        },
        |b| {
            let once = round1b(b)
                .then(|| tamper_leaf::<sessions::SignMsg<Secp256k1>>(b, true))
                .flatten()?;
            tamper_leaf::<sessions::SignMsg<Secp256k1>>(&once, false)
        },
    ];
    for (i, f) in cases.into_iter().enumerate() {
        let (net, tampered) = run_with(presign_sessions(&keys, &signers, 55), p(2), p(1), 1, f);
        assert!(tampered);
        let r = &net.results[&p(1)];
        println!("case {i}: {:?}", r.as_ref().err());
        let f = r.as_ref().expect_err("a tampered enc proof was accepted");
        assert_eq!(f.culprits, ids(&[2]), "case {i}");
    }
}

#[test]
fn tampered_interactive_sign_messages_end_the_run_and_blame_only_the_sender() {
    let keys = keys::<Secp256r1>(3, 2, 53);
    let (from, to) = (p(3), p(1));
    let signers = ids(&[1, 3]);
    let make = || {
        signers
            .iter()
            .map(|me| {
                let config = SignersConfig {
                    me: *me,
                    signers: signers.clone(),
                    session_id: b"tamper sign".to_vec(),
                    round_timeout: ROUND,
                };
                EcdsaInteractiveSign::<Secp256r1>::new(
                    config,
                    key_of(&keys, *me),
                    [7; 32],
                    &seed("s", *me, 53),
                    Instant::ZERO,
                )
                .unwrap()
            })
            .collect()
    };
    let n = tamper_signing_run(
        make,
        from,
        to,
        tamper_leaf::<sessions::SignMsg<Secp256r1>>,
        "interactive-sign",
    );
    assert!(n >= 10, "interactive signing has six messages per pair");
}

#[test]
fn a_bad_partial_signature_names_its_sender() {
    let keys = keys::<Secp256k1>(5, 3, 54);
    let signers = ids(&[1, 2, 4]);
    let presigs = presign(&keys, &signers, 54);
    let (net, tampered) = run_with(sign_sessions(presigs, b"online"), p(4), p(2), 0, |bytes| {
        let mut f = Frame::decode(bytes).ok()?;
        let last = f.fields.first_mut()?.last_mut()?;
        *last ^= 1;
        Some(f.encode())
    });
    assert!(tampered);
    let f = net.results[&p(2)].as_ref().unwrap_err();
    assert_eq!(f.kind, FailureKind::InvalidSignatureShare);
    assert_eq!(f.culprits, ids(&[4]));
    // The untouched signer still finishes.
    assert!(net.results[&p(1)].is_ok());
}

/// Garbage, truncation, oversize, strangers, duplicates, conflicting repeats and wrong delivery
/// types are refused one by one, attributed to their sender, and change nothing: the run still
/// completes with the same public key.
#[test]
fn hostile_bytes_are_refused_and_change_nothing() {
    let clean = run_keygen::<Secp256k1>(3, 2, 61);
    // FIFO: the injected messages arrive first, while every session is still running.
    let mut net = LocalNet::new(
        keygen_sessions::<Secp256k1>(3, 2, 61),
        Delivery::Fifo,
        Instant::ZERO,
    );
    // Learn a real first-round message of P2 to P1.
    let mut first: Option<Vec<u8>> = None;
    let mut sessions = keygen_sessions::<Secp256k1>(3, 2, 61);
    while let Some(out) = sessions[1].poll_output() {
        if let SessionOutput::Send { to, payload } = out {
            if to == p(1) && first.is_none() {
                first = Some(payload.as_bytes().to_vec());
            }
        }
    }
    let real = first.unwrap();
    let frame = Frame::decode(&real).unwrap();
    let body = frame.fields[0].clone();
    let other_kind = if frame.kind == KIND_BROADCAST {
        KIND_P2P
    } else {
        KIND_BROADCAST
    };
    let mut with_space = body.clone();
    with_space.insert(1, b' ');
    let attacks: Vec<(u16, Vec<u8>)> = vec![
        (2, b"garbage".to_vec()),
        (2, real[..real.len() / 2].to_vec()),
        (2, vec![1; 2 * 1024 * 1024]),
        (2, Frame::new(9, vec![body.clone()]).encode()),
        (
            2,
            Frame::new(frame.kind, vec![body.clone(), vec![]]).encode(),
        ),
        (2, Frame::new(frame.kind, vec![b"{}".to_vec()]).encode()),
        (2, Frame::new(frame.kind, vec![with_space]).encode()),
        (2, Frame::new(other_kind, vec![body.clone()]).encode()),
        (7, real.clone()),
        (1, real.clone()),
    ];
    for (from, bytes) in attacks {
        net.inject(p(from), p(1), bytes);
    }
    net.run(100_000);
    let mine: Vec<_> = net
        .rejections
        .iter()
        .filter(|(by, _, _)| *by == p(1))
        .collect();
    println!("{mine:?}");
    assert!(mine
        .iter()
        .any(|(_, w, r)| *w == p(2) && matches!(r, Rejection::BadFrame(_))));
    assert!(mine
        .iter()
        .any(|(_, w, r)| *w == p(2) && matches!(r, Rejection::TooLarge { .. })));
    assert!(mine
        .iter()
        .any(|(_, w, r)| *w == p(2) && matches!(r, Rejection::UnexpectedKind { kind: 9 })));
    assert!(mine
        .iter()
        .any(|(_, w, r)| *w == p(2) && matches!(r, Rejection::WrongCount { .. })));
    assert!(
        mine.iter()
            .filter(|(_, w, r)| *w == p(2) && matches!(r, Rejection::Malformed { .. }))
            .count()
            >= 2
    );
    assert!(mine.iter().any(|(_, w, r)| *w == p(2)
        && matches!(
            r,
            Rejection::Inconsistent { .. } | Rejection::AlreadyReceived
        )));
    assert!(mine
        .iter()
        .any(|(_, w, r)| *w == p(7) && *r == Rejection::NotAParticipant));
    assert!(mine
        .iter()
        .any(|(_, w, r)| *w == p(1) && *r == Rejection::NotAParticipant));
    // Nothing changed: everyone finished with the key the clean run made.
    for (i, me) in all(3).into_iter().enumerate() {
        let out = net.results[&me].as_ref().unwrap();
        assert_eq!(out.public_key(), clean[i].public_key());
    }
}

#[test]
fn duplicates_are_ignored_and_conflicting_repeats_refused() {
    // Every message delivered twice: the run is unchanged.
    let clean = run_keygen::<Secp256r1>(3, 2, 62);
    let mut net = LocalNet::new(
        keygen_sessions::<Secp256r1>(3, 2, 62),
        Delivery::Fifo,
        Instant::ZERO,
    );
    net.intercept(Box::new(|_, _, b| vec![b.to_vec(), b.to_vec()]));
    net.run(100_000);
    assert!(net.rejections.is_empty(), "{:?}", net.rejections);
    for (i, me) in all(3).into_iter().enumerate() {
        assert_eq!(
            net.results[&me].as_ref().unwrap().public_key(),
            clean[i].public_key()
        );
    }
    // A second, different message for the same round: refused as AlreadyReceived.
    let mut net = LocalNet::new(
        keygen_sessions::<Secp256r1>(3, 2, 62),
        Delivery::Fifo,
        Instant::ZERO,
    );
    net.intercept(Box::new(|from, to, b| {
        match tamper_as::<sessions::KeygenMsg<Secp256r1>>(b) {
            Some(t) if from == p(3) && to == p(2) => vec![b.to_vec(), t],
            _ => vec![b.to_vec()],
        }
    }));
    net.run(100_000);
    assert!(net
        .rejections
        .iter()
        .any(|(by, w, r)| *by == p(2) && *w == p(3) && *r == Rejection::AlreadyReceived));
}

#[test]
fn a_silent_party_is_named_when_the_round_deadline_passes() {
    let mut net = LocalNet::new(
        keygen_sessions::<Secp256k1>(3, 2, 63),
        Delivery::Fifo,
        Instant::ZERO,
    );
    net.silence(p(3));
    net.run(100_000);
    for me in [p(1), p(2)] {
        let f = net.results[&me].as_ref().unwrap_err();
        assert!(matches!(f.kind, FailureKind::Timeout { round: 1 }), "{f:?}");
        assert_eq!(f.culprits, ids(&[3]));
    }
    // A presigning party that goes silent after the first round is named too.
    let keys = keys::<Secp256k1>(3, 2, 64);
    let mut sessions = presign_sessions(&keys, &ids(&[1, 2]), 64);
    let mut net = LocalNet::new(std::mem::take(&mut sessions), Delivery::Fifo, Instant::ZERO);
    let seen = Rc::new(RefCell::new(0));
    let s2 = seen.clone();
    net.intercept(Box::new(move |from, _, b| {
        if from == p(2) {
            *s2.borrow_mut() += 1;
            if *s2.borrow() > 2 {
                return vec![];
            }
        }
        vec![b.to_vec()]
    }));
    net.run(100_000);
    let f = net.results[&p(1)].as_ref().unwrap_err();
    assert!(
        matches!(f.kind, FailureKind::Timeout { round } if round > 1),
        "{f:?}"
    );
    assert_eq!(f.culprits, ids(&[2]));
    assert!(net.session(p(1)).unwrap().poll_timeout().is_none());
}

#[test]
fn an_abort_notice_ends_the_peers_run_naming_the_accused() {
    let mut sessions = keygen_sessions::<Secp256k1>(3, 2, 65);
    let s1 = &mut sessions[0];
    while s1.poll_output().is_some() {}
    s1.handle_input(SessionInput::Message {
        at: Instant::ZERO,
        from: p(2),
        payload: &Frame::new(3, vec![vec![0, 3]]).encode(),
    });
    let mut done = None;
    while let Some(o) = s1.poll_output() {
        if let SessionOutput::Done(r) = o {
            done = Some(r);
        }
    }
    let f = done.unwrap().unwrap_err();
    assert_eq!(f.kind, FailureKind::PeerAborted { by: p(2) });
    assert_eq!(f.culprits, ids(&[3]));
    // An abort naming a stranger is refused.
    let s2 = &mut sessions[1];
    while s2.poll_output().is_some() {}
    s2.handle_input(SessionInput::Message {
        at: Instant::ZERO,
        from: p(1),
        payload: &Frame::new(3, vec![vec![0, 9]]).encode(),
    });
    assert!(matches!(
        s2.poll_output(),
        Some(SessionOutput::Misbehaved { .. })
    ));
}

/// The largest honest message of each phase, against the bounds the sessions enforce.
#[test]
fn honest_message_sizes_are_within_the_phase_bounds() {
    fn max_size<S: Session>(sessions: Vec<S>) -> usize
    where
        S::Output: crate::transcript::Recordable,
    {
        let mut net = LocalNet::new(sessions, Delivery::Fifo, Instant::ZERO);
        let max = Rc::new(RefCell::new(0usize));
        let m = max.clone();
        net.intercept(Box::new(move |_, _, b| {
            let mut x = m.borrow_mut();
            *x = (*x).max(b.len());
            vec![b.to_vec()]
        }));
        net.run(100_000);
        let x = *max.borrow();
        x
    }
    let kg = max_size(keygen_sessions::<Secp256k1>(5, 3, 66));
    let keys = keys::<Secp256k1>(5, 3, 66);
    let ps = max_size(presign_sessions(&keys, &ids(&[1, 2, 3]), 66));
    println!("largest message: keygen 3-of-5 {kg} bytes, presign 3-of-5 {ps} bytes");
    assert!(kg < sessions::KEYGEN_BYTES_BASE + 5 * sessions::KEYGEN_BYTES_PER_PARTY);
    assert!(ps < sessions::SIGN_BYTES);
}

fn aux_sessions(run: u64) -> Vec<EcdsaAux> {
    all(3)
        .into_iter()
        .zip(PRIMES)
        .map(|(me, primes)| {
            let config = AuxConfig {
                me,
                participants: all(3),
                session_id: format!("aux {run}").into_bytes(),
                round_timeout: ROUND,
            };
            EcdsaAux::new(
                config,
                SafePrimes::from_json(primes).unwrap(),
                &seed("aux", me, run),
                Instant::ZERO,
            )
            .unwrap()
        })
        .collect()
}

/// Tampered aux info messages (the round-2 decommitment with the ring-Pedersen parameters and
/// Π_prm, and the round-3 Π_mod/Π_fac proofs): the receiver's run ends, blaming only the sender.
/// About a minute of CPU per run (two runs): the slowest tests of the workspace, kept in the
/// default run because aux info is where Paillier keys are proven sound (BitForge).
#[test]
fn tampered_aux_messages_end_the_run_and_blame_only_the_sender() {
    let (from, to) = (p(2), p(1));
    for (nth, from_end) in [(3, true), (2, false)] {
        let (net, tampered) = run_with(aux_sessions(70 + nth as u64), from, to, nth, move |b| {
            tamper_leaf::<sessions::AuxMsg>(b, from_end)
        });
        assert!(tampered);
        let verdict = judge(&net, from, to);
        println!("aux message {nth} from P2 to P1 tampered (from_end {from_end}): {verdict}");
        assert_ne!(verdict, "NOT DETECTED");
    }
}
