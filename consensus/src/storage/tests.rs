//! Unit tests of `storage`.

use super::*;
use crate::rng::Rng;
use crate::types::{Ballot, Entry, Membership};

fn batch(rng: &mut Rng, len: &mut u64) -> Persist {
    let mut p = Persist::default();
    if rng.chance(0.05) {
        p.snapshot = Some(Snapshot {
            upto: rng.range(0, *len + 1),
            data: Bytes::from(format!("state {}", rng.next_u64())),
            members: Membership::of(1..=rng.range(1, 6)),
        });
    }
    if rng.chance(0.3) {
        p.promised = Some(Ballot::new(rng.range(0, 100), rng.range(1, 4)));
    }
    if rng.chance(0.2) {
        p.accepted_round = Some(Ballot::new(rng.range(0, 100), rng.range(1, 4)));
    }
    if rng.chance(0.2) && *len > 0 {
        let t = rng.range(0, *len + 1);
        p.truncate = Some(t);
        *len = t;
    }
    if rng.chance(0.8) {
        let n = rng.range(0, 20);
        let entries: Vec<Entry> = (0..n)
            .map(|i| {
                if rng.chance(0.1) {
                    Entry::Noop
                } else if rng.chance(0.05) {
                    Entry::Config(Membership::of([1, 2]).with(rng.range(3, 9), "127.0.0.1:1"))
                } else {
                    Entry::Command(Bytes::from(format!("cmd {} {i}", rng.next_u64())))
                }
            })
            .collect();
        p.append = Some((*len, entries));
        *len += n;
    }
    if rng.chance(0.3) {
        p.decided = Some(rng.range(0, *len + 1));
    }
    p
}

fn write_random(dir: &Path, seed: u64, batches: usize, segment: u64) -> HardState {
    write_random_with(dir, seed, batches, segment, false)
}

fn write_random_with(
    dir: &Path,
    seed: u64,
    batches: usize,
    segment: u64,
    snapshots: bool,
) -> HardState {
    let mut rng = Rng::new(seed);
    let mut s = FileStorage::open(dir, segment).unwrap();
    let mut mem = MemStorage::default();
    let mut len = 0;
    for _ in 0..batches {
        let group: Vec<Persist> = (0..rng.range(1, 4))
            .map(|_| {
                let mut b = batch(&mut rng, &mut len);
                if !snapshots {
                    b.snapshot = None;
                }
                b
            })
            .collect();
        s.append(&group).unwrap();
        mem.append(&group).unwrap();
        s.sync().unwrap();
    }
    assert_eq!(s.state(), mem.state());
    mem.state().clone()
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    v.sort();
    v
}

#[test]
fn batches_round_trip_through_the_codec() {
    let mut rng = Rng::new(1);
    let mut len = 0;
    for _ in 0..500 {
        let p = batch(&mut rng, &mut len);
        let mut buf = Vec::new();
        encode(&p, &mut buf);
        assert_eq!(decode(&buf).unwrap(), p);
    }
    for garbage in [&b""[..], &[0xff], &[16, 0, 0], &[1, 2, 3]] {
        assert!(decode(garbage).is_err());
    }
}

#[test]
fn reopening_replays_every_segment() {
    let dir = tempfile::tempdir().unwrap();
    let want = write_random(dir.path(), 7, 300, 4096);
    assert!(segments(dir.path()).len() > 3, "rotation happened");
    let s = FileStorage::open(dir.path(), 4096).unwrap();
    assert_eq!(s.state(), &want);
}

#[test]
fn reopening_with_snapshots_gives_the_same_state() {
    for seed in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let want = write_random_with(dir.path(), seed, 200, 2048, true);
        let s = FileStorage::open(dir.path(), 2048).unwrap();
        assert_eq!(s.state(), &want, "seed {seed}");
    }
}

