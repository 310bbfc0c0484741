//! Embedded backend: one redb file on local disk. Every write is committed durably before it
//! returns, so an acknowledged registration survives a crash or a restart.
//!
//! Reads run inline: a redb read transaction never waits for a writer (copy-on-write pages),
//! and a lookup is a few microseconds from redb's cache, far less than handing it to a blocking
//! thread and back. Writes go to one writer thread, which applies every write waiting at that
//! moment in one transaction and one durable commit (group commit), then answers each: under
//! concurrent load the cost of the fsync is shared instead of paid once per write, one after
//! another. Each write is still acknowledged only after its commit.
//!
//! Why redb: pure Rust (no C build), one file, ACID with copy-on-write pages and checksums so an
//! interrupted write never leaves a torn database, a stable file format, and active upkeep.

use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{Database, ReadOnlyTable, ReadableDatabase, ReadableTable, Table, TableDefinition};
use tokio::sync::oneshot;

use super::StoreError;
use super::kv::{self, Durability, Entry, Kv, Once};

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");

/// Most writes applied in one transaction.
const MAX_BATCH: usize = 512;

/// Memory redb may use to cache pages (reads and writes together). Its default, 1 GiB, lets the
/// process grow with the file; beyond this, reads come from the operating system's page cache,
/// which is nearly as fast and not part of Doorman's resident memory. Pages are allocated by
/// whichever thread reads or writes them (the workers, the writer), and the allocator keeps
/// freed memory per thread, so the resident cost is a few times this.
const CACHE_BYTES: usize = 8 * 1024 * 1024;

#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    writer: Arc<Writer>,
    snapshots: Arc<Snapshots>,
}

type Snapshot = ReadOnlyTable<&'static str, &'static [u8]>;

/// Slots for read snapshots; a thread always uses the same one (see `Snapshots`).
const SNAPSHOT_SLOTS: usize = 16;

/// Read snapshots kept from one read to the next: beginning a read transaction and finding the
/// table in it costs several times the lookup itself. Each worker thread has its slot and
/// keeps using its snapshot until the next commit: the writer thread empties every slot after
/// each commit and before it acknowledges the writes, so a read that starts after a write was
/// acknowledged never sees the state before it, and no snapshot outlives a commit (an old
/// snapshot would keep redb from reusing the pages later commits free).
struct Snapshots {
    slots: [Mutex<Option<Snapshot>>; SNAPSHOT_SLOTS],
}

impl Snapshots {
    fn new() -> Self {
        Self {
            slots: std::array::from_fn(|_| Mutex::new(None)),
        }
    }

    /// The calling thread's slot: threads are numbered in the order they first read.
    fn mine(&self) -> MutexGuard<'_, Option<Snapshot>> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        thread_local! {
            static SLOT: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SNAPSHOT_SLOTS;
        }
        let slot = &self.slots[SLOT.with(|s| *s)];
        // A panic while a slot was held cannot leave a half-made snapshot: take it as it is.
        slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Drops every snapshot; the writer calls this after each commit.
    fn clear(&self) {
        for slot in &self.slots {
            slot.lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take();
        }
    }
}

/// Expired entries removed per write by `purge_expired`, and the pause between two chunks.
const PURGE_CHUNK: usize = 1000;
const PURGE_PAUSE: Duration = Duration::from_millis(100);

/// A write, already encoded.
enum Op {
    Set {
        key: String,
        raw: Vec<u8>,
    },
    /// Several `Set`s in the one job (`Kv::put_many`).
    SetMany {
        entries: Vec<(String, Vec<u8>)>,
    },
    SetNx {
        key: String,
        raw: Vec<u8>,
    },
    Remove {
        key: String,
    },
    TakeOnce {
        key: String,
        owner: String,
        stamp: u64,
        mark_ttl: Duration,
    },
    MapSet {
        key: String,
        field: String,
        value: Vec<u8>,
        ttl: Duration,
    },
    MapRemove {
        key: String,
        field: String,
    },
    /// Removes those of `keys` that are (still) expired.
    Expire {
        keys: Vec<String>,
    },
}

