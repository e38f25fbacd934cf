//! Cron expressions: parsing and next-fire computation, pure and deterministic (apply
//! materialises cron runs with it, so every replica must compute the same instants).
//!
//! Semantics are standard cron's, via `croner`: 5 fields (minute precision) or 6 with
//! seconds first; names (`MON-FRI`, `JAN`); ranges and steps on every field; `L`, `#`, `W`;
//! descriptors (`@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`); day-of-month and
//! day-of-week are ORed when both are restricted. Times are wall-clock times in the
//! schedule's IANA zone (UTC by default), with one DST rule: a wall-clock time skipped by
//! a spring-forward fires once, at the first instant after the gap; a wall-clock time
//! repeated by a fall-back fires once, at its first instant.

use std::str::FromStr;

use chrono::{DateTime, LocalResult, Offset, TimeZone};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use serde::{Deserialize, Serialize};

/// Longest `@every` interval.
const MAX_EVERY_SECS: i64 = 366 * 86_400;

/// A recurring schedule's rule and how its runs are planned: an expression (cron or
/// `@every <duration>`) and zone, an optional window, and jitter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronSpec {
    pub expression: String,
    /// IANA zone; `None` = UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// No run before this (epoch seconds); `@every` counts its intervals from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<i64>,
    /// No run after this (epoch seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<i64>,
    /// Each run fires this many seconds or fewer after its time, by a fixed pseudo-random
    /// offset per run (spreads many crons due at the same second).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_seconds: Option<u32>,
    /// What a run due while the previous run is still being called becomes.
    #[serde(default, skip_serializing_if = "Overlap::is_allow")]
    pub overlap_policy: Overlap,
}

/// A recurring schedule's overlap policy (Temporal's names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Overlap {
    /// Runs are called whether or not the previous one has finished.
    #[default]
    Allow,
    /// A run due while the previous run is still being called (or retried) is MISS.
    Skip,
    /// A run due while the previous run is still being called waits for it to finish, then
    /// fires; one run at most waits (another falling due meanwhile is MISS).
    BufferOne,
}

impl Overlap {
    pub fn is_allow(&self) -> bool {
        *self == Overlap::Allow
    }
}

/// A parsed rule, ready to compute fire times.
#[derive(Debug, Clone)]
pub struct CronRule {
    kind: Kind,
    start: Option<i64>,
    end: Option<i64>,
}

#[derive(Debug, Clone)]
enum Kind {
    Cron {
        cron: Box<Cron>,
        zone: Tz,
    },
    /// `@every`: every `secs` from `anchor`.
    Every {
        secs: i64,
        anchor: i64,
    },
}

impl CronSpec {
    /// Parses and checks the rule; the error names the problem.
    pub fn rule(&self) -> Result<CronRule, String> {
        let zone = match &self.timezone {
            None => Tz::UTC,
            Some(z) => {
                Tz::from_str(z).map_err(|_| format!("timezone {z:?} is not an IANA time zone"))?
            }
        };
        let kind = match self.expression.strip_prefix("@every") {
            Some(d) => Kind::Every {
                secs: every_secs(d.trim())
                    .map_err(|e| format!("invalid cronExpression {:?}: {e}", self.expression))?,
                anchor: self.start_time.unwrap_or(0),
            },
            None => Kind::Cron {
                cron: Box::new(
                    CronParser::builder()
                        .seconds(Seconds::Optional)
                        .year(Year::Disallowed)
                        .dom_and_dow(false)
                        .build()
                        .parse(&self.expression)
                        .map_err(|e| {
                            format!("invalid cronExpression {:?}: {e}", self.expression)
                        })?,
                ),
                zone,
            },
        };
        if let (Some(start), Some(end)) = (self.start_time, self.end_time) {
            if end <= start {
                return Err(format!("endTime {end} is not after startTime {start}"));
            }
        }
        let rule = CronRule {
            kind,
            start: self.start_time,
            end: self.end_time,
        };
        // A rule that never fires (e.g. 30 February, or not inside its window) is refused
        // rather than stored.
        let from = self.start_time.map_or(0, |s| s - 1);
        if rule.next_after(from).is_none() && rule.next_after(4_102_444_800).is_none() {
            return Err(match self.end_time {
                Some(_) => format!(
                    "cronExpression {:?} never fires between startTime and endTime",
                    self.expression
                ),
                None => format!("cronExpression {:?} never fires", self.expression),
            });
        }
        Ok(rule)
    }
}

