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

/// A cron schedule's rule: expression and zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronSpec {
    pub expression: String,
    /// IANA zone; `None` = UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

/// A parsed rule, ready to compute fire times.
#[derive(Debug, Clone)]
pub struct CronRule {
    cron: Cron,
    zone: Tz,
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
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .dom_and_dow(false)
            .build()
            .parse(&self.expression)
            .map_err(|e| format!("invalid cronExpression {:?}: {e}", self.expression))?;
        let rule = CronRule { cron, zone };
        // A rule that never fires (e.g. 30 February) is refused rather than stored.
        if rule.next_after(0).is_none() && rule.next_after(4_102_444_800).is_none() {
            return Err(format!("cronExpression {:?} never fires", self.expression));
        }
        Ok(rule)
    }
}

impl CronRule {
    /// The first fire time strictly after `after` (epoch seconds), if any.
    pub fn next_after(&self, after: i64) -> Option<i64> {
        let next = self.next_real(after)?;
        // A wall-clock time skipped by a spring-forward before `next` fires at the gap's end.
        match self.first_gap(after, next) {
            Some(gap_end) if self.matches_inside_gap(gap_end) => Some(gap_end),
            _ => Some(next),
        }
    }

    /// The first real (not skipped, not repeated) wall-clock match after `after`.
    fn next_real(&self, after: i64) -> Option<i64> {
        let mut from = self.zone.timestamp_opt(after, 0).single()?;
        // Each iteration skips one repeated instant; a fall-back repeats at most one hour.
        for _ in 0..4000 {
            let next: DateTime<Tz> = self.cron.find_next_occurrence(&from, false).ok()?;
            if !self.is_repeat(&next) {
                return Some(next.timestamp());
            }
            from = next;
        }
        None
    }

    fn offset(&self, t: i64) -> i64 {
        self.zone
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
        let before = self.zone.timestamp_opt(gap_end - 1, 0).single();
        let after = self.zone.timestamp_opt(gap_end, 0).single();
        let (Some(before), Some(after)) = (before, after) else {
            return false;
        };
        let (before, after) = (before.naive_local(), after.naive_local());
        self.cron
            .find_next_occurrence(&before, false)
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
        match self.zone.from_local_datetime(&t.naive_local()) {
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
        }
        .rule()
        .unwrap()
    }

    fn err(expr: &str) -> String {
        CronSpec {
            expression: expr.into(),
            timezone: None,
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
}
