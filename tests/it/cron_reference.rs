//! Cron next-fire times against a reference written here from cron's documented
//! semantics (crontab(5)): a brute-force walk over instants that checks each field, with
//! day-of-month and day-of-week ORed when both are restricted, names, ranges, steps and
//! lists, plus our DST rule (a skipped wall-clock time fires once at the first instant
//! after the gap; a repeated one fires once, at its first instant). The table crosses
//! expressions × instants × zones (UTC, New York, Berlin) around both DST transitions.

use chrono::{Datelike, NaiveDateTime, Offset, TimeZone, Timelike};
use chrono_tz::Tz;
use goscheduler::cron::CronSpec;

/// One cron field: the set of allowed values.
struct Field(Vec<bool>);

fn field(spec: &str, min: u32, max: u32, names: &[&str]) -> Field {
    let mut allowed = vec![false; max as usize + 1];
    let value = |s: &str| -> u32 {
        names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(s))
            .map(|i| i as u32 + min)
            .unwrap_or_else(|| s.parse().unwrap())
    };
    for part in spec.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().unwrap()),
            None => (part, 1),
        };
        let (lo, hi) = match range {
            "*" | "?" => (min, max),
            r => match r.split_once('-') {
                Some((a, b)) => (value(a), value(b)),
                None if step > 1 => (value(r), max),
                None => (value(r), value(r)),
            },
        };
        for v in (lo..=hi).step_by(step as usize) {
            allowed[v as usize] = true;
        }
    }
    Field(allowed)
}

