//! ECDSA in the node: the stored-form decoders, and a coordinator that does not sign fed
//! arbitrary messages from the signers of an ECDSA signing run.

use std::collections::BTreeSet;

use cggmp24::generic_ec::coords::{AlwaysHasAffineX, HasAffineX};
use cggmp24::generic_ec::{NonZero, Point};
use cggmp24::supported_curves::{Secp256k1, Secp256r1};

use super::sessions::dealer;
use super::Cursor;
use crate::ecdsa::pool::{decode_presignature, encode_presignature};
use crate::ecdsa::EcdsaCurve;
use crate::frost::{canonical, SignConfig};
use crate::ids::ParticipantId;
use crate::node::ecdsa::{decode_share, share_parties, EcdsaNodeSign};
use crate::node::sessions::{ErasedOutput, ErasedSession};
use crate::rng::Seed;
use crate::session::SessionInput;
use crate::time::{Duration, Instant};

fn pid(n: u16) -> ParticipantId {
    ParticipantId::new(n).unwrap_or_else(|| unreachable!("ids are non-zero"))
}

/// The first byte picks the curve; then a `u16`-prefixed blob for the decoders (a stored
/// presignature, a stored share); then operations on the coordinator (node 3) of a signing run
/// by nodes 1 and 2: a message (sender byte, `u16`-prefixed payload) or a timeout.
///
/// Checks: no panic; a presignature that decodes re-encodes to bytes that decode to the same
/// value; the coordinator ends at most once and never with signatures (the input cannot hold a
/// valid ECDSA signature under the dealer's key, so accepting one would be a forgery).
pub fn ecdsa_node(data: &[u8]) {
    let mut c = Cursor::new(data);
    match c.u8() % 2 {
        0 => run::<Secp256k1>(&mut c),
        _ => run::<Secp256r1>(&mut c),
    }
}

fn run<E: EcdsaCurve>(c: &mut Cursor<'_>)
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
    Point<E>: HasAffineX<E>,
{
    let blob = c.bytes();
    if let Ok(p) = decode_presignature::<E>(blob) {
        let once = encode_presignature::<E>(&p);
        let again = decode_presignature::<E>(&once)
            .unwrap_or_else(|e| panic!("a re-encoded presignature does not decode: {e}"));
        assert_eq!(
            encode_presignature::<E>(&again).as_slice(),
            once.as_slice(),
            "presignature encoding is not stable"
        );
    }
    let _ = decode_share::<E>(blob);
    let _ = share_parties(blob);

    let (_, pkp) = dealer::<E::Frost>(2, 3);
    let pkp = canonical::encode(&pkp).unwrap_or_else(|_| unreachable!("dealer package encodes"));
    let signers: BTreeSet<ParticipantId> = [pid(1), pid(2)].into();
    let config = SignConfig {
        me: pid(3),
        coordinator: pid(3),
        signers,
        messages: vec![b"m0".to_vec(), b"m1".to_vec()],
        round_timeout: Duration::from_secs(1),
    };
    let seed = Seed::from_u64(7);
    let mut s = EcdsaNodeSign::<E>::new(config, None, Some(&pkp), b"fuzz", &seed, Instant::ZERO)
        .unwrap_or_else(|e| unreachable!("coordinator starts: {e:?}"));
    let mut now = 0u64;
    let mut ends = 0;
    while !c.is_empty() {
        let op = c.u8();
        if op % 4 == 3 {
            now += u64::from(c.u8()) * 100;
            s.handle_input(SessionInput::Timeout {
                now: Instant::from_millis(now),
            });
        } else {
            let from = pid(1 + u16::from(op % 4));
            let payload = c.bytes();
            s.handle_input(SessionInput::Message {
                at: Instant::from_millis(now),
                from,
                payload,
            });
        }
        while let Some(out) = s.poll_output() {
            if let ErasedOutput::SignDone(r) = out {
                ends += 1;
                assert!(ends == 1, "the coordinator ended twice");
                assert!(
                    !matches!(r, Ok(Some(_))),
                    "the coordinator accepted signatures no signer could have made"
                );
                assert!(
                    r.is_err(),
                    "a coordinator ended without signatures or failure"
                );
            }
        }
    }
}
