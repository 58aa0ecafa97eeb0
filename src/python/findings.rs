//! Findings as Python sees them: the `Diagnostic` class (the command line's JSON shape),
//! the caret report, and the exception a failed call raises with them attached; and the
//! JSON bridge every result crosses (Python's own `json` module, so a dict is exactly the
//! contract's JSON).

use super::errors::{InternalError, RecipeError, runtime_class};
use crate::compile::Compiled;
use crate::diagnostic::Diagnostic;
use pyo3::prelude::*;
use pyo3::types::PyList;

/// A Rust JSON value as the Python object `json.loads` makes of it.
pub fn to_python<'py>(py: Python<'py>, value: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(value).map_err(|e| InternalError::new_err(e.to_string()))?;
    py.import("json")?.call_method1("loads", (text,))
}

/// A Python object as JSON text, by `json.dumps` (a `TypeError` names what is not JSON).
pub fn json_text(object: &Bound<'_, PyAny>) -> PyResult<String> {
    let py = object.py();
    py.import("json")?
        .call_method1("dumps", (object,))?
        .extract::<String>()
}

/// Findings that a call reports: the diagnostics and the caret report of them.
#[derive(Debug, Clone, Default)]
pub struct Findings {
    /// Every finding, errors and warnings.
    pub diagnostics: Vec<Diagnostic>,
    /// The report the command line prints for them.
    pub report: String,
}

/// `text` with the library's names of options as this package's keywords spell them: a
/// run's `time_limit` is the keyword argument `timeout` here.
pub fn python_spelling(text: &str) -> String {
    text.replace("`time_limit`", "`timeout`")
}

impl Findings {
    /// The findings of a compile, reported under `name` (the recipe's path or `<recipe>`).
    pub fn of(compiled: &Compiled, name: &str) -> Findings {
        Findings::spelled(compiled.diagnostics.clone(), &compiled.report(name))
    }

    /// Findings reported without a recipe's source: a failed run's, the crew's.
    pub fn unsourced(diagnostics: Vec<Diagnostic>) -> Findings {
        let report: String = diagnostics.iter().map(|d| d.render(None)).collect();
        Findings::spelled(diagnostics, &report)
    }

    fn spelled(mut diagnostics: Vec<Diagnostic>, report: &str) -> Findings {
        for d in &mut diagnostics {
            d.message = python_spelling(&d.message);
            for hint in &mut d.hints {
                *hint = python_spelling(hint);
            }
        }
        Findings {
            diagnostics,
            report: python_spelling(report),
        }
    }

    /// True when an error was found, or, in strict mode, any finding.
    pub fn fails(&self, strict: bool) -> bool {
        crate::diagnostic::fail(&self.diagnostics, strict)
    }
}

/// One finding about a recipe, a catalog or a run, as the command line's JSON has it.
#[pyclass(frozen, name = "Diagnostic", module = "featurecraft")]
pub struct PyDiagnostic {
    json: serde_json::Value,
    rendered: String,
}

#[pymethods]
impl PyDiagnostic {
    /// The stable code, such as `E021`.
    #[getter]
    fn code(&self) -> Option<&str> {
        self.json.get("code").and_then(|v| v.as_str())
    }

    /// `error` or `warning`.
    #[getter]
    fn severity(&self) -> Option<&str> {
        self.json.get("severity").and_then(|v| v.as_str())
    }

    /// What is wrong, in a sentence.
    #[getter]
    fn message(&self) -> Option<&str> {
        self.json.get("message").and_then(|v| v.as_str())
    }

    /// Where in the recipe (`features[3].expression`), `None` for the whole recipe.
    #[getter]
    fn path(&self) -> Option<&str> {
        self.json.get("path").and_then(|v| v.as_str())
    }

    /// `{"start": {"line", "column"}, "end": {...}}` inside the fragment, or `None`.
    #[getter]
    fn span<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(
            py,
            self.json.get("span").unwrap_or(&serde_json::Value::Null),
        )
    }

    /// Suggestions, such as "did you mean `amount`?".
    #[getter]
    fn hints(&self) -> Vec<String> {
        self.json
            .get("hints")
            .and_then(|v| v.as_array())
            .map(|hints| {
                hints
                    .iter()
                    .filter_map(|h| h.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The diagnostic as the command line's `--format json` prints it.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, &self.json)
    }

    fn __str__(&self) -> &str {
        &self.rendered
    }

    fn __repr__(&self) -> String {
        format!(
            "Diagnostic(code={:?}, severity={:?}, path={:?}, message={:?})",
            self.code().unwrap_or(""),
            self.severity().unwrap_or(""),
            self.path(),
            self.message().unwrap_or("")
        )
    }
}

/// The findings as a Python list of `Diagnostic` objects.
pub fn diagnostic_objects<'py>(
    py: Python<'py>,
    findings: &Findings,
) -> PyResult<Bound<'py, PyList>> {
    let mut objects = Vec::with_capacity(findings.diagnostics.len());
    for d in &findings.diagnostics {
        let json = serde_json::to_value(d).map_err(|e| InternalError::new_err(e.to_string()))?;
        objects.push(Bound::new(
            py,
            PyDiagnostic {
                json,
                rendered: d.render(None),
            },
        )?);
    }
    PyList::new(py, objects)
}

/// The exception for findings that stop a call: a runtime class when a run failed on the
/// data (the first `E05x` decides which), `RecipeError` otherwise. The exception carries
/// the findings as `.diagnostics`.
pub fn findings_error(py: Python<'_>, findings: &Findings) -> PyErr {
    let runtime = findings
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .find_map(|d| runtime_class(py, d));
    let err = match runtime {
        Some(class) => PyErr::from_type(class, findings.report.clone()),
        None => RecipeError::new_err(findings.report.clone()),
    };
    match diagnostic_objects(py, findings) {
        Ok(list) => {
            if let Err(e) = err.value(py).setattr("diagnostics", list) {
                return e;
            }
            err
        }
        Err(e) => e,
    }
}
