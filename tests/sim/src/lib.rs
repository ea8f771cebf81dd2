//! # sim: a deterministic simulation of a whole cronnode cluster (being built; see issue 13).
#![deny(missing_docs)]

pub mod redis_model;
pub mod rng;
