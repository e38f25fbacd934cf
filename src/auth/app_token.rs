//! Per-app API tokens: `gsk_<appId>.<tokenId>.<secret>`. Issued through the API (shown
//! once), stored as the SHA-256 of the secret in the app's record, revocable one by one.
//! A token names its app and id, so checking one is a lookup of that app in this node's
//! meta replica and a constant-time comparison — no scan over tokens.

use base64::Engine;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::meta::app::{App, AppToken};

const PREFIX: &str = "gsk_";

/// A token as presented: which app and token it claims to be, and its secret.
#[derive(Debug, PartialEq, Eq)]
pub struct Presented<'a> {
    pub app_id: &'a str,
    pub token_id: Uuid,
    secret: &'a str,
}

/// Reads a bearer value as an app token (`None`: not one, e.g. the admin token).
pub fn parse(bearer: &str) -> Option<Presented<'_>> {
    let mut parts = bearer.strip_prefix(PREFIX)?.splitn(3, '.');
    let (app_id, id, secret) = (parts.next()?, parts.next()?, parts.next()?);
    Some(Presented {
        app_id,
        token_id: Uuid::try_parse(id).ok()?,
        secret,
    })
}

/// A new token of app `app_id`: the record to store and the token to show once.
pub fn issue(app_id: &str, name: String, now_ms: u64) -> (AppToken, String) {
    let secret_bytes: [u8; 32] = rand::random();
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret_bytes);
    let token_id = Uuid::new_v4();
    let record = AppToken {
        token_id,
        name,
        created_at_ms: now_ms,
        hash: hash(&secret),
    };
    let shown = format!("{PREFIX}{app_id}.{}.{secret}", token_id.simple());
    (record, shown)
}

fn hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Presented<'_> {
    /// Whether this token is one `app` holds now (issued and not revoked).
    pub fn held_by(&self, app: &App) -> bool {
        let given = hash(self.secret);
        app.app_id == self.app_id
            && app.tokens.iter().any(|t| {
                t.token_id == self.token_id
                    && crate::auth::same(t.hash.as_bytes(), given.as_bytes())
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_token_is_held_by_its_app_until_revoked() {
        let (record, shown) = issue("orders_v2-x", "ci".into(), 5);
        let mut app = App {
            app_id: "orders_v2-x".into(),
            partitions: 1,
            active: true,
            configuration: Default::default(),
            signing: None,
            tokens: vec![record.clone()],
        };
        let presented = parse(&shown).expect("parses");
        assert_eq!(presented.app_id, "orders_v2-x");
        assert!(presented.held_by(&app));
        assert!(
            !shown.contains(&record.hash),
            "the stored hash is not the token"
        );
        let forged = shown.replace(&shown[shown.len() - 4..], "AAAA");
        assert!(!parse(&forged).unwrap().held_by(&app));
        let mut other = app.clone();
        other.app_id = "other".into();
        assert!(!presented.held_by(&other), "a token names its app");
        app.tokens.clear();
        assert!(!presented.held_by(&app), "revoked");
        for not_a_token in [
            "dev-admin-token-change-me",
            "gsk_app",
            "gsk_a.notauuid.s",
            "",
        ] {
            assert!(parse(not_a_token).is_none(), "{not_a_token}");
        }
    }
}
