//! The PostgreSQL backend: every tree in one table `kv(tree, k, v)`, keyed by `(tree, k)`.
//!
//! `bytea` compares bytewise, as sled orders keys, so a prefix or range scan is a walk of the
//! primary key, read in pages (keyset: `k > $last ORDER BY k LIMIT n`), never a whole-table fetch;
//! every query the store makes is a primary-key lookup or range of `kv` or `counts`. Values are
//! stored as they are (JSON bytes). Tree numbers are given out by name in the table `trees`, so
//! that declaring a new [`TreeId`] never renumbers stored rows.
//!
//! A commit is one SQL transaction; the rows it replaces in counted trees are read `FOR UPDATE`
//! first, and the count deltas go into the table `counts` in the same transaction. The schema is
//! versioned ([`MIGRATIONS`]): opening applies the missing migrations in one transaction under an
//! advisory lock (two daemons starting together), and refuses a database whose schema is newer
//! than this binary knows.
//!
//! The store's API is synchronous and is called on runtime worker threads, on blocking threads and
//! outside any runtime (the CLI). The backend owns a small multi-thread runtime of its own: the
//! pool's connections (their tasks) live on it, each call runs there, and the caller waits for the
//! answer — inside `block_in_place` on a worker of a multi-thread runtime, so that the worker's
//! other tasks move on. A connection created on whichever runtime happened to call first would
//! stall whenever that runtime is not being driven (a CLI's private runtime, a test's), which is
//! why the calls do not run on the caller's runtime. A point read costs one round trip (loopback:
//! some tens of microseconds) plus a thread hop.

use super::{Entry, Ops, Scan, Value};
use crate::store::scan::{CountDelta, counted};
use crate::store::{PostgresOptions, StoreError, StoreResult, TreeId};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::types::ToSql;

/// The schema, one migration per version, applied in order. Never edit one that has shipped: add
/// the next.
pub(in crate::store) const MIGRATIONS: &[(i32, &str)] = &[(
    1,
    "CREATE TABLE trees (id smallint PRIMARY KEY, name text NOT NULL UNIQUE);
     CREATE TABLE kv (tree smallint NOT NULL, k bytea NOT NULL, v bytea NOT NULL, PRIMARY KEY (tree, k));
     CREATE TABLE counts (name text PRIMARY KEY, n bigint NOT NULL DEFAULT 0);
     INSERT INTO counts (name) VALUES ('listed_users'), ('groups'), ('trashed_groups'), ('collections'), ('links'), ('keys');
     CREATE SEQUENCE hearth_ids MINVALUE 0 START 0;",
)];

/// The session-level advisory lock that makes one daemon's writer lock the cluster's: replicas on
/// one database take it around the same writes ("hearth_w" in ASCII).
const WRITER_LOCK: i64 = 0x6865_6172_7468_5f77;

/// The longest a writer waits for another replica's writer lock before its write fails (a big
/// merge holds it throughout).
pub(in crate::store) const WRITER_LOCK_WAIT: Duration = Duration::from_secs(120);

/// The advisory lock that serializes migrations of one database ("hearth" in ASCII).
const MIGRATION_LOCK: i64 = 0x6865_6172_7468;

/// The tree number of the benchmarks' scratch rows (no [`TreeId`] has it).
const BASELINE_TREE: i16 = -1;

/// Rows in the first page of a scan (list pages are small), and the most in any later one.
const PAGE_FIRST: i64 = 128;
const PAGE_MAX: i64 = 2048;

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("postgres: {e}"))
}

/// An error and its causes, `: `-separated (the driver's own message names only the step that failed).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut at = e.source();
    while let Some(cause) = at {
        let c = cause.to_string();
        if !out.ends_with(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
        at = cause.source();
    }
    out
}

/// A pool error (a connection that could not be made, a wait that timed out), with its causes.
fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    err(chain(&e))
}

fn db_err(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(d) => StoreError::Backend(format!("postgres: {}: {}", d.severity(), d.message())),
        None => err(chain(&e)),
    }
}

