//! The [`Store`] contract, as one suite any implementation must pass: the
//! SQLite store today; a second store runs the same `contract` function.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

mod support;

use attest_dps::documents::CaCert;
use attest_service::postgres::PostgresStore;
use attest_service::sqlite::SqliteStore;
use attest_service::store::LookupKind::{Anchor, GroupCa, Unloadable};
use attest_service::store::{Doc, LookupKey, OPERATION_TTL, Operation, Store};
use policy_host::EnrollmentKind::{Group, Individual};
use serde_json::json;

fn contract(store: &dyn Store) {
    // Writes commit; reads see them.
    store
        .write_with(|tx| {
            tx.put_enrollment(
                Individual,
                "device-1",
                &json!({"registrationId": "device-1"}),
                "\"e1\"",
            )?;
            tx.put_enrollment(
                Group,
                "Line-A",
                &json!({"enrollmentGroupId": "Line-A"}),
                "\"g1\"",
            )?;
            anyhow::Ok(())
        })
        .unwrap();
    let doc = store
        .read_with(|tx| tx.enrollment(Individual, "device-1"))
        .unwrap()
        .unwrap();
    assert_eq!(
        (doc.doc["registrationId"].as_str(), doc.etag.as_str()),
        (Some("device-1"), "\"e1\"")
    );
    // Kinds are separate key spaces; group keys are kept as written.
    assert!(
        store
            .read_with(|tx| tx.enrollment(Group, "device-1"))
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .read_with(|tx| tx.enrollment(Group, "line-a"))
            .unwrap()
            .is_none()
    );
    let groups = store
        .read_with(|tx| tx.enrollments(Group, None, 10))
        .unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].0, "Line-A");

    // Keyset pages: after a key, in key order, at most `limit`.
    store
        .write_with(|tx| {
            for id in ["device-3", "device-2", "device-4"] {
                tx.put_enrollment(Individual, id, &json!({"registrationId": id}), "\"e\"")?;
            }
            anyhow::Ok(())
        })
        .unwrap();
    let keys = |after: Option<&str>, limit| -> Vec<String> {
        store
            .read_with(|tx| tx.enrollments_after(Individual, after, limit))
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    };
    assert_eq!(keys(None, 2), ["device-1", "device-2"]);
    assert_eq!(keys(Some("device-2"), 10), ["device-3", "device-4"]);
    assert_eq!(
        keys(Some("device-1a"), 1),
        ["device-2"],
        "a deleted key still orders"
    );
    store
        .write_with(|tx| {
            for id in ["device-2", "device-3", "device-4"] {
                tx.delete_enrollment(Individual, id)?;
            }
            anyhow::Ok(())
        })
        .unwrap();

    // Several enrollments at once: read by key (absent ones left out),
    // written and deleted together.
    let many = |keys: &[&str]| {
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        let mut found = store
            .read_with(|tx| tx.enrollments_by_keys(Individual, &keys))
            .unwrap();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found
            .into_iter()
            .map(|(k, d)| (k, d.etag))
            .collect::<Vec<_>>()
    };
    store
        .write_with(|tx| {
            tx.put_enrollments(
                Individual,
                &[
                    (
                        "bulk-1".to_string(),
                        Doc {
                            doc: json!({"registrationId": "bulk-1"}),
                            etag: "\"b1\"".into(),
                        },
                    ),
                    (
                        "bulk-2".to_string(),
                        Doc {
                            doc: json!({"registrationId": "bulk-2"}),
                            etag: "\"b2\"".into(),
                        },
                    ),
                ],
            )
        })
        .unwrap();
    assert_eq!(
        many(&["bulk-2", "bulk-1", "bulk-3"]),
        [
            ("bulk-1".to_string(), "\"b1\"".to_string()),
            ("bulk-2".to_string(), "\"b2\"".to_string())
        ]
    );
    store
        .write_with(|tx| {
            tx.put_enrollments(
                Individual,
                &[(
                    "bulk-1".to_string(),
                    Doc {
                        doc: json!({"registrationId": "bulk-1"}),
                        etag: "\"b1'\"".into(),
                    },
                )],
            )?;
            tx.put_enrollments(Individual, &[])?;
            tx.delete_enrollments(Individual, &["bulk-2".to_string()])
        })
        .unwrap();
    assert_eq!(
        many(&["bulk-1", "bulk-2"]),
        [("bulk-1".to_string(), "\"b1'\"".to_string())],
        "replaced, and deleted"
    );
    store
        .write_with(|tx| tx.delete_enrollments(Individual, &["bulk-1".to_string()]))
        .unwrap();

    // Lookup keys: replaced per owner, found by (kind, value) in owner
    // order, anchors with their certificate.
    let key = |kind, value: &[u8], der: Option<&[u8]>| LookupKey {
        kind,
        value: value.to_vec(),
        der: der.map(<[u8]>::to_vec),
    };
    store
        .write_with(|tx| {
            tx.set_lookup_keys(
                "group:b",
                &[
                    key(GroupCa, &[1; 32], None),
                    key(Anchor, &[2; 32], Some(b"der-b")),
                ],
            )?;
            tx.set_lookup_keys("group:a", &[key(GroupCa, &[1; 32], None)])?;
            tx.set_lookup_keys("ca:root", &[key(Anchor, &[2; 32], Some(b"der-root"))])
        })
        .unwrap();
    let found = |kind, value: &[u8]| store.read_with(|tx| tx.lookup(kind, value)).unwrap();
    assert_eq!(
        found(GroupCa, &[1; 32]),
        [("group:a".to_string(), None), ("group:b".to_string(), None)]
    );
    assert_eq!(
        found(Anchor, &[2; 32]),
        [
            ("ca:root".to_string(), Some(b"der-root".to_vec())),
            ("group:b".to_string(), Some(b"der-b".to_vec()))
        ]
    );
    assert!(found(GroupCa, &[2; 32]).is_empty(), "kinds are separate");
    assert!(found(Unloadable, &[]).is_empty());
    store
        .write_with(|tx| {
            tx.set_lookup_keys("group:b", &[key(Unloadable, &[], None)])?;
            tx.set_lookup_keys("group:a", &[])
        })
        .unwrap();
    assert!(found(GroupCa, &[1; 32]).is_empty(), "replaced, not added");
    assert_eq!(found(Unloadable, &[]), [("group:b".to_string(), None)]);
    let mut all = store.read_with(|tx| tx.lookup_keys()).unwrap();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        all,
        [
            (
                "ca:root".to_string(),
                key(Anchor, &[2; 32], Some(b"der-root"))
            ),
            ("group:b".to_string(), key(Unloadable, &[], None)),
        ]
    );
    store
        .write_with(|tx| {
            tx.set_lookup_keys("group:b", &[])?;
            tx.set_lookup_keys("ca:root", &[])
        })
        .unwrap();

    // A snapshot reads one state of the store, however many times it
    // reads and whatever is committed meanwhile.
    let mut snapshot = store.snapshot().unwrap();
    let read = |s: &mut Box<dyn attest_service::store::Snapshot>| {
        s.read_with(|tx| anyhow::Ok(tx.enrollment(Individual, "device-1")?.map(|d| d.etag)))
            .unwrap()
    };
    assert_eq!(read(&mut snapshot).as_deref(), Some("\"e1\""));
    store
        .write_with(|tx| {
            tx.put_enrollment(
                Individual,
                "device-1",
                &json!({"registrationId": "device-1"}),
                "\"e2\"",
            )
        })
        .unwrap();
    assert_eq!(
        read(&mut snapshot).as_deref(),
        Some("\"e1\""),
        "the snapshot's state"
    );
    drop(snapshot);
    assert_eq!(
        read(&mut store.snapshot().unwrap()).as_deref(),
        Some("\"e2\"")
    );

    // A failed unit of work leaves nothing behind.
    let failed: anyhow::Result<()> = store.write_with(|tx| {
        tx.put_enrollment(Individual, "device-2", &json!({}), "\"x\"")?;
        anyhow::bail!("the unit fails after writing")
    });
    assert!(failed.is_err());
    assert!(
        store
            .read_with(|tx| tx.enrollment(Individual, "device-2"))
            .unwrap()
            .is_none()
    );

    // Registration IDs compare case-insensitively; a record keeps its owner.
    store
        .write_with(|tx| {
            tx.put_registration(
                "Device-1",
                Some("Line-A"),
                &json!({"status": "assigned"}),
                "\"r1\"",
                &[7; 32],
            )
        })
        .unwrap();
    let record = store
        .read_with(|tx| tx.registration("DEVICE-1"))
        .unwrap()
        .unwrap();
    assert!(record.owned_by(&[7; 32]));
    assert!(!record.owned_by(&[8; 32]));
    let of_group = store
        .read_with(|tx| tx.registrations_of_group("Line-A", None, 10))
        .unwrap();
    assert_eq!(of_group.len(), 1);

    // Operations: one per registration, expiring after OPERATION_TTL.
    let now = 1_800_000_000;
    let op = |doc| Operation {
        registration_id: "device-1".into(),
        leaf_sha256: vec![7; 32],
        doc,
    };
    store
        .write_with(|tx| tx.put_operation("op-1", &op(json!({"n": 1})), now))
        .unwrap();
    store
        .write_with(|tx| tx.put_operation("op-2", &op(json!({"n": 2})), now + 1))
        .unwrap();
    assert!(
        store
            .read_with(|tx| tx.operation("op-1", now + 1))
            .unwrap()
            .is_none(),
        "replaced"
    );
    let found = store
        .read_with(|tx| tx.operation("op-2", now + 1))
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.registration_id.as_str(), found.doc["n"].as_i64()),
        ("device-1", Some(2))
    );
    assert!(
        store
            .read_with(|tx| tx.operation("op-2", now + 2 + OPERATION_TTL))
            .unwrap()
            .is_none(),
        "expired"
    );

    // CA certificates.
    let ca = CaCert {
        name: "root".into(),
        der: vec![0x30, 0x00],
        verified: false,
        code: Some("ABC".into()),
        etag: "\"c1\"".into(),
        created: "2026-11-28T00:00:00Z".into(),
        updated: "2026-11-28T00:00:00Z".into(),
    };
    store.write_with(|tx| tx.put_certificate(&ca)).unwrap();
    assert_eq!(
        store.read_with(|tx| tx.certificate("root")).unwrap(),
        Some(ca.clone())
    );
    assert_eq!(store.read_with(|tx| tx.certificates()).unwrap(), [ca]);

    // Deleting a record deletes its operation.
    store
        .write_with(|tx| tx.put_operation("op-3", &op(json!({"n": 3})), now))
        .unwrap();
    store
        .write_with(|tx| tx.delete_registration("device-1"))
        .unwrap();
    assert!(
        store
            .read_with(|tx| tx.operation("op-3", now))
            .unwrap()
            .is_none()
    );

    // Deletes.
    store
        .write_with(|tx| {
            tx.delete_enrollment(Individual, "device-1")?;
            tx.delete_certificate("root")
        })
        .unwrap();
    assert!(
        store
            .read_with(|tx| tx.enrollment(Individual, "device-1"))
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .read_with(|tx| tx.registration("device-1"))
            .unwrap()
            .is_none()
    );
    assert!(store.read_with(|tx| tx.certificates()).unwrap().is_empty());
}