/// What a write returns: nothing, whether it wrote (put_new), the live value it removed, what
/// a single-use record was, or how many expired entries it removed.
enum Done {
    Set,
    Written(bool),
    Removed(Option<Vec<u8>>),
    Once(Once),
    Expired(usize),
}

struct Job {
    op: Op,
    /// Whether the write must be on disk before it is acknowledged (see `Kv::put_volatile`).
    durable: bool,
    reply: oneshot::Sender<Result<Done, StoreError>>,
}

/// A commit of volatile writes only skips the disk; but after this many such commits, or this
/// long, the next commit is made durable anyway, so a crash loses a bounded amount and redb
/// can reuse the pages the volatile commits freed.
const VOLATILE_COMMITS: u32 = 256;
const VOLATILE_FOR: Duration = Duration::from_secs(1);

/// The writer thread and the way to it. Dropping the last handle closes the queue and waits
/// for the thread, so the file is closed (and may be opened again) once the store is gone.
struct Writer {
    queue: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.queue.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("embedded database: {e}"))
}

/// Stored value: 8 bytes of expiry (ms since the epoch, 0 = never), then the payload.
fn encode(value: &[u8], ttl: Option<Duration>) -> Vec<u8> {
    encode_at(value, ttl, now_ms())
}

fn encode_at(value: &[u8], ttl: Option<Duration>, now_ms: u64) -> Vec<u8> {
    let exp = ttl
        .map(|t| now_ms.saturating_add(t.as_millis() as u64))
        .unwrap_or(0);
    let mut out = Vec::with_capacity(8 + value.len());
    out.extend_from_slice(&exp.to_be_bytes());
    out.extend_from_slice(value);
    out
}

fn decode(raw: &[u8], now: u64) -> Option<Vec<u8>> {
    let (exp, payload) = raw.split_at_checked(8)?;
    let exp = u64::from_be_bytes(exp.try_into().ok()?);
    (exp == 0 || exp > now).then(|| payload.to_vec())
}

impl EmbeddedStore {
    /// Opens (or creates) the database file, creating its directory, and starts the writer
    /// thread. Expired entries are not purged here: that takes time in proportion to the file,
    /// and reads ignore expired entries anyway; the server purges in the background instead.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Backend(format!("cannot create directory {}: {e}", dir.display()))
            })?;
        }
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Backend(format!(
                    "the database {} is already open in another process",
                    path.display()
                )),
                other => StoreError::Backend(format!("cannot open {}: {other}", path.display())),
            })?;
        let db = Arc::new(db);
        create_table(&db)?;
        let snapshots = Arc::new(Snapshots::new());
        let (queue, jobs) = mpsc::channel();
        let thread = {
            let db = db.clone();
            let snapshots = snapshots.clone();
            std::thread::Builder::new()
                .name("doorman-embedded-writer".into())
                .spawn(move || write_loop(&db, &jobs, &snapshots))
                .map_err(|e| StoreError::Backend(format!("cannot start the writer thread: {e}")))?
        };
        let writer = Writer {
            queue: Some(queue),
            thread: Some(thread),
        };
        Ok(Self {
            db,
            writer: Arc::new(writer),
            snapshots,
        })
    }

    /// Removes expired entries; the server calls this now and then. A few at a time: finding
    /// them reads a snapshot (which no writer waits for), and each chunk is one more write for
    /// the writer thread, so requests' writes never queue behind a purge of the whole file. The
    /// chunks are paced, so that a large backlog (after a restart) is worked off in the
    /// background instead of taking the CPU from requests.
    pub async fn purge_expired(&self) -> Result<usize, StoreError> {
        let mut removed = 0;
        let mut after: Option<String> = None;
        loop {
            let db = self.db.clone();
            let from = after.take();
            let (keys, next) =
                run_blocking(move || expired_keys(&db, from.as_deref(), PURGE_CHUNK)).await?;
            if !keys.is_empty()
                && let Done::Expired(n) = self.write(Op::Expire { keys }).await?
            {
                removed += n;
            }
            match next {
                Some(key) => after = Some(key),
                None => return Ok(removed),
            }
            tokio::time::sleep(PURGE_PAUSE).await;
        }
    }

    /// Hands a write to the writer thread and waits for its commit.
    async fn write(&self, op: Op) -> Result<Done, StoreError> {
        self.write_as(op, true).await
    }

    /// Hands a write to the writer thread and waits for its commit, durable or not.
    async fn write_as(&self, op: Op, durable: bool) -> Result<Done, StoreError> {
        let (reply, done) = oneshot::channel();
        let sent = self
            .writer
            .queue
            .as_ref()
            .map(|q| q.send(Job { op, durable, reply }));
        if !matches!(sent, Some(Ok(()))) {
            return Err(StoreError::Backend(
                "embedded database: the writer has stopped".into(),
            ));
        }
        done.await
            .map_err(|_| StoreError::Backend("embedded database: the writer has stopped".into()))?
    }
}

