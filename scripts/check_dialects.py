#!/usr/bin/env python3
"""check-dialects: run featurecraft's CTAS for each dialect in a real engine and compare the
table it builds with the one featurecraft builds in DataFusion.

Usage (through the wrapper, which owns the virtual environment):

    scripts/check-dialects --catalog fixtures/retail fixtures/recipes/good/*.json
    scripts/check-dialects --engines duckdb,postgres,spark --catalog DIR RECIPE.json

For each recipe: `featurecraft materialize` gives the DataFusion table; `featurecraft compile
--dialect D` gives each dialect's CTAS, which runs unchanged in that dialect's engine over the
same catalog (Parquet tables loaded, views created from their SQL); the table is read back
and compared with DataFusion's, by grain, column by column (floats within 1e-9 relative,
NULL and NaN told apart). Each engine also holds two sentinel tables (`featurecraft_sentinel`,
`pwned`): a CTAS that drops or changes them, or creates any table but its target, is reported
`tampered`. A recipe the compiler refuses must be refused in every dialect.

`--literals FILE` runs `SELECT <sql>` for each `{dialect, sql, expected}` of a JSON list in
that dialect's engine and checks the string it returns (featurecraft's escaper, tested in
the engines themselves). Snowflake and BigQuery have no engine here: their CTAS is read back
by sqlparser in the dialect's own grammar, and the report says so.

Engines are started by this script and stopped before it exits; every temporary folder is
removed, also on an error, SIGINT or SIGTERM. Exit status: 0 every engine agreed (or the
compiler refused a dialect with E040), 1 a difference or an engine error, 2 a usage problem
or an engine that is missing or does not start.
"""

import argparse
import atexit
import datetime as dt
import decimal
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REL_TOLERANCE = 1e-9

# The engines that run here, by the dialect they execute.
ENGINE_DIALECT = {"duckdb": "duckdb", "postgres": "postgres", "spark": "databricks"}
# Dialects with no engine here: compiled and parse-checked only.
PARSE_ONLY = ["snowflake", "bigquery"]


class EngineUnavailable(Exception):
    """An engine is not installed or did not start; the message says how to fix it."""


class Cleanup:
    """Everything to undo before exit (servers, temporary folders), newest first."""

    def __init__(self):
        self.steps = []

    def add(self, step):
        self.steps.append(step)

    def run(self):
        while self.steps:
            step = self.steps.pop()
            try:
                step()
            except Exception as e:  # cleanup goes on whatever one step raised
                print(f"check-dialects: cleanup: {e}", file=sys.stderr)


CLEANUP = Cleanup()
atexit.register(CLEANUP.run)


def on_signal(signum, _frame):
    # Unwind first: `subprocess.run` kills the child it waits for, and only then does the
    # `finally` around main() stop the servers and remove the folders.
    raise SystemExit(128 + signum)


def make_temp_dir(prefix):
    path = Path(tempfile.mkdtemp(prefix=prefix))
    CLEANUP.add(lambda: shutil.rmtree(path, ignore_errors=True))
    # Runs before the folder goes: a signal can land between a child's start and the code
    # that would wait for it, and an orphaned child would go on writing into the folder.
    CLEANUP.add(kill_children)
    return path