#[test]
fn a_snapshot_starts_a_checkpoint_segment_and_old_segments_go() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = FileStorage::open(dir.path(), 1024).unwrap();
    let mut len = 0;
    let mut rng = Rng::new(21);
    for _ in 0..100 {
        let mut b = batch(&mut rng, &mut len);
        b.snapshot = None;
        s.append(&[b]).unwrap();
    }
    s.sync().unwrap();
    let before = segments(dir.path()).len();
    assert!(before > 3);
    let upto = s.state().log.len() / 2;
    s.append(&[Persist {
        snapshot: Some(Snapshot {
            upto,
            data: Bytes::from_static(b"app state"),
            members: Membership::of([1, 2, 3]),
        }),
        ..Persist::default()
    }])
    .unwrap();
    s.sync().unwrap();
    let want = s.state().clone();
    assert_eq!(want.log.offset(), upto);
    assert_eq!(
        segments(dir.path()).len(),
        1,
        "only the checkpoint segment is left"
    );
    let reopened = FileStorage::open(dir.path(), 1024).unwrap();
    assert_eq!(reopened.state(), &want);
}

/// 100 random batches in 1 KiB segments, then a compaction of the first half.
fn logged_then_compacted(dir: &Path) -> (FileStorage, u64) {
    let mut s = FileStorage::open(dir, 1024).unwrap();
    let mut len = 0;
    let mut rng = Rng::new(22);
    for _ in 0..100 {
        let mut b = batch(&mut rng, &mut len);
        b.snapshot = None;
        s.append(&[b]).unwrap();
    }
    s.sync().unwrap();
    let upto = s.state().log.len() / 2;
    s.append(&[Persist {
        compact: Some(Snapshot {
            upto,
            data: Bytes::from_static(b"own state"),
            members: Membership::of([1, 2, 3]),
        }),
        decided: Some(upto),
        ..Persist::default()
    }])
    .unwrap();
    s.sync().unwrap();
    (s, upto)
}

#[test]
fn a_compaction_is_written_aside_then_checkpointed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, upto) = logged_then_compacted(dir.path());
    assert!(segments(dir.path()).len() > 3, "nothing deleted yet");
    let job = s.take_snapshot_write().expect("a snapshot to write");
    assert!(s.take_snapshot_write().is_none());
    assert_eq!(job.run().unwrap(), upto);
    s.snapshot_written(upto).unwrap();
    assert_eq!(segments(dir.path()).len(), 1, "only the checkpoint is left");
    assert!(snapshot_path(dir.path(), upto).exists());
    let want = s.state().clone();
    assert_eq!(want.log.offset(), upto);
    let mut reopened = FileStorage::open(dir.path(), 1024).unwrap();
    assert_eq!(reopened.state(), &want);
    // Writing on after the checkpoint, then reopening, still gives the same state.
    let more = Persist {
        append: Some((want.log.len(), vec![Entry::Noop])),
        ..Persist::default()
    };
    reopened.append(&[more]).unwrap();
    reopened.sync().unwrap();
    let want = reopened.state().clone();
    assert_eq!(FileStorage::open(dir.path(), 1024).unwrap().state(), &want);
}

#[test]
fn a_compaction_cut_short_loses_only_the_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, upto) = logged_then_compacted(dir.path());
    let compacted = s.state().clone();
    // The replica stops before the snapshot file is written: a torn temporary file
    // is all there is.
    let job = s.take_snapshot_write().unwrap();
    std::fs::write(
        snapshot_path(dir.path(), job.upto()).with_extension("tmp"),
        b"MDBCSNP1 torn",
    )
    .unwrap();
    drop(s);
    let reopened = FileStorage::open(dir.path(), 1024).unwrap();
    let st = reopened.state();
    assert_eq!(st.log.offset(), 0, "the compaction is gone");
    assert_eq!(st.log.len(), compacted.log.len());
    assert_eq!(st.decided, compacted.decided.max(upto));
    assert_eq!(
        st.log.range(upto, st.log.len()),
        compacted.log.range(upto, st.log.len())
    );
    assert!(std::fs::read_dir(dir.path()).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".tmp")));
}

#[test]
fn a_damaged_or_missing_snapshot_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, upto) = logged_then_compacted(dir.path());
    s.take_snapshot_write().unwrap().run().unwrap();
    s.snapshot_written(upto).unwrap();
    drop(s);
    let path = snapshot_path(dir.path(), upto);
    let mut data = std::fs::read(&path).unwrap();
    let last = data.len() - 1;
    data[last] ^= 0xff;
    std::fs::write(&path, &data).unwrap();
    let e = FileStorage::open(dir.path(), 1024).unwrap_err();
    assert!(e.to_string().contains("snapshot checksum"), "{e}");
    std::fs::remove_file(&path).unwrap();
    let e = FileStorage::open(dir.path(), 1024).unwrap_err();
    assert!(e.to_string().contains("snap-"), "{e}");
}

