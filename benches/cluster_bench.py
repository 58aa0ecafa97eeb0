"""Materialization locally against a Ballista cluster of two one-core executors.

Run through `benches/bench-cluster` (which builds featurecraft in the release profile into
target/rel/). For each scale: the generated retail catalog (bench-data/retail-N, made on
demand), `featurecraft materialize` of benches/recipes/churn_bench.json locally (two cores)
and with `--engine ballista://…` on a scheduler and two executors pinned to one core each
(`taskset`, `--concurrent-tasks 1`), one warm-up and then RUNS runs each, medians. From the
cluster it also reads the scheduler's planning time per job, the job's time on the
scheduler (queued to finished) and, from the executors' logs, each job's task times
and the bytes the sort shuffle wrote to disk. Writes a JSON report; BENCHMARKS.md quotes it.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FC = ROOT / "target" / "rel" / "release" / "featurecraft"
RECIPE = ROOT / "benches" / "recipes" / "churn_bench.json"


def free_port(pair=False):
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not pair:
            return port
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port")


def wait_port(port, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def dir_bytes(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(dirpath, f))
            except OSError:
                pass
    return total


def materialize(catalog, warehouse, engine):
    shutil.rmtree(warehouse, ignore_errors=True)
    started = time.perf_counter()
    out = subprocess.run(
        ["taskset", "-c", "0,1", str(FC), "materialize", str(RECIPE), "--catalog", str(catalog),
         "--warehouse", str(warehouse), "--engine", engine],
        capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if out.returncode != 0:
        raise RuntimeError(f"materialize on {engine} failed: {out.stderr}")
    return elapsed, json.loads(out.stdout)["rows"]


class Cluster:
    def __init__(self, work):
        self.work = Path(work)
        self.port = free_port()
        self.log = self.work / "scheduler.log"
        self.procs = [subprocess.Popen(
            ["taskset", "-c", "0", str(FC), "cluster", "scheduler", "--bind",
             f"127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL, stderr=open(self.log, "w"))]
        wait_port(self.port)
        self.work_dirs = []
        for core in (0, 1):
            port = free_port(pair=True)
            work_dir = self.work / f"executor-{core}"
            self.work_dirs.append(work_dir)
            self.procs.append(subprocess.Popen(
                ["taskset", "-c", str(core), str(FC), "cluster", "executor", "--scheduler",
                 f"127.0.0.1:{self.port}", "--bind", f"127.0.0.1:{port}", "--work-dir",
                 str(work_dir), "--concurrent-tasks", "1", "--memory-limit", "2G"],
                stdout=subprocess.DEVNULL,
                stderr=open(self.work / f"executor-{core}.log", "w")))
            wait_port(port)
        time.sleep(1)

    def engine(self):
        return f"ballista://127.0.0.1:{self.port}"

    def tasks(self):
        """Per job: the summed task time on the executors (s), the busiest executor's task
        time (s), the task count, and the bytes the sort shuffle wrote to disk."""
        jobs = {}
        for core in (0, 1):
            for line in open(self.work / f"executor-{core}.log"):
                try:
                    message = json.loads(line).get("fields", {}).get("message", "")
                except ValueError:
                    continue
                m = re.match(r"Finished task : \[TID (\w+)/[^\]]*\] in ([\d.]+)(ms|s|µs)", message)
                if m:
                    job = jobs.setdefault(m.group(1), {"busy": [0.0, 0.0], "tasks": 0, "spilled": 0})
                    scale = {"ms": 1e-3, "s": 1.0, "µs": 1e-6}[m.group(3)]
                    job["busy"][core] += float(m.group(2)) * scale
                    job["tasks"] += 1
                m = re.match(r"Sort shuffle spill: job=(\w+) .* spilled (\d+) bytes", message)
                if m:
                    job = jobs.setdefault(m.group(1), {"busy": [0.0, 0.0], "tasks": 0, "spilled": 0})
                    job["spilled"] += int(m.group(2))
        return jobs

    def jobs(self):
        """(planning seconds, queued-to-finished seconds) of every job, in order."""
        queued, planning, finished = {}, {}, {}
        for line in open(self.log):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            message = entry.get("fields", {}).get("message", "")
            at = datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00"))
            m = re.match(r"Job queued: \[(\w+)\]", message)
            if m:
                queued[m.group(1)] = at
            m = re.match(r"Job \[(\w+)\] planning took ([\d.]+)(ms|s|µs)", message)
            if m:
                scale = {"ms": 1e-3, "s": 1.0, "µs": 1e-6}[m.group(3)]
                planning[m.group(1)] = float(m.group(2)) * scale
            m = re.match(r"Job finished successfully: \[(\w+)\]", message)
            if m:
                finished[m.group(1)] = at
        return [(planning.get(j), (finished[j] - queued[j]).total_seconds())
                for j in queued if j in finished]

    def stop(self):
        for p in reversed(self.procs):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scales", default="100000,1000000")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-data" / "cluster-bench.json")
    args = parser.parse_args()
    report = {"recipe": str(RECIPE.relative_to(ROOT)), "runs": args.runs, "scales": {}}
    for customers in [int(s) for s in args.scales.split(",")]:
        catalog = ROOT / "bench-data" / f"retail-{customers}"
        if not catalog.exists():
            subprocess.run([str(FC), "generate", "--out", str(catalog), "--customers",
                            str(customers)], check=True)
        work = Path(tempfile.mkdtemp(prefix="featurecraft-cluster-", dir=ROOT / "bench-data"))
        try:
            local = [materialize(catalog, work / "local", "local") for _ in range(args.runs + 1)][1:]
            cluster = Cluster(work)
            try:
                runs = []
                for i in range(args.runs + 1):
                    elapsed, rows = materialize(catalog, work / "cluster", cluster.engine())
                    if i > 0:
                        runs.append((elapsed, rows))
                jobs = cluster.jobs()[1:]
                tasks = [t for _, t in sorted(cluster.tasks().items())][1:]
            finally:
                cluster.stop()
            assert {r for _, r in local} == {r for _, r in runs}, "row counts differ"
            entry = {
                "rows": local[0][1],
                "local_median_s": statistics.median(t for t, _ in local),
                "cluster_median_s": statistics.median(t for t, _ in runs),
                "scheduler_planning_median_s": statistics.median(p for p, _ in jobs if p is not None),
                "scheduler_job_median_s": statistics.median(j for _, j in jobs),
                "tasks_per_run": statistics.median(t["tasks"] for t in tasks),
                "task_time_sum_median_s": statistics.median(sum(t["busy"]) for t in tasks),
                "busiest_executor_median_s": statistics.median(max(t["busy"]) for t in tasks),
                "shuffle_spilled_bytes_median": statistics.median(t["spilled"] for t in tasks),
                "catalog_bytes": dir_bytes(catalog),
            }
            entry["ratio_cluster_to_local"] = entry["cluster_median_s"] / entry["local_median_s"]
            report["scales"][customers] = entry
            print(customers, json.dumps(entry), flush=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
