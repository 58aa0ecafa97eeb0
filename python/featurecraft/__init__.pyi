"""Type stubs of featurecraft's Python package (the native module re-exported)."""

import builtins
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import pyarrow

__version__: str
DIALECTS: List[str]

JSON = Dict[str, Any]
PathLike = Union[str, "os.PathLike[str]"]
RecipeInput = Union[Mapping[str, Any], str, "os.PathLike[str]"]
CatalogInput = Union["Catalog", Mapping[str, Any], str, "os.PathLike[str]"]

class FeaturecraftError(Exception):
    """Every error featurecraft raises on purpose."""

class RecipeError(FeaturecraftError):
    """The recipe has errors (or warnings, when strict); str() is the CLI's caret report."""

    diagnostics: List["Diagnostic"]

class CatalogError(FeaturecraftError):
    """The catalog cannot be read, or holds no data where a query must run."""

class RuntimeError(FeaturecraftError):
    """The query failed on the data (E050-E053)."""

    diagnostics: List["Diagnostic"]

class QueryError(RuntimeError):
    """E050: the query failed while running."""

class MemoryLimitError(RuntimeError):
    """E051: the run exceeded its memory limit."""

class DataError(RuntimeError):
    """E052: a data file is missing or unreadable."""

class OutputError(RuntimeError):
    """E053: the output cannot be written."""

class TimeLimitError(RuntimeError):
    """E054: the run did not finish within `timeout`; its cluster jobs were cancelled."""

class InternalError(FeaturecraftError):
    """A featurecraft bug; please report the call."""

class Diagnostic:
    """One finding, as the CLI's `--format json` has it."""

    @property
    def code(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def path(self) -> Optional[str]: ...
    @property
    def span(self) -> Optional[Dict[str, Dict[str, int]]]: ...
    @property
    def hints(self) -> List[str]: ...
    def to_dict(self) -> JSON: ...

class Compiled:
    """A compiled recipe: `sql` when `ok`, and every finding."""

    @property
    def sql(self) -> Optional[str]: ...
    @property
    def dialect(self) -> str: ...
    @property
    def ok(self) -> bool: ...
    @property
    def diagnostics(self) -> List[Diagnostic]: ...
    @property
    def report(self) -> str: ...
    def check(self) -> str:
        """The SQL, or RecipeError when the recipe did not compile."""

class Validation:
    """A validation on a sample."""

    @property
    def summary(self) -> JSON: ...
    @property
    def sql(self) -> Optional[str]: ...
    @property
    def sample(self) -> Optional[pyarrow.Table]: ...
    @property
    def diagnostics(self) -> List[Diagnostic]: ...

class Catalog:
    """A catalog loaded once: a directory, a JSON catalog file, or the JSON form as a dict."""

    def __init__(self, source: Union[PathLike, Mapping[str, Any]]) -> None: ...
    def tables(self) -> List[str]: ...
    @property
    def has_data(self) -> bool: ...

def compile(
    recipe: RecipeInput,
    catalog: CatalogInput,
    dialect: str = "generic",
    strict: bool = False,
) -> Compiled: ...
def validate(
    recipe: RecipeInput,
    catalog: CatalogInput,
    sample_size: int = 10_000,
    null_threshold: float = 0.5,
    memory_limit: str = "2G",
    return_sample: bool = False,
    dialect: str = "datafusion",
    strict: bool = False,
    engine: str = "local",
    timeout: Optional[float] = None,
    leak_threshold: float = 0.95,
) -> Validation: ...
def materialize(
    recipe: RecipeInput,
    catalog: CatalogInput,
    warehouse: PathLike,
    domain: Optional[str] = None,
    memory_limit: str = "2G",
    engine: str = "local",
    timeout: Optional[float] = None,
    table_format: str = "parquet",
) -> str: ...
def design(
    catalog: CatalogInput,
    spine: str,
    grain: Sequence[str],
    label_column: Optional[str],
    *,
    label_type: str = "binary",
    label_name: str = "label",
    derivation: Optional[str] = None,
    positive_class: Any = None,
    max_features: Optional[int] = None,
    target_table: str = "designed_features",
    cutoff_column: Optional[str] = None,
    time_columns: Optional[Mapping[str, Optional[str]]] = None,
    windows: Optional[Sequence[str]] = None,
    include_cutoff: bool = False,
    schedule: Optional[Mapping[str, Any]] = None,
    label: Optional[Mapping[str, Any]] = None,
    relationships: Union[Mapping[str, str], Sequence[Mapping[str, str]], None] = None,
    max_depth: int = 2,
    primitives: Optional[Sequence[str]] = None,
    sample_size: int = 10_000,
    null_threshold: float = 0.5,
    memory_limit: str = "2G",
    engine: str = "local",
    timeout: Optional[float] = None,
    leak_threshold: float = 0.95,
) -> JSON: ...
def retry(
    job: Mapping[str, Any],
    catalog: CatalogInput,
    sample_size: int = 10_000,
    memory_limit: str = "2G",
    fix: bool = False,
    engine: str = "local",
    timeout: Optional[float] = None,
    leak_threshold: float = 0.95,
    crew_command: Optional[str] = None,
    crew_rounds: int = 3,
    crew_timeout: float = 300.0,
) -> JSON: ...
def json_schema(kind: str = "recipe") -> JSON: ...

__all__: List[builtins.str]
