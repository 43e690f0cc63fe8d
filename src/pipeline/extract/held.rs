//! What an authority holds, read once before its lines: a map from key hash to
//! the held record, and the keys a FULL leaves out.
//!
//! Owns nothing between passes. Must never hold more than [`HELD_IN_MEMORY`]
//! records in memory: above that, every line reads its own record from the index.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use chrono::NaiveDate;

use crate::index::{self, IndexError, Store};
use crate::validate::{key_hash, key_hash_bytes, PlanType};

/// Records held by the authority, by key hash, read in one range scan before the
/// lines: an upsert then needs no read, and an unchanged record no write. Read only
/// when the authority holds at most [`HELD_IN_MEMORY`] records (≤ ~11 MiB); above
/// that, every line reads its record from the index instead.
pub(super) type HeldMap = HashMap<u128, index::records::Held, BuildHasherDefault<KeyHasher>>;

/// The most held records read into memory for one file (see [`HeldMap`]).
pub(crate) const HELD_IN_MEMORY: usize = 200_000;

/// The keys are already xxh3-128 hashes: use their low 64 bits as they are.
#[derive(Default)]
pub(super) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}

/// Reads what the authority holds (see [`HeldMap`]); `None` when it holds too much
/// (the scan stops at the first record over the limit).
pub(super) fn read_held(
    store: Store<'_>,
    authority: &str,
    on: NaiveDate,
) -> Result<Option<(HeldMap, u64)>, IndexError> {
    let limit = crate::fault::held_in_memory(HELD_IN_MEMORY) as u64;
    let mut map = HeldMap::default();
    let mut open = 0u64;
    let all =
        index::records::for_each_held(store.db(), authority, on, limit, |local_id, plan, held| {
            let plan = std::str::from_utf8(plan).ok().and_then(PlanType::parse);
            if let Some(plan) = plan {
                map.insert(key_hash_bytes(local_id, plan), held);
                open += u64::from(held.open);
            }
        })?;
    Ok(all.then_some((map, open)))
}

/// The records open before a FULL that it leaves out (§2.3: they end), in row
/// order, whatever the map's order: change_seq, and so the sites' DELTA rows, come
/// out the same on every run. `hashes`: the file's sorted key hashes.
pub(super) fn absent_from_full(
    store: Store<'_>,
    authority: &str,
    reference_date: NaiveDate,
    held: Option<&HeldMap>,
    hashes: &[u128],
) -> Result<Vec<i64>, IndexError> {
    let mut to_end = Vec::new();
    match held {
        // Rows inserted or updated by this pass are in the file: only what was held
        // and open before it can be absent.
        Some(map) => {
            for (k, h) in map {
                if h.open && hashes.binary_search(k).is_err() {
                    to_end.push(h.id);
                }
            }
        }
        None => {
            index::records::for_each_open(
                store.db(),
                authority,
                reference_date,
                |id, local_id, plan| {
                    if let Some(plan) = PlanType::parse(plan) {
                        if hashes.binary_search(&key_hash(local_id, plan)).is_err() {
                            to_end.push(id);
                        }
                    }
                },
            )?;
        }
    }
    to_end.sort_unstable();
    Ok(to_end)
}
