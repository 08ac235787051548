//! Issuing certificates and reading identities back out of them.

use std::time::{Duration, SystemTime};

use keyshard_core::ids::ParticipantId;
use keyshard_pki::{
    CertificateAuthority, ClientName, ClientRole, Identity, IdentityError, IssueOptions, NodeRole,
    PkiError, Validity,
};
use rcgen::{CertificateParams, KeyPair, SanType};
use x509_parser::pem::parse_x509_pem;

fn der(pem: &str) -> Vec<u8> {
    let (_, block) = parse_x509_pem(pem.as_bytes()).unwrap();
    assert_eq!(block.label, "CERTIFICATE");
    block.contents
}

fn node(id: u16) -> Identity {
    Identity::Node {
        id: ParticipantId::new(id).unwrap(),
        role: NodeRole::Tee,
    }
}

fn app(name: &str) -> Identity {
    Identity::Client {
        name: ClientName::new(name).unwrap(),
        role: ClientRole::Application,
    }
}

/// A self-signed certificate with the given SANs (bypassing the CA, to build bad certificates).
fn self_signed(sans: Vec<SanType>) -> Vec<u8> {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.subject_alt_names = sans;
    params.self_signed(&key).unwrap().der().to_vec()
}

fn uri(s: &str) -> SanType {
    SanType::URI(s.to_string().try_into().unwrap())
}

#[test]
fn issued_certificates_carry_their_identity_and_sans() {
    let ca = CertificateAuthority::generate("keyshard test CA").unwrap();
    for identity in [
        node(7),
        Identity::Node {
            id: ParticipantId::new(65535).unwrap(),
            role: NodeRole::Mesh,
        },
        app("billing"),
        Identity::Client {
            name: ClientName::new("ops").unwrap(),
            role: ClientRole::Admin,
        },
    ] {
        let issued = ca.issue(&identity, &IssueOptions::localhost(1)).unwrap();
        let leaf = der(&issued.cert_pem);
        assert_eq!(Identity::from_cert_der(&leaf).unwrap(), identity);

        let (_, cert) = x509_parser::parse_x509_certificate(&leaf).unwrap();
        let names = format!("{:?}", cert.subject_alternative_name().unwrap().unwrap());
        assert!(
            names.contains("localhost") && names.contains(&identity.to_uri()),
            "{names}"
        );
        // Signed by the CA.
        let ca_der = der(ca.cert_pem());
        let (_, ca_cert) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
        cert.verify_signature(Some(ca_cert.public_key())).unwrap();
        assert!(issued.key_pem.expose().contains("PRIVATE KEY"));
    }
}

#[test]
fn an_expired_certificate_can_be_issued_for_tests() {
    let ca = CertificateAuthority::generate("ca").unwrap();
    let now = SystemTime::now();
    let mut options = IssueOptions::localhost(1);
    options.validity = Validity {
        not_before: now - Duration::from_secs(2 * 86_400),
        not_after: now - Duration::from_secs(86_400),
    };
    let issued = ca.issue(&app("late"), &options).unwrap();
    let der = der(&issued.cert_pem);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert!(!cert.validity().is_valid());
    // The identity is still readable: dates are TLS's business.
    assert_eq!(Identity::from_cert_der(&der).unwrap(), app("late"));

    options.validity = Validity {
        not_before: now,
        not_after: now,
    };
    assert!(matches!(
        ca.issue(&app("x"), &options),
        Err(PkiError::BadValidity(_))
    ));
}

#[test]
fn a_ca_reloaded_from_pem_issues_certificates_it_signed() {
    let ca = CertificateAuthority::generate("reloaded").unwrap();
    let again = CertificateAuthority::from_pem(ca.cert_pem(), ca.key_pem().expose()).unwrap();
    let issued = again.issue(&node(2), &IssueOptions::days(1)).unwrap();
    let ca_der = der(ca.cert_pem());
    let (_, ca_cert) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
    let leaf = der(&issued.cert_pem);
    let (_, cert) = x509_parser::parse_x509_certificate(&leaf).unwrap();
    cert.verify_signature(Some(ca_cert.public_key())).unwrap();
    assert_eq!(cert.issuer(), ca_cert.subject());

    // A certificate from another CA does not verify against this one.
    let other = CertificateAuthority::generate("other").unwrap();
    let foreign = other.issue(&node(2), &IssueOptions::days(1)).unwrap();
    let foreign = der(&foreign.cert_pem);
    let (_, foreign) = x509_parser::parse_x509_certificate(&foreign).unwrap();
    assert!(foreign
        .verify_signature(Some(ca_cert.public_key()))
        .is_err());
}