impl Kv for EmbeddedStore {
    /// Reads in the calling thread without awaiting anything: a read snapshot never waits for
    /// the writer. The thread's snapshot is used when there is one (see `Snapshots`).
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut slot = self.snapshots.mine();
        let table = match &mut *slot {
            Some(table) => table,
            None => {
                let txn = self.db.begin_read().map_err(backend)?;
                slot.insert(txn.open_table(KV).map_err(backend)?)
            }
        };
        Ok(table
            .get(key)
            .map_err(backend)?
            .and_then(|v| decode(v.value(), now_ms())))
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        let op = Op::Set {
            key: key.to_owned(),
            raw: encode(value, ttl),
        };
        self.write(op).await.map(|_| ())
    }

    /// One job, so one transaction and one durable commit for every entry.
    async fn put_many(&self, entries: &[Entry<'_>]) -> Result<(), StoreError> {
        let op = Op::SetMany {
            entries: entries
                .iter()
                .map(|e| (e.key.to_owned(), encode(e.value, e.ttl)))
                .collect(),
        };
        self.write(op).await.map(|_| ())
    }

    async fn put_volatile(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let op = Op::Set {
            key: key.to_owned(),
            raw: encode(value, ttl),
        };
        self.write_as(op, false).await.map(|_| ())
    }

    async fn put_new(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let op = Op::SetNx {
            key: key.to_owned(),
            raw: encode(value, ttl),
        };
        Ok(matches!(self.write(op).await?, Done::Written(true)))
    }

    async fn remove(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self
            .write(Op::Remove {
                key: key.to_owned(),
            })
            .await?
        {
            Done::Removed(old) => Ok(old),
            _ => Ok(None),
        }
    }

    async fn take_once(
        &self,
        key: &str,
        owner: &str,
        stamp: u64,
        mark_ttl: Duration,
        durability: Durability,
    ) -> Result<Once, StoreError> {
        let op = Op::TakeOnce {
            key: key.to_owned(),
            owner: owner.to_owned(),
            stamp,
            mark_ttl,
        };
        match self.write_as(op, durability == Durability::Durable).await? {
            Done::Once(once) => Ok(once),
            _ => Ok(Once::Missing),
        }
    }

    async fn map_set(
        &self,
        key: &str,
        field: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let op = Op::MapSet {
            key: key.to_owned(),
            field: field.to_owned(),
            value: value.to_vec(),
            ttl,
        };
        self.write(op).await.map(|_| ())
    }

    async fn map_get(&self, key: &str, field: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.get(key).await?.and_then(|v| kv::map_field(&v, field)))
    }

    async fn map_all(&self, key: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        Ok(self
            .get(key)
            .await?
            .map(|v| kv::decode_map(&v).into_iter().collect())
            .unwrap_or_default())
    }

    async fn map_remove(&self, key: &str, field: &str) -> Result<bool, StoreError> {
        let op = Op::MapRemove {
            key: key.to_owned(),
            field: field.to_owned(),
        };
        Ok(matches!(self.write(op).await?, Done::Written(true)))
    }

    async fn scan(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let db = self.db.clone();
        let prefix = prefix.to_owned();
        run_blocking(move || {
            let txn = db.begin_read().map_err(backend)?;
            let table = txn.open_table(KV).map_err(backend)?;
            let now = now_ms();
            let mut out = Vec::new();
            for entry in table.range(prefix.as_str()..).map_err(backend)? {
                let (k, v) = entry.map_err(backend)?;
                if !k.value().starts_with(prefix.as_str()) {
                    break;
                }
                if decode(v.value(), now).is_some() {
                    out.push(k.value().to_owned());
                }
            }
            Ok(out)
        })
        .await
    }

    async fn reach(&self) -> Result<(), StoreError> {
        self.db.begin_read().map(|_| ()).map_err(backend)
    }
}

