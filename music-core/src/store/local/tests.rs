//! Unit tests of `local`.

use super::*;

fn v(epoch: u64, hlc: u64, node: u64) -> Version {
    Version { epoch, hlc, node }
}

fn store() -> LocalStore {
    LocalStore::open(Path::new(":memory:")).unwrap()
}

#[test]
fn last_writer_wins_in_any_order() {
    let (a, b) = (store(), store());
    let writes = [
        ("k", &b"one"[..], v(0, 10, 1)),
        ("k", b"two", v(0, 20, 2)),
        ("k", b"old lock", v(0, 5, 3)),
    ];
    for (k, val, ver) in writes {
        a.apply(k, val, ver).unwrap();
    }
    for (k, val, ver) in writes.iter().rev() {
        b.apply(k, val, *ver).unwrap();
    }
    assert_eq!(a.get("k").unwrap(), b.get("k").unwrap());
    assert_eq!(
        a.get("k").unwrap().unwrap().value,
        Bytes::from_static(b"two")
    );
    assert_eq!(a.digest().unwrap(), b.digest().unwrap());
    b.apply("other", b"x", v(0, 1, 1)).unwrap();
    assert_ne!(a.digest().unwrap(), b.digest().unwrap());
}

#[tokio::test]
async fn critical_writes_are_fenced_by_the_newest_lock_ref() {
    let s = store();
    assert_eq!(
        s.critical_apply("k", b"by 5", v(5, 1, 1)).await.unwrap(),
        CriticalWrite::Done
    );
    assert_eq!(s.raise_fence("k", 7).await.unwrap(), 7);
    assert_eq!(
        s.raise_fence("k", 6).await.unwrap(),
        7,
        "fences never go down"
    );
    assert_eq!(
        s.critical_apply("k", b"late by 5", v(5, 99, 1))
            .await
            .unwrap(),
        CriticalWrite::Fenced(7)
    );
    assert_eq!(
        s.get("k").unwrap().unwrap().value,
        Bytes::from_static(b"by 5")
    );
    assert_eq!(
        s.put_epoch("k").unwrap(),
        7,
        "plain puts join the newest epoch"
    );
}

#[tokio::test]
async fn a_batch_of_critical_writes_is_stored_whole_or_not_at_all() {
    let s = store();
    s.raise_fence("head", 7).await.unwrap();
    // Fenced on one key: neither is stored.
    assert_eq!(
        s.critical_apply_many(&[("entry", b"e", v(5, 1, 1)), ("head", b"h", v(5, 1, 1))])
            .await
            .unwrap(),
        CriticalWrite::Fenced(7)
    );
    assert_eq!(s.get("entry").unwrap(), None);
    assert_eq!(
        s.critical_apply_many(&[("entry", b"e", v(7, 2, 1)), ("head", b"h", v(7, 2, 1))])
            .await
            .unwrap(),
        CriticalWrite::Done
    );
    assert_eq!(
        s.get("entry").unwrap().unwrap().value,
        Bytes::from_static(b"e")
    );
    assert_eq!(
        s.get("head").unwrap().unwrap().value,
        Bytes::from_static(b"h")
    );
    assert_eq!(s.fence("entry").unwrap(), 7);
}

#[test]
fn hints_are_kept_until_cleared() {
    let s = store();
    s.add_hints(2, &["a".into(), "b".into()]).unwrap();
    s.add_hints(2, &["a".into()]).unwrap();
    assert_eq!(s.hints(2, 10).unwrap(), vec!["a".to_string(), "b".into()]);
    s.clear_hints(2, &["a".into()]).unwrap();
    assert_eq!(s.hints(2, 10).unwrap(), vec!["b".to_string()]);
    assert!(s.hints(3, 10).unwrap().is_empty());
}

