//! Bounded clock offset between nodes. A shard leader's wall clock decides when a run is
//! due, when it is missed and when a claim has expired, so a node whose clock is far from
//! its peers' would fire runs early, miss runs not yet due, or send again runs another node
//! is still calling. Each node therefore measures every voter's clock (the [`probe`]
//! worker, twice a second, corrected by half the round trip) and trusts its own clock only
//! while it agrees, within `max_clock_offset_ms`, with a majority of the voters (itself
//! included). A node that does not trust its clock leads no group and claims nothing; a
//! jump of its own clock (wall time moving unlike monotonic time) withdraws the trust at
//! once, before the next measurement.
//!
//! With every trusted node within the bound of a majority, two trusted nodes differ by at
//! most twice the bound, which `firing.claim_margin_ms` must exceed: a claim then never
//! expires on its successor's clock while its claimer may still be calling.

pub mod probe;

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::ids::NodeId;
use crate::proto::admin::PeerClock;
use crate::schedule::time::now_ms;

/// A measurement older than this no longer counts.
pub const FRESH: Duration = Duration::from_secs(5);
/// Measurements kept per peer; the one with the shortest round trip is used.
const KEPT: usize = 8;

/// One measurement of a peer's clock.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// The peer's wall clock minus ours, in ms.
    offset_ms: i64,
    rtt_ms: u64,
    at: Instant,
}

/// What the node last concluded about its own clock.
#[derive(Debug, Clone)]
struct Verdict {
    trusted: bool,
    why: String,
    /// Wall and monotonic time when it was reached: a later gap between the two is a jump.
    wall_ms: i64,
    at: Instant,
}

/// This node's view of its peers' clocks and of its own.
pub struct SkewGuard {
    me: NodeId,
    bound_ms: i64,
    samples: Mutex<HashMap<NodeId, VecDeque<Sample>>>,
    verdict: Mutex<Verdict>,
}

impl SkewGuard {
    pub fn new(me: NodeId, max_offset_ms: u64) -> Self {
        SkewGuard {
            me,
            bound_ms: max_offset_ms as i64,
            samples: Mutex::default(),
            verdict: Mutex::new(Verdict {
                trusted: false,
                why: "not measured yet".into(),
                wall_ms: now_ms() as i64,
                at: Instant::now(),
            }),
        }
    }

    pub fn bound_ms(&self) -> u64 {
        self.bound_ms as u64
    }

    /// Records a probe of `peer` sent at our wall time `sent_wall_ms` (monotonic `sent`)
    /// and answered with the peer's wall time `peer_wall_ms`.
    pub fn record(&self, peer: NodeId, sent_wall_ms: i64, sent: Instant, peer_wall_ms: i64) {
        let rtt = sent.elapsed();
        let rtt_ms = rtt.as_millis() as u64;
        let midpoint = sent_wall_ms + (rtt.as_micros() / 2000) as i64;
        let sample = Sample {
            offset_ms: peer_wall_ms - midpoint,
            rtt_ms,
            at: Instant::now(),
        };
        let mut samples = self.samples.lock().expect("skew samples");
        let kept = samples.entry(peer).or_default();
        kept.push_back(sample);
        while kept.len() > KEPT {
            kept.pop_front();
        }
    }

    /// The best fresh measurement of `peer`: the one with the shortest round trip.
    fn best(&self, peer: NodeId) -> Option<Sample> {
        best_of(self.samples.lock().expect("skew samples").get(&peer)?)
    }

    /// Whether `peer`'s clock is within the bound of ours (unknown counts as not).
    pub fn peer_within(&self, peer: NodeId) -> bool {
        self.best(peer)
            .is_some_and(|s| s.offset_ms.abs() <= self.bound_ms)
    }

    /// Whether `peer` may take over a group from this node: when this node's clock is
    /// trusted, only a peer whose clock agrees with it.
    pub fn may_succeed(&self, peer: NodeId) -> bool {
        !self.trusted() || self.peer_within(peer)
    }

    /// Decides whether this node's clock is trusted, given the current voters. Returns
    /// the verdict and whether it changed.
    pub fn judge(&self, voters: &[NodeId]) -> (bool, String, bool) {
        let (trusted, why) = verdict(self.me, voters, self.bound_ms, |p| {
            self.best(p).map(|s| s.offset_ms)
        });
        let mut v = self.verdict.lock().expect("skew verdict");
        let changed = v.trusted != trusted;
        *v = Verdict {
            trusted,
            why: why.clone(),
            wall_ms: now_ms() as i64,
            at: Instant::now(),
        };
        (trusted, why, changed)
    }

    /// Whether this node may lead and fire now: the last verdict trusted its clock, it is
    /// recent, and the clock has not jumped since.
    pub fn trusted(&self) -> bool {
        self.trusted_at(now_ms() as i64, Instant::now())
    }

    fn trusted_at(&self, wall_ms: i64, now: Instant) -> bool {
        let v = self.verdict.lock().expect("skew verdict");
        let elapsed = now.saturating_duration_since(v.at);
        let jump = (wall_ms - v.wall_ms) - elapsed.as_millis() as i64;
        v.trusted && elapsed < FRESH && jump.abs() <= self.bound_ms / 2
    }

    /// Why the clock is (not) trusted, for status and health.
    pub fn why(&self) -> String {
        let trusted_now = self.trusted();
        let v = self.verdict.lock().expect("skew verdict").clone();
        if v.trusted && !trusted_now {
            return "this node's wall clock jumped, or was not checked for a while".into();
        }
        v.why
    }

