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
//!
//! A measurement is only as good as its round trip: the peer read its clock somewhere in
//! it, so the offset is known within half of it (its doubt). A peer agrees when its offset
//! plus the doubt is within the bound, disagrees when its offset minus the doubt is beyond
//! it, and is unsure otherwise (or when not measured). When the agreeing voters make a
//! majority the clock is trusted; when they cannot, even with every unsure one, it is not;
//! in between (a node so loaded that its probes take seconds) the last verdict stands, for
//! at most [`UNSURE_FOR`] and never across a jump of the clock. Before this, an overloaded
//! node judged its clock on probes that could not answer in time, gave up leading, and
//! turned overload into elections.

pub mod probe;

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::ids::NodeId;
use crate::proto::admin::PeerClock;
use crate::schedule::time::now_ms;

/// A measurement older than this no longer counts.
pub const FRESH: Duration = Duration::from_secs(5);
/// How long unsure measurements may leave the last verdict standing.
pub const UNSURE_FOR: Duration = Duration::from_secs(30);
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

impl Sample {
    /// How far off the offset may be: the peer read its clock somewhere in the round trip.
    fn doubt_ms(&self) -> i64 {
        self.rtt_ms.div_ceil(2) as i64
    }
}

/// What the node last concluded about its own clock.
#[derive(Debug, Clone)]
struct Verdict {
    trusted: bool,
    why: String,
    /// Wall and monotonic time when it was last renewed: a later gap between the two is a
    /// jump.
    wall_ms: i64,
    at: Instant,
    /// When measurements last decided it (not unsure).
    decided_at: Instant,
}

