//! An app: a client team's namespace of schedules, split into partitions.

use serde::{Deserialize, Serialize};

/// Longest accepted app id.
pub const MAX_APP_ID_LEN: usize = 64;
/// Most partitions an app may have.
pub const MAX_PARTITIONS: u32 = 1024;

/// A registered app, as stored in the meta group and shown by the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct App {
    pub app_id: String,
    pub partitions: u32,
    pub active: bool,
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
        let app = App {
            app_id: "revamp".into(),
            partitions: 2,
            active: true,
        };
        let json = serde_json::to_value(&app).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"appId": "revamp", "partitions": 2, "active": true})
        );
    }
}
