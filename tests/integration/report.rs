//! `leasebox report`: the timing file of a real run drawn as a timeline, checked in a real
//! headless Chromium (a screenshot, and the page's DOM after load: one bar per step, in its
//! lane), the SVG form, and bad input named with what to do.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Scratch, code, describe, stderr, stdout};

/// A repository with this project's `recipes/hello.lua` and a recipe with a failing step in a
/// parallel group.
fn repo() -> Scratch {
    let s = Scratch::new();
    let hello = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/hello.lua");
    s.write(
        "recipes/hello.lua",
        &std::fs::read_to_string(hello).unwrap(),
    );
    s.write(
        "recipes/broken.lua",
        r#"return require("leasebox").recipe {
  steps = {
    { "build", "true" },
    { parallel = { { "lint", "true" }, { "unit", "exit 3" } } },
    { "deploy", "true" },
  },
}
"#,
    );
    s.write(".gitignore", "target/\n");
    s.commit();
    s
}

fn timing_of(s: &Scratch, recipe: &str, expect: i32) -> (PathBuf, serde_json::Value) {
    let path = s.path().join(format!("{recipe}.json"));
    let out = s.run(&["run", recipe, "--timing-json", path.to_str().unwrap()]);
    assert_eq!(code(&out), expect, "{}", describe(&out));
    let json = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    (path, json)
}

/// The headless browser, if this machine has one (`.ci/run` installs Debian's `chromium`).
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|p| p.is_file())
}

/// Run chromium headless on `page` with `args`; its stdout. Fails after two minutes.
fn run_chromium(browser: &Path, profile: &Path, args: &[&str], page: &Path) -> String {
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within two minutes");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "chromium {args:?}: {}",
        describe(&out)
    );
    stdout(&out)
}

/// The attributes of every `<g class="bar …">` element in `dom`.
fn bars(dom: &str) -> Vec<Vec<(String, String)>> {
    dom.split("<g ")
        .skip(1)
        .map(|rest| &rest[..rest.find('>').unwrap_or(rest.len())])
        .filter(|tag| tag.contains("class=\"bar "))
        .map(|tag| {
            let mut attrs = Vec::new();
            let mut rest = tag;
            while let Some(eq) = rest.find("=\"") {
                let name = rest[..eq].trim().to_owned();
                let value_start = eq + 2;
                let value_end = value_start + rest[value_start..].find('"').unwrap();
                attrs.push((name, rest[value_start..value_end].to_owned()));
                rest = &rest[value_end + 1..];
            }
            attrs
        })
        .collect()
}

fn attr<'a>(bar: &'a [(String, String)], name: &str) -> &'a str {
    bar.iter()
        .find(|(n, _)| n == name)
        .map_or("", |(_, v)| v.as_str())
}