def kill_children():
    me = str(os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me:
            pid = int(stat.parent.name)
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass


def quote(name, quote_char='"'):
    """A possibly qualified name, each part quoted."""
    return ".".join(quote_char + part + quote_char for part in name.split("."))


# ---------------------------------------------------------------------------------------
# featurecraft itself


class Featurecraft:
    def __init__(self, binary, catalog):
        self.binary = binary
        self.catalog = catalog

    def _run(self, *args):
        return subprocess.run(
            [str(self.binary), *args], capture_output=True, text=True, check=False
        )

    def sources(self):
        out = self._run("describe-catalog", "--catalog", str(self.catalog), "--sources")
        if out.returncode != 0:
            raise SystemExit(f"check-dialects: cannot read the catalog: {out.stderr.strip()}")
        return json.loads(out.stdout)

    def compile(self, recipe, dialect):
        out = self._run(
            "compile", str(recipe), "--catalog", str(self.catalog),
            "--dialect", dialect, "--format", "json",
        )
        if out.returncode == 2:
            raise SystemExit(f"check-dialects: {recipe}: {out.stderr.strip()}")
        return json.loads(out.stdout)

    def materialize(self, recipe, warehouse):
        out = self._run(
            "materialize", str(recipe), "--catalog", str(self.catalog),
            "--warehouse", str(warehouse), "--domain", "datafusion",
        )
        if out.returncode != 0:
            return None, out.stderr.strip()
        return json.loads(out.stdout.strip().splitlines()[-1])["path"], None


# ---------------------------------------------------------------------------------------
# Engines


class DuckDb:
    name = "duckdb"
    install = "pip install duckdb (scripts/check-dialects installs it into its own virtual environment)"

    def start(self, sources, _work):
        try:
            import duckdb
        except ImportError as e:
            raise EngineUnavailable(f"DuckDB's Python package is missing ({e}); {self.install}")
        self.con = duckdb.connect(":memory:")
        CLEANUP.add(self.con.close)
        self.version = "DuckDB " + duckdb.__version__
        views = []
        for name, source in sources.items():
            create_schema_for(self.con.execute, name)
            if "parquet" in source:
                files = ", ".join("'" + str(Path(f).resolve()) + "'" for f in source["parquet"])
                self.con.execute(f"CREATE TABLE {quote(name)} AS SELECT * FROM read_parquet([{files}])")
            elif "view" in source:
                views.append((name, source["view"]))
        create_views(views, lambda name, sql: self.con.execute(f"CREATE VIEW {quote(name)} AS {sql}"))

    def run(self, ctas, target):
        create_schema_for(self.con.execute, target)
        self.con.execute(ctas)
        cursor = self.con.execute(f"SELECT * FROM {quote(target)}")
        columns = [d[0] for d in cursor.description]
        return columns, cursor.fetchall()

    def query(self, sql):
        return self.con.execute(sql).fetchall()

    def tables(self):
        return {
            f"{schema}.{name}"
            for schema, name in self.query("SELECT table_schema, table_name FROM information_schema.tables")
        }


class Postgres:
    name = "postgres"
    install = (
        "install PostgreSQL's server with `apt-get install postgresql` (Debian), "
        "or set FEATURECRAFT_PG_BINDIR to the folder holding initdb and postgres"
    )

    def bindir(self):
        candidates = []
        if os.environ.get("FEATURECRAFT_PG_BINDIR"):
            candidates.append(Path(os.environ["FEATURECRAFT_PG_BINDIR"]))
        else:
            candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
            on_path = shutil.which("initdb")
            if on_path:
                candidates.append(Path(on_path).resolve().parent)
        for c in candidates:
            if (c / "initdb").exists() and (c / "postgres").exists():
                return c
        where = ", ".join(str(c) for c in candidates) or "PATH and /usr/lib/postgresql/*/bin"
        raise EngineUnavailable(f"PostgreSQL's server (initdb, postgres) was not found in {where}; {self.install}")

    def start(self, sources, work):
        try:
            import psycopg
        except ImportError as e:
            raise EngineUnavailable(f"psycopg is missing ({e}); pip install 'psycopg[binary]'")
        bindir = self.bindir()
        data = work / "pgdata"
        sockets = work / "pgsock"
        sockets.mkdir()
        demote = None
        if os.geteuid() == 0:
            # PostgreSQL refuses to run as root: run it as the `postgres` user.
            import pwd
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                raise EngineUnavailable("running as root, and there is no `postgres` user to run PostgreSQL as; " + self.install)
            for path in (work, sockets):
                os.chown(path, user.pw_uid, user.pw_gid)
            os.chmod(work.parent, 0o711)  # mkdtemp's 0700 would keep that user out

            def demote():
                os.setgid(user.pw_gid)
                os.setuid(user.pw_uid)

        def die_with_parent():
            if demote:
                demote()
            # The server stops (immediate shutdown) if this script dies, even by SIGKILL.
            import ctypes
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGQUIT)

        try:
            init = subprocess.run(
                [str(bindir / "initdb"), "-D", str(data), "-U", "featurecraft", "--auth=trust",
                 "-E", "UTF8", "--locale=C", "--no-sync"],
                capture_output=True, text=True, preexec_fn=demote, check=False,
            )
        except (OSError, subprocess.SubprocessError) as e:
            raise EngineUnavailable(f"PostgreSQL's initdb in {bindir} cannot run: {e}")
        if init.returncode != 0:
            raise EngineUnavailable(f"PostgreSQL's initdb failed (exit {init.returncode}): {init.stderr.strip()[-500:]}")
        port = free_port()
        log = open(work / "postgres.log", "w")
        CLEANUP.add(log.close)
        try:
            self.server = subprocess.Popen(
                [str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(sockets),
                 "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off"],
                stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent,
            )
        except (OSError, subprocess.SubprocessError) as e:
            raise EngineUnavailable(f"PostgreSQL's server in {bindir} cannot run: {e}")
        CLEANUP.add(self.stop)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.con = psycopg.connect(host="127.0.0.1", port=port, user="featurecraft", dbname="postgres", autocommit=True)
                break
            except psycopg.OperationalError as e:
                if self.server.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    tail = (work / "postgres.log").read_text(errors="replace")[-500:]
                    raise EngineUnavailable(f"PostgreSQL did not start on 127.0.0.1:{port}: {e}; its log ends: {tail}")
                time.sleep(0.1)
        CLEANUP.add(self.con.close)
        self.version = "PostgreSQL " + self.con.execute("SHOW server_version").fetchone()[0].split()[0]
        import pyarrow.parquet as pq
        views = []
        for name, source in sources.items():
            create_schema_for(self.con.execute, name)
            if "parquet" in source:
                schema = pq.read_schema(source["parquet"][0])
                columns = ", ".join(f'"{f.name}" {postgres_type(f.type, name)}' for f in schema)
                self.con.execute(f"CREATE TABLE {quote(name)} ({columns})")
                names = ", ".join(f'"{f.name}"' for f in schema)
                with self.con.cursor() as cur:
                    with cur.copy(f"COPY {quote(name)} ({names}) FROM STDIN") as copy:
                        for file in source["parquet"]:
                            for batch in pq.ParquetFile(file).iter_batches(batch_size=65536):
                                for row in zip(*(c.to_pylist() for c in batch.columns)):
                                    copy.write_row(row)
            elif "view" in source:
                views.append((name, source["view"]))
        create_views(views, lambda name, sql: self.con.execute(f"CREATE VIEW {quote(name)} AS {sql}"))

    def stop(self):
        if self.server.poll() is None:
            self.server.send_signal(signal.SIGQUIT)  # immediate shutdown
            try:
                self.server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()

    def run(self, ctas, target):
        create_schema_for(self.con.execute, target)
        self.con.execute(f"DROP TABLE IF EXISTS {quote(target)}")
        self.con.execute(ctas)
        cursor = self.con.execute(f"SELECT * FROM {quote(target)}")
        columns = [d.name for d in cursor.description]
        return columns, cursor.fetchall()

    def query(self, sql):
        return self.con.execute(sql).fetchall()

    def tables(self):
        return {
            f"{schema}.{name}"
            for schema, name in self.query(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
            )
        }


