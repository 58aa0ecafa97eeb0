"""examples/fastapi_backend.py, the contract's job routes over the package, driven through
FastAPI's TestClient: create (fails: a table is not there yet) → the table arrives → retry →
approve → materialize, and the contract's error statuses."""

import importlib.util
import shutil

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from conftest import CATALOG, FIXTURES, ROOT

BASE = "/api/automl/feature-engineering"
AUTH = {"Authorization": "Bearer ana@example.com"}


def example_module():
    spec = importlib.util.spec_from_file_location("fastapi_backend", ROOT / "examples" / "fastapi_backend.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def service(tmp_path):
    catalog = tmp_path / "retail"
    shutil.copytree(CATALOG, catalog)
    # The support tickets arrive later: until then the recipe reads a table the catalog lacks.
    (catalog / "support_tickets.parquet").rename(tmp_path / "support_tickets.parquet")
    app = example_module().create_app(str(catalog), str(tmp_path / "warehouse"))
    return TestClient(app), catalog, tmp_path


def test_create_retry_approve_materialize(service):
    client, catalog, tmp_path = service
    recipe = (FIXTURES / "recipes" / "good" / "churn_basic.json").read_text()
    import json

    body = {"target_table_name": "churn_training", "domain": "retail", "owner": "ana@example.com",
            "recipe": json.loads(recipe)}
    created = client.post(f"{BASE}/jobs", json=body, headers=AUTH)
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["status"] == "failed"
    assert "E020" in job["error"] and "support_tickets" in job["error"]
    job_id = job["job_id"]

    # Approving a failed job is a conflict; so is retrying a job that has not failed.
    assert client.post(f"{BASE}/jobs/{job_id}/approve", headers=AUTH).status_code == 409

    (tmp_path / "support_tickets.parquet").rename(catalog / "support_tickets.parquet")
    retried = client.post(f"{BASE}/jobs/{job_id}/retry", headers=AUTH)
    assert retried.status_code == 200, retried.text
    job = retried.json()
    assert job["status"] == "pending_approval", job["error"]
    assert job["error"] is None
    assert job["validation"]["estimated_row_count"] == 1000
    assert job["sql"].startswith("CREATE")
    assert set(job) >= {"job_id", "status", "target_table_name", "domain", "owner", "created_at",
                        "updated_at", "recipe", "sql", "validation", "error"}
    assert client.post(f"{BASE}/jobs/{job_id}/retry", headers=AUTH).status_code == 409

    approved = client.post(f"{BASE}/jobs/{job_id}/approve", headers=AUTH)
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    done = client.post(f"{BASE}/jobs/{job_id}/materialize", headers=AUTH)
    assert done.status_code == 200 and done.json()["status"] == "complete", done.text
    table = pq.read_table(tmp_path / "warehouse" / "retail" / "churn_training")
    assert table.num_rows == 1000

    fetched = client.get(f"{BASE}/jobs/{job_id}", headers=AUTH)
    assert fetched.status_code == 200 and fetched.json()["status"] == "complete"
    assert [j["job_id"] for j in client.get(f"{BASE}/jobs", headers=AUTH).json()] == [job_id]


def test_contract_errors(service):
    client, _, _ = service
    assert client.get(f"{BASE}/jobs").status_code == 401
    missing = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
    assert client.get(f"{BASE}/jobs/{missing}", headers=AUTH).status_code == 404
    not_uuid = client.get(f"{BASE}/jobs/not-a-uuid", headers=AUTH)
    assert not_uuid.status_code == 422 and "detail" in not_uuid.json()
    no_owner = client.post(f"{BASE}/jobs", json={"target_table_name": "t", "domain": "d"}, headers=AUTH)
    assert no_owner.status_code == 422
    assert any(e["loc"][-1] == "owner" for e in no_owner.json()["detail"])
    # Another caller does not see the job.
    body = {"target_table_name": "t", "domain": "retail", "owner": "ana@example.com"}
    job = client.post(f"{BASE}/jobs", json=body, headers=AUTH).json()
    other = {"Authorization": "Bearer bob@example.com"}
    assert client.get(f"{BASE}/jobs/{job['job_id']}", headers=other).status_code == 404
