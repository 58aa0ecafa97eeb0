"""featurecraft's MCP server driven by the official MCP Python SDK (a client nobody on the
project wrote): `featurecraft mcp` over stdio, and the service's `POST /mcp` over streamable
HTTP. tests/mcp.rs runs it through scripts/test-mcp.

Each check compares the tools with this build's command line (FEATURECRAFT_BIN) on the
bundled fixtures. It prints one line per check and exits non-zero on the first failure."""

import asyncio
import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamablehttp_client
from mcp.shared.exceptions import McpError

BIN = os.environ["FEATURECRAFT_BIN"]
ROOT = pathlib.Path(__file__).resolve().parent.parent
CATALOG = ROOT / "fixtures" / "retail"
RECIPES = ROOT / "fixtures" / "recipes"
SAMPLE = "300"
LIMIT = 10_000
TOOLS = {"list_tables", "describe_table", "compile_recipe", "validate_recipe", "design_recipe", "fix_recipe"}
checks = 0


def check(condition, what):
    global checks
    if not condition:
        raise AssertionError(what)
    checks += 1


def cli(*args):
    """The command line's JSON answer (exit 0 or 1 both answer)."""
    done = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=300)
    check(done.returncode in (0, 1), f"featurecraft {' '.join(args)}: {done.stderr}")
    return json.loads(done.stdout)


def answer(result):
    """The structured content, checked to be the text block's JSON and under the limit."""
    text = result.content[0].text
    check(json.loads(text) == result.structuredContent, "the text block is the structured JSON")
    check(len(text.encode()) <= LIMIT, f"a result of {len(text.encode())} bytes")
    check(len(json.dumps(result.structuredContent, separators=(",", ":")).encode()) <= LIMIT + 100,
          "the structured content is small")
    return result.structuredContent


def first_error(diagnostics):
    return next(d["code"] for d in diagnostics if d["severity"] == "error")


