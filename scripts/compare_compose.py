#!/usr/bin/env python3
"""compare-compose: featurecraft's cutoff schedules and labels from the future against
Alteryx Compose's LabelMaker, row for row.

Usage (through the wrapper, which owns the virtual environment):

    scripts/compare-compose [--customers 300] [--seed 7] [--format text|json]

1. Event data is generated (seeded): each customer has a few to a few dozen events with
   an amount, over two months, at random minutes, plus events exactly on the cutoff grid
   (so rows sit at a cutoff and at a window's end). It is written as a Parquet catalog
   (`events`).
2. For each problem, featurecraft materializes a recipe with a `schedule` and a windowed
   label (`featurecraft materialize`, the table read back from its Parquet files), and
   Compose 0.10 builds the same problem with `LabelMaker(...).search` on the same data:
   `minimum_data` is the schedule's fixed `start`, Compose's `gap` its `every`,
   `window_size` the label window, `drop_empty` is `not keep_empty`,
   `num_examples_per_instance` its `max_per_entity` (-1 for all). Compose's slice is
   `[cutoff, cutoff + window)` and its cutoffs stop at each customer's last event: the
   recipes use `include_cutoff: false`, a zero gap and `until: last_event`.
3. The (customer, cutoff) rows must be identical, and every label equal (floats within
   1e-9 relative).

Two problems Compose cannot state are compared with a plain Python reference written from
the README's rules instead: `first_event` starts (Compose's time offsets did not finish
here), and a fixed `until` past the end of the data (Compose stops at each customer's last
event; there featurecraft's rows up to that event must equal Compose's, and the rows after
it are checked against the reference and counted as immature, as `W105` reports them).

Exit status: 0 every problem agreed, 1 a difference, 2 a usage or setup problem.
"""

import argparse
import json
import math
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import composeml as cp
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
START = pd.Timestamp("2024-01-05 00:00:00")


def generate(customers, seed):
    """Seeded events: (customer_id, event_time, amount), sorted by time."""
    rng = random.Random(seed)
    rows = []
    for customer in range(1, customers + 1):
        first = START - pd.Timedelta(days=rng.randint(0, 10)) + pd.Timedelta(minutes=rng.randint(0, 1440))
        span_days = rng.randint(1, 60)
        for _ in range(rng.randint(1, 30)):
            at = first + pd.Timedelta(minutes=rng.randint(0, span_days * 1440))
            rows.append((customer, at, round(rng.uniform(1, 200), 2)))
        # Events exactly on the grid of the problems' cutoffs (every 12 hours from START).
        for _ in range(rng.randint(0, 3)):
            at = START + pd.Timedelta(hours=12 * rng.randint(0, 2 * span_days))
            rows.append((customer, at, round(rng.uniform(1, 200), 2)))
    df = pd.DataFrame(rows, columns=["customer_id", "event_time", "amount"])
    return df.sort_values(["event_time", "customer_id", "amount"]).reset_index(drop=True)


def write_catalog(df, folder):
    table = pa.Table.from_pandas(df, preserve_index=False).cast(
        pa.schema([
            ("customer_id", pa.int64()),
            ("event_time", pa.timestamp("us")),
            ("amount", pa.float64()),
        ])
    )
    pq.write_table(table, folder / "events.parquet")


def recipe(name, schedule, label):
    return {
        "target_table": name,
        "entity_grain": ["customer_id", "cutoff_time"],
        "point_in_time": {
            "cutoff_column": "cutoff_time",
            "time_columns": {"events": "event_time"},
            "include_cutoff": False,
            "schedule": {"source_table": "events", "until": "last_event", **schedule},
        },
        "label": {"name": "label", "source_table": "events", **label},
        "features": [{"name": "n_events", "source_table": "events", "expression": "COUNT(*)"}],
    }


def materialize(binary, catalog, warehouse, spec):
    path = warehouse / f"{spec['target_table']}.json"
    path.write_text(json.dumps(spec))
    done = subprocess.run(
        [str(binary), "materialize", str(path), "--catalog", str(catalog), "--warehouse", str(warehouse)],
        capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"featurecraft materialize failed: {done.stderr.strip()}")
    folder = Path(json.loads(done.stdout)["path"])
    table = pq.read_table(folder).to_pandas()
    table["cutoff_time"] = pd.to_datetime(table["cutoff_time"]).astype("datetime64[ns]")
    return table.sort_values(["customer_id", "cutoff_time"]).reset_index(drop=True)