def postgres_type(arrow_type, table):
    import pyarrow as pa
    t = arrow_type
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_uint8(t):
        return "smallint"
    if pa.types.is_int32(t) or pa.types.is_uint16(t):
        return "integer"
    if pa.types.is_int64(t) or pa.types.is_uint32(t):
        return "bigint"
    if pa.types.is_float32(t):
        return "real"
    if pa.types.is_float64(t):
        return "double precision"
    if pa.types.is_decimal(t):
        return f"numeric({t.precision},{t.scale})"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "text"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_timestamp(t):
        return "timestamptz" if t.tz else "timestamp"
    raise SystemExit(f"check-dialects: table `{table}`: no PostgreSQL type for Parquet type {t}")


class Spark:
    name = "spark"
    install = (
        "pip install pyspark (scripts/check-dialects installs it when --engines names spark) "
        "and a Java 17 runtime (`apt-get install openjdk-17-jre-headless`)"
    )

    def start(self, sources, work):
        try:
            from pyspark.sql import SparkSession
            import pyspark
        except ImportError as e:
            raise EngineUnavailable(f"PySpark is missing ({e}); {self.install}")
        if not shutil.which("java") and not os.environ.get("JAVA_HOME"):
            raise EngineUnavailable("no Java runtime on PATH; " + self.install)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        try:
            self.spark = (
                SparkSession.builder.master("local[2]")
                .appName("featurecraft-check-dialects")
                .config("spark.sql.warehouse.dir", str(work / "spark-warehouse"))
                .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={work}")
                .config("spark.sql.shuffle.partitions", "2")
                .config("spark.ui.enabled", "false")
                .config("spark.sql.session.timeZone", "UTC")
                .config("spark.ui.showConsoleProgress", "false")
                .getOrCreate()
            )
            self.spark.sparkContext.setLogLevel("ERROR")
        except Exception as e:
            raise EngineUnavailable(f"Spark did not start: {str(e)[-500:]}; {self.install}")
        CLEANUP.add(self.spark.stop)
        self.version = "Spark " + pyspark.__version__
        views = []
        for name, source in sources.items():
            create_schema_for(self.spark.sql, name, quote_char="`", schema_word="DATABASE")
            if "parquet" in source:
                frame = self.spark.read.parquet(*[str(Path(f).resolve()) for f in source["parquet"]])
                frame.write.saveAsTable(name)
            elif "view" in source:
                views.append((name, source["view"]))
        create_views(views, lambda name, sql: self.spark.sql(f"CREATE VIEW {quote(name, '`')} AS {sql}"))

    def run(self, ctas, target):
        create_schema_for(self.spark.sql, target, quote_char="`", schema_word="DATABASE")
        self.spark.sql(f"DROP TABLE IF EXISTS {quote(target, '`')}")
        # Databricks' tables are Delta tables, which take CREATE OR REPLACE; local Spark's
        # built-in catalog refuses REPLACE TABLE AS SELECT, so the statement's first words
        # become CREATE TABLE (the table was just dropped). The query itself runs unchanged.
        prefix = "CREATE OR REPLACE TABLE "
        if ctas.startswith(prefix):
            ctas = "CREATE TABLE " + ctas[len(prefix):]
        self.spark.sql(ctas)
        frame = self.spark.table(quote(target, "`"))
        return frame.columns, [tuple(r) for r in frame.collect()]

    def query(self, sql):
        return [tuple(r) for r in self.spark.sql(sql).collect()]

    def tables(self):
        found = set()
        for (database,) in self.query("SHOW DATABASES"):
            for row in self.query(f"SHOW TABLES IN `{database}`"):
                found.add(f"{database}.{row[1]}")
        return found


