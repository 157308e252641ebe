//! The store's contract: optimistic concurrency, lists, watch history with expiry, atomic
//! batches, durability across reopen, and every acknowledged write surviving `kill -9`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use svcnet_store::{EventKind, Key, Store, StoreError};

fn key(name: &str) -> Key {
    Key::new("services", "default", name)
}

fn open(dir: &tempfile::TempDir, history: u64) -> Store {
    Store::open(&dir.path().join("store.redb"), history).unwrap()
}

#[test]
fn create_update_delete_with_resource_versions() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir, 100);
    assert_eq!(s.revision().unwrap(), 0);
    let a = s.create(&key("a"), b"v1").unwrap();
    assert_eq!(a.revision, 1);
    assert!(matches!(
        s.create(&key("a"), b"again"),
        Err(StoreError::AlreadyExists(_))
    ));
    let b = s.create(&key("b"), b"v1").unwrap();
    assert_eq!(b.revision, 2);
    // an update against a stale resourceVersion is a conflict and changes nothing
    let err = s.update(&key("a"), b"v2", Some(0)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "services/default/a has been modified: expected resourceVersion 0, found 1"
    );
    let a2 = s.update(&key("a"), b"v2", Some(1)).unwrap();
    assert_eq!(
        (a2.revision, s.get(&key("a")).unwrap().unwrap().value),
        (3, b"v2".to_vec())
    );
    assert!(matches!(s.update(&key("zz"), b"x", None), Err(StoreError::NotFound(_))));
    let gone = s.delete(&key("a"), None).unwrap();
    assert_eq!((gone.revision, gone.value), (4, b"v2".to_vec()));
    assert_eq!(s.get(&key("a")).unwrap(), None);
    assert_eq!(s.revision().unwrap(), 4);
}

#[test]
fn lists_by_resource_and_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir, 100);
    for (ns, n) in [
        ("default", "a"),
        ("default", "b"),
        ("kube-system", "c"),
        ("default2", "d"),
    ] {
        s.create(&Key::new("services", ns, n), n.as_bytes()).unwrap();
    }
    s.create(&Key::new("pods", "default", "p"), b"p").unwrap();
    s.create(&Key::new("nodes", "", "n1"), b"n").unwrap();
    let names = |v: Vec<svcnet_store::Stored>| v.into_iter().map(|s| s.key.name).collect::<Vec<_>>();
    let (all, rev) = s.list("services", None).unwrap();
    assert_eq!(names(all), ["a", "b", "d", "c"]);
    assert_eq!(rev, 6);
    assert_eq!(names(s.list("services", Some("default")).unwrap().0), ["a", "b"]);
    assert_eq!(names(s.list("nodes", Some("")).unwrap().0), ["n1"]);
    assert!(s.list("endpoints", None).unwrap().0.is_empty());
    // pages: in (namespace, name) order, resuming after a position, counting what is left
    let page = |after: Option<(&str, &str)>, limit| {
        let (items, remaining, _) = s.list_page("services", None, after, limit).unwrap();
        (names(items), remaining)
    };
    assert_eq!(page(None, 2), (vec!["a".to_owned(), "b".to_owned()], 2));
    assert_eq!(
        page(Some(("default", "b")), 2),
        (vec!["d".to_owned(), "c".to_owned()], 0)
    );
    assert_eq!(page(Some(("default", "a")), 1), (vec!["b".to_owned()], 2));
    // a resume point that no longer exists still resumes in order
    assert_eq!(
        page(Some(("default", "aa")), 5),
        (vec!["b".to_owned(), "d".to_owned(), "c".to_owned()], 0)
    );
    assert_eq!(page(Some(("kube-system", "c")), 5), (vec![], 0));
    let (in_ns, left, _) = s
        .list_page("services", Some("default"), Some(("default", "a")), 5)
        .unwrap();
    assert_eq!((names(in_ns), left), (vec!["b".to_owned()], 0));
}