def compose(df, labeling, window, every, start, keep_empty, max_per_entity):
    maker = cp.LabelMaker(
        target_dataframe_index="customer_id",
        time_index="event_time",
        labeling_function=labeling,
        window_size=window,
    )
    found = maker.search(
        df,
        num_examples_per_instance=max_per_entity if max_per_entity else -1,
        minimum_data=start,
        gap=every,
        drop_empty=not keep_empty,
        verbose=False,
    )
    out = pd.DataFrame(found).rename(columns={"time": "cutoff_time", labeling.__name__: "label"})
    out["cutoff_time"] = pd.to_datetime(out["cutoff_time"]).astype("datetime64[ns]")
    return out[["customer_id", "cutoff_time", "label"]].sort_values(["customer_id", "cutoff_time"]).reset_index(drop=True)


def reference(df, start, every, until, window, labeling, keep_empty, max_per_entity):
    """The README's rules in plain Python: per customer, cutoffs start + k * every while
    <= until (each a fixed time or the customer's first/last event), the label over
    [cutoff, cutoff + window)."""
    rows = []
    for customer, events in df.groupby("customer_id"):
        times = events["event_time"]
        first, last = times.min(), times.max()
        at = first + start if isinstance(start, pd.Timedelta) else start
        end = last if until == "last_event" else until
        kept = 0
        while at <= end:
            inside = events[(times >= at) & (times < at + window)]
            if keep_empty or not inside.empty:
                rows.append((customer, at, labeling(inside)))
                kept += 1
                if max_per_entity and kept >= max_per_entity:
                    break
            at += every
    out = pd.DataFrame(rows, columns=["customer_id", "cutoff_time", "label"])
    out["cutoff_time"] = out["cutoff_time"].astype("datetime64[ns]")
    return out


def differences(ours, theirs, limit=5):
    """Rows in one table only, and rows whose labels differ."""
    keys = ["customer_id", "cutoff_time"]
    merged = ours[keys + ["label"]].merge(theirs, on=keys, how="outer", suffixes=("_ours", "_theirs"), indicator=True)
    found = []
    for row in merged.itertuples(index=False):
        if row._4 != "both":
            found.append(f"({row.customer_id}, {row.cutoff_time}) only in {'featurecraft' if row._4 == 'left_only' else 'the other'}")
        elif not same(row.label_ours, row.label_theirs):
            found.append(f"({row.customer_id}, {row.cutoff_time}): {row.label_ours} against {row.label_theirs}")
        if len(found) >= limit:
            break
    return found


def same(a, b):
    missing = lambda v: v is None or (isinstance(v, float) and math.isnan(v))
    if missing(a) or missing(b):
        return missing(a) and missing(b)
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)


def spend(ds):
    return ds["amount"].sum()


def churned(ds):
    return int(len(ds) == 0)


