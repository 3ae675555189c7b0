//! The inventory on disk: one SQLite table of endpoints per API host, written whole for a host on each
//! save (a few thousand rows at most) and read back at start and by `rampart openapi export` / `diff`.

use crate::discovery::{Endpoint, MethodStats};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
#[error("inventory store {path}: {source}")]
pub struct StoreError {
    path: String,
    #[source]
    source: rusqlite::Error,
}

pub struct InventoryStore {
    conn: rusqlite::Connection,
    path: String,
}

impl InventoryStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let shown = path.display().to_string();
        let err = |source| StoreError {
            path: shown.clone(),
            source,
        };
        let conn = rusqlite::Connection::open(path).map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA busy_timeout = 2000;
             CREATE TABLE IF NOT EXISTS endpoints (
                 host TEXT NOT NULL,
                 method TEXT NOT NULL,
                 template TEXT NOT NULL,
                 hits INTEGER NOT NULL,
                 first_seen INTEGER NOT NULL,
                 last_seen INTEGER NOT NULL,
                 stats TEXT NOT NULL,
                 PRIMARY KEY (host, method, template)
             );",
        )
        .map_err(err)?;
        Ok(InventoryStore { conn, path: shown })
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError {
            path: self.path.clone(),
            source,
        }
    }

    /// Replaces a host's endpoints.
    pub fn save(&mut self, host: &str, endpoints: &[Endpoint]) -> Result<(), StoreError> {
        let path = self.path.clone();
        let err = |source| StoreError {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        let run = |tx: &rusqlite::Transaction<'_>| -> rusqlite::Result<()> {
            tx.execute("DELETE FROM endpoints WHERE host = ?1", [host])?;
            let mut insert = tx.prepare(
                "INSERT INTO endpoints (host, method, template, hits, first_seen, last_seen, stats)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for e in endpoints {
                let stats = serde_json::to_string(&e.stats).expect("stats serialize");
                insert.execute(rusqlite::params![
                    host,
                    e.method,
                    e.template,
                    e.stats.hits as i64,
                    e.stats.first_seen as i64,
                    e.stats.last_seen as i64,
                    stats
                ])?;
            }
            Ok(())
        };
        run(&tx).map_err(err)?;
        tx.commit().map_err(err)
    }

    /// Every host's endpoints.
    pub fn load(&self) -> Result<BTreeMap<String, Vec<Endpoint>>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT host, method, template, stats FROM endpoints ORDER BY host, template, method")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out: BTreeMap<String, Vec<Endpoint>> = BTreeMap::new();
        for row in rows {
            let (host, method, template, stats) = row.map_err(|e| self.err(e))?;
            // A row written by another version that does not parse is skipped, not fatal.
            let Ok(stats) = serde_json::from_str::<MethodStats>(&stats) else {
                continue;
            };
            out.entry(host).or_default().push(Endpoint {
                method,
                template,
                stats,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_survive_a_round_trip_per_host() {
        let dir = std::env::temp_dir().join(format!("rampart-inventory-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("inventory.db");
        let mut stats = MethodStats {
            hits: 3,
            first_seen: 10,
            last_seen: 20,
            ..Default::default()
        };
        stats.statuses.insert(200, 3);
        stats.sensitive.insert("email".into(), 1);
        let e = Endpoint {
            method: "GET".into(),
            template: "/orders/{id}".into(),
            stats,
        };
        let mut store = InventoryStore::open(&path).unwrap();
        store.save("api.example", std::slice::from_ref(&e)).unwrap();
        store.save("other.example", &[]).unwrap();
        store.save("api.example", std::slice::from_ref(&e)).unwrap();
        let back = InventoryStore::open(&path).unwrap().load().unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back["api.example"], vec![e]);
        let _ = std::fs::remove_dir_all(dir);
    }
}