ENGINES = {"duckdb": DuckDb, "postgres": Postgres, "spark": Spark}


def create_schema_for(execute, name, quote_char='"', schema_word="SCHEMA"):
    if "." in name:
        schema = name.split(".")[0]
        execute(f"CREATE {schema_word} IF NOT EXISTS {quote_char}{schema}{quote_char}")


def create_views(views, create):
    """Views may read other views: create them in as many passes as it takes."""
    pending = list(views)
    while pending:
        failed = []
        for name, sql in pending:
            try:
                create(name, sql)
            except Exception as e:
                failed.append((name, sql, e))
        if len(failed) == len(pending):
            name, _, e = failed[0]
            raise EngineUnavailable(f"view `{name}` cannot be created: {e}")
        pending = [(n, s) for n, s, _ in failed]


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------
# Comparison


class Nan:
    """NaN as a value that equals itself, so it can be compared and printed."""

    def __eq__(self, other):
        return isinstance(other, Nan)

    def __hash__(self):
        return 0

    def __repr__(self):
        return "NaN"


def normalize(value):
    if isinstance(value, float) and math.isnan(value):
        return Nan()
    if isinstance(value, decimal.Decimal):
        return Nan() if value.is_nan() else float(value)
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def same_value(a, b):
    if is_number(a) and is_number(b):
        if a == b:
            return True
        return abs(a - b) <= REL_TOLERANCE * max(abs(a), abs(b))
    if type(a) is not type(b) and not (is_number(a) and is_number(b)):
        return False
    return a == b