/// Snapshot versions: one per write transaction that changes an
/// enrollment or a CA certificate (none for registrations or reads), and
/// the changes after a version, deletes included, in key order.
fn versioning_contract(store: &dyn Store) {
    let versions = || store.read_with(|tx| tx.versions()).unwrap();
    let start = versions().version;
    let doc = json!({"registrationId": "v"});
    store
        .write_with(|tx| {
            tx.put_enrollment(Individual, "a", &doc, "\"1\"")?;
            tx.put_enrollment(Individual, "b", &doc, "\"1\"")?;
            tx.put_enrollment(Group, "g", &json!({"enrollmentGroupId": "g"}), "\"1\"")
        })
        .unwrap();
    assert_eq!(versions().version, start + 1, "one write, one version");
    store
        .write_with(|tx| tx.put_registration("a", None, &doc, "\"r\"", &[1; 32]))
        .unwrap();
    assert_eq!(
        versions().version,
        start + 1,
        "registrations are no snapshot change"
    );
    let v1 = start + 1;
    store
        .write_with(|tx| {
            tx.delete_enrollment(Individual, "a")?;
            tx.put_enrollments(
                Individual,
                &[
                    (
                        "c".into(),
                        Doc {
                            doc: doc.clone(),
                            etag: "\"1\"".into(),
                        },
                    ),
                    (
                        "d".into(),
                        Doc {
                            doc: doc.clone(),
                            etag: "\"1\"".into(),
                        },
                    ),
                ],
            )?;
            tx.delete_enrollments(Individual, &["d".into()])
        })
        .unwrap();
    assert_eq!(versions().version, v1 + 1);
    let changed = store
        .read_with(|tx| tx.changes_after(v1, None, 10))
        .unwrap();
    let ids: Vec<&str> = changed.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(
        ids,
        ["a", "c", "d"],
        "puts and deletes after v1, in key order"
    );
    let page = store
        .read_with(|tx| tx.changes_after(v1, Some(("individual", "a")), 1))
        .unwrap();
    assert_eq!(page, [("individual".to_string(), "c".to_string())]);
    let all = store
        .read_with(|tx| tx.changes_after(0, None, 100))
        .unwrap();
    assert!(all.contains(&("group".to_string(), "g".to_string())));
    assert!(
        store
            .read_with(|tx| tx.changes_after(v1 + 1, None, 10))
            .unwrap()
            .is_empty()
    );
    // A failed write changes no version.
    let failed: anyhow::Result<()> = store.write_with(|tx| {
        tx.put_enrollment(Individual, "e", &doc, "\"1\"")?;
        anyhow::bail!("undone")
    });
    assert!(failed.is_err());
    assert_eq!(versions().version, v1 + 1);
}

