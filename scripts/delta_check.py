"""delta-rs (the `deltalake` package from PyPI) on Delta tables, for featurecraft's tests
(tests/object_store.rs):

    delta_check.py read DELTA_URI PARQUET_DIR [--version N]
        prints {"version", "rows", "equal"}: the version delta-rs read, its row count,
        and whether its rows (sorted) equal the Parquet folder's (PARQUET_DIR `-`: not
        compared, `equal` is null);
    delta_check.py write PARQUET_PATH DELTA_URI MODE
        writes the Parquet file's rows as a commit (MODE: error, overwrite, append) and
        prints {"version"}.

An object store's endpoint and credentials come from the environment (AWS_*), as
featurecraft reads them.
"""

import datetime
import json
import os
import sys

import pyarrow.parquet as pq
from deltalake import DeltaTable, write_deltalake


def normal(value):
    if isinstance(value, datetime.datetime):
        return value.replace(tzinfo=None).isoformat(timespec="microseconds")
    if isinstance(value, float):
        return round(value, 9)
    return value


def rows(table):
    names = sorted(table.column_names)
    listed = table.select(names).to_pylist()
    return sorted(
        (tuple(normal(row[n]) for n in names) for row in listed),
        key=lambda row: json.dumps(row, default=str),
    )


def storage_options():
    options = {
        key: os.environ[key]
        for key in ("AWS_ENDPOINT_URL", "AWS_ALLOW_HTTP", "AWS_REGION", "AWS_ACCESS_KEY_ID",
                    "AWS_SECRET_ACCESS_KEY")
        if key in os.environ
    }
    if options:
        options["AWS_S3_ALLOW_UNSAFE_RENAME"] = "true"
    return options or None


def write(parquet_path, uri, mode):
    write_deltalake(uri, pq.read_table(parquet_path), mode=mode,
                    storage_options=storage_options())
    print(json.dumps({"version": DeltaTable(uri, storage_options=storage_options()).version()}))


def main() -> None:
    if sys.argv[1] == "write":
        write(sys.argv[2], sys.argv[3], sys.argv[4])
        return
    uri, parquet_dir = sys.argv[2], sys.argv[3]
    version = int(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[4] == "--version" else None
    table = DeltaTable(uri, version=version, storage_options=storage_options())
    read = table.to_pyarrow_table()
    equal = None
    if parquet_dir != "-":
        equal = rows(read) == rows(pq.read_table(parquet_dir))
    print(json.dumps({"version": table.version(), "rows": read.num_rows, "equal": equal}))


if __name__ == "__main__":
    main()
