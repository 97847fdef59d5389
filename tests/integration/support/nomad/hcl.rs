//! A small HCL2 subset, enough for `/v1/jobs/parse` (job/group/task/config/resources/meta,
//! restart/reschedule/env/logs/ephemeral_disk) and ACL policy rules. Errors are formatted as
//! HCL diagnostics on `input.hcl` (`input.hcl:4,16-5,1: Invalid expression; …`), which the
//! agent returns bare as a 400.

use serde_json::{Map, Value, json};

#[derive(Clone, Debug)]
pub enum Item {
    Attr {
        name: String,
        value: Value,
        pos: Pos,
    },
    Block {
        kind: String,
        labels: Vec<String>,
        body: Vec<Item>,
        pos: Pos,
        end: Pos,
    },
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

#[derive(Debug)]
pub struct HclError(pub String);

fn diag(from: Pos, to: Pos, summary: &str, detail: &str) -> String {
    let range = if from.line == to.line {
        format!("{},{}-{}", from.line, from.col, to.col)
    } else {
        format!("{},{}-{},{}", from.line, from.col, to.line, to.col)
    };
    format!("input.hcl:{range}: {summary}; {detail}")
}

struct Parser<'a> {
    src: &'a [char],
    i: usize,
    line: usize,
    col: usize,
}

