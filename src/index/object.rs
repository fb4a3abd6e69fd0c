//! The `UploadIndex` Durable Object: one subject's unfinished uploads in one small SQLite table,
//! newest first.

use serde::Deserialize;
use worker::{durable_object, DurableObject, Env, Request, Response, State};

use crate::error::cause;
use crate::index::{Entry, IndexCommand, Page, Position};

#[durable_object]
pub struct UploadIndex {
    state: State,
}

#[derive(Debug, Deserialize)]
struct EntryRow {
    upload_id: String,
    key: String,
    created_ms: f64,
    part_size: f64,
    size: Option<f64>,
}

impl DurableObject for UploadIndex {
    fn new(state: State, _env: Env) -> Self {
        let schema = "CREATE TABLE IF NOT EXISTS uploads (
                upload_id TEXT PRIMARY KEY, key TEXT NOT NULL, created_ms INTEGER NOT NULL,
                part_size INTEGER NOT NULL, size INTEGER);
            CREATE INDEX IF NOT EXISTS newest_first ON uploads (created_ms DESC, upload_id DESC);";
        if let Err(e) = state.storage().sql().exec(schema, None) {
            cause("creating the upload index schema", &e);
        }
        UploadIndex { state }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let command: IndexCommand = serde_json::from_str(&req.text().await?)?;
        let sql = self.state.storage().sql();
        match command {
            IndexCommand::Put { entry } => {
                sql.exec(
                    "INSERT OR REPLACE INTO uploads (upload_id, key, created_ms, part_size, size)
                     VALUES (?, ?, ?, ?, ?)",
                    vec![
                        entry.upload_id.into(),
                        entry.key.into(),
                        (entry.created_ms as i64).into(),
                        (entry.part_size as i64).into(),
                        entry.size.map(|s| s as i64).into(),
                    ],
                )?;
                Response::from_json(&())
            }
            IndexCommand::Remove { upload_id } => {
                sql.exec("DELETE FROM uploads WHERE upload_id = ?", vec![upload_id.into()])?;
                Response::from_json(&())
            }
            IndexCommand::List { prefix, limit, after } => {
                let (ms, id) = after.map_or((i64::MAX, String::new()), |p| (p.0 as i64, p.1));
                // One more than asked, to know whether another page follows.
                let rows: Vec<EntryRow> = sql
                    .exec(
                        "SELECT upload_id, key, created_ms, part_size, size FROM uploads
                         WHERE substr(key, 1, length(?1)) = ?1
                           AND (created_ms < ?2 OR (created_ms = ?2 AND (?3 = '' OR upload_id < ?3)))
                         ORDER BY created_ms DESC, upload_id DESC LIMIT ?4",
                        vec![prefix.into(), ms.into(), id.into(), ((limit + 1) as i64).into()],
                    )?
                    .to_array()?;
                let mut entries: Vec<Entry> = rows
                    .into_iter()
                    .map(|r| Entry {
                        upload_id: r.upload_id,
                        key: r.key,
                        created_ms: r.created_ms as u64,
                        part_size: r.part_size as u64,
                        size: r.size.map(|s| s as u64),
                    })
                    .collect();
                let next = (entries.len() > limit).then(|| {
                    entries.truncate(limit);
                    let last = entries.last().expect("limit is at least 1");
                    Position(last.created_ms, last.upload_id.clone())
                });
                Response::from_json(&Page { entries, next })
            }
        }
    }
}
