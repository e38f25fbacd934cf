//! Snapshot files: a group's whole state machine at one log id, written from a
//! consistent RocksDB snapshot and streamed to lagging nodes in chunks.
//!
//! Format: `MAGIC`, `u32` meta length, meta (JSON), then records `u32 klen, key,
//! u32 vlen, value` (keys without the group prefix), closed by `u32::MAX`, then the CRC-32
//! of every byte before it. A file is used only once [`walk`] has checked all of it: every
//! length within what is left of the file, the end mark, the checksum, nothing after —
//! so a cut or corrupted file is refused before anything of the group is touched.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use rocksdb::{Direction, IteratorMode, DB};

use super::types::{GroupId, LogId, LogTypes, SnapshotMeta, StoredMembership};
use crate::store::{decode, encode, io_err, keys, CF_SM, CF_SM_META};

const MAGIC: &[u8; 8] = b"GSSNAP2\n";
const END: u32 = u32::MAX;
/// Read ahead of a snapshot build's scan.
const SCAN_READAHEAD: usize = 2 << 20;
/// Largest meta a file may claim (a membership config).
const MAX_META_BYTES: u64 = 16 << 20;

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

/// Writes through to `inner`, keeping the CRC-32 of everything written.
struct Summed<W> {
    inner: W,
    crc: crc32fast::Hasher,
}

impl<W: Write> Write for Summed<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
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
    let mut w = Summed {
        inner: BufWriter::new(File::create(&tmp)?),
        crc: crc32fast::Hasher::new(),
    };
    w.write_all(MAGIC)?;
    let meta_bytes = encode(&meta)?;
    w.write_all(&(meta_bytes.len() as u32).to_le_bytes())?;
    w.write_all(&meta_bytes)?;
    let cf = db.cf_handle(CF_SM).expect("sm column family");
    let (lo, hi) = keys::group_range(group);
    // A scan of the whole group: its blocks would only push the hot ones out of the cache.
    let mut read = rocksdb::ReadOptions::default();
    read.fill_cache(false);
    read.set_readahead_size(SCAN_READAHEAD);
    let from = IteratorMode::From(&lo, Direction::Forward);
    for item in snap.iterator_cf_opt(cf, read, from) {
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
    let Summed { mut inner, crc } = w;
    inner.write_all(&crc.finalize().to_le_bytes())?;
    let file = inner.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    let path = dir.join(final_name::<L>(&meta, &unique));
    fs::rename(&tmp, &path)?;
    File::open(dir)?.sync_all()?;
    Ok((meta, SnapshotFile { path }))
}

/// Reads a snapshot file, checking as it goes: lengths within what is left, the checksum.
struct Checked {
    r: BufReader<File>,
    left: u64,
    crc: crc32fast::Hasher,
}

fn invalid(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

impl Checked {
    fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        let left = file.metadata()?.len();
        Ok(Checked {
            r: BufReader::new(file),
            left,
            crc: crc32fast::Hasher::new(),
        })
    }

    /// Reads `len` bytes into `buf` (checked against what the file still holds first).
    fn read(&mut self, buf: &mut Vec<u8>, len: u64, what: &str) -> io::Result<()> {
        if len > self.left {
            return Err(invalid(format!(
                "snapshot cut short: {what} of {len} bytes, {} left",
                self.left
            )));
        }
        buf.resize(len as usize, 0);
        self.r.read_exact(buf)?;
        self.crc.update(buf);
        self.left -= len;
        Ok(())
    }

    fn u32(&mut self, what: &str) -> io::Result<u32> {
        let mut b = Vec::with_capacity(4);
        self.read(&mut b, 4, what)?;
        Ok(u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }

    /// Checks the trailing checksum and that nothing follows it.
    fn finish(mut self) -> io::Result<()> {
        let expected = std::mem::take(&mut self.crc).finalize();
        let stored = self.u32("checksum")?;
        if stored != expected {
            return Err(invalid(format!(
                "snapshot checksum mismatch: stored {stored:08x}, computed {expected:08x}"
            )));
        }
        if self.left != 0 {
            return Err(invalid(format!(
                "{} bytes after the snapshot's end",
                self.left
            )));
        }
        Ok(())
    }
}

/// Checks a whole snapshot file and calls `each(key, value)` for every record, in order;
/// answers its meta. Any defect is an `InvalidData` error (records seen before it were
/// passed to `each`: callers verify with a no-op first).
pub fn walk<L: LogTypes>(
    path: &Path,
    mut each: impl FnMut(&[u8], &[u8]) -> io::Result<()>,
) -> io::Result<SnapshotMeta<L>> {
    let mut r = Checked::open(path)?;
    let mut buf = Vec::new();
    r.read(&mut buf, MAGIC.len() as u64, "magic")?;
    if buf != MAGIC {
        return Err(invalid("not a goscheduler snapshot (v2)".into()));
    }
    let len = r.u32("meta length")? as u64;
    if len > MAX_META_BYTES {
        return Err(invalid(format!("snapshot meta of {len} bytes")));
    }
    r.read(&mut buf, len, "meta")?;
    let meta: SnapshotMeta<L> = decode(&buf)?;
    let mut value = Vec::new();
    loop {
        let klen = r.u32("key length")?;
        if klen == END {
            break;
        }
        r.read(&mut buf, klen as u64, "key")?;
        let vlen = r.u32("value length")?;
        r.read(&mut value, vlen as u64, "value")?;
        each(&buf, &value)?;
    }
    r.finish()?;
    Ok(meta)
}

/// The meta of a snapshot file, once all of it is checked.
pub fn verify<L: LogTypes>(path: &Path) -> io::Result<SnapshotMeta<L>> {
    walk::<L>(path, |_, _| Ok(()))
}

/// The meta at the head of a snapshot file this node wrote or verified (not re-checked).
pub fn read_meta<L: LogTypes>(path: &Path) -> io::Result<SnapshotMeta<L>> {
    let mut r = Checked::open(path)?;
    let mut buf = Vec::new();
    r.read(&mut buf, MAGIC.len() as u64, "magic")?;
    let len = r.u32("meta length")? as u64;
    if buf != MAGIC || len > MAX_META_BYTES {
        return Err(invalid(format!("{} is not a snapshot", path.display())));
    }
    r.read(&mut buf, len, "meta")?;
    decode(&buf)
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
