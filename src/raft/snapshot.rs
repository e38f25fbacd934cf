//! Snapshot files: a group's whole state machine at one log id, written from a
//! consistent RocksDB snapshot and streamed to lagging nodes in chunks.
//!
//! Format: `MAGIC`, `u32` meta length, meta (JSON), then records `u32 klen, key,
//! u32 vlen, value` (keys without the group prefix), closed by `u32::MAX`.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use rocksdb::{Direction, IteratorMode, DB};

use super::types::{GroupId, LogId, LogTypes, SnapshotMeta, StoredMembership};
use crate::store::{decode, encode, io_err, keys, CF_SM, CF_SM_META};

const MAGIC: &[u8; 8] = b"GSSNAP1\n";
const END: u32 = u32::MAX;

pub const LAST_APPLIED: &str = "last_applied";
pub const MEMBERSHIP: &str = "membership";

/// A snapshot on disk. The file is immutable once its name is final.
#[derive(Debug, Clone)]
pub struct SnapshotFile {
    pub path: PathBuf,
}

/// The directory holding one group's snapshot files.
pub fn group_dir(root: &Path, group: GroupId) -> PathBuf {
    root.join(format!("group-{}", group.0))
}

/// `{last index}-{unique}.snap`: names sort by the position they cover.
fn final_name<L: LogTypes>(meta: &SnapshotMeta<L>, unique: &str) -> String {
    let index = meta.last_log_id.as_ref().map(|l| l.index).unwrap_or(0);
    format!("{index:020}-{unique}.snap")
}

/// Writes a snapshot of `group` (data and applied state read from one RocksDB snapshot)
/// into `dir`, and returns its meta and file.
pub fn build<L: LogTypes>(
    db: &DB,
    group: GroupId,
    dir: &Path,
) -> io::Result<(SnapshotMeta<L>, SnapshotFile)> {
    let unique = uuid::Uuid::new_v4().simple().to_string();
    fs::create_dir_all(dir)?;
    let snap = db.snapshot();
    let cf_meta = db.cf_handle(CF_SM_META).expect("sm_meta column family");
    let read_meta = |name: &str| -> io::Result<Option<Vec<u8>>> {
        snap.get_cf(cf_meta, keys::named_key(group, name))
            .map_err(io_err)
    };
    let last_log_id: Option<LogId<L>> = read_meta(LAST_APPLIED)?.map(|b| decode(&b)).transpose()?;
    let last_membership: StoredMembership<L> = read_meta(MEMBERSHIP)?
        .map(|b| decode(&b))
        .transpose()?
        .unwrap_or_default();
    let meta = SnapshotMeta::<L> {
        last_log_id,
        last_membership,
    };

    let tmp = dir.join(format!("building-{unique}"));
    let mut w = BufWriter::new(File::create(&tmp)?);
    w.write_all(MAGIC)?;
    let meta_bytes = encode(&meta)?;
    w.write_all(&(meta_bytes.len() as u32).to_le_bytes())?;
    w.write_all(&meta_bytes)?;
    let cf = db.cf_handle(CF_SM).expect("sm column family");
    let (lo, hi) = keys::group_range(group);
    for item in snap.iterator_cf(cf, IteratorMode::From(&lo, Direction::Forward)) {
        let (k, v) = item.map_err(io_err)?;
        if k.as_ref() >= hi.as_slice() {
            break;
        }
        let key = &k[8..];
        w.write_all(&(key.len() as u32).to_le_bytes())?;
        w.write_all(key)?;
        w.write_all(&(v.len() as u32).to_le_bytes())?;
        w.write_all(&v)?;
    }
    w.write_all(&END.to_le_bytes())?;
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    let path = dir.join(final_name::<L>(&meta, &unique));
    fs::rename(&tmp, &path)?;
    Ok((meta, SnapshotFile { path }))
}

/// Reads the meta at the head of a snapshot file and leaves `r` at the first record.
fn read_header<L: LogTypes>(r: &mut impl Read) -> io::Result<SnapshotMeta<L>> {
    decode(&read_header_bytes(r)?)
}

/// The encoded meta at the head of a snapshot file; leaves `r` at the first record.
fn read_header_bytes(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)?;
    if &magic != MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a goscheduler snapshot",
        ));
    }
    let len = read_u32(r)? as usize;
    let mut meta = vec![0u8; len];
    r.read_exact(&mut meta)?;
    Ok(meta)
}

fn read_u32(r: &mut impl Read) -> io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

/// The meta of a snapshot file.
pub fn read_meta<L: LogTypes>(path: &Path) -> io::Result<SnapshotMeta<L>> {
    read_header::<L>(&mut BufReader::new(File::open(path)?))
}

/// Calls `each(key, value)` for every record of a snapshot file, in order.
pub fn for_each_record(
    path: &Path,
    mut each: impl FnMut(&[u8], &[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let mut r = BufReader::new(File::open(path)?);
    read_header_bytes(&mut r)?;
    let (mut key, mut value) = (Vec::new(), Vec::new());
    loop {
        let klen = read_u32(&mut r)?;
        if klen == END {
            return Ok(());
        }
        key.resize(klen as usize, 0);
        r.read_exact(&mut key)?;
        let vlen = read_u32(&mut r)? as usize;
        value.resize(vlen, 0);
        r.read_exact(&mut value)?;
        each(&key, &value)?;
    }
}

/// The newest complete snapshot file in `dir`, if any.
pub fn latest(dir: &Path) -> io::Result<Option<SnapshotFile>> {
    let mut best: Option<PathBuf> = None;
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "snap") && best.as_ref().is_none_or(|b| path > *b)
        {
            best = Some(path);
        }
    }
    Ok(best.map(|path| SnapshotFile { path }))
}

/// Removes every snapshot file in `dir` except `keep`.
pub fn remove_others(dir: &Path, keep: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path != keep {
            let _ = fs::remove_file(&path);
        }
    }
    Ok(())
}

/// Moves a received snapshot file into `dir` under its final name (durably).
pub fn adopt<L: LogTypes>(
    dir: &Path,
    received: &Path,
    meta: &SnapshotMeta<L>,
) -> io::Result<SnapshotFile> {
    fs::create_dir_all(dir)?;
    File::open(received)?.sync_all()?;
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let path = dir.join(final_name::<L>(meta, &unique));
    fs::rename(received, &path)?;
    File::open(dir)?.sync_all()?;
    Ok(SnapshotFile { path })
}