impl<'a> Parser<'a> {
    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            col: self.col,
        }
    }

    fn peek(&self) -> Option<char> {
        self.src.get(self.i).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += 1;
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    /// Skips spaces and comments; newlines too when `newlines` is set.
    fn skip(&mut self, newlines: bool) {
        loop {
            match self.peek() {
                Some(' ' | '\t' | '\r') => {
                    self.bump();
                }
                Some('\n') if newlines => {
                    self.bump();
                }
                Some('#') => self.skip_line(),
                Some('/') if self.src.get(self.i + 1) == Some(&'/') => self.skip_line(),
                Some('/') if self.src.get(self.i + 1) == Some(&'*') => {
                    self.bump();
                    self.bump();
                    while let Some(c) = self.bump() {
                        if c == '*' && self.peek() == Some('/') {
                            self.bump();
                            break;
                        }
                    }
                }
                _ => return,
            }
        }
    }

    fn skip_line(&mut self) {
        while let Some(c) = self.peek() {
            if c == '\n' {
                return;
            }
            self.bump();
        }
    }

    fn ident(&mut self) -> Option<String> {
        let mut s = String::new();
        while let Some(c) = self.peek() {
            if c.is_alphanumeric() || c == '_' || c == '-' {
                s.push(c);
                self.bump();
            } else {
                break;
            }
        }
        if s.is_empty() { None } else { Some(s) }
    }

    fn string(&mut self) -> Result<String, HclError> {
        let start = self.pos();
        self.bump(); // opening quote
        let mut s = String::new();
        loop {
            match self.bump() {
                None | Some('\n') => {
                    return Err(HclError(diag(
                        start,
                        self.pos(),
                        "Unterminated template string",
                        "No closing marker was found for the string.",
                    )));
                }
                Some('"') => return Ok(s),
                Some('\\') => match self.bump() {
                    Some('n') => s.push('\n'),
                    Some('t') => s.push('\t'),
                    Some('r') => s.push('\r'),
                    Some('"') => s.push('"'),
                    Some('\\') => s.push('\\'),
                    Some(c) => {
                        s.push('\\');
                        s.push(c);
                    }
                    None => {}
                },
                Some('$') if self.peek() == Some('$') && self.src.get(self.i + 1) == Some(&'{') => {
                    self.bump();
                    s.push('$');
                }
                Some(c) => s.push(c),
            }
        }
    }

    fn heredoc(&mut self) -> Result<String, HclError> {
        self.bump();
        self.bump();
        if self.peek() == Some('-') {
            self.bump();
        }
        let marker = self.ident().unwrap_or_default();
        self.skip_line();
        self.bump();
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            while let Some(c) = self.peek() {
                if c == '\n' {
                    break;
                }
                line.push(c);
                self.bump();
            }
            if line.trim() == marker {
                break;
            }
            lines.push(line);
            if self.bump().is_none() {
                break;
            }
        }
        let indent = lines
            .iter()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.len() - l.trim_start().len())
            .min()
            .unwrap_or(0);
        Ok(lines
            .iter()
            .map(|l| format!("{}\n", l.get(indent..).unwrap_or("")))
            .collect())
    }

    fn invalid_expression(&mut self) -> HclError {
        let from = self.pos();
        let to = if self.peek() == Some('\n') {
            Pos {
                line: from.line + 1,
                col: 1,
            }
        } else {
            Pos {
                line: from.line,
                col: from.col + 1,
            }
        };
        HclError(format!(
            "{}\n{}",
            diag(
                from,
                to,
                "Invalid expression",
                "Expected the start of an expression, but found an invalid expression token."
            ),
            diag(
                from,
                to,
                "Unsuitable value type",
                "Unsuitable value: value must be known"
            )
        ))
    }

    fn value(&mut self) -> Result<Value, HclError> {
        self.skip(false);
        match self.peek() {
            Some('"') => Ok(Value::String(self.string()?)),
            Some('<') if self.src.get(self.i + 1) == Some(&'<') => {
                Ok(Value::String(self.heredoc()?))
            }
            Some('[') => {
                self.bump();
                let mut items = Vec::new();
                loop {
                    self.skip(true);
                    if self.peek() == Some(']') {
                        self.bump();
                        return Ok(Value::Array(items));
                    }
                    items.push(self.value()?);
                    self.skip(true);
                    match self.peek() {
                        Some(',') => {
                            self.bump();
                        }
                        Some(']') => {}
                        _ => return Err(self.invalid_expression()),
                    }
                }
            }
            Some('{') => {
                self.bump();
                let mut map = Map::new();
                loop {
                    self.skip(true);
                    if self.peek() == Some('}') {
                        self.bump();
                        return Ok(Value::Object(map));
                    }
                    let key = if self.peek() == Some('"') {
                        self.string()?
                    } else {
                        self.ident().ok_or_else(|| self.invalid_expression())?
                    };
                    self.skip(false);
                    if matches!(self.peek(), Some('=') | Some(':')) {
                        self.bump();
                    } else {
                        return Err(self.invalid_expression());
                    }
                    let v = self.value()?;
                    map.insert(key, v);
                    self.skip(false);
                    if self.peek() == Some(',') {
                        self.bump();
                    }
                }
            }
            Some(c) if c.is_ascii_digit() || c == '-' => {
                let mut s = String::new();
                while let Some(c) = self.peek() {
                    if c.is_ascii_digit() || c == '.' || c == '-' || c == 'e' {
                        s.push(c);
                        self.bump();
                    } else {
                        break;
                    }
                }
                if let Ok(n) = s.parse::<i64>() {
                    Ok(json!(n))
                } else if let Ok(f) = s.parse::<f64>() {
                    Ok(json!(f))
                } else {
                    Err(self.invalid_expression())
                }
            }
            Some(c) if c.is_alphabetic() => {
                let start = self.pos();
                let word = self.ident().unwrap_or_default();
                match word.as_str() {
                    "true" => Ok(json!(true)),
                    "false" => Ok(json!(false)),
                    "null" => Ok(Value::Null),
                    _ => Err(HclError(diag(
                        start,
                        self.pos(),
                        "Variables not allowed",
                        "Variables may not be used here.",
                    ))),
                }
            }
            _ => Err(self.invalid_expression()),
        }
    }

    fn body(&mut self, top: bool) -> Result<(Vec<Item>, Pos), HclError> {
        let mut items = Vec::new();
        loop {
            self.skip(true);
            let pos = self.pos();
            match self.peek() {
                None if top => return Ok((items, pos)),
                None => {
                    return Err(HclError(diag(
                        pos,
                        pos,
                        "Unclosed configuration block",
                        "There is no closing brace for this block before the end of the file.",
                    )));
                }
                Some('}') if !top => {
                    self.bump();
                    return Ok((items, pos));
                }
                _ => {}
            }
            let Some(name) = self.ident() else {
                let to = Pos {
                    line: pos.line,
                    col: pos.col + 1,
                };
                return Err(HclError(diag(
                    pos,
                    to,
                    "Argument or block definition required",
                    "An argument or block definition is required here.",
                )));
            };
            self.skip(false);
            if self.peek() == Some('=') {
                self.bump();
                let value = self.value()?;
                items.push(Item::Attr { name, value, pos });
                continue;
            }
            let mut labels = Vec::new();
            loop {
                self.skip(false);
                match self.peek() {
                    Some('"') => labels.push(self.string()?),
                    Some('{') => {
                        self.bump();
                        break;
                    }
                    _ => {
                        let here = self.pos();
                        return Err(HclError(diag(
                            here,
                            Pos {
                                line: here.line,
                                col: here.col + 1,
                            },
                            "Invalid block definition",
                            "Either a quoted string block label or an opening brace (\"{\") is expected here.",
                        )));
                    }
                }
            }
            let (body, end) = self.body(false)?;
            items.push(Item::Block {
                kind: name,
                labels,
                body,
                pos,
                end,
            });
        }
    }
}

