//! An app: a client team's namespace of schedules, split into partitions.

use serde::{Deserialize, Serialize};

/// Longest accepted app id.
pub const MAX_APP_ID_LEN: usize = 64;
/// Most partitions an app may have.
pub const MAX_PARTITIONS: u32 = 1024;

/// A registered app, as stored in the meta group and shown by the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct App {
    pub app_id: String,
    pub partitions: u32,
    pub active: bool,
    /// Shown only when it differs from the defaults.
    #[serde(default, skip_serializing_if = "AppConfiguration::is_default")]
    pub configuration: AppConfiguration,
    /// The secrets its callbacks are signed with (stored, never shown with the app: see
    /// [`App::public`]). Absent for apps registered before signing existed until rotated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub signing: Option<Signing>,
    /// Its API tokens (hashed; never shown with the app, see [`App::public`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(ignore)]
    pub tokens: Vec<AppToken>,
}

impl App {
    /// The app as the API shows it: without its signing secrets and tokens.
    pub fn public(mut self) -> App {
        self.signing = None;
        self.tokens.clear();
        self
    }
}

/// Most API tokens one app may hold at once.
pub const MAX_TOKENS_PER_APP: usize = 16;

/// An app's API token as stored: the secret's SHA-256, never the secret (see
/// `auth::app_token`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppToken {
    pub token_id: uuid::Uuid,
    /// What the issuer called it (e.g. "ci"), for telling tokens apart.
    #[serde(default)]
    pub name: String,
    pub created_at_ms: u64,
    pub hash: String,
}

/// An app's callback signing secrets (Standard Webhooks `whsec_…`): the current one, and
/// after a rotation the previous one until `previous_until_ms`, so receivers can switch
/// over while both signatures are sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Signing {
    pub secret: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    #[serde(default)]
    pub previous_until_ms: u64,
}

impl Signing {
    /// What every secret starts with; the rest is the key in base64.
    pub const SECRET_PREFIX: &'static str = "whsec_";

    /// A fresh secret: [`Signing::SECRET_PREFIX`] and 32 random bytes in base64.
    pub fn new_secret() -> String {
        use base64::Engine;
        let bytes: [u8; 32] = rand::random();
        format!(
            "{}{}",
            Self::SECRET_PREFIX,
            base64::engine::general_purpose::STANDARD.encode(bytes)
        )
    }

    /// The rotated-out secret while its overlap lasts at `now_ms`.
    pub fn previous_at(&self, now_ms: u64) -> Option<&str> {
        self.previous
            .as_deref()
            .filter(|_| now_ms < self.previous_until_ms)
    }
}

/// Per-app limits and callback policy (the original accepted these but never enforced
/// them; here they are enforced).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct AppConfiguration {
    /// Largest payload, bytes (at most the cluster's `limits.max_payload_bytes`).
    #[schema(minimum = 1, maximum = 65536)]
    #[serde(deserialize_with = "crate::json_shape::whole")]
    pub payload_size: u32,
    /// How far ahead a schedule may be created, days; 0 = no limit.
    #[schema(minimum = 0, maximum = 3650)]
    #[serde(deserialize_with = "crate::json_shape::whole")]
    pub future_schedule_creation_period: u32,
    /// How long finished runs are kept, days.
    #[schema(minimum = 1, maximum = 3650)]
    #[serde(deserialize_with = "crate::json_shape::whole")]
    pub fired_schedule_retention_period: u32,
    /// Retries of a failed callback.
    #[schema(minimum = 0, maximum = 10)]
    #[serde(deserialize_with = "crate::json_shape::whole")]
    pub http_retries: u32,
    /// Callback timeout, milliseconds.
    #[schema(minimum = 100, maximum = 60000)]
    #[serde(deserialize_with = "crate::json_shape::whole")]
    pub http_timeout: u32,
    /// How late a run may still be fired, seconds (after an outage or a failover);
    /// a run found later than this becomes MISS.
    #[schema(minimum = 1, maximum = 86400)]
    #[serde(deserialize_with = "crate::json_shape::whole")]
    pub misfire_window: u32,
}

