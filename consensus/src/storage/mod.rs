//! Durable storage for a replica: an append-only, segmented log of [`Persist`] batches.
//!
//! Each batch is one record `[len u32][crc32 u32][payload]`, so a batch is on disk whole or
//! not at all (the core requires that, see [`Persist`]). Segments are files
//! `NNNNNNNN.seg` in the replica's directory, numbered from 1 with no gaps; a new one starts
//! when the current one passes `segment_bytes`. Writes are group-committed: the driver
//! [`FileStorage::append`]s every batch the core produced and calls
//! [`FileStorage::sync`] once before acknowledging any of them.
//!
//! Snapshots end in a *checkpoint*: a new segment whose first record holds the whole
//! state (snapshot, hard state, the log after the snapshot), after which the older
//! segments are deleted. A peer's snapshot ([`Persist::snapshot`]) is checkpointed at
//! once, inline, because the batch that installs it is acknowledged. A snapshot of this
//! replica's own entries ([`Persist::compact`]) costs the replica's thread nothing: the
//! rest of its batch is logged as usual, the snapshot is written to `snap-UPTO.snap` by
//! a [`SnapshotWrite`] on another thread, and only once that file is durable does
//! [`FileStorage::snapshot_written`] start a checkpoint that refers to the file. A crash
//! before then loses only the compaction.
//!
//! Recovery replays every record in order. An incomplete or mismatching record at the very
//! end of the last segment is a torn write of a batch that was never acknowledged: it is cut
//! off (and the file truncated) and the replica starts from the batches before it. Anything
//! else — a bad record followed by more data, a bad record in an older segment, a missing
//! segment, an undecodable payload — is corruption of acknowledged state, and opening fails
//! with an error naming the file and offset rather than silently losing decisions.
//!
//! Error rule (as raft-rs states for its `Storage`): if a write or sync fails, the replica
//! MUST stop; what reached the disk is then decided by recovery at the next start.

#[cfg(test)]
mod tests;

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::codec::{self, Reader};
use crate::paxos::HardState;
use crate::types::{Persist, Snapshot};

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An operating-system error on a file.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Stored data is damaged where it cannot be a torn final write.
    #[error("{path}: corrupted log at byte {offset}: {reason}; refusing to start (restore this replica from its peers)")]
    Corrupted {
        /// The segment.
        path: PathBuf,
        /// Where the bad record starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A segment in the middle of the sequence is missing.
    #[error(
        "{dir}: segment {missing} is missing (found segments up to {last}); refusing to start"
    )]
    MissingSegment {
        /// The log directory.
        dir: PathBuf,
        /// The missing number.
        missing: u64,
        /// The highest number present.
        last: u64,
    },
}

type Result<T> = std::result::Result<T, StorageError>;

/// Where a replica's batches go. Implementations apply each batch atomically.
pub trait Storage {
    /// Writes batches in order (not yet durable).
    fn append(&mut self, batches: &[Persist]) -> Result<()>;
    /// Makes every appended batch durable.
    fn sync(&mut self) -> Result<()>;
    /// The state the batches written so far add up to.
    fn state(&self) -> &HardState;
}

/// Storage in memory, for tests and the simulator.
#[derive(Debug, Default, Clone)]
pub struct MemStorage {
    state: HardState,
}

impl Storage for MemStorage {
    fn append(&mut self, batches: &[Persist]) -> Result<()> {
        for b in batches {
            self.state.apply(b);
        }
        Ok(())
    }
    fn sync(&mut self) -> Result<()> {
        Ok(())
    }
    fn state(&self) -> &HardState {
        &self.state
    }
}

/// The on-disk log.
#[derive(Debug)]
pub struct FileStorage {
    dir: PathBuf,
    segment_bytes: u64,
    current: File,
    current_no: u64,
    current_len: u64,
    new_segment: bool,
    state: HardState,
    // A snapshot of this replica's entries waiting to be written in the background.
    snapshot_write: Option<Snapshot>,
}

const HEADER: usize = 8;
/// Records larger than this are refused as corruption (a batch is bounded by `max_batch`).
const MAX_RECORD: u32 = 256 << 20;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn segment_path(dir: &Path, no: u64) -> PathBuf {
    dir.join(format!("{no:08}.seg"))
}

