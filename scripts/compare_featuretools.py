#!/usr/bin/env python3
"""compare-featuretools: featurecraft's designed recipe against Featuretools' Deep Feature
Synthesis on the bundled retail fixtures.

Usage (through the wrapper, which owns the virtual environment):

    scripts/compare-featuretools [--catalog fixtures/retail] [--format text|json]

1. featurecraft designs a churn recipe for `customers` (grain `customer_id`) with the null
   threshold at 1.0, so that only all-NULL, constant and leaking features are pruned, and
   once more with the default 0.5 to report what that threshold drops besides; the designed
   table is built with `featurecraft materialize`.
2. Featuretools 1.31 loads the catalog's Parquet tables holding `customer_id` into an
   EntitySet (customers as the parent of each; views are not loaded, since an EntitySet
   holds dataframes) and runs DFS at depth 1 with the aggregation primitives count, sum,
   mean, max, min, std and num_unique.
3. Every DFS aggregate feature is matched to featurecraft's by name (`SUM(events.amount)`
   is `sum_events_amount`), and the two columns are compared customer by customer (floats
   within 1e-9 relative; NaN and NULL both mean missing). A difference is classified as an
   empty group (the customer has no rows in that table) or a value difference.

With `--depth-2`, it compares stacked aggregates on Featuretools' own demo data instead:
`featuretools.demo.load_mock_customer` (300 customers, 3000 sessions, 30 000
transactions, 8 products, seed 0) is written as a Parquet catalog with no view; featurecraft
designs a recipe for `customers` at depth 2 (relationships discovered on the profile), and
DFS runs at depth 2 on the demo's EntitySet with the same primitives. Depth-1 features are
matched by name, depth-2 ones by the `description` featurecraft gives them (their
Featuretools name, `MEAN(sessions.SUM(transactions.amount))`), and compared per customer.

With `--point-in-time`, it compares point-in-time tables instead: Featuretools'
`calculate_feature_matrix` with the `churn_cutoffs` table as cutoff times (several per
customer), a `training_window` and `include_cutoff_time` true and false, against
featurecraft's point-in-time recipe with the same aggregates (built from DFS's own feature
definitions, each with the window) over the timed tables events, orders, plan_changes and
support_tickets, materialized and compared per (customer, cutoff).
"""

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LABEL = "CASE WHEN churned_at IS NOT NULL THEN 1 ELSE 0 END"
PRIMITIVES = {
    "COUNT": "count",
    "SUM": "sum",
    "MEAN": "avg",
    "MAX": "max",
    "MIN": "min",
    "STD": "stddev",
    "NUM_UNIQUE": "n_distinct",
}


def sanitize(text):
    out = ""
    for c in text:
        if c.isascii() and c.isalnum():
            out += c.lower()
        elif not out.endswith("_"):
            out += "_"
    return out.strip("_")


def run(*args):
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"compare-featuretools: {' '.join(map(str, args[:2]))} failed:\n{done.stderr}")
    return done.stdout


def design(featurecraft, catalog, work, null_threshold):
    recipe = work / f"recipe-{null_threshold}.json"
    dropped = work / f"dropped-{null_threshold}.json"
    text = run(
        featurecraft, "design", "--catalog", catalog, "--spine", "customers",
        "--grain", "customer_id", "--label-column", "churned_at", "--derivation", LABEL,
        "--null-threshold", null_threshold, "--target-table", "designed",
        "--format", "json", "--dropped", dropped,
    )
    recipe.write_text(text)
    return recipe, json.loads(text), json.loads(dropped.read_text())


def missing(v):
    import pandas as pd
    return v is None or bool(pd.isna(v))


def same(a, b):
    if missing(a) and missing(b):
        return True
    if missing(a) or missing(b):
        return False
    a, b = float(a), float(b)
    return a == b or abs(a - b) <= 1e-9 * max(abs(a), abs(b))


