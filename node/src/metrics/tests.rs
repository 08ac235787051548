use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::http::{MetricsServer, CONTENT_TYPE_OPENMETRICS};
use super::*;

fn p(n: u16) -> ParticipantId {
    ParticipantId::new(n).unwrap()
}

/// The value of the sample line `name{labels}` (or `name` without labels) in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok())?
    })
}

fn filled() -> Metrics {
    let m = Metrics::new();
    m.task_finished(TaskType::Sign, Outcome::Ok, Duration::from_millis(3));
    m.task_finished(TaskType::Sign, Outcome::Ok, Duration::from_millis(40));
    m.task_finished(TaskType::Dkg, Outcome::Failed, Duration::from_secs(2));
    m.observe(&Event::LeaderChanged {
        leader: Some(p(3)),
        term: 7,
    });
    m.observe(&Event::PeerMisbehaved {
        peer: p(4),
        reason: "bad frame".into(),
    });
    m.observe(&Event::PeerMisbehaved {
        peer: p(4),
        reason: "bad frame".into(),
    });
    m.set_share_cache_totals(10, 4);
    m.set_share_cache_totals(15, 4);
    m.set_peer_queue_depth(p(2), 12);
    m.peer_message_dropped(p(5));
    m.set_presignature_totals(4, 0, 1, 0);
    m.set_presignature_totals(6, 2, 1, 1);
    m
}

#[test]
fn every_metric_is_exposed_with_its_value() {
    let text = filled().encode().unwrap();
    let expect = [
        ("keyshard_tasks_total{type=\"sign\",outcome=\"ok\"}", 2.0),
        ("keyshard_tasks_total{type=\"dkg\",outcome=\"failed\"}", 1.0),
        ("keyshard_task_duration_seconds_count{type=\"sign\"}", 2.0),
        ("keyshard_task_duration_seconds_sum{type=\"sign\"}", 0.043),
        (
            "keyshard_task_duration_seconds_bucket{le=\"0.004\",type=\"sign\"}",
            1.0,
        ),
        (
            "keyshard_task_duration_seconds_bucket{le=\"2.048\",type=\"dkg\"}",
            1.0,
        ),
        (
            "keyshard_task_duration_seconds_bucket{le=\"1.024\",type=\"dkg\"}",
            0.0,
        ),
        ("keyshard_leader_changes_total", 1.0),
        ("keyshard_leader", 3.0),
        ("keyshard_raft_term", 7.0),
        ("keyshard_share_cache_hits_total", 15.0),
        ("keyshard_share_cache_misses_total", 4.0),
        ("keyshard_peer_send_queue_depth{peer=\"2\"}", 12.0),
        ("keyshard_peer_dropped_messages_total{peer=\"5\"}", 1.0),
        ("keyshard_peer_refused_messages_total{peer=\"4\"}", 2.0),
        ("keyshard_presignatures_total{event=\"made\"}", 6.0),
        ("keyshard_presignatures_total{event=\"spent\"}", 2.0),
        ("keyshard_presignatures_total{event=\"failed\"}", 1.0),
        ("keyshard_presignatures_total{event=\"missing\"}", 1.0),
    ];
    for (series, value) in expect {
        let got = sample(&text, series).unwrap_or_else(|| panic!("{series} missing:\n{text}"));
        assert!((got - value).abs() < 1e-9, "{series} = {got}, want {value}");
    }
    assert!(text.ends_with("# EOF\n"));
}

#[test]
fn outcomes_and_types_come_from_core_values() {
    use keyshard_core::persist::KeyId;
    let key = KeyId::new("k").unwrap();
    assert_eq!(Outcome::of(&Err(RequestError::TimedOut)), Outcome::TimedOut);
    assert_eq!(
        Outcome::of(&Err(RequestError::NoSuchKey(key.clone()))),
        Outcome::Refused
    );
    assert_eq!(
        Outcome::of(&Err(RequestError::Failed {
            reason: "x".into(),
            culprits: BTreeSet::new()
        })),
        Outcome::Failed
    );
    assert_eq!(
        TaskType::of(&Request::Sign {
            key: key.clone(),
            messages: vec![]
        }),
        TaskType::Sign
    );
    assert_eq!(
        TaskType::of(&Request::Reshare {
            key,
            new_threshold: None,
            new_members: None
        }),
        TaskType::Reshare
    );
}

#[test]
fn share_cache_totals_never_go_backwards() {
    let m = Metrics::new();
    m.set_share_cache_totals(5, 1);
    m.set_share_cache_totals(2, 1); // a new cache counting from zero
    let text = m.encode().unwrap();
    assert_eq!(sample(&text, "keyshard_share_cache_hits_total"), Some(7.0));
    assert_eq!(
        sample(&text, "keyshard_share_cache_misses_total"),
        Some(1.0)
    );
}

/// One HTTP/1.1 exchange on 127.0.0.1 with a deadline; returns the raw response.
async fn exchange(addr: std::net::SocketAddr, request: &str) -> String {
    let io = async {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(request.as_bytes()).await?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await?;
        Ok::<_, std::io::Error>(out)
    };
    let bytes = tokio::time::timeout(Duration::from_secs(10), io)
        .await
        .expect("the server answered within 10 s")
        .expect("i/o");
    String::from_utf8(bytes).unwrap()
}

#[tokio::test]
async fn the_endpoint_serves_metrics_on_loopback() {
    let metrics = Arc::new(filled());
    let server = MetricsServer::bind("127.0.0.1:0".parse().unwrap(), metrics.clone())
        .await
        .unwrap();
    let addr = server.local_addr();
    assert!(addr.ip().is_loopback() && addr.port() != 0);

    let r = exchange(
        addr,
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    let (head, body) = r.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("content-type: {CONTENT_TYPE_OPENMETRICS}")),
        "{head}"
    );
    assert_eq!(sample(body, "keyshard_leader"), Some(3.0));
    assert_eq!(
        sample(body, "keyshard_tasks_total{type=\"sign\",outcome=\"ok\"}"),
        Some(2.0)
    );

    // Live values: a change shows in the next scrape.
    metrics.task_finished(TaskType::Sign, Outcome::Ok, Duration::from_millis(1));
    let r = exchange(
        addr,
        "GET /metrics?x=1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(
        sample(
            r.split_once("\r\n\r\n").unwrap().1,
            "keyshard_tasks_total{type=\"sign\",outcome=\"ok\"}"
        ),
        Some(3.0)
    );

    let r = exchange(
        addr,
        "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 404"), "{r}");
    let r = exchange(
        addr,
        "POST /metrics HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 405"), "{r}");
    assert!(r.to_ascii_lowercase().contains("allow: get, head"), "{r}");
    let r = exchange(addr, "NONSENSE\r\n\r\n").await;
    assert!(r.is_empty() || r.starts_with("HTTP/1.1 400"), "{r}");

    drop(server);
    // Stopped: the listener is gone once the accept task is aborted (bounded wait).
    let mut refused = false;
    for _ in 0..50 {
        if TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "the listener closed after drop");
}