#[test]
fn watches_resume_from_history_and_expire_beyond_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir, 5);
    let rx = s.subscribe();
    s.create(&key("a"), b"1").unwrap();
    s.update(&key("a"), b"2", None).unwrap();
    s.create(&Key::new("pods", "default", "p"), b"p").unwrap();
    s.delete(&key("a"), None).unwrap();
    assert_eq!(
        rx.try_iter().collect::<Vec<_>>(),
        [1, 2, 3, 4],
        "a notification per committed write"
    );
    let kinds: Vec<(EventKind, u64)> = s
        .events_since(1, Some("services"))
        .unwrap()
        .into_iter()
        .map(|e| (e.kind, e.object.revision))
        .collect();
    assert_eq!(kinds, [(EventKind::Modified, 2), (EventKind::Deleted, 4)]);
    assert_eq!(s.events_since(4, None).unwrap(), []);
    for i in 0..10 {
        s.create(&key(&format!("x{i}")), b"x").unwrap();
    }
    // only the last 5 changes are kept: older resourceVersions are expired (HTTP 410)
    let err = s.events_since(3, None).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Expired {
                requested: 3,
                oldest_available: 10
            }
        ),
        "{err}"
    );
    assert_eq!(s.events_since(9, None).unwrap().len(), 5);
}

#[test]
fn a_watch_of_one_resource_keeps_up_with_other_resources_writes() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir, 3);
    s.create(&key("a"), b"1").unwrap();
    let mut from = s.changes_since(0, Some("services")).unwrap().revision;
    assert_eq!(from, 1);
    for i in 0..10 {
        s.create(&Key::new("pods", "default", &format!("p{i}")), b"p").unwrap();
        let changes = s.changes_since(from, Some("services")).unwrap();
        assert!(changes.events.is_empty());
        from = changes.revision;
    }
    assert_eq!(from, 11, "the cursor moved past the pods' writes");
    s.update(&key("a"), b"2", None).unwrap();
    let changes = s.changes_since(from, Some("services")).unwrap();
    assert_eq!(changes.events.len(), 1);
    assert_eq!((changes.events[0].kind, changes.revision), (EventKind::Modified, 12));
}

#[test]
fn batches_are_atomic_and_carry_side_data() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir, 100);
    s.create(&key("taken"), b"x").unwrap();
    // a failing step aborts the whole batch: nothing else it did is visible
    let err = s
        .write(|b| {
            b.create(&key("new"), b"n")?;
            b.put_side_data("allocators", b"state-2")?;
            b.create(&key("taken"), b"again")
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists(_)));
    assert_eq!(s.get(&key("new")).unwrap(), None);
    assert_eq!(s.side_data("allocators").unwrap(), None);
    assert_eq!(s.revision().unwrap(), 1);
    let ((), events) = s
        .write(|b| {
            b.create(&key("new"), b"n")?;
            b.put_side_data("allocators", b"state-2")?;
            Ok(())
        })
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(s.side_data("allocators").unwrap().as_deref(), Some(&b"state-2"[..]));
}

#[test]
fn state_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(&dir, 100);
        s.create(&key("a"), b"1").unwrap();
        s.write(|b| b.put_side_data("allocators", b"snap")).unwrap();
    }
    let s = open(&dir, 100);
    assert_eq!(s.get(&key("a")).unwrap().unwrap().revision, 1);
    assert_eq!(s.side_data("allocators").unwrap().as_deref(), Some(&b"snap"[..]));
    assert_eq!(s.create(&key("b"), b"2").unwrap().revision, 2, "revisions continue");
}

/// The writer example, which `cargo test` builds beside the test binaries.
fn crash_writer() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join("crash_writer");
    assert!(
        path.exists(),
        "{} is missing: run through `cargo test`, which builds examples",
        path.display()
    );
    path
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(crash_writer())
        .arg(dir.path().join("store.redb"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acked = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("ack ") {
            let mut parts = rest.split(' ');
            let i: u64 = parts.next().unwrap().parse().unwrap();
            let rev: u64 = parts.next().unwrap().parse().unwrap();
            acked.push((i, rev));
            if acked.len() == 300 {
                // SIGKILL: no destructor, no flush, mid-stream
                child.kill().unwrap();
                break;
            }
        }
    }
    child.wait().unwrap();
    assert_eq!(acked.len(), 300, "the writer acknowledged too few writes");
    let s = open(&dir, 1000);
    for (i, rev) in &acked {
        let got = s
            .get(&key(&format!("s{i}")))
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged write s{i} lost"));
        assert_eq!((got.revision, got.value), (*rev, format!("value-{i}").into_bytes()));
    }
    // whatever was committed after the last acknowledgement is whole, and revisions continue
    let (all, revision) = s.list("services", None).unwrap();
    assert!(
        revision >= 300 && all.len() as u64 == revision,
        "{} objects at revision {revision}",
        all.len()
    );
    assert_eq!(s.create(&key("after"), b"x").unwrap().revision, revision + 1);
}