#[test]
fn postgres_store_keeps_the_contract() {
    let store = PostgresStore::open(&support::fresh_database()).unwrap();
    contract(&store);
    versioning_contract(&PostgresStore::open(&support::fresh_database()).unwrap());
}

/// Two stores (replicas) opening one new database at once migrate it once.
#[test]
fn postgres_migrations_are_safe_when_replicas_start_together() {
    let url = support::fresh_database();
    let stores: Vec<PostgresStore> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| PostgresStore::open(&url).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // A write through one is read through the others.
    let first: &dyn Store = &stores[0];
    first
        .write_with(|tx| {
            tx.put_enrollment(Individual, "d", &json!({"registrationId": "d"}), "\"e\"")
        })
        .unwrap();
    for store in &stores[1..] {
        let store: &dyn Store = store;
        assert!(
            store
                .read_with(|tx| tx.enrollment(Individual, "d"))
                .unwrap()
                .is_some()
        );
    }
}

#[test]
fn sqlite_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    contract(&store);
    let dir = tempfile::tempdir().unwrap();
    versioning_contract(&SqliteStore::open(dir.path()).unwrap());
}

#[test]
fn sqlite_store_is_durable_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store: Box<dyn Store> = Box::new(SqliteStore::open(dir.path()).unwrap());
        store
            .write_with(|tx| {
                tx.put_enrollment(Individual, "d", &json!({"registrationId": "d"}), "\"e\"")
            })
            .unwrap();
    }
    let store: Box<dyn Store> = Box::new(SqliteStore::open(dir.path()).unwrap());
    assert!(
        store
            .read_with(|tx| tx.enrollment(Individual, "d"))
            .unwrap()
            .is_some()
    );
}

