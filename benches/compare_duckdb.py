#!/usr/bin/env python3
"""compare-duckdb: featurecraft against DuckDB (and DataFusion on the plain SQL) on the same
generated retail data, one process per measured run.

Usage (through the wrapper, which owns the virtual environment):

    benches/compare-duckdb [--scales 100000,1000000] [--runs 5] [--case churn,wide,pit]
                           [--layout generated|time-ordered] [--out BENCHMARKS.json]

For each scale (customers; events are about 20 per customer), with the release binary
target/rel/release/featurecraft (built by the wrapper):
- featurecraft validate (sample_size 10 000) and featurecraft materialize (full CTAS to
  Parquet) of benches/recipes/churn_bench.json;
- DuckDB running the compiled DuckDB SQL: the full query written to Parquet
  (`COPY (query) TO`), and the CTAS with `LIMIT 1000`;
- DataFusion (its Python package) running the plain compiled SQL (one CTE per source, no
  featurecraft tuning) to Parquet, below 1M customers (at 1M it runs out of memory);
- two scan floors: PyArrow decoding, in full, every column the recipe reads (under a full
  run) and only the grain columns of those sources (under a sampled run);
- the page floor (`--page-floor`, benches/page_floor.rs, built by the wrapper): the least
  any reader of these files pays for a sample spread over every page, each source's entity
  key decoded and every page of the other columns read fetched and decompressed, on 2
  threads. Its ratio to DuckDB's `LIMIT 1000` is the best validation's can be on these files.
Each case runs once to warm the page cache, then `--runs` rounds run every case in turn
(featurecraft and its peers under the same load on a shared machine); the median wall time
and the peak RSS of each run's process (wait4 in a small launcher, `benches/measured.py`)
are reported. A Python child also reports the time it worked after its imports
(`engine_median_s`), and the ratios use that time for the peers, against featurecraft's
whole process. The script also checks that
featurecraft's and DuckDB's tables have the same rows and, on 1000 sampled keys, the same
values, and that the rows validation sampled equal those entities' rows in the full table
exactly (floats bit for bit; within 1e-9 on `--layout time-ordered`, where the exact
differences are counted).

With `--case wide` it measures benches/recipes/wide_bench.json instead of churn_bench:
the same cases on 50 features over the same four sources (counts and sums per category,
averages, extremes, first and last times, one `COUNT(DISTINCT)`).

With `--case schedule` it measures benches/recipes/schedule_bench.json: the point-in-time
features of pit_bench over a generated spine (a cutoff every 30 days from 2025-01-01 while
the customer is active, at most 6 per customer) with a 30-day churn label from the events
after each cutoff: featurecraft validate and materialize against DuckDB on the compiled
DuckDB SQL (full and `LIMIT 1000`).

With `--case shapes` it measures benches/recipes/shapes_bench.json: 16 features of shapes
the other recipes lack (a view as a source, a `COUNT(DISTINCT)` beside only `SUM`/`MAX`,
`MIN`/`MAX` of strings, `MEDIAN`, `STDDEV`, a `COUNT(DISTINCT)` of a float), the same cases
as churn. A case may also be the path of a recipe of your own over the generated catalog.

With `--case pit` it measures the point-in-time recipe benches/recipes/pit_bench.json
(the `churn_cutoffs` spine, up to three cutoffs per customer, 15 features with 7/30/90-day
windows and an as-of value) instead: featurecraft validate and materialize, DuckDB on the
compiled DuckDB SQL (full and `LIMIT 1000`), and DuckDB on the same table written by hand
in DuckDB's best form (benches/recipes/pit_bench.duckdb.sql: `FILTER` aggregates straight
against the spine and an `ASOF JOIN`).

`featurecraft generate` writes each fact table clustered by customer (a customer's events
together), which is how a table partitioned or sorted by its key looks. With `--layout
time-ordered` every case runs instead on a copy of that catalog whose fact tables are
sorted by their time column, as an append-only log is written: each row group then holds
rows of nearly every customer. The copy (`bench-data/retail-N-time-ordered/`) is rewritten
by PyArrow from the generated files (Snappy, row groups of 131 072 rows, as generated);
the entity tables and views are links to the generated ones.
"""

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import measured

