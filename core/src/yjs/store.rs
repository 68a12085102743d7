//! Where Yjs documents live between loads: the [`DocumentStore`] trait, an in-memory store
//! (no data directory) and the embedded `redb` store (`documents.redb` under `--data-dir`).
//!
//! A document is stored as its whole state, one Yjs update in v1 encoding. Yjs updates merge
//! commutatively and idempotently, so a store shared by several engine processes (Redis) can
//! merge what it receives with what it holds (`yrs::merge_updates_v1`) instead of replacing it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use redb::{Database, ReadableDatabase, TableDefinition};

/// Document states by document name.
const DOCUMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("documents");

/// A document store failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("document store: {0}")]
pub struct DocumentStoreError(pub String);

/// Loads and stores Yjs documents. Implement it to keep documents elsewhere (Redis, a
/// database) and pass it in [`super::Hooks::store`].
pub trait DocumentStore: Send + Sync + 'static {
    /// The stored state of `doc` (a Yjs update, v1 encoding), or `None` if it was never stored.
    fn load(&self, doc: &str) -> BoxFuture<'static, Result<Option<Vec<u8>>, DocumentStoreError>>;

    /// Stores the whole state of `doc` (a Yjs update, v1 encoding). The engine serializes the
    /// stores of one document and each state contains every earlier one, so replacing is
    /// correct on one node; a store shared by several nodes should merge instead.
    fn store(
        &self,
        doc: &str,
        state: Vec<u8>,
    ) -> BoxFuture<'static, Result<(), DocumentStoreError>>;
}

/// Documents kept in memory: they survive an idle unload, not a restart.
#[derive(Default)]
pub struct MemoryStore {
    docs: Arc<Mutex<HashMap<String, Vec<u8>>>>,
}

impl DocumentStore for MemoryStore {
    fn load(&self, doc: &str) -> BoxFuture<'static, Result<Option<Vec<u8>>, DocumentStoreError>> {
        let state = self.docs.lock().get(doc).cloned();
        Box::pin(async move { Ok(state) })
    }

    fn store(
        &self,
        doc: &str,
        state: Vec<u8>,
    ) -> BoxFuture<'static, Result<(), DocumentStoreError>> {
        self.docs.lock().insert(doc.to_owned(), state);
        Box::pin(async { Ok(()) })
    }
}

/// Documents in `documents.redb` under the data directory. Reads and writes run on tokio's
/// blocking pool; each store is one durable transaction.
pub struct RedbStore {
    db: Arc<Database>,
}

fn db_error(e: impl std::fmt::Display) -> DocumentStoreError {
    DocumentStoreError(e.to_string())
}

impl RedbStore {
    /// Opens (or creates) `documents.redb` in `dir` (created when missing).
    pub fn open(dir: &Path) -> Result<Self, DocumentStoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| DocumentStoreError(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join("documents.redb");
        let db = Database::create(&path)
            .map_err(|e| DocumentStoreError(format!("cannot open {}: {e}", path.display())))?;
        {
            let txn = db.begin_write().map_err(db_error)?;
            txn.open_table(DOCUMENTS).map_err(db_error)?;
            txn.commit().map_err(db_error)?;
        }
        Ok(RedbStore { db: Arc::new(db) })
    }

    fn load_now(db: &Database, doc: &str) -> Result<Option<Vec<u8>>, DocumentStoreError> {
        let txn = db.begin_read().map_err(db_error)?;
        let table = txn.open_table(DOCUMENTS).map_err(db_error)?;
        let value = table.get(doc).map_err(db_error)?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    fn store_now(db: &Database, doc: &str, state: &[u8]) -> Result<(), DocumentStoreError> {
        let txn = db.begin_write().map_err(db_error)?;
        {
            let mut table = txn.open_table(DOCUMENTS).map_err(db_error)?;
            table.insert(doc, state).map_err(db_error)?;
        }
        txn.commit().map_err(db_error)
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, DocumentStoreError> + Send + 'static,
) -> Result<T, DocumentStoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| DocumentStoreError(format!("store task failed: {e}")))?
}

impl DocumentStore for RedbStore {
    fn load(&self, doc: &str) -> BoxFuture<'static, Result<Option<Vec<u8>>, DocumentStoreError>> {
        let (db, doc) = (self.db.clone(), doc.to_owned());
        Box::pin(blocking(move || RedbStore::load_now(&db, &doc)))
    }

    fn store(
        &self,
        doc: &str,
        state: Vec<u8>,
    ) -> BoxFuture<'static, Result<(), DocumentStoreError>> {
        let (db, doc) = (self.db.clone(), doc.to_owned());
        Box::pin(blocking(move || RedbStore::store_now(&db, &doc, &state)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_store_round_trips() {
        let s = MemoryStore::default();
        assert_eq!(s.load("a").await.unwrap(), None);
        s.store("a", vec![1, 2]).await.unwrap();
        s.store("a", vec![3]).await.unwrap();
        assert_eq!(s.load("a").await.unwrap(), Some(vec![3]));
    }

    #[tokio::test]
    async fn redb_store_survives_reopen() {
        let dir = std::env::temp_dir().join(format!("sb-docs-{}", crate::helpers::ids::new_id()));
        {
            let s = RedbStore::open(&dir).unwrap();
            assert_eq!(s.load("doc").await.unwrap(), None);
            s.store("doc", vec![7; 100]).await.unwrap();
            s.store("other", vec![1]).await.unwrap();
        }
        let s = RedbStore::open(&dir).unwrap();
        assert_eq!(s.load("doc").await.unwrap(), Some(vec![7; 100]));
        assert_eq!(s.load("other").await.unwrap(), Some(vec![1]));
        drop(s);
        let _ = std::fs::remove_dir_all(dir);
    }
}