#[test]
fn a_torn_final_record_is_dropped_and_writing_continues() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = FileStorage::open(dir.path(), 1 << 20).unwrap();
    let a = Persist {
        append: Some((0, vec![Entry::Command(Bytes::from_static(b"kept"))])),
        ..Persist::default()
    };
    let b = Persist {
        append: Some((1, vec![Entry::Command(Bytes::from_static(b"torn away"))])),
        ..Persist::default()
    };
    s.append(&[a.clone(), b]).unwrap();
    s.sync().unwrap();
    drop(s);
    let seg = segments(dir.path()).pop().unwrap();
    let len = std::fs::metadata(&seg).unwrap().len();
    // Every cut inside the second record leaves the first batch only.
    let full = std::fs::read(&seg).unwrap();
    let first_len = {
        let mut buf = Vec::new();
        encode(&a, &mut buf);
        (HEADER + buf.len()) as u64
    };
    for cut in first_len + 1..len {
        std::fs::write(&seg, &full[..cut as usize]).unwrap();
        let s = FileStorage::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(s.state().log.len(), 1, "cut at {cut}");
        assert_eq!(std::fs::metadata(&seg).unwrap().len(), first_len);
    }
    // A flipped byte in the last record's payload is a torn write too.
    let mut flipped = full.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x55;
    std::fs::write(&seg, &flipped).unwrap();
    let mut s = FileStorage::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(s.state().log.len(), 1);
    let c = Persist {
        append: Some((1, vec![Entry::Noop])),
        ..Persist::default()
    };
    s.append(&[c]).unwrap();
    s.sync().unwrap();
    let s = FileStorage::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(
        s.state().log.entries(),
        &[Entry::Command(Bytes::from_static(b"kept")), Entry::Noop]
    );
}

#[test]
fn corruption_in_the_middle_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_random(dir.path(), 9, 50, 1 << 20);
    let seg = segments(dir.path()).pop().unwrap();
    let mut data = std::fs::read(&seg).unwrap();
    data[HEADER + 1] ^= 0xff;
    std::fs::write(&seg, &data).unwrap();
    let err = FileStorage::open(dir.path(), 1 << 20).unwrap_err();
    assert!(
        matches!(err, StorageError::Corrupted { offset: 0, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("refusing to start"));
}

#[test]
fn a_damaged_length_in_the_middle_is_not_mistaken_for_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    write_random(dir.path(), 5, 40, 1 << 20);
    let seg = segments(dir.path()).pop().unwrap();
    let mut data = std::fs::read(&seg).unwrap();
    data[0] = 0x7f; // the first record now claims to run past the end
    std::fs::write(&seg, &data).unwrap();
    let err = FileStorage::open(dir.path(), 1 << 20).unwrap_err();
    assert!(
        matches!(err, StorageError::Corrupted { offset: 0, .. }),
        "{err}"
    );
}

#[test]
fn a_bad_record_in_an_older_segment_is_refused_even_at_its_end() {
    let dir = tempfile::tempdir().unwrap();
    write_random(dir.path(), 11, 200, 2048);
    let first = segments(dir.path()).remove(0);
    let data = std::fs::read(&first).unwrap();
    std::fs::write(&first, &data[..data.len() - 3]).unwrap();
    let err = FileStorage::open(dir.path(), 2048).unwrap_err();
    assert!(matches!(err, StorageError::Corrupted { .. }), "{err}");
}

#[test]
fn a_missing_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_random(dir.path(), 13, 200, 2048);
    let segs = segments(dir.path());
    assert!(segs.len() >= 3);
    std::fs::remove_file(&segs[1]).unwrap();
    let err = FileStorage::open(dir.path(), 2048).unwrap_err();
    assert!(
        matches!(err, StorageError::MissingSegment { missing: 2, .. }),
        "{err}"
    );
}