/// Creates the table on a new file, so that reads find it.
fn create_table(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(backend)?;
    txn.open_table(KV).map_err(backend)?;
    txn.commit().map_err(backend)
}

/// Up to `limit` expired keys after `after` (from the start when `None`), looking at no more
/// than a bounded number of entries; with the key to continue after, or `None` at the end.
fn expired_keys(
    db: &Database,
    after: Option<&str>,
    limit: usize,
) -> Result<(Vec<String>, Option<String>), StoreError> {
    let txn = db.begin_read().map_err(backend)?;
    let table = txn.open_table(KV).map_err(backend)?;
    let now = now_ms();
    let start = after.map_or(Bound::Unbounded, Bound::Excluded);
    let mut expired = Vec::new();
    let mut seen = 0;
    for entry in table
        .range::<&str>((start, Bound::Unbounded))
        .map_err(backend)?
    {
        let (k, v) = entry.map_err(backend)?;
        if decode(v.value(), now).is_none() {
            expired.push(k.value().to_owned());
        }
        seen += 1;
        if expired.len() >= limit || seen >= 20 * limit {
            return Ok((expired, Some(k.value().to_owned())));
        }
    }
    Ok((expired, None))
}

/// The writer thread: waits for a write, takes every other one already queued (up to
/// `MAX_BATCH`), applies them in order in one transaction, commits once, answers each. Ends when
/// the store is dropped.
fn write_loop(db: &Database, jobs: &mpsc::Receiver<Job>, snapshots: &Snapshots) {
    let mut volatile_commits = 0u32;
    let mut last_durable = std::time::Instant::now();
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let durable = batch.iter().any(|j| j.durable)
            || volatile_commits >= VOLATILE_COMMITS
            || last_durable.elapsed() >= VOLATILE_FOR;
        let results: Vec<Result<Done, StoreError>> =
            match commit(db, batch.iter().map(|j| &j.op), durable) {
                Ok(results) => results.into_iter().map(Ok).collect(),
                // Nothing of a failed transaction was written. Alone, each write fails or
                // succeeds on its own, so one bad write cannot fail the others.
                Err(_) if batch.len() > 1 => batch
                    .iter()
                    .map(|job| {
                        commit(db, std::iter::once(&job.op), durable)
                            .map(|mut r| r.pop().unwrap_or(Done::Set))
                    })
                    .collect(),
                Err(e) => batch.iter().map(|_| Err(backend(&e))).collect(),
            };
        if durable {
            volatile_commits = 0;
            last_durable = std::time::Instant::now();
        } else {
            volatile_commits += 1;
        }
        // Before anyone hears of these writes, no reader may keep a snapshot from before them.
        snapshots.clear();
        for (job, result) in batch.into_iter().zip(results) {
            let _ = job.reply.send(result);
        }
    }
}