/// What the measurements say of this node's clock.
#[derive(Debug, Clone, PartialEq)]
enum Finding {
    Trusted(String),
    NotTrusted(String),
    /// Neither can be told (measurements too doubtful, or missing): the last verdict stands.
    Unsure(String),
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
                decided_at: Instant::now(),
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
        let finding = verdict(self.me, voters, self.bound_ms, |p| self.best(p));
        self.conclude(finding, now_ms() as i64, Instant::now())
    }

    /// Takes `finding` as the verdict at `wall_ms` / `now` (an unsure one keeps the last,
    /// unless it is too old or the clock jumped since).
    fn conclude(&self, finding: Finding, wall_ms: i64, now: Instant) -> (bool, String, bool) {
        let mut v = self.verdict.lock().expect("skew verdict");
        let jumped = jump_ms(&v, wall_ms, now).abs() > self.bound_ms / 2;
        let (trusted, why, decided_at) = match finding {
            Finding::Trusted(why) => (true, why, now),
            Finding::NotTrusted(why) => (false, why, now),
            Finding::Unsure(why) => {
                let keep = !jumped && now.saturating_duration_since(v.decided_at) < UNSURE_FOR;
                let trusted = v.trusted && keep;
                let why = if trusted {
                    format!("{} (measurements unsure since: {why})", v.why)
                } else {
                    why
                };
                (trusted, why, v.decided_at)
            }
        };
        let changed = v.trusted != trusted;
        *v = Verdict {
            trusted,
            why: why.clone(),
            wall_ms,
            at: now,
            decided_at,
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
        v.trusted && elapsed < FRESH && jump_ms(&v, wall_ms, now).abs() <= self.bound_ms / 2
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

/// How far wall time moved unlike monotonic time since `v` was renewed.
fn jump_ms(v: &Verdict, wall_ms: i64, now: Instant) -> i64 {
    let elapsed = now.saturating_duration_since(v.at);
    (wall_ms - v.wall_ms) - elapsed.as_millis() as i64
}

/// Whether node `me`'s clock agrees within `bound_ms` with a majority of `voters` (itself
/// included), given each peer's best fresh measurement, and why.
fn verdict(
    me: NodeId,
    voters: &[NodeId],
    bound_ms: i64,
    measured: impl Fn(NodeId) -> Option<Sample>,
) -> Finding {
    if voters.is_empty() {
        return Finding::Trusted("no voters to compare with yet".into());
    }
    let majority = voters.len() / 2 + 1;
    let mut agree = usize::from(voters.contains(&me));
    let (mut unsure, mut off) = (0, Vec::new());
    for &peer in voters.iter().filter(|p| **p != me) {
        match measured(peer) {
            Some(s) if s.offset_ms.abs() + s.doubt_ms() <= bound_ms => agree += 1,
            Some(s) if s.offset_ms.abs() - s.doubt_ms() > bound_ms => {
                off.push(format!("node {peer} {:+} ms", s.offset_ms))
            }
            Some(s) => {
                unsure += 1;
                off.push(format!(
                    "node {peer} {:+} ms ± {} ms",
                    s.offset_ms,
                    s.doubt_ms()
                ));
            }
            None => {
                unsure += 1;
                off.push(format!("node {peer} not measured"));
            }
        }
    }
    let of = voters.len();
    if agree >= majority {
        return Finding::Trusted(format!("within {bound_ms} ms of {agree} of {of} voters"));
    }
    let why = format!(
        "clock within {bound_ms} ms of only {agree} of {of} voters ({majority} needed): {}",
        off.join(", ")
    );
    if agree + unsure >= majority {
        Finding::Unsure(why)
    } else {
        Finding::NotTrusted(why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each listed peer measured at its offset, with a round trip of `rtt_ms`.
    fn measured(of: &[(NodeId, i64)], rtt_ms: u64) -> impl Fn(NodeId) -> Option<Sample> + '_ {
        move |p| {
            of.iter().find(|(id, _)| *id == p).map(|(_, o)| Sample {
                offset_ms: *o,
                rtt_ms,
                at: Instant::now(),
            })
        }
    }

    fn offsets(of: &[(NodeId, i64)]) -> impl Fn(NodeId) -> Option<Sample> + '_ {
        measured(of, 0)
    }

    fn trusted(f: Finding) -> bool {
        matches!(f, Finding::Trusted(_))
    }

    fn unsure(f: Finding) -> bool {
        matches!(f, Finding::Unsure(_))
    }

    #[test]
    fn a_clock_is_trusted_when_it_agrees_with_a_majority_of_voters() {
        let voters = [1, 2, 3];
        // Node 3 is 40 s ahead: the other two agree with each other.
        assert!(trusted(verdict(
            1,
            &voters,
            500,
            offsets(&[(2, 3), (3, 40_000)])
        )));
        let finding = verdict(3, &voters, 500, offsets(&[(1, -40_000), (2, -40_003)]));
        let Finding::NotTrusted(why) = finding else {
            panic!("{finding:?}")
        };
        assert!(why.contains("node 1 -40000 ms"), "{why}");
        // Two nodes left, 40 s apart, the third not measured: neither can tell who is
        // right; each keeps its last verdict (for a while).
        assert!(unsure(verdict(1, &voters, 500, offsets(&[(3, 40_000)]))));
        // A peer down does not matter while the other agrees.
        assert!(trusted(verdict(1, &voters, 500, offsets(&[(2, -499)]))));
        assert!(unsure(verdict(1, &voters, 500, offsets(&[(2, -501)]))));
        let both_off = offsets(&[(2, -501), (3, 501)]);
        assert!(matches!(
            verdict(1, &voters, 500, both_off),
            Finding::NotTrusted(_)
        ));
        // Alone: trusted; a learner (not a voter) needs a majority of the voters.
        assert!(trusted(verdict(1, &[1], 500, offsets(&[]))));
        assert!(!trusted(verdict(4, &voters, 500, offsets(&[(1, 0)]))));
        assert!(trusted(verdict(
            4,
            &voters,
            500,
            offsets(&[(1, 0), (2, 0)])
        )));
    }

    #[test]
    fn a_measurement_counts_only_as_far_as_its_round_trip_allows() {
        let voters = [1, 2, 3];
        // Probes of an overloaded node take 1.6 s: an offset of 796 ms says nothing.
        let slow = measured(&[(2, -796), (3, 300)], 1_600);
        assert!(unsure(verdict(1, &voters, 500, slow)));
        // 300 ms off, known within 100 ms: agrees; 40 s off, however slow: does not.
        assert!(trusted(verdict(
            1,
            &voters,
            500,
            measured(&[(2, 300)], 200)
        )));
        let far = measured(&[(2, 40_000), (3, -40_000)], 2_000);
        assert!(matches!(
            verdict(1, &voters, 500, far),
            Finding::NotTrusted(_)
        ));
    }

    #[test]
    fn an_unsure_finding_keeps_the_last_verdict_for_a_while_but_never_across_a_jump() {
        let guard = SkewGuard::new(1, 500);
        let (wall, now) = (now_ms() as i64, Instant::now());
        let unsure = || Finding::Unsure("probes too slow".into());
        // Never measured: unsure keeps it untrusted.
        assert!(!guard.conclude(unsure(), wall, now).0);
        assert!(guard.conclude(Finding::Trusted("ok".into()), wall, now).0);
        let at = |s: u64| (wall + s as i64 * 1000, now + Duration::from_secs(s));
        let (w, t) = at(10);
        let (kept, why, changed) = guard.conclude(unsure(), w, t);
        assert!(kept && !changed, "{why}");
        assert!(why.contains("unsure"), "{why}");
        // Still unsure 30 s after the last decision: no longer trusted.
        let (w, t) = at(31);
        assert!(!guard.conclude(unsure(), w, t).0);
        // Decided again, then the wall clock jumps 2 s ahead: unsure does not keep it.
        let (w, t) = at(32);
        assert!(guard.conclude(Finding::Trusted("ok".into()), w, t).0);
        let (w, t) = at(33);
        assert!(!guard.conclude(unsure(), w + 2_000, t).0);
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
