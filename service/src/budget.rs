//! What refused callers may spend: decision time per peer address, and new
//! registration records per deciding entry. Admissions spend neither.
//!
//! Both are per replica, in memory: they bound work and growth from one
//! replica's point of view, and a restart gives every address and entry a
//! fresh allowance (an attacker cannot cause restarts).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Decision time a peer address may spend on refused decisions in a burst.
pub const REFUSED_BURST: Duration = Duration::from_secs(1);
/// Refused decision time a peer address regains per second: a tenth of a
/// core. An admitted registration costs 1–2 ms and a refused one about the
/// same, so a misconfigured device retrying in a loop (a refusal every few
/// seconds) never meets the limit; a hostile chain that costs 75 ms gets one
/// decision every 0.75 s instead of all the CPU.
pub const REFUSED_PER_SECOND: Duration = Duration::from_millis(100);
/// New registration records that refusals of one deciding entry may create
/// per [`REFUSAL_RECORD_WINDOW`]. Refusals beyond it are answered the same
/// way (the device cannot tell) but not recorded.
pub const REFUSAL_RECORDS_PER_WINDOW: u32 = 100;
/// See [`REFUSAL_RECORDS_PER_WINDOW`].
pub const REFUSAL_RECORD_WINDOW: Duration = Duration::from_secs(3600);
/// Peers or entries tracked before settled ones are forgotten.
const TRACKED: usize = 10_000;

/// Refused decision time per peer address: a bucket of [`REFUSED_BURST`]
/// refilled at [`REFUSED_PER_SECOND`]. A decision runs while the bucket is
/// not empty and is charged after it, if it refused (concurrent decisions
/// may overdraw it, and the debt is paid before the next one runs).
#[derive(Debug, Default)]
pub(crate) struct RefusedTime(Mutex<HashMap<IpAddr, (Duration, Instant)>>);

impl RefusedTime {
    /// `None` if `peer` may have a decision now, else how long to wait.
    pub(crate) fn wait(&self, peer: IpAddr, now: Instant) -> Option<Duration> {
        let peers = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let &(spent, at) = peers.get(&peer)?;
        let spent = spent.saturating_sub(refill(at, now));
        if spent < REFUSED_BURST {
            return None;
        }
        let excess = spent - REFUSED_BURST;
        // Whole seconds, at least one: what `retry-after` can say.
        let wait = excess.as_secs_f64() / REFUSED_PER_SECOND.as_secs_f64();
        Some(Duration::from_secs(wait.ceil().max(1.0) as u64))
    }

    /// Charges a refused decision that took `took`.
    pub(crate) fn charge(&self, peer: IpAddr, took: Duration, now: Instant) {
        let mut peers = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if peers.len() >= TRACKED {
            peers.retain(|_, (spent, at)| *spent > refill(*at, now));
        }
        let entry = peers.entry(peer).or_insert((Duration::ZERO, now));
        let spent = entry.0.saturating_sub(refill(entry.1, now));
        // Debt is capped so that one burst cannot lock an address out for
        // longer than a burst takes to refill.
        *entry = ((spent + took).min(REFUSED_BURST * 2), now);
    }
}

fn refill(since: Instant, now: Instant) -> Duration {
    REFUSED_PER_SECOND.mul_f64(now.saturating_duration_since(since).as_secs_f64())
}

/// New records created by refusals, per deciding entry and window.
#[derive(Debug, Default)]
pub(crate) struct RefusalRecords(Mutex<HashMap<String, (u32, Instant)>>);

impl RefusalRecords {
    /// Takes one new-record allowance of `entry`; `false` when its window's
    /// allowance is used up.
    pub(crate) fn take(&self, entry: &str, now: Instant) -> bool {
        let mut entries = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let expired =
            |start: Instant| now.saturating_duration_since(start) >= REFUSAL_RECORD_WINDOW;
        if entries.len() >= TRACKED {
            entries.retain(|_, (_, start)| !expired(*start));
        }
        let slot = entries.entry(entry.to_string()).or_insert((0, now));
        if expired(slot.1) {
            *slot = (0, now);
        }
        if slot.0 >= REFUSAL_RECORDS_PER_WINDOW {
            if slot.0 == REFUSAL_RECORDS_PER_WINDOW {
                tracing::warn!(
                    entry,
                    "{REFUSAL_RECORDS_PER_WINDOW} new registration records from refusals of this entry within {REFUSAL_RECORD_WINDOW:?}; further refusals are answered but not recorded until the window ends"
                );
                slot.0 += 1;
            }
            return false;
        }
        slot.0 += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_time_runs_out_and_comes_back() {
        let t = RefusedTime::default();
        let peer: IpAddr = "127.0.0.9".parse().unwrap();
        let other: IpAddr = "127.0.0.10".parse().unwrap();
        let now = Instant::now();
        assert_eq!(t.wait(peer, now), None);
        for _ in 0..14 {
            t.charge(peer, Duration::from_millis(75), now);
        }
        let wait = t.wait(peer, now).expect("over the burst");
        assert!(wait >= Duration::from_secs(1), "{wait:?}");
        assert_eq!(t.wait(other, now), None, "another address is not charged");
        assert_eq!(t.wait(peer, now + wait), None, "refilled after the wait");
        // Debt is capped: even a flood waits at most one burst's refill.
        for _ in 0..1000 {
            t.charge(peer, Duration::from_secs(1), now);
        }
        let longest = t.wait(peer, now).unwrap();
        assert!(longest <= Duration::from_secs(10), "{longest:?}");
    }

    #[test]
    fn refusal_records_are_bounded_per_entry_and_window() {
        let r = RefusalRecords::default();
        let now = Instant::now();
        for _ in 0..REFUSAL_RECORDS_PER_WINDOW {
            assert!(r.take("group:line-b", now));
        }
        assert!(!r.take("group:line-b", now));
        assert!(!r.take("group:line-b", now + Duration::from_secs(60)));
        assert!(r.take("group:line-a", now), "entries are counted apart");
        assert!(r.take("group:line-b", now + REFUSAL_RECORD_WINDOW));
    }
}
