//! # redis-queue: fenced, deduplicated, batched enqueue
//!
//! Turns fires into IronFunctions tasks and pushes them onto the platform's Redis queue in one
//! atomic script call per batch, carrying the leader's fencing token.
//!
//! SKELETON: the redis-queue issue fills this crate.
#![deny(missing_docs)]
