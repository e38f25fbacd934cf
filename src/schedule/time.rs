//! Time strings of the query API: `YYYY-MM-DD HH:MM:SS` in the configured zone, or RFC 3339.

use chrono::{DateTime, NaiveDateTime, TimeZone};
use chrono_tz::Tz;

/// Epoch seconds of `s`, read as RFC 3339 or as `YYYY-MM-DD HH:MM:SS` in `zone`. A local
/// time skipped by a DST change is an error; a repeated one takes the earlier instant.
pub fn parse(s: &str, zone: Tz) -> Result<i64, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp());
    }
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").map_err(|_| {
        format!("invalid time {s:?}: expected YYYY-MM-DD HH:MM:SS ({zone}) or RFC 3339")
    })?;
    zone.from_local_datetime(&naive)
        .earliest()
        .map(|t| t.timestamp())
        .ok_or_else(|| format!("time {s:?} does not exist in {zone} (skipped by a DST change)"))
}

/// `t` as `YYYY-MM-DD HH:MM:SS` in `zone`.
pub fn format(t: i64, zone: Tz) -> String {
    match zone.timestamp_opt(t, 0).single() {
        Some(d) => d.format("%Y-%m-%d %H:%M:%S").to_string(),
        None => t.to_string(),
    }
}

/// The wall clock, epoch milliseconds.
pub fn now_ms() -> u64 {
    chrono::Utc::now().timestamp_millis().max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_parse() {
        assert_eq!(parse("2023-06-28 10:00:00", Tz::UTC), Ok(1_687_946_400));
        assert_eq!(parse("2023-06-28T10:00:00Z", Tz::UTC), Ok(1_687_946_400));
        assert_eq!(
            parse("2023-06-28T15:30:00+05:30", Tz::UTC),
            Ok(1_687_946_400)
        );
        assert_eq!(
            parse("2023-06-28 15:30:00", Tz::Asia__Kolkata),
            Ok(1_687_946_400)
        );
        assert!(parse("28/06/2023", Tz::UTC)
            .unwrap_err()
            .contains("expected YYYY-MM-DD"));
        assert!(parse("2023-02-30 00:00:00", Tz::UTC).is_err());
        assert_eq!(format(1_687_946_400, Tz::UTC), "2023-06-28 10:00:00");
    }

    #[test]
    fn dst_gaps_and_overlaps_are_explicit() {
        // New York sprang forward 2024-03-10 02:00 → 03:00; fell back 2024-11-03 02:00 → 01:00.
        let ny = Tz::America__New_York;
        assert!(parse("2024-03-10 02:30:00", ny)
            .unwrap_err()
            .contains("does not exist"));
        assert_eq!(
            parse("2024-11-03 01:30:00", ny),
            Ok(1_730_611_800),
            "the earlier 01:30 (EDT)"
        );
    }
}