def describe(v):
    if v is None:
        return "NULL"
    if isinstance(v, Nan):
        return "NaN"
    if isinstance(v, (dt.date, dt.datetime)):
        return f"{type(v).__name__} {v.isoformat()}"
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, bool):
        return f"boolean {v}"
    return f"{type(v).__name__} {v!r}"


def sort_key(row):
    def part(v):
        if v is None:
            return (0, "")
        if is_number(v):
            return (1, f"{v:.9g}")
        return (2, repr(v))
    return tuple(part(v) for v in row)


def keyed(columns, rows, grain):
    positions = [columns.index(g) for g in grain]
    by_key = {}
    for row in rows:
        row = tuple(normalize(v) for v in row)
        key = tuple(row[p] for p in positions)
        by_key.setdefault(repr(key), []).append(row)
    for key in by_key:
        by_key[key].sort(key=sort_key)
    return by_key


def compare(reference, candidate, grain, limit):
    """Differences between DataFusion's table and an engine's, at most `limit` listed."""
    ref_columns, ref_rows = reference
    columns, rows = candidate
    if ref_columns != columns:
        return len(ref_rows), [{"columns": {"datafusion": ref_columns, "engine": columns}}]
    differences = []
    total = 0
    left, right = keyed(ref_columns, ref_rows, grain), keyed(columns, rows, grain)
    for key in sorted(set(left) | set(right)):
        a, b = left.get(key, []), right.get(key, [])
        if len(a) != len(b):
            total += 1
            if len(differences) < limit:
                differences.append({"grain": key, "rows": {"datafusion": len(a), "engine": len(b)}})
            continue
        for row_a, row_b in zip(a, b):
            for column, va, vb in zip(ref_columns, row_a, row_b):
                if not same_value(va, vb):
                    total += 1
                    if len(differences) < limit:
                        differences.append({
                            "grain": key, "column": column,
                            "datafusion": describe(va), "engine": describe(vb),
                        })
    return total, differences


def shown_rows(columns, rows, grain, count):
    """The first `count` rows by grain, values described the same way for every engine."""
    if count <= 0:
        return []
    by_key = keyed(columns, rows, grain)
    out = []
    for key in sorted(by_key, key=lambda k: k)[:count]:
        for row in by_key[key]:
            out.append({c: display(v) for c, v in zip(columns, row)})
    return out


def display(v):
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if is_number(v):
        return float(f"{float(v):.12g}")
    if isinstance(v, (dt.date, dt.datetime)):
        return v.isoformat()
    if isinstance(v, Nan):
        return "NaN"
    return v


# ---------------------------------------------------------------------------------------