/// A pool of connections to one database, and the runtime they live on.
pub(in crate::store) struct PgKv {
    pool: Pool,
    /// One connection of its own for the cluster's writer lock ([`PgKv::lock_writer`]), so that a
    /// writer holding it never waits for a connection of `pool` that another writer holds.
    lock_pool: Pool,
    /// Tree number of each [`TreeId`], by its declaration index.
    ids: Vec<i16>,
    rt: Option<tokio::runtime::Runtime>,
    /// Rows in a scan's first page and the most in a page (tests make them small).
    pages: (i64, i64),
}

impl Drop for PgKv {
    fn drop(&mut self) {
        // Dropping a runtime blocks; the last store handle may go inside an async context.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// A PostgreSQL connection URL parsed, or a message saying why not (with no password in it).
pub fn parse_url(url: &str) -> Result<tokio_postgres::Config, String> {
    url.parse::<tokio_postgres::Config>().map_err(|e| format!("not a PostgreSQL connection URL: {}", chain(&e)))
}

fn tls() -> StoreResult<tokio_postgres_rustls::MakeRustlsConnect> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    // The system's roots too, for servers with a certificate of a private CA installed there.
    for c in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(c);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(err)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

impl PgKv {
    /// Connects, applies the missing migrations and numbers the trees.
    pub(in crate::store) fn open(opts: &PostgresOptions) -> StoreResult<PgKv> {
        let config = parse_url(&opts.url).map_err(StoreError::Refused)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("hearth-postgres")
            .enable_all()
            .build()
            .map_err(err)?;
        let pool_of = |config: tokio_postgres::Config, size: usize| -> StoreResult<Pool> {
            let mgr = Manager::from_config(config, tls()?, ManagerConfig { recycling_method: RecyclingMethod::Fast });
            Pool::builder(mgr)
                .max_size(size)
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .create_timeout(Some(Duration::from_secs(10)))
                .wait_timeout(Some(Duration::from_secs(30)))
                .build()
                .map_err(err)
        };
        let lock_pool = pool_of(config.clone(), 1)?;
        let pool = pool_of(config, opts.pool_size)?;
        let mut kv = PgKv { pool, lock_pool, ids: Vec::new(), rt: Some(rt), pages: (PAGE_FIRST, PAGE_MAX) };
        let pool = kv.pool.clone();
        kv.ids = kv.run(async move {
            let mut c = pool.get().await.map_err(pool_err)?;
            let tx = c.transaction().await.map_err(db_err)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(db_err)?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, \
                 applied_at timestamptz NOT NULL DEFAULT now())",
            )
            .await
            .map_err(db_err)?;
            let row =
                tx.query_one("SELECT coalesce(max(version), 0) FROM schema_migrations", &[]).await.map_err(db_err)?;
            let current: i32 = row.get(0);
            let known = MIGRATIONS.last().map_or(0, |m| m.0);
            if current > known {
                return Err(StoreError::Refused(format!(
                    "the database's schema is version {current}, newer than this hearth knows ({known}): \
                     run the hearth that wrote it, or a newer one"
                )));
            }
            for (version, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
                tx.batch_execute(sql).await.map_err(db_err)?;
                tx.execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[version]).await.map_err(db_err)?;
            }
            let mut named: HashMap<String, i16> = HashMap::new();
            for r in tx.query("SELECT id, name FROM trees", &[]).await.map_err(db_err)? {
                named.insert(r.get(1), r.get(0));
            }
            let mut next = named.values().copied().max().unwrap_or(0);
            let mut ids = Vec::with_capacity(TreeId::ALL.len());
            for t in TreeId::ALL {
                let id = match named.get(t.name()) {
                    Some(id) => *id,
                    None => {
                        next += 1;
                        tx.execute("INSERT INTO trees (id, name) VALUES ($1, $2)", &[&next, &t.name()])
                            .await
                            .map_err(db_err)?;
                        next
                    }
                };
                ids.push(id);
            }
            tx.commit().await.map_err(db_err)?;
            Ok(ids)
        })?;
        Ok(kv)
    }

    /// Makes scans read pages of `first` rows and then at most `max` (tests of page boundaries).
    #[cfg(test)]
    pub(in crate::store) fn set_pages(&mut self, first: i64, max: i64) {
        self.pages = (first, max);
    }

    fn id(&self, t: TreeId) -> i16 {
        self.ids[t as usize]
    }

    /// The number `trees` gives a tree (for statements the store writes itself).
    pub(in crate::store) fn tree_id(&self, t: TreeId) -> i16 {
        self.id(t)
    }

    /// Runs one statement of the store's own (not in a transaction) and returns its rows.
    pub(in crate::store) fn query(&self, sql: &'static str, params: Params) -> StoreResult<Vec<tokio_postgres::Row>> {
        let pool = self.pool.clone();
        self.run(async move {
            let c = pool.get().await.map_err(pool_err)?;
            query_on(&c, sql, &params).await
        })
    }

    /// Runs one statement of the store's own in the transaction and returns its rows; after an
    /// error the transaction is over (as after one of [`PgKv::apply_in`]).
    pub(in crate::store) fn query_in(
        &self,
        txn: &mut PgTxn,
        sql: &'static str,
        params: Params,
    ) -> StoreResult<Vec<tokio_postgres::Row>> {
        self.in_txn(txn, move |c| async move {
            let res = query_on(&c, sql, &params).await;
            (c, res)
        })
    }

    /// Runs `f` on the transaction's connection. After an error the connection stays out of the
    /// transaction, so that `finish` cannot commit what PostgreSQL already aborted (it would
    /// answer COMMIT with a silent ROLLBACK); it is closed, not pooled (see PgTxn's Drop).
    fn in_txn<T, F>(&self, txn: &mut PgTxn, f: impl FnOnce(Object) -> F + Send + 'static) -> StoreResult<T>
    where
        T: Send + 'static,
        F: Future<Output = (Object, StoreResult<T>)> + Send + 'static,
    {
        let Some(c) = txn.conn.take() else { return Err(err("the transaction failed before")) };
        let (c, res) = self.run(async move { Ok(f(c).await) })?;
        match res {
            Ok(v) => {
                txn.conn = Some(c);
                Ok(v)
            }
            Err(e) => {
                drop(Object::take(c));
                Err(e)
            }
        }
    }

    /// Runs `f` on the backend's runtime and waits for it (see the module documentation).
    fn run<T: Send + 'static>(&self, f: impl Future<Output = StoreResult<T>> + Send + 'static) -> StoreResult<T> {
        let Some(rt) = &self.rt else { return Err(err("the store is closed")) };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        rt.spawn(async move {
            let _ = tx.send(f.await);
        });
        let wait = move || rx.recv().unwrap_or_else(|_| Err(err("the store's runtime stopped")));
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait)
            }
            _ => wait(),
        }
    }

    pub(super) fn get(&self, tree: TreeId, key: &[u8]) -> StoreResult<Option<Value>> {
        let (pool, t, k) = (self.pool.clone(), self.id(tree), key.to_vec());
        self.run(async move {
            let c = pool.get().await.map_err(pool_err)?;
            let st = c.prepare_cached("SELECT v FROM kv WHERE tree = $1 AND k = $2").await.map_err(db_err)?;
            let row = c.query_opt(&st, &[&t, &k]).await.map_err(db_err)?;
            Ok(row.map(|r| Value::owned(r.get(0))))
        })
    }

    /// The values under `keys` that are there, by key: one round trip for all of them.
    pub(in crate::store) fn get_many(&self, tree: TreeId, keys: Vec<Vec<u8>>) -> StoreResult<HashMap<Vec<u8>, Value>> {
        let (pool, t) = (self.pool.clone(), self.id(tree));
        self.run(async move {
            let c = pool.get().await.map_err(pool_err)?;
            let st = c.prepare_cached("SELECT k, v FROM kv WHERE tree = $1 AND k = ANY($2)").await.map_err(db_err)?;
            let rows = c.query(&st, &[&t, &keys]).await.map_err(db_err)?;
            Ok(rows.into_iter().map(|r| (r.get(0), Value::owned(r.get(1)))).collect())
        })
    }

    pub(super) fn range(&self, tree: TreeId, lo: Bound<Vec<u8>>, hi: Bound<Vec<u8>>, rev: bool) -> Scan<'_> {
        Box::new(PgScan {
            kv: self,
            tree: self.id(tree),
            lo,
            hi,
            rev,
            buf: VecDeque::new(),
            page: self.pages.0,
            done: false,
        })
    }

    pub(super) fn len(&self, tree: TreeId) -> StoreResult<usize> {
        let (pool, t) = (self.pool.clone(), self.id(tree));
        self.run(async move {
            let c = pool.get().await.map_err(pool_err)?;
            let row = c.query_one("SELECT count(*) FROM kv WHERE tree = $1", &[&t]).await.map_err(db_err)?;
            Ok(usize::try_from(row.get::<_, i64>(0)).unwrap_or(0))
        })
    }

    /// Rows of `tree` with keys from `lo` (included) up to `hi` (excluded; none: to the end).
    pub(super) fn count_range(&self, tree: TreeId, lo: Vec<u8>, hi: Option<Vec<u8>>) -> StoreResult<usize> {
        let (pool, t) = (self.pool.clone(), self.id(tree));
        self.run(async move {
            let c = pool.get().await.map_err(pool_err)?;
            let st = c
                .prepare_cached("SELECT count(*) FROM kv WHERE tree = $1 AND k >= $2 AND ($3::bytea IS NULL OR k < $3)")
                .await
                .map_err(db_err)?;
            let row = c.query_one(&st, &[&t, &lo, &hi]).await.map_err(db_err)?;
            Ok(usize::try_from(row.get::<_, i64>(0)).unwrap_or(0))
        })
    }

    pub(super) fn next_id(&self) -> StoreResult<u64> {
        let pool = self.pool.clone();
        self.run(async move {
            let c = pool.get().await.map_err(pool_err)?;
            let st = c.prepare_cached("SELECT nextval('hearth_ids')").await.map_err(db_err)?;
            let row = c.query_one(&st, &[]).await.map_err(db_err)?;
            Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
        })
    }

    /// Moves the id sequence on so that the next id is above `n` (a copied store's ids go on).
    pub(super) fn ids_at_least(&self, n: u64) -> StoreResult<()> {
        let pool = self.pool.clone();
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        self.run(async move {
            let c = pool.get().await.map_err(pool_err)?;
            c.execute("SELECT setval('hearth_ids', GREATEST($1, (SELECT last_value FROM hearth_ids)))", &[&n])
                .await
                .map_err(db_err)?;
            Ok(())
        })
    }

    pub(super) fn insert_if_absent(&self, tree: TreeId, key: &[u8], v: &[u8]) -> StoreResult<bool> {
        let (pool, t, k, v) = (self.pool.clone(), self.id(tree), key.to_vec(), v.to_vec());
        self.run(async move {
            let c = pool.get().await.map_err(pool_err)?;
            let st = c
                .prepare_cached("INSERT INTO kv (tree, k, v) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                .await
                .map_err(db_err)?;
            Ok(c.execute(&st, &[&t, &k, &v]).await.map_err(db_err)? == 1)
        })
    }

    pub(super) fn replace_if(&self, tree: TreeId, key: &[u8], old: &[u8], new: &[u8]) -> StoreResult<bool> {
        let (pool, t, k, old, new) = (self.pool.clone(), self.id(tree), key.to_vec(), old.to_vec(), new.to_vec());
        self.run(async move {
            let c = pool.get().await.map_err(pool_err)?;
            let st =
                c.prepare_cached("UPDATE kv SET v = $4 WHERE tree = $1 AND k = $2 AND v = $3").await.map_err(db_err)?;
            Ok(c.execute(&st, &[&t, &k, &old, &new]).await.map_err(db_err)? == 1)
        })
    }

    pub(super) fn delete_if(&self, tree: TreeId, key: &[u8], old: &[u8]) -> StoreResult<bool> {
        let (pool, t, k, o) = (self.pool.clone(), self.id(tree), key.to_vec(), old.to_vec());
        self.run(async move {
            let c = pool.get().await.map_err(pool_err)?;
            let st = c.prepare_cached("DELETE FROM kv WHERE tree = $1 AND k = $2 AND v = $3").await.map_err(db_err)?;
            Ok(c.execute(&st, &[&t, &k, &o]).await.map_err(db_err)? == 1)
        })
    }

    pub(super) fn take(&self, tree: TreeId, key: &[u8]) -> StoreResult<Option<Value>> {
        let (pool, t, k) = (self.pool.clone(), self.id(tree), key.to_vec());
        self.run(async move {
            let c = pool.get().await.map_err(pool_err)?;
            let row = c
                .query_opt("DELETE FROM kv WHERE tree = $1 AND k = $2 RETURNING v", &[&t, &k])
                .await
                .map_err(db_err)?;
            Ok(row.map(|r| Value::owned(r.get(0))))
        })
    }

    /// One transaction; unflushed commits (caches) do not wait for the server's WAL flush.
    pub(super) fn commit(&self, ops: Ops, flush: bool) -> StoreResult<CountDelta> {
        if ops.is_empty() {
            return Ok(CountDelta::default());
        }
        let (pool, ids) = (self.pool.clone(), self.ids.clone());
        self.run(async move {
            let c = pool.get().await.map_err(pool_err)?;
            c.batch_execute(if flush { "BEGIN" } else { "BEGIN; SET LOCAL synchronous_commit = off" })
                .await
                .map_err(db_err)?;
            let res = async {
                let d = write(&c, &ids, &ops).await?;
                write_counts(&c, &d).await?;
                c.batch_execute("COMMIT").await.map_err(db_err)?;
                Ok(d)
            }
            .await;
            if res.is_err() && c.batch_execute("ROLLBACK").await.is_err() {
                // A connection that could not roll back may still be inside the transaction:
                // it is closed, never handed to the next caller.
                drop(Object::take(c));
            }
            res
        })
    }

    /// Begins a transaction that [`PgKv::apply_in`] adds to and [`PgKv::finish`] commits; dropped
    /// unfinished, it is rolled back (its connection is closed).
    pub(in crate::store) fn begin(&self) -> StoreResult<PgTxn> {
        let pool = self.pool.clone();
        let conn = self.run(async move {
            let c = pool.get().await.map_err(pool_err)?;
            c.batch_execute("BEGIN").await.map_err(db_err)?;
            Ok(c)
        })?;
        Ok(PgTxn { conn: Some(conn), delta: CountDelta::default() })
    }

    /// Writes `ops` in the transaction.
    pub(in crate::store) fn apply_in(&self, txn: &mut PgTxn, ops: Ops) -> StoreResult<()> {
        let ids = self.ids.clone();
        let d = self.in_txn(txn, move |c| async move {
            let d = write(&c, &ids, &ops).await;
            (c, d)
        })?;
        txn.delta.merge(&d);
        Ok(())
    }

    /// Commits the transaction (with its count deltas); returns them.
    pub(in crate::store) fn finish(&self, mut txn: PgTxn) -> StoreResult<CountDelta> {
        let Some(c) = txn.conn.take() else { return Err(err("the transaction failed before")) };
        let d = txn.delta;
        let (c, res) = self.run(async move {
            let res = async {
                write_counts(&c, &d).await?;
                c.batch_execute("COMMIT").await.map_err(db_err)
            }
            .await;
            Ok((c, res))
        })?;
        if res.is_ok() {
            drop(c);
        } else {
            txn.conn = Some(c);
        }
        res.map(|()| d)
    }

    /// What [`super::super::scan::Counts`] holds, as the table `counts` says.
    pub(in crate::store) fn stored_counts(&self) -> StoreResult<CountDelta> {
        let pool = self.pool.clone();
        self.run(async move {
            let c = pool.get().await.map_err(pool_err)?;
            let mut d = CountDelta::default();
            for r in c.query("SELECT name, n FROM counts", &[]).await.map_err(db_err)? {
                d.set(r.get::<_, &str>(0), r.get(1));
            }
            Ok(d)
        })
    }

    /// Takes the cluster's writer lock (a session-level advisory lock on a connection of its own,
    /// which PostgreSQL frees if this process dies): waits for it (at most [`WRITER_LOCK_WAIT`],
    /// then an error) or, unless `wait`, takes it only if it is free. The connection that holds
    /// it, for [`PgKv::unlock_writer`].
    pub(in crate::store) fn lock_writer(&self, wait: bool) -> StoreResult<Option<WriterLockConn>> {
        let pool = self.lock_pool.clone();
        self.run(async move {
            let c = pool.get().await.map_err(pool_err)?;
            let sql = if wait {
                format!(
                    "SET lock_timeout = '{}s'; SELECT pg_advisory_lock({WRITER_LOCK}), true",
                    WRITER_LOCK_WAIT.as_secs()
                )
            } else {
                format!("SELECT pg_try_advisory_lock({WRITER_LOCK})")
            };
            let took = match c.simple_query(&sql).await {
                Ok(msgs) => msgs.iter().any(
                    |m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(r) if r.get(r.len() - 1) == Some("t")),
                ),
                Err(e) => {
                    drop(Object::take(c));
                    return Err(StoreError::Backend(format!("the cluster's writer lock: {}", db_err(e))));
                }
            };
            Ok(took.then_some(WriterLockConn(c)))
        })
    }

    /// Gives the writer lock up; a connection that cannot is closed, which gives it up too.
    pub(in crate::store) fn unlock_writer(&self, WriterLockConn(c): WriterLockConn) {
        let res = self.run(async move {
            let done = c.simple_query(&format!("SELECT pg_advisory_unlock({WRITER_LOCK})")).await;
            Ok((c, done.is_ok()))
        });
        if let Ok((c, false)) = res {
            drop(Object::take(c));
        }
    }

    /// Empties a tree (tests of the index build at open).
    pub(in crate::store) fn clear(&self, tree: TreeId) -> StoreResult<()> {
        let (pool, t) = (self.pool.clone(), self.id(tree));
        self.run(async move {
            let c = pool.get().await.map_err(pool_err)?;
            c.execute("DELETE FROM kv WHERE tree = $1", &[&t]).await.map_err(db_err)?;
            Ok(())
        })
    }

    /// Writes `n` raw rows of `size` bytes with one `COPY … FROM STDIN (FORMAT binary)` in one
    /// transaction: the benchmarks' baseline, the fastest way PostgreSQL takes rows.
    pub(in crate::store) fn raw_batch_write_baseline(&self, n: usize, size: usize) -> StoreResult<()> {
        use tokio_postgres::binary_copy::BinaryCopyInWriter;
        use tokio_postgres::types::Type;
        let pool = self.pool.clone();
        self.run(async move {
            let mut c = pool.get().await.map_err(pool_err)?;
            let t = c.transaction().await.map_err(db_err)?;
            let sink = t.copy_in("COPY kv (tree, k, v) FROM STDIN (FORMAT binary)").await.map_err(db_err)?;
            let writer = BinaryCopyInWriter::new(sink, &[Type::INT2, Type::BYTEA, Type::BYTEA]);
            let mut writer = std::pin::pin!(writer);
            let v = vec![b'x'; size];
            for i in 0..n {
                let k = format!("k{i:012}").into_bytes();
                writer.as_mut().write(&[&BASELINE_TREE, &k, &v]).await.map_err(db_err)?;
            }
            writer.finish().await.map_err(db_err)?;
            t.commit().await.map_err(db_err)?;
            Ok(())
        })
    }

    /// Removes the baseline's rows.
    pub(in crate::store) fn drop_baseline_scratch(&self) -> StoreResult<()> {
        let pool = self.pool.clone();
        self.run(async move {
            let c = pool.get().await.map_err(pool_err)?;
            c.execute("DELETE FROM kv WHERE tree = $1", &[&BASELINE_TREE]).await.map_err(db_err)?;
            Ok(())
        })
    }
}

