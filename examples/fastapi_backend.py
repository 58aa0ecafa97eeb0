"""The contract's job routes in FastAPI over the featurecraft package and a dict store.

Run it:  FEATURECRAFT_CATALOG=fixtures/retail uvicorn examples.fastapi_backend:app
The handlers are plain `def`s: FastAPI runs them in its thread pool, and featurecraft
releases the GIL while a query runs, so the server keeps answering during a validation.
A real backend verifies the OAuth token; here the bearer token is taken as the caller.
"""

import datetime
import os
import threading
import uuid
from typing import Any, Dict, Optional

from fastapi import APIRouter, FastAPI, Header, HTTPException
from pydantic import BaseModel

import featurecraft as fc


class CreateJob(BaseModel):
    target_table_name: str
    domain: str
    owner: str
    recipe: Optional[Dict[str, Any]] = None


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def create_app(catalog_dir: str, warehouse_dir: str) -> FastAPI:
    jobs: Dict[str, Dict[str, Any]] = {}
    lock = threading.Lock()
    router = APIRouter(prefix="/api/automl/feature-engineering")

    def caller(authorization: Optional[str]) -> str:
        if not authorization or not authorization.startswith("Bearer ") or len(authorization) <= 7:
            raise HTTPException(401, "a bearer token is required")
        return authorization[7:]

    def find(job_id: uuid.UUID, authorization: Optional[str]) -> Dict[str, Any]:
        who = caller(authorization)
        with lock:
            job = jobs.get(str(job_id))
        if job is None or job["owner"] != who:
            raise HTTPException(404, f"no job {job_id}")
        return job

    def need(job: Dict[str, Any], status: str, action: str) -> None:
        if job["status"] != status:
            raise HTTPException(409, f"only a {status} job can be {action}; this one is {job['status']}")

    def run_crew(job: Dict[str, Any]) -> Dict[str, Any]:
        """Compile and validate the job's recipe: pending_approval, or failed with the reason."""
        try:
            checked = fc.validate(job["recipe"], catalog_dir, sample_size=1000)
            job.update(status="pending_approval", validation=checked.summary, error=None,
                       sql=fc.compile(job["recipe"], catalog_dir, dialect="datafusion").sql)
        except (fc.RecipeError, fc.CatalogError, fc.RuntimeError) as failure:
            job.update(status="failed", validation=None, error=str(failure).strip())
        job["updated_at"] = now()
        return job

    @router.post("/jobs", status_code=201)
    def create(body: CreateJob, authorization: Optional[str] = Header(None)):
        caller(authorization)
        stamp = now()
        job = dict(job_id=str(uuid.uuid4()), status="running", created_at=stamp, updated_at=stamp,
                   sql=None, validation=None, error=None, **body.model_dump())
        if job["recipe"] is None:
            job.update(status="failed", error="no recipe: the crew has not proposed one")
        else:
            run_crew(job)
        with lock:
            jobs[job["job_id"]] = job
        return job

    @router.get("/jobs/{job_id}")
    def get(job_id: uuid.UUID, authorization: Optional[str] = Header(None)):
        return find(job_id, authorization)

    @router.get("/jobs")
    def list_jobs(authorization: Optional[str] = Header(None)):
        who = caller(authorization)
        with lock:
            return [job for job in jobs.values() if job["owner"] == who]

    @router.post("/jobs/{job_id}/retry")
    def retry(job_id: uuid.UUID, authorization: Optional[str] = Header(None)):
        job = find(job_id, authorization)
        need(job, "failed", "retried")
        if job["recipe"] is None:
            raise HTTPException(409, "the job has no recipe to retry")
        job.update(fc.retry(job, catalog_dir, sample_size=1000))
        return job

    @router.post("/jobs/{job_id}/approve")
    def approve(job_id: uuid.UUID, authorization: Optional[str] = Header(None)):
        job = find(job_id, authorization)
        need(job, "pending_approval", "approved")
        job.update(status="approved", updated_at=now())
        return job

    @router.post("/jobs/{job_id}/materialize")
    def materialize(job_id: uuid.UUID, authorization: Optional[str] = Header(None)):
        job = find(job_id, authorization)
        need(job, "approved", "materialized")
        job.update(status="materializing", updated_at=now())
        try:
            fc.materialize(job["recipe"], catalog_dir, warehouse_dir, domain=job["domain"])
            job.update(status="complete", updated_at=now())
        except (fc.RecipeError, fc.CatalogError, fc.RuntimeError) as failure:
            job.update(status="failed", error=str(failure).strip(), updated_at=now())
        return job

    app = FastAPI(title="feature engineering jobs (featurecraft example)")
    app.include_router(router)
    return app


app = create_app(os.environ.get("FEATURECRAFT_CATALOG", "fixtures/retail"),
                 os.environ.get("FEATURECRAFT_WAREHOUSE", "warehouse"))
