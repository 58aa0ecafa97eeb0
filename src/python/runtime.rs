//! Where the package's calls run: one tokio runtime for the process, entered without the
//! GIL, so other Python threads keep running while a query does; a panic inside becomes
//! `featurecraft.InternalError`.

use super::errors::InternalError;
use pyo3::prelude::*;
use std::future::Future;
use std::sync::OnceLock;

/// The tokio runtime every call runs its queries on, started on first use.
pub fn runtime() -> PyResult<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("featurecraft")
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| InternalError::new_err(format!("cannot start the query runtime: {e}")))
}

/// Runs `work` to completion without the GIL; a panic becomes `InternalError`.
pub fn run_detached<T: Send>(py: Python<'_>, work: impl Future<Output = T> + Send) -> PyResult<T> {
    let runtime = runtime()?;
    py.detach(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runtime.block_on(work))))
        .map_err(|panic| {
            let what = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("no message");
            InternalError::new_err(format!(
                "featurecraft failed unexpectedly ({what}); please report the call that caused it"
            ))
        })
}
