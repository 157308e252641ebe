//! The API server's embedded store: objects by (resource, namespace, name) with a global
//! revision (the `resourceVersion` clients see), optimistic concurrency, and a bounded
//! history of changes from which watches resume. Built on redb: every write transaction is
//! committed durably before it is acknowledged, so an acknowledged write survives `kill -9`.
//!
//! Values are opaque bytes (the API server stores JSON). A [`WriteBatch`] applies any number
//! of changes atomically, each getting the next revision; named side data (such as allocator
//! state) can be written in the same transaction as the objects it belongs to.

#![forbid(unsafe_code)]

use std::path::Path;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, Sender, channel};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use thiserror::Error;

const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
const HISTORY: TableDefinition<u64, &[u8]> = TableDefinition::new("history");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const REVISION: &str = "revision";
/// History entries at or below this revision have been dropped.
const COMPACTED: &str = "compacted";
const SIDE_DATA_PREFIX: &str = "data/";

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{0} already exists")]
    AlreadyExists(Key),
    #[error("{0} not found")]
    NotFound(Key),
    #[error("{key} has been modified: expected resourceVersion {expected}, found {found}")]
    Conflict { key: Key, expected: u64, found: u64 },
    /// The requested revision is older than the history kept.
    #[error("too old resource version: {requested} ({oldest_available})")]
    Expired { requested: u64, oldest_available: u64 },
    #[error("store: {0}")]
    Storage(String),
    #[error("corrupt store record: {0}")]
    Corrupt(String),
}

impl<E: Into<redb::Error>> From<E> for StoreError {
    fn from(e: E) -> Self {
        StoreError::Storage(e.into().to_string())
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Where an object lives. Cluster-scoped objects have an empty namespace.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub resource: String,
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn new(resource: &str, namespace: &str, name: &str) -> Self {
        Key {
            resource: resource.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    fn encode(&self) -> String {
        format!("{}\0{}\0{}", self.resource, self.namespace, self.name)
    }

    fn decode(s: &str) -> Result<Self> {
        let mut parts = s.split('\0');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(r), Some(ns), Some(n), None) => Ok(Key::new(r, ns, n)),
            _ => Err(StoreError::Corrupt(format!("key {s:?}"))),
        }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}/{}", self.resource, self.name)
        } else {
            write!(f, "{}/{}/{}", self.resource, self.namespace, self.name)
        }
    }
}

/// An object as stored, with the revision of its last change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    pub key: Key,
    pub revision: u64,
    pub value: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Added,
    Modified,
    Deleted,
}

/// The changes after a revision, and the store revision they were read at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Changes {
    pub events: Vec<Event>,
    pub revision: u64,
}

/// One change, as watches see it. For `Deleted`, `object` is the last stored state and
/// `object.revision` the revision of the deletion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub object: Stored,
}

fn pack_object(revision: u64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + value.len());
    out.extend_from_slice(&revision.to_be_bytes());
    out.extend_from_slice(value);
    out
}

fn unpack_object(key: Key, bytes: &[u8]) -> Result<Stored> {
    let (rev, value) = bytes
        .split_first_chunk::<8>()
        .ok_or_else(|| StoreError::Corrupt(format!("object {key}")))?;
    Ok(Stored {
        key,
        revision: u64::from_be_bytes(*rev),
        value: value.to_vec(),
    })
}

fn pack_event(kind: EventKind, key: &Key, value: &[u8]) -> Vec<u8> {
    let k = key.encode();
    let mut out = Vec::with_capacity(5 + k.len() + value.len());
    out.push(match kind {
        EventKind::Added => 0,
        EventKind::Modified => 1,
        EventKind::Deleted => 2,
    });
    out.extend_from_slice(&(k.len() as u32).to_be_bytes());
    out.extend_from_slice(k.as_bytes());
    out.extend_from_slice(value);
    out
}

fn unpack_event(revision: u64, bytes: &[u8]) -> Result<Event> {
    let corrupt = || StoreError::Corrupt(format!("history entry {revision}"));
    let (&kind, rest) = bytes.split_first().ok_or_else(corrupt)?;
    let (len, rest) = rest.split_first_chunk::<4>().ok_or_else(corrupt)?;
    let len = u32::from_be_bytes(*len) as usize;
    let key_bytes = rest.get(..len).ok_or_else(corrupt)?;
    let key = Key::decode(std::str::from_utf8(key_bytes).map_err(|_| corrupt())?)?;
    let kind = match kind {
        0 => EventKind::Added,
        1 => EventKind::Modified,
        2 => EventKind::Deleted,
        _ => return Err(corrupt()),
    };
    Ok(Event {
        kind,
        object: Stored {
            key,
            revision,
            value: rest[len..].to_vec(),
        },
    })
}

fn read_u64(bytes: Option<redb::AccessGuard<'_, &[u8]>>) -> u64 {
    bytes
        .and_then(|g| g.value().try_into().ok().map(u64::from_be_bytes))
        .unwrap_or(0)
}

/// Creates the store file readable by its owner only (mode 0600) if it does not exist yet, so
/// redb initialises a file no other user could ever open. An existing file is tightened.
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        }
        Err(e) => Err(e),
    }
}