fn snapshot_path(dir: &Path, upto: u64) -> PathBuf {
    dir.join(format!("snap-{upto:020}.snap"))
}

/// The end of the snapshot a file named like [`snapshot_path`] holds.
fn snapshot_file_upto(name: &str) -> Option<u64> {
    name.strip_prefix("snap-")?
        .strip_suffix(".snap")?
        .parse()
        .ok()
}

const SNAP_MAGIC: &[u8; 8] = b"MDBCSNP1";

/// Writing one snapshot file, off the replica's thread (see the module docs).
#[derive(Debug)]
pub struct SnapshotWrite {
    dir: PathBuf,
    snapshot: Snapshot,
}

impl SnapshotWrite {
    /// The snapshot's end.
    pub fn upto(&self) -> u64 {
        self.snapshot.upto
    }

    /// Writes and syncs the file (through a temporary name, so a file under the final
    /// name is always whole); returns the snapshot's end for
    /// [`FileStorage::snapshot_written`].
    pub fn run(self) -> Result<u64> {
        let path = snapshot_path(&self.dir, self.snapshot.upto);
        let tmp = path.with_extension("tmp");
        let mut payload = Vec::with_capacity(self.snapshot.data.len() + 256);
        codec::put_snapshot(&mut payload, &self.snapshot);
        let mut header = Vec::with_capacity(16);
        header.extend_from_slice(SNAP_MAGIC);
        header.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        header.extend_from_slice(&crc32fast::hash(&payload).to_be_bytes());
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&header).map_err(io(&tmp))?;
        f.write_all(&payload).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))?;
        Ok(self.snapshot.upto)
    }
}

fn read_snapshot_file(dir: &Path, upto: u64) -> Result<Snapshot> {
    let path = snapshot_path(dir, upto);
    let data = Bytes::from(std::fs::read(&path).map_err(io(&path))?);
    let corrupted = |reason: String| StorageError::Corrupted {
        path: path.clone(),
        offset: 0,
        reason,
    };
    if data.len() < 16 || &data[..8] != SNAP_MAGIC {
        return Err(corrupted("not a snapshot file".into()));
    }
    let len = u32::from_be_bytes([data[8], data[9], data[10], data[11]]) as usize;
    let crc = u32::from_be_bytes([data[12], data[13], data[14], data[15]]);
    if data.len() < 16 + len {
        return Err(corrupted(
            "snapshot file is shorter than its header says".into(),
        ));
    }
    // The state is sliced out of the file's buffer, not copied.
    let payload = data.slice(16..16 + len);
    if crc32fast::hash(&payload) != crc {
        return Err(corrupted("snapshot checksum mismatch".into()));
    }
    let mut r = Reader::new(payload);
    let snap = r.snapshot().map_err(corrupted)?;
    r.done().map_err(corrupted)?;
    if snap.upto != upto {
        return Err(corrupted(format!("holds a snapshot up to {}", snap.upto)));
    }
    Ok(snap)
}

