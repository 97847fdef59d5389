//! Tests of the claims store: round trips, compare-and-swap, races between processes and
//! threads, corrupt files, locks and holders.

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};

use super::*;
use crate::error::{ErrorKind, HasKind};
use crate::ownership::{ClaimState, StateDir};

const ID: &str = "lbx_0123456789ab";

fn store() -> (tempfile::TempDir, ClaimStore) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = StateDir::at(tmp.path().join("state"));
    dir.ensure().unwrap();
    (tmp, dir.claim_store())
}

fn claim(id: &str) -> Claim {
    let mut c = Claim::new(id, "local", "scope-1", "owner-1").unwrap();
    c.workdir = "/scratch/leasebox".into();
    c.repo_root = "/src/app".into();
    c
}

fn id(n: usize) -> String {
    format!("lbx_{n:012x}")
}

/// Names in the claims dir, to check nothing stray is left.
fn names(store: &ClaimStore) -> BTreeSet<String> {
    fs::read_dir(store.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

#[test]
fn create_load_update_remove_round_trip() {
    let (_tmp, store) = store();
    let created = store.create(&claim(ID)).unwrap();
    assert_eq!(created.revision, 1);
    assert_eq!(store.load(ID).unwrap(), created);

    let updated = store
        .update(ID, 1, |c| {
            c.state = ClaimState::Active;
            c.alloc_id = Some("alloc-1".into());
            c.handle.insert("namespace".into(), "default".into());
            c.revision = 99; // ignored: the store owns it
        })
        .unwrap();
    assert_eq!(updated.revision, 2);
    assert_eq!(updated.state, ClaimState::Active);
    assert_eq!(store.load(ID).unwrap(), updated);

    let err = store.create(&claim(ID)).unwrap_err();
    assert!(matches!(err, OwnershipError::AlreadyExists { .. }), "{err}");
    assert_eq!(
        store.load(ID).unwrap(),
        updated,
        "failed create changed the claim"
    );

    store.remove(ID, 2).unwrap();
    assert!(matches!(
        store.load(ID),
        Err(OwnershipError::NotFound { .. })
    ));
    assert_eq!(store.get(ID).unwrap(), None);
    assert!(names(&store).is_empty(), "left behind: {:?}", names(&store));
}

#[test]
fn compare_and_swap_conflict() {
    let (_tmp, store) = store();
    store.create(&claim(ID)).unwrap();
    store.update(ID, 1, |c| c.keep = true).unwrap();
    let err = store.update(ID, 1, |c| c.keep = false).unwrap_err();
    assert!(
        matches!(
            err,
            OwnershipError::Conflict {
                expected: 1,
                found: 2,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::OwnershipRefused);
    assert!(err.to_string().contains("changed while in use"), "{err}");
    assert!(store.load(ID).unwrap().keep);
    let err = store.remove(ID, 1).unwrap_err();
    assert!(matches!(err, OwnershipError::Conflict { .. }), "{err}");
    assert!(store.load(ID).is_ok());
}

#[test]
fn touch_refreshes_holder_and_moves_revision() {
    let (_tmp, store) = store();
    let mut c = claim(ID);
    c.last_used = std::time::UNIX_EPOCH;
    c.holder.pid = 1;
    store.create(&c).unwrap();
    let touched = store.touch(ID).unwrap();
    assert_eq!(touched.revision, 2);
    assert_eq!(touched.holder.pid, std::process::id());
    assert!(touched.last_used > std::time::UNIX_EPOCH);
    // A decision taken on the untouched claim now fails.
    assert!(matches!(
        store.remove(ID, 1),
        Err(OwnershipError::Conflict { .. })
    ));
}

#[test]
fn update_may_not_change_the_id() {
    let (_tmp, store) = store();
    store.create(&claim(ID)).unwrap();
    let err = store
        .update(ID, 1, |c| c.id = "lbx_ffffffffffff".into())
        .unwrap_err();
    assert!(matches!(err, OwnershipError::IdChanged { .. }), "{err}");
    assert_eq!(store.load(ID).unwrap().revision, 1);
}

#[test]
fn racing_updates_one_winner_per_revision() {
    let (_tmp, store) = store();
    store.create(&claim(ID)).unwrap();
    let rounds = 40;
    let barrier = Arc::new(Barrier::new(2));
    let threads: Vec<_> = (0..2u32)
        .map(|t| {
            let store = store.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let mut wins = Vec::new();
                for round in 0..rounds {
                    // Both threads try the same revision: round + 1.
                    barrier.wait();
                    let expected = round + 1;
                    match store.update(ID, expected, |c| {
                        c.sync_revision = Some(format!("t{t}-r{expected}"));
                    }) {
                        Ok(c) => {
                            assert_eq!(c.revision, expected + 1);
                            wins.push(expected);
                        }
                        Err(OwnershipError::Conflict { found, .. }) => {
                            assert_eq!(found, expected + 1);
                        }
                        Err(e) => panic!("{e}"),
                    }
                    barrier.wait();
                }
                wins
            })
        })
        .collect();
    // A reader alongside never sees a torn file.
    let reader = {
        let store = store.clone();
        std::thread::spawn(move || {
            for _ in 0..400 {
                store.load(ID).unwrap();
            }
        })
    };
    let mut all: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    reader.join().unwrap();
    all.sort_unstable();
    assert_eq!(all, (1..=rounds).collect::<Vec<_>>());
    let last = store.load(ID).unwrap();
    assert_eq!(last.revision, rounds + 1);
    assert!(
        last.sync_revision
            .unwrap()
            .ends_with(&format!("-r{rounds}"))
    );
}

#[test]
fn twenty_concurrent_creates_all_listed() {
    let (_tmp, store) = store();
    let threads: Vec<_> = (0..20)
        .map(|n| {
            let store = store.clone();
            std::thread::spawn(move || store.create(&claim(&id(n))).unwrap())
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let list = store.list().unwrap();
    assert!(list.corrupt.is_empty(), "{:?}", list.corrupt);
    let ids: BTreeSet<_> = list.claims.iter().map(|c| c.id.clone()).collect();
    assert_eq!(ids, (0..20).map(id).collect());
    // No lock or temp files linger after the creates.
    assert!(
        names(&store).iter().all(|n| n.ends_with(".json")),
        "{:?}",
        names(&store)
    );
}

#[test]
fn corrupt_files_are_reported_and_skipped_never_deleted() {
    let (_tmp, store) = store();
    store.create(&claim(ID)).unwrap();
    let bad_json = store.dir().join("lbx_000000000001.json");
    fs::write(&bad_json, b"{ not json").unwrap();
    let wrong_fields = store.dir().join("lbx_000000000002.json");
    fs::write(
        &wrong_fields,
        br#"{"id": "lbx_000000000002", "backend": 7}"#,
    )
    .unwrap();
    let bad_name = store.dir().join("notes.json");
    fs::write(&bad_name, b"{}").unwrap();
    let other_id = store.dir().join("lbx_000000000003.json");
    let mut misplaced = serde_json::to_vec(&claim(ID)).unwrap();
    misplaced.push(b'\n');
    fs::write(&other_id, &misplaced).unwrap();
    let link = store.dir().join("lbx_000000000004.json");
    std::os::unix::fs::symlink(store.claim_path(ID).unwrap(), &link).unwrap();
    fs::write(store.dir().join("README"), b"ignored").unwrap();
    fs::write(store.dir().join(".tmp-crashed.part"), b"{").unwrap();

    let list = store.list().unwrap();
    assert_eq!(list.claims.len(), 1);
    assert_eq!(list.claims[0].id, ID);
    let reported: Vec<_> = list.corrupt.iter().map(|c| c.path.clone()).collect();
    assert_eq!(
        reported,
        vec![
            bad_json.clone(),
            wrong_fields.clone(),
            other_id.clone(),
            link.clone(),
            bad_name.clone()
        ]
    );
    let reasons: Vec<_> = list.corrupt.iter().map(|c| c.reason.as_str()).collect();
    assert!(reasons[2].contains("not `lbx_000000000003`"), "{reasons:?}");
    assert!(reasons[3].contains("symbolic link"), "{reasons:?}");
    assert!(
        reasons[4].contains("`notes` is not a lease id"),
        "{reasons:?}"
    );
    for path in [&bad_json, &wrong_fields, &bad_name, &other_id, &link] {
        assert!(
            fs::symlink_metadata(path).is_ok(),
            "{} deleted",
            path.display()
        );
    }

    let err = store.load("lbx_000000000001").unwrap_err();
    assert!(matches!(err, OwnershipError::Corrupt { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::ConfigError);
    assert!(err.to_string().contains("lbx_000000000001.json"), "{err}");
}

#[test]
fn missing_claims_dir_lists_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ClaimStore::new(tmp.path().join("absent"));
    assert_eq!(store.list().unwrap(), ClaimList::default());
}

#[test]
fn bad_ids_are_refused_everywhere() {
    let (_tmp, store) = store();
    let bad = "lbx_../../etc/x";
    for result in [
        store.load(bad).map(|_| ()),
        store.update(bad, 1, |_| ()).map(|_| ()),
        store.remove(bad, 1),
        store.touch(bad).map(|_| ()),
        store.lock(bad).map(|_| ()),
        store.hold(bad).map(|_| ()),
        store.is_held(bad).map(|_| ()),
        store.claim_path(bad).map(|_| ()),
    ] {
        let err = result.unwrap_err();
        assert!(matches!(err, OwnershipError::InvalidId { .. }), "{err}");
        assert_eq!(err.kind(), ErrorKind::Usage);
    }
    let mut c = claim(ID);
    c.id = "../escape".into();
    assert!(matches!(
        store.create(&c),
        Err(OwnershipError::InvalidId { .. })
    ));
    assert!(names(&store).is_empty());
}

#[test]
fn lock_guard_spans_operations_and_excludes_others() {
    let (_tmp, store) = store();
    let lock = store.lock(ID).unwrap();
    assert!(!lock.exists().unwrap());
    let created = lock.create(&claim(ID)).unwrap();
    assert_eq!(lock.load().unwrap(), created);
    assert!(store.try_lock(ID).unwrap().is_none(), "lock not exclusive");

    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = {
        let store = store.clone();
        std::thread::spawn(move || {
            let result = store.update(ID, 2, |c| c.keep = true);
            tx.send(()).unwrap();
            result
        })
    };
    let updated = lock.update(1, |c| c.state = ClaimState::Active).unwrap();
    assert_eq!(updated.revision, 2);
    assert!(
        rx.recv_timeout(Duration::from_millis(100)).is_err(),
        "update ran while the guard was held"
    );
    drop(lock);
    let after = waiter.join().unwrap().unwrap();
    assert_eq!(after.revision, 3);
    assert!(after.keep);
    assert_eq!(after.state, ClaimState::Active);

    let lock = store.lock(ID).unwrap();
    let c = lock.load().unwrap();
    lock.remove(c.revision).unwrap();
    assert!(names(&store).is_empty(), "left behind: {:?}", names(&store));
}

#[test]
fn lock_on_missing_claim_leaves_nothing() {
    let (_tmp, store) = store();
    let lock = store.lock(ID).unwrap();
    assert!(matches!(lock.load(), Err(OwnershipError::NotFound { .. })));
    assert!(matches!(
        lock.update(1, |_| ()),
        Err(OwnershipError::NotFound { .. })
    ));
    drop(lock);
    assert!(matches!(
        store.update(ID, 1, |_| ()),
        Err(OwnershipError::NotFound { .. })
    ));
    assert!(names(&store).is_empty(), "left behind: {:?}", names(&store));
}

#[test]
fn concurrent_remove_and_recreate_stay_consistent() {
    // Creates, removes and updates of one id from several threads: lock files come and
    // go, yet no write is lost or doubled and no file is left when the claim is gone.
    let (_tmp, store) = store();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut created = 0;
                for _ in 0..50 {
                    let lock = store.lock(ID).unwrap();
                    match lock.load() {
                        Err(OwnershipError::NotFound { .. }) => {
                            lock.create(&claim(ID)).unwrap();
                            created += 1;
                        }
                        Ok(c) if c.revision >= 3 => lock.remove(c.revision).unwrap(),
                        Ok(c) => {
                            lock.update(c.revision, |_| ()).unwrap();
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
                created
            })
        })
        .collect();
    let created: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    // 200 steps in cycles of create, update, update, remove.
    assert_eq!(created, 50);
    assert!(names(&store).is_empty(), "left behind: {:?}", names(&store));
}

#[test]
fn holder_lock_held_while_guard_lives() {
    let (_tmp, store) = store();
    assert!(matches!(
        store.hold(ID),
        Err(OwnershipError::NotFound { .. })
    ));
    assert!(names(&store).is_empty(), "{:?}", names(&store));
    store.create(&claim(ID)).unwrap();
    assert!(!store.is_held(ID).unwrap());

    let guard = store.hold(ID).unwrap();
    assert_eq!(guard.id(), ID);
    assert!(store.is_held(ID).unwrap());
    // Seen from another thread (another open file, as another process would).
    let seen = {
        let store = store.clone();
        std::thread::spawn(move || store.is_held(ID).unwrap())
            .join()
            .unwrap()
    };
    assert!(seen);
    let err = store.hold(ID).unwrap_err();
    assert!(matches!(err, OwnershipError::InUse { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::OwnershipRefused);

    drop(guard);
    assert!(!store.is_held(ID).unwrap());
    let guard = store.hold(ID).unwrap();
    // Removing the claim of a live holder leaves its hold file until the guard goes.
    store.remove(ID, 1).unwrap();
    assert!(store.is_held(ID).unwrap());
    drop(guard);
    assert!(!store.is_held(ID).unwrap());
    assert!(names(&store).is_empty(), "left behind: {:?}", names(&store));
}

/// Set in the child process of [`holder_lock_is_freed_when_the_process_dies`].
const HOLD_CHILD_VAR: &str = "LEASEBOX_TEST_HOLD_CLAIMS_DIR";

#[test]
fn holder_lock_is_freed_when_the_process_dies() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};

    let (_tmp, store) = store();
    store.create(&claim(ID)).unwrap();
    // This test binary again, running only the helper below, which holds the lease.
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "ownership::claim_store::tests::hold_in_child_process",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HOLD_CHILD_VAR, store.dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut held = false;
    for line in stdout.lines() {
        if line.unwrap().trim() == "held" {
            held = true;
            break;
        }
    }
    assert!(held, "child never took the hold");
    assert!(
        store.is_held(ID).unwrap(),
        "hold of a live process not seen"
    );
    assert!(matches!(store.hold(ID), Err(OwnershipError::InUse { .. })));
    // Killed, so no destructor runs: only the kernel releases the lock.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !store.is_held(ID).unwrap(),
        "hold of a dead process still seen"
    );
    drop(store.hold(ID).unwrap());
}

#[test]
#[ignore = "helper: run by holder_lock_is_freed_when_the_process_dies in a child process"]
fn hold_in_child_process() {
    use std::io::{Read, Write};
    let Some(dir) = std::env::var_os(HOLD_CHILD_VAR) else {
        return;
    };
    let _guard = ClaimStore::new(dir).hold(ID).unwrap();
    let mut out = std::io::stdout();
    writeln!(out, "\nheld").unwrap();
    out.flush().unwrap();
    // Until killed (or the parent goes away and stdin closes).
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

#[test]
fn handles_can_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<ClaimStore>();
    send_sync::<ClaimLock>();
    send_sync::<HolderGuard>();
    send_sync::<OwnershipError>();
}

#[test]
fn claims_are_private_files() {
    use std::os::unix::fs::PermissionsExt;
    let (_tmp, store) = store();
    store.create(&claim(ID)).unwrap();
    let mode = fs::metadata(store.claim_path(ID).unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = fs::read_to_string(store.claim_path(ID).unwrap()).unwrap();
    assert!(text.ends_with("}\n"));
    assert!(text.contains("\"revision\": 1"), "{text}");
}