#[test]
fn the_html_of_a_real_run_shows_every_step_in_its_lane_in_a_real_browser() {
    let s = repo();
    let (hello, hello_json) = timing_of(&s, "hello", 0);
    let (broken, broken_json) = timing_of(&s, "broken", 3);
    let Some(browser) = chromium() else {
        println!(
            "skipped: no `chromium` on PATH (`.ci/run` installs it: apt-get install chromium)"
        );
        return;
    };
    for (timing, json, failed) in [(hello, hello_json, false), (broken, broken_json, true)] {
        let page = timing.with_extension("html");
        let out = s.run(&[
            "report",
            timing.to_str().unwrap(),
            "-o",
            page.to_str().unwrap(),
        ]);
        assert_eq!(code(&out), 0, "{}", describe(&out));
        let profile = tempfile::tempdir().unwrap();
        let shot = timing.with_extension("png");
        run_chromium(
            &browser,
            profile.path(),
            &[
                "--window-size=1060,760",
                &format!("--screenshot={}", shot.display()),
            ],
            &page,
        );
        let png = std::fs::read(&shot).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
        assert!(
            png.len() > 10_000,
            "a {}-byte screenshot is blank",
            png.len()
        );
        // Keep the last screenshots where a developer can look at them.
        let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report");
        std::fs::create_dir_all(&keep).unwrap();
        std::fs::copy(&shot, keep.join(shot.file_name().unwrap())).unwrap();

        let dom = run_chromium(&browser, profile.path(), &["--dump-dom"], &page);
        assert!(dom.contains("<title>leasebox run "), "{dom}");
        let drawn = bars(&dom);
        let phases = json["phases"].as_array().unwrap();
        assert_eq!(drawn.len(), phases.len(), "{dom}");
        for phase in phases {
            let name = phase["name"].as_str().unwrap();
            let matching: Vec<_> = drawn
                .iter()
                .filter(|b| attr(b, "data-phase") == name)
                .collect();
            assert_eq!(matching.len(), 1, "{name}: {matching:?}");
            let bar = matching[0];
            assert_eq!(attr(bar, "data-lane"), phase["lane"].to_string(), "{name}");
            assert_eq!(attr(bar, "data-status"), phase["status"].as_str().unwrap());
            assert_eq!(attr(bar, "data-ms"), phase["ms"].to_string(), "{name}");
        }
        // Parallel steps are distinct lanes of one group.
        let (a, b) = if failed {
            ("step:lint", "step:unit")
        } else {
            ("step:count", "step:greet")
        };
        let lane = |name: &str| {
            let bar = drawn
                .iter()
                .find(|b| attr(b, "data-phase") == name)
                .unwrap();
            (
                attr(bar, "data-group").to_owned(),
                attr(bar, "data-lane").to_owned(),
            )
        };
        let (group_a, lane_a) = lane(a);
        let (group_b, lane_b) = lane(b);
        assert!(
            !group_a.is_empty() && group_a == group_b,
            "{group_a} {group_b}"
        );
        assert_ne!(lane_a, lane_b);
        if failed {
            let unit = drawn
                .iter()
                .find(|b| attr(b, "data-phase") == "step:unit")
                .unwrap();
            assert_eq!(attr(unit, "data-status"), "failed");
            assert!(dom.contains("✗ exit 3"), "{dom}");
            let deploy = drawn
                .iter()
                .find(|b| attr(b, "data-phase") == "step:deploy")
                .unwrap();
            assert_eq!(attr(deploy, "data-status"), "skipped");
            assert!(dom.contains("failed in"), "{dom}");
        } else {
            assert!(dom.contains("leasebox run passed in"), "{dom}");
        }
        // The page needs nothing else: no script, no external resource.
        let html = std::fs::read_to_string(&page).unwrap();
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("src=") && !html.contains("href="), "{html}");
    }
}

#[test]
fn svg_output_and_the_default_name() {
    let s = repo();
    let (timing, json) = timing_of(&s, "broken", 3);
    let svg_path = s.path().join("run.svg");
    let out = s.run(&[
        "report",
        timing.to_str().unwrap(),
        "-o",
        svg_path.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert!(
        svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
        "{svg}"
    );
    assert_eq!(
        svg.matches("<g class=\"bar ").count(),
        json["phases"].as_array().unwrap().len()
    );
    // Without `-o`: the timing file's name with `.html`; `-o -` writes to stdout.
    let out = s.run(&["report", timing.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(timing.with_extension("html").is_file());
    let out = s.run(&[
        "report",
        timing.to_str().unwrap(),
        "-o",
        "-",
        "--format",
        "svg",
    ]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(stdout(&out).starts_with("<svg "));
    let out = s.run(&["report", timing.to_str().unwrap(), "-o", "run.png"]);
    assert_eq!(code(&out), 2, "{}", describe(&out));
    assert!(stderr(&out).contains("`run.png`"), "{}", describe(&out));
    assert!(stderr(&out).contains("--format"), "{}", describe(&out));
    assert!(!s.repo().join("run.png").exists());
}

#[test]
fn bad_timing_files_are_named_with_what_to_do() {
    let s = Scratch::new();
    let dir = s.path();
    let cases = [
        ("missing.json", None, "cannot read the timing file"),
        ("bad.json", Some("{\"phases\": ["), "is not JSON (line 1"),
        (
            "old.json",
            Some(r#"{"phases": [], "total_ms": 1, "exit_code": 0, "error_kind": null}"#),
            "has no `format_version`",
        ),
        (
            "future.json",
            Some(r#"{"format_version": 7, "phases": []}"#),
            "has `format_version` 7, which this leasebox",
        ),
        (
            "wrong.json",
            Some(r#"{"format_version": 1, "phases": 3}"#),
            "not a valid timing file of format 1",
        ),
    ];
    for (name, content, expected) in cases {
        let path = dir.join(name);
        if let Some(text) = content {
            std::fs::write(&path, text).unwrap();
        }
        let output = dir.join(format!("{name}.html"));
        let out = s.run(&[
            "report",
            path.to_str().unwrap(),
            "-o",
            output.to_str().unwrap(),
        ]);
        assert_eq!(code(&out), 2, "{name}: {}", describe(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!("`{}`", path.display())),
            "{name}: {err}"
        );
        assert!(err.contains(expected), "{name}: {err}");
        assert!(
            err.contains("--timing-json") || err.contains("upgrade"),
            "{name} says what to do: {err}"
        );
        assert!(!output.exists(), "{name}: a picture was written");
    }
}