impl FileStorage {
    /// Opens (creating if needed) the log in `dir`, recovering as described above.
    pub fn open(dir: &Path, segment_bytes: u64) -> Result<FileStorage> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut numbers = Vec::new();
        let mut snapshot_files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let entry = entry.map_err(io(dir))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".tmp") {
                // A snapshot write cut short: never referred to.
                let _ = std::fs::remove_file(entry.path());
                continue;
            }
            if let Some(n) = snapshot_file_upto(&name) {
                snapshot_files.push(n);
                continue;
            }
            if let Some(n) = name
                .strip_suffix(".seg")
                .and_then(|n| n.parse::<u64>().ok())
            {
                numbers.push(n);
            }
        }
        numbers.sort_unstable();
        let last = numbers.last().copied().unwrap_or(0);
        // Compaction deletes old segments: the sequence starts at the oldest one kept,
        // which begins with a checkpoint of the whole state.
        let first = numbers.first().copied().unwrap_or(1);
        for (i, n) in numbers.iter().enumerate() {
            let expected = first + i as u64;
            if *n != expected {
                return Err(StorageError::MissingSegment {
                    dir: dir.to_path_buf(),
                    missing: expected,
                    last,
                });
            }
        }
        let mut state = HardState::default();
        let mut current_len = 0;
        for &n in &numbers {
            let path = segment_path(dir, n);
            let is_last = n == last;
            let valid = replay(dir, &path, is_last, &mut state)?;
            if is_last {
                let len = std::fs::metadata(&path).map_err(io(&path))?.len();
                if valid < len {
                    tracing::warn!(
                        path = %path.display(),
                        kept = valid,
                        dropped = len - valid,
                        "torn write at the end of the log: dropping the unacknowledged tail"
                    );
                    let f = OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .map_err(io(&path))?;
                    f.set_len(valid).map_err(io(&path))?;
                    f.sync_all().map_err(io(&path))?;
                }
                current_len = valid;
            }
        }
        // Snapshot files the log does not refer to are left over from compactions that a
        // later checkpoint superseded, or never finished.
        let kept = state.snapshot.as_ref().map(|s| s.upto);
        for upto in snapshot_files.into_iter().filter(|u| Some(*u) != kept) {
            let _ = std::fs::remove_file(snapshot_path(dir, upto));
        }
        let current_no = last.max(1);
        let path = segment_path(dir, current_no);
        let current = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        Ok(FileStorage {
            dir: dir.to_path_buf(),
            segment_bytes,
            current,
            current_no,
            current_len,
            new_segment: numbers.is_empty(),
            state,
            snapshot_write: None,
        })
    }

    fn rotate(&mut self) -> Result<()> {
        self.current.sync_data().map_err(io(&self.dir))?;
        self.current_no += 1;
        let path = segment_path(&self.dir, self.current_no);
        self.current = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        self.current_len = 0;
        self.new_segment = true;
        Ok(())
    }
}

impl Storage for FileStorage {
    fn append(&mut self, batches: &[Persist]) -> Result<()> {
        let mut buf = Vec::new();
        for b in batches {
            if b.snapshot.is_some() {
                // A peer's snapshot is written once, in the checkpoint that replaces every
                // older segment, not also as a record of its own.
                self.flush_buf(&mut buf)?;
                self.state.apply(b);
                self.checkpoint(None)?;
                continue;
            }
            if let Some(snap) = &b.compact {
                // Log the rest of the batch now; the snapshot goes to its own file.
                let rest = Persist {
                    compact: None,
                    ..b.clone()
                };
                if !rest.is_empty() {
                    self.encode_record(&rest, &mut buf);
                }
                self.state.apply(b);
                self.snapshot_write = Some(snap.clone());
                continue;
            }
            if self.current_len >= self.segment_bytes && self.current_len > 0 {
                self.flush_buf(&mut buf)?;
                self.rotate()?;
            }
            self.encode_record(b, &mut buf);
            self.state.apply(b);
        }
        self.flush_buf(&mut buf)
    }

    fn sync(&mut self) -> Result<()> {
        let path = segment_path(&self.dir, self.current_no);
        self.current.sync_data().map_err(io(&path))?;
        if self.new_segment {
            // A new file's directory entry must be durable too.
            File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(io(&self.dir))?;
            self.new_segment = false;
        }
        Ok(())
    }

    fn state(&self) -> &HardState {
        &self.state
    }
}

impl FileStorage {
    fn encode_record(&mut self, b: &Persist, buf: &mut Vec<u8>) {
        self.encode_record_with(b, None, buf);
    }

    fn encode_record_with(&mut self, b: &Persist, snapshot_file: Option<u64>, buf: &mut Vec<u8>) {
        let start = buf.len();
        buf.extend_from_slice(&[0u8; HEADER]);
        encode_with(b, snapshot_file, buf);
        let payload = &buf[start + HEADER..];
        let len = payload.len() as u32;
        let crc = crc32fast::hash(payload);
        buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
        buf[start + 4..start + 8].copy_from_slice(&crc.to_be_bytes());
        self.current_len += (buf.len() - start) as u64;
    }

    /// The snapshot of this replica's entries waiting to be written, as a job to run on
    /// another thread; hand its result to [`FileStorage::snapshot_written`].
    pub fn take_snapshot_write(&mut self) -> Option<SnapshotWrite> {
        self.snapshot_write.take().map(|snapshot| SnapshotWrite {
            dir: self.dir.clone(),
            snapshot,
        })
    }