/// The parameters of a statement the store writes itself ([`PgKv::query`]).
pub(in crate::store) type Params = Vec<Box<dyn ToSql + Send + Sync>>;

async fn query_on(c: &Object, sql: &str, params: &Params) -> StoreResult<Vec<tokio_postgres::Row>> {
    let st = c.prepare_cached(sql).await.map_err(db_err)?;
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect();
    c.query(&st, &refs).await.map_err(db_err)
}

/// The connection that holds the cluster's writer lock ([`PgKv::lock_writer`]).
pub(in crate::store) struct WriterLockConn(Object);

/// A transaction begun by [`PgKv::begin`].
pub(in crate::store) struct PgTxn {
    conn: Option<Object>,
    delta: CountDelta,
}

impl Drop for PgTxn {
    fn drop(&mut self) {
        // Unfinished: the connection leaves the pool and closes, and the server rolls back.
        if let Some(c) = self.conn.take() {
            drop(Object::take(c));
        }
    }
}

/// Writes `ops` on connection `c` (inside a transaction) and returns how they move the counts.
///
/// A counted tree's rows are locked before their old values are read, so that the counts move by
/// what each write really replaced: existing rows by `FOR UPDATE`, and keys no row holds by
/// inserting them (their final value, or an empty placeholder that the delete below removes),
/// which makes a writer of the same new key in another transaction wait for this one and then
/// find its row, rather than count from the same nothing (the counts would drift by one each
/// time two replicas created one row at once).
async fn write(c: &Object, ids: &[i16], ops: &Ops) -> StoreResult<CountDelta> {
    let mut d = CountDelta::default();
    for (tree, ops) in ops {
        let t = ids[*tree as usize];
        // What each key ends as: the last write to it.
        let mut last: BTreeMap<&[u8], Option<&[u8]>> = BTreeMap::new();
        for op in ops {
            last.insert(op.key.as_slice(), op.value.as_deref());
        }
        // Keys already written with their final value (claimed below).
        let mut written: HashSet<Vec<u8>> = HashSet::new();
        if counted(*tree) && ops.iter().any(|op| !op.neutral) {
            let mut keys: Vec<&[u8]> = ops.iter().filter(|op| !op.neutral).map(|op| op.key.as_slice()).collect();
            keys.sort_unstable();
            keys.dedup();
            let stored = lock_rows(c, t, &keys, &last, &mut written).await?;
            let mut earlier: HashMap<&[u8], Option<&[u8]>> = HashMap::new();
            for op in ops.iter().filter(|op| !op.neutral) {
                let old = match earlier.get(op.key.as_slice()) {
                    Some(e) => *e,
                    None => stored.get(&op.key).map(Vec::as_slice),
                };
                d.add(*tree, old, op.value.as_deref());
                earlier.insert(op.key.as_slice(), op.value.as_deref());
            }
        }
        let dels: Vec<&[u8]> = last.iter().filter(|(_, v)| v.is_none()).map(|(k, _)| *k).collect();
        let (ks, vs): (Vec<&[u8]>, Vec<&[u8]>) =
            last.iter().filter(|(k, _)| !written.contains(**k)).filter_map(|(k, v)| v.map(|v| (*k, v))).unzip();
        if !dels.is_empty() {
            let st = c.prepare_cached("DELETE FROM kv WHERE tree = $1 AND k = ANY($2)").await.map_err(db_err)?;
            c.execute(&st, &[&t, &dels]).await.map_err(db_err)?;
        }
        if !ks.is_empty() {
            let st = c
                .prepare_cached(
                    "INSERT INTO kv (tree, k, v) SELECT $1, k, v FROM unnest($2::bytea[], $3::bytea[]) AS u(k, v) \
                     ON CONFLICT (tree, k) DO UPDATE SET v = EXCLUDED.v",
                )
                .await
                .map_err(db_err)?;
            c.execute(&st, &[&t, &ks, &vs]).await.map_err(db_err)?;
        }
    }
    Ok(d)
}

