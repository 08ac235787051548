//! Helpers shared by the core's FROST tests.

use std::collections::BTreeMap;

use frost_core::keys::{KeyPackage, PublicKeyPackage};
use frost_core::{Ciphersuite, Identifier};

use crate::rng::Seed;

/// Runs a generic test function once per ciphersuite the product ships.
macro_rules! for_each_suite {
    ($f:ident) => {{
        $f::<frost_ed25519::Ed25519Sha512>();
        $f::<frost_secp256k1::Secp256K1Sha256>();
        $f::<frost_p256::P256Sha256>();
        $f::<frost_secp256k1_tr::Secp256K1Sha256TR>();
    }};
}
pub(crate) use for_each_suite;

/// Keys from frost's trusted dealer, for tests that need keys but not a DKG.
pub(crate) fn trusted_dealer<C: Ciphersuite>(
    t: u16,
    n: u16,
    seed: u64,
) -> (BTreeMap<Identifier<C>, KeyPackage<C>>, PublicKeyPackage<C>) {
    let mut rng = Seed::from_u64(seed).rng();
    let (shares, pkp) = frost_core::keys::generate_with_dealer::<C, _>(
        n,
        t,
        frost_core::keys::IdentifierList::Default,
        &mut rng,
    )
    .unwrap();
    let kps = shares
        .into_iter()
        .map(|(id, s)| (id, KeyPackage::try_from(s).unwrap()))
        .collect();
    (kps, pkp)
}