/// Seconds in a Go duration (`90s`, `1h30m`, `1.5h`): whole seconds, 1 s to 366 days.
fn every_secs(d: &str) -> Result<i64, String> {
    let bad = || format!("@every takes a duration such as 30s, 5m or 1h30m, not {d:?}");
    let mut total_ms = 0f64;
    let mut rest = d;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (number, tail) = rest.split_at(digits);
        let number: f64 = number.parse().map_err(|_| bad())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let ms = match unit {
            "h" => 3_600_000.0,
            "m" => 60_000.0,
            "s" => 1_000.0,
            "ms" => 1.0,
            _ => return Err(bad()),
        };
        total_ms += number * ms;
        rest = tail;
    }
    if total_ms % 1000.0 != 0.0 {
        return Err(format!("@every {d}: the interval must be whole seconds"));
    }
    let secs = (total_ms / 1000.0) as i64;
    if !(1..=MAX_EVERY_SECS).contains(&secs) {
        return Err(format!("@every {d}: the interval must be 1 s to 366 days"));
    }
    Ok(secs)
}

impl CronRule {
    /// The first fire time strictly after `after` (epoch seconds), if any, inside the
    /// rule's window.
    pub fn next_after(&self, after: i64) -> Option<i64> {
        let after = self.start.map_or(after, |s| after.max(s - 1));
        let next = match &self.kind {
            Kind::Every { secs, anchor } if after < *anchor => *anchor,
            Kind::Every { secs, anchor } => anchor + ((after - anchor) / secs + 1) * secs,
            Kind::Cron { .. } => self.next_cron(after)?,
        };
        self.end.is_none_or(|end| next <= end).then_some(next)
    }

    /// Whether no fire time is left after `now`.
    pub fn ended_by(&self, now: i64) -> bool {
        self.end.is_some_and(|end| end <= now)
    }

    /// A cron expression's first fire time after `after`.
    fn next_cron(&self, after: i64) -> Option<i64> {
        let next = self.next_real(after)?;
        // A wall-clock time skipped by a spring-forward before `next` fires at the gap's end.
        match self.first_gap(after, next) {
            Some(gap_end) if self.matches_inside_gap(gap_end) => Some(gap_end),
            _ => Some(next),
        }
    }

    fn cron(&self) -> Option<&Cron> {
        match &self.kind {
            Kind::Cron { cron, .. } => Some(cron),
            Kind::Every { .. } => None,
        }
    }

    fn zone(&self) -> Tz {
        match &self.kind {
            Kind::Cron { zone, .. } => *zone,
            Kind::Every { .. } => Tz::UTC,
        }
    }

    /// The first real (not skipped, not repeated) wall-clock match after `after`.
    fn next_real(&self, after: i64) -> Option<i64> {
        let mut from = self.zone().timestamp_opt(after, 0).single()?;
        // Each iteration skips one repeated instant; a fall-back repeats at most one hour.
        for _ in 0..4000 {
            let next: DateTime<Tz> = self.cron()?.find_next_occurrence(&from, false).ok()?;
            if !self.is_repeat(&next) {
                return Some(next.timestamp());
            }
            from = next;
        }
        None
    }

    fn offset(&self, t: i64) -> i64 {
        self.zone()
            .timestamp_opt(t, 0)
            .single()
            .map(|d| d.offset().fix().local_minus_utc() as i64)
            .unwrap_or(0)
    }

    /// The first instant after a spring-forward gap within `(after, until]`, if any.
    fn first_gap(&self, after: i64, until: i64) -> Option<i64> {
        const STEP: i64 = 3600;
        let mut lo = after;
        while lo < until {
            let hi = (lo + STEP).min(until);
            if self.offset(hi) > self.offset(lo) {
                // The offset rises once in (lo, hi]: find the exact second.
                let (mut a, mut b) = (lo, hi);
                while b - a > 1 {
                    let m = a + (b - a) / 2;
                    if self.offset(m) > self.offset(a) {
                        b = m;
                    } else {
                        a = m;
                    }
                }
                return Some(b);
            }
            lo = hi;
        }
        None
    }

