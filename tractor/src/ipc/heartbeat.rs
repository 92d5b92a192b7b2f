//! Heartbeats: how a channel between hosts notices a peer that went
//! silent.
//!
//! A TCP connection whose link is cut, or whose peer's host froze, says
//! nothing: TCP gives up only after many minutes, and a reader waits that
//! long. So a channel over TCP sends a `Heartbeat` frame whenever it sent
//! nothing for an `interval`, and its reader treats a peer it heard
//! nothing from (no frame at all, heartbeats included) for a `timeout` as
//! gone: the channel closes, which fails every call and stream on it and,
//! for a child's parent channel, is a lost parent (the child exits; its
//! parent, hearing nothing either, reports it failed). Channels on one
//! host (Unix sockets) have none: the kernel tells of a dead peer at once.

use std::time::Duration;

use super::Channel;

/// How often an idle channel between hosts speaks, and how long a silent
/// one is trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Heartbeat {
    pub interval: Duration,
    pub timeout: Duration,
}

/// Defaults: a heartbeat after a second of silence, a peer gone after
/// five.
pub(crate) const DEFAULT: Heartbeat = Heartbeat {
    interval: Duration::from_secs(1),
    timeout: Duration::from_secs(5),
};

impl Heartbeat {
    /// Checks a setting: a timeout must leave room for a late heartbeat.
    pub(crate) fn new(interval: Duration, timeout: Duration) -> Result<Heartbeat, String> {
        if interval.is_zero() {
            return Err("a heartbeat interval must be more than zero".into());
        }
        if timeout < interval * 2 {
            return Err(format!(
                "a heartbeat timeout ({timeout:?}) must be at least twice its interval \
                 ({interval:?}), or one late heartbeat ends a healthy channel"
            ));
        }
        Ok(Heartbeat { interval, timeout })
    }
}

/// Sends `channel`'s heartbeats until it closes.
pub(crate) async fn send(channel: Channel, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    let closed = channel.closed();
    tokio::pin!(closed);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = &mut closed => return,
        }
        if !channel.sent_since_asked() && !channel.send_heartbeat() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_must_outlast_two_intervals() {
        let second = Duration::from_secs(1);
        assert!(Heartbeat::new(second, second * 5).is_ok());
        assert!(Heartbeat::new(second, second * 2).is_ok());
        let err = Heartbeat::new(second, second).unwrap_err();
        assert!(err.contains("at least twice"), "{err}");
        assert!(Heartbeat::new(Duration::ZERO, second).is_err());
    }
}