impl Default for AppConfiguration {
    fn default() -> Self {
        AppConfiguration {
            payload_size: 1024,
            future_schedule_creation_period: 0,
            fired_schedule_retention_period: 30,
            http_retries: 3,
            http_timeout: 5000,
            misfire_window: 300,
        }
    }
}

impl AppConfiguration {
    pub fn is_default(&self) -> bool {
        *self == AppConfiguration::default()
    }

    /// Every value out of its range, named. `max_payload` is the cluster's ceiling on
    /// `payloadSize` (`limits.max_payload_bytes`).
    pub fn problems(&self, max_payload: u32) -> Vec<String> {
        let checks = [
            ("payloadSize", self.payload_size, 1, max_payload),
            (
                "futureScheduleCreationPeriod",
                self.future_schedule_creation_period,
                0,
                3650,
            ),
            (
                "firedScheduleRetentionPeriod",
                self.fired_schedule_retention_period,
                1,
                3650,
            ),
            ("httpRetries", self.http_retries, 0, 10),
            ("httpTimeout", self.http_timeout, 100, 60_000),
            ("misfireWindow", self.misfire_window, 1, 86_400),
        ];
        checks
            .iter()
            .filter(|(_, v, lo, hi)| v < lo || v > hi)
            .map(|(name, v, lo, hi)| format!("configuration.{name} {v} is outside {lo}..={hi}"))
            .collect()
    }
}

/// Checks an app id: letters, digits, `-` and `_`, 1 to [`MAX_APP_ID_LEN`] characters.
pub fn validate_app_id(app_id: &str) -> Result<(), String> {
    if app_id.is_empty() {
        return Err("AppId cannot be empty".into());
    }
    if app_id.len() > MAX_APP_ID_LEN {
        return Err(format!("AppId must be at most {MAX_APP_ID_LEN} characters"));
    }
    if let Some(bad) = app_id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(format!(
            "AppId {app_id:?} has invalid character {bad:?}: use letters, digits, '-' and '_'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_ids_are_checked() {
        assert!(validate_app_id("revamp").is_ok());
        assert!(validate_app_id("my-app_2").is_ok());
        assert_eq!(validate_app_id("").unwrap_err(), "AppId cannot be empty");
        assert!(validate_app_id("a.b")
            .unwrap_err()
            .contains("invalid character '.'"));
        assert!(validate_app_id(&"x".repeat(65)).is_err());
        assert!(validate_app_id("spa ce").is_err());
    }

    #[test]
    fn app_serializes_with_the_wiki_field_names() {
        let mut app = App {
            app_id: "revamp".into(),
            partitions: 2,
            active: true,
            configuration: AppConfiguration::default(),
            signing: None,
            tokens: vec![],
        };
        let json = serde_json::to_value(&app).unwrap();
        let wiki = serde_json::json!({"appId": "revamp", "partitions": 2, "active": true});
        assert_eq!(json, wiki);
        app.configuration.payload_size = 10;
        let json = serde_json::to_value(&app).unwrap();
        assert_eq!(json["configuration"]["payloadSize"], 10);
        assert_eq!(json["configuration"]["httpRetries"], 3);
    }

    #[test]
    fn configuration_ranges_are_checked() {
        assert!(AppConfiguration::default().problems(1 << 16).is_empty());
        let bad = AppConfiguration {
            payload_size: 0,
            http_timeout: 10,
            ..AppConfiguration::default()
        };
        assert_eq!(bad.problems(1 << 20).len(), 2);
        assert!(bad.problems(1 << 20)[0].contains("payloadSize 0"));
        let big = AppConfiguration {
            payload_size: 1 << 17,
            ..AppConfiguration::default()
        };
        assert!(big.problems(1 << 20).is_empty());
        assert_eq!(
            big.problems(1 << 16),
            ["configuration.payloadSize 131072 is outside 1..=65536"]
        );
    }

    #[test]
    fn the_previous_secret_signs_only_during_its_overlap() {
        let s = Signing {
            secret: Signing::new_secret(),
            previous: Some("whsec_old".into()),
            previous_until_ms: 1_000,
        };
        assert!(s.secret.starts_with("whsec_") && s.secret.len() > 40);
        assert_ne!(Signing::new_secret(), s.secret);
        assert_eq!(s.previous_at(999), Some("whsec_old"));
        assert_eq!(s.previous_at(1_000), None);
    }
}