#[tokio::test]
async fn the_kept_digest_equals_a_full_scan_through_every_kind_of_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let s = LocalStore::open(&path).unwrap();
    let other = store();
    // Overwrites, stale writes that must change nothing, batches, critical writes.
    for i in 0..300u64 {
        let key = format!("k{}", i % 97);
        s.apply(&key, b"v", v(0, i, 1)).unwrap();
        s.apply(&key, b"stale", v(0, 0, 1)).unwrap();
        other.apply(&key, b"v", v(0, i, 1)).unwrap();
    }
    let batch: Vec<(String, Version)> = (0..50)
        .map(|i| (format!("b{i}"), v(0, 1000 + i, 2)))
        .collect();
    let stored = s
        .apply_many(batch.iter().map(|(k, ver)| (k.as_str(), &b"x"[..], *ver)))
        .unwrap();
    assert_eq!(stored, 50);
    assert_eq!(
        s.apply_many(batch.iter().map(|(k, ver)| (k.as_str(), &b"x"[..], *ver)))
            .unwrap(),
        0,
        "the same versions again store nothing"
    );
    s.critical_apply_many(&[("k1", b"c", v(3, 1, 1)), ("head", b"h", v(3, 1, 1))])
        .await
        .unwrap();
    // A fenced critical write stores nothing and leaves the digest alone.
    assert_eq!(
        s.critical_apply("k1", b"late", v(2, 9, 1)).await.unwrap(),
        CriticalWrite::Fenced(3)
    );
    assert_eq!(s.digest().unwrap(), s.scanned_digest().unwrap());
    assert_ne!(s.digest().unwrap(), other.digest().unwrap());
    // Reopened, it is computed again from what is on disk.
    let kept = s.digest().unwrap();
    drop(s);
    let again = LocalStore::open(&path).unwrap();
    assert_eq!(again.digest().unwrap(), kept);
    // Two replicas given the same writes in other orders and batches agree.
    let (x, y) = (store(), store());
    let writes: Vec<(String, Version)> = (0..200u64)
        .map(|i| (format!("w{}", i % 31), v(i % 3, i * 7 % 101, i % 2)))
        .collect();
    for (k, ver) in &writes {
        x.apply(k, b"w", *ver).unwrap();
    }
    y.apply_many(
        writes
            .iter()
            .rev()
            .map(|(k, ver)| (k.as_str(), &b"w"[..], *ver)),
    )
    .unwrap();
    assert_eq!(x.digest().unwrap(), y.digest().unwrap());
    assert_eq!(x.digest().unwrap(), x.scanned_digest().unwrap());
}

fn floor(at: u64) -> [u8; 8] {
    at.to_be_bytes()
}

#[test]
fn a_floor_drops_a_logs_keys_below_it_and_keeps_them_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let s = LocalStore::open(&path).unwrap();
    for n in 1..=10u64 {
        s.apply(&format!("site/a/{n}"), b"e", v(0, n, 1)).unwrap();
    }
    s.apply("site/a/3/0", b"part", v(0, 3, 1)).unwrap();
    s.apply("site/a/head", b"h", v(0, 1, 1)).unwrap();
    s.apply("site/ab/1", b"other log", v(0, 1, 1)).unwrap();
    assert!(s
        .apply(&floor_key("site/a/"), &floor(5), v(0, 20, 1))
        .unwrap());
    for n in 1..=5u64 {
        assert_eq!(s.get(&format!("site/a/{n}")).unwrap(), None, "{n} dropped");
    }
    assert_eq!(s.get("site/a/3/0").unwrap(), None, "parts go too");
    for k in ["site/a/6", "site/a/10", "site/a/head", "site/ab/1"] {
        assert!(s.get(k).unwrap().is_some(), "{k} kept");
    }
    // A late push or anti-entropy cannot bring a dropped key back.
    assert!(!s.apply("site/a/2", b"late", v(0, 99, 2)).unwrap());
    assert_eq!(
        s.apply_many([("site/a/4", &b"late"[..], v(0, 99, 2))])
            .unwrap(),
        0
    );
    // A lower floor, even a newer put of one, does not lower it.
    s.apply(&floor_key("site/a/"), &floor(3), v(0, 30, 2))
        .unwrap();
    assert!(!s.apply("site/a/4", b"late", v(0, 99, 2)).unwrap());
    assert_eq!(
        s.get(&floor_key("site/a/")).unwrap().unwrap().value,
        Bytes::copy_from_slice(&floor(5))
    );
    assert_eq!(s.digest().unwrap(), s.scanned_digest().unwrap());
    drop(s);
    let s = LocalStore::open(&path).unwrap();
    assert!(!s.apply("site/a/1", b"after restart", v(0, 99, 2)).unwrap());
    assert!(s.apply("site/a/11", b"e", v(0, 11, 1)).unwrap());
}

#[test]
fn replicas_agree_on_a_floor_whatever_order_its_puts_arrive_in() {
    let puts = [
        (floor_key("domain/d/"), floor(7), v(0, 10, 1)),
        (floor_key("domain/d/"), floor(4), v(0, 20, 2)),
        (floor_key("domain/d/"), floor(9), v(0, 5, 3)),
    ];
    let (x, y) = (store(), store());
    for n in 1..=12u64 {
        for r in [&x, &y] {
            r.apply(&format!("domain/d/{n}"), b"e", v(0, n, 1)).unwrap();
        }
    }
    for (k, val, ver) in &puts {
        x.apply(k, val, *ver).unwrap();
    }
    y.apply_many(
        puts.iter()
            .rev()
            .map(|(k, val, ver)| (k.as_str(), &val[..], *ver)),
    )
    .unwrap();
    assert_eq!(
        x.get(&floor_key("domain/d/")).unwrap(),
        y.get(&floor_key("domain/d/")).unwrap()
    );
    assert_eq!(
        x.get(&floor_key("domain/d/")).unwrap().unwrap().value,
        Bytes::copy_from_slice(&floor(9))
    );
    assert_eq!(x.digest().unwrap(), y.digest().unwrap());
    assert_eq!(y.digest().unwrap(), y.scanned_digest().unwrap());
    assert_eq!(x.get("domain/d/9").unwrap(), None);
    assert!(x.get("domain/d/10").unwrap().is_some());
}
