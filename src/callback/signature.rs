//! Standard Webhooks signatures of a call: `v1,<base64 HMAC-SHA256 of id.timestamp.body>`
//! under each secret valid when it is sent. HMAC by aws-lc (SHA extensions where the CPU
//! has them): with the portable SHA-256 of the `standardwebhooks` crate, signing was ~9 %
//! of the callback path's CPU in a burst. The tests check this against that crate.

use aws_lc_rs::hmac;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use crate::meta::app::Signing;

/// An app's signing keys, made once per claim batch (decoding a secret and deriving its
/// HMAC key per call was a third of the signing cost in a burst).
pub struct Signer {
    /// Each key and the instant (ms) until which it signs: the current secret's forever,
    /// the rotated-out one's until its overlap ends.
    keys: Vec<(hmac::Key, u64)>,
}

impl Signer {
    /// The keys of `signing`'s secrets; a secret that is not a `whsec_<base64>` signs
    /// nothing.
    pub fn new(signing: &Signing) -> Signer {
        let previous = signing
            .previous
            .as_deref()
            .map(|p| (p, signing.previous_until_ms));
        let keys = std::iter::once((signing.secret.as_str(), u64::MAX))
            .chain(previous)
            .filter_map(|(secret, until)| Some((key(secret)?, until)))
            .collect();
        Signer { keys }
    }

    /// The signature header for a call sent at `now_ms`: one `v1,…` per secret valid
    /// then (both during a rotation's overlap), space-separated.
    pub fn header(&self, now_ms: u64, id: &str, timestamp: i64, body: &[u8]) -> String {
        self.keys
            .iter()
            .filter(|(_, until)| now_ms < *until)
            .map(|(key, _)| sign(key, id, timestamp, body))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn key(secret: &str) -> Option<hmac::Key> {
    let raw = BASE64
        .decode(
            secret
                .strip_prefix(Signing::SECRET_PREFIX)
                .unwrap_or(secret),
        )
        .ok()?;
    Some(hmac::Key::new(hmac::HMAC_SHA256, &raw))
}

/// One `v1,…` signature under `key`.
fn sign(key: &hmac::Key, id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut ctx = hmac::Context::with_key(key);
    for part in [
        id.as_bytes(),
        b".",
        timestamp.to_string().as_bytes(),
        b".",
        body,
    ] {
        ctx.update(part);
    }
    format!("v1,{}", BASE64.encode(ctx.sign().as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use standardwebhooks::Webhook;

    fn signing(secret: &str, previous: Option<&str>) -> Signing {
        Signing {
            secret: secret.into(),
            previous: previous.map(str::to_string),
            previous_until_ms: 2_000,
        }
    }

    #[test]
    fn signs_as_the_reference_implementation_does() {
        let secret = Signing::new_secret();
        let (id, ts, body) = (
            "0194c3a0-7d1e-7c2a-9f00-000000000001",
            1_732_000_000,
            "{\"a\":1}",
        );
        let reference = Webhook::new(&secret)
            .unwrap()
            .sign(id, ts, body.as_bytes())
            .unwrap();
        let ours = Signer::new(&signing(&secret, None)).header(0, id, ts, body.as_bytes());
        assert_eq!(ours, reference);
    }

    #[test]
    fn a_rotation_signs_with_both_secrets_until_the_overlap_ends() {
        let (new, old) = (Signing::new_secret(), Signing::new_secret());
        let s = Signer::new(&signing(&new, Some(&old)));
        let during = s.header(1_000, "id", 1, b"x");
        assert_eq!(during.split(' ').count(), 2, "{during}");
        assert_eq!(s.header(2_000, "id", 1, b"x").split(' ').count(), 1);
        let broken = Signer::new(&signing("whsec_!!", None));
        assert_eq!(broken.header(0, "id", 1, b"x"), "");
    }
}
