//! The `DataStore` contract: one suite, every backend. The embedded store runs it always;
//! the Scylla backend runs it when `MDBC_TEST_SCYLLA=host:port` names a ScyllaDB or
//! Cassandra server, and says it was skipped otherwise (none can be installed on our
//! build machines).

use std::time::Duration;

use bytes::Bytes;
use music_core::store::embedded::{EmbeddedConfig, EmbeddedStore};
use music_core::store::{DataStore, StoreError, MAX_VALUE};

/// Runs every clause against `s`; `tag` keeps keys apart between runs on one server.
async fn contract<D: DataStore>(s: &D, tag: &str) {
    let k = |name: &str| format!("{tag}-{name}");

    // Plain puts: read back, later wins.
    assert_eq!(s.get(&k("absent")).await.unwrap(), None);
    let v1 = s.put(&k("p"), Bytes::from_static(b"one")).await.unwrap();
    let v2 = s.put(&k("p"), Bytes::from_static(b"two")).await.unwrap();
    assert!(v2 > v1, "a later put has a later version");
    assert_eq!(
        s.get(&k("p")).await.unwrap().unwrap().value,
        Bytes::from_static(b"two")
    );

    // Critical writes and reads under a lock ref.
    let key = k("c");
    s.sync(&key, 10).await.unwrap();
    let w = s
        .critical_put(&key, Bytes::from_static(b"by 10"), 10)
        .await
        .unwrap();
    assert_eq!(w.epoch, 10);
    let got = s.critical_get(&key, 10).await.unwrap().unwrap();
    assert_eq!(
        (got.value, got.version.epoch),
        (Bytes::from_static(b"by 10"), 10)
    );

    // A newer holder syncs: the value carries over, and the old ref is fenced off.
    s.sync(&key, 11).await.unwrap();
    assert_eq!(
        s.critical_get(&key, 11).await.unwrap().unwrap().value,
        Bytes::from_static(b"by 10")
    );
    let e = s
        .critical_put(&key, Bytes::from_static(b"late"), 10)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::Fenced {
                lock_ref: 10,
                seen: 11
            }
        ),
        "{e}"
    );
    let e = s.critical_get(&key, 10).await.unwrap_err();
    assert!(matches!(e, StoreError::Fenced { .. }), "{e}");
    let e = s.sync(&key, 9).await.unwrap_err();
    assert!(matches!(e, StoreError::Fenced { .. }), "{e}");
    s.critical_put(&key, Bytes::from_static(b"by 11"), 11)
        .await
        .unwrap();
    assert_eq!(
        s.get(&key).await.unwrap().unwrap().value,
        Bytes::from_static(b"by 11")
    );

    // Syncing a key nobody wrote fences it too.
    let fresh = k("fresh");
    s.sync(&fresh, 20).await.unwrap();
    assert_eq!(s.critical_get(&fresh, 20).await.unwrap(), None);
    assert!(matches!(
        s.critical_put(&fresh, Bytes::from_static(b"x"), 19).await,
        Err(StoreError::Fenced { .. })
    ));

    // Limits.
    assert!(matches!(
        s.put("", Bytes::from_static(b"x")).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.put(&k("big"), Bytes::from(vec![0u8; MAX_VALUE + 1]))
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.get(&"k".repeat(2000)).await,
        Err(StoreError::Invalid(_))
    ));
}

#[tokio::test]
async fn the_embedded_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let (_stop, rx) = tokio::sync::watch::channel(false);
    let mut cfg = EmbeddedConfig::new(1, Vec::new(), b"contract-secret-0123456789".to_vec().into());
    cfg.quorum_timeout = Duration::from_millis(500);
    let s = EmbeddedStore::open(&dir.path().join("store.db"), cfg, rx).unwrap();
    contract(&s, "embedded").await;
}

#[tokio::test]
async fn the_scylla_store_keeps_the_contract() {
    let Ok(node) = std::env::var("MDBC_TEST_SCYLLA") else {
        eprintln!(
            "SKIPPED: the Scylla contract needs a ScyllaDB/Cassandra server; \
             set MDBC_TEST_SCYLLA=host:port to run it"
        );
        return;
    };
    use music_core::store::scylla::{ScyllaConfig, ScyllaStore};
    let mut cfg = ScyllaConfig::new(vec![node], 1);
    cfg.keyspace = "music_contract".into();
    cfg.replication = "{'class': 'SimpleStrategy', 'replication_factor': 1}".into();
    let s = ScyllaStore::connect(cfg).await.unwrap();
    let tag = format!(
        "run{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    contract(&s, &tag).await;
}
