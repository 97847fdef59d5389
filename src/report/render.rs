//! Drawing a [`Timeline`]: an SVG document written as text, and an HTML page holding it inline
//! with a table of the same rows. No script anywhere: the picture is plain markup, so it shows
//! in any browser, in a mail client, or as an image.

use std::fmt::Write as _;

use super::format::{duration, tick_step, xml};
use super::layout::{Row, Timeline};
use crate::session::{Phase, PhaseStatus};

const WIDTH: u64 = 1000;
const CHART_X: u64 = 220;
const CHART_W: u64 = 640;
const TOP: u64 = 84;
const ROW_H: u64 = 28;
const BAR_H: u64 = 18;

const STYLE: &str = "
  .lbx text { font-family: 'DejaVu Sans', 'Liberation Sans', Arial, sans-serif; fill: #1f2328; }
  .lbx .title { font-size: 18px; font-weight: 700; }
  .lbx .subtitle { font-size: 12px; fill: #57606a; }
  .lbx .tick { font-size: 11px; fill: #57606a; }
  .lbx .grid { stroke: #d8dee4; stroke-width: 1; }
  .lbx .axis { stroke: #8c959f; stroke-width: 1; }
  .lbx .label { font-size: 13px; }
  .lbx .lane { font-size: 11px; fill: #57606a; }
  .lbx .heading { font-size: 12px; font-weight: 700; fill: #57606a; }
  .lbx .band { fill: #f0f3f8; }
  .lbx .ms { font-size: 12px; fill: #424a53; }
  .lbx .mark { font-size: 12px; font-weight: 700; fill: #b3261e; }
  .lbx .phase rect { fill: #5b7db1; }
  .lbx .step.passed rect { fill: #2f9e5b; }
  .lbx .failed rect { fill: #d64541; }
  .lbx .errored rect { fill: #e08a1e; }
  .lbx .skipped rect { fill: #ffffff; stroke: #8c959f; stroke-dasharray: 3 2; }
  .lbx .verdict-passed { fill: #1a7f37; }
  .lbx .verdict-failed { fill: #b3261e; }
";

/// The picture as a standalone SVG document. `source` names the timing file (shown small).
#[must_use]
pub fn svg(timeline: &Timeline, source: &str) -> String {
    let rows = u64::try_from(timeline.rows.len()).unwrap_or(u64::MAX);
    let chart_bottom = TOP + rows * ROW_H;
    let height = chart_bottom + 56;
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"lbx\" width=\"{WIDTH}\" \
         height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" \
         aria-label=\"{}\">\n<style>{STYLE}</style>\n\
         <rect width=\"{WIDTH}\" height=\"{height}\" fill=\"#ffffff\"/>\n",
        xml(&headline(timeline))
    );
    header(&mut out, timeline, source);
    bands(&mut out, timeline);
    axis(&mut out, timeline, chart_bottom);
    for (index, row) in timeline.rows.iter().enumerate() {
        let y = TOP + u64::try_from(index).unwrap_or(0) * ROW_H;
        match row {
            Row::Heading { text } => {
                let _ = writeln!(
                    out,
                    "<text class=\"heading\" x=\"12\" y=\"{}\">{}</text>",
                    y + 18,
                    xml(text)
                );
            }
            Row::Bar {
                phase,
                label,
                kind,
                in_block,
            } => bar(&mut out, timeline, y, phase, label, kind, *in_block),
        }
    }
    legend(&mut out, chart_bottom + 30);
    out.push_str("</svg>\n");
    out
}

/// The picture as one self-contained HTML page: the SVG inline, then a table of the rows.
#[must_use]
pub fn html(timeline: &Timeline, source: &str) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>\n\
         body {{ font-family: 'DejaVu Sans', 'Liberation Sans', Arial, sans-serif; \
         color: #1f2328; margin: 24px; background: #ffffff; }}\n\
         svg.lbx {{ max-width: 100%; height: auto; }}\n\
         table {{ border-collapse: collapse; font-size: 13px; margin-top: 12px; }}\n\
         th, td {{ padding: 3px 12px 3px 0; text-align: left; border-bottom: 1px solid #d8dee4; }}\n\
         td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}\n\
         tr.failed td, tr.errored td {{ color: #b3261e; }}\n\
         tr.skipped td {{ color: #57606a; }}\n\
         p.foot {{ font-size: 12px; color: #57606a; }}\n\
         </style>\n</head>\n<body>\n<main>\n",
        xml(&format!("{} — {source}", headline(timeline)))
    );
    out.push_str(&svg(timeline, source));
    out.push_str(
        "<table>\n<thead><tr><th>phase or step</th><th>lane</th><th>start</th>\
         <th>duration</th><th>status</th></tr></thead>\n<tbody>\n",
    );
    for row in &timeline.rows {
        let Row::Bar {
            phase, label, kind, ..
        } = row
        else {
            continue;
        };
        let lane = match (phase.shard, &phase.group) {
            (Some(shard), _) => format!("shard {shard}"),
            (None, Some(group)) => format!("{group}, lane {}", phase.lane),
            (None, None) => String::new(),
        };
        let status = status_text(phase);
        let _ = writeln!(
            out,
            "<tr class=\"{}\" data-name=\"{}\" data-kind=\"{kind}\"><td>{}</td><td>{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            status_class(phase.status),
            xml(label),
            xml(label),
            xml(&lane),
            duration(phase.start_ms),
            duration(phase.ms),
            xml(&status)
        );
    }
    let _ = write!(
        out,
        "</tbody>\n</table>\n<p class=\"foot\">Drawn by <code>leasebox report</code> from \
         <code>{}</code>.</p>\n</main>\n</body>\n</html>\n",
        xml(source)
    );
    out
}

/// `passed in 482 ms`, `failed in 1.25 s: exit 2 (command_failed)`.
fn headline(t: &Timeline) -> String {
    if t.exit_code == 0 && t.error_kind.is_none() {
        format!("leasebox run passed in {}", duration(t.total_ms))
    } else {
        let kind = t
            .error_kind
            .as_deref()
            .map(|k| format!(" ({k})"))
            .unwrap_or_default();
        format!(
            "leasebox run failed in {}: exit {}{kind}",
            duration(t.total_ms),
            t.exit_code
        )
    }
}

fn header(out: &mut String, t: &Timeline, source: &str) {
    let verdict = if t.exit_code == 0 && t.error_kind.is_none() {
        "verdict-passed"
    } else {
        "verdict-failed"
    };
    let steps = t.bars().filter(|p| p.name.starts_with("step:")).count();
    let failed = t
        .bars()
        .filter(|p| matches!(p.status, PhaseStatus::Failed | PhaseStatus::Errored))
        .count();
    let _ = writeln!(
        out,
        "<text class=\"title {verdict}\" x=\"12\" y=\"28\">{}</text>\n\
         <text class=\"subtitle\" x=\"12\" y=\"48\">{steps} {}, {failed} failed · from {}</text>",
        xml(&headline(t)),
        if steps == 1 { "step" } else { "steps" },
        xml(source)
    );
}

fn x_of(t: &Timeline, ms: u64) -> u64 {
    CHART_X + ms.min(t.span_ms).saturating_mul(CHART_W) / t.span_ms
}

fn axis(out: &mut String, t: &Timeline, bottom: u64) {
    let step = tick_step(t.span_ms, 8);
    let mut ms = 0;
    while ms <= t.span_ms {
        let x = x_of(t, ms);
        let _ = writeln!(
            out,
            "<line class=\"grid\" x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{bottom}\"/>\n\
             <text class=\"tick\" x=\"{x}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            TOP - 8,
            TOP - 14,
            duration(ms)
        );
        ms += step;
    }
    let _ = writeln!(
        out,
        "<line class=\"axis\" x1=\"{CHART_X}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>",
        TOP - 8,
        CHART_X + CHART_W,
        TOP - 8
    );
}

/// A light band behind each heading and the lanes under it.
fn bands(out: &mut String, t: &Timeline) {
    let mut start = None;
    let rows = t.rows.len();
    for i in 0..=rows {
        let in_block = matches!(t.rows.get(i), Some(Row::Bar { in_block: true, .. }));
        let heading = matches!(t.rows.get(i), Some(Row::Heading { .. }));
        if heading {
            if let Some(s) = start.take() {
                band(out, s, i);
            }
            start = Some(i);
        } else if !in_block && let Some(s) = start.take() {
            band(out, s, i);
        }
    }
}

fn band(out: &mut String, from: usize, to: usize) {
    let y = TOP + u64::try_from(from).unwrap_or(0) * ROW_H;
    let h = u64::try_from(to - from).unwrap_or(0) * ROW_H;
    let _ = writeln!(
        out,
        "<rect class=\"band\" x=\"4\" y=\"{y}\" width=\"{}\" height=\"{h}\" rx=\"4\"/>",
        WIDTH - 8
    );
}

fn bar(
    out: &mut String,
    t: &Timeline,
    y: u64,
    phase: &Phase,
    label: &str,
    kind: &str,
    in_block: bool,
) {
    let x = x_of(t, phase.start_ms);
    let end = x_of(t, phase.start_ms.saturating_add(phase.ms));
    let min = if phase.status == PhaseStatus::Skipped {
        6
    } else {
        2
    };
    let w = end.saturating_sub(x).max(min);
    let status = status_class(phase.status);
    let lane_text = match phase.shard {
        Some(shard) => format!("shard {shard}"),
        None => format!("lane {}", phase.lane),
    };
    let mut title = format!(
        "{kind} {label}: {}, {} from {}",
        status_text(phase),
        duration(phase.ms),
        duration(phase.start_ms)
    );
    if in_block {
        let _ = write!(title, ", {lane_text}");
    }
    if let Some(group) = &phase.group {
        let _ = write!(title, " of {group}");
    }
    let mut attrs = format!(
        "class=\"bar {kind} {status}\" data-name=\"{}\" data-phase=\"{}\" data-kind=\"{kind}\" \
         data-lane=\"{}\" data-status=\"{status}\" data-start-ms=\"{}\" data-ms=\"{}\"",
        xml(label),
        xml(&phase.name),
        phase.lane,
        phase.start_ms,
        phase.ms
    );
    if let Some(shard) = phase.shard {
        let _ = write!(attrs, " data-shard=\"{shard}\"");
    }
    if let Some(group) = &phase.group {
        let _ = write!(attrs, " data-group=\"{}\"", xml(group));
    }
    let label_x = if in_block { 28 } else { 12 };
    let shown = truncate(label, if in_block { 19 } else { 21 });
    let _ = writeln!(
        out,
        "<g {attrs}><title>{}</title>\n\
         <text class=\"label\" x=\"{label_x}\" y=\"{}\">{}</text>",
        xml(&title),
        y + 18,
        xml(&shown)
    );
    if in_block {
        let _ = writeln!(
            out,
            "<text class=\"lane\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{lane_text}</text>",
            CHART_X - 10,
            y + 18
        );
    }
    let _ = writeln!(
        out,
        "<rect x=\"{x}\" y=\"{}\" width=\"{w}\" height=\"{BAR_H}\" rx=\"3\"/>\n\
         <text class=\"ms\" x=\"{}\" y=\"{}\">{}</text>",
        y + (ROW_H - BAR_H) / 2,
        x + w + 6,
        y + 18,
        duration(phase.ms)
    );
    let mark = match phase.status {
        PhaseStatus::Failed => phase
            .code
            .map_or_else(|| "✗ failed".to_owned(), |c| format!("✗ exit {c}")),
        PhaseStatus::Errored => format!("✗ {}", phase.error_kind.as_deref().unwrap_or("error")),
        PhaseStatus::Skipped => "skipped".to_owned(),
        PhaseStatus::Passed => String::new(),
    };
    if !mark.is_empty() {
        let class = if phase.status == PhaseStatus::Skipped {
            "ms"
        } else {
            "mark"
        };
        let chars = u64::try_from(duration(phase.ms).chars().count()).unwrap_or(0);
        let _ = writeln!(
            out,
            "<text class=\"{class}\" x=\"{}\" y=\"{}\">{}</text>",
            x + w + 14 + chars * 7,
            y + 18,
            xml(&mark)
        );
    }
    out.push_str("</g>\n");
}

fn legend(out: &mut String, y: u64) {
    let items = [
        ("phase", "bar phase passed", "lease, sync, fetch, cleanup"),
        ("passed", "bar step passed", "step passed"),
        ("failed", "bar step failed", "failed"),
        ("errored", "bar step errored", "error"),
        ("skipped", "bar step skipped", "skipped"),
    ];
    let mut x = 12;
    for (_, class, text) in items {
        let _ = writeln!(
            out,
            "<g class=\"{}\"><rect x=\"{x}\" y=\"{}\" width=\"14\" height=\"12\" rx=\"2\"/></g>\
             <text class=\"tick\" x=\"{}\" y=\"{y}\">{text}</text>",
            class.trim_start_matches("bar "),
            y - 10,
            x + 20
        );
        x += 44 + u64::try_from(text.chars().count()).unwrap_or(0) * 6;
    }
}

fn status_class(status: PhaseStatus) -> &'static str {
    match status {
        PhaseStatus::Passed => "passed",
        PhaseStatus::Failed => "failed",
        PhaseStatus::Errored => "errored",
        PhaseStatus::Skipped => "skipped",
    }
}

fn status_text(phase: &Phase) -> String {
    match phase.status {
        PhaseStatus::Passed => "passed".to_owned(),
        PhaseStatus::Failed => match phase.code {
            Some(code) => format!("failed with exit code {code}"),
            None => "failed".to_owned(),
        },
        PhaseStatus::Errored => match &phase.error_kind {
            Some(kind) => format!("error ({kind})"),
            None => "error".to_owned(),
        },
        PhaseStatus::Skipped => "skipped".to_owned(),
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{TIMING_FORMAT_VERSION, TimingReport};

    fn sample() -> Timeline {
        let mut bad = Phase::new("step:b<&>", 30, 20);
        bad.status = PhaseStatus::Failed;
        bad.code = Some(2);
        bad.lane = 1;
        bad.group = Some("parallel 2".into());
        let mut good = Phase::new("step:a", 30, 10);
        good.group = Some("parallel 2".into());
        let mut skipped = Phase::new("step:after", 50, 0);
        skipped.status = PhaseStatus::Skipped;
        Timeline::new(&TimingReport {
            format_version: TIMING_FORMAT_VERSION,
            phases: vec![
                Phase::new("warmup", 0, 10),
                Phase::new("sync", 10, 20),
                good,
                bad,
                skipped,
                Phase::new("cleanup", 50, 5),
            ],
            total_ms: 60,
            exit_code: 2,
            error_kind: Some("command_failed".into()),
        })
    }

    #[test]
    fn every_phase_has_a_bar_with_its_lane_and_status() {
        let svg = svg(&sample(), "t.json");
        assert_eq!(svg.matches("<g class=\"bar ").count(), 6, "{svg}");
        assert!(svg.contains("data-name=\"b&lt;&amp;&gt;\""), "{svg}");
        assert!(
            svg.contains("data-lane=\"1\" data-status=\"failed\""),
            "{svg}"
        );
        assert!(svg.contains("✗ exit 2"), "{svg}");
        assert!(svg.contains("parallel 2 · 2 lanes"), "{svg}");
        assert!(svg.contains("leasebox run failed in 60 ms: exit 2 (command_failed)"));
        assert!(!svg.contains("<script"), "{svg}");
    }

    #[test]
    fn the_page_holds_the_picture_and_a_table_and_no_script() {
        let page = html(&sample(), "t.json");
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert_eq!(page.matches("<tr class=").count(), 6);
        assert!(!page.contains("<script"));
        assert!(!page.contains("http-equiv"));
        assert!(!page.contains(" src="));
        assert!(!page.contains(" href="));
    }
}
