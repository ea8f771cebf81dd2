//! The checker: the `checker` crate (tests/checker), shared with the simulator (tests/sim).
//! Re-exported here so the suite's modules keep naming it `crate::checker`.

pub use ::checker::*;