/// Applies `ops` in one write transaction and commits it: durably (on disk before it returns),
/// or not (visible at once, on disk with the next durable commit).
fn commit<'a>(
    db: &Database,
    ops: impl Iterator<Item = &'a Op>,
    durable: bool,
) -> Result<Vec<Done>, StoreError> {
    let mut txn = db.begin_write().map_err(backend)?;
    if !durable {
        txn.set_durability(redb::Durability::None)
            .map_err(backend)?;
    }
    let mut results = Vec::new();
    {
        let mut table = txn.open_table(KV).map_err(backend)?;
        let now = now_ms();
        for op in ops {
            results.push(apply(&mut table, op, now).map_err(backend)?);
        }
    }
    txn.commit().map_err(backend)?;
    Ok(results)
}

fn apply(table: &mut Table<&str, &[u8]>, op: &Op, now: u64) -> Result<Done, redb::StorageError> {
    Ok(match op {
        Op::Set { key, raw } => {
            table.insert(key.as_str(), raw.as_slice())?;
            Done::Set
        }
        Op::SetMany { entries } => {
            for (key, raw) in entries {
                table.insert(key.as_str(), raw.as_slice())?;
            }
            Done::Set
        }
        Op::SetNx { key, raw } => {
            let live = table
                .get(key.as_str())?
                .is_some_and(|v| decode(v.value(), now).is_some());
            if !live {
                table.insert(key.as_str(), raw.as_slice())?;
            }
            Done::Written(!live)
        }
        Op::Remove { key } => {
            let old = table.remove(key.as_str())?;
            Done::Removed(old.and_then(|v| decode(v.value(), now)))
        }
        Op::TakeOnce {
            key,
            owner,
            stamp,
            mark_ttl,
        } => {
            let current = table
                .get(key.as_str())?
                .and_then(|v| decode(v.value(), now));
            let (mark, once) = kv::decide_once(current, owner, *stamp);
            if let Some(mark) = mark {
                table.insert(
                    key.as_str(),
                    encode_at(&mark, Some(*mark_ttl), now).as_slice(),
                )?;
            }
            Done::Once(once)
        }
        Op::MapSet {
            key,
            field,
            value,
            ttl,
        } => {
            let current = table
                .get(key.as_str())?
                .and_then(|v| decode(v.value(), now))
                .unwrap_or_default();
            let (fields, _) = kv::map_with(&current, field, Some(value));
            let raw = encode_at(&fields, Some(*ttl), now);
            table.insert(key.as_str(), raw.as_slice())?;
            Done::Set
        }
        Op::MapRemove { key, field } => {
            let current = table.get(key.as_str())?.and_then(|v| {
                let raw = v.value();
                let exp = raw.get(..8).map(|e| e.to_vec());
                decode(raw, now).map(|payload| (exp, payload))
            });
            let Some((Some(exp), payload)) = current else {
                return Ok(Done::Written(false));
            };
            let (fields, removed) = kv::map_with(&payload, field, None);
            if removed {
                let mut raw = exp;
                raw.extend_from_slice(&fields);
                table.insert(key.as_str(), raw.as_slice())?;
            }
            Done::Written(removed)
        }
        Op::Expire { keys } => {
            let mut removed = 0;
            for key in keys {
                let expired = table
                    .get(key.as_str())?
                    .is_some_and(|v| decode(v.value(), now).is_none());
                if expired {
                    table.remove(key.as_str())?;
                    removed += 1;
                }
            }
            Done::Expired(removed)
        }
    })
}

