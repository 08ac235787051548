//! `keyshard bench` runs end to end (a tiny run: it works and reports every figure; no timing
//! assertions).

use std::process::Command;

#[test]
fn keyshard_bench_runs_and_reports_json() {
    let tmp = tempfile::Builder::new()
        .prefix("ks-bench")
        .tempdir()
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_keyshard"))
        .args([
            "bench",
            "--nodes",
            "3",
            "--threshold",
            "2",
            "--seconds",
            "0.3",
            "--batch",
            "4",
            "--concurrency",
            "2",
            "--json",
            "--data-dir",
        ])
        .arg(tmp.path().join("bench"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "keyshard bench failed:\n{stderr}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", String::from_utf8_lossy(&out.stdout)));
    println!("{}", serde_json::to_string_pretty(&r).unwrap());
    assert_eq!(r["nodes"], 3);
    assert!(r["cores"].as_u64().unwrap() >= 1);
    assert!(r["rtt_p50_ms"].as_f64().unwrap() > 0.0);
    let schemes = r["schemes"].as_array().unwrap();
    let names: Vec<&str> = schemes
        .iter()
        .map(|s| s["scheme"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["frost-ed25519", "frost-secp256k1"]);
    for s in schemes {
        assert_eq!(s["threshold"], 2);
        assert_eq!(s["holders"], 3);
        assert!(s["single"]["requests"].as_u64().unwrap() >= 5, "{s}");
        assert!(s["single"]["p50_ms"].as_f64().unwrap() > 0.0, "{s}");
        assert!(s["in_process"]["cpu_ms"].as_f64().unwrap() > 0.0, "{s}");
        assert!(
            s["in_process_parallel_per_s"].as_f64().unwrap() > 0.0,
            "{s}"
        );
        assert_eq!(s["batched"]["failed"], 0, "{s}");
        let sigs = s["batched"]["signatures"].as_u64().unwrap();
        assert_eq!(sigs, 4 * s["batched"]["requests"].as_u64().unwrap(), "{s}");
        assert!(sigs > 0);
        // The derived figures follow from the measured ones.
        let bound =
            s["in_process"]["cpu_ms"].as_f64().unwrap() + 2.0 * r["rtt_p50_ms"].as_f64().unwrap();
        assert!(
            (s["latency_bound_ms"].as_f64().unwrap() - bound).abs() < 1e-9,
            "{s}"
        );
        let limit =
            r["cores"].as_f64().unwrap() / (s["in_process"]["cpu_ms"].as_f64().unwrap() / 1e3);
        assert!(
            (s["crypto_bound_per_s"].as_f64().unwrap() - limit).abs() < 1e-6 * limit,
            "{s}"
        );
    }
    // The human output is the table.
    let out = Command::new(env!("CARGO_BIN_EXE_keyshard"))
        .args([
            "bench",
            "--nodes",
            "3",
            "--threshold",
            "2",
            "--seconds",
            "0.1",
        ])
        .args([
            "--batch",
            "2",
            "--concurrency",
            "1",
            "--scheme",
            "frost-ed25519",
            "--data-dir",
        ])
        .arg(tmp.path().join("bench"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("| frost-ed25519 | 2-of-3 |"), "{text}");
    assert!(!text.contains("frost-secp256k1"), "{text}");
}
