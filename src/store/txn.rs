//! One apply batch of a group's state machine: reads see the batch's own writes, and
//! everything lands in RocksDB as one atomic `WriteBatch`.

use std::collections::{BTreeMap, HashMap};

use rocksdb::{WriteBatch, DB};

use super::{decode, encode, keys, CF_SM};
use crate::ids::GroupId;

/// Reads and writes of one group's state machine keys (without the group prefix).
pub struct SmTxn<'a> {
    db: &'a DB,
    group: GroupId,
    /// Writes of this batch: `Some(value)` = put, `None` = delete.
    overlay: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Counters this batch set, decoded (0: deleted). A count that every create of a batch
    /// changes is read once and written once, not read, decoded, encoded and put per create.
    counters: HashMap<Vec<u8>, u64>,
}

impl<'a> SmTxn<'a> {
    pub fn new(db: &'a DB, group: GroupId) -> Self {
        SmTxn {
            db,
            group,
            overlay: BTreeMap::new(),
            counters: HashMap::new(),
        }
    }

    pub fn get_raw(&self, key: &[u8]) -> std::io::Result<Option<Vec<u8>>> {
        if let Some(v) = self.overlay.get(key) {
            return Ok(v.clone());
        }
        let cf = self.db.cf_handle(CF_SM).expect("sm column family");
        self.db
            .get_cf(cf, keys::sm_key(self.group, key))
            .map_err(super::io_err)
    }

    pub fn get<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> std::io::Result<Option<T>> {
        self.get_raw(key)?.map(|b| decode(&b)).transpose()
    }

    pub fn put<T: serde::Serialize>(&mut self, key: &[u8], value: &T) -> std::io::Result<()> {
        self.overlay.insert(key.to_vec(), Some(encode(value)?));
        Ok(())
    }

    pub fn delete(&mut self, key: &[u8]) {
        self.overlay.insert(key.to_vec(), None);
    }

    /// The counter at `key` (absent: 0). A counter's key is read and written only through
    /// [`counter`](Self::counter) and [`set_counter`](Self::set_counter): other reads and
    /// scans of this batch do not see what `set_counter` set.
    pub fn counter(&self, key: &[u8]) -> std::io::Result<u64> {
        match self.counters.get(key) {
            Some(n) => Ok(*n),
            None => Ok(self.get::<u64>(key)?.unwrap_or(0)),
        }
    }

    /// Sets the counter at `key`; 0 deletes it.
    pub fn set_counter(&mut self, key: &[u8], n: u64) {
        match self.counters.get_mut(key) {
            Some(v) => *v = n,
            None => {
                self.counters.insert(key.to_vec(), n);
            }
        }
    }

