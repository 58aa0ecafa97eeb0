"""A scripted crew for tests/crew.rs: it behaves as a model does, one mistake fixed per round.

Usage: scripted_crew.py MODE. It reads {"job", "diagnostics", "catalog", "round"} on stdin.
MODE `learn` fixes the first error of the diagnostics it was given in the job's recipe
(the table a did-you-mean names, the column a suggestion names, a bare column wrapped in
SUM) and prints the recipe; `chatty` does the same after 1 MB of log lines on stderr;
`hang`, `garbage`, `exit1` and `flood` misbehave."""

import json
import re
import sys
import time

mode = sys.argv[1]
if mode == "hang":
    time.sleep(3600)
if mode == "garbage":
    print("Sure! Here is the recipe you asked for: it predicts churn.")
    sys.exit(0)
if mode == "exit1":
    print("the model is overloaded", file=sys.stderr)
    sys.exit(1)
if mode == "flood":
    chunk = "x" * (1 << 20)
    for _ in range(100):
        sys.stdout.write(chunk)
    sys.exit(0)

if mode == "chatty":
    for i in range(16 * 1024):
        print(f"thinking, step {i}: " + "." * 40, file=sys.stderr)

given = json.load(sys.stdin)
assert set(given) == {"job", "diagnostics", "catalog", "round"}, sorted(given)
assert "customers" in given["catalog"], "the catalog as describe-catalog writes it"
recipe = given["job"]["recipe"]
errors = [d for d in given["diagnostics"] if d["severity"] == "error"]
if errors:
    d = errors[0]
    index = int(re.match(r"features\[(\d+)\]", d["path"]).group(1))
    feature = recipe["features"][index]
    if d["code"] == "E020":
        feature["source_table"] = d["suggestion"]["candidates"][0]
    elif d["code"] == "E021":
        found, wanted = d["suggestion"]["found"], d["suggestion"]["candidates"][0]
        feature["expression"] = re.sub(rf"\b{re.escape(found)}\b", wanted, feature["expression"])
    elif d["code"] == "E030":
        bare = re.search(r"`([^`]+)` is read outside any aggregate", d["message"]).group(1)
        feature["expression"] = re.sub(rf"(?<!\()\b{re.escape(bare)}\b(?!\))", f"SUM({bare})",
                                       feature["expression"])
recipe["notes"] = f"proposed by the scripted crew in round {given['round']}"
print(json.dumps(recipe))
