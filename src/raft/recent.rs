//! The newest entries of one group's log, kept in memory as they are appended, so that
//! applying them and replicating them to followers takes them from here instead of
//! reading them back from RocksDB and decoding them (three reads and decodes of every
//! entry on the leader, one on each follower).
//!
//! What is kept is always a suffix of the log: every append lands here too, a truncation
//! or purge of the log is done here too, and an append that does not follow the newest
//! kept entry (after a restart or a snapshot) starts over. So a read whose start is kept
//! finds every entry after it here; any other read goes to RocksDB.

use std::collections::VecDeque;

/// The log's newest entries, up to a byte budget (encoded sizes; the newest entry is kept
/// whatever its size).
#[derive(Debug)]
pub struct RecentEntries<T> {
    /// Index of the first kept entry.
    first: u64,
    /// Kept entries, oldest first, with their encoded sizes.
    entries: VecDeque<(T, usize)>,
    bytes: usize,
    max_bytes: usize,
}

impl<T: Clone> RecentEntries<T> {
    pub fn new(max_bytes: usize) -> Self {
        RecentEntries {
            first: 0,
            entries: VecDeque::new(),
            bytes: 0,
            max_bytes,
        }
    }

    /// Index after the newest kept entry.
    fn next(&self) -> u64 {
        self.first + self.entries.len() as u64
    }

    /// Keeps `entry`, just appended to the log at `index` with `bytes` encoded. An entry
    /// that does not follow the newest kept one replaces what is kept from its index on.
    pub fn push(&mut self, index: u64, entry: T, bytes: usize) {
        if self.entries.is_empty() || index != self.next() {
            self.truncate_from(index);
            if self.entries.is_empty() || index != self.next() {
                self.entries.clear();
                self.bytes = 0;
                self.first = index;
            }
        }
        self.entries.push_back((entry, bytes));
        self.bytes += bytes;
        while self.bytes > self.max_bytes && self.entries.len() > 1 {
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        if let Some((_, b)) = self.entries.pop_front() {
            self.bytes -= b;
            self.first += 1;
        }
    }

    /// Forgets the entries at `index` and after (the log was truncated there).
    pub fn truncate_from(&mut self, index: u64) {
        if index <= self.first {
            self.entries.clear();
            self.bytes = 0;
            return;
        }
        while self.next() > index {
            if let Some((_, b)) = self.entries.pop_back() {
                self.bytes -= b;
            }
        }
    }

    /// Forgets the entries up to and including `index` (the log was purged there).
    pub fn purge_to(&mut self, index: u64) {
        while !self.entries.is_empty() && self.first <= index {
            self.pop_front();
        }
    }

    /// The entries from `start` until `end` (exclusive; `None`: to the newest), stopping
    /// once `max_bytes` of them are taken (at least one) — if they are all kept here.
    /// `None` when they are not (read them from the log).
    pub fn read(&self, start: u64, end: Option<u64>, max_bytes: usize) -> Option<Vec<T>> {
        let end = end.unwrap_or(self.next());
        if self.entries.is_empty() || start < self.first || end > self.next() || start >= end {
            return None;
        }
        let (mut out, mut bytes) = (Vec::new(), 0);
        for (entry, b) in self
            .entries
            .range((start - self.first) as usize..(end - self.first) as usize)
        {
            out.push(entry.clone());
            bytes += b;
            if bytes >= max_bytes {
                break;
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::RecentEntries;

    fn kept(max_bytes: usize, indexes: std::ops::Range<u64>) -> RecentEntries<u64> {
        let mut r = RecentEntries::new(max_bytes);
        for i in indexes {
            r.push(i, i, 10);
        }
        r
    }

    #[test]
    fn reads_within_what_is_kept_and_refuses_the_rest() {
        let r = kept(1000, 5..10);
        assert_eq!(r.read(5, Some(10), usize::MAX), Some(vec![5, 6, 7, 8, 9]));
        assert_eq!(r.read(7, None, usize::MAX), Some(vec![7, 8, 9]));
        assert_eq!(r.read(6, Some(8), usize::MAX), Some(vec![6, 7]));
        assert_eq!(r.read(4, Some(8), usize::MAX), None, "4 is not kept");
        assert_eq!(r.read(8, Some(11), usize::MAX), None, "10 is not kept");
        assert_eq!(r.read(10, None, usize::MAX), None);
        assert_eq!(r.read(6, Some(10), 25), Some(vec![6, 7, 8]), "byte budget");
        assert_eq!(r.read(6, Some(10), 1), Some(vec![6]), "at least one");
    }

    #[test]
    fn keeps_the_newest_within_its_budget() {
        let r = kept(35, 0..10);
        assert_eq!(r.read(7, None, usize::MAX), Some(vec![7, 8, 9]));
        assert_eq!(r.read(6, None, usize::MAX), None);
        let mut big = RecentEntries::new(5);
        big.push(3, 3, 100);
        assert_eq!(
            big.read(3, None, usize::MAX),
            Some(vec![3]),
            "the newest stays"
        );
        big.push(4, 4, 100);
        assert_eq!(big.read(3, None, usize::MAX), None);
        assert_eq!(big.read(4, None, usize::MAX), Some(vec![4]));
    }

    #[test]
    fn truncation_purge_and_gaps_keep_it_a_suffix_of_the_log() {
        let mut r = kept(1000, 5..10);
        r.truncate_from(8);
        assert_eq!(r.read(5, None, usize::MAX), Some(vec![5, 6, 7]));
        r.push(8, 80, 10);
        assert_eq!(r.read(7, None, usize::MAX), Some(vec![7, 80]));
        // An append over kept entries (without a truncation first) replaces them.
        r.push(6, 60, 10);
        assert_eq!(r.read(5, None, usize::MAX), Some(vec![5, 60]));
        r.purge_to(5);
        assert_eq!(r.read(5, None, usize::MAX), None);
        assert_eq!(r.read(6, None, usize::MAX), Some(vec![60]));
        // A gap (a snapshot installed, entries appended after it) starts over.
        r.push(20, 20, 10);
        assert_eq!(r.read(6, None, usize::MAX), None);
        assert_eq!(r.read(20, None, usize::MAX), Some(vec![20]));
        // An append before what is kept (a truncation to below it) starts over.
        r.push(2, 2, 10);
        assert_eq!(r.read(2, None, usize::MAX), Some(vec![2]));
        assert_eq!(r.read(20, None, usize::MAX), None);
        r.truncate_from(0);
        assert_eq!(r.read(2, None, usize::MAX), None);
    }
}