ROOT = Path(__file__).resolve().parent.parent
RECIPES = {
    "churn": ROOT / "benches" / "recipes" / "churn_bench.json",
    "pit": ROOT / "benches" / "recipes" / "pit_bench.json",
    "schedule": ROOT / "benches" / "recipes" / "schedule_bench.json",
    "shapes": ROOT / "benches" / "recipes" / "shapes_bench.json",
    "wide": ROOT / "benches" / "recipes" / "wide_bench.json",
}
RECIPE = RECIPES["churn"]
HAND_WRITTEN_PIT = ROOT / "benches" / "recipes" / "pit_bench.duckdb.sql"
# `--layout time-ordered`: each fact table of the generated catalog and the column it is
# sorted by.
TIME_COLUMNS = {
    "events": "event_ts",
    "orders": "order_date",
    "plan_changes": "changed_at",
    "subscriptions": "started_at",
    "support_tickets": "opened_at",
}


# A run may not take more address space than this: DataFusion on the plain SQL can grow
# past the machine's memory (its COUNT(DISTINCT) state is not tracked by its pool).
ADDRESS_SPACE_LIMIT = 12 << 30


class RunFailed(Exception):
    pass


def measure(command, env=None):
    """Wall seconds, peak RSS (MiB; the command's own, see `benches/measured.py`) and, for a
    Python child, the seconds it worked after its imports (interpreter start and `import
    duckdb` are not the engine's work)."""
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))

    with tempfile.TemporaryFile() as out:
        run = measured.run(command, env=env, stdout=out, preexec_fn=limit)
        out.seek(0)
        engine = re.findall(rb"^engine_s (\S+)$", out.read(), re.MULTILINE)
    if run.exit_code != 0:
        raise RunFailed(
            f"{' '.join(map(str, command[:3]))} failed after {run.elapsed:.1f} s, "
            f"peak RSS {run.peak_rss_mib:.0f} MiB: {run.stderr.strip()[-300:]}"
        )
    return run.elapsed, run.peak_rss_mib, float(engine[-1]) if engine else None


def summary(results):
    times = sorted(t for t, _, _ in results)
    summary = {"median_s": statistics.median(times), "min_s": times[0],
               "peak_rss_mib": max(r for _, r, _ in results)}
    engine = [e for _, _, e in results if e is not None]
    if engine:
        summary["engine_median_s"] = statistics.median(engine)
    return summary


def interleaved(cases, runs, customers):
    """Each case once to warm the page cache, then `runs` rounds of every case in turn: the
    peers are measured under the same load (this machine is shared), not an hour apart."""
    results, failed = {}, {}
    for name, command in cases.items():
        print(f"[{customers}] {name} (warm-up) …", file=sys.stderr)
        try:
            measure(command)
            results[name] = []
        except RunFailed as e:
            failed[name] = {"failed": str(e)}
    for round_ in range(runs):
        print(f"[{customers}] round {round_ + 1} of {runs} …", file=sys.stderr)
        for name in list(results):
            results[name].append(measure(cases[name]))
    return {**{name: summary(r) for name, r in results.items()}, **failed}


def query_of(ctas):
    """The SELECT of a rendered CTAS (`CREATE … AS\\n<query>`)."""
    return ctas.split("\n", 1)[1]


# ---------------------------------------------------------------------------------------
# Children: one engine run each, in a process of its own.


def engine_time(started):
    """Tells the parent how long the child worked after its imports (see `measure`)."""
    print(f"engine_s {time.monotonic() - started}")


def child_duckdb(sources, sql_file, out, limit, is_query=False):
    import duckdb
    started = time.monotonic()
    con = duckdb.connect(":memory:")
    con.execute("SET threads = 2")
    load_duckdb(con, json.loads(Path(sources).read_text()))
    text = Path(sql_file).read_text()
    if limit:
        con.execute(text + f"\nLIMIT {limit}")
    else:
        query = text if is_query else query_of(text)
        con.execute(f"COPY ({query}) TO '{out}' (FORMAT parquet)")
    engine_time(started)