#[test]
fn loading_a_ca_checks_the_pair() {
    let a = CertificateAuthority::generate("a").unwrap();
    let b = CertificateAuthority::generate("b").unwrap();
    let err = CertificateAuthority::from_pem(a.cert_pem(), b.key_pem().expose()).unwrap_err();
    assert!(matches!(err, PkiError::BadCaKey(_)), "{err}");
    let leaf = a.issue(&node(1), &IssueOptions::days(1)).unwrap();
    let err = CertificateAuthority::from_pem(&leaf.cert_pem, leaf.key_pem.expose()).unwrap_err();
    assert!(err.to_string().contains("not a CA certificate"), "{err}");
    let err = CertificateAuthority::from_pem("garbage", a.key_pem().expose()).unwrap_err();
    assert!(matches!(err, PkiError::BadCaCertificate(_)), "{err}");
    let err = CertificateAuthority::from_pem(a.cert_pem(), "garbage").unwrap_err();
    assert!(matches!(err, PkiError::BadCaKey(_)), "{err}");
}

#[test]
fn secrets_never_show_in_debug_output() {
    let ca = CertificateAuthority::generate("debug").unwrap();
    let issued = ca.issue(&node(1), &IssueOptions::days(1)).unwrap();
    let shown = format!("{ca:?} {issued:?}");
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    assert!(shown.contains("redacted"), "{shown}");
    let body = ca.key_pem().expose().lines().nth(1).unwrap().to_string();
    assert!(!shown.contains(&body));
}

#[test]
fn certificates_without_exactly_one_keyshard_uri_are_refused() {
    let none = self_signed(vec![SanType::DnsName("localhost".try_into().unwrap())]);
    assert_eq!(
        Identity::from_cert_der(&none),
        Err(IdentityError::NoIdentity)
    );

    let no_san = self_signed(vec![]);
    assert_eq!(
        Identity::from_cert_der(&no_san),
        Err(IdentityError::NoIdentity)
    );

    let two = self_signed(vec![
        uri("keyshard://node/1?role=tee"),
        uri("keyshard://client/a?role=admin"),
    ]);
    assert_eq!(
        Identity::from_cert_der(&two),
        Err(IdentityError::AmbiguousIdentity(2))
    );

    // An upper-case scheme counts as a keyshard URI and is then refused as non-canonical.
    let upper = self_signed(vec![uri("KEYSHARD://node/1?role=tee")]);
    assert!(matches!(
        Identity::from_cert_der(&upper),
        Err(IdentityError::NotKeyshardUri(_))
    ));

    let bad_role = self_signed(vec![uri("keyshard://node/1?role=admin")]);
    assert!(Identity::from_cert_der(&bad_role)
        .unwrap_err()
        .to_string()
        .contains("not a node role"));

    // Other URIs are ignored.
    let mixed = self_signed(vec![
        uri("spiffe://example.org/ns/x"),
        uri("keyshard://node/9?role=mesh"),
    ]);
    assert_eq!(
        Identity::from_cert_der(&mixed).unwrap(),
        Identity::Node {
            id: ParticipantId::new(9).unwrap(),
            role: NodeRole::Mesh
        }
    );

    let mut trailing = mixed.clone();
    trailing.push(0);
    assert!(Identity::from_cert_der(&trailing)
        .unwrap_err()
        .to_string()
        .contains("1 trailing bytes"));
    assert!(matches!(
        Identity::from_cert_der(b"not a certificate"),
        Err(IdentityError::BadCertificate(_))
    ));
    assert!(matches!(
        Identity::from_cert_der(&mixed[..mixed.len() / 2]),
        Err(IdentityError::BadCertificate(_))
    ));
}
