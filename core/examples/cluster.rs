//! The in-process cluster demo: for every scheme, a 5-party 3-of-5 DKG without a dealer, a batch
//! signature by 3 randomly chosen parties, a reshare to 3-of-4 that keeps the public key, a
//! signature with the new shares, and verification of every signature by an independent verifier.
//!
//! Run: `cargo run --release -p keyshard-core --example cluster [-- --seed N]`. Everything runs in
//! one process over the deterministic in-memory network; the same seed prints the same output.
//! (The multi-process gRPC cluster is `keyshard dev`, once the node issue lands.)

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use frost_core::keys::{KeyPackage, PublicKeyPackage};
use keyshard_core::frost::{DkgConfig, FrostDkg, FrostSign, SignConfig, SignOutput};
use keyshard_core::ids::ParticipantId;
use keyshard_core::persist::KeyVersion;
use keyshard_core::reshare::session::{FrostReshare, ReshareConfig, ReshareOutput};
use keyshard_core::rng::Seed;
use keyshard_core::scheme::{FrostScheme, Scheme};
use keyshard_core::session::local::{Delivery, LocalNet};
use keyshard_core::time::{Duration, Instant};
use rand_core::RngCore;

const N: u16 = 5;
const T: u16 = 3;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn run<C: FrostScheme>(seed: &Seed) -> Result<(), String> {
    let ids: BTreeSet<ParticipantId> = (1..=N).filter_map(ParticipantId::new).collect();
    let timeout = Duration::from_secs(10);
    let dkg_seed = seed.child(C::SCHEME.name().as_bytes(), b"dkg");
    let sessions = ids
        .iter()
        .map(|me| {
            let cfg = DkgConfig {
                me: *me,
                participants: ids.clone(),
                threshold: T,
                round_timeout: timeout,
            };
            FrostDkg::<C>::new(
                cfg,
                &dkg_seed.child(b"party", &me.get().to_be_bytes()),
                Instant::ZERO,
            )
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let mut net = LocalNet::new(
        sessions,
        Delivery::Random(dkg_seed.child(b"order", &[])),
        Instant::ZERO,
    );
    net.run(1_000_000);
    let mut kps: BTreeMap<ParticipantId, KeyPackage<C>> = BTreeMap::new();
    let mut pkp = None;
    for (id, r) in std::mem::take(&mut net.results) {
        let out = r.map_err(|f| format!("DKG failed at {id:?}: {f:?}"))?;
        kps.insert(id, out.key_package);
        pkp = Some(out.public_key_package);
    }
    let pkp = pkp.ok_or("no DKG result")?;
    let public_key = pkp.verifying_key().serialize().map_err(|e| e.to_string())?;

    // Three signers chosen at random, one of them coordinates; two messages in one batch.
    let mut rng = seed.child(C::SCHEME.name().as_bytes(), b"pick").rng();
    let mut pool: Vec<ParticipantId> = ids.iter().copied().collect();
    let mut signers = BTreeSet::new();
    while signers.len() < usize::from(T) {
        signers.insert(pool.swap_remove((rng.next_u32() as usize) % pool.len()));
    }
    let messages = vec![
        b"transfer 10 to alice".to_vec(),
        b"transfer 20 to bob".to_vec(),
    ];
    let sigs = sign(
        &kps,
        &pkp,
        &signers,
        &messages,
        &seed.child(C::SCHEME.name().as_bytes(), b"sign"),
    )?;
    println!(
        "{:<20} {T}-of-{N}  public key {}",
        C::SCHEME.name(),
        hex(&public_key)
    );
    println!("{:<20} signers {:?}", "", signers);
    for (m, sig) in messages.iter().zip(&sigs) {
        verify::<C>(&public_key, m, sig)?;
        println!(
            "{:<20} {:?} -> {}  independent verifier: valid",
            "",
            String::from_utf8_lossy(m),
            hex(sig)
        );
    }

    // Reshare to 3-of-4 without member 5 (the signers deal): same public key, new shares.
    let new_members: BTreeSet<ParticipantId> = (1..=4).filter_map(ParticipantId::new).collect();
    let reshare_seed = seed.child(C::SCHEME.name().as_bytes(), b"reshare");
    let parties: BTreeSet<ParticipantId> = signers.union(&new_members).copied().collect();
    let sessions = parties
        .iter()
        .map(|me| {
            let cfg = ReshareConfig {
                me: *me,
                from_version: KeyVersion(1),
                dealers: signers.clone(),
                new_members: new_members.clone(),
                new_threshold: T,
                round_timeout: timeout,
                run: Vec::new(),
            };
            let kp = signers.contains(me).then(|| &kps[me]);
            FrostReshare::<C>::new(
                cfg,
                kp,
                pkp.clone(),
                &reshare_seed.child(b"party", &me.get().to_be_bytes()),
                Instant::ZERO,
            )
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let mut net = LocalNet::new(
        sessions,
        Delivery::Random(reshare_seed.child(b"order", &[])),
        Instant::ZERO,
    );
    net.run(1_000_000);
    let mut new_kps: BTreeMap<ParticipantId, KeyPackage<C>> = BTreeMap::new();
    let mut new_pkp: Option<PublicKeyPackage<C>> = None;
    for (id, r) in std::mem::take(&mut net.results) {
        match r.map_err(|f| format!("reshare failed at {id:?}: {f:?}"))? {
            ReshareOutput::Member(m) => {
                new_kps.insert(id, m.key_package);
                new_pkp = Some(m.public_key_package);
            }
            ReshareOutput::Dealt { .. } => {}
        }
    }
    let new_pkp = new_pkp.ok_or("no reshare result")?;
    let new_key = new_pkp
        .verifying_key()
        .serialize()
        .map_err(|e| e.to_string())?;
    if new_key != public_key {
        return Err(format!(
            "{}: resharing changed the public key",
            C::SCHEME.name()
        ));
    }
    let new_signers: BTreeSet<ParticipantId> = new_members.iter().copied().skip(1).collect();
    let message = b"signed after resharing to 3-of-4".to_vec();
    let sigs = sign(
        &new_kps,
        &new_pkp,
        &new_signers,
        std::slice::from_ref(&message),
        &seed.child(C::SCHEME.name().as_bytes(), b"sign-v2"),
    )?;
    let sig = sigs.first().ok_or("no signature")?;
    verify::<C>(&public_key, &message, sig)?;
    println!(
        "{:<20} reshared 3-of-5 -> 3-of-4 {:?}: same public key; signers {:?} -> {}  independent verifier: valid",
        "",
        new_members,
        new_signers,
        hex(sig)
    );
    Ok(())
}

fn sign<C: FrostScheme>(
    kps: &BTreeMap<ParticipantId, KeyPackage<C>>,
    pkp: &PublicKeyPackage<C>,
    signers: &BTreeSet<ParticipantId>,
    messages: &[Vec<u8>],
    seed: &Seed,
) -> Result<Vec<Vec<u8>>, String> {
    let coordinator = *signers.iter().next().ok_or("no signer")?;
    let sessions = signers
        .iter()
        .map(|me| {
            let cfg = SignConfig {
                me: *me,
                coordinator,
                signers: signers.clone(),
                messages: messages.to_vec(),
                round_timeout: Duration::from_secs(10),
            };
            let pk = (*me == coordinator).then(|| pkp.clone());
            FrostSign::new(
                cfg,
                Some(kps[me].clone()),
                pk,
                &seed.child(b"party", &me.get().to_be_bytes()),
                Instant::ZERO,
            )
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let mut net = LocalNet::new(
        sessions,
        Delivery::Random(seed.child(b"order", &[])),
        Instant::ZERO,
    );
    net.run(1_000_000);
    let Some(Ok(SignOutput::Signatures(sigs))) = net.results.remove(&coordinator) else {
        return Err(format!("signing failed: {:?}", net.results));
    };
    sigs.iter()
        .map(|s| s.serialize().map_err(|e| e.to_string()))
        .collect()
}

fn verify<C: FrostScheme>(public_key: &[u8], m: &[u8], sig: &[u8]) -> Result<(), String> {
    match C::SCHEME {
        Scheme::FrostEd25519 => keyshard_verifier::ed25519(public_key, m, sig),
        Scheme::FrostSecp256k1 => keyshard_verifier::frost_secp256k1(public_key, m, sig),
        Scheme::FrostP256 => keyshard_verifier::frost_p256(public_key, m, sig),
        Scheme::FrostSecp256k1Taproot => keyshard_verifier::bip340(public_key, m, sig),
        Scheme::EcdsaSecp256k1 | Scheme::EcdsaP256 => {
            return Err(format!("{} is not a FROST scheme", C::SCHEME))
        }
    }
    .map_err(|e| format!("{}: {e}", C::SCHEME.name()))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let seed = match args
        .iter()
        .position(|a| a == "--seed")
        .and_then(|i| args.get(i + 1))
    {
        Some(s) => match s.parse::<u64>() {
            Ok(n) => n,
            Err(_) => {
                eprintln!("--seed takes a number, got {s:?}");
                return ExitCode::from(2);
            }
        },
        None => 1,
    };
    println!("keyshard in-process cluster demo (seed {seed}): DKG, batch signing, resharing, independent verification\n");
    let seed = Seed::from_u64(seed);
    let results = [
        run::<frost_ed25519::Ed25519Sha512>(&seed),
        run::<frost_secp256k1::Secp256K1Sha256>(&seed),
        run::<frost_p256::P256Sha256>(&seed),
        run::<frost_secp256k1_tr::Secp256K1Sha256TR>(&seed),
    ];
    let failed: Vec<_> = results.into_iter().filter_map(Result::err).collect();
    if failed.is_empty() {
        println!("\nall signatures verified");
        ExitCode::SUCCESS
    } else {
        for f in failed {
            eprintln!("error: {f}");
        }
        ExitCode::FAILURE
    }
}