async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    actix_web::rt::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Backend(format!("embedded database task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kept snapshot never hides an acknowledged write, on the thread that wrote or on
    /// another: every read after each write's acknowledgement sees it.
    #[actix_web::test]
    async fn reads_after_an_acknowledged_write_see_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = EmbeddedStore::open(&dir.path().join("db.redb")).expect("opens");
        assert_eq!(store.get("k").await.expect("get"), None);
        for i in 0..50u32 {
            let value = i.to_be_bytes();
            store.put("k", &value, None).await.expect("set");
            assert_eq!(store.get("k").await.expect("get"), Some(value.to_vec()));
            let other = store.clone();
            let seen = std::thread::spawn(move || {
                actix_web::rt::System::new().block_on(async move { other.get("k").await })
            })
            .join()
            .expect("reader thread");
            assert_eq!(seen.expect("get"), Some(value.to_vec()));
        }
        assert_eq!(
            store.remove("k").await.expect("remove"),
            Some(49u32.to_be_bytes().to_vec())
        );
        assert_eq!(store.get("k").await.expect("get"), None);
        assert!(store.put_new("k", b"n", None).await.expect("put_new"));
        assert_eq!(store.get("k").await.expect("get"), Some(b"n".to_vec()));
    }

    #[actix_web::test]
    async fn purging_removes_expired_entries_chunk_by_chunk_and_keeps_live_ones() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = EmbeddedStore::open(&dir.path().join("db.redb")).expect("opens");
        let expired = 2 * PURGE_CHUNK + 7;
        // Written concurrently, so that they share a few commits.
        let writes = (0..expired).map(|i| {
            let store = store.clone();
            async move {
                let key = format!("old:{i:05}");
                store.put(&key, b"x", Some(Duration::ZERO)).await
            }
        });
        for written in futures_util::future::join_all(writes).await {
            written.expect("set");
        }
        store.put("live:forever", b"1", None).await.expect("set");
        store
            .put("live:later", b"2", Some(Duration::from_secs(60)))
            .await
            .expect("set");

        let removed = store.purge_expired().await.expect("purges");

        assert_eq!(removed, expired);
        assert_eq!(store.scan("").await.expect("keys").len(), 2);
        assert_eq!(
            store.get("live:later").await.expect("get"),
            Some(b"2".to_vec())
        );
        assert_eq!(store.purge_expired().await.expect("purges"), 0);
    }

    #[actix_web::test]
    async fn concurrent_writes_share_commits_and_stay_atomic() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = EmbeddedStore::open(&dir.path().join("db.redb")).expect("opens");
        store.put("code", b"once", None).await.expect("set");

        let set_nx = futures_util::future::join_all((0..64).map(|i| {
            let store = store.clone();
            async move { store.put_new("nx", format!("{i}").as_bytes(), None).await }
        }));
        let takes = futures_util::future::join_all((0..64).map(|_| {
            let store = store.clone();
            async move { store.remove("code").await }
        }));
        let (set_nx, takes) = futures_util::future::join(set_nx, takes).await;

        let written = set_nx.into_iter().filter(|r| matches!(r, Ok(true))).count();
        let taken = takes
            .into_iter()
            .filter(|r| matches!(r, Ok(Some(_))))
            .count();
        assert_eq!((written, taken), (1, 1));
    }

    /// Volatile writes skip the disk, but the next durable commit takes them along: after it,
    /// both survive closing and reopening the file.
    #[actix_web::test]
    async fn a_durable_commit_persists_the_volatile_writes_before_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("db.redb");
        let store = EmbeddedStore::open(&path).expect("opens");
        store
            .put_volatile("pending", b"p", None)
            .await
            .expect("put");
        assert_eq!(
            store.get("pending").await.expect("get"),
            Some(b"p".to_vec())
        );
        store.put("client", b"c", None).await.expect("put");
        drop(store);

        let again = EmbeddedStore::open(&path).expect("opens again");

        assert_eq!(
            again.get("pending").await.expect("get"),
            Some(b"p".to_vec())
        );
        assert_eq!(again.get("client").await.expect("get"), Some(b"c".to_vec()));
    }

    #[actix_web::test]
    async fn the_file_can_be_opened_again_once_the_store_is_dropped() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("db.redb");
        let store = EmbeddedStore::open(&path).expect("opens");
        store.put("k", b"v", None).await.expect("set");
        let clone = store.clone();
        drop(store);
        drop(clone);

        let again = EmbeddedStore::open(&path).expect("opens again");

        assert_eq!(again.get("k").await.expect("get"), Some(b"v".to_vec()));
    }
}