/// How many times [`lock_rows`] claims keys that other transactions keep creating and deleting
/// under it before it gives up (each round waits for those transactions, so this is never reached
/// but by a pathological workload).
const CLAIM_ROUNDS: usize = 8;

/// Locks the rows of `keys` in tree `t` and returns the values they held (keys without a row are
/// absent). A key without a row is claimed by inserting it: with its final value from `last` when
/// it ends as a put (then added to `written`, so that it is not written again), else an empty
/// placeholder, which the caller's delete removes. A key another transaction inserted meanwhile
/// (the claim waits for that transaction) is read again, locked.
async fn lock_rows(
    c: &Object,
    t: i16,
    keys: &[&[u8]],
    last: &BTreeMap<&[u8], Option<&[u8]>>,
    written: &mut HashSet<Vec<u8>>,
) -> StoreResult<HashMap<Vec<u8>, Vec<u8>>> {
    let select = c
        .prepare_cached("SELECT k, v FROM kv WHERE tree = $1 AND k = ANY($2) ORDER BY k FOR UPDATE")
        .await
        .map_err(db_err)?;
    let claim = c
        .prepare_cached(
            "INSERT INTO kv (tree, k, v) SELECT $1, k, v FROM unnest($2::bytea[], $3::bytea[]) AS u(k, v) \
             ON CONFLICT DO NOTHING RETURNING k",
        )
        .await
        .map_err(db_err)?;
    let mut stored: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    for r in c.query(&select, &[&t, &keys]).await.map_err(db_err)? {
        stored.insert(r.get(0), r.get(1));
    }
    let mut missing: Vec<&[u8]> = keys.iter().copied().filter(|k| !stored.contains_key(*k)).collect();
    for _ in 0..CLAIM_ROUNDS {
        if missing.is_empty() {
            return Ok(stored);
        }
        let vals: Vec<&[u8]> = missing.iter().map(|k| last.get(k).copied().flatten().unwrap_or_default()).collect();
        let mut claimed: HashSet<Vec<u8>> = HashSet::new();
        for r in c.query(&claim, &[&t, &missing, &vals]).await.map_err(db_err)? {
            claimed.insert(r.get(0));
        }
        for k in &missing {
            if claimed.contains(*k) && last.get(k).copied().flatten().is_some() {
                written.insert(k.to_vec());
            }
        }
        let taken: Vec<&[u8]> = missing.into_iter().filter(|k| !claimed.contains(*k)).collect();
        if !taken.is_empty() {
            for r in c.query(&select, &[&t, &taken]).await.map_err(db_err)? {
                stored.insert(r.get(0), r.get(1));
            }
        }
        missing = taken.into_iter().filter(|k| !stored.contains_key(*k)).collect();
    }
    if missing.is_empty() { Ok(stored) } else { Err(err("rows kept being created and deleted under a write")) }
}

