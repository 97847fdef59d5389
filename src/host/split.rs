//! Item splits for sharded runs: which items each of N shards runs, and the durations that
//! balance the next split.
//!
//! With no recorded duration for any item, the items are dealt round-robin in the order of a
//! stable hash of their names (FNV-1a), so the same items always land on the same shard and
//! every shard gets as many as the others, give or take one. With a history, the split is
//! longest-first: items sorted by their recorded duration (an item without one counts as the
//! mean of those with one), each given to the shard with the least time so far. Each shard's
//! items keep the order they were listed in.
//!
//! The history lives in the state dir, `history/shards/<key>.json`, one file per recipe and
//! sharded step (`<key>` is a hash of the recipe's path in the repository and the step's name),
//! mapping each item to its last duration in milliseconds. Items a shard ran one by one
//! (`shard.each`) are recorded as timed; otherwise a shard's wall time is shared out over its
//! items in proportion to their previous estimates (equally without one). A new figure is
//! averaged with the recorded one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The recorded durations of one recipe's sharded step.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemHistory {
    /// Format version, 1.
    pub version: u32,
    /// Item → milliseconds.
    pub items: BTreeMap<String, u64>,
}

/// FNV-1a, 64 bits: a hash that is the same on every machine and in every release.
#[must_use]
pub fn stable_hash(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Split `items` over `count` shards (see the module docs). Returns `count` lists.
#[must_use]
pub fn split(items: &[String], count: usize, history: &ItemHistory) -> Vec<Vec<String>> {
    let count = count.max(1);
    let mut shards: Vec<Vec<usize>> = vec![Vec::new(); count];
    let known: Vec<u64> = items
        .iter()
        .filter_map(|i| history.items.get(i).copied())
        .collect();
    if known.is_empty() {
        let mut order: Vec<usize> = (0..items.len()).collect();
        order.sort_by_key(|&i| (stable_hash(&items[i]), i));
        for (n, i) in order.into_iter().enumerate() {
            shards[n % count].push(i);
        }
    } else {
        let mean = known.iter().sum::<u64>() / known.len() as u64;
        let estimate = |i: usize| history.items.get(&items[i]).copied().unwrap_or(mean);
        let mut order: Vec<usize> = (0..items.len()).collect();
        order.sort_by(|&a, &b| {
            estimate(b)
                .cmp(&estimate(a))
                .then_with(|| items[a].cmp(&items[b]))
        });
        let mut totals = vec![0u64; count];
        for i in order {
            let (k, _) = totals
                .iter()
                .enumerate()
                .min_by_key(|(k, t)| (**t, *k))
                .unwrap_or((0, &0));
            totals[k] += estimate(i).max(1);
            shards[k].push(i);
        }
    }
    shards
        .into_iter()
        .map(|mut s| {
            s.sort_unstable();
            s.into_iter().map(|i| items[i].clone()).collect()
        })
        .collect()
}

/// Fold one run into `history`: each shard's `ms` shared over its `items` in proportion to
/// their previous estimates (equally when none is known), averaged with what was recorded.
pub fn record(history: &mut ItemHistory, shards: &[(Vec<String>, u64)]) {
    history.version = 1;
    for (items, ms) in shards {
        if items.is_empty() {
            continue;
        }
        let weights: Vec<u64> = items
            .iter()
            .map(|i| history.items.get(i).copied().unwrap_or(0))
            .collect();
        let total: u64 = weights.iter().sum();
        for (item, weight) in items.iter().zip(&weights) {
            let share = if total == 0 {
                ms / items.len() as u64
            } else {
                u64::try_from(u128::from(*ms) * u128::from(*weight) / u128::from(total))
                    .unwrap_or(u64::MAX)
            };
            let value = match history.items.get(item) {
                Some(old) => old.midpoint(share),
                None => share,
            };
            history.items.insert(item.clone(), value);
        }
    }
}

/// Fold items timed one by one (`shard.each`) into `history`: each measured figure averaged
/// with the recorded one.
pub fn record_measured(history: &mut ItemHistory, items: &[(String, u64)]) {
    history.version = 1;
    for (item, ms) in items {
        let value = match history.items.get(item) {
            Some(old) => old.midpoint(*ms),
            None => *ms,
        };
        history.items.insert(item.clone(), value);
    }
}

/// The history file of `recipe` (its path in the repository) and sharded step `name` under
/// the state dir's `history/shards/`.
#[must_use]
pub fn history_path(history_dir: &Path, recipe: &str, name: &str) -> PathBuf {
    let digest = Sha256::digest(format!("{recipe}\n{name}").as_bytes());
    history_dir
        .join("shards")
        .join(format!("{}.json", hex::encode(&digest[..8])))
}

/// The recorded history at `path`; a missing or unreadable file is no history.
#[must_use]
pub fn load(path: &Path) -> ItemHistory {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Write `history` to `path` atomically (the directory made private if new).
///
/// # Errors
/// The state dir cannot be written.
pub fn save(path: &Path, history: &ItemHistory) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let bytes = serde_json::to_vec_pretty(history).map_err(std::io::Error::other)?;
    crate::atomic_file::write_atomic(path, &bytes, crate::atomic_file::Replace::Yes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("test_{i:02}")).collect()
    }

    #[test]
    fn without_history_the_split_is_round_robin_by_a_stable_hash() {
        let items = names(10);
        let a = split(&items, 3, &ItemHistory::default());
        let b = split(&items, 3, &ItemHistory::default());
        assert_eq!(a, b, "the same items land on the same shards");
        let sizes: Vec<usize> = a.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![4, 3, 3]);
        let mut all: Vec<String> = a.concat();
        all.sort();
        assert_eq!(all, items, "every item exactly once");
        assert_eq!(stable_hash("a"), 0xaf63_dc4c_8601_ec8c, "FNV-1a of `a`");
    }

    #[test]
    fn a_recorded_history_balances_the_split_by_duration() {
        let items: Vec<String> = ["slow", "mid", "quick1", "quick2", "quick3", "new"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        let mut history = ItemHistory::default();
        for (item, ms) in [
            ("slow", 9000),
            ("mid", 5000),
            ("quick1", 1000),
            ("quick2", 1000),
            ("quick3", 1000),
        ] {
            history.items.insert(item.to_owned(), ms);
        }
        // `new` counts as the mean (3400 ms). Longest first: slow→1, mid→2, new→2 (5000 <
        // 9000), quick1→2 (8400), quick2→1 (9000 vs 9400), quick3→2 (9400 < 10000).
        let shards = split(&items, 2, &history);
        assert_eq!(shards[0], vec!["slow", "quick2"]);
        assert_eq!(shards[1], vec!["mid", "quick1", "quick3", "new"]);
    }

    #[test]
    fn a_run_is_shared_over_its_items_and_averaged_in() {
        let mut history = ItemHistory::default();
        record(
            &mut history,
            &[
                (vec!["a".into(), "b".into()], 1000),
                (vec!["c".into()], 300),
            ],
        );
        assert_eq!(history.items["a"], 500);
        assert_eq!(history.items["c"], 300);
        record(&mut history, &[(vec!["a".into(), "c".into()], 1600)]);
        // a: 1600 × 500/800 = 1000, averaged with 500 → 750; c: 600 with 300 → 450.
        assert_eq!(history.items["a"], 750);
        assert_eq!(history.items["c"], 450);
    }
}
