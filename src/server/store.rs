//! The job store: one SQLite file in WAL mode; jobs survive a restart.
//!
//! Every state change is one statement that checks the state it expects
//! (`UPDATE … WHERE job_id = ? AND status = ?`), so two concurrent retries of one failed
//! job cannot both start it: the second finds the job no longer `failed` and gets a 409.
//! The schema is created and migrated by the service itself (`PRAGMA user_version`).

use crate::contract::job::{Job, JobStatus};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::Mutex;
use uuid::Uuid;

/// The schema version this code writes.
const SCHEMA_VERSION: i64 = 1;

/// A job as stored, with what review recorded about it.
#[derive(Debug, Clone)]
pub struct StoredJob {
    /// The job as the contract shapes it.
    pub job: Job,
    /// Hash of recipe + SQL + catalog file identities at validation time.
    pub reviewed_hash: Option<String>,
    /// The catalog file identities behind that hash, to say what changed.
    pub reviewed_files: Option<String>,
}

/// Where a page of `GET /jobs` starts: after the job stored as this row. Rows are
/// numbered in the order jobs were created, which creation times (to the second) cannot
/// tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageCursor {
    row: i64,
}

impl PageCursor {
    /// The cursor as an opaque token for a URL.
    pub fn encode(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("jobs:{}", self.row))
    }

    /// Reads a token [`PageCursor::encode`] wrote; `None` for anything else.
    pub fn decode(token: &str) -> Option<PageCursor> {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .ok()?;
        let row = std::str::from_utf8(&bytes).ok()?.strip_prefix("jobs:")?;
        Some(PageCursor {
            row: row.parse().ok()?,
        })
    }
}

/// The job store.
pub struct Store {
    connection: Mutex<Connection>,
    /// `DB.lock`, locked while this store is open: one process per job store.
    _lock: std::fs::File,
}

/// A store failure, with what was being done.
#[derive(Debug)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "job store: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

/// Takes the store's lock file, `PATH.lock`, with the holder's process id in it.
fn lock_store(path: &Path) -> Result<std::fs::File, StoreError> {
    use std::io::{Read, Seek, Write};
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = std::path::PathBuf::from(name);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| StoreError(format!("cannot open {}: {e}", lock_path.display())))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let who = if holder.is_empty() {
                String::new()
            } else {
                format!(" (process {holder})")
            };
            return Err(StoreError(format!(
                "{} is in use by another featurecraft service{who}; one service runs per job store: stop it, or give this one another database file",
                path.display()
            )));
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(StoreError(format!(
                "cannot lock {}: {e}",
                lock_path.display()
            )));
        }
    }
    let written = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| write!(file, "{}", std::process::id()));
    written.map_err(|e| StoreError(format!("cannot write {}: {e}", lock_path.display())))?;
    Ok(file)
}

fn store_error(what: &str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError(format!("{what}: {e}"))
}