pub struct Store {
    db: Database,
    history_limit: u64,
    watchers: Mutex<Vec<Sender<u64>>>,
}

/// redb's page cache.
const CACHE_BYTES: usize = 32 * 1024 * 1024;

impl Store {
    /// Opens (or creates) the store file. `history_limit` is how many changes watches can
    /// resume from.
    pub fn open(path: &Path, history_limit: u64) -> Result<Self> {
        create_private(path)?;
        // redb caches up to 1 GiB of pages by default; the operating system's page cache
        // already holds the file, so a small cache keeps the server's memory in proportion
        let db = redb::Builder::new().set_cache_size(CACHE_BYTES).create(path)?;
        let txn = db.begin_write()?;
        {
            txn.open_table(OBJECTS)?;
            txn.open_table(HISTORY)?;
            txn.open_table(META)?;
        }
        txn.commit()?;
        Ok(Store {
            db,
            history_limit: history_limit.max(1),
            watchers: Mutex::new(Vec::new()),
        })
    }

    /// The revision of the latest change (0 for an empty store).
    pub fn revision(&self) -> Result<u64> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        Ok(read_u64(meta.get(REVISION)?))
    }

    pub fn get(&self, key: &Key) -> Result<Option<Stored>> {
        let txn = self.db.begin_read()?;
        let objects = txn.open_table(OBJECTS)?;
        match objects.get(key.encode().as_str())? {
            Some(v) => Ok(Some(unpack_object(key.clone(), v.value())?)),
            None => Ok(None),
        }
    }

    /// Every object of a resource (in one namespace, or all), ordered by namespace and name,
    /// and the revision the list is consistent with.
    pub fn list(&self, resource: &str, namespace: Option<&str>) -> Result<(Vec<Stored>, u64)> {
        let (items, _, revision) = self.list_page(resource, namespace, None, usize::MAX)?;
        Ok((items, revision))
    }

    /// One page of [`list`](Self::list): at most `limit` objects after `after` (namespace,
    /// name), how many more there are, and the revision. Reads only the page's values.
    pub fn list_page(
        &self,
        resource: &str,
        namespace: Option<&str>,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<(Vec<Stored>, usize, u64)> {
        let txn = self.db.begin_read()?;
        let objects = txn.open_table(OBJECTS)?;
        let meta = txn.open_table(META)?;
        let prefix = match namespace {
            Some(ns) => format!("{resource}\0{ns}\0"),
            None => format!("{resource}\0"),
        };
        let end = format!("{}\u{1}", prefix.trim_end_matches('\0'));
        let start = match after {
            // the smallest key after the resume point: its key followed by a NUL byte
            Some((ns, name)) => format!("{}\0", Key::new(resource, ns, name).encode()),
            None => prefix.clone(),
        };
        let (mut page, mut remaining) = (Vec::new(), 0usize);
        if start.as_str() < end.as_str() {
            for entry in objects.range(start.as_str()..end.as_str())? {
                let (k, v) = entry?;
                if page.len() < limit {
                    let key = Key::decode(k.value())?;
                    if namespace.is_none_or(|ns| key.namespace == ns) {
                        page.push(unpack_object(key, v.value())?);
                    }
                } else {
                    remaining += 1;
                }
            }
        }
        Ok((page, remaining, read_u64(meta.get(REVISION)?)))
    }

    /// Named side data (e.g. allocator state), as last written.
    pub fn side_data(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        Ok(meta
            .get(format!("{SIDE_DATA_PREFIX}{name}").as_str())?
            .map(|g| g.value().to_vec()))
    }

    /// Changes after `revision` (for `resource`, or all), oldest first; `Expired` when the
    /// history no longer reaches back that far.
    pub fn events_since(&self, revision: u64, resource: Option<&str>) -> Result<Vec<Event>> {
        Ok(self.changes_since(revision, resource)?.events)
    }

    /// Like `events_since`, plus the store revision the events were read at, so a watch of
    /// one resource can move past other resources' writes instead of falling behind the
    /// history and rescanning it.
    pub fn changes_since(&self, revision: u64, resource: Option<&str>) -> Result<Changes> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        let current = read_u64(meta.get(REVISION)?);
        let compacted = read_u64(meta.get(COMPACTED)?);
        if revision < compacted {
            return Err(StoreError::Expired {
                requested: revision,
                oldest_available: compacted + 1,
            });
        }
        let history = txn.open_table(HISTORY)?;
        let mut out = Vec::new();
        for entry in history.range(revision + 1..)? {
            let (rev, bytes) = entry?;
            let event = unpack_event(rev.value(), bytes.value())?;
            if resource.is_none_or(|r| event.object.key.resource == r) {
                out.push(event);
            }
        }
        Ok(Changes {
            events: out,
            revision: current.max(revision),
        })
    }

    /// A channel that receives the new revision after each committed write.
    pub fn subscribe(&self) -> Receiver<u64> {
        let (tx, rx) = channel();
        self.watchers.lock().expect("watchers lock").push(tx);
        rx
    }

    /// Applies `f`'s changes in one durable transaction: all of them or none. The closure's
    /// error aborts the transaction.
    pub fn write<T>(&self, f: impl FnOnce(&mut WriteBatch<'_>) -> Result<T>) -> Result<(T, Vec<Event>)> {
        let txn = self.db.begin_write()?;
        let (value, events, revision) = {
            let mut batch = WriteBatch {
                objects: txn.open_table(OBJECTS)?,
                history: txn.open_table(HISTORY)?,
                meta: txn.open_table(META)?,
                revision: 0,
                events: Vec::new(),
            };
            batch.revision = read_u64(batch.meta.get(REVISION)?);
            let value = f(&mut batch)?;
            batch.compact(self.history_limit)?;
            let rev = batch.revision;
            batch.meta.insert(REVISION, rev.to_be_bytes().as_slice())?;
            (value, batch.events, rev)
        };
        txn.commit()?;
        if !events.is_empty() {
            self.watchers
                .lock()
                .expect("watchers lock")
                .retain(|w| w.send(revision).is_ok());
        }
        Ok((value, events))
    }

    pub fn create(&self, key: &Key, value: &[u8]) -> Result<Stored> {
        self.write(|b| b.create(key, value)).map(|(s, _)| s)
    }

    pub fn update(&self, key: &Key, value: &[u8], expected: Option<u64>) -> Result<Stored> {
        self.write(|b| b.update(key, value, expected)).map(|(s, _)| s)
    }

    pub fn delete(&self, key: &Key, expected: Option<u64>) -> Result<Stored> {
        self.write(|b| b.delete(key, expected)).map(|(s, _)| s)
    }
}

