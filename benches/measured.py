"""One measured run of a command: its wall time and its own peak RSS.

Linux counts a process's peak RSS (`ru_maxrss`) across `exec`: a child forked from the
benchmark script starts with the script's resident memory as its peak, so a featurecraft
run smaller than the script (which holds the tables it compares) was reported at the
script's size. The command is therefore started by a small launcher (a Python interpreter
without site packages, about 10 MiB), which spawns it, waits for it and reports its wall
time, its peak RSS and its exit status on a pipe of their own.
"""

import os
import subprocess
import sys
from dataclasses import dataclass

LAUNCHER = """
import os, sys, time
started = time.monotonic()
pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
with os.fdopen(int(sys.argv[1]), "w") as report:
    report.write(f"{time.monotonic() - started} {usage.ru_maxrss} {status}")
"""


@dataclass
class Measured:
    """What one run gave: wall seconds (the command's own, not the launcher's start), peak
    RSS in MiB, the exit code, and stderr's text."""

    elapsed: float
    peak_rss_mib: float
    exit_code: int
    stderr: str


def run(command, env=None, stdout=subprocess.DEVNULL, preexec_fn=None):
    """Runs `command` (a list) through the launcher; stderr is captured, stdout goes to
    `stdout`. `preexec_fn` runs in the launcher and so bounds the command as well (limits
    set there are inherited)."""
    read, write = os.pipe()
    try:
        process = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", LAUNCHER, str(write), *map(str, command)],
            stdout=stdout, stderr=subprocess.PIPE, env=env, pass_fds=(write,),
            preexec_fn=preexec_fn)
    finally:
        os.close(write)
    with os.fdopen(read) as report:
        stderr = process.stderr.read().decode(errors="replace")
        process.wait()
        process.stderr.close()
        fields = report.read().split()
    if process.returncode != 0 or len(fields) != 3:
        # The launcher itself failed (the command could not be started, for one).
        return Measured(0.0, 0.0, process.returncode or 1, stderr)
    elapsed, maxrss_kib, status = float(fields[0]), int(fields[1]), int(fields[2])
    return Measured(elapsed, maxrss_kib / 1024, os.waitstatus_to_exitcode(status), stderr)
