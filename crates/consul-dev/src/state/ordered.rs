//! The KV table's ordered collections: entries kept in a set ordered by their own key (so a
//! key is stored once), and ranges that end exactly where a prefix's keys end.
//!
//! Must not know any KV rule (`kv.rs` does); only order, lookup and ranges live here.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use super::KvEntry;

/// An entry as the table holds it: ordered and looked up by its key, so that the key is
/// stored once (in the entry), not a second time as a map key.
#[derive(Debug, Clone)]
pub struct Slot(pub KvEntry);

impl PartialEq for Slot {
    fn eq(&self, other: &Self) -> bool {
        self.0.key == other.0.key
    }
}

impl Eq for Slot {}

impl PartialOrd for Slot {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Slot {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.key.cmp(&other.0.key)
    }
}

impl Borrow<str> for Slot {
    fn borrow(&self) -> &str {
        &self.0.key
    }
}

/// The smallest string above every string that starts with `prefix`, when it is cheap to name
/// (the last byte is ASCII below DEL, as a folder's `/` is): the end of a prefix's range.
pub fn successor(prefix: &str) -> Option<String> {
    let last = *prefix.as_bytes().last()?;
    if last >= 0x7f {
        return None;
    }
    let mut s = prefix[..prefix.len() - 1].to_string();
    s.push(char::from(last + 1));
    Some(s)
}

/// The range of `set` from `prefix` on, and whether it ends exactly where the keys under
/// `prefix` end. With a [`successor`] the range has both ends and no key is read to find where
/// it stops (a listing's index then walks only the tree's nodes); otherwise the caller checks
/// each key.
pub fn range_under<'a, T: RangeUnder<'a>>(set: &'a T, prefix: &str) -> (T::Range, bool) {
    let end = successor(prefix);
    let upper = match &end {
        Some(e) => Bound::Excluded(e.as_str()),
        None => Bound::Unbounded,
    };
    (set.range_str(Bound::Included(prefix), upper), end.is_some())
}

/// The two ordered collections keyed by strings that [`range_under`] serves.
pub trait RangeUnder<'a> {
    type Item;
    type Range: Iterator<Item = Self::Item>;
    fn range_str(&'a self, lo: Bound<&str>, hi: Bound<&str>) -> Self::Range;
}

impl<'a> RangeUnder<'a> for BTreeSet<Slot> {
    type Item = &'a Slot;
    type Range = std::collections::btree_set::Range<'a, Slot>;
    fn range_str(&'a self, lo: Bound<&str>, hi: Bound<&str>) -> Self::Range {
        self.range::<str, _>((lo, hi))
    }
}

impl<'a> RangeUnder<'a> for BTreeMap<String, u64> {
    type Item = (&'a String, &'a u64);
    type Range = std::collections::btree_map::Range<'a, String, u64>;
    fn range_str(&'a self, lo: Bound<&str>, hi: Bound<&str>) -> Self::Range {
        self.range::<str, _>((lo, hi))
    }
}

/// The entries persist as they always have: a map from key to entry.
pub mod entries_map {
    use std::collections::{BTreeMap, BTreeSet};

    use serde::{Deserialize, Deserializer, Serializer};

    use super::Slot;
    use crate::state::KvEntry;

    pub fn serialize<S: Serializer>(set: &BTreeSet<Slot>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(set.iter().map(|slot| (&slot.0.key, &slot.0)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeSet<Slot>, D::Error> {
        let map = BTreeMap::<String, KvEntry>::deserialize(d)?;
        Ok(map.into_values().map(Slot).collect())
    }
}