def check_recipe(featurecraft, recipe, engines, args, scratch):
    spec = json.loads(Path(recipe).read_text())
    grain = spec["entity_grain"]
    target = spec["target_table"]
    report = {"recipe": Path(recipe).name, "engines": []}
    path, error = featurecraft.materialize(recipe, scratch / "warehouse")
    reference = None
    if error:
        compiled = featurecraft.compile(recipe, "datafusion")
        if compiled["sql"] is None:
            # The compiler refused the recipe: every dialect is then checked for refusing it too.
            report["datafusion"] = {"verdict": "refused", "message": "; ".join(
                f'{d["code"]}: {d["message"]}' for d in compiled["diagnostics"] if d["severity"] == "error"
            )}
        else:
            report["datafusion"] = {"verdict": "error", "message": error}
            return report
    else:
        import pyarrow.parquet as pq
        table = pq.read_table(path)
        reference = (table.column_names, list(zip(*(c.to_pylist() for c in table.columns))))
        report["datafusion"] = {"rows": table.num_rows, "columns": table.num_columns}
        report["datafusion"]["shown"] = shown_rows(*reference, grain, args.show_rows)
    for engine in engines:
        dialect = ENGINE_DIALECT[engine.name]
        result = {"engine": engine.name, "dialect": dialect}
        compiled = featurecraft.compile(recipe, dialect)
        refusals = [d for d in compiled["diagnostics"] if d["severity"] == "error"]
        if compiled["sql"] is None:
            result["verdict"] = "refused"
            result["message"] = "; ".join(f'{d["code"]}: {d["message"]}' for d in refusals)
        elif reference is None:
            result["verdict"] = "error"
            result["message"] = "compiles here but not for DataFusion: " + report["datafusion"]["message"]
        else:
            before = engine.tables()
            try:
                columns, rows = engine.run(compiled["sql"], target)
            except Exception as e:
                result["verdict"] = "error"
                result["message"] = f"{type(e).__name__}: {str(e).strip()}"
            else:
                tampered = tampering(engine, before, target)
            if "verdict" in result:
                pass
            elif tampered:
                result["verdict"] = "tampered"
                result["message"] = tampered
            else:
                total, differences = compare(reference, (columns, rows), grain, args.max_differences)
                result["verdict"] = "same" if total == 0 else "different"
                result["rows"] = len(rows)
                if total:
                    result["differences"] = total
                    result["first_differences"] = differences
                result["shown"] = shown_rows(columns, rows, grain, args.show_rows)
        report["engines"].append(result)
    for dialect in PARSE_ONLY:
        compiled = featurecraft.compile(recipe, dialect)
        result = {"engine": None, "dialect": dialect}
        if compiled["sql"] is None:
            result["verdict"] = "refused"
            result["message"] = "; ".join(
                f'{d["code"]}: {d["message"]}' for d in compiled["diagnostics"] if d["severity"] == "error"
            )
        elif compiled["reparsed"]["ok"]:
            result["verdict"] = "parse-checked"
            result["message"] = f"not executed (no {dialect} engine here); the CTAS reads back in sqlparser's {dialect} grammar"
        else:
            result["verdict"] = "error"
            result["message"] = "the CTAS does not read back: " + compiled["reparsed"]["error"]
        report["engines"].append(result)
    return report


# The tables every engine holds besides the catalog: a recipe's CTAS must leave them as they
# are and create nothing but its target (an injected statement would drop or add one).
SENTINELS = ("featurecraft_sentinel", "pwned")


def create_sentinels(engine):
    for name in SENTINELS:
        sql = f"CREATE TABLE {name} AS SELECT 42 AS answer"
        if engine.name == "spark":
            engine.spark.sql(sql)
        else:
            engine.con.execute(sql)


def tampering(engine, before, target):
    """What a CTAS did besides creating its target, or None."""
    after = engine.tables()
    wanted = target if "." in target else None
    changes = []
    for t in sorted(before - after):
        changes.append(f"dropped {t}")
    for t in sorted(after - before):
        if wanted and t == target:
            continue
        if not wanted and t.split(".")[-1] == target:
            continue
        changes.append(f"created {t}")
    for name in SENTINELS:
        try:
            rows = engine.query(f"SELECT answer FROM {name}")
        except Exception as e:
            changes.append(f"{name} unreadable: {type(e).__name__}")
            continue
        if rows != [(42,)]:
            changes.append(f"{name} changed: {rows!r}")
    return "; ".join(changes) or None


def check_literals(engines, path):
    """Runs `SELECT <literal>` for each {dialect, sql, expected} and reports mismatches."""
    cases = json.loads(Path(path).read_text())
    checked, mismatches = 0, []
    for engine in engines:
        dialect = ENGINE_DIALECT[engine.name]
        for case in cases:
            if case["dialect"] != dialect:
                continue
            checked += 1
            try:
                got = engine.query(f"SELECT {case['sql']}")[0][0]
            except Exception as e:
                mismatches.append({"engine": engine.name, "sql": case["sql"], "error": f"{type(e).__name__}: {e}"})
                continue
            if got != case["expected"]:
                mismatches.append({"engine": engine.name, "sql": case["sql"], "expected": case["expected"], "got": got})
    return {"checked": checked, "mismatches": mismatches}