/// TLS to PostgreSQL (libpq's `sslmode` and `sslrootcert`): the test server
/// has TLS on with a throw-away CA (`scripts/with-postgres`). Verified
/// against that CA it connects; against another CA, or the system's roots,
/// it is refused with the reason; `sslrootcert` without `sslmode` is an
/// error, never a plaintext connection.
#[test]
fn postgres_over_tls_verifies_the_server() {
    let ca = std::env::var("ATTEST_TEST_POSTGRES_CA")
        .expect("ATTEST_TEST_POSTGRES_CA is not set: run the tests through scripts/with-postgres");
    let url = support::fresh_database();
    let store = PostgresStore::open(&format!("{url}?sslmode=require&sslrootcert={ca}")).unwrap();
    let store: &dyn Store = &store;
    store
        .write_with(|tx| {
            tx.put_enrollment(Individual, "d", &json!({"registrationId": "d"}), "\"e\"")
        })
        .unwrap();
    assert!(
        store
            .read_with(|tx| tx.enrollment(Individual, "d"))
            .unwrap()
            .is_some()
    );

    let dir = tempfile::tempdir().unwrap();
    let at = |t| time::OffsetDateTime::from_unix_timestamp(t).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let validity = attest_pki::Validity {
        not_before: at(now - 86_400),
        not_after: at(now + 86_400),
    };
    let other =
        attest_pki::Ca::root("not the server's CA", attest_pki::KeyAlg::P256, validity).unwrap();
    let other_path = dir.path().join("other.pem");
    std::fs::write(&other_path, &other.pem).unwrap();
    for (query, expect) in [
        (
            format!("sslmode=require&sslrootcert={}", other_path.display()),
            "certificate",
        ),
        ("sslmode=require".to_string(), "certificate"),
        (format!("sslrootcert={ca}"), "add sslmode=require"),
        (
            "sslmode=require&sslrootcert=/nonexistent.pem".to_string(),
            "cannot read sslrootcert",
        ),
    ] {
        let err = match PostgresStore::open(&format!("{url}?{query}")) {
            Ok(_) => panic!("{query}: connected"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains(expect), "{query}: {err}");
    }
}
