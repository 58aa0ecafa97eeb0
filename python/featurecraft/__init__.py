"""featurecraft: compile a feature recipe into a checked CREATE TABLE AS SELECT and
validate it on a sample with DataFusion, in-process.

The functions are the library's own (the same as the ``featurecraft`` command line):
``compile``, ``validate``, ``materialize``, ``design``, ``retry`` and ``json_schema``.
Errors are ``RecipeError`` (the recipe's findings, with ``.diagnostics``),
``CatalogError`` and ``RuntimeError`` subclasses for runs that fail on the data.
"""

from ._native import (  # noqa: F401
    DIALECTS,
    Catalog,
    CatalogError,
    Compiled,
    DataError,
    Diagnostic,
    FeaturecraftError,
    InternalError,
    MemoryLimitError,
    OutputError,
    QueryError,
    RecipeError,
    RuntimeError,
    TimeLimitError,
    Validation,
    __version__,
    compile,
    design,
    json_schema,
    materialize,
    retry,
    validate,
)

__all__ = [
    "DIALECTS",
    "Catalog",
    "CatalogError",
    "Compiled",
    "DataError",
    "Diagnostic",
    "FeaturecraftError",
    "InternalError",
    "MemoryLimitError",
    "OutputError",
    "QueryError",
    "RecipeError",
    "RuntimeError",
    "TimeLimitError",
    "Validation",
    "__version__",
    "compile",
    "design",
    "json_schema",
    "materialize",
    "retry",
    "validate",
]