impl Store {
    /// Opens (creating or migrating) the store at `path`, and holds `PATH.lock` locked until
    /// the store is dropped: a second store on the same file, in this process or another,
    /// is refused rather than left to fail the first one's running jobs as orphans.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let lock = lock_store(path)?;
        let connection = Connection::open(path).map_err(store_error("open"))?;
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(store_error("enable WAL"))?;
        connection
            .busy_timeout(std::time::Duration::from_secs(5))
            .map_err(store_error("busy timeout"))?;
        let version: i64 = connection
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(store_error("read schema version"))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError(format!(
                "the database has schema version {version}, newer than this featurecraft ({SCHEMA_VERSION})"
            )));
        }
        if version < 1 {
            connection
                .execute_batch(
                    "BEGIN;
                     CREATE TABLE IF NOT EXISTS jobs (
                         job_id TEXT PRIMARY KEY,
                         owner TEXT NOT NULL,
                         status TEXT NOT NULL,
                         created_at TEXT NOT NULL,
                         body TEXT NOT NULL,
                         reviewed_hash TEXT,
                         reviewed_files TEXT
                     );
                     CREATE INDEX IF NOT EXISTS jobs_owner ON jobs (owner, created_at);
                     PRAGMA user_version = 1;
                     COMMIT;",
                )
                .map_err(store_error("create schema"))?;
        }
        Ok(Store {
            connection: Mutex::new(connection),
            _lock: lock,
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let connection = self
            .connection
            .lock()
            .map_err(|_| StoreError("a previous request panicked".into()))?;
        f(&connection)
    }

    /// Stores a new job.
    pub fn insert(&self, job: &Job) -> Result<(), StoreError> {
        let body = serde_json::to_string(job).map_err(|e| StoreError(e.to_string()))?;
        self.with(|c| {
            c.execute(
                "INSERT INTO jobs (job_id, owner, status, created_at, body) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![job.job_id.to_string(), job.owner, job.status.as_str(), job.created_at.to_rfc3339(), body],
            )
            .map_err(store_error("insert job"))?;
            Ok(())
        })
    }

    /// Who published `domain.table` last: the owner and id of the newest complete job
    /// that wrote it, if any. A published table belongs to that owner.
    pub fn publisher(
        &self,
        domain: &str,
        table: &str,
    ) -> Result<Option<(String, Uuid)>, StoreError> {
        self.with(|c| {
            let found = c
                .query_row(
                    "SELECT owner, job_id FROM jobs
                     WHERE status = 'complete'
                       AND json_extract(body, '$.domain') = ?1
                       AND json_extract(body, '$.target_table_name') = ?2
                     ORDER BY json_extract(body, '$.updated_at') DESC, created_at DESC
                     LIMIT 1",
                    params![domain, table],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
                )
                .optional()
                .map_err(store_error("find the table's publisher"))?;
            Ok(found.and_then(|(owner, id)| Uuid::parse_str(&id).ok().map(|id| (owner, id))))
        })
    }

    /// One job by id.
    pub fn get(&self, id: Uuid) -> Result<Option<StoredJob>, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT body, reviewed_hash, reviewed_files FROM jobs WHERE job_id = ?1",
                params![id.to_string()],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, Option<String>>(2)?,
                    ))
                },
            )
            .optional()
            .map_err(store_error("read job"))?
            .map(|(body, reviewed_hash, reviewed_files)| {
                let job = serde_json::from_str(&body)
                    .map_err(|e| StoreError(format!("stored job is not valid: {e}")))?;
                Ok(StoredJob {
                    job,
                    reviewed_hash,
                    reviewed_files,
                })
            })
            .transpose()
        })
    }

    /// A page of the jobs of `owner` (every job when `None`), newest first: at most `limit`
    /// jobs after `after`, and where the next page starts when there is one.
    pub fn page(
        &self,
        owner: Option<&str>,
        limit: usize,
        after: Option<PageCursor>,
    ) -> Result<(Vec<Job>, Option<PageCursor>), StoreError> {
        self.with(|c| {
            let mut statement = c
                .prepare(
                    "SELECT body, rowid FROM jobs
                     WHERE (?1 IS NULL OR owner = ?1) AND (?2 IS NULL OR rowid < ?2)
                     ORDER BY rowid DESC
                     LIMIT ?3",
                )
                .map_err(store_error("list jobs"))?;
            let rows = statement
                .query_map(
                    params![
                        owner,
                        after.map(|a| a.row),
                        (limit as i64).saturating_add(1)
                    ],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
                )
                .map_err(store_error("list jobs"))?;
            let mut jobs = Vec::new();
            let mut last_row = None;
            let mut more = false;
            for row in rows {
                let (body, row) = row.map_err(store_error("list jobs"))?;
                if jobs.len() == limit {
                    // One more than asked: the next page starts after the last one kept.
                    more = true;
                    break;
                }
                jobs.push(
                    serde_json::from_str(&body)
                        .map_err(|e| StoreError(format!("stored job is not valid: {e}")))?,
                );
                last_row = Some(row);
            }
            let next = last_row.filter(|_| more).map(|row| PageCursor { row });
            Ok((jobs, next))
        })
    }

    /// Replaces the job if it is still in `expected`; `false` when another request moved it first.
    pub fn update(&self, job: &Job, expected: JobStatus) -> Result<bool, StoreError> {
        self.update_with_review(job, expected, None)
    }

    /// As [`Store::update`], also recording the review hash and file identities.
    pub fn update_with_review(
        &self,
        job: &Job,
        expected: JobStatus,
        review: Option<(&str, &str)>,
    ) -> Result<bool, StoreError> {
        // The same lifecycle as everything else: a move it does not allow is a bug of the
        // caller, refused here rather than stored.
        if job.status != expected && !expected.can_become(job.status) {
            return Err(StoreError(format!(
                "refusing to store a move the lifecycle does not allow: {} to {}",
                expected.as_str(),
                job.status.as_str()
            )));
        }
        let body = serde_json::to_string(job).map_err(|e| StoreError(e.to_string()))?;
        self.with(|c| {
            let changed = match review {
                Some((hash, files)) => c.execute(
                    "UPDATE jobs SET status = ?1, body = ?2, reviewed_hash = ?3, reviewed_files = ?4
                     WHERE job_id = ?5 AND status = ?6",
                    params![job.status.as_str(), body, hash, files, job.job_id.to_string(), expected.as_str()],
                ),
                None => c.execute(
                    "UPDATE jobs SET status = ?1, body = ?2 WHERE job_id = ?3 AND status = ?4",
                    params![job.status.as_str(), body, job.job_id.to_string(), expected.as_str()],
                ),
            }
            .map_err(store_error("update job"))?;
            Ok(changed == 1)
        })
    }

    /// Marks jobs left `running` or `materializing` by a process that died as `failed`, so
    /// they can be retried. Returns how many.
    pub fn fail_orphans(&self, reason: &str) -> Result<usize, StoreError> {
        let orphans: Vec<Job> = self.with(|c| {
            let mut statement = c
                .prepare("SELECT body FROM jobs WHERE status IN ('running', 'materializing')")
                .map_err(store_error("find orphans"))?;
            let rows = statement
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(store_error("find orphans"))?;
            let mut jobs = Vec::new();
            for body in rows {
                let body = body.map_err(store_error("find orphans"))?;
                if let Ok(job) = serde_json::from_str::<Job>(&body) {
                    jobs.push(job);
                }
            }
            Ok(jobs)
        })?;
        let mut count = 0;
        for mut job in orphans {
            let before = job.status;
            if job.transition(JobStatus::Failed).is_ok() {
                job.error = Some(reason.to_string());
                if self.update(&job, before)? {
                    count += 1;
                }
            }
        }
        Ok(count)
    }
}