    /// Whether the rule matches a wall-clock time skipped by the gap ending at `gap_end`.
    fn matches_inside_gap(&self, gap_end: i64) -> bool {
        let before = self.zone().timestamp_opt(gap_end - 1, 0).single();
        let after = self.zone().timestamp_opt(gap_end, 0).single();
        let (Some(before), Some(after)) = (before, after) else {
            return false;
        };
        let (before, after) = (before.naive_local(), after.naive_local());
        let Some(cron) = self.cron() else {
            return false;
        };
        cron.find_next_occurrence(&before, false)
            .is_ok_and(|m: chrono::NaiveDateTime| m < after)
    }

    /// Up to `max` fire times in `(after, until]`.
    pub fn upcoming(&self, after: i64, until: i64, max: usize) -> Vec<i64> {
        let mut out = Vec::new();
        let mut t = after;
        while out.len() < max {
            match self.next_after(t) {
                Some(next) if next <= until => {
                    out.push(next);
                    t = next;
                }
                _ => break,
            }
        }
        out
    }

    /// Whether `t` is the second occurrence of a wall-clock time repeated by a fall-back.
    fn is_repeat(&self, t: &DateTime<Tz>) -> bool {
        match self.zone().from_local_datetime(&t.naive_local()) {
            LocalResult::Ambiguous(first, _) => first.timestamp() != t.timestamp(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(expr: &str, tz: Option<&str>) -> CronRule {
        CronSpec {
            expression: expr.into(),
            timezone: tz.map(String::from),
            ..Default::default()
        }
        .rule()
        .unwrap()
    }

    fn err(expr: &str) -> String {
        CronSpec {
            expression: expr.into(),
            timezone: None,
            ..Default::default()
        }
        .rule()
        .unwrap_err()
    }

    #[test]
    fn nonsense_is_refused_with_a_reason() {
        for bad in [
            "*/0 * * * *",
            "61 * * * *",
            "* * * *",
            "",
            "@fortnightly",
            "0 0 30 2 *",
            "1 2 3 4 5 6 7",
        ] {
            assert!(!err(bad).is_empty(), "{bad:?} accepted");
        }
        assert!(err("0 0 30 2 *").contains("never fires"));
        let bad_zone = CronSpec {
            expression: "* * * * *".into(),
            timezone: Some("Mars/Olympus".into()),
            ..Default::default()
        };
        assert!(bad_zone
            .rule()
            .unwrap_err()
            .contains("not an IANA time zone"));
    }

    #[test]
    fn weekdays_are_posix_and_dom_dow_are_ored() {
        // 2024-01-01 was a Monday. 00:00 UTC = 1704067200.
        let mon = 1_704_067_200;
        let r = rule("0 9 * * MON-FRI", None);
        assert_eq!(r.next_after(mon), Some(mon + 9 * 3600));
        // Friday 09:00 → next is Monday 09:00.
        assert_eq!(
            r.next_after(mon + 4 * 86400 + 9 * 3600),
            Some(mon + 7 * 86400 + 9 * 3600)
        );
        // "0 0 13 * 5": the 13th OR any Friday (cron's OR), first after Jan 1 is Fri Jan 5.
        assert_eq!(
            rule("0 0 13 * 5", None).next_after(mon),
            Some(mon + 4 * 86400)
        );
        // 0 = Sunday, as POSIX.
        assert_eq!(
            rule("0 0 * * 0", None).next_after(mon),
            Some(mon + 6 * 86400)
        );
    }

    #[test]
    fn seconds_descriptors_and_steps() {
        let t = 1_704_067_200;
        assert_eq!(
            rule("*/15 * * * * *", None).upcoming(t, t + 60, 10),
            vec![t + 15, t + 30, t + 45, t + 60]
        );
        assert_eq!(rule("@hourly", None).next_after(t), Some(t + 3600));
        assert_eq!(rule("@daily", None).next_after(t), Some(t + 86400));
        assert_eq!(
            rule("0 */6 * JAN *", None).upcoming(t, t + 86400, 10).len(),
            4
        );
    }

    #[test]
    fn dst_gap_fires_once_after_it_and_overlap_fires_once() {
        let ny = Some("America/New_York");
        // 2024-03-10: 02:00 EST jumps to 03:00 EDT (07:00 UTC = 1710054000).
        let gap = 1_710_054_000;
        assert_eq!(
            rule("30 2 * * *", ny).next_after(gap - 3600),
            Some(gap),
            "02:30 skipped → 03:00 EDT"
        );
        let halves = rule("*/30 * * * *", ny).upcoming(gap - 3600, gap + 3600, 10);
        assert_eq!(
            halves,
            vec![gap - 1800, gap, gap + 1800, gap + 3600],
            "01:30, (02:xx skipped) 03:00, 03:30, 04:00"
        );
        // Hourly at :15: 02:15 is skipped, so it fires at 03:00, then 03:15 as usual.
        let quarter = rule("15 * * * *", ny).upcoming(gap - 3600, gap + 1800, 10);
        assert_eq!(quarter, vec![gap - 2700, gap, gap + 900]);
        // 2024-11-03: 02:00 EDT falls back to 01:00 EST; 01:30 EDT = 05:30 UTC = 1730611800.
        let first = 1_730_611_800;
        assert_eq!(
            rule("30 1 * * *", ny).upcoming(first - 60, first + 7200, 5),
            vec![first]
        );
        let repeated = rule("*/30 * * * *", ny).upcoming(first - 1800, first + 7200, 10);
        // After 01:00 EDT: 01:30 EDT, (01:00 and 01:30 EST repeat) 02:00 EST, 02:30 EST.
        assert_eq!(repeated, vec![first, first + 5400, first + 7200]);
    }

    fn spec(expr: &str, start: Option<i64>, end: Option<i64>) -> Result<CronRule, String> {
        CronSpec {
            expression: expr.into(),
            start_time: start,
            end_time: end,
            ..Default::default()
        }
        .rule()
    }

    #[test]
    fn every_counts_go_durations_from_its_start() {
        let t = 1_704_067_200;
        let r = spec("@every 1h30m", Some(t + 7), None).unwrap();
        assert_eq!(r.next_after(0), Some(t + 7));
        assert_eq!(r.next_after(t + 7), Some(t + 7 + 5400));
        assert_eq!(
            r.upcoming(t + 10, t + 20_000, 10),
            vec![t + 5407, t + 10_807, t + 16_207]
        );
        for (d, secs) in [
            ("2s", 2),
            ("90s", 90),
            ("1.5h", 5400),
            ("1m0s", 60),
            ("1500ms", 0),
        ] {
            let r = spec(&format!("@every {d}"), Some(0), None);
            match secs {
                0 => assert!(r.unwrap_err().contains("whole seconds"), "{d}"),
                s => assert_eq!(r.unwrap().next_after(0), Some(s), "{d}"),
            }
        }
        for bad in [
            "@every",
            "@every 0s",
            "@every 5",
            "@every 5d",
            "@every -1s",
            "@every 400000h",
            "@every 1h x",
        ] {
            assert!(spec(bad, Some(0), None).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn a_window_bounds_every_rule() {
        let t = 1_704_067_200;
        let r = spec("*/10 * * * * *", Some(t + 25), Some(t + 60)).unwrap();
        assert_eq!(r.next_after(0), Some(t + 30));
        assert_eq!(
            r.upcoming(t, t + 3600, 100),
            vec![t + 30, t + 40, t + 50, t + 60]
        );
        assert!(r.ended_by(t + 60) && !r.ended_by(t + 59));
        assert!(spec("* * * * * *", Some(t + 10), Some(t + 10))
            .unwrap_err()
            .contains("not after startTime"));
        assert!(spec("0 0 1 * *", Some(t + 10), Some(t + 3600))
            .unwrap_err()
            .contains("never fires between startTime and endTime"));
    }
}
