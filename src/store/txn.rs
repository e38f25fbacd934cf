//! One apply batch of a group's state machine: reads see the batch's own writes, and
//! everything lands in RocksDB as one atomic `WriteBatch`.

use std::collections::BTreeMap;

use rocksdb::{WriteBatch, DB};

use super::{decode, encode, keys, CF_SM};
use crate::raft::types::GroupId;

/// Reads and writes of one group's state machine keys (without the group prefix).
pub struct SmTxn<'a> {
    db: &'a DB,
    group: GroupId,
    /// Writes of this batch: `Some(value)` = put, `None` = delete.
    overlay: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'a> SmTxn<'a> {
    pub fn new(db: &'a DB, group: GroupId) -> Self {
        SmTxn {
            db,
            group,
            overlay: BTreeMap::new(),
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

    /// Moves this batch's writes into `batch` (with group prefixes).
    pub fn write_into(self, batch: &mut WriteBatch) {
        let cf = self.db.cf_handle(CF_SM).expect("sm column family");
        for (k, v) in self.overlay {
            let key = keys::sm_key(self.group, &k);
            match v {
                Some(v) => batch.put_cf(cf, key, v),
                None => batch.delete_cf(cf, key),
            }
        }
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
        mut each: impl FnMut(&[u8], &[u8]) -> std::io::Result<bool>,
    ) -> std::io::Result<()> {
        let cf = self.db.cf_handle(CF_SM).expect("sm column family");
        let from = keys::sm_key(self.group, start);
        let prefix = self.group.prefix();
        let iter = self.db.iterator_cf(
            cf,
            rocksdb::IteratorMode::From(&from, rocksdb::Direction::Forward),
        );
        for item in iter {
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