pub fn parse(src: &str) -> Result<Vec<Item>, HclError> {
    let chars: Vec<char> = src.chars().collect();
    let mut p = Parser {
        src: &chars,
        i: 0,
        line: 1,
        col: 1,
    };
    p.body(true).map(|(items, _)| items)
}

/// A block's body as a JSON object: attributes as values, nested blocks as objects.
pub fn body_to_map(body: &[Item]) -> Value {
    let mut m = Map::new();
    for item in body {
        match item {
            Item::Attr { name, value, .. } => {
                m.insert(name.clone(), value.clone());
            }
            Item::Block {
                kind, labels, body, ..
            } => {
                let inner = body_to_map(body);
                let v = match labels.first() {
                    Some(l) => json!({ l.clone(): inner }),
                    None => inner,
                };
                m.insert(kind.clone(), v);
            }
        }
    }
    Value::Object(m)
}

fn unsupported_block(kind: &str, pos: Pos) -> HclError {
    HclError(diag(
        pos,
        Pos {
            line: pos.line,
            col: pos.col + kind.chars().count(),
        },
        "Unsupported block type",
        &format!("Blocks of type \"{kind}\" are not expected here."),
    ))
}

fn unsupported_arg(name: &str, pos: Pos) -> HclError {
    HclError(diag(
        pos,
        Pos {
            line: pos.line,
            col: pos.col + name.chars().count(),
        },
        "Unsupported argument",
        &format!("An argument named \"{name}\" is not expected here."),
    ))
}

/// Parses a Go duration string (`5s`, `1h30m`, `500ms`) into nanoseconds.
pub fn go_duration_nanos(s: &str) -> Option<i64> {
    let s = s.trim();
    if s == "0" {
        return Some(0);
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += n * mult;
        rest = &rest[unit_len..];
    }
    Some(total as i64)
}

fn duration(v: &Value, pos: Pos, name: &str) -> Result<Value, HclError> {
    match v {
        Value::String(s) => go_duration_nanos(s).map(|n| json!(n)).ok_or_else(|| {
            HclError(diag(
                pos,
                pos,
                "Unsuitable value type",
                &format!("Unsuitable value for {name}: invalid duration"),
            ))
        }),
        Value::Number(_) => Ok(v.clone()),
        _ => Ok(Value::Null),
    }
}

fn string_map(body: &[Item]) -> Value {
    body_to_map(body)
}