async def main():
    params = StdioServerParameters(
        command=BIN, args=["mcp", "--catalog", str(CATALOG), "--sample-size", SAMPLE])
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            check(init.serverInfo.name == "featurecraft", "the server names itself")
            print(f"protocol {init.protocolVersion}")

            listed = (await session.list_tools()).tools
            check({t.name for t in listed} == TOOLS, f"tools: {[t.name for t in listed]}")
            for tool in listed:
                check(tool.inputSchema.get("type") == "object", f"{tool.name}: an input schema")
                check(tool.outputSchema and tool.outputSchema.get("type") == "object",
                      f"{tool.name}: an output schema")
                check(tool.annotations.readOnlyHint is True and tool.annotations.openWorldHint is False,
                      f"{tool.name}: read-only, closed world")
            print("tools/list: six tools, both schemas, read-only")

            tables = answer(await session.call_tool("list_tables", {}))
            names = {t["name"] for t in tables["tables"]}
            check("customers" in names and "events" in names, f"tables: {names}")
            described = answer(await session.call_tool("describe_table", {"table": "Customers"}))
            check(described["table"] == "customers" and "customer_id" in described["columns"], described)
            wrong = await session.call_tool("describe_table", {"table": "custmers"})
            check(wrong.isError, "an unknown table is an error result")
            check("did you mean `customers`" in json.dumps(answer(wrong)), "with a did-you-mean")
            print("list_tables, describe_table")

            good = sorted((RECIPES / "good").glob("*.json"))
            for path in good:
                recipe = json.loads(path.read_text())
                for dialect in ("generic", "duckdb"):
                    result = await session.call_tool(
                        "compile_recipe", {"recipe": recipe, "dialect": dialect})
                    expected = cli("compile", str(path), "--catalog", str(CATALOG),
                                   "--dialect", dialect, "--format", "json")
                    got = answer(result)
                    check(not result.isError, f"{path.name}: compiles")
                    if len(json.dumps(expected, separators=(",", ":"))) <= LIMIT:
                        check(got == expected, f"{path.name} ({dialect}): the CLI's answer")
                    else:
                        check(got.get("truncated") and got["dialect"] == expected["dialect"],
                              f"{path.name}: a long answer is cut and says so")
            print(f"compile_recipe: {len(good)} good fixtures as the CLI compiles them")

            bad = [p for p in sorted((RECIPES / "bad").glob("*.json"))
                   if not p.name.startswith("E001_malformed")]
            dialects = ("bigquery", "postgres", "duckdb", "snowflake", "databricks")
            for path in bad:
                recipe = json.loads(path.read_text())
                code = path.name.split("_")[0]
                dialect = next((d for d in dialects if d in path.name), "generic")
                expected = cli("compile", str(path), "--catalog", str(CATALOG),
                               "--dialect", dialect, "--format", "json")
                result = await session.call_tool(
                    "compile_recipe", {"recipe": recipe, "dialect": dialect})
                got = answer(result)
                codes = [d["code"] for d in got["diagnostics"]]
                check(code in result.content[0].text, f"{path.name}: {code} in the text")
                check(code in codes, f"{path.name}: {code} among {codes}")
                check(result.isError == (expected["sql"] is None),
                      f"{path.name}: isError exactly when the CLI withholds the SQL")
                if result.isError:
                    check(first_error(got["diagnostics"]) == first_error(expected["diagnostics"]),
                          f"{path.name}: the CLI's first error")
            print(f"compile_recipe: {len(bad)} bad fixtures as the CLI finds them, isError for errors")

            for name in ("churn_basic.json", "pit_churn.json"):
                path = RECIPES / "good" / name
                expected = cli("validate", str(path), "--catalog", str(CATALOG),
                               "--sample-size", SAMPLE, "--format", "json")
                result = await session.call_tool(
                    "validate_recipe", {"recipe": json.loads(path.read_text())})
                check(not result.isError, f"{name}: validates")
                check(answer(result) == expected, f"{name}: the CLI's validation JSON")
            print("validate_recipe: the CLI's validation JSON")

            base = json.loads((RECIPES / "good" / "churn_basic.json").read_text())
            wide = dict(base)
            wide["features"] = [
                {"name": f"f{i}", "expression": f"SUM(no_such_column_{i})", "source_table": "events"}
                for i in range(1500)
            ]
            result = await session.call_tool("compile_recipe", {"recipe": wide})
            got = answer(result)
            check(result.isError, "every feature in error")
            check(got["truncated"] is True and got["left_out"]["/diagnostics"] > 1000,
                  f"cut, saying so: {got.get('left_out')}")
            print(f"1500 features in error: {len(result.content[0].text)} bytes, "
                  f"{got['left_out']['/diagnostics']} diagnostics left out")

            typo = json.loads(json.dumps(base))
            typo["features"][0]["source_table"] = "custmers"
            result = await session.call_tool("fix_recipe", {"recipe": typo})
            fixed = answer(result)
            check(not result.isError and fixed["changes"], f"fixed: {fixed}")
            check(fixed["recipe"]["features"][0]["source_table"] == "customers", "the table fixed")
            print("fix_recipe: a misspelled table fixed")

            request = {"spine": "customers", "entity_grain": ["customer_id"],
                       "label": {"name": "churned_30d", "type": "binary", "column": "churned_30d"}, "max_features": 8,
                       "max_depth": 1}
            result = await session.call_tool("design_recipe", request)
            designed = answer(result)
            check(not result.isError and 0 < len(designed["recipe"]["features"]) <= 8, designed)
            print(f"design_recipe: {len(designed['recipe']['features'])} features")

            # Protocol problems are JSON-RPC errors, and the server keeps answering.
            for name, args, what in [
                ("no_such_tool", {}, "unknown tool"),
                ("compile_recipe", {"recipe": base, "dialect": 7}, "do not match"),
                ("compile_recipe", {"dialect": "duckdb"}, "do not match"),
                ("describe_table", {"table": "customers", "extra": 1}, "do not match"),
                ("compile_recipe", {"recipe": base, "dialect": "cobol"}, "dialect"),
            ]:
                try:
                    await session.call_tool(name, args)
                    check(False, f"{name} {args}: an error")
                except McpError as e:
                    check(what in str(e), f"{name}: {e}")
            check(len((await session.list_tools()).tools) == 6, "still answering")
            print("unknown tools and bad arguments: JSON-RPC errors, the server goes on")

            # Hostile arguments: bounded, a clear error, the server goes on.
            started = time.monotonic()
            huge = dict(base)
            huge["notes"] = "x" * (50 * 1024 * 1024)
            try:
                await session.call_tool("compile_recipe", {"recipe": huge})
                check(False, "a 50 MB recipe: an error")
            except McpError as e:
                check("the limit is 8 MB" in str(e), str(e))
            check(time.monotonic() - started < 60, "answered in time")
            check(len((await session.list_tools()).tools) == 6, "still answering")
            print("a 50 MB recipe: a clear error, the server goes on")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, token=None, body=None):
    """(status, JSON body) of one plain HTTP request."""
    request = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode())
    request.add_header("content-type", "application/json")
    request.add_header("accept", "application/json, text/event-stream")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