    /// The snapshot file up to `upto` is durable: if it is still the latest snapshot,
    /// start a checkpoint that refers to it; otherwise it was superseded and goes.
    pub fn snapshot_written(&mut self, upto: u64) -> Result<()> {
        if self.state.snapshot.as_ref().map(|s| s.upto) == Some(upto) {
            self.checkpoint(Some(upto))
        } else {
            let _ = std::fs::remove_file(snapshot_path(&self.dir, upto));
            Ok(())
        }
    }

    /// Starts a segment with the whole state (the snapshot — inline, or by reference to
    /// its durable file — the hard state and the log after it), makes it durable, then
    /// deletes every older segment and snapshot file: the log no longer grows without
    /// bound. A crash before the deletion leaves both, and replaying the old segments and
    /// then the checkpoint gives the same state.
    fn checkpoint(&mut self, snapshot_file: Option<u64>) -> Result<()> {
        self.rotate()?;
        let st = &self.state;
        let batch = Persist {
            id: 0,
            snapshot: if snapshot_file.is_some() {
                None
            } else {
                st.snapshot.clone()
            },
            compact: None,
            promised: Some(st.promised),
            accepted_round: Some(st.accepted_round),
            decided: Some(st.decided),
            truncate: Some(st.log.offset()),
            append: Some((st.log.offset(), st.log.entries().to_vec())),
        };
        let mut buf = Vec::new();
        self.encode_record_with(&batch, snapshot_file, &mut buf);
        self.flush_buf(&mut buf)?;
        let path = segment_path(&self.dir, self.current_no);
        self.current.sync_data().map_err(io(&path))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))?;
        self.new_segment = false;
        for no in (1..self.current_no).rev() {
            let old = segment_path(&self.dir, no);
            match std::fs::remove_file(&old) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) => {
                    return Err(StorageError::Io {
                        path: old,
                        source: e,
                    })
                }
            }
        }
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                let upto = snapshot_file_upto(&e.file_name().to_string_lossy());
                if upto.is_some_and(|u| Some(u) != snapshot_file) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Ok(())
    }

    fn flush_buf(&mut self, buf: &mut Vec<u8>) -> Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let path = segment_path(&self.dir, self.current_no);
        self.current.write_all(buf).map_err(io(&path))?;
        buf.clear();
        Ok(())
    }
}

/// Replays one segment into `state`; returns the length of its valid prefix.
fn replay(dir: &Path, path: &Path, is_last: bool, state: &mut HardState) -> Result<u64> {
    let mut data = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .map_err(io(path))?;
    let mut pos = 0usize;
    let corrupted = |offset: usize, reason: String| StorageError::Corrupted {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason,
    };
    while pos < data.len() {
        let rest = data.len() - pos;
        let torn_ok = is_last;
        if rest < HEADER {
            if torn_ok {
                return Ok(pos as u64);
            }
            return Err(corrupted(pos, "truncated record header".into()));
        }
        let len = u32::from_be_bytes([data[pos], data[pos + 1], data[pos + 2], data[pos + 3]]);
        let crc = u32::from_be_bytes([data[pos + 4], data[pos + 5], data[pos + 6], data[pos + 7]]);
        let end = pos + HEADER + len as usize;
        if len > MAX_RECORD || end > data.len() {
            // A length running past the end: the last write was torn — unless a whole
            // record follows, in which case this length field was damaged in place and
            // dropping the rest would lose acknowledged batches.
            if torn_ok && !record_follows(&data, pos + 1) {
                return Ok(pos as u64);
            }
            return Err(corrupted(
                pos,
                format!("record length {len} runs past the segment"),
            ));
        }
        let payload = &data[pos + HEADER..end];
        if crc32fast::hash(payload) != crc {
            if torn_ok && end == data.len() {
                return Ok(pos as u64);
            }
            return Err(corrupted(pos, "checksum mismatch".into()));
        }
        let (mut batch, snapshot_file) = decode_record(payload).map_err(|e| corrupted(pos, e))?;
        if let Some(upto) = snapshot_file {
            batch.snapshot = Some(read_snapshot_file(dir, upto)?);
        }
        state.apply(&batch);
        pos = end;
    }
    Ok(pos as u64)
}