/// Turns a parsed jobspec into the API `Job` the agent returns from `/v1/jobs/parse`
/// (without canonicalization: unset fields are `null`).
pub fn job_from_hcl(src: &str) -> Result<Value, HclError> {
    let items = parse(src)?;
    let mut job_block = None;
    for item in &items {
        match item {
            Item::Block {
                kind, labels, body, ..
            } if kind == "job" => {
                job_block = Some((labels.first().cloned().unwrap_or_default(), body));
            }
            Item::Block { kind, pos, .. } => return Err(unsupported_block(kind, *pos)),
            Item::Attr { name, pos, .. } => return Err(unsupported_arg(name, *pos)),
        }
    }
    let Some((id, body)) = job_block else {
        return Err(HclError(
            "input.hcl:1,1-1: Missing job block; A job block is required.".to_string(),
        ));
    };
    let mut job = api_job_template();
    job["ID"] = json!(id);
    job["Name"] = json!(id);
    let mut groups = Vec::new();
    for item in body {
        match item {
            Item::Attr { name, value, pos } => match name.as_str() {
                "datacenters" => job["Datacenters"] = value.clone(),
                "type" => job["Type"] = value.clone(),
                "priority" => job["Priority"] = value.clone(),
                "region" => job["Region"] = value.clone(),
                "namespace" => job["Namespace"] = value.clone(),
                "name" => job["Name"] = value.clone(),
                "all_at_once" => job["AllAtOnce"] = value.clone(),
                "node_pool" => job["NodePool"] = value.clone(),
                "meta" => job["Meta"] = value.clone(),
                _ => return Err(unsupported_arg(name, *pos)),
            },
            Item::Block {
                kind,
                labels,
                body,
                pos,
                ..
            } => match kind.as_str() {
                "meta" => job["Meta"] = string_map(body),
                "group" => groups.push(group_from_hcl(
                    labels.first().cloned().unwrap_or_default(),
                    body,
                )?),
                _ => return Err(unsupported_block(kind, *pos)),
            },
        }
    }
    job["TaskGroups"] = json!(groups);
    Ok(job)
}

fn group_from_hcl(name: String, body: &[Item]) -> Result<Value, HclError> {
    let mut g = json!({
        "Affinities": null, "Constraints": null, "Consul": null, "Count": null,
        "EphemeralDisk": null, "Meta": null, "Migrate": null, "Name": name, "Networks": null,
        "ReschedulePolicy": null, "RestartPolicy": null, "Scaling": null, "Services": null,
        "ShutdownDelay": null, "Spreads": null, "StopAfterClientDisconnect": null, "Tasks": [],
        "Update": null, "Volumes": null,
    });
    let mut tasks = Vec::new();
    for item in body {
        match item {
            Item::Attr { name, value, pos } => match name.as_str() {
                "count" => g["Count"] = value.clone(),
                "meta" => g["Meta"] = value.clone(),
                _ => return Err(unsupported_arg(name, *pos)),
            },
            Item::Block {
                kind,
                labels,
                body,
                pos,
                ..
            } => match kind.as_str() {
                "meta" => g["Meta"] = string_map(body),
                "task" => tasks.push(task_from_hcl(
                    labels.first().cloned().unwrap_or_default(),
                    body,
                )?),
                "restart" => {
                    let mut r =
                        json!({"Attempts": null, "Delay": null, "Interval": null, "Mode": null});
                    for it in body {
                        let Item::Attr { name, value, pos } = it else {
                            return Err(block_pos_err(it));
                        };
                        match name.as_str() {
                            "attempts" => r["Attempts"] = value.clone(),
                            "mode" => r["Mode"] = value.clone(),
                            "delay" => r["Delay"] = duration(value, *pos, name)?,
                            "interval" => r["Interval"] = duration(value, *pos, name)?,
                            _ => return Err(unsupported_arg(name, *pos)),
                        }
                    }
                    g["RestartPolicy"] = r;
                }
                "reschedule" => {
                    let mut r = json!({"Attempts": null, "Delay": null, "DelayFunction": null,
                                       "Interval": null, "MaxDelay": null, "Unlimited": null});
                    for it in body {
                        let Item::Attr { name, value, pos } = it else {
                            return Err(block_pos_err(it));
                        };
                        match name.as_str() {
                            "attempts" => r["Attempts"] = value.clone(),
                            "unlimited" => r["Unlimited"] = value.clone(),
                            "delay_function" => r["DelayFunction"] = value.clone(),
                            "delay" => r["Delay"] = duration(value, *pos, name)?,
                            "interval" => r["Interval"] = duration(value, *pos, name)?,
                            "max_delay" => r["MaxDelay"] = duration(value, *pos, name)?,
                            _ => return Err(unsupported_arg(name, *pos)),
                        }
                    }
                    g["ReschedulePolicy"] = r;
                }
                "ephemeral_disk" => {
                    let m = body_to_map(body);
                    g["EphemeralDisk"] = json!({"Migrate": m.get("migrate"), "SizeMB": m.get("size"),
                                                "Sticky": m.get("sticky")});
                }
                _ => return Err(unsupported_block(kind, *pos)),
            },
        }
    }
    g["Tasks"] = json!(tasks);
    Ok(g)
}