def load_duckdb(con, sources):
    for name, source in sources.items():
        if "." in name:
            con.execute(f'CREATE SCHEMA IF NOT EXISTS "{name.split(".")[0]}"')
        quoted = ".".join(f'"{p}"' for p in name.split("."))
        if "parquet" in source:
            files = ", ".join(f"'{f}'" for f in source["parquet"])
            con.execute(f"CREATE VIEW {quoted} AS SELECT * FROM read_parquet([{files}])")
    for name, source in sources.items():
        if "view" in source:
            con.execute(f'CREATE VIEW "{name}" AS {source["view"]}')


def child_datafusion(sources, sql_file, out):
    from datafusion import SessionConfig, SessionContext
    started = time.monotonic()
    ctx = SessionContext(SessionConfig().with_target_partitions(2))
    for name, source in json.loads(Path(sources).read_text()).items():
        if "parquet" in source and "." not in name:
            path = source["parquet"][0] if len(source["parquet"]) == 1 else str(Path(source["parquet"][0]).parent)
            ctx.register_parquet(name, path)
    ctx.sql(query_of(Path(sql_file).read_text())).write_parquet(out)
    engine_time(started)


def columns_read(sources, recipe):
    """Each Parquet source the recipe reads: its files, its grain columns (the entity key
    first) and the other columns read (features' expressions, the label, the timed
    sources' time columns). A view's own sources are not followed."""
    import pyarrow.dataset as ds
    label = recipe["label"]
    words = lambda text: set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text or ""))
    read = {}
    for feature in recipe["features"]:
        read.setdefault(feature["source_table"], set()).update(words(feature["expression"]))
    for table, time_column in (recipe.get("point_in_time") or {}).get("time_columns", {}).items():
        if time_column:
            read.setdefault(table, set()).add(time_column)
    label_words = words(label.get("column")) | words(label.get("derivation"))
    if label.get("source_table"):
        read.setdefault(label["source_table"], set()).update(words(label.get("expression")))
    found = {}
    for name, source in sources.items():
        if "parquet" not in source:
            continue
        columns = set(ds.dataset(source["parquet"], format="parquet").schema.names)
        wanted = read.get(name, set())
        if label.get("column") in columns:
            wanted = wanted | label_words
        if not wanted:
            continue
        grain = [g for g in recipe["entity_grain"] if g in columns]
        found[name] = (source["parquet"], grain, sorted((wanted & columns) - set(grain)))
    return found


def child_scan(sources, recipe, what):
    """Decodes, in full, the columns of each Parquet source the recipe reads: all of them
    (`what` = "columns": the floor under a full run) or only the grain columns ("keys": the
    floor under the sampled run, which must read every row's key)."""
    import pyarrow
    import pyarrow.dataset as ds
    started = time.monotonic()
    pyarrow.set_cpu_count(2)
    recipe = json.loads(Path(recipe).read_text())
    for files, grain, values in columns_read(json.loads(Path(sources).read_text()), recipe).values():
        columns = grain if what == "keys" else grain + values
        ds.dataset(files, format="parquet").to_table(columns=columns, use_threads=True)
    engine_time(started)


def page_floor_command(page_floor, sources, recipe):
    """`benches/page_floor.rs` on the recipe's sources: the least a sampled run spread over
    every page costs any reader (each source's entity key decoded, every page of the other
    columns read fetched and decompressed), on 2 threads."""
    specs = []
    for files, grain, values in columns_read(json.loads(Path(sources).read_text()),
                                             json.loads(Path(recipe).read_text())).values():
        # The entity key decides whether a row is sampled; another grain column (a
        # cutoff) is a value the sampled rows need.
        if not grain:
            continue  # no entity key to decode: left out, the floor stays a floor
        values = grain[1:] + values
        specs += [f"{file}:{grain[0]}" + (f":{','.join(values)}" if values else "") for file in files]
    return [page_floor, "2"] + specs


# ---------------------------------------------------------------------------------------


