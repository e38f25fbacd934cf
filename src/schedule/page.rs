//! Paging through schedules ordered by (time, id): a cursor is the last item a page
//! returned, so the next page starts strictly after it: no item is missed or repeated,
//! even while schedules are added or removed before the cursor.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A position in (time, id) order.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
pub struct Cursor {
    pub time: i64,
    pub id: Uuid,
}

impl Cursor {
    /// The position of schedule `s`.
    pub fn of(s: &crate::schedule::Schedule) -> Cursor {
        Cursor {
            time: s.schedule_time,
            id: s.id,
        }
    }

    /// The opaque continuation token of this position (48 hex digits).
    pub fn token(&self) -> String {
        let mut bytes = [0u8; 24];
        bytes[..8].copy_from_slice(&self.time.to_be_bytes());
        bytes[8..].copy_from_slice(self.id.as_bytes());
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Reads a token made by [`Cursor::token`].
    pub fn from_token(token: &str) -> Result<Cursor, String> {
        let bad = || format!("invalid continuation token {token:?}");
        if token.len() != 48 || !token.is_ascii() {
            return Err(bad());
        }
        let mut bytes = [0u8; 24];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::from_str_radix(&token[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        let mut time = [0u8; 8];
        time.copy_from_slice(&bytes[..8]);
        let mut id = [0u8; 16];
        id.copy_from_slice(&bytes[8..]);
        Ok(Cursor {
            time: i64::from_be_bytes(time),
            id: Uuid::from_bytes(id),
        })
    }
}

/// Cuts `fetched` (asked for `size + 1`, already in page order) to `size` and returns the
/// cursor of its last item when more exist.
pub fn cut(fetched: &mut Vec<crate::schedule::Schedule>, size: usize) -> Option<Cursor> {
    cut_by(fetched, size, Cursor::of)
}

/// [`cut`] for any listing: `key` of its last item (where the next page starts) when more
/// exist.
pub fn cut_by<T, K>(fetched: &mut Vec<T>, size: usize, key: impl Fn(&T) -> K) -> Option<K> {
    let more = fetched.len() > size;
    fetched.truncate(size);
    fetched.last().filter(|_| more).map(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        let c = Cursor {
            time: 1_689_830_381,
            id: Uuid::from_u128(0xcf8e385a_26bc_11ee_8f15_aa665a372253),
        };
        assert_eq!(Cursor::from_token(&c.token()), Ok(c));
        assert_eq!(c.token().len(), 48);
        assert!(Cursor::from_token("19000474657374").is_err());
        assert!(Cursor::from_token(&"zz".repeat(24)).is_err());
        assert!(Cursor::from_token(&"é".repeat(24)).is_err());
    }
}
