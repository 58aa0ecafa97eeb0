//! Snapshot files beside a recipe (`__snapshots__/NAME.DIALECT.sql`,
//! `NAME.validation.json`): what the recipe compiled to when a person last accepted it. A
//! difference is shown as a unified diff; a snapshot that does not exist yet is written as
//! `FILE.new` for review, as insta does, never accepted silently.

use std::path::{Path, PathBuf};

/// What comparing a snapshot found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Snapshot {
    /// The file holds exactly the current output.
    Matches,
    /// The file differs: the unified diff from the file to the current output.
    Differs(String),
    /// There was no file: the current output is in `FILE.new`, waiting for review.
    New(PathBuf),
    /// `update` was set: the file now holds the current output.
    Written,
}

/// Compares `current` with the snapshot at `path`; with `update`, writes it there instead
/// of reporting a difference or a new snapshot. A leftover `FILE.new` is removed once the
/// snapshot matches or is written.
pub fn check(path: &Path, current: &str, update: bool) -> std::io::Result<Snapshot> {
    let pending = pending_path(path);
    let stored = match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    if stored.as_deref() == Some(current) {
        remove_if_there(&pending)?;
        return Ok(Snapshot::Matches);
    }
    if update {
        write_whole(path, current)?;
        remove_if_there(&pending)?;
        return Ok(Snapshot::Written);
    }
    match stored {
        Some(stored) => Ok(Snapshot::Differs(unified_diff(
            &stored,
            current,
            &path.display().to_string(),
            "current",
        ))),
        None => {
            write_whole(&pending, current)?;
            Ok(Snapshot::New(pending))
        }
    }
}

/// The file a new snapshot waits in: `NAME.duckdb.sql` → `NAME.duckdb.sql.new`.
fn pending_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".new");
    PathBuf::from(name)
}

/// The unified diff from `old` to `new`, headed with their labels.
pub fn unified_diff(old: &str, new: &str, old_label: &str, new_label: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(old_label, new_label)
        .to_string()
}

/// Writes through a temporary name, so a snapshot is never left half-written.
fn write_whole(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let partial = {
        let mut name = path.as_os_str().to_owned();
        name.push(".partial");
        PathBuf::from(name)
    };
    std::fs::write(&partial, text)?;
    std::fs::rename(&partial, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&partial);
    })
}

fn remove_if_there(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