/// Whether a complete record with a matching checksum starts anywhere from `from`.
fn record_follows(data: &[u8], from: usize) -> bool {
    (from..data.len().saturating_sub(HEADER)).any(|p| {
        let len = u32::from_be_bytes([data[p], data[p + 1], data[p + 2], data[p + 3]]) as usize;
        let crc = u32::from_be_bytes([data[p + 4], data[p + 5], data[p + 6], data[p + 7]]);
        let end = p + HEADER + len;
        len > 0 && end <= data.len() && crc32fast::hash(&data[p + HEADER..end]) == crc
    })
}

// ---- record payload: a Persist batch ----

const F_PROMISED: u8 = 1;
const F_ACCEPTED: u8 = 2;
const F_DECIDED: u8 = 4;
const F_TRUNCATE: u8 = 8;
const F_APPEND: u8 = 16;
const F_SNAPSHOT: u8 = 32;
// The checkpoint's snapshot is in the file `snap-UPTO.snap`.
const F_SNAPSHOT_FILE: u8 = 64;

/// Encodes a batch (the payload of one record). [`Persist::compact`] is not part of a
/// record (see the module docs).
pub fn encode(p: &Persist, out: &mut Vec<u8>) {
    encode_with(p, None, out)
}

fn encode_with(p: &Persist, snapshot_file: Option<u64>, out: &mut Vec<u8>) {
    let mut flags = 0;
    if snapshot_file.is_some() {
        flags |= F_SNAPSHOT_FILE;
    }
    if p.promised.is_some() {
        flags |= F_PROMISED;
    }
    if p.accepted_round.is_some() {
        flags |= F_ACCEPTED;
    }
    if p.decided.is_some() {
        flags |= F_DECIDED;
    }
    if p.truncate.is_some() {
        flags |= F_TRUNCATE;
    }
    if p.append.is_some() {
        flags |= F_APPEND;
    }
    if p.snapshot.is_some() {
        flags |= F_SNAPSHOT;
    }
    out.push(flags);
    if let Some(upto) = snapshot_file {
        out.extend_from_slice(&upto.to_be_bytes());
    }
    if let Some(snap) = &p.snapshot {
        codec::put_snapshot(out, snap);
    }
    if let Some(b) = p.promised {
        codec::put_ballot(out, b);
    }
    if let Some(b) = p.accepted_round {
        codec::put_ballot(out, b);
    }
    if let Some(d) = p.decided {
        out.extend_from_slice(&d.to_be_bytes());
    }
    if let Some(t) = p.truncate {
        out.extend_from_slice(&t.to_be_bytes());
    }
    if let Some((from, entries)) = &p.append {
        out.extend_from_slice(&from.to_be_bytes());
        codec::put_entries(out, entries);
    }
}

/// Decodes a record payload; `Err` says what is malformed.
pub fn decode(data: &[u8]) -> std::result::Result<Persist, String> {
    decode_record(data).map(|(p, _)| p)
}

/// A record's batch, and the snapshot file it refers to, if any.
fn decode_record(data: &[u8]) -> std::result::Result<(Persist, Option<u64>), String> {
    // One copy of the record; entries then share it.
    let mut r = Reader::new(Bytes::copy_from_slice(data));
    let flags = r.u8()?;
    let known =
        F_PROMISED | F_ACCEPTED | F_DECIDED | F_TRUNCATE | F_APPEND | F_SNAPSHOT | F_SNAPSHOT_FILE;
    if flags & !known != 0 {
        return Err(format!("unknown flags {flags:#x}"));
    }
    let snapshot_file = if flags & F_SNAPSHOT_FILE != 0 {
        Some(r.u64()?)
    } else {
        None
    };
    let mut p = Persist::default();
    if flags & F_SNAPSHOT != 0 {
        p.snapshot = Some(r.snapshot()?);
    }
    if flags & F_PROMISED != 0 {
        p.promised = Some(r.ballot()?);
    }
    if flags & F_ACCEPTED != 0 {
        p.accepted_round = Some(r.ballot()?);
    }
    if flags & F_DECIDED != 0 {
        p.decided = Some(r.u64()?);
    }
    if flags & F_TRUNCATE != 0 {
        p.truncate = Some(r.u64()?);
    }
    if flags & F_APPEND != 0 {
        let from = r.u64()?;
        p.append = Some((from, r.entries()?));
    }
    r.done()?;
    Ok((p, snapshot_file))
}
