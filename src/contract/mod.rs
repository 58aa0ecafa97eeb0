//! The service contract's shapes, as its clients send and receive them: the recipe, the job
//! and its validation summary, and featurecraft's extensions (the design request, what a
//! materialization wrote). Serde shapes and the rules they carry (the job lifecycle);
//! nothing here compiles or runs anything.

pub mod answer;
pub mod design;
pub mod job;
pub mod recipe;
pub mod schema;
