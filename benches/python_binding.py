"""The Python binding's overhead: `compile` of 50- and 1000-feature recipes (the recipes of
benches/compile.rs, byte for byte) and `validate` at S, timed in-process. scripts/bench-python
runs it beside the Rust library's own figures (criterion's compile/50 and compile/1000) and
the release CLI's validate, in one session."""

import json
import pathlib
import statistics
import subprocess
import sys
import time

import featurecraft as fc

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHAPES = [
    ("events", "COUNT(CASE WHEN event_type = 'purchase' AND amount > {k} THEN 1 END)"),
    ("events", "SUM(amount * {k}) / NULLIF(COUNT(*), 0)"),
    ("orders", "MAX(CASE WHEN status = 'returned' THEN amount + {k} END)"),
    ("support_tickets", "AVG(satisfaction) + {k}"),
    ("customers", "monthly_fee * {k} + COALESCE(age, 0)"),
]


def recipe(n: int) -> dict:
    """benches/compile.rs's `recipe(n)`."""
    features = []
    for i in range(n):
        source, shape = SHAPES[i % len(SHAPES)]
        features.append({"name": f"f_{i}", "expression": shape.replace("{k}", str(i)),
                         "source_table": source, "description": "generated", "data_type": "float64"})
    return {
        "target_table": "bench.wide",
        "entity_grain": ["customer_id"],
        "label": {"column": "churned_at",
                  "derivation": "CASE WHEN churned_at IS NOT NULL THEN 1 ELSE 0 END"},
        "features": features,
        "notes": "",
    }


def median_seconds(call, runs: int) -> float:
    call()  # warm-up
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    scale_dir = pathlib.Path(sys.argv[1])
    cli = pathlib.Path(sys.argv[2])
    catalog = fc.Catalog(ROOT / "fixtures" / "retail_catalog.json")
    for n in (50, 1000):
        as_dict = recipe(n)
        text = json.dumps(as_dict, separators=(",", ":"))
        assert fc.compile(text, catalog).ok
        runs = 200 if n == 50 else 30
        from_text = median_seconds(lambda: fc.compile(text, catalog), runs)
        from_dict = median_seconds(lambda: fc.compile(as_dict, catalog), runs)
        print(f"python compile/{n}: JSON text {from_text * 1e3:.2f} ms, dict {from_dict * 1e3:.2f} ms")
    basic = ROOT / "fixtures" / "recipes" / "good" / "churn_basic.json"
    started = time.perf_counter()
    at_scale = fc.Catalog(scale_dir)
    print(f"python Catalog({scale_dir.name}): {(time.perf_counter() - started) * 1e3:.1f} ms")
    summary = fc.validate(basic, at_scale).summary
    print(f"  estimated_row_count {summary['estimated_row_count']}")
    in_process = median_seconds(lambda: fc.validate(basic, at_scale), 5)
    print(f"python validate (catalog loaded once): {in_process:.3f} s")
    with_load = median_seconds(lambda: fc.validate(basic, str(scale_dir)), 5)
    print(f"python validate (catalog path, loaded by the call): {with_load:.3f} s")
    command = [str(cli), "validate", str(basic), "--catalog", str(scale_dir), "--format", "json"]
    cli_time = median_seconds(lambda: subprocess.run(command, check=True, capture_output=True), 5)
    print(f"CLI validate (process): {cli_time:.3f} s")


if __name__ == "__main__":
    main()
