//! Key encoding. Every key starts with its group's 8-byte big-endian id, so one group's
//! keys form one contiguous range (for snapshots and range deletes) and sort by index.

use crate::ids::GroupId;

/// `group ‖ index`: a Raft log entry.
pub fn log_key(group: GroupId, index: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&group.prefix());
    k[8..].copy_from_slice(&index.to_be_bytes());
    k
}

/// The log index of a [`log_key`].
pub fn log_index(key: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&key[8..16]);
    u64::from_be_bytes(b)
}

/// `group ‖ name`: a named value of one group (vote, last applied, ...).
pub fn named_key(group: GroupId, name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + name.len());
    k.extend_from_slice(&group.prefix());
    k.extend_from_slice(name.as_bytes());
    k
}

/// `group ‖ key`: a state machine key of one group.
pub fn sm_key(group: GroupId, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + key.len());
    k.extend_from_slice(&group.prefix());
    k.extend_from_slice(key);
    k
}

/// The half-open range `[group, group + 1)` covering all of a group's keys.
pub fn group_range(group: GroupId) -> ([u8; 8], [u8; 8]) {
    (group.prefix(), GroupId(group.0 + 1).prefix())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keys_sort_by_group_then_index() {
        let a = log_key(GroupId(1), 255);
        let b = log_key(GroupId(1), 256);
        let c = log_key(GroupId(2), 0);
        assert!(a < b && b < c);
        assert_eq!(log_index(&b), 256);
        let (lo, hi) = group_range(GroupId(1));
        assert!(lo.as_slice() <= a.as_slice() && b.as_slice() < hi.as_slice());
    }
}