struct Reference {
    sec: Field,
    min: Field,
    hour: Field,
    dom: Field,
    month: Field,
    dow: Field,
    dom_star: bool,
    dow_star: bool,
    six_fields: bool,
    zone: Tz,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl Reference {
    fn new(expr: &str, zone: Tz) -> Reference {
        let expr = match expr {
            "@hourly" => "0 * * * *",
            "@daily" | "@midnight" => "0 0 * * *",
            "@weekly" => "0 0 * * 0",
            "@monthly" => "0 0 1 * *",
            "@yearly" | "@annually" => "0 0 1 1 *",
            e => e,
        };
        let mut f: Vec<&str> = expr.split_whitespace().collect();
        let six_fields = f.len() == 6;
        if f.len() == 5 {
            f.insert(0, "0");
        }
        let mut dow = field(f[5], 0, 7, &DAYS);
        if dow.0[7] {
            dow.0[0] = true; // 7 is Sunday too
        }
        Reference {
            sec: field(f[0], 0, 59, &[]),
            min: field(f[1], 0, 59, &[]),
            hour: field(f[2], 0, 23, &[]),
            dom: field(f[3], 1, 31, &[]),
            month: field(f[4], 1, 12, &MONTHS),
            dow,
            dom_star: f[3] == "*" || f[3] == "?",
            dow_star: f[5] == "*" || f[5] == "?",
            six_fields,
            zone,
        }
    }

    fn matches(&self, t: NaiveDateTime) -> bool {
        let day = match (self.dom_star, self.dow_star) {
            (false, false) => {
                self.dom.0[t.day() as usize]
                    || self.dow.0[t.weekday().num_days_from_sunday() as usize]
            }
            _ => {
                self.dom.0[t.day() as usize]
                    && self.dow.0[t.weekday().num_days_from_sunday() as usize]
            }
        };
        day && self.sec.0[t.second() as usize]
            && self.min.0[t.minute() as usize]
            && self.hour.0[t.hour() as usize]
            && self.month.0[t.month() as usize]
    }

    fn offset(&self, t: i64) -> i64 {
        self.zone
            .timestamp_opt(t, 0)
            .unwrap()
            .offset()
            .fix()
            .local_minus_utc() as i64
    }

    fn wall(&self, t: i64) -> NaiveDateTime {
        self.zone.timestamp_opt(t, 0).unwrap().naive_local()
    }

    /// Walks the instants after `after` (every second, or every minute for 5-field rules
    /// whose second is always 0) for up to `horizon` seconds.
    fn next_after(&self, after: i64, horizon: i64) -> Option<i64> {
        let step = if self.six_fields { 1 } else { 60 };
        let mut t = (after.div_euclid(step) + 1) * step;
        while t <= after + horizon {
            let wall = self.wall(t);
            let off = self.offset(t);
            if off > self.offset(t - 1) {
                // First instant after a spring-forward: did a skipped wall time match?
                let mut skipped = self.wall(t - 1) + chrono::Duration::seconds(1);
                while skipped < wall {
                    if self.matches(skipped) {
                        return Some(t);
                    }
                    skipped += chrono::Duration::seconds(1);
                }
            }
            // The same wall time shown `d` earlier (a fall-back by `d`) makes this a repeat.
            let repeat = [1800, 3600].iter().any(|d| self.offset(t - d) - off == *d);
            if !repeat && self.matches(wall) {
                return Some(t);
            }
            t += step;
        }
        None
    }
}

const EXPRESSIONS: [&str; 30] = [
    "* * * * *",
    "*/5 * * * *",
    "0 * * * *",
    "15 * * * *",
    "30 2 * * *",
    "0 3 * * *",
    "30 1 * * *",
    "0 0 * * *",
    "0 9 * * MON-FRI",
    "0 9 * * 1-5",
    "0 18 * * SAT,SUN",
    "0 0 * * 0",
    "0 0 * * 7",
    "0 12 13 * 5",
    "0 0 1 * *",
    "0 0 1 JAN *",
    "0 */6 * * *",
    "5-10/2 * * * *",
    "0 8-17/3 * * *",
    "0 0 */2 * *",
    "45 23 * * *",
    "0 0 29 2 *",
    "10,20,40 * * * *",
    "0 2 * MAR,NOV SUN",
    "*/20 * * * * *",
    "30 * * * * *",
    "0 0 2 * * *",
    "@hourly",
    "@daily",
    "@weekly",
];

#[test]
fn cron_next_fire_times_match_the_reference() {
    // Instants (UTC): plain days and the hours around 2024's DST changes in New York
    // (Mar 10 07:00Z, Nov 3 06:00Z) and Berlin (Mar 31 01:00Z, Oct 27 01:00Z).
    let instants: [i64; 8] = [
        1_704_067_200, // 2024-01-01 00:00Z
        1_709_251_199, // 2024-02-29 23:59:59Z
        1_710_046_800, // 2024-03-10 05:00Z, 2 h before New York springs forward
        1_711_843_200, // 2024-03-31 00:00Z, 1 h before Berlin springs forward
        1_729_987_200, // 2024-10-27 00:00Z, 1 h before Berlin falls back
        1_730_606_400, // 2024-11-03 04:00Z, 2 h before New York falls back
        1_730_611_800, // 2024-11-03 05:30Z, 01:30 EDT, inside the repeated hour
        1_735_689_599, // 2024-12-31 23:59:59Z
    ];
    let zones = [Tz::UTC, Tz::America__New_York, Tz::Europe__Berlin];
    let mut compared = 0;
    for expr in EXPRESSIONS {
        for zone in zones {
            let spec = CronSpec {
                expression: expr.to_string(),
                timezone: Some(zone.name().to_string()),
                ..Default::default()
            };
            let rule = spec.rule().unwrap_or_else(|e| panic!("{expr}: {e}"));
            let reference = Reference::new(expr, zone);
            for &at in &instants {
                // Three consecutive fire times from each instant, within ~10 days.
                let (mut ours, mut theirs) = (at, at);
                for step in 0..3 {
                    let expected = reference.next_after(theirs, 10 * 86_400);
                    let got = rule.next_after(ours);
                    let Some(expected) = expected else { break };
                    assert_eq!(
                        got,
                        Some(expected),
                        "{expr:?} in {zone} after {theirs} (step {step}): expected {} got {:?}",
                        reference.wall(expected),
                        got.map(|g| reference.wall(g))
                    );
                    compared += 1;
                    (ours, theirs) = (expected, expected);
                }
            }
        }
    }
    assert!(compared >= 600, "only {compared} comparisons");
}

/// `@every <Go duration>` against the reference's arithmetic: the n-th fire time is
/// `start + n × interval`, whatever the zone (an interval is elapsed time, not wall time),
/// across both DST changes of 2024 in New York.
#[test]
fn every_intervals_match_start_plus_n_intervals() {
    let start = 1_710_046_800; // 2024-03-10 05:00Z, 2 h before New York springs forward
    let mut compared = 0;
    for (d, secs) in [
        ("1s", 1),
        ("45s", 45),
        ("15m", 900),
        ("1h30m", 5400),
        ("24h", 86_400),
        ("2.5h", 9000),
    ] {
        let spec = CronSpec {
            expression: format!("@every {d}"),
            timezone: Some("America/New_York".into()),
            start_time: Some(start),
            ..Default::default()
        };
        let rule = spec.rule().unwrap_or_else(|e| panic!("{d}: {e}"));
        for from in [
            start - 100,
            start,
            start + 3599,
            start + 7200,
            1_730_611_800,
        ] {
            let n = if from < start {
                0
            } else {
                (from - start) / secs + 1
            };
            assert_eq!(
                rule.next_after(from),
                Some(start + n * secs),
                "@every {d} after {from}"
            );
            compared += 1;
        }
    }
    assert_eq!(compared, 30);
}
