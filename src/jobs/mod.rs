//! The rules about jobs: running a failed job's recipe again ([`retry`]) and what approval
//! binds to ([`review`]: the recipe, the SQL and the catalog's contents). The lifecycle's
//! moves are the contract's ([`crate::contract::job::JobStatus`]); the HTTP service only
//! stores jobs and routes requests to these rules.

pub mod retry;
pub mod review;