fn block_pos_err(item: &Item) -> HclError {
    match item {
        Item::Block { kind, pos, .. } => unsupported_block(kind, *pos),
        Item::Attr { name, pos, .. } => unsupported_arg(name, *pos),
    }
}

fn task_from_hcl(name: String, body: &[Item]) -> Result<Value, HclError> {
    let mut t = json!({
        "Affinities": null, "Artifacts": null, "Config": null, "Constraints": null,
        "DispatchPayload": null, "Driver": "", "Env": null, "KillSignal": "", "KillTimeout": null,
        "Kind": "", "Leader": false, "Lifecycle": null, "LogConfig": null, "Meta": null,
        "Name": name, "Resources": null, "RestartPolicy": null, "ScalingPolicies": null,
        "Services": null, "ShutdownDelay": 0, "Templates": null, "User": "", "Vault": null,
        "VolumeMounts": null,
    });
    for item in body {
        match item {
            Item::Attr { name, value, pos } => match name.as_str() {
                "driver" => t["Driver"] = value.clone(),
                "user" => t["User"] = value.clone(),
                "kill_signal" => t["KillSignal"] = value.clone(),
                "kill_timeout" => t["KillTimeout"] = duration(value, *pos, name)?,
                "leader" => t["Leader"] = value.clone(),
                "env" => t["Env"] = value.clone(),
                "meta" => t["Meta"] = value.clone(),
                "config" => t["Config"] = value.clone(),
                _ => return Err(unsupported_arg(name, *pos)),
            },
            Item::Block {
                kind, body, pos, ..
            } => match kind.as_str() {
                "config" => t["Config"] = body_to_map(body),
                "env" => t["Env"] = string_map(body),
                "meta" => t["Meta"] = string_map(body),
                "resources" => {
                    let mut r = json!({"CPU": null, "Cores": null, "Devices": null, "DiskMB": null,
                                       "IOPS": null, "MemoryMB": null, "MemoryMaxMB": null, "Networks": null});
                    for it in body {
                        let Item::Attr { name, value, pos } = it else {
                            return Err(block_pos_err(it));
                        };
                        match name.as_str() {
                            "cpu" => r["CPU"] = value.clone(),
                            "cores" => r["Cores"] = value.clone(),
                            "memory" => r["MemoryMB"] = value.clone(),
                            "memory_max" => r["MemoryMaxMB"] = value.clone(),
                            _ => return Err(unsupported_arg(name, *pos)),
                        }
                    }
                    t["Resources"] = r;
                }
                "logs" => {
                    let m = body_to_map(body);
                    t["LogConfig"] = json!({"MaxFileSizeMB": m.get("max_file_size"),
                                            "MaxFiles": m.get("max_files")});
                }
                _ => return Err(unsupported_block(kind, *pos)),
            },
        }
    }
    Ok(t)
}

fn api_job_template() -> Value {
    json!({
        "Affinities": null, "AllAtOnce": null, "Constraints": null, "ConsulNamespace": null,
        "ConsulToken": null, "CreateIndex": null, "Datacenters": null, "Dispatched": false,
        "ID": null, "JobModifyIndex": null, "Meta": null, "Migrate": null, "ModifyIndex": null,
        "Multiregion": null, "Name": null, "Namespace": null, "NomadTokenID": null,
        "ParameterizedJob": null, "ParentID": null, "Payload": null, "Periodic": null,
        "Priority": null, "Region": null, "Reschedule": null, "Spreads": null, "Stable": null,
        "Status": null, "StatusDescription": null, "Stop": null, "SubmitTime": null,
        "TaskGroups": [], "Type": null, "Update": null, "VaultNamespace": null,
        "VaultToken": null, "Version": null,
    })
}