def main():
    parser = argparse.ArgumentParser(prog="compare-featuretools")
    parser.add_argument("--catalog", type=Path, default=ROOT / "fixtures" / "retail")
    parser.add_argument("--featurecraft", type=Path, default=ROOT / "target" / "debug" / "featurecraft")
    parser.add_argument("--format", choices=["text", "json"], default="text")
    parser.add_argument("--point-in-time", action="store_true",
                        help="compare point-in-time tables (cutoff times, training windows)")
    parser.add_argument("--depth-2", dest="depth_two", action="store_true",
                        help="compare depth-2 (stacked) aggregates on Featuretools' mock customer data")
    args = parser.parse_args()
    if not args.featurecraft.exists():
        print(f"compare-featuretools: {args.featurecraft} does not exist: run `cargo build` first", file=sys.stderr)
        return 2
    if args.point_in_time:
        return compare_point_in_time(args)
    if args.depth_two:
        return compare_depth_two(args)

    import warnings
    warnings.filterwarnings("ignore")  # pandas' FutureWarnings from inside Featuretools
    import featuretools as ft
    import pandas as pd

    work = Path(tempfile.mkdtemp(prefix="featurecraft-featuretools-"))
    try:
        recipe_path, recipe, pruning = design(args.featurecraft, args.catalog, work, "1.0")
        _, default_recipe, default_pruning = design(args.featurecraft, args.catalog, work, "0.5")
        out = json.loads(run(
            args.featurecraft, "materialize", recipe_path, "--catalog", args.catalog,
            "--warehouse", work / "warehouse", "--domain", "compare",
        ).strip().splitlines()[-1])
        ours = pd.read_parquet(out["path"]).set_index("customer_id").sort_index()

        sources = json.loads(run(args.featurecraft, "describe-catalog", "--catalog", args.catalog, "--sources"))
        es = ft.EntitySet("retail")
        customers = pd.concat(pd.read_parquet(f) for f in sources["customers"]["parquet"])
        es.add_dataframe(dataframe_name="customers", dataframe=customers, index="customer_id")
        children = {}
        for name, source in sorted(sources.items()):
            if name == "customers" or "parquet" not in source:
                continue
            frame = pd.concat(pd.read_parquet(f) for f in source["parquet"])
            if "customer_id" not in frame.columns:
                continue
            short = sanitize(name)
            first = frame.columns[0]
            if first != "customer_id" and frame[first].is_unique:
                es.add_dataframe(dataframe_name=short, dataframe=frame, index=first)
            else:
                es.add_dataframe(dataframe_name=short, dataframe=frame, index=f"{short}_row", make_index=True)
            es.add_relationship("customers", "customer_id", short, "customer_id")
            children[short] = frame
        matrix, definitions = ft.dfs(
            entityset=es, target_dataframe_name="customers",
            agg_primitives=list(p.lower() for p in PRIMITIVES), trans_primitives=[], max_depth=1,
        )

        proposed_names = {f["name"] for f in recipe["features"]} | {d["name"] for d in pruning["dropped"]}
        kept_names = {f["name"] for f in recipe["features"]}
        default_kept = {f["name"] for f in default_recipe["features"]}
        dropped_reason = {d["name"]: d["reason"] for d in pruning["dropped"]}
        rows = []
        for definition in definitions:
            name = definition.get_name()
            m = re.fullmatch(r"(\w+)\((\w+)(?:\.(\w+))?\)", name)
            if not m:
                continue  # the customers' own columns
            primitive, table, column = m.groups()
            ours_name = f"{PRIMITIVES[primitive]}_{table}" + (f"_{column}" if column else "")
            row = {"dfs": name, "featurecraft": ours_name, "proposed": ours_name in proposed_names}
            if ours_name not in kept_names:
                row["status"] = "dropped by the crew: " + dropped_reason.get(ours_name, "not proposed")
                rows.append(row)
                continue
            row["kept_at_default_threshold"] = ours_name in default_kept
            if not row["kept_at_default_threshold"]:
                row["default_threshold_reason"] = {
                    d["name"]: d["reason"] for d in default_pruning["dropped"]
                }.get(ours_name, "")
            theirs = matrix[name].sort_index()
            mine = ours[ours_name]
            groups = children[table].groupby("customer_id")
            counts = groups.size()
            values = groups[column].count() if column else counts
            equal = empty = all_null = other = 0
            examples = []
            for customer, value in theirs.items():
                mine_value = mine.get(customer)
                if same(value, mine_value):
                    equal += 1
                elif counts.get(customer, 0) == 0:
                    empty += 1
                    if len(examples) < 2:
                        examples.append(f"customer {customer} (no rows): DFS {value}, featurecraft {mine_value}")
                elif values.get(customer, 0) == 0:
                    all_null += 1
                    if len(examples) < 3:
                        examples.append(f"customer {customer} (rows, all {column} NULL): DFS {value}, featurecraft {mine_value}")
                else:
                    other += 1
                    if len(examples) < 4:
                        examples.append(f"customer {customer}: DFS {value}, featurecraft {mine_value}")
            row.update(status="compared", equal=equal, empty_group=empty, all_null_group=all_null,
                       other=other, examples=examples)
            rows.append(row)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    total = len(rows)
    dropped_at_default = [r for r in rows if r.get("kept_at_default_threshold") is False]
    proposed = sum(r["proposed"] for r in rows)
    compared = [r for r in rows if r["status"] == "compared"]
    identical = [r for r in compared if r["empty_group"] == 0 and r["all_null_group"] == 0 and r["other"] == 0]
    report = {
        "dfs_aggregate_features": total,
        "proposed_by_featurecraft": proposed,
        "kept_after_pruning": len(compared),
        "identical_for_every_customer": len(identical),
        "differing_only_on_empty_or_all_null_groups": sum(
            1 for r in compared if (r["empty_group"] or r["all_null_group"]) and not r["other"]
        ),
        "differing_elsewhere": sum(1 for r in compared if r["other"]),
        "customers": len(ours),
        "also_dropped_at_the_default_null_threshold": len(dropped_at_default),
        "features": rows,
    }
    if args.format == "json":
        print(json.dumps(report, indent=2, default=str))
        return 0
    print(f"DFS (depth 1, {', '.join(p.lower() for p in PRIMITIVES)}): {total} aggregate features over {len(children)} tables, {len(ours)} customers")
    print(f"proposed by featurecraft: {proposed} of {total}; kept after pruning: {len(compared)}")
    print(f"identical for every customer: {len(identical)}; differing only where the customer has no rows or only NULLs: {report['differing_only_on_empty_or_all_null_groups']}; differing elsewhere: {report['differing_elsewhere']}")
    print(f"with the default null threshold (0.5) the crew also drops {len(dropped_at_default)} of them: "
          + ", ".join(r["featurecraft"] for r in dropped_at_default))
    for r in rows:
        if r["status"] != "compared":
            print(f"  {r['dfs']:45} -> {r['featurecraft']}: {r['status']}")
        elif r["empty_group"] or r["all_null_group"] or r["other"]:
            print(f"  {r['dfs']:45} -> {r['featurecraft']}: {r['equal']} equal, {r['empty_group']} no rows, "
                  f"{r['all_null_group']} only NULLs, {r['other']} other; {'; '.join(r['examples'][:2])}")
    return 0