async def service():
    """The service's /mcp: the same tools plus the job tools, as the token's subject."""
    env = dict(os.environ, FEATURECRAFT_JWT_SECRET="mcp-client-check-secret-0123456789abcdef")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    api = f"{base}/api/automl/feature-engineering"
    token = lambda sub: subprocess.run([BIN, "token", "--sub", sub], env=env, capture_output=True,
                                       text=True, check=True).stdout.strip()
    ana, bob = token("ana@example.com"), token("bob@example.com")
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen(
            [BIN, "serve", "--catalog", str(CATALOG), "--db", f"{tmp}/jobs.db", "--warehouse",
             f"{tmp}/warehouse", "--addr", f"127.0.0.1:{port}", "--sample-size", SAMPLE],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(300):
                try:
                    if http("GET", f"{base}/healthz")[0] == 200:
                        break
                except OSError:
                    time.sleep(0.1)
            status, body = http("POST", f"{base}/mcp", body={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
            check(status == 401, f"/mcp without a token: {status} {body}")
            print("/mcp without a token: 401")

            headers = {"Authorization": f"Bearer {ana}"}
            async with streamablehttp_client(f"{base}/mcp", headers=headers) as (read, write, _):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    listed = {t.name: t for t in (await session.list_tools()).tools}
                    check(set(listed) == TOOLS | {"create_job", "get_job", "list_jobs", "retry_job", "approve_job"},
                          f"tools: {sorted(listed)}")
                    for tool in listed.values():
                        check(tool.inputSchema.get("type") == "object" and tool.outputSchema
                              and tool.outputSchema.get("type") == "object", f"{tool.name}: both schemas")
                    approve = listed["approve_job"].annotations
                    check(approve.destructiveHint is False and approve.idempotentHint is True, approve)
                    check(listed["get_job"].annotations.readOnlyHint is True, "get_job reads")
                    path = RECIPES / "good" / "churn_basic.json"
                    expected = cli("compile", str(path), "--catalog", str(CATALOG), "--format", "json")
                    result = await session.call_tool("compile_recipe", {"recipe": json.loads(path.read_text())})
                    check(answer(result) == expected, "compile_recipe over HTTP: the CLI's answer")
                    result = await session.call_tool("create_job", {
                        "target_table_name": "churn_training", "domain": "retail",
                        "recipe": json.loads(path.read_text()), "wait": True})
                    job = answer(result)
                    check(not result.isError and job["status"] == "pending_approval", job)
                    jobs = answer(await session.call_tool("list_jobs", {}))["jobs"]
                    check(any(j["job_id"] == job["job_id"] for j in jobs), "listed")
                    approved = answer(await session.call_tool("approve_job", {"job_id": job["job_id"]}))
                    check(approved["status"] == "approved", approved)
                    again = await session.call_tool("approve_job", {"job_id": job["job_id"]})
                    check(again.isError and answer(again)["status"] == 409, answer(again))
                    try:
                        await session.call_tool("get_job", {"id": job["job_id"]})
                        check(False, "misnamed arguments: an error")
                    except McpError as e:
                        check("do not match" in str(e), str(e))
            status, seen = http("GET", f"{api}/jobs/{job['job_id']}", ana)
            check(status == 200 and seen["status"] == "approved", f"{status} {seen}")
            status, _ = http("GET", f"{api}/jobs/{job['job_id']}", bob)
            check(status == 404, f"another user: {status}")
            async with streamablehttp_client(f"{base}/mcp", headers={"Authorization": f"Bearer {bob}"}) as (read, write, _):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    other = await session.call_tool("get_job", {"job_id": job["job_id"]})
                    check(other.isError and answer(other)["status"] == 404, answer(other))
            print("POST /mcp: eleven tools; create_job, list_jobs, approve_job as the token's subject, "
                  "seen through REST by its owner only")
        finally:
            server.terminate()
            server.wait(timeout=30)


asyncio.run(main())
asyncio.run(service())
print(f"mcp client: {checks} checks passed")
