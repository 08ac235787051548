//! Pregenerates the ECDSA test fixtures: safe primes and CGGMP24 auxiliary info.
//!
//! TEST FIXTURES ONLY: the seeds are public, so these primes and Paillier keys protect nothing.
//! A production node generates its own primes from OS randomness (in the driver, in the
//! background) and never loads these files.
//!
//! ```text
//! cargo run --release -p keyshard-core --features test-fixtures --example ecdsa_fixtures -- primes [PARTY..]  # ~170 s CPU per party
//! cargo run --release -p keyshard-core --features test-fixtures --example ecdsa_fixtures -- aux [N..]  # ~66 s (n=3) + ~180 s (n=5)
//! ```
//!
//! `primes` writes `core/tests/fixtures/ecdsa/primes-p{1..5}.json` (four 1536-bit safe primes per
//! party, from the seed `ecdsa-fixture-primes/<party>`); `aux` runs the aux-info session
//! ([`keyshard_core::ecdsa::EcdsaAux`]) for n = 3 (parties 1..3) and n = 5 (parties 1..5) with
//! those primes and writes `aux-n{3,5}-p{i}.json`. Parties 1..3 use the same primes in both
//! groups: fine for fixtures, and it saves three parties' worth of prime generation. Aux info in
//! cggmp24 does not depend on the curve (`AuxInfo<L>` has no curve parameter), so one set serves
//! secp256k1 and P-256 alike. Existing files are kept (delete one to regenerate it).

// An example is a driver, not the core: it may read and write files.
#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;

use keyshard_core::ecdsa::fixtures;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ecdsa")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let what = std::env::args().nth(1).unwrap_or_default();
    let dir = dir();
    std::fs::create_dir_all(&dir)?;
    match what.as_str() {
        "primes" => {
            // Optional party numbers (to split the work between processes); default 1..=5.
            let mut parties: Vec<u16> = std::env::args()
                .skip(2)
                .filter_map(|a| a.parse().ok())
                .collect();
            if parties.is_empty() {
                parties = (1..=5).collect();
            }
            for party in parties {
                let path = dir.join(format!("primes-p{party}.json"));
                if path.exists() {
                    println!("keep {}", path.display());
                    continue;
                }
                let started = std::time::Instant::now();
                let json = fixtures::generate_primes_json(party);
                std::fs::write(&path, json)?;
                println!(
                    "wrote {} in {:.1}s",
                    path.display(),
                    started.elapsed().as_secs_f64()
                );
            }
        }
        "aux" => {
            // Optional group sizes (to run them in separate processes); default 3 and 5.
            let mut sizes: Vec<u16> = std::env::args()
                .skip(2)
                .filter_map(|a| a.parse().ok())
                .collect();
            if sizes.is_empty() {
                sizes = vec![3, 5];
            }
            for n in sizes {
                if (1..=n).all(|p| dir.join(format!("aux-n{n}-p{p}.json")).exists()) {
                    println!("keep aux for n={n}");
                    continue;
                }
                let primes = (1..=n)
                    .map(|p| std::fs::read_to_string(dir.join(format!("primes-p{p}.json"))))
                    .collect::<Result<Vec<_>, _>>()?;
                let started = std::time::Instant::now();
                let aux = fixtures::generate_aux_json(&primes)?;
                for (p, json) in (1..=n).zip(aux) {
                    std::fs::write(dir.join(format!("aux-n{n}-p{p}.json")), json)?;
                }
                println!(
                    "aux for n={n}: {:.1}s (all parties, one thread)",
                    started.elapsed().as_secs_f64()
                );
            }
        }
        _ => {
            eprintln!("usage: ecdsa_fixtures primes|aux");
            std::process::exit(2);
        }
    }
    Ok(())
}
