//! Replays the recorded Nomad 1.1.2 transcripts (`../shared/fixtures/nomad-1.1.2/`) against the
//! 1.1 profile and compares what matters: status codes, header presence, JSON key sets and value
//! types (plus a few stable values), error texts, exec frame sequences and close codes. IDs,
//! indexes and times are ignored: recorded IDs and indexes are mapped to the live ones as the
//! replay learns them from replies, and recorded `<token>` secrets are replaced by the live
//! token each step used (the table in [`token_for`]).
//!
//! Scenarios run in the order they were recorded on their agent (the plain agent, then the
//! ACL agent), grouped into tests that each start a fresh instance.
//!
//! All 49 recordings are replayed, `exec-tty` included (TTY sessions run on a real PTY).
//! Waits are shortened: pauses before writes are capped at 600 ms, client-side pauses inside an
//! exec session at 600 ms, and polls retry until the live agent reaches the recorded shape.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::SinkExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use super::client::*;
use crate::support::nomad::{NomadServer, Profile};

fn fixtures_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/nomad-1.1.2");
    assert!(
        dir.join("README.md").is_file(),
        "the Nomad 1.1.2 recordings are missing: expected them in {} (check out `shared/` beside the repository)",
        dir.display()
    );
    dir
}

fn load(name: &str) -> Value {
    let path = fixtures_dir().join(format!("{name}.json"));
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.chars().enumerate().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// Maps whose keys are data (group, task, driver, datacenter names…), not fields.
const DATA_MAPS: &[&str] = &[
    "Meta",
    "Drivers",
    "TaskStates",
    "Summary",
    "QueuedAllocations",
    "FailedTGAllocs",
    "NodesAvailable",
    "ConstraintFiltered",
    "Details",
    "Scores",
    "Attributes",
    "TaskResources",
    "Tasks",
    "TaskLifecycles",
    "Config",
    "Tags",
    "ClassEligibility",
    "Options",
    "stats",
    "nomad",
    "raft",
    "serf",
    "runtime",
    "vault",
    "client",
];

/// String values worth comparing exactly (after ID mapping).
const VALUE_KEYS: &[&str] = &[
    "TriggeredBy",
    "JobID",
    "Namespace",
    "TaskGroup",
    "JobType",
    "Driver",
    "Region",
    "Type",
];

/// Paths below which only the presence and type of the value is checked: agent details that a
/// test server cannot and need not reproduce field for field.
const SHALLOW: &[&str] = &[
    "$.config.Autopilot",
    "$.config.Consul",
    "$.config.Client",
    "$.config.Server",
    "$.config.Limits",
    "$.config.Sentinel",
    "$.config.TLSConfig",
    "$.config.Telemetry",
    "$.config.Vault",
    "$.config.Plugins",
    "$.config.HTTPAPIResponseHeaders",
    "$.config.Files",
    "$.member",
    "$.config.Audit",
];

/// Allocation states a settling read must reach (see [`settles`]).
const STATE_KEYS: &[&str] = &["ClientStatus", "DesiredStatus"];

#[derive(Default)]
struct Replayer {
    /// Compare [`STATE_KEYS`] values too (set for settling reads).
    strict_state: bool,
    ids: HashMap<String, String>,
    indexes: HashMap<String, String>,
    tokens: HashMap<String, String>,
}

fn sort_by_create_index(list: &[Value]) -> Vec<Value> {
    let mut v = list.to_vec();
    if v.iter().all(|e| e["CreateIndex"].is_u64()) {
        v.sort_by_key(|e| e["CreateIndex"].as_u64());
    }
    v
}

impl Replayer {
    fn map_str(&self, s: &str) -> String {
        let mut out = s.to_string();
        for (rec, live) in &self.ids {
            if out.contains(rec.as_str()) {
                out = out.replace(rec.as_str(), live);
            }
        }
        out
    }

    fn learn(&mut self, rec: &Value, live: &Value) {
        match (rec, live) {
            (Value::String(r), Value::String(l)) if is_uuid(r) && !l.is_empty() => {
                self.ids.entry(r.clone()).or_insert_with(|| l.clone());
            }
            (Value::Object(r), Value::Object(l)) => {
                for (k, rv) in r {
                    if let Some(lv) = l.get(k) {
                        self.learn(rv, lv);
                    }
                }
            }
            (Value::Array(r), Value::Array(l)) => {
                let (r, l) = (sort_by_create_index(r), sort_by_create_index(l));
                for (rv, lv) in r.iter().zip(l.iter()) {
                    self.learn(rv, lv);
                }
            }
            _ => {}
        }
    }

    /// Compares a recorded body with a live one; pushes what differs.
    fn compare(&self, path: &str, key: &str, rec: &Value, live: &Value, out: &mut Vec<String>) {
        if let Value::String(s) = rec
            && s.starts_with('<')
            && s.ends_with('>')
        {
            return; // a body cut from the recording
        }
        match (rec, live) {
            (Value::Null, _) | (_, Value::Null) => {}
            (Value::Object(r), Value::Object(l)) => {
                if SHALLOW.contains(&path) {
                    return;
                }
                let data = DATA_MAPS.contains(&key);
                if !data {
                    for k in r.keys() {
                        if !l.contains_key(k) {
                            out.push(format!("{path}: missing key {k}"));
                        }
                    }
                    for k in l.keys() {
                        if !r.contains_key(k) {
                            out.push(format!("{path}: extra key {k}"));
                        }
                    }
                }
                for (k, rv) in r {
                    if let Some(lv) = l.get(k) {
                        self.compare(&format!("{path}.{k}"), k, rv, lv, out);
                    }
                }
            }
            (Value::Array(r), Value::Array(l)) => {
                if r.is_empty() != l.is_empty() && key != "Events" {
                    out.push(format!(
                        "{path}: {} recorded items, {} live",
                        r.len(),
                        l.len()
                    ));
                    return;
                }
                if key == "Events" {
                    for le in l {
                        if let Some(re) = r.iter().find(|re| re["Type"] == le["Type"]) {
                            self.compare(&format!("{path}[{}]", le["Type"]), "", re, le, out);
                        }
                    }
                    return;
                }
                // Pair by mapped ID where possible, else by creation order.
                let by_id = r.iter().all(|e| e["ID"].is_string());
                let mut paired = 0;
                if by_id {
                    for re in r {
                        let want = self.map_str(re["ID"].as_str().unwrap());
                        if let Some(le) = l.iter().find(|le| le["ID"] == want.as_str()) {
                            self.compare(&format!("{path}[{want}]"), "", re, le, out);
                            paired += 1;
                        }
                    }
                }
                if paired == 0 {
                    let (r, l) = (sort_by_create_index(r), sort_by_create_index(l));
                    for (i, (re, le)) in r.iter().zip(l.iter()).enumerate() {
                        self.compare(&format!("{path}[{i}]"), key, re, le, out);
                    }
                }
            }
            (Value::String(r), Value::String(l)) => {
                let checked =
                    VALUE_KEYS.contains(&key) || (self.strict_state && STATE_KEYS.contains(&key));
                if checked && self.map_str(r) != *l {
                    out.push(format!("{path}: {r:?} recorded, {l:?} live"));
                }
            }
            (Value::Number(_), Value::Number(_)) | (Value::Bool(_), Value::Bool(_)) => {}
            (r, l) => out.push(format!(
                "{path}: {} recorded, {} live",
                type_name(r),
                type_name(l)
            )),
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Which live secret each recorded `<token>` stands for, in the order they appear in a scenario.
fn token_for(scenario: &str, nth: usize) -> &'static str {
    match (scenario, nth) {
        ("acl-token-self-client", _) => "tok-read-no-exec",
        ("acl-token-self-unknown", _) => "unknown",
        ("acl-jobs-list-forbidden", _) => "tok-no-jobs",
        ("acl-jobs-list-other-auth", 0) => "unknown",
        ("acl-jobs-list-other-auth", 1) => "Bootstrap Token",
        ("acl-jobs-list-other-auth", _) => "tok-read-no-exec",
        ("exec-acl-denied", _) => "tok-read-no-exec",
        ("exec-acl-alloc-exec-only", _) => "tok-exec-only",
        ("exec-acl-allowed" | "exec-acl-handshake", _) => "tok-exec-node",
        _ => "Bootstrap Token",
    }
}

const UNKNOWN_TOKEN: &str = "9a3c6f0e-1b2d-4c5e-8f70-0123456789ab";

struct Ctx<'a> {
    nomad: &'a NomadServer,
    scenario: String,
    token_uses: usize,
}

impl Ctx<'_> {
    fn next_token(&mut self, r: &Replayer) -> String {
        let role = token_for(&self.scenario, self.token_uses);
        self.token_uses += 1;
        if role == "unknown" {
            return UNKNOWN_TOKEN.to_string();
        }
        r.tokens
            .get(role)
            .cloned()
            .unwrap_or_else(|| panic!("{}: no live token for {role}", self.scenario))
    }
}

fn build_target(r: &Replayer, req: &Value) -> String {
    let mut target = r.map_str(req["path"].as_str().unwrap());
    let query = req["query"].as_object().cloned().unwrap_or_default();
    if !query.is_empty() {
        let parts: Vec<String> = query
            .iter()
            .map(|(k, v)| {
                let v = v.as_str().unwrap_or("");
                let v = if k == "index" {
                    r.indexes.get(v).cloned().unwrap_or_else(|| v.to_string())
                } else {
                    r.map_str(v)
                };
                format!("{k}={}", form_encode(&v))
            })
            .collect();
        target = format!("{target}?{}", parts.join("&"));
    }
    target
}

async fn send_http(ctx: &mut Ctx<'_>, r: &Replayer, req: &Value) -> Reply {
    let target = build_target(r, req);
    let mut headers: Vec<(String, String)> = Vec::new();
    if let Some(h) = req["headers"].as_object() {
        for (k, v) in h {
            let v = v.as_str().unwrap_or("");
            if v.contains("<token>") {
                let t = ctx.next_token(r);
                headers.push((k.clone(), v.replace("<token>", &t)));
            } else {
                headers.push((k.clone(), v.to_string()));
            }
        }
    }
    let body: Option<Vec<u8>> = match &req["body"] {
        Value::Null => None,
        Value::String(s) => Some(s.clone().into_bytes()),
        v => Some(serde_json::to_vec(v).unwrap()),
    };
    let hs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    call(
        ctx.nomad,
        req["method"].as_str().unwrap(),
        &target,
        &hs,
        body.as_deref(),
    )
    .await
}

fn check_http(r: &Replayer, rec: &Value, recorded_body: &Value, live: &Reply) -> Vec<String> {
    let mut out = Vec::new();
    let status = rec["status"].as_u64().unwrap() as u16;
    if status != live.status {
        out.push(format!(
            "status {status} recorded, {} live ({})",
            live.status,
            live.text()
        ));
        return out;
    }
    let rec_headers = rec["headers"].as_object().unwrap();
    for name in [
        "Content-Type",
        "X-Nomad-Index",
        "X-Nomad-Knownleader",
        "X-Nomad-Lastcontact",
    ] {
        let want = rec_headers.get(name).and_then(Value::as_str);
        let got = live.header(name);
        if want.is_some() != got.is_some() {
            out.push(format!("header {name}: {want:?} recorded, {got:?} live"));
        }
        if name == "Content-Type" && want.is_some() && want != got {
            out.push(format!("Content-Type {want:?} recorded, {got:?} live"));
        }
    }
    let json_body =
        rec_headers.get("Content-Type").and_then(Value::as_str) == Some("application/json");
    if json_body {
        let live_json: Value = match serde_json::from_slice(&live.body) {
            Ok(v) => v,
            Err(e) => {
                out.push(format!("live body is not JSON: {e}"));
                return out;
            }
        };
        if let (Value::String(a), Value::String(b)) = (recorded_body, &live_json)
            && a != b
        {
            out.push(format!("body {a:?} recorded, {b:?} live"));
        }
        r.compare("$", "", recorded_body, &live_json, &mut out);
    } else {
        let want = r.map_str(recorded_body.as_str().unwrap_or(""));
        if want != live.text() {
            out.push(format!("body {want:?} recorded, {:?} live", live.text()));
        }
    }
    out
}

async fn http_step(ctx: &mut Ctx<'_>, r: &mut Replayer, steps: &[Value], i: usize) {
    let step = &steps[i];
    let req = &step["request"];
    let rec = &step["response"];
    let recorded_body = match rec["body_same_as_step"].as_u64() {
        Some(j) => steps[j as usize]["response"]["body"].clone(),
        None => rec["body"].clone(),
    };
    let is_read = req["method"] == "GET";
    r.strict_state = is_read && settles(steps, i);
    let deadline = Instant::now() + Duration::from_secs(8);
    let tokens_before = ctx.token_uses;
    loop {
        ctx.token_uses = tokens_before;
        let live = send_http(ctx, r, req).await;
        let problems = check_http(r, rec, &recorded_body, &live);
        if problems.is_empty() || !is_read || Instant::now() > deadline {
            assert!(
                problems.is_empty(),
                "{} step {i} ({} {}): {}\nlive body: {}",
                ctx.scenario,
                req["method"],
                req["path"],
                problems.join("\n  "),
                live.text().chars().take(3000).collect::<String>()
            );
            if let (Some(rh), Some(lh)) = (
                rec["headers"]["X-Nomad-Index"].as_str(),
                live.header("X-Nomad-Index"),
            ) {
                r.indexes.insert(rh.to_string(), lh.to_string());
            }
            if let Ok(live_json) = serde_json::from_slice::<Value>(&live.body) {
                r.learn(&recorded_body, &live_json);
                // Secrets are redacted in the recording: learn them by token name.
                for v in [&live_json] {
                    if let (Some(name), Some(secret)) = (v["Name"].as_str(), v["SecretID"].as_str())
                    {
                        r.tokens.insert(name.to_string(), secret.to_string());
                    }
                }
            }
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A read "settles" when it is the last of a run of identical polls (or a single read): the
/// recorder moved on once it saw that state, so the live agent must reach it too. Earlier polls
/// may show states the live agent, with its shortened waits, has already left.
fn settles(steps: &[Value], i: usize) -> bool {
    let key = |s: &Value| {
        let r = &s["request"];
        (r["method"].clone(), r["path"].clone(), r["query"].clone())
    };
    match steps.get(i + 1) {
        Some(next) if next.get("request").is_some() => key(next) != key(&steps[i]),
        _ => true,
    }
}

/// What a recorded or live exec session comes down to.
#[derive(Debug, PartialEq)]
struct ExecSummary {
    stdout: String,
    stderr: String,
    control: Vec<String>,
    close: Option<(u16, String)>,
}

fn recorded_exec(r: &Replayer, ws: &Value) -> ExecSummary {
    let mut s = ExecSummary {
        stdout: String::new(),
        stderr: String::new(),
        control: Vec::new(),
        close: None,
    };
    for e in ws["received"].as_array().into_iter().flatten() {
        let f = &e["frame"];
        if let Some(sum) = e.get("summary") {
            let n = sum["decoded_bytes"].as_u64().unwrap() as usize;
            s.stdout.push_str(&format!("<{n} bytes>"));
        } else if f["stdout"]["data"].is_string() {
            s.stdout.push_str(e["text"].as_str().unwrap_or(""));
        } else if f["stderr"]["data"].is_string() {
            s.stderr.push_str(e["text"].as_str().unwrap_or(""));
        } else if f["stdout"]["close"] == true {
            s.control.push("stdout-close".into());
        } else if f["stderr"]["close"] == true {
            s.control.push("stderr-close".into());
        } else if f["exited"] == true {
            s.control.push(format!(
                "exited {}",
                f["result"]["exit_code"].as_i64().unwrap_or(0)
            ));
        } else if let Some(c) = e.get("close") {
            s.close = Some((
                c["code"].as_u64().unwrap() as u16,
                r.map_str(c["reason"].as_str().unwrap_or("")),
            ));
        }
    }
    s
}

async fn ws_step(ctx: &mut Ctx<'_>, r: &mut Replayer, step: &Value, i: usize) {
    let ws = &step["ws"];
    let url = ws["url"].as_str().unwrap();
    let target = r.map_str(&url[url.find("/v1/").unwrap()..]);
    let mut headers: Vec<(String, String)> = Vec::new();
    if let Some(h) = ws["headers"].as_object() {
        for (k, v) in h {
            let v = v.as_str().unwrap_or("");
            let v = if v.contains("<token>") {
                v.replace("<token>", &ctx.next_token(r))
            } else {
                v.to_string()
            };
            headers.push((k.clone(), v));
        }
    }
    let hs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let upgrade = &ws["upgrade"];
    let name = format!("{} step {i}", ctx.scenario);
    let mut conn = match ws_connect(ctx.nomad, &target, &hs).await {
        Ok(c) => {
            assert_eq!(upgrade["status"], 101, "{name}: the upgrade succeeded live");
            c
        }
        Err((status, body)) => {
            assert_eq!(
                upgrade["status"].as_u64(),
                Some(status as u64),
                "{name}: upgrade status"
            );
            assert_eq!(
                upgrade["body"].as_str().map(|b| r.map_str(b)),
                Some(body),
                "{name}: upgrade body"
            );
            return;
        }
    };
    let mut live = Session::default();
    let mut last_ms = 0.0;
    let mut ended = false;
    for sent in ws["sent"].as_array().into_iter().flatten() {
        let ms = sent["ms"].as_f64().unwrap_or(0.0);
        let gap = Duration::from_micros(((ms - last_ms).max(0.0) * 1000.0) as u64)
            .min(Duration::from_millis(600));
        last_ms = ms;
        if !ended && !gap.is_zero() {
            ended = read_for(&mut conn, &mut live, gap).await;
        }
        if let Some(frame) = sent.get("frame") {
            let mut text = frame.to_string();
            if text.contains("<token>") {
                text = text.replace("<token>", &ctx.next_token(r));
            }
            if !ended {
                let _ = conn.send(Message::text(text)).await;
            }
        } else if sent["why"] == "client-initiated close" && !ended {
            let code = sent["close"]["code"].as_u64().unwrap_or(1000) as u16;
            let _ = conn
                .send(Message::Close(Some(CloseFrame {
                    code: code.into(),
                    reason: "".into(),
                })))
                .await;
        }
    }
    if !ended {
        read_for(&mut conn, &mut live, Duration::from_secs(10)).await;
    }
    let mut got = ExecSummary {
        stdout: String::from_utf8_lossy(&live.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&live.stderr).into_owned(),
        control: live
            .control()
            .into_iter()
            .map(|c| {
                if c == "exited" {
                    format!("exited {}", live.exit_code().unwrap_or(0))
                } else {
                    c
                }
            })
            .collect(),
        close: live.close.clone(),
    };
    let mut want = recorded_exec(r, ws);
    if let Some(stats) = ws.get("stats") {
        // Per-message sizes vary with pipe timing; the total and the 4096-byte cap do not.
        want.stdout = format!("{} bytes", stats["stdout_bytes"]);
        got.stdout = format!("{} bytes", live.stdout.len());
    }
    let client_close = ws["close"]["initiated_by"] == "client";
    if client_close {
        want.close = ws["close"]["server_reply"]
            .as_object()
            .map(|c| (c["code"].as_u64().unwrap() as u16, String::new()));
    }
    assert_eq!(got, want, "{name}: exec session");
    let detail = &ws["close_detail"];
    if detail.get("tcp_still_open_after_close_ms").is_some() {
        assert!(
            live.tcp_held_after_close,
            "{name}: TCP should stay open after the close"
        );
    } else if detail.get("tcp_eof_ms").is_some() {
        assert!(
            !live.tcp_held_after_close,
            "{name}: TCP should close after the close frame"
        );
    }
}

async fn replay(nomad: &NomadServer, r: &mut Replayer, name: &str) {
    let doc = load(name);
    assert_eq!(doc["nomad_version"], "1.1.2");
    let steps = doc["steps"].as_array().unwrap().clone();
    let mut ctx = Ctx {
        nomad,
        scenario: name.to_string(),
        token_uses: 0,
    };
    let mut i = 0;
    while i < steps.len() {
        let concurrent = steps
            .get(i + 1)
            .and_then(|s| s["note"].as_str())
            .is_some_and(|n| n.contains("another connection"));
        if concurrent {
            // A blocking read woken by a write sent from another connection a little later.
            let (mut r1, mut r2) = (std::mem::take(r), Replayer::default());
            r2.ids = r1.ids.clone();
            r2.indexes = r1.indexes.clone();
            r2.tokens = r1.tokens.clone();
            let mut ctx2 = Ctx {
                nomad,
                scenario: name.to_string(),
                token_uses: 0,
            };
            let delay = steps[i + 1]["started_ms"].as_f64().unwrap_or(0.0)
                - steps[i]["started_ms"].as_f64().unwrap_or(0.0);
            let delay = Duration::from_millis(delay.clamp(0.0, 2000.0) as u64);
            tokio::join!(http_step(&mut ctx, &mut r1, &steps, i), async {
                tokio::time::sleep(delay).await;
                http_step(&mut ctx2, &mut r2, &steps, i + 1).await;
            });
            r1.ids.extend(r2.ids);
            *r = r1;
            i += 2;
            continue;
        }
        // Writes keep (up to 600 ms of) the recorded pause before them: the recorder let the
        // agent settle (an allocation start, a kill) before it changed things again.
        if i > 0
            && steps[i]["request"]["method"]
                .as_str()
                .is_some_and(|m| m != "GET")
        {
            let gap = steps[i]["started_ms"].as_f64().unwrap_or(0.0)
                - steps[i - 1]["started_ms"].as_f64().unwrap_or(0.0);
            tokio::time::sleep(Duration::from_millis(gap.clamp(0.0, 600.0) as u64)).await;
        }
        if steps[i].get("ws").is_some() {
            ws_step(&mut ctx, r, &steps[i], i).await;
        } else {
            http_step(&mut ctx, r, &steps, i).await;
        }
        i += 1;
    }
}

fn plain_agent() -> NomadServer {
    NomadServer::builder()
        .profile(Profile::V1_1)
        // The recorded agent ran with SIGINT ignored: a bare shell loop is force-killed (137).
        .tasks_ignore_sigint(true)
        .start()
}

async fn run_all(nomad: &NomadServer, names: &[&str]) {
    let mut r = Replayer::default();
    for name in names {
        replay(nomad, &mut r, name).await;
    }
}

#[tokio::test]
async fn replay_agent_reads() {
    let nomad = plain_agent();
    run_all(
        &nomad,
        &[
            "status-leader",
            "regions",
            "agent-self",
            "namespaces",
            "nodes-list",
            "acl-token-self-acl-off",
        ],
    )
    .await;
}

#[tokio::test]
async fn replay_keepalive_and_exec() {
    let nomad = plain_agent();
    run_all(
        &nomad,
        &[
            "register-raw-exec-keepalive",
            "exec-echo-exit3",
            "exec-exit0",
            "exec-stdin-cat",
            "exec-large-output",
            "exec-signal",
            "exec-unknown-task",
            "exec-empty-task",
            "exec-empty-command",
            "exec-bad-binary",
            "exec-no-stdin-close",
            "exec-heartbeat",
            "exec-tty-size-notty",
            "exec-tty",
            "exec-command-not-json",
            "exec-handshake",
            "exec-handshake-bad-version",
            "exec-unknown-alloc",
            "register-conflict",
            "blocking-query",
            "exec-stopped-task",
        ],
    )
    .await;
}

#[tokio::test]
async fn replay_registration_and_parsing() {
    let nomad = plain_agent();
    run_all(
        &nomad,
        &[
            "register-partial-restart-policy",
            "register-unplaceable",
            "register-missing-datacenters",
            "register-invalid",
            "register-empty-body",
            "jobs-parse",
        ],
    )
    .await;
}

#[tokio::test]
async fn replay_deregistration() {
    let nomad = plain_agent();
    run_all(
        &nomad,
        &[
            "register-raw-exec-keepalive",
            "deregister-stop",
            "deregister-purge",
            "deregister-missing",
        ],
    )
    .await;
}

#[tokio::test]
async fn replay_failed_and_replaced() {
    let nomad = plain_agent();
    run_all(&nomad, &["alloc-failed-replaced"]).await;
}

#[tokio::test]
async fn replay_acl_agent() {
    let nomad = NomadServer::builder()
        .profile(Profile::V1_1)
        .acl(true)
        .tasks_ignore_sigint(true)
        .start();
    run_all(
        &nomad,
        &[
            "acl-setup",
            "acl-token-self-management",
            "acl-token-self-client",
            "acl-token-self-unknown",
            "acl-token-self-no-token",
            "acl-jobs-list-forbidden",
            "acl-jobs-list-other-auth",
            "exec-acl-denied",
            "exec-acl-no-token",
            "exec-acl-alloc-exec-only",
            "exec-acl-allowed",
            "exec-acl-handshake",
        ],
    )
    .await;
}

/// Every recording in the folder is replayed by one of the tests above.
#[test]
fn every_recording_is_replayed() {
    let source = include_str!("replay.rs");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(fixtures_dir()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".json")
            && !source.contains(&format!("\"{stem}\""))
        {
            missing.push(stem.to_string());
        }
    }
    assert!(missing.is_empty(), "recordings not replayed: {missing:?}");
}