/// Changes being made in one transaction.
pub struct WriteBatch<'txn> {
    objects: redb::Table<'txn, &'static str, &'static [u8]>,
    history: redb::Table<'txn, u64, &'static [u8]>,
    meta: redb::Table<'txn, &'static str, &'static [u8]>,
    revision: u64,
    events: Vec<Event>,
}

impl WriteBatch<'_> {
    pub fn get(&self, key: &Key) -> Result<Option<Stored>> {
        match self.objects.get(key.encode().as_str())? {
            Some(v) => Ok(Some(unpack_object(key.clone(), v.value())?)),
            None => Ok(None),
        }
    }

    fn record(&mut self, kind: EventKind, key: &Key, value: &[u8]) -> Result<Stored> {
        self.revision += 1;
        let rev = self.revision;
        if kind == EventKind::Deleted {
            self.objects.remove(key.encode().as_str())?;
        } else {
            self.objects
                .insert(key.encode().as_str(), pack_object(rev, value).as_slice())?;
        }
        self.history.insert(rev, pack_event(kind, key, value).as_slice())?;
        let stored = Stored {
            key: key.clone(),
            revision: rev,
            value: value.to_vec(),
        };
        self.events.push(Event {
            kind,
            object: stored.clone(),
        });
        Ok(stored)
    }

    /// Stores a new object; `AlreadyExists` if the key is taken.
    pub fn create(&mut self, key: &Key, value: &[u8]) -> Result<Stored> {
        if self.get(key)?.is_some() {
            return Err(StoreError::AlreadyExists(key.clone()));
        }
        self.record(EventKind::Added, key, value)
    }

    /// Replaces an object; with `expected`, only if its revision is still that one.
    pub fn update(&mut self, key: &Key, value: &[u8], expected: Option<u64>) -> Result<Stored> {
        let current = self.get(key)?.ok_or_else(|| StoreError::NotFound(key.clone()))?;
        check(key, &current, expected)?;
        self.record(EventKind::Modified, key, value)
    }

    /// Removes an object, returning its last state; with `expected`, only if unchanged.
    pub fn delete(&mut self, key: &Key, expected: Option<u64>) -> Result<Stored> {
        let current = self.get(key)?.ok_or_else(|| StoreError::NotFound(key.clone()))?;
        check(key, &current, expected)?;
        self.record(EventKind::Deleted, key, &current.value)
    }

    /// Writes named side data in the same transaction.
    pub fn put_side_data(&mut self, name: &str, value: &[u8]) -> Result<()> {
        self.meta.insert(format!("{SIDE_DATA_PREFIX}{name}").as_str(), value)?;
        Ok(())
    }

    /// The revision the next change will get, minus one.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    fn compact(&mut self, limit: u64) -> Result<()> {
        let len = self.history.len()?;
        if len <= limit {
            return Ok(());
        }
        let mut compacted = read_u64(self.meta.get(COMPACTED)?);
        for _ in 0..(len - limit) {
            match self.history.pop_first()? {
                Some((rev, _)) => compacted = rev.value(),
                None => break,
            }
        }
        self.meta.insert(COMPACTED, compacted.to_be_bytes().as_slice())?;
        Ok(())
    }
}

fn check(key: &Key, current: &Stored, expected: Option<u64>) -> Result<()> {
    match expected {
        Some(e) if e != current.revision => Err(StoreError::Conflict {
            key: key.clone(),
            expected: e,
            found: current.revision,
        }),
        _ => Ok(()),
    }
}
