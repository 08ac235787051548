use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use frost_core::keys::{IdentifierList, KeyPackage};
use frost_core::{Ciphersuite, SigningPackage};
use k256::elliptic_curve::sec1::ToEncodedPoint;
use k256::pkcs8::DecodePublicKey;
use keyshard_core::node::sessions::group_public_key;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

use super::*;

const MESSAGE: &[u8] = b"keyshard encoding test";

/// A 2-of-3 key from a trusted dealer and a signature on `MESSAGE`, seeded; returns the group
/// key as the core emits it (from the public key package) and the signature bytes.
fn key_and_signature<C: Ciphersuite>(scheme: Scheme, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let (shares, pkp) =
        frost_core::keys::generate_with_dealer::<C, _>(3, 2, IdentifierList::Default, &mut rng)
            .unwrap();
    let signers: BTreeMap<_, _> = shares
        .into_iter()
        .take(2)
        .map(|(id, s)| (id, KeyPackage::try_from(s).unwrap()))
        .collect();
    let mut nonces = BTreeMap::new();
    let mut commitments = BTreeMap::new();
    for (id, kp) in &signers {
        let (n, c) = frost_core::round1::commit(kp.signing_share(), &mut rng);
        nonces.insert(*id, n);
        commitments.insert(*id, c);
    }
    let package = SigningPackage::new(commitments, MESSAGE);
    let sig_shares: BTreeMap<_, _> = signers
        .iter()
        .map(|(id, kp)| {
            (
                *id,
                frost_core::round2::sign(&package, &nonces[id], kp).unwrap(),
            )
        })
        .collect();
    let sig = frost_core::aggregate(&package, &sig_shares, &pkp).unwrap();
    let key = group_public_key(scheme, &pkp.serialize().unwrap()).expect("core reads the package");
    (key, sig.serialize().unwrap())
}

#[test]
fn ed25519_pem_is_rfc_8410() {
    // RFC 8410 section 10.1.
    let key =
        hex::decode("19bf44096984cdfe8541bac167dc3b96c85086aa30b6b6cb0c5c38ad703166e1").unwrap();
    let pem = public_key_pem(Scheme::FrostEd25519, &key).unwrap();
    assert_eq!(
        pem,
        "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n"
    );
}

#[test]
fn ed25519_round_trip_and_verify() {
    let (key, sig) = key_and_signature::<frost_ed25519::Ed25519Sha512>(Scheme::FrostEd25519, 1);
    assert_eq!(key.len(), 32);
    let t = public_key(Scheme::FrostEd25519, &key).unwrap();
    assert_eq!(t.hex, hex::encode(&key));
    assert_eq!(t.bip340_hex, None);
    let decoded = ed25519_dalek::VerifyingKey::from_public_key_pem(&t.pem).unwrap();
    assert_eq!(decoded.as_bytes().as_slice(), key.as_slice());
    let sig_hex = signature_hex(Scheme::FrostEd25519, &sig).unwrap();
    let sig = hex::decode(sig_hex).unwrap();
    keyshard_verifier::ed25519(decoded.as_bytes(), MESSAGE, &sig).unwrap();
}

#[test]
fn secp256k1_round_trip_and_verify() {
    let scheme = Scheme::FrostSecp256k1;
    let (key, sig) = key_and_signature::<frost_secp256k1::Secp256K1Sha256>(scheme, 2);
    assert_eq!(key.len(), 33);
    let t = public_key(scheme, &key).unwrap();
    let decoded = k256::PublicKey::from_public_key_pem(&t.pem).unwrap();
    let again = decoded.to_encoded_point(true);
    assert_eq!(again.as_bytes(), key.as_slice());
    assert!(
        contains_oid(&t.pem, &[0x2b, 0x81, 0x04, 0x00, 0x0a]),
        "secp256k1 OID"
    );
    let sig = hex::decode(signature_hex(scheme, &sig).unwrap()).unwrap();
    assert_eq!(sig.len(), 65);
    keyshard_verifier::frost_secp256k1(again.as_bytes(), MESSAGE, &sig).unwrap();
}

#[test]
fn p256_round_trip_and_verify() {
    use p256::elliptic_curve::sec1::ToEncodedPoint as _;
    use p256::pkcs8::DecodePublicKey as _;
    let scheme = Scheme::FrostP256;
    let (key, sig) = key_and_signature::<frost_p256::P256Sha256>(scheme, 3);
    assert_eq!(key.len(), 33);
    let t = public_key(scheme, &key).unwrap();
    let decoded = p256::PublicKey::from_public_key_pem(&t.pem).unwrap();
    let again = decoded.to_encoded_point(true);
    assert_eq!(again.as_bytes(), key.as_slice());
    assert!(
        contains_oid(&t.pem, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]),
        "prime256v1 OID"
    );
    let sig = hex::decode(signature_hex(scheme, &sig).unwrap()).unwrap();
    keyshard_verifier::frost_p256(again.as_bytes(), MESSAGE, &sig).unwrap();
}

#[test]
fn taproot_pem_is_the_bip340_key_for_both_parities() {
    let scheme = Scheme::FrostSecp256k1Taproot;
    let mut parities = std::collections::BTreeSet::new();
    for seed in 0..40 {
        let (key, sig) = key_and_signature::<frost_secp256k1_tr::Secp256K1Sha256TR>(scheme, seed);
        assert_eq!(key.len(), 33, "core emits the compressed point");
        parities.insert(key[0]);
        let t = public_key(scheme, &key).unwrap();
        assert_eq!(
            t.bip340_hex.as_deref(),
            Some(hex::encode(&key[1..]).as_str())
        );
        let decoded = k256::PublicKey::from_public_key_pem(&t.pem).unwrap();
        let point = decoded.to_encoded_point(true);
        assert_eq!(point.as_bytes()[0], 0x02, "the PEM point has even y");
        assert_eq!(&point.as_bytes()[1..], &key[1..]);
        let sig = hex::decode(signature_hex(scheme, &sig).unwrap()).unwrap();
        assert_eq!(sig.len(), 64);
        keyshard_verifier::bip340(&point.as_bytes()[1..], MESSAGE, &sig).unwrap();
        // The x-only form gives the same PEM.
        assert_eq!(public_key(scheme, &key[1..]).unwrap().pem, t.pem);
        if parities.len() == 2 {
            return;
        }
    }
    panic!("40 seeds gave only one parity: {parities:?}");
}