# The timed tables of the retail fixtures and their time columns.
TIMED = {"events": "event_ts", "orders": "order_date", "plan_changes": "changed_at",
         "support_tickets": "opened_at"}
# DFS primitive -> the SQL aggregate featurecraft computes for it.
SQL = {"COUNT": "COUNT(*)", "SUM": "SUM({})", "MEAN": "AVG({})", "MAX": "MAX({})",
       "MIN": "MIN({})", "STD": "STDDEV_SAMP({})", "NUM_UNIQUE": "COUNT(DISTINCT {})"}
# (include_cutoff_time, training_window in days or None)
PIT_RUNS = [(False, None), (False, 30), (True, 30)]


def compare_point_in_time(args):
    import warnings
    warnings.filterwarnings("ignore")
    import featuretools as ft
    import pandas as pd

    sources = json.loads(run(args.featurecraft, "describe-catalog", "--catalog", args.catalog, "--sources"))
    frames = {name: pd.concat(pd.read_parquet(f) for f in sources[name]["parquet"])
              for name in ["customers", "churn_cutoffs", *TIMED]}
    es = ft.EntitySet("retail")
    es.add_dataframe(dataframe_name="customers", dataframe=frames["customers"], index="customer_id")
    for name, time in TIMED.items():
        frame = frames[name].copy()
        frame[time] = pd.to_datetime(frame[time])
        first = frame.columns[0]
        if first != "customer_id" and frame[first].is_unique:
            es.add_dataframe(dataframe_name=name, dataframe=frame, index=first, time_index=time)
        else:
            es.add_dataframe(dataframe_name=name, dataframe=frame, index=f"{name}_row",
                             make_index=True, time_index=time)
        es.add_relationship("customers", "customer_id", name, "customer_id")
    cutoffs = frames["churn_cutoffs"][["customer_id", "cutoff_time"]].rename(columns={"cutoff_time": "time"})
    cutoffs["time"] = pd.to_datetime(cutoffs["time"])
    definitions = ft.dfs(entityset=es, target_dataframe_name="customers",
                         agg_primitives=[p.lower() for p in PRIMITIVES], trans_primitives=[],
                         max_depth=1, features_only=True)
    aggregates = []
    for definition in definitions:
        m = re.fullmatch(r"(\w+)\((\w+)(?:\.(\w+))?\)", definition.get_name())
        if m:
            aggregates.append((definition, *m.groups()))

    work = Path(tempfile.mkdtemp(prefix="featurecraft-featuretools-pit-"))
    results = []
    try:
        for include, days in PIT_RUNS:
            features = []
            for i, (_, primitive, table, column) in enumerate(aggregates):
                feature = {"name": f"f{i}", "source_table": table,
                           "expression": SQL[primitive].format(column)}
                if days:
                    feature["window"] = f"{days} days"
                features.append(feature)
            recipe = {
                "target_table": "pit",
                "entity_grain": ["customer_id", "cutoff_time"],
                "point_in_time": {"cutoff_column": "cutoff_time", "time_columns": TIMED,
                                  "include_cutoff": include},
                "label": {"name": "churned_30d", "type": "binary", "column": "churned_30d",
                          "positive_class_value": 1},
                "features": features,
            }
            path = work / f"pit-{include}-{days}.json"
            path.write_text(json.dumps(recipe))
            out = json.loads(run(
                args.featurecraft, "materialize", path, "--catalog", args.catalog,
                "--warehouse", work / "warehouse", "--domain", f"pit_{int(include)}_{days or 0}",
            ).strip().splitlines()[-1])
            ours = pd.read_parquet(out["path"])
            ours["cutoff_time"] = pd.to_datetime(ours["cutoff_time"])
            ours = ours.set_index(["customer_id", "cutoff_time"]).sort_index()
            matrix = ft.calculate_feature_matrix(
                [a[0] for a in aggregates], entityset=es, cutoff_time=cutoffs,
                training_window=f"{days} days" if days else None,
                include_cutoff_time=include, cutoff_time_in_index=True,
            ).sort_index()
            rows = []
            for i, (definition, primitive, table, column) in enumerate(aggregates):
                theirs = matrix[definition.get_name()]
                mine = ours[f"f{i}"]
                equal = empty = other = 0
                examples = []
                for key, value in theirs.items():
                    mine_value = mine.get(key)
                    if same(value, mine_value):
                        equal += 1
                    elif primitive in ("SUM", "NUM_UNIQUE") and (
                        (primitive == "SUM" and value == 0 and missing(mine_value))
                        or (primitive == "NUM_UNIQUE" and missing(value) and mine_value == 0)
                    ):
                        empty += 1  # SQL's value over no rows (or only NULLs) differs by design
                    else:
                        other += 1
                        if len(examples) < 3:
                            examples.append(f"{key}: Featuretools {value}, featurecraft {mine_value}")
                rows.append({"feature": definition.get_name(), "equal": equal,
                             "empty_or_all_null": empty, "other": other, "examples": examples})
            results.append({
                "include_cutoff_time": include,
                "training_window": f"{days} days" if days else None,
                "rows": len(matrix), "featurecraft_rows": len(ours), "features": len(rows),
                "identical": sum(1 for r in rows if r["empty_or_all_null"] == 0 and r["other"] == 0),
                "differing_only_by_design": sum(1 for r in rows if r["empty_or_all_null"] and not r["other"]),
                "differing_elsewhere": sum(1 for r in rows if r["other"]),
                "detail": rows,
            })
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.format == "json":
        print(json.dumps(results, indent=2, default=str))
        return 0
    for r in results:
        print(f"include_cutoff_time={r['include_cutoff_time']}, training_window={r['training_window']}: "
              f"{r['rows']} (customer, cutoff) rows (featurecraft {r['featurecraft_rows']}), {r['features']} aggregates; "
              f"identical {r['identical']}, differing only by design (SUM 0 vs NULL, NUM_UNIQUE NaN vs 0) "
              f"{r['differing_only_by_design']}, differing elsewhere {r['differing_elsewhere']}")
        for d in r["detail"]:
            if d["other"]:
                print(f"  {d['feature']}: {d['equal']} equal, {d['other']} differ: {'; '.join(d['examples'])}")
    return 0


