//! The rules about jobs: running a failed job's recipe again ([`retry`], with the built-in
//! crew or an external one, [`crew`]) and what approval
//! binds to ([`review`]: the recipe, the SQL and the catalog's contents). The lifecycle's
//! moves are the contract's ([`crate::contract::job::JobStatus`]); the HTTP service only
//! stores jobs and routes requests to these rules.

pub mod crew;
pub mod retry;
pub mod review;
