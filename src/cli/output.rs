//! Files the command line writes for a user (`--sample-out`, `fix --write`): only where the
//! user meant, whole or not at all.
//!
//! A path is written only when it is a regular file or does not exist yet: a FIFO, a
//! device, a folder or a symbolic link (to anything: the link's target is not what was
//! named) is refused, so `--sample-out /dev/full` cannot replace a device with a file. The
//! contents go to a new temporary file beside it (created exclusively, never through a
//! link), which takes a replaced file's permissions and is then renamed over it: a failure
//! leaves the old file whole and removes the temporary one.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Writes `path` with `write`, as the module says; the error names the path and the cause.
pub fn write_replacing(
    path: &Path,
    write: impl FnOnce(File) -> Result<(), String>,
) -> Result<(), String> {
    let shown = path.display();
    let permissions = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(format!(
                "{shown} is a symbolic link: name the file itself, featurecraft does not write through links"
            ));
        }
        Ok(meta) if !meta.is_file() => {
            return Err(format!(
                "{shown} is not a regular file (a folder, a FIFO or a device): name a file"
            ));
        }
        Ok(meta) => Some(meta.permissions()),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => return Err(format!("cannot write {shown}: {e}")),
    };
    let temporary = temporary_beside(path);
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&temporary)
        .map_err(|e| format!("cannot write {shown}: {e}"))?;
    let written = write(file)
        .and_then(|()| match permissions {
            Some(p) => std::fs::set_permissions(&temporary, p).map_err(|e| e.to_string()),
            None => Ok(()),
        })
        .and_then(|()| std::fs::rename(&temporary, path).map_err(|e| e.to_string()));
    written.map_err(|e| {
        let _ = std::fs::remove_file(&temporary);
        format!("cannot write {shown}: {e}")
    })
}

/// `.NAME.featurecraft-PID` in the same folder (a rename stays within one file system).
fn temporary_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.featurecraft-{}", std::process::id()))
}
