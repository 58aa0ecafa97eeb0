"""The cost of object storage and of Delta Lake output: validate and materialize with the
catalog and the warehouse on a local disk against the same in an S3 server on loopback,
and Delta against Parquet output.

The server is s3s-fs (crates.io; the wrapper installs it into target/s3s-fs): it serves a
local folder, answers a ranged GET by reading that range and checks signatures, so what
the ratios show is S3's protocol (HTTP on loopback, signing, listing, ranged reads,
multipart writes, the pointer or the commit), not the server. `--server moto` uses
tests/object_store.rs' moto instead and counts each run's requests from its log; moto
reads and copies a whole object for every ranged GET, which dominates its figures.

Run through `benches/bench-storage` (which builds featurecraft in the release profile into
target/rel/). For each scale: the generated retail catalog (bench-data/retail-N, made on
demand, the same as benches/compare-duckdb's), copied into the server's `catalog` bucket;
then every case once to warm up and RUNS rounds in which each case runs once, in turn
(interleaved, so a slower minute of this shared machine falls on every case alike). Each
run is one `featurecraft` process; its wall time and peak RSS (wait4, in a small launcher:
`benches/measured.py`) are reported, medians and the largest peak (and with moto, the
requests a run made). The server runs on the same two cores: the ratios are the cost of
the protocol on loopback, not of a network. Writes a JSON report; BENCHMARKS.md quotes it.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import measured

ROOT = Path(__file__).resolve().parent.parent
FC = ROOT / "target" / "rel" / "release" / "featurecraft"
RECIPE = ROOT / "benches" / "recipes" / "churn_bench.json"


S3S_FS = ROOT / "target" / "s3s-fs" / "bin" / "s3s-fs"
VENV_PYTHON = ROOT / "target" / "s3-venv" / "bin" / "python"
KEY, SECRET = "bench", "bench-secret"

# Signed uploads for s3s-fs (which checks signatures), with boto3 from scripts/s3-server's
# virtual environment: argv = endpoint, folder, bucket, prefix.
UPLOAD = """
import sys, pathlib, boto3
endpoint, folder, bucket, prefix = sys.argv[1:5]
client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="%s",
                      aws_secret_access_key="%s", region_name="us-east-1")
folder = pathlib.Path(folder)
for path in sorted(folder.rglob("*")):
    if path.is_file():
        client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder).as_posix()}")
