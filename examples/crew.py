"""A crew for `featurecraft retry --crew-command "python3 examples/crew.py"` (and
`serve --crew-command`, Python's `retry(crew_command=...)`): the protocol in thirty lines.

featurecraft writes one JSON object to stdin:
  {"job": <the failed Job>, "diagnostics": [<its recipe's findings>],
   "catalog": <describe-catalog JSON: table -> column -> type>, "round": 1, 2, ...}
and reads one FeatureRecipe JSON from stdout. While the recipe does not validate, the crew
runs again (up to --crew-rounds) with the new findings and its last recipe in `job`.
Exit non-zero, print something else, or take longer than --crew-timeout: the retry fails
naming why.

This crew only applies the findings' machine-readable suggestions; a real one hands the
diagnostics and the catalog to a model where marked below.
"""

import json
import re
import sys

given = json.load(sys.stdin)
recipe = given["job"]["recipe"]
for finding in given["diagnostics"]:
    suggestion = finding.get("suggestion")
    match = re.match(r"features\[(\d+)\]\.(\w+)$", finding.get("path") or "")
    if finding["severity"] != "error" or not suggestion or not match:
        continue  # A model would reason about these (message, hints, the catalog).
    feature = recipe["features"][int(match.group(1))]
    field, found, wanted = match.group(2), suggestion["found"], suggestion["candidates"][0]
    if suggestion["replaces"] == "name" and field in feature:
        feature[field] = re.sub(rf"\b{re.escape(found)}\b", wanted, feature[field])
print(json.dumps(recipe))
