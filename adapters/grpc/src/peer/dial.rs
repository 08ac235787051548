//! The dialing side: connect to a higher-id peer, hold one stream, reconnect with backoff.

use std::sync::Arc;
use std::time::Duration;

use keyshard_proto::peer::peer_client::PeerClient;

use super::{stream, Shared, Slot};
use crate::connect::{connect, ExpectServer};

/// Keeps one stream to `slot`'s peer up until the peer is removed or the transport stops.
pub(super) async fn run(shared: Arc<Shared>, slot: Arc<Slot>) {
    let mut address = slot.address.subscribe();
    let mut failures: u32 = 0;
    loop {
        if slot.stop.is_cancelled() {
            return;
        }
        let addr = address.borrow_and_update().clone();
        let conn = slot.stop.child_token();
        // With a role map, the server must carry the registry's role for it; a member without
        // a known role is not dialed (until the map names one).
        let expect = match shared.roles() {
            None => Some(ExpectServer::Node(slot.id)),
            Some(roles) => roles
                .get(&slot.id)
                .map(|role| ExpectServer::NodeWithRole(slot.id, *role)),
        };
        let channel = match expect {
            Some(expect) => tokio::select! {
                c = connect(
                    &addr,
                    shared.tls.clone(),
                    expect,
                    &shared.connect,
                    Some(shared.audit.clone()),
                ) => c.ok(),
                _ = slot.stop.cancelled() => return,
            },
            None => None,
        };
        if let Some(channel) = channel {
            let limit = shared.message_limit();
            let mut client = PeerClient::new(channel)
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit);
            let frames = stream::outbound(slot.clone(), conn.clone());
            let opened = tokio::select! {
                r = client.stream(frames) => r.ok(),
                _ = slot.stop.cancelled() => None,
            };
            if let Some(response) = opened {
                failures = 0;
                let _up = slot.up();
                tokio::select! {
                    _ = stream::inbound(
                        &slot,
                        response.into_inner(),
                        &shared.inbound,
                        shared.max_frame_bytes,
                        &conn,
                    ) => {}
                    _ = address.changed() => {}
                }
            }
        }
        conn.cancel();
        let delay = backoff(
            shared.backoff_initial,
            shared.backoff_max,
            failures,
            random_unit(),
        );
        failures = failures.saturating_add(1);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = address.changed() => failures = 0,
            _ = slot.stop.cancelled() => return,
        }
    }
}

/// The delay before reconnection attempt `failures` (0 after a working stream ended):
/// `initial * 2^failures`, capped at `max`, scaled into [d/2, d] by `unit` (in [0, 1]).
pub(super) fn backoff(initial: Duration, max: Duration, failures: u32, unit: f64) -> Duration {
    let full = initial
        .checked_mul(1u32.checked_shl(failures.min(31)).unwrap_or(u32::MAX))
        .unwrap_or(max)
        .min(max);
    full.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
}

/// A uniform value in [0, 1] from the OS (jitter keeps reconnecting nodes from moving in step).
fn random_unit() -> f64 {
    let mut b = [0u8; 4];
    match getrandom::getrandom(&mut b) {
        Ok(()) => f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX),
        // No OS randomness: the full delay (still bounded, just not jittered).
        Err(_) => 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let (i, m) = (Duration::from_millis(100), Duration::from_secs(10));
        assert_eq!(backoff(i, m, 0, 1.0), Duration::from_millis(100));
        assert_eq!(backoff(i, m, 0, 0.0), Duration::from_millis(50));
        assert_eq!(backoff(i, m, 3, 1.0), Duration::from_millis(800));
        assert_eq!(backoff(i, m, 7, 1.0), Duration::from_secs(10));
        assert_eq!(backoff(i, m, 1000, 0.0), Duration::from_secs(5));
        for _ in 0..100 {
            let d = backoff(i, m, 2, random_unit());
            assert!(d >= Duration::from_millis(200) && d <= Duration::from_millis(400));
        }
    }
}