    /// Every peer's last measurement, for `goschedctl status`.
    pub fn peers(&self) -> Vec<PeerClock> {
        let samples = self.samples.lock().expect("skew samples");
        let mut peers: Vec<PeerClock> = samples
            .iter()
            .filter_map(|(id, kept)| {
                let s = best_of(kept)?;
                Some(PeerClock {
                    node_id: *id,
                    offset_ms: s.offset_ms,
                    rtt_ms: s.rtt_ms,
                    age_ms: s.at.elapsed().as_millis() as u64,
                    within_bound: s.offset_ms.abs() <= self.bound_ms,
                })
            })
            .collect();
        peers.sort_unstable_by_key(|p| p.node_id);
        peers
    }
}

/// The fresh measurement with the shortest round trip among `kept`.
fn best_of(kept: &VecDeque<Sample>) -> Option<Sample> {
    kept.iter()
        .filter(|s| s.at.elapsed() < FRESH)
        .min_by_key(|s| s.rtt_ms)
        .copied()
}

/// Whether node `me`'s clock agrees within `bound_ms` with a majority of `voters` (itself
/// included; a peer without a fresh measurement does not agree), and why.
fn verdict(
    me: NodeId,
    voters: &[NodeId],
    bound_ms: i64,
    offset_of: impl Fn(NodeId) -> Option<i64>,
) -> (bool, String) {
    if voters.is_empty() {
        return (true, "no voters to compare with yet".into());
    }
    let majority = voters.len() / 2 + 1;
    let mut agree = usize::from(voters.contains(&me));
    let mut off = Vec::new();
    for &peer in voters.iter().filter(|p| **p != me) {
        match offset_of(peer) {
            Some(o) if o.abs() <= bound_ms => agree += 1,
            Some(o) => off.push(format!("node {peer} {o:+} ms")),
            None => off.push(format!("node {peer} not measured")),
        }
    }
    if agree >= majority {
        return (
            true,
            format!("within {bound_ms} ms of {agree} of {} voters", voters.len()),
        );
    }
    (
        false,
        format!(
            "clock within {bound_ms} ms of only {agree} of {} voters ({} needed): {}",
            voters.len(),
            majority,
            off.join(", ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(of: &[(NodeId, i64)]) -> impl Fn(NodeId) -> Option<i64> + '_ {
        |p| of.iter().find(|(id, _)| *id == p).map(|(_, o)| *o)
    }

    #[test]
    fn a_clock_is_trusted_when_it_agrees_with_a_majority_of_voters() {
        let voters = [1, 2, 3];
        // Node 3 is 40 s ahead: the other two agree with each other.
        assert!(verdict(1, &voters, 500, offsets(&[(2, 3), (3, 40_000)])).0);
        let (trusted, why) = verdict(3, &voters, 500, offsets(&[(1, -40_000), (2, -40_003)]));
        assert!(!trusted);
        assert!(why.contains("node 1 -40000 ms"), "{why}");
        // Two nodes left, 40 s apart: neither can tell who is right, neither is trusted.
        assert!(!verdict(1, &voters, 500, offsets(&[(3, 40_000)])).0);
        // A peer down does not matter while the other agrees.
        assert!(verdict(1, &voters, 500, offsets(&[(2, -499)])).0);
        assert!(!verdict(1, &voters, 500, offsets(&[(2, -501)])).0);
        // Alone: trusted; a learner (not a voter) needs a majority of the voters.
        assert!(verdict(1, &[1], 500, offsets(&[])).0);
        assert!(!verdict(4, &voters, 500, offsets(&[(1, 0)])).0);
        assert!(verdict(4, &voters, 500, offsets(&[(1, 0), (2, 0)])).0);
    }

    #[test]
    fn measurements_take_the_shortest_round_trip_and_expire() {
        let guard = SkewGuard::new(1, 500);
        let sent = Instant::now();
        let wall = now_ms() as i64;
        guard.record(2, wall, sent, wall + 40_000);
        assert!(!guard.peer_within(2));
        assert_eq!(guard.peers()[0].offset_ms / 1000, 40);
        assert!(!guard.judge(&[1, 2, 3]).0);
        guard.record(3, wall, sent, wall + 20);
        let (trusted, _, changed) = guard.judge(&[1, 2, 3]);
        assert!(trusted && changed);
        assert!(guard.trusted());
        assert!(guard.may_succeed(3) && !guard.may_succeed(2));
    }

    #[test]
    fn a_clock_jump_withdraws_trust_at_once() {
        let guard = SkewGuard::new(1, 500);
        assert!(!guard.trusted(), "unmeasured");
        guard.judge(&[1]);
        let (wall, now) = (now_ms() as i64, Instant::now());
        assert!(guard.trusted_at(wall, now));
        // Wall time moved 2 s while monotonic time moved 100 ms: forward jump.
        let later = now + Duration::from_millis(100);
        assert!(!guard.trusted_at(wall + 2_100, later));
        // And backward.
        assert!(!guard.trusted_at(wall - 1_900, later));
        // Ordinary drift within half the bound is fine.
        assert!(guard.trusted_at(wall + 300, later));
        // A verdict not renewed goes stale.
        assert!(!guard.trusted_at(wall + 6_000, now + Duration::from_secs(6)));
    }
}
