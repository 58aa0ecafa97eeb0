"""The service's OpenAPI document against a running `featurecraft serve`: it validates as
OpenAPI 3.1 (openapi-spec-validator), a client generated from it (openapi-python-client)
drives create → retry → approve → materialize, and every answer matches the document's
schema of it."""

import copy
import importlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid

import httpx
import jsonschema
import pytest
from openapi_spec_validator import validate as validate_spec

from conftest import CATALOG, FIXTURES, cli_binary

SECRET = "0123456789abcdef0123456789abcdef-openapi"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def service(tmp_path):
    catalog = tmp_path / "retail"
    shutil.copytree(CATALOG, catalog)
    port = free_port()
    env = dict(os.environ, FEATURECRAFT_JWT_SECRET=SECRET)
    process = subprocess.Popen(
        [str(cli_binary()), "serve", "--catalog", str(catalog), "--db", str(tmp_path / "jobs.db"),
         "--warehouse", str(tmp_path / "warehouse"), "--addr", f"127.0.0.1:{port}", "--sample-size", "500"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        else:
            pytest.fail("the server did not start: " + process.stderr.read().decode())
        token = subprocess.run([str(cli_binary()), "token", "--sub", "ana@example.com"], env=env,
                               capture_output=True, text=True, check=True).stdout.strip()
        yield base, token, catalog, tmp_path
    finally:
        process.terminate()
        process.wait(timeout=30)


def schema_of(document: dict, name: str) -> dict:
    """The document's component `name`, resolvable against the whole document."""
    schema = copy.deepcopy(document)
    schema["$ref"] = f"#/components/schemas/{name}"
    return schema


def generated_client(document: dict, folder):
    """A client package generated from the document by openapi-python-client."""
    spec = folder / "openapi.json"
    spec.write_text(json.dumps(document))
    config = folder / "config.json"
    config.write_text(json.dumps({"post_hooks": []}))
    generator = os.path.join(os.path.dirname(sys.executable), "openapi-python-client")
    done = subprocess.run(
        [generator, "generate", "--path", str(spec), "--meta", "none", "--config", str(config),
         "--output-path", str(folder / "featurecraft_jobs_client")],
        capture_output=True, text=True, cwd=folder,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module("featurecraft_jobs_client")
    finally:
        sys.path.remove(str(folder))


def test_the_document_validates_and_a_generated_client_drives_a_job(service):
    base, token, catalog, tmp_path = service
    answer = httpx.get(f"{base}/openapi.json")
    assert answer.status_code == 200
    document = answer.json()
    validate_spec(document)
    assert document["openapi"].startswith("3.1")
    prefix = "/api/automl/feature-engineering"
    assert {f"{prefix}/jobs", f"{prefix}/jobs/{{job_id}}", f"{prefix}/jobs/{{job_id}}/retry",
            f"{prefix}/jobs/{{job_id}}/approve", f"{prefix}/jobs/{{job_id}}/materialize"} <= set(document["paths"])
    # The contract's shapes: the Job's required fields and the status enum spellings.
    job_schema = document["components"]["schemas"]["Job"]
    assert set(job_schema["required"]) >= {"job_id", "status", "target_table_name", "domain", "owner",
                                           "created_at", "updated_at", "recipe", "sql", "validation", "error"}
    statuses = document["components"]["schemas"]["JobStatus"]
    assert set(statuses.get("enum", [])) | {s.get("const") for s in statuses.get("oneOf", [])} >= {
        "running", "pending_approval", "failed", "approved", "materializing", "complete"}

    package = generated_client(document, tmp_path)
    client_module = importlib.import_module("featurecraft_jobs_client.client")
    api = "featurecraft_jobs_client.api.default"
    create_job = importlib.import_module(f"{api}.create_job")
    retry_job = importlib.import_module(f"{api}.retry_job")
    approve_job = importlib.import_module(f"{api}.approve_job")
    materialize_job = importlib.import_module(f"{api}.materialize_job")
    get_job = importlib.import_module(f"{api}.get_job")
    models = importlib.import_module("featurecraft_jobs_client.models")
    client = client_module.AuthenticatedClient(base_url=base, token=token, timeout=120)
    assert package is not None

    # The support tickets arrive later: the first attempt fails, the retry succeeds.
    (catalog / "support_tickets.parquet").rename(tmp_path / "support_tickets.parquet")
    recipe = json.loads((FIXTURES / "recipes" / "good" / "churn_basic.json").read_text())
    body = models.CreateJob.from_dict({"target_table_name": "churn_training", "domain": "retail", "recipe": recipe})
    created = create_job.sync_detailed(client=client, body=body, wait=True)
    assert created.status_code == 201, created.content
    job = json.loads(created.content)
    jsonschema.validate(job, schema_of(document, "Job"))
    assert job["status"] == "failed" and "support_tickets" in job["error"]
    job_id = uuid.UUID(job["job_id"])

    # A conflict is an ErrorBody, as the document says.
    refused = approve_job.sync_detailed(job_id, client=client)
    assert refused.status_code == 409
    jsonschema.validate(json.loads(refused.content), schema_of(document, "ErrorBody"))

    (tmp_path / "support_tickets.parquet").rename(catalog / "support_tickets.parquet")
    retried = retry_job.sync_detailed(job_id, client=client, wait=True)
    assert retried.status_code == 200, retried.content
    assert retried.parsed.status.value == "pending_approval"
    jsonschema.validate(json.loads(retried.content), schema_of(document, "Job"))

    approved = approve_job.sync_detailed(job_id, client=client)
    assert approved.status_code == 200, approved.content
    assert approved.parsed.status.value == "approved"

    done = materialize_job.sync_detailed(job_id, client=client, wait=True)
    assert done.status_code == 200, done.content
    final = json.loads(done.content)
    jsonschema.validate(final, schema_of(document, "Job"))
    assert final["status"] == "complete"
    assert final["materialized"]["rows"] == 1000

    fetched = get_job.sync_detailed(job_id, client=client)
    assert fetched.parsed.status.value == "complete"
    missing = get_job.sync_detailed(uuid.uuid4(), client=client)
    assert missing.status_code == 404
    jsonschema.validate(json.loads(missing.content), schema_of(document, "ErrorBody"))


def test_the_engine_routes_answer_as_documented(service):
    base, token, _, _ = service
    document = httpx.get(f"{base}/openapi.json").json()
    prefix = "/api/automl/feature-engineering"
    headers = {"Authorization": f"Bearer {token}"}
    good = json.loads((FIXTURES / "recipes" / "good" / "churn_basic.json").read_text())
    bad = json.loads((FIXTURES / "recipes" / "bad" / "E021_unknown_column.json").read_text())
    for route, answer in [("compile", "CompileAnswer"), ("validate", "ValidateAnswer")]:
        for recipe, status in [(good, 200), (bad, 422)]:
            body = {"recipe": recipe, "dialect": "duckdb"}
            jsonschema.validate(body, schema_of(document, "EngineRequest"))
            got = httpx.post(f"{base}{prefix}/{route}", json=body, headers=headers, timeout=120)
            assert got.status_code == status, got.text
            jsonschema.validate(got.json(), schema_of(document, answer))
    unauthorized = httpx.get(f"{base}{prefix}/jobs")
    assert unauthorized.status_code == 401
    jsonschema.validate(unauthorized.json(), schema_of(document, "ErrorBody"))
    jsonschema.validate(httpx.get(f"{base}/healthz").json(), schema_of(document, "Health"))
