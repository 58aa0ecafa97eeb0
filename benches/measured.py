"""One measured run of a command: its wall time and its own peak RSS.

Linux counts a process's peak RSS (`ru_maxrss`) across `exec`: a child forked from the
benchmark script starts with the script's resident memory as its peak, so a featurecraft
run smaller than the script (which holds the tables it compares) was reported at the
script's size. The command is therefore started by a small launcher (a Python interpreter
without site packages, about 10 MiB), which spawns it, waits for it and reports its wall
time, its peak RSS and its exit status on a pipe of their own.

Every run has a time bound (`TIME_LIMIT_S` unless the caller gives one): past it the
launcher kills the command, and the run comes back failed and marked `timed_out`, so a
hung case stops the benchmark with a message instead of holding it forever.
"""

import os
import subprocess
import sys
from dataclasses import dataclass

# argv: the report's descriptor, the time limit in seconds, then the command.
LAUNCHER = """
import os, signal, sys, time
timed_out = False
def expire(signum, frame):
    global timed_out
    timed_out = True
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
started = time.monotonic()
pid = os.posix_spawnp(sys.argv[3], sys.argv[3:], os.environ)
signal.signal(signal.SIGALRM, expire)
signal.setitimer(signal.ITIMER_REAL, float(sys.argv[2]))
_, status, usage = os.wait4(pid, 0)
signal.setitimer(signal.ITIMER_REAL, 0)
with os.fdopen(int(sys.argv[1]), "w") as report:
    report.write(f"{time.monotonic() - started} {usage.ru_maxrss} {status} {int(timed_out)}")
"""

# The longest one run may take, by default: the slowest case at L takes seconds.
TIME_LIMIT_S = 600


@dataclass
class Measured:
    """What one run gave: wall seconds (the command's own, not the launcher's start), peak
    RSS in MiB, the exit code, stderr's text, and whether the time limit killed it."""

    elapsed: float
    peak_rss_mib: float
    exit_code: int
    stderr: str
    timed_out: bool = False


def run(command, env=None, stdout=subprocess.DEVNULL, preexec_fn=None, time_limit_s=TIME_LIMIT_S):
    """Runs `command` (a list) through the launcher; stderr is captured, stdout goes to
    `stdout`. `preexec_fn` runs in the launcher and so bounds the command as well (limits
    set there are inherited); `time_limit_s` bounds its wall time."""
    read, write = os.pipe()
    try:
        process = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", LAUNCHER, str(write), str(time_limit_s),
             *map(str, command)],
            stdout=stdout, stderr=subprocess.PIPE, env=env, pass_fds=(write,),
            preexec_fn=preexec_fn)
    finally:
        os.close(write)
    with os.fdopen(read) as report:
        stderr = process.stderr.read().decode(errors="replace")
        process.wait()
        process.stderr.close()
        fields = report.read().split()
    if process.returncode != 0 or len(fields) != 4:
        # The launcher itself failed (the command could not be started, for one).
        return Measured(0.0, 0.0, process.returncode or 1, stderr)
    elapsed, maxrss_kib, status = float(fields[0]), int(fields[1]), int(fields[2])
    timed_out = fields[3] == "1"
    if timed_out:
        stderr += f"\nkilled after its time limit of {time_limit_s} s"
    return Measured(elapsed, maxrss_kib / 1024, os.waitstatus_to_exitcode(status), stderr,
                    timed_out)