async fn write_counts(c: &Object, d: &CountDelta) -> StoreResult<()> {
    for (name, n) in d.named() {
        if n != 0 {
            let st = c.prepare_cached("UPDATE counts SET n = n + $2 WHERE name = $1").await.map_err(db_err)?;
            c.execute(&st, &[&name, &n]).await.map_err(db_err)?;
        }
    }
    Ok(())
}

/// A scan read in pages: each page starts after the last key of the one before.
struct PgScan<'a> {
    kv: &'a PgKv,
    tree: i16,
    lo: Bound<Vec<u8>>,
    hi: Bound<Vec<u8>>,
    rev: bool,
    buf: VecDeque<Entry>,
    page: i64,
    done: bool,
}

impl PgScan<'_> {
    fn fetch(&mut self) -> StoreResult<()> {
        let mut sql = String::from("SELECT k, v FROM kv WHERE tree = $1");
        let mut params: Vec<Vec<u8>> = Vec::new();
        for (b, incl, excl) in [(&self.lo, ">=", ">"), (&self.hi, "<=", "<")] {
            let (op, k) = match b {
                Bound::Included(k) => (incl, k),
                Bound::Excluded(k) => (excl, k),
                Bound::Unbounded => continue,
            };
            params.push(k.clone());
            sql.push_str(&format!(" AND k {op} ${}", params.len() + 1));
        }
        sql.push_str(if self.rev { " ORDER BY k DESC" } else { " ORDER BY k" });
        sql.push_str(&format!(" LIMIT {}", self.page));
        let (pool, tree, page) = (self.kv.pool.clone(), self.tree, self.page);
        let rows: Vec<(Vec<u8>, Vec<u8>)> = self.kv.run(async move {
            let c = pool.get().await.map_err(pool_err)?;
            let st = c.prepare_cached(&sql).await.map_err(db_err)?;
            let mut args: Vec<&(dyn ToSql + Sync)> = vec![&tree];
            args.extend(params.iter().map(|p| p as &(dyn ToSql + Sync)));
            let rows = c.query(&st, &args).await.map_err(db_err)?;
            Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
        })?;
        self.done = i64::try_from(rows.len()).unwrap_or(i64::MAX) < page;
        if let Some((k, _)) = rows.last() {
            if self.rev {
                self.hi = Bound::Excluded(k.clone());
            } else {
                self.lo = Bound::Excluded(k.clone());
            }
        }
        self.buf.extend(rows.into_iter().map(|(k, v)| (Value::owned(k), Value::owned(v))));
        self.page = (self.page * 4).min(self.kv.pages.1);
        Ok(())
    }
}

impl Iterator for PgScan<'_> {
    type Item = StoreResult<Entry>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty()
            && !self.done
            && let Err(e) = self.fetch()
        {
            self.done = true;
            return Some(Err(e));
        }
        self.buf.pop_front().map(Ok)
    }
}