def print_text(report):
    df = report["datafusion"]
    if "rows" in df:
        print(f'{report["recipe"]}: DataFusion {df["rows"]} rows x {df["columns"]} columns')
    elif df.get("verdict") == "refused":
        print(f'{report["recipe"]}: refused by the compiler: {df["message"]}')
    else:
        print(f'{report["recipe"]}: DataFusion failed: {df["message"]}')
    for r in report["engines"]:
        label = f'{r["engine"] or "-"} ({r["dialect"]})'
        line = f'  {label:26} {r["verdict"]}'
        if r["verdict"] == "same":
            line += f': {r["rows"]} rows, every value equal'
        elif r["verdict"] == "different":
            line += f': {r["differences"]} difference(s) in {r["rows"]} rows'
        elif "message" in r:
            line += f': {r["message"]}'
        print(line)
        for d in r.get("first_differences", []):
            print(f"      {json.dumps(d)}")


def main():
    parser = argparse.ArgumentParser(prog="check-dialects", description=__doc__.split("\n\n")[0])
    parser.add_argument("recipes", nargs="*", type=Path)
    parser.add_argument("--catalog", required=True, type=Path)
    parser.add_argument("--engines", default="duckdb,postgres", help="comma-separated: duckdb, postgres, spark")
    parser.add_argument("--featurecraft", type=Path, default=ROOT / "target" / "debug" / "featurecraft",
                        help="the featurecraft binary (default: target/debug/featurecraft)")
    parser.add_argument("--format", choices=["text", "json"], default="text")
    parser.add_argument("--show-rows", type=int, default=0, help="include the first N rows by grain from every engine")
    parser.add_argument("--max-differences", type=int, default=5)
    parser.add_argument("--literals", type=Path,
                        help="a JSON list of {dialect, sql, expected}: run `SELECT <sql>` in that dialect's engine "
                             "and check it returns the expected string")
    args = parser.parse_args()
    if not args.recipes and not args.literals:
        parser.error("give recipes, --literals FILE, or both")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    if not args.featurecraft.exists():
        print(f"check-dialects: {args.featurecraft} does not exist: run `cargo build` first or pass --featurecraft", file=sys.stderr)
        return 2
    for recipe in args.recipes:
        if not recipe.is_file():
            print(f"check-dialects: recipe {recipe} does not exist", file=sys.stderr)
            return 2
    names = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [n for n in names if n not in ENGINES]
    if unknown:
        print(f"check-dialects: unknown engine(s) {', '.join(unknown)}; choose from {', '.join(ENGINES)}", file=sys.stderr)
        return 2

    featurecraft = Featurecraft(args.featurecraft, args.catalog)
    sources = featurecraft.sources()
    scratch = make_temp_dir("featurecraft-check-dialects-")
    engines = []
    for name in names:
        engine = ENGINES[name]()
        work = scratch / name
        work.mkdir()
        started = time.monotonic()
        try:
            engine.start(sources, work)
        except EngineUnavailable as e:
            print(f"check-dialects: {name}: {e}", file=sys.stderr)
            return 2
        print(f"check-dialects: {engine.version} loaded the catalog in {time.monotonic() - started:.1f}s", file=sys.stderr)
        create_sentinels(engine)
        engines.append(engine)

    reports = [check_recipe(featurecraft, r, engines, args, scratch) for r in args.recipes]
    literals = check_literals(engines, args.literals) if args.literals else None
    if args.format == "json":
        out = {"engines": {e.name: e.version for e in engines}, "recipes": reports}
        if literals is not None:
            out["literals"] = literals
        print(json.dumps(out, indent=2))
    else:
        for report in reports:
            print_text(report)
        if literals is not None:
            print(f'literals: {literals["checked"]} checked, {len(literals["mismatches"])} mismatched')
            for m in literals["mismatches"]:
                print(f"      {json.dumps(m)}")
    bad = any(
        r["verdict"] in ("different", "error", "tampered") for rep in reports for r in rep["engines"]
    ) or any(rep["datafusion"].get("verdict") == "error" for rep in reports)
    bad = bad or bool(literals and literals["mismatches"])
    return 1 if bad else 0


if __name__ == "__main__":
    try:
        code = main()
    finally:
        CLEANUP.run()
    sys.exit(code)
