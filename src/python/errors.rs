//! The package's exceptions: `RecipeError` for the recipe's findings, `CatalogError`,
//! and a `RuntimeError` subclass per `E05x` code for a run that fails on the data.

use crate::diagnostic::{Code, Diagnostic};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    featurecraft,
    FeaturecraftError,
    PyException,
    "Every error featurecraft raises on purpose."
);
create_exception!(
    featurecraft,
    RecipeError,
    FeaturecraftError,
    "The recipe has errors (or warnings, when strict): `.diagnostics` lists them, `str()` is the report the command line prints."
);
create_exception!(
    featurecraft,
    CatalogError,
    FeaturecraftError,
    "The catalog cannot be read, or holds no data where a query must run."
);
create_exception!(
    featurecraft,
    RuntimeError,
    FeaturecraftError,
    "The run failed on the data or its time limit (E050-E054); `.diagnostics` holds the finding."
);
create_exception!(
    featurecraft,
    QueryError,
    RuntimeError,
    "E050: the query failed while running (a cast that fails on the data)."
);
create_exception!(
    featurecraft,
    MemoryLimitError,
    RuntimeError,
    "E051: the run exceeded its memory limit."
);
create_exception!(
    featurecraft,
    DataError,
    RuntimeError,
    "E052: a data file is missing or unreadable."
);
create_exception!(
    featurecraft,
    OutputError,
    RuntimeError,
    "E053: the output cannot be written."
);
create_exception!(
    featurecraft,
    TimeLimitError,
    RuntimeError,
    "E054: the run did not finish within its time limit (`timeout`); its cluster jobs were cancelled."
);
create_exception!(
    featurecraft,
    InternalError,
    FeaturecraftError,
    "A featurecraft bug: the engine failed where it should not; please report the call."
);

/// The class of a run failure, `None` for any other finding.
pub fn runtime_class<'py>(
    py: Python<'py>,
    d: &Diagnostic,
) -> Option<Bound<'py, pyo3::types::PyType>> {
    use pyo3::PyTypeInfo;
    Some(match d.code {
        Code::E050 => QueryError::type_object(py),
        Code::E051 => MemoryLimitError::type_object(py),
        Code::E052 => DataError::type_object(py),
        Code::E053 => OutputError::type_object(py),
        Code::E054 => TimeLimitError::type_object(py),
        _ => return None,
    })
}

/// Adds the exception classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("FeaturecraftError", py.get_type::<FeaturecraftError>())?;
    m.add("RecipeError", py.get_type::<RecipeError>())?;
    m.add("CatalogError", py.get_type::<CatalogError>())?;
    m.add("RuntimeError", py.get_type::<RuntimeError>())?;
    m.add("QueryError", py.get_type::<QueryError>())?;
    m.add("MemoryLimitError", py.get_type::<MemoryLimitError>())?;
    m.add("DataError", py.get_type::<DataError>())?;
    m.add("OutputError", py.get_type::<OutputError>())?;
    m.add("TimeLimitError", py.get_type::<TimeLimitError>())?;
    m.add("InternalError", py.get_type::<InternalError>())?;
    Ok(())
}
