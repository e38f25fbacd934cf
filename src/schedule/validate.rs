//! The checks a new schedule must pass. Each returns the problem in the words the
//! original API used where it had them, so clients matching on messages keep working.

const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// The payload: present and within the app's limit.
pub fn payload(payload: Option<&str>, limit: usize) -> Option<String> {
    match payload {
        None => Some("payload is required".into()),
        Some(p) if p.len() > limit => Some(format!(
            "payload of {} bytes exceeds the app's limit of {limit} bytes",
            p.len()
        )),
        Some(_) => None,
    }
}

/// The callback type (only `http`).
/// Longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

pub fn idempotency_key(key: &str) -> Option<String> {
    let visible = key.bytes().all(|b| (0x21..=0x7e).contains(&b));
    (key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY || !visible).then(|| {
        format!("Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters")
    })
}

pub fn callback_type(kind: &str) -> Option<String> {
    (kind != "http").then(|| format!("Invalid callback type {kind:?}: only \"http\" is supported"))
}

/// Longest callback URL accepted, bytes.
pub const MAX_URL_BYTES: usize = 2048;
/// Most callback headers one schedule may carry.
pub const MAX_HEADERS: usize = 32;
/// Most bytes of callback header names and values together.
pub const MAX_HEADER_BYTES: usize = 8192;

/// The callback URL: absolute http(s) with a host. Answers it parsed (for the SSRF guard's
/// check), or what is wrong with it.
pub fn url(url: &str) -> Result<url::Url, String> {
    if url.len() > MAX_URL_BYTES {
        return Err(format!(
            "callback url of {} bytes exceeds the limit of {MAX_URL_BYTES} bytes",
            url.len()
        ));
    }
    match url::Url::parse(url) {
        Ok(u)
            if matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some_and(|h| !h.is_empty()) =>
        {
            Ok(u)
        }
        _ => Err(format!("parse {url:?}: invalid URI for request")),
    }
}

/// The callback headers: valid HTTP names and values, and none the firing engine sets itself.
pub fn headers(headers: &std::collections::BTreeMap<String, String>) -> Vec<String> {
    let mut problems = Vec::new();
    let bytes: usize = headers.iter().map(|(n, v)| n.len() + v.len()).sum();
    if headers.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        problems.push(format!(
            "{} callback headers of {bytes} bytes exceed the limit of {MAX_HEADERS} headers and {MAX_HEADER_BYTES} bytes",
            headers.len()
        ));
        return problems;
    }
    for (name, value) in headers {
        if http::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            problems.push(format!("invalid callback header name {name:?}"));
        } else if super::headers::is_reserved(name) {
            problems.push(format!("callback header {name:?} is set by the scheduler"));
        }
        if http::header::HeaderValue::from_str(value).is_err() {
            problems.push(format!("invalid value of callback header {name:?}"));
        }
    }
    problems
}

/// The callback method: an uppercase HTTP method.
pub fn method(method: &str) -> Option<String> {
    (!METHODS.contains(&method)).then(|| "Invalid http callback method ".to_string())
}

/// The schedule time: not before the current second.
pub fn schedule_time(time: i64, now_secs: i64, app_id: &str) -> Option<String> {
    (time < now_secs).then(|| {
        format!(
            "schedule time : {time} is less than current time: {now_secs} for app: {app_id}. Time cannot be in past."
        )
    })
}

/// The schedule time: at most `max_days` ahead (the cluster's `max_schedule_ahead_days`),
/// whatever the app allows.
pub fn ahead(time: i64, now_secs: i64, max_days: u32) -> Option<String> {
    (time > now_secs + max_days as i64 * 86_400).then(|| {
        format!(
            "schedule time : {time} is more than {max_days} days ahead (the cluster's max_schedule_ahead_days)"
        )
    })
}

/// The schedule time: within the app's creation horizon (`days`; 0 = no limit).
pub fn horizon(time: i64, now_secs: i64, days: u32) -> Option<String> {
    (days > 0 && time > now_secs + days as i64 * 86_400).then(|| {
        format!("schedule time : {time} is beyond the app's creation horizon of {days} days")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_must_exist_and_fit() {
        assert_eq!(payload(None, 10).unwrap(), "payload is required");
        assert!(payload(Some("{}"), 10).is_none());
        assert!(payload(Some(&"x".repeat(11)), 10)
            .unwrap()
            .contains("11 bytes exceeds"));
        assert!(
            payload(Some(""), 10).is_none(),
            "an empty payload is a payload"
        );
    }

    #[test]
    fn callbacks_are_checked_like_the_original() {
        assert!(url("http://127.0.0.1:8080/goscheduler/healthcheck").is_ok());
        assert!(url("https://example.com").is_ok());
        assert_eq!(
            url("www.myntra.com").unwrap_err(),
            "parse \"www.myntra.com\": invalid URI for request"
        );
        assert!(url("ftp://example.com").is_err());
        assert!(url("").is_err());
        assert!(method("POST").is_none());
        assert_eq!(method("post").unwrap(), "Invalid http callback method ");
        assert!(method("FETCH").is_some());
        let ok: std::collections::BTreeMap<String, String> =
            [("X-Team".to_string(), "a b".to_string())].into();
        assert!(headers(&ok).is_empty());
        let bad: std::collections::BTreeMap<String, String> = [
            ("bad name".to_string(), "v".to_string()),
            ("X-Ok".to_string(), "line\nbreak".to_string()),
            ("idempotency-key".to_string(), "mine".to_string()),
        ]
        .into();
        assert_eq!(
            headers(&bad),
            [
                "invalid value of callback header \"X-Ok\"",
                "invalid callback header name \"bad name\"",
                "callback header \"idempotency-key\" is set by the scheduler",
            ]
        );
        assert!(callback_type("http").is_none());
        assert!(callback_type("kafka").is_some());
    }

    #[test]
    fn urls_and_headers_are_bounded() {
        let long = format!("http://h/{}", "a".repeat(MAX_URL_BYTES));
        assert!(url(&long)
            .unwrap_err()
            .contains("exceeds the limit of 2048 bytes"));
        let many: std::collections::BTreeMap<String, String> = (0..=MAX_HEADERS)
            .map(|i| (format!("X-H{i}"), "v".to_string()))
            .collect();
        assert!(headers(&many)[0].contains("33 callback headers"));
        let fat: std::collections::BTreeMap<String, String> =
            [("X-Big".to_string(), "v".repeat(MAX_HEADER_BYTES))].into();
        assert!(headers(&fat)[0].contains("exceed the limit"));
    }

    #[test]
    fn schedule_times_are_bounded_ahead() {
        assert!(ahead(100 + 86_400, 100, 1).is_none());
        assert!(ahead(101 + 86_400, 100, 1)
            .unwrap()
            .contains("more than 1 days ahead"));
        assert!(ahead(i64::MAX - 1, 0, 36_500).is_some());
    }

    #[test]
    fn the_horizon_is_the_apps() {
        assert!(horizon(100 + 86_400, 100, 1).is_none());
        assert!(horizon(101 + 86_400, 100, 1)
            .unwrap()
            .contains("horizon of 1 days"));
        assert!(horizon(i64::MAX / 2, 100, 0).is_none(), "0 days: no limit");
    }

    #[test]
    fn the_current_second_is_not_the_past() {
        assert!(schedule_time(100, 100, "a").is_none());
        assert!(schedule_time(101, 100, "a").is_none());
        assert_eq!(
            schedule_time(99, 100, "revamp").unwrap(),
            "schedule time : 99 is less than current time: 100 for app: revamp. Time cannot be in past."
        );
    }
}
