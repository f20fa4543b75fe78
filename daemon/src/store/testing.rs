//! Stores for tests on every backend: sled in a temporary directory always, and PostgreSQL when
//! `HEARTH_TEST_PG_URL` names a server where the test may create databases (each test store gets
//! a database of its own, dropped with it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::{PostgresOptions, Store, StoreOptions, kv};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The variable that names a PostgreSQL server for tests.
pub(crate) const PG_URL_VAR: &str = "HEARTH_TEST_PG_URL";

/// What a test store needs kept until it is dropped: its directory or its database.
pub(crate) enum Holder {
    /// A sled store's directory.
    Dir(tempfile::TempDir),
    /// A PostgreSQL database, dropped with this.
    Db(TestDb),
}

/// A database made for one test.
pub(crate) struct TestDb {
    base: String,
    name: String,
    /// The URL of the database itself.
    pub(crate) url: String,
}

fn admin<T>(base: &str, sql: String, then: impl FnOnce() -> T) -> T {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(base, tokio_postgres::NoTls).await.unwrap();
        let task = tokio::spawn(conn);
        client.batch_execute(&sql).await.unwrap();
        drop(client);
        let _ = task.await;
    });
    then()
}

impl TestDb {
    /// A new, empty database on the server `HEARTH_TEST_PG_URL` names; none when it names none.
    pub(crate) fn create() -> Option<TestDb> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let base = std::env::var(PG_URL_VAR).ok().filter(|u| !u.is_empty())?;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let name = format!("hearth_test_{}_{}_{nanos}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
        let mut url = url::Url::parse(&base).expect("HEARTH_TEST_PG_URL is a postgresql:// URL");
        url.set_path(&name);
        admin(&base, format!("CREATE DATABASE {name}"), || ());
        Some(TestDb { base, name, url: url.to_string() })
    }

    /// Options that open this database.
    pub(crate) fn options(&self) -> StoreOptions {
        StoreOptions { postgres: Some(PostgresOptions { url: self.url.clone(), pool_size: 4 }), ..Default::default() }
    }

    /// Runs SQL on this database.
    pub(crate) fn execute(&self, sql: &str) {
        admin(&self.url, sql.to_owned(), || ());
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        admin(&self.base, format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name), || ());
    }
}

/// A fresh store on each backend under test, with what keeps it.
pub(crate) fn stores() -> Vec<(Store, Holder)> {
    let dir = tempfile::tempdir().unwrap();
    let mut out = vec![(Store::open(dir.path()).unwrap(), Holder::Dir(dir))];
    if let Some(db) = TestDb::create() {
        out.push((Store::open_with(std::path::Path::new("unused"), db.options()).unwrap(), Holder::Db(db)));
    }
    out
}

/// A PostgreSQL store whose scans read pages of `first` rows and then at most `max`.
pub(crate) fn pg_store_with_pages(first: i64, max: i64) -> Option<(Store, TestDb)> {
    let db = TestDb::create()?;
    let pg = db.options().postgres?;
    let mut kv = kv::postgres::PgKv::open(&pg).unwrap();
    kv.set_pages(first, max);
    Some((Store::with_backend(kv::Backend::Postgres(kv)).unwrap(), db))
}

/// Opens the store `holder` keeps again (after the test dropped its handle).
pub(crate) fn reopen(holder: &Holder) -> Store {
    match holder {
        Holder::Dir(d) => super::open_after_drop(d.path()).unwrap(),
        Holder::Db(db) => Store::open_with(std::path::Path::new("unused"), db.options()).unwrap(),
    }
}
