//! A job whose fires could not be made for a while (the driver answered them `Invalid`: its
//! IronFunctions route was gone) and can be again: its missed slots are planned once more from
//! its cursor, by its catch-up policy, as a resumed job's are.
//!
//! Additive to the term: it only moves the job from the planner to `awaiting`, which the term
//! already knows how to take through `ReadCursors` and the catch-up.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::Term;

impl Term {
    /// Plans `id` again from its cursor (nothing when it is unknown or paused).
    pub(crate) fn recover(&mut self, _now: DateTime<Utc>, id: &str) {
        if !self.view.get(id).is_some_and(|k| k.active()) {
            return;
        }
        // Out of the planner, so the cursors' answer plans it anew (upsert keeps a planned
        // job's place, which would skip the catch-up).
        self.planner.remove(id);
        self.awaiting.insert(Arc::from(id));
    }
}