def by_design(name, theirs, mine):
    """SQL's value over no rows (or only NULLs) against pandas': SUM NULL vs 0, NUM_UNIQUE
    0 vs NaN, at either level of a stack."""
    if "SUM(" in name and missing(mine) and not missing(theirs) and float(theirs) == 0:
        return True
    return "NUM_UNIQUE(" in name and missing(theirs) and not missing(mine) and float(mine) == 0


def compare_depth_two(args):
    import warnings
    warnings.filterwarnings("ignore")
    import featuretools as ft
    import pandas as pd

    sizes = dict(n_customers=300, n_sessions=3000, n_transactions=30000, n_products=8, random_seed=0)
    es = ft.demo.load_mock_customer(return_entityset=True, **sizes)
    frames = ft.demo.load_mock_customer(return_entityset=False, **sizes)
    work = Path(tempfile.mkdtemp(prefix="featurecraft-featuretools-depth2-"))
    try:
        catalog = work / "catalog"
        catalog.mkdir()
        for name, frame in frames.items():
            frame = frame.copy()
            for column in frame.columns:
                if isinstance(frame[column].dtype, pd.CategoricalDtype):
                    frame[column] = frame[column].astype(frame[column].cat.categories.dtype)
                if pd.api.types.is_datetime64_any_dtype(frame[column]):
                    frame[column] = frame[column].astype("datetime64[us]")
                if frame[column].dtype == object:
                    frame[column] = frame[column].astype(str)
            frame.to_parquet(catalog / f"{name}.parquet", index=False)
        median = frames["customers"]["join_date"].median().strftime("%Y-%m-%d %H:%M:%S")
        label = f"CASE WHEN join_date < TIMESTAMP '{median}' THEN 1 ELSE 0 END"
        recipe_path = work / "recipe.json"
        dropped_path = work / "dropped.json"
        recipe_text = run(
            args.featurecraft, "design", "--catalog", catalog, "--spine", "customers",
            "--grain", "customer_id", "--label-column", "join_date", "--derivation", label,
            "--null-threshold", "1.0", "--max-depth", "2", "--target-table", "designed",
            "--format", "json", "--dropped", dropped_path,
        )
        recipe_path.write_text(recipe_text)
        recipe = json.loads(recipe_text)
        dropped = {d["name"]: d["reason"] for d in json.loads(dropped_path.read_text())["dropped"]}
        out = json.loads(run(
            args.featurecraft, "materialize", recipe_path, "--catalog", catalog,
            "--warehouse", work / "warehouse", "--domain", "depth2",
        ).strip().splitlines()[-1])
        ours = pd.read_parquet(out["path"]).set_index("customer_id").sort_index()
        matrix, definitions = ft.dfs(
            entityset=es, target_dataframe_name="customers", max_depth=2,
            agg_primitives=[p.lower() for p in PRIMITIVES], trans_primitives=[],
        )
        by_description = {f["description"]: f["name"] for f in recipe["features"]}
        rows = []
        for definition in definitions:
            name = definition.get_name()
            depth = name.count("(")
            if depth == 0:
                mine_name = sanitize(name)
            elif depth == 1:
                m = re.fullmatch(r"(\w+)\((\w+)(?:\.(\w+))?\)", name)
                if not m:
                    # NUM_UNIQUE(transactions.sessions.device): DFS depth 2, an aggregate
                    # of the parent's column seen from each child row.
                    rows.append({"dfs": name, "depth": 2, "status": "not proposed: an aggregate of a parent's column through the child"})
                    continue
                primitive, table, column = m.groups()
                mine_name = f"{PRIMITIVES[primitive]}_{table}" + (f"_{column}" if column else "")
            else:
                mine_name = by_description.get(name)
            row = {"dfs": name, "depth": min(depth, 2), "featurecraft": mine_name}
            if mine_name is None or mine_name not in ours.columns:
                row["status"] = "dropped by the crew: " + dropped[mine_name] if mine_name in dropped else "not proposed"
                rows.append(row)
                continue
            equal = design_diff = other = 0
            examples = []
            for customer, value in matrix[name].sort_index().items():
                mine_value = ours[mine_name].get(customer)
                if same(value, mine_value):
                    equal += 1
                elif by_design(name, value, mine_value):
                    design_diff += 1
                else:
                    other += 1
                    if len(examples) < 3:
                        examples.append(f"customer {customer}: DFS {value}, featurecraft {mine_value}")
            row.update(status="compared", equal=equal, by_design=design_diff, other=other, examples=examples)
            rows.append(row)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    summary = {}
    for depth in (0, 1, 2):
        these = [r for r in rows if r["depth"] == depth]
        compared = [r for r in these if r["status"] == "compared"]
        summary[depth] = {
            "dfs_features": len(these),
            "compared": len(compared),
            "identical": sum(1 for r in compared if not r["by_design"] and not r["other"]),
            "differing_only_by_design": sum(1 for r in compared if r["by_design"] and not r["other"]),
            "differing_elsewhere": sum(1 for r in compared if r["other"]),
        }
    report = {"customers": len(ours), "derived_columns": len(recipe.get("derived_columns", [])),
              "relationships": recipe.get("relationships", []), "by_depth": summary, "features": rows}
    if args.format == "json":
        print(json.dumps(report, indent=2, default=str))
        return 0
    print(f"Featuretools mock customer data ({sizes['n_customers']} customers, {sizes['n_sessions']} sessions, "
          f"{sizes['n_transactions']} transactions), DFS depth 2 with {', '.join(p.lower() for p in PRIMITIVES)}; "
          f"featurecraft: {len(recipe['features'])} features, {report['derived_columns']} derived columns")
    for depth, s in summary.items():
        what = {0: "the customers' own columns", 1: "depth 1", 2: "depth 2"}[depth]
        print(f"{what}: {s['dfs_features']} DFS features, {s['compared']} with a featurecraft column; identical for every "
              f"customer {s['identical']}, differing only by design {s['differing_only_by_design']}, "
              f"differing elsewhere {s['differing_elsewhere']}")
    for r in rows:
        if r["status"] != "compared":
            print(f"  {r['dfs']:50} {r['status']}")
        elif r["other"] or r["by_design"]:
            print(f"  {r['dfs']:50} -> {r['featurecraft']}: {r['equal']} equal, {r['by_design']} by design, "
                  f"{r['other']} other; {'; '.join(r['examples'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