def time_ordered(generated):
    """The time-ordered copy of the `generated` catalog (see `--layout`), written once."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq
    copy = generated.with_name(generated.name + "-time-ordered")
    done = copy / ".complete"
    if done.exists():
        return copy
    subprocess.run(["rm", "-rf", str(copy)], check=True)
    copy.mkdir()
    for entry in sorted(generated.iterdir()):
        table = entry.name.removesuffix(".parquet")
        if table not in TIME_COLUMNS:
            (copy / entry.name).symlink_to(entry.resolve())
            continue
        rows = ds.dataset(entry, format="parquet").to_table()
        rows = rows.take(pc.sort_indices(rows, [(TIME_COLUMNS[table], "ascending")]))
        files = sorted(entry.glob("*.parquet")) if entry.is_dir() else [entry]
        if entry.is_dir():
            (copy / entry.name).mkdir()
        step = -(-rows.num_rows // len(files))
        for i, file in enumerate(files):
            pq.write_table(rows.slice(i * step, step), copy / file.relative_to(generated),
                           row_group_size=131072, compression="snappy")
    done.touch()
    return copy


def compile_sql(featurecraft, catalog, dialect, work):
    out = subprocess.run(
        [featurecraft, "compile", RECIPE, "--catalog", catalog, "--dialect", dialect],
        capture_output=True, text=True, check=True,
    ).stdout
    path = work / f"{dialect}.sql"
    path.write_text(out.rstrip().rstrip(";"))
    return path


def rows_by_key(table, key):
    columns = table.column_names
    data = table.to_pydict()
    keys = zip(*(data[k] for k in key))
    return {k: {c: data[c][i] for c in columns} for i, k in enumerate(keys)}


def same(a, b):
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        a, b = float(a), float(b)
        return a == b or abs(a - b) <= 1e-9 * max(abs(a), abs(b))
    return a == b


def check_tables(ours_path, theirs_path, sample_keys, key, same_rows=True, exact=False,
                 skip=(), count_inexact=False):
    """`ours` against `theirs` on `sample_keys`: the first problems and how many values differ
    (and with `count_inexact`, how many of the values within tolerance differ in their bits)."""
    import pyarrow.parquet as pq
    ours, theirs = pq.read_table(ours_path), pq.read_table(theirs_path)
    problems, inexact = [], 0
    if same_rows and ours.num_rows != theirs.num_rows:
        problems.append(f"rows: featurecraft {ours.num_rows}, other {theirs.num_rows}")
    a, b = rows_by_key(ours, key), rows_by_key(theirs, key)
    keys = [k for k in sample_keys if k in a]
    for k in keys:
        for column, value in a[k].items():
            if column in skip:
                continue
            other = b.get(k, {}).get(column)
            if hasattr(value, "isoformat") and hasattr(other, "isoformat"):
                value, other = value.isoformat(), other.isoformat()
            if not (value == other if exact else same(value, other)):
                problems.append(f"customer {k}, {column}: featurecraft {value!r}, other {other!r}")
            elif value != other and value == value:
                inexact += 1
    result = {"rows": ours.num_rows, "keys_checked": len(keys), "problems": problems[:5],
              "differences": len(problems)}
    if count_inexact:
        result["values_not_bit_for_bit"] = inexact
    return result


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind = sys.argv[2]
        if kind == "duckdb":
            child_duckdb(*sys.argv[3:6], int(sys.argv[6]))
        elif kind == "duckdb-query":
            child_duckdb(*sys.argv[3:6], 0, is_query=True)
        elif kind == "scan":
            child_scan(*sys.argv[3:6])
        else:
            child_datafusion(*sys.argv[3:6])
        return 0
    parser = argparse.ArgumentParser(prog="compare-duckdb")
    parser.add_argument("--scales", default="100000,1000000")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--featurecraft", default=str(ROOT / "target" / "rel" / "release" / "featurecraft"))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--page-floor", default=None,
                        help="the page_floor bench binary (benches/page_floor.rs; the wrapper builds it)")
    parser.add_argument("--case", default="churn",
                        help=f"one of {', '.join(sorted(RECIPES))} or a recipe file, or several separated "
                             "by commas (each measured in turn, all in one output)")
    parser.add_argument("--layout", choices=("generated", "time-ordered"), default="generated",
                        help="the fact tables as generated (clustered by customer) or sorted by time")
    args = parser.parse_args()
    cases = args.case.split(",")
    unknown = [c for c in cases if c not in RECIPES and not Path(c).is_file()]
    if unknown:
        parser.error(f"unknown case {', '.join(map(repr, unknown))}: choose from "
                     f"{', '.join(sorted(RECIPES))} or give a recipe file")
    if args.out is None:
        names = [c if c in RECIPES else Path(c).stem for c in cases]
        layout = "" if args.layout == "generated" else f"-{args.layout}"
        args.out = ROOT / "bench-data" / f"compare-duckdb-{'-'.join(names)}{layout}.json"
    results = [run_case(case, args) for case in cases]
    output = results[0] if len(results) == 1 else {"cases": results}
    args.out.write_text(json.dumps(output, indent=2))
    print(json.dumps(output, indent=2))
    return 0


def run_case(case, args):
    """One recipe's comparison at every scale of `args.scales`."""
    global RECIPE
    RECIPE = RECIPES[case] if case in RECIPES else Path(case).resolve()
    pit = case == "pit"
    # A schedule is point in time too, with no hand-written DuckDB form.
    timed = case in ("pit", "schedule")
    grain = json.loads(RECIPE.read_text())["entity_grain"]
    target = json.loads(RECIPE.read_text())["target_table"]
    fc = args.featurecraft
    import duckdb
    import datafusion

    results = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                   f"{round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB, {platform.platform()}",
        "duckdb": duckdb.__version__,
        "datafusion_python": datafusion.__version__,
        "runs": args.runs,
        "case": case,
        "layout": args.layout,
        "scales": [],
    }
    for customers in [int(s) for s in args.scales.split(",")]:
        catalog = ROOT / "bench-data" / f"retail-{customers}"
        if not (catalog / "churn_cutoffs.parquet").exists():
            subprocess.run([fc, "generate", "--out", catalog, "--customers", str(customers),
                            "--event-files", "8"], check=True)
        if args.layout == "time-ordered":
            catalog = time_ordered(catalog)
        work = Path(tempfile.mkdtemp(prefix="featurecraft-bench-", dir=ROOT / "bench-data"))
        sources = work / "sources.json"
        sources.write_text(subprocess.run([fc, "describe-catalog", "--catalog", catalog, "--sources"],
                                          capture_output=True, text=True, check=True).stdout)
        duck_sql = compile_sql(fc, catalog, "duckdb", work)
        plain_sql = compile_sql(fc, catalog, "generic", work)
        me = [sys.executable, __file__, "--child"]
        cases = {
            "featurecraft validate (sample 10 000)": [fc, "validate", RECIPE, "--catalog", catalog,
                                                      "--sample-size", "10000", "--memory-limit", "2G"],
            "featurecraft materialize (full, Parquet)": [fc, "materialize", RECIPE, "--catalog", catalog,
                                                         "--warehouse", work / "warehouse", "--domain", "fc",
                                                         "--memory-limit", "2G"],
            "DuckDB full query (Parquet)": me + ["duckdb", sources, duck_sql, work / "duckdb.parquet", "0"],
            "DuckDB CTAS with LIMIT 1000": me + ["duckdb", sources, duck_sql, work / "unused.parquet", "1000"],
            "DataFusion plain SQL (Parquet)": me + ["datafusion", sources, plain_sql, work / "datafusion-plain"],
            "scan floor: decode the columns read (PyArrow)": me + ["scan", sources, RECIPE, "columns"],
            "scan floor: decode the key columns (PyArrow)": me + ["scan", sources, RECIPE, "keys"],
        }
        if args.page_floor:
            cases["page floor: keys decoded, pages of the columns read decompressed"] = page_floor_command(
                args.page_floor, sources, RECIPE)
        if timed:
            # DataFusion's Python package on the plain SQL is measured in the churn case.
            del cases["DataFusion plain SQL (Parquet)"]
        if pit:
            # Here DuckDB's hand-written best form is the second peer.
            cases["DuckDB hand-written (FILTER, ASOF JOIN; Parquet)"] = me + [
                "duckdb-query", sources, HAND_WRITTEN_PIT, work / "duckdb-hand.parquet"]
        if customers >= 1_000_000:
            # Its COUNT(DISTINCT) state outgrows the address-space limit at L every time,
            # after about a minute; it is measured at smaller scales.
            cases.pop("DataFusion plain SQL (Parquet)", None)
        scale = {"customers": customers, "cases": interleaved(
            {name: [str(c) for c in command] for name, command in cases.items()}, args.runs,
            customers)}
        c = scale["cases"]
        # featurecraft's time is its whole process; a Python peer's is its work after the
        # imports (its whole process is in the table too, as median_s).
        def peer(name):
            case = c[name]
            return case.get("engine_median_s", case.get("median_s"))

        validate = c["featurecraft validate (sample 10 000)"]["median_s"]
        materialize = c["featurecraft materialize (full, Parquet)"]["median_s"]
        plain = peer("DataFusion plain SQL (Parquet)") if "DataFusion plain SQL (Parquet)" in c else None
        duck_full = peer("DuckDB full query (Parquet)")
        scale["ratios"] = {
            "validate / DuckDB LIMIT 1000": validate / peer("DuckDB CTAS with LIMIT 1000"),
            "materialize / DuckDB full": materialize / duck_full,
            "DataFusion plain / DuckDB full": plain / duck_full if plain else None,
            "validate / key-column scan floor": validate / peer("scan floor: decode the key columns (PyArrow)"),
            "materialize / column scan floor": materialize / peer("scan floor: decode the columns read (PyArrow)"),
        }
        floor = "page floor: keys decoded, pages of the columns read decompressed"
        if floor in c and "failed" not in c[floor]:
            # What validation could reach on these files at best: the floor's own ratio to
            # DuckDB's LIMIT 1000, and validation's distance from it.
            scale["ratios"]["page floor / DuckDB LIMIT 1000"] = peer(floor) / peer("DuckDB CTAS with LIMIT 1000")
            scale["ratios"]["validate / page floor"] = validate / peer(floor)
        if pit:
            scale["ratios"]["materialize / DuckDB hand-written"] = materialize / peer(
                "DuckDB hand-written (FILTER, ASOF JOIN; Parquet)")
        # Correctness: the same table as DuckDB's, and sampled rows equal to the full run's.
        import pyarrow.parquet as pq
        ours = work / "warehouse" / "fc" / target
        subprocess.run([fc, "validate", RECIPE, "--catalog", catalog, "--sample-size", "10000",
                        "--sample-out", work / "sample.parquet"], check=True, stdout=subprocess.DEVNULL)
        sample = pq.read_table(work / "sample.parquet")
        keys = list(zip(*(sample.column(g).to_pylist() for g in grain)))
        scale["materialize_vs_duckdb"] = check_tables(ours, work / "duckdb.parquet", keys[:1000], grain)
        if pit:
            # The hand-written form breaks as-of ties arbitrarily: current_plan is not compared.
            scale["materialize_vs_duckdb_hand_written"] = check_tables(
                ours, work / "duckdb-hand.parquet", keys[:1000], grain, skip=("current_plan",))
        # Sampled values must be the full run's own, bit for bit; on a time-ordered layout a
        # float sum's last bit may differ (README, "Where a float sum's last bit can move"), so
        # there they are compared as with DuckDB, and the exact differences are counted.
        exact = args.layout == "generated"
        scale["sample_vs_full"] = check_tables(work / "sample.parquet", ours, keys, grain,
                                               same_rows=False, exact=exact,
                                               count_inexact=not exact)
        scale["sample_vs_full"].pop("rows")
        scale["sample_rows"] = sample.num_rows
        results["scales"].append(scale)
        subprocess.run(["rm", "-rf", str(work)], check=True)
        print(json.dumps(scale, indent=2), file=sys.stderr)
    return results


if __name__ == "__main__":
    sys.exit(main())