""" % (KEY, SECRET)


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_s3s(root, log):
    """s3s-fs serving the folder `root` (its buckets `catalog` and `warehouse`), checking
    signatures; (process, endpoint)."""
    for bucket in ("catalog", "warehouse"):
        (root / bucket).mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = subprocess.Popen(
        [S3S_FS, "--host", "127.0.0.1", "--port", str(port), "--access-key", KEY,
         "--secret-key", SECRET, root], stdout=log, stderr=log, stdin=subprocess.PIPE)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(endpoint, timeout=1)
        except urllib.error.HTTPError:
            return server, endpoint  # it answers (403: unsigned)
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("s3s-fs did not start")


def start_moto(log):
    """moto's S3 server with the buckets `catalog` and `warehouse`, its request log (one
    line per request) into `log`; (process, endpoint)."""
    server = subprocess.Popen(
        [ROOT / "scripts" / "s3-server", "catalog", "warehouse"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
    endpoint = server.stdout.readline().strip()
    if not endpoint:
        raise RuntimeError("the S3 server did not start (scripts/s3-server)")
    return server, endpoint


def upload(endpoint, folder, prefix):
    """Every file under `folder` into s3://catalog/PREFIX/… of moto (which, without IAM,
    takes unsigned PUTs), one PUT each."""
    sent = 0
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            key = f"{prefix}/{path.relative_to(folder).as_posix()}"
            data = path.read_bytes()
            # Not urllib's default form type: moto's server would parse the body as a form.
            request = urllib.request.Request(
                f"{endpoint}/catalog/{key}", data=data, method="PUT",
                headers={"Content-Type": "application/octet-stream"})
            with urllib.request.urlopen(request, timeout=600) as response:
                response.read()
            sent += len(data)
    return sent


def requests_in(log_path):
    """The S3 requests the server has logged so far, by method."""
    counts = {}
    for line in log_path.read_text(errors="replace").splitlines():
        for method in ("GET", "HEAD", "PUT", "POST", "DELETE"):
            if f'"{method} ' in line or f"m{method} " in line:
                counts[method] = counts.get(method, 0) + 1
    return counts


def measure(command, env):
    """Wall seconds and peak RSS (MiB; the command's own, see `benches/measured.py`)."""
    run = measured.run(command, env=env)
    if run.exit_code != 0:
        raise RuntimeError(f"{' '.join(map(str, command[:2]))} failed: {run.stderr.strip()[-500:]}")
    return run.elapsed, run.peak_rss_mib


def main():
    parser = argparse.ArgumentParser(prog="bench-storage")
    parser.add_argument("--scales", default="1000000")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--featurecraft", default=str(FC))
    parser.add_argument("--out", type=Path, default=ROOT / "bench-data" / "bench-storage.json")
    parser.add_argument("--server", choices=["s3s", "moto"], default="s3s")
    args = parser.parse_args()
    fc = args.featurecraft
    log_path = Path(tempfile.mkstemp(prefix="featurecraft-s3-", suffix=".log")[1])
    log = open(log_path, "w")
    s3s_root = Path(tempfile.mkdtemp(prefix="featurecraft-s3s-", dir=ROOT / "bench-data"))
    if args.server == "s3s":
        server, endpoint = start_s3s(s3s_root, log)
    else:
        server, endpoint = start_moto(log)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true",
                "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET})
    results = {"date": time.strftime("%Y-%m-%d"), "runs": args.runs, "server": args.server,
               "scales": []}
    try:
        for customers in [int(s) for s in args.scales.split(",")]:
            catalog = ROOT / "bench-data" / f"retail-{customers}"
            if not (catalog / "churn_cutoffs.parquet").exists():
                subprocess.run([fc, "generate", "--out", catalog, "--customers", str(customers),
                                "--event-files", "8"], check=True)
            started = time.monotonic()
            if args.server == "s3s":
                subprocess.run([VENV_PYTHON, "-c", UPLOAD, endpoint, catalog, "catalog",
                                f"retail-{customers}"], check=True)
                sent = sum(p.stat().st_size for p in catalog.rglob("*") if p.is_file())
            else:
                sent = upload(endpoint, catalog, f"retail-{customers}")
            print(f"[{customers}] uploaded {sent / 2**20:.0f} MiB in "
                  f"{time.monotonic() - started:.1f} s", file=sys.stderr)
            s3_catalog = f"s3://catalog/retail-{customers}"
            work = Path(tempfile.mkdtemp(prefix="featurecraft-storage-", dir=ROOT / "bench-data"))
            local_wh, s3_wh = str(work / "warehouse"), f"s3://warehouse/bench-{customers}"

            def validate(where):
                return [fc, "validate", RECIPE, "--catalog", where, "--sample-size", "10000",
                        "--memory-limit", "2G"]

            def materialize(where, warehouse, table_format):
                return [fc, "materialize", RECIPE, "--catalog", where, "--warehouse", warehouse,
                        "--domain", table_format, "--table-format", table_format,
                        "--memory-limit", "2G"]

            cases = {
                "validate, local catalog": validate(catalog),
                "validate, catalog in S3": validate(s3_catalog),
                "materialize Parquet, local catalog and warehouse": materialize(catalog, local_wh, "parquet"),
                "materialize Parquet, catalog in S3, local warehouse": materialize(s3_catalog, local_wh, "parquet"),
                "materialize Parquet, catalog and warehouse in S3": materialize(s3_catalog, s3_wh, "parquet"),
                "materialize Delta, local catalog and warehouse": materialize(catalog, local_wh, "delta"),
                "materialize Delta, catalog and warehouse in S3": materialize(s3_catalog, s3_wh, "delta"),
            }
            cases = {name: [str(c) for c in command] for name, command in cases.items()}
            measured = {name: [] for name in cases}
            requests = {}
            for round_ in range(args.runs + 1):
                for name, command in cases.items():
                    print(f"[{customers}] round {round_} {name} …", file=sys.stderr)
                    before = requests_in(log_path)
                    result = measure(command, env)
                    after = requests_in(log_path)
                    # The requests of the run (the same in every round).
                    requests[name] = {m: n - before.get(m, 0) for m, n in after.items()
                                      if n > before.get(m, 0)}
                    if round_ > 0:  # round 0 warms the page cache and the server
                        measured[name].append(result)
            scale = {"customers": customers, "catalog_mib": round(sent / 2**20), "cases": {}}
            for name, runs in measured.items():
                times = sorted(t for t, _ in runs)
                scale["cases"][name] = {"median_s": round(statistics.median(times), 3),
                                        "min_s": round(times[0], 3),
                                        "max_s": round(times[-1], 3),
                                        "peak_rss_mib": round(max(r for _, r in runs)),
                                        "s3_requests": requests[name] or None}
            c = {name: v["median_s"] for name, v in scale["cases"].items()}
            scale["ratios"] = {
                "validate: S3 / local": c["validate, catalog in S3"] / c["validate, local catalog"],
                "materialize Parquet: S3 catalog / local": (
                    c["materialize Parquet, catalog in S3, local warehouse"]
                    / c["materialize Parquet, local catalog and warehouse"]),
                "materialize Parquet: S3 both / local": (
                    c["materialize Parquet, catalog and warehouse in S3"]
                    / c["materialize Parquet, local catalog and warehouse"]),
                "materialize Delta / Parquet, local": (
                    c["materialize Delta, local catalog and warehouse"]
                    / c["materialize Parquet, local catalog and warehouse"]),
                "materialize Delta / Parquet, S3": (
                    c["materialize Delta, catalog and warehouse in S3"]
                    / c["materialize Parquet, catalog and warehouse in S3"]),
            }
            scale["ratios"] = {k: round(v, 3) for k, v in scale["ratios"].items()}
            results["scales"].append(scale)
            print(json.dumps(scale, indent=2))
    finally:
        if args.server == "s3s":
            server.terminate()
        else:
            server.stdin.close()
        server.wait(timeout=30)
        log.close()
        log_path.unlink()
        subprocess.run(["rm", "-rf", str(s3s_root)], check=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"report: {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