def count(ds):
    return len(ds)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--featurecraft", type=Path, default=ROOT / "target" / "debug" / "featurecraft")
    parser.add_argument("--format", choices=["text", "json"], default="text")
    args = parser.parse_args()
    if not args.featurecraft.exists():
        print(f"compare-compose: {args.featurecraft} not found; run `cargo build` first", file=sys.stderr)
        return 2

    df = generate(args.customers, args.seed)
    start = START.isoformat()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        catalog, warehouse = Path(tmp) / "catalog", Path(tmp) / "warehouse"
        catalog.mkdir()
        warehouse.mkdir()
        write_catalog(df, catalog)

        problems = [
            ("regression: SUM(amount) over 2 hours every 12 hours, empty_value 0, keep_empty",
             {"start": start, "every": "12 hours", "keep_empty": True},
             {"type": "regression", "expression": "SUM(amount)", "window": "2 hours", "empty_value": 0},
             spend, "2h", "12h", True, None),
            ("churn: COUNT(*) = 0 over 3 days every 12 hours",
             {"start": start, "every": "12 hours"},
             {"type": "binary", "expression": "CASE WHEN COUNT(*) = 0 THEN 1 ELSE 0 END", "window": "3 days"},
             churned, "3d", "12h", True, None),
            ("keep_empty false with max_per_entity 3: COUNT(*) over 1 day every 1 day",
             {"start": start, "every": "1 day", "keep_empty": False, "max_per_entity": 3},
             {"type": "regression", "expression": "COUNT(*)", "window": "1 day"},
             count, "1d", "1d", False, 3),
        ]
        for name, schedule, label, labeling, window, every, keep_empty, max_n in problems:
            ours = materialize(args.featurecraft, catalog, warehouse, recipe(f"p{len(results)}", schedule, label))
            theirs = compose(df, labeling, window, every, START, keep_empty, max_n)
            found = differences(ours, theirs)
            results.append({"problem": name, "against": "Compose LabelMaker.search", "rows": len(ours),
                            "other_rows": len(theirs), "differences": found})

        # first_event starts: against the plain reference.
        schedule = {"start": "first_event + 6 hours", "every": "12 hours", "keep_empty": False, "max_per_entity": 4}
        ours = materialize(args.featurecraft, catalog, warehouse, recipe("first_event", schedule,
                           {"type": "regression", "expression": "SUM(amount)", "window": "1 day"}))
        theirs = reference(df, pd.Timedelta(hours=6), pd.Timedelta(hours=12), "last_event",
                           pd.Timedelta(days=1), spend, False, 4)
        results.append({"problem": "first_event + 6 hours, keep_empty false, max_per_entity 4",
                        "against": "plain Python reference", "rows": len(ours), "other_rows": len(theirs),
                        "differences": differences(ours, theirs)})

        # A fixed until past the end of the data: immature rows kept, counted.
        end = df["event_time"].max()
        until = (end + pd.Timedelta(days=5)).floor("D")
        schedule = {"start": start, "every": "12 hours", "until": until.isoformat()}
        label = {"type": "regression", "expression": "COUNT(*)", "window": "2 days"}
        spec = recipe("past_the_end", schedule, label)
        ours = materialize(args.featurecraft, catalog, warehouse, spec)
        theirs = reference(df, START, pd.Timedelta(hours=12), until, pd.Timedelta(days=2), count, True, None)
        found = differences(ours, theirs)
        last = df.groupby("customer_id")["event_time"].max().rename("last_event")
        up_to_last = ours.join(last, on="customer_id")
        up_to_last = up_to_last[up_to_last["cutoff_time"] <= up_to_last["last_event"]].drop(columns="last_event")
        found += [f"against Compose: {d}" for d in differences(
            up_to_last.reset_index(drop=True), compose(df, count, "2d", "12h", START, True, None))]
        immature = int((ours["cutoff_time"] + pd.Timedelta(days=2) > end).sum())
        summary = validate(args.featurecraft, catalog, warehouse, spec, len(df))
        counted = next((w for w in summary["warnings"] if w.startswith("W105")), "")
        if not counted.startswith(f"W105 immature_labels: {immature} of {len(ours)} sampled rows"):
            found.append(f"expected W105 for {immature} of {len(ours)} rows, got {counted or 'none'}")
        results.append({"problem": f"until {until} past the data's end ({end})",
                        "against": "plain Python reference (and Compose up to each last event)",
                        "rows": len(ours), "other_rows": len(theirs), "immature": immature,
                        "differences": found})

    if args.format == "json":
        print(json.dumps(results, indent=2, default=str))
    else:
        print(f"{len(df)} events of {args.customers} customers (seed {args.seed})")
        for r in results:
            verdict = "identical" if not r["differences"] else "DIFFERENT"
            extra = f", {r['immature']} immature (W105)" if "immature" in r else ""
            print(f"- {r['problem']}: {verdict} ({r['rows']} rows, {r['other_rows']} from {r['against']}{extra})")
            for d in r["differences"]:
                print(f"    {d}")
    return 0 if all(not r["differences"] for r in results) else 1


def validate(binary, catalog, warehouse, spec, sample):
    path = warehouse / "validate.json"
    path.write_text(json.dumps(spec))
    done = subprocess.run(
        [str(binary), "validate", str(path), "--catalog", str(catalog), "--sample-size", str(sample), "--format", "json"],
        capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"featurecraft validate failed: {done.stderr.strip()}")
    return json.loads(done.stdout)["validation"]


if __name__ == "__main__":
    sys.exit(main())