#[test]
fn invalid_keys_and_signatures_are_errors() {
    let cases: [(Scheme, Vec<u8>, &str); 9] = [
        (Scheme::FrostEd25519, vec![1; 31], "32 bytes"),
        (Scheme::FrostSecp256k1, vec![2; 32], "33 bytes"),
        (
            Scheme::FrostSecp256k1,
            [vec![4], vec![1; 32]].concat(),
            "tag 0x04",
        ),
        (
            Scheme::FrostSecp256k1,
            [vec![2], vec![0xff; 32]].concat(),
            "not a point",
        ),
        (
            Scheme::FrostP256,
            [vec![3], vec![0xff; 32]].concat(),
            "not a point",
        ),
        (Scheme::FrostP256, vec![], "33 bytes"),
        (
            Scheme::FrostSecp256k1Taproot,
            vec![0xff; 32],
            "x coordinate",
        ),
        (Scheme::FrostSecp256k1Taproot, vec![2; 34], "got 34"),
        (
            Scheme::FrostSecp256k1Taproot,
            [vec![5], vec![1; 32]].concat(),
            "tag 0x05",
        ),
    ];
    for (scheme, key, says) in cases {
        let e = public_key(scheme, &key).unwrap_err();
        assert_eq!(e.scheme, scheme);
        assert!(e.what.contains(says), "{scheme}: {}", e.what);
    }
    // An Ed25519 y whose x does not exist (y = 2 is not on the curve).
    let mut y2 = [0u8; 32];
    y2[0] = 2;
    assert!(public_key(Scheme::FrostEd25519, &y2).is_err());
    for scheme in Scheme::ALL {
        let n = signature_len(scheme);
        assert!(signature_hex(scheme, &vec![0; n]).is_ok());
        let e = signature_hex(scheme, &vec![0; n - 1]).unwrap_err();
        assert!(e.what.contains(&format!("{n} bytes")), "{}", e.what);
    }
}

/// Whether the DER inside `pem` contains the OID (tag 0x06, length, value).
fn contains_oid(pem: &str, oid: &[u8]) -> bool {
    let (label, doc) = k256::pkcs8::Document::from_pem(pem).unwrap();
    assert_eq!(label, "PUBLIC KEY");
    let mut needle = vec![0x06, oid.len() as u8];
    needle.extend_from_slice(oid);
    doc.as_bytes()
        .windows(needle.len())
        .any(|w| w == needle.as_slice())
}

#[test]
fn openssl_accepts_every_pem() {
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("SKIPPED: openssl is not installed; PEMs not checked with openssl");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let keys = [
        (
            Scheme::FrostEd25519,
            key_and_signature::<frost_ed25519::Ed25519Sha512>(Scheme::FrostEd25519, 4).0,
        ),
        (
            Scheme::FrostSecp256k1,
            key_and_signature::<frost_secp256k1::Secp256K1Sha256>(Scheme::FrostSecp256k1, 5).0,
        ),
        (
            Scheme::FrostP256,
            key_and_signature::<frost_p256::P256Sha256>(Scheme::FrostP256, 6).0,
        ),
        (
            Scheme::FrostSecp256k1Taproot,
            key_and_signature::<frost_secp256k1_tr::Secp256K1Sha256TR>(
                Scheme::FrostSecp256k1Taproot,
                7,
            )
            .0,
        ),
    ];
    for (scheme, key) in keys {
        let path = dir.path().join(format!("{scheme}.pem"));
        std::fs::write(&path, public_key_pem(scheme, &key).unwrap()).unwrap();
        let (ok, text) = openssl_pkey(&path);
        assert!(ok, "openssl refused the {scheme} PEM: {text}");
        let expect = match scheme {
            Scheme::FrostEd25519 => "ED25519",
            Scheme::FrostSecp256k1 | Scheme::FrostSecp256k1Taproot | Scheme::EcdsaSecp256k1 => {
                "secp256k1"
            }
            Scheme::FrostP256 | Scheme::EcdsaP256 => "prime256v1",
        };
        assert!(text.contains(expect), "{scheme}: {text}");
    }
    // And it refuses a damaged one, so the check above can fail.
    let path = dir.path().join("bad.pem");
    std::fs::write(
        &path,
        "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZu==\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    assert!(!openssl_pkey(&path).0);
}

/// `openssl pkey -pubin -in FILE -noout` succeeds, plus `-text_pub` output naming the curve.
fn openssl_pkey(path: &Path) -> (bool, String) {
    let check = Command::new("openssl")
        .args(["pkey", "-pubin", "-noout", "-in"])
        .arg(path)
        .output()
        .unwrap();
    if !check.status.success() {
        return (false, String::from_utf8_lossy(&check.stderr).into_owned());
    }
    let text = Command::new("openssl")
        .args(["pkey", "-pubin", "-noout", "-text_pub", "-in"])
        .arg(path)
        .output()
        .unwrap();
    (
        text.status.success(),
        String::from_utf8_lossy(&text.stdout).into_owned(),
    )
}