/// The Go API client's `Job.Canonicalize` as the parse endpoint applies it.
pub fn canonicalize_api_job(job: &mut Value) {
    const SEC: i64 = 1_000_000_000;
    let set_default = |v: &mut Value, key: &str, d: Value| {
        if v[key].is_null() {
            v[key] = d;
        }
    };
    for (k, d) in [
        ("AllAtOnce", json!(false)),
        ("ConsulNamespace", json!("")),
        ("ConsulToken", json!("")),
        ("CreateIndex", json!(0)),
        ("JobModifyIndex", json!(0)),
        ("ModifyIndex", json!(0)),
        ("Namespace", json!("default")),
        ("NomadTokenID", json!("")),
        ("ParentID", json!("")),
        ("Priority", json!(50)),
        ("Region", json!("global")),
        ("Stable", json!(false)),
        ("Status", json!("")),
        ("StatusDescription", json!("")),
        ("Stop", json!(false)),
        ("Type", json!("service")),
        ("VaultNamespace", json!("")),
        ("VaultToken", json!("")),
        ("Version", json!(0)),
    ] {
        set_default(job, k, d);
    }
    let update = json!({"AutoPromote": false, "AutoRevert": false, "Canary": 0,
                        "HealthCheck": "checks", "HealthyDeadline": 300 * SEC, "MaxParallel": 1,
                        "MinHealthyTime": 10 * SEC, "ProgressDeadline": 600 * SEC, "Stagger": 30 * SEC});
    set_default(job, "Update", update.clone());
    let batch = job["Type"] == "batch";
    let restart = if batch {
        json!({"Attempts": 3, "Delay": 15 * SEC, "Interval": 86400 * SEC, "Mode": "fail"})
    } else {
        json!({"Attempts": 2, "Delay": 15 * SEC, "Interval": 1800 * SEC, "Mode": "fail"})
    };
    let resched = if batch {
        json!({"Attempts": 1, "Delay": 5 * SEC, "DelayFunction": "constant", "Interval": 86400 * SEC,
               "MaxDelay": 0, "Unlimited": false})
    } else {
        json!({"Attempts": 0, "Delay": 30 * SEC, "DelayFunction": "exponential", "Interval": 0,
               "MaxDelay": 3600 * SEC, "Unlimited": true})
    };
    if let Some(groups) = job["TaskGroups"].as_array_mut() {
        for g in groups {
            set_default(g, "Count", json!(1));
            set_default(g, "Consul", json!({"Namespace": ""}));
            set_default(
                g,
                "EphemeralDisk",
                json!({"Migrate": false, "SizeMB": 300, "Sticky": false}),
            );
            set_default(
                g,
                "Migrate",
                json!({"HealthCheck": "checks", "HealthyDeadline": 300 * SEC,
                                               "MaxParallel": 1, "MinHealthyTime": 10 * SEC}),
            );
            set_default(g, "Update", update.clone());
            fill_object(&mut g["RestartPolicy"], &restart);
            fill_object(&mut g["ReschedulePolicy"], &resched);
            let group_restart = g["RestartPolicy"].clone();
            if let Some(tasks) = g["Tasks"].as_array_mut() {
                for t in tasks {
                    set_default(t, "KillTimeout", json!(5 * SEC));
                    set_default(t, "LogConfig", json!({"MaxFileSizeMB": 10, "MaxFiles": 10}));
                    fill_object(&mut t["RestartPolicy"], &group_restart);
                    let res = json!({"CPU": 100, "Cores": 0, "Devices": null, "DiskMB": null,
                                     "IOPS": null, "MemoryMB": 300, "MemoryMaxMB": null, "Networks": null});
                    fill_object(&mut t["Resources"], &res);
                }
            }
        }
    }
}

fn fill_object(target: &mut Value, defaults: &Value) {
    if target.is_null() {
        *target = defaults.clone();
        return;
    }
    if let (Some(t), Some(d)) = (target.as_object_mut(), defaults.as_object()) {
        for (k, v) in d {
            if t.get(k).is_none_or(Value::is_null) {
                t.insert(k.clone(), v.clone());
            }
        }
    }
}
