//! Field names in request bodies are matched case-insensitively, as Go's `encoding/json`
//! (the original's decoder) matches them: `"AppId"`, `"ScheduleTime"`, `"appid"` all name
//! `appId`. Bodies in the canonical casing (nearly all) are parsed directly; only a body
//! with a key that differs from a field name in case alone is re-keyed first. Keys inside
//! `headers` are the caller's own and are never touched.

use serde_json::{Map, Value};

/// Every field name a request body may carry, canonical casing.
const FIELDS: &[&str] = &[
    "appId",
    "partitions",
    "active",
    "configuration",
    "payloadSize",
    "futureScheduleCreationPeriod",
    "firedScheduleRetentionPeriod",
    "httpRetries",
    "httpTimeout",
    "misfireWindow",
    "payload",
    "scheduleTime",
    "cronExpression",
    "timezone",
    "callback",
    "type",
    "details",
    "url",
    "method",
    "headers",
    "idempotencyKey",
    "schedules",
    "name",
    "scheduleId",
    "startTime",
    "endTime",
    "jitterSeconds",
    "overlapPolicy",
];

/// Objects whose keys are data, not field names.
const OPAQUE: &[&str] = &["headers"];

fn canonical(key: &[u8]) -> Option<&'static str> {
    FIELDS
        .iter()
        .find(|f| f.as_bytes().eq_ignore_ascii_case(key))
        .copied()
}

/// Whether some object key in `body` names a field in another casing (a cheap scan of the
/// raw bytes: strings followed by `:` are keys).
pub fn needs_recasing(body: &[u8]) -> bool {
    let mut i = 0;
    while i < body.len() {
        if body[i] != b'"' {
            i += 1;
            continue;
        }
        let start = i + 1;
        let mut end = start;
        while end < body.len() && body[end] != b'"' {
            end += if body[end] == b'\\' { 2 } else { 1 };
        }
        let end = end.min(body.len());
        let colon = body[(end + 1).min(body.len())..]
            .iter()
            .find(|b| !b.is_ascii_whitespace());
        let key = &body[start..end];
        if colon == Some(&b':') && canonical(key).is_some_and(|f| f.as_bytes() != key) {
            return true;
        }
        i = end + 1;
    }
    false
}

/// Renames every key that names a field in another casing to the field's name, at every
/// depth but inside opaque objects. With a key given in several casings, the last wins
/// (as in Go).
pub fn recase(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let old = std::mem::take(map);
            let mut new = Map::with_capacity(old.len());
            for (key, mut v) in old {
                let key = canonical(key.as_bytes()).map_or(key, str::to_string);
                if !OPAQUE.contains(&key.as_str()) {
                    recase(&mut v);
                }
                new.insert(key, v);
            }
            *map = new;
        }
        Value::Array(items) => items.iter_mut().for_each(recase),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_in_another_casing_are_renamed_but_header_names_are_kept() {
        let body = br#"{"AppId":"a","ScheduleTime":5,"Payload":"{\"AppId\":1}",
            "Callback":{"TYPE":"http","Details":{"URL":"http://x","headers":{"Url":"u","X-Y":"z"}}}}"#;
        assert!(needs_recasing(body));
        let mut v: Value = serde_json::from_slice(body).unwrap();
        recase(&mut v);
        assert_eq!(
            v,
            json!({"appId":"a","scheduleTime":5,"payload":"{\"AppId\":1}",
                "callback":{"type":"http","details":{"url":"http://x","headers":{"Url":"u","X-Y":"z"}}}})
        );
        let batch = br#"{"Schedules":[{"appid":"a"}]}"#;
        let mut v: Value = serde_json::from_slice(batch).unwrap();
        recase(&mut v);
        assert_eq!(v, json!({"schedules":[{"appId":"a"}]}));
    }

    #[test]
    fn canonical_bodies_skip_the_rewrite() {
        for body in [
            &br#"{"appId":"a","payload":"{\"AppId\":1}","callback":{"type":"http"}}"#[..],
            br#"{"appId" : "A", "x": "AppId"}"#,
            br#"["AppId"]"#,
            br#"{"a\"AppId":1}"#,
            b"",
            b"\"",
        ] {
            assert!(!needs_recasing(body), "{}", String::from_utf8_lossy(body));
        }
        assert!(needs_recasing(br#"{"appId":"a", "PAYLOAD" :"p"}"#));
    }
}
