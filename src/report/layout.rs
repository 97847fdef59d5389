//! From a timing file to rows of a picture: one row per phase or step in the order they
//! started; the members of a parallel group, and the phases of a sharded run, gathered under a
//! heading row with one lane each.

use std::collections::BTreeSet;

use crate::session::{Phase, TimingReport};

/// One row of the picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Row {
    /// A heading over the lanes of a parallel group or a sharded run.
    Heading {
        /// `parallel checks · 2 lanes`, `shards · 4 lanes`.
        text: String,
    },
    /// A bar.
    Bar {
        /// The phase or step.
        phase: Phase,
        /// What the label column shows: the step's name without `step:`.
        label: String,
        /// `phase` (warmup, sync, fetch, cleanup, …) or `step`.
        kind: &'static str,
        /// Under a heading (drawn indented, with its lane).
        in_block: bool,
    },
}

/// The picture's content: the rows and the run's verdict.
#[derive(Debug, Clone)]
pub struct Timeline {
    /// The axis's extent: the run's total, or the last phase's end if later.
    pub span_ms: u64,
    /// The run's total wall time.
    pub total_ms: u64,
    /// The run's exit code.
    pub exit_code: i32,
    /// The run's error kind, when it failed.
    pub error_kind: Option<String>,
    /// The rows, top to bottom.
    pub rows: Vec<Row>,
}

impl Timeline {
    /// Lay out `report`.
    #[must_use]
    pub fn new(report: &TimingReport) -> Timeline {
        let mut order: Vec<usize> = (0..report.phases.len()).collect();
        order.sort_by_key(|&i| {
            let p = &report.phases[i];
            (p.start_ms, p.lane, i)
        });
        let mut rows = Vec::new();
        let mut done = vec![false; report.phases.len()];
        let mut groups_seen = BTreeSet::new();
        let mut shards_seen = false;
        for &i in &order {
            if done[i] {
                continue;
            }
            let phase = &report.phases[i];
            let members: Vec<usize> = if phase.shard.is_some() {
                if shards_seen {
                    continue;
                }
                shards_seen = true;
                let mut m: Vec<usize> = order
                    .iter()
                    .copied()
                    .filter(|&j| report.phases[j].shard.is_some())
                    .collect();
                m.sort_by_key(|&j| {
                    let p = &report.phases[j];
                    (p.shard, p.start_ms, j)
                });
                let count = m
                    .iter()
                    .map(|&j| report.phases[j].shard)
                    .collect::<BTreeSet<_>>()
                    .len();
                rows.push(Row::Heading {
                    text: format!("shards · {count} {}", lanes(count)),
                });
                m
            } else if let Some(group) = &phase.group {
                if !groups_seen.insert(group.clone()) {
                    continue;
                }
                let mut m: Vec<usize> = order
                    .iter()
                    .copied()
                    .filter(|&j| {
                        report.phases[j].shard.is_none()
                            && report.phases[j].group.as_ref() == Some(group)
                    })
                    .collect();
                m.sort_by_key(|&j| (report.phases[j].lane, report.phases[j].start_ms, j));
                rows.push(Row::Heading {
                    text: format!("{group} · {} {}", m.len(), lanes(m.len())),
                });
                m
            } else {
                done[i] = true;
                rows.push(bar(phase, false));
                continue;
            };
            for j in members {
                done[j] = true;
                rows.push(bar(&report.phases[j], true));
            }
        }
        let last_end = report
            .phases
            .iter()
            .map(|p| p.start_ms.saturating_add(p.ms))
            .max()
            .unwrap_or(0);
        Timeline {
            span_ms: report.total_ms.max(last_end).max(1),
            total_ms: report.total_ms,
            exit_code: report.exit_code,
            error_kind: report.error_kind.clone(),
            rows,
        }
    }

    /// The bars, top to bottom.
    pub fn bars(&self) -> impl Iterator<Item = &Phase> {
        self.rows.iter().filter_map(|r| match r {
            Row::Bar { phase, .. } => Some(phase),
            Row::Heading { .. } => None,
        })
    }
}

fn lanes(n: usize) -> &'static str {
    if n == 1 { "lane" } else { "lanes" }
}

fn bar(phase: &Phase, in_block: bool) -> Row {
    let (label, kind) = match phase.name.strip_prefix("step:") {
        Some(step) => (step.to_owned(), "step"),
        None => (phase.name.clone(), "phase"),
    };
    Row::Bar {
        phase: phase.clone(),
        label,
        kind,
        in_block,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{PhaseStatus, TIMING_FORMAT_VERSION};

    fn phase(name: &str, start: u64, ms: u64, lane: u32) -> Phase {
        let mut p = Phase::new(name, start, ms);
        p.lane = lane;
        p
    }

    fn report(phases: Vec<Phase>) -> TimingReport {
        TimingReport {
            format_version: TIMING_FORMAT_VERSION,
            phases,
            total_ms: 100,
            exit_code: 0,
            error_kind: None,
        }
    }

    fn names(t: &Timeline) -> Vec<String> {
        t.rows
            .iter()
            .map(|r| match r {
                Row::Heading { text } => format!("# {text}"),
                Row::Bar { label, .. } => label.clone(),
            })
            .collect()
    }

    #[test]
    fn rows_follow_start_order_with_groups_under_a_heading() {
        let mut a = phase("step:a", 30, 10, 0);
        a.group = Some("parallel 2".into());
        let mut b = phase("step:b", 29, 20, 1);
        b.group = Some("parallel 2".into());
        b.status = PhaseStatus::Failed;
        // Finished order, as the writer records it: steps after cleanup.
        let t = Timeline::new(&report(vec![
            phase("warmup", 0, 10, 0),
            phase("sync", 10, 15, 0),
            phase("cleanup", 60, 5, 0),
            phase("step:build", 25, 3, 0),
            a,
            b,
        ]));
        assert_eq!(
            names(&t),
            [
                "warmup",
                "sync",
                "build",
                "# parallel 2 · 2 lanes",
                "a",
                "b",
                "cleanup"
            ]
        );
        assert_eq!(t.span_ms, 100);
    }

    #[test]
    fn shards_are_one_block_ordered_by_shard() {
        let mut phases = Vec::new();
        for shard in [1u32, 0] {
            for (name, start) in [("sync", 10), ("step:test", 20)] {
                let mut p = phase(name, start + u64::from(shard), 5, shard);
                p.shard = Some(shard);
                phases.push(p);
            }
        }
        phases.push(phase("warmup", 0, 10, 0));
        let t = Timeline::new(&report(phases));
        assert_eq!(
            names(&t),
            [
                "warmup",
                "# shards · 2 lanes",
                "sync",
                "test",
                "sync",
                "test"
            ]
        );
        let shards: Vec<Option<u32>> = t.bars().map(|p| p.shard).collect();
        assert_eq!(shards, [None, Some(0), Some(0), Some(1), Some(1)]);
    }

    #[test]
    fn the_axis_covers_phases_past_the_total() {
        let mut r = report(vec![phase("cleanup", 90, 30, 0)]);
        r.total_ms = 0;
        assert_eq!(Timeline::new(&r).span_ms, 120);
    }
}