    /// The smallest key this batch puts (not deletes) that starts with `prefix`.
    pub fn first_put_with_prefix(&self, prefix: &[u8]) -> Option<&[u8]> {
        self.overlay
            .range::<[u8], _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(k, _)| k.starts_with(prefix))
            .find(|(_, v)| v.is_some())
            .map(|(k, _)| k.as_slice())
    }

    /// Calls `each(key, value)` for keys from `start` on, in key order, as this batch sees
    /// them (committed state merged with the batch's own writes), until it returns `false`.
    /// Replicas may batch entries differently, so apply must see earlier entries' writes.
    pub fn scan_from(
        &self,
        start: &[u8],
        mut each: impl FnMut(&[u8], &[u8]) -> std::io::Result<bool>,
    ) -> std::io::Result<()> {
        use std::ops::Bound;
        let mut pending = self
            .overlay
            .range::<[u8], _>((Bound::Included(start), Bound::Unbounded))
            .peekable();
        let mut stopped = false;
        SmReader::new(self.db, self.group).scan_from(start, |k, v| {
            // Batch writes that sort before this committed key come first.
            while let Some((pk, pv)) = pending.next_if(|(pk, _)| pk.as_slice() < k) {
                if let Some(pv) = pv {
                    if !each(pk, pv)? {
                        stopped = true;
                        return Ok(false);
                    }
                }
            }
            let value = match pending.next_if(|(pk, _)| pk.as_slice() == k) {
                Some((_, overridden)) => overridden.as_deref(),
                None => Some(v),
            };
            match value {
                Some(v) if !each(k, v)? => {
                    stopped = true;
                    Ok(false)
                }
                _ => Ok(true),
            }
        })?;
        if !stopped {
            for (pk, pv) in pending {
                if let Some(pv) = pv {
                    if !each(pk, pv)? {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// Moves this batch's writes into `batch` (with group prefixes).
    pub fn write_into(&self, batch: &mut WriteBatch) -> std::io::Result<()> {
        let cf = self.db.cf_handle(CF_SM).expect("sm column family");
        for (k, v) in &self.overlay {
            let key = keys::sm_key(self.group, k);
            match v {
                Some(v) => batch.put_cf(cf, key, v),
                None => batch.delete_cf(cf, key),
            }
        }
        for (k, n) in &self.counters {
            let key = keys::sm_key(self.group, k);
            match n {
                0 => batch.delete_cf(cf, key),
                n => batch.put_cf(cf, key, encode(n)?),
            }
        }
        Ok(())
    }
}

/// Read-only access to one group's committed state machine keys.
pub struct SmReader<'a> {
    db: &'a DB,
    group: GroupId,
}

impl<'a> SmReader<'a> {
    pub fn new(db: &'a DB, group: GroupId) -> Self {
        SmReader { db, group }
    }

    pub fn get<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> std::io::Result<Option<T>> {
        let cf = self.db.cf_handle(CF_SM).expect("sm column family");
        let raw = self
            .db
            .get_cf(cf, keys::sm_key(self.group, key))
            .map_err(super::io_err)?;
        raw.map(|b| decode(&b)).transpose()
    }

    /// Calls `each(key, value)` for this group's keys from `start` on, in key order (keys
    /// without the group prefix), until it returns `false` or the group's range ends.
    pub fn scan_from(
        &self,
        start: &[u8],
        each: impl FnMut(&[u8], &[u8]) -> std::io::Result<bool>,
    ) -> std::io::Result<()> {
        self.scan(start, rocksdb::Direction::Forward, each)
    }

    /// Like [`SmReader::scan_from`], backwards: from the last key at or before `start`.
    pub fn scan_back_from(
        &self,
        start: &[u8],
        each: impl FnMut(&[u8], &[u8]) -> std::io::Result<bool>,
    ) -> std::io::Result<()> {
        self.scan(start, rocksdb::Direction::Reverse, each)
    }

    fn scan(
        &self,
        start: &[u8],
        direction: rocksdb::Direction,
        mut each: impl FnMut(&[u8], &[u8]) -> std::io::Result<bool>,
    ) -> std::io::Result<()> {
        let cf = self.db.cf_handle(CF_SM).expect("sm column family");
        let from = keys::sm_key(self.group, start);
        let prefix = self.group.prefix();
        for item in self
            .db
            .iterator_cf(cf, rocksdb::IteratorMode::From(&from, direction))
        {
            let (k, v) = item.map_err(super::io_err)?;
            if !k.starts_with(&prefix) || !each(&k[8..], &v)? {
                break;
            }
        }
        Ok(())
    }

    /// Up to `limit` values whose keys start with `prefix`, in key order.
    pub fn scan_prefix<T: serde::de::DeserializeOwned>(
        &self,
        prefix: &[u8],
        limit: usize,
    ) -> std::io::Result<Vec<T>> {
        let mut out = Vec::new();
        self.scan_from(prefix, |k, v| {
            if !k.starts_with(prefix) || out.len() >= limit {
                return Ok(false);
            }
            out.push(decode(v)?);
            Ok(true)
        })?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_scan_sees_its_own_puts_and_deletes_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::store::open(dir.path()).unwrap();
        let g = GroupId(1);
        let mut txn = SmTxn::new(&db, g);
        for k in ["b", "d", "f"] {
            txn.put(k.as_bytes(), &k).unwrap();
        }
        let mut batch = WriteBatch::default();
        txn.write_into(&mut batch).unwrap();
        db.write(batch).unwrap();

        let mut txn = SmTxn::new(&db, g);
        txn.put(b"a", &"a").unwrap();
        txn.put(b"d", &"D").unwrap();
        txn.delete(b"f");
        txn.put(b"g", &"g").unwrap();
        let mut seen = vec![];
        txn.scan_from(b"", |k, v| {
            seen.push(format!(
                "{}={}",
                String::from_utf8_lossy(k),
                decode::<String>(v)?
            ));
            Ok(true)
        })
        .unwrap();
        assert_eq!(seen, ["a=a", "b=b", "d=D", "g=g"]);
        let mut first_two = vec![];
        txn.scan_from(b"b", |k, _| {
            first_two.push(k.to_vec());
            Ok(first_two.len() < 2)
        })
        .unwrap();
        assert_eq!(first_two, [b"b".to_vec(), b"d".to_vec()]);
    }
}
