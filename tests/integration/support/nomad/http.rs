//! The HTTP API: listener loops (HTTP/1.1 with Go-canonical header names), request logging and
//! faults, routing, meta headers, blocking queries, ACL checks and plain-text errors.

#![expect(
    clippy::result_large_err,
    reason = "helpers hand ready-made error responses back to the router"
)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State as AxState};
use axum::http::{HeaderMap, Method, header};
use axum::response::Response;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};

use super::acl::{self, Identity, TokenError};
use super::hcl;
use super::jobspec::get;
use super::scheduler::{self, ApiError};
use super::state::{AclPolicy, AclToken, State, new_id, now_rfc3339};
use super::{RecordedRequest, Shared, exec};

fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(shared)
}

async fn serve_conn<I>(shared: Arc<Shared>, io: I)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(router(shared));
    let _ = hyper::server::conn::http1::Builder::new()
        .title_case_headers(true)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades()
        .await;
}

pub async fn serve_tcp(shared: Arc<Shared>, listener: tokio::net::TcpListener) {
    while let Ok((stream, _)) = listener.accept().await {
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_conn(shared.clone(), stream));
    }
}

pub async fn serve_unix(shared: Arc<Shared>, listener: tokio::net::UnixListener) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(serve_conn(shared.clone(), stream));
    }
}

/// Parsed query string.
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(raw: &str) -> Query {
        let pairs = raw
            .split('&')
            .filter(|s| !s.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect();
        Query { pairs }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn has(&self, key: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == key)
    }

    fn namespace(&self) -> String {
        self.get("namespace")
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
            .to_string()
    }

    fn bool(&self, key: &str) -> Result<bool, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(false),
            Some(v) => parse_go_bool(v).ok_or_else(|| {
                ApiError(500, format!("Failed to parse value of {key:?} ({v:?}) as a bool: strconv.ParseBool: parsing {v:?}: invalid syntax"))
            }),
        }
    }
}

pub fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ----- responses -----

fn text(status: u16, msg: &str) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from(msg.to_string()))
        .unwrap()
}

fn with_meta(mut resp: Response, index: u64) -> Response {
    let h = resp.headers_mut();
    h.insert("X-Nomad-Index", index.to_string().parse().unwrap());
    h.insert("X-Nomad-Knownleader", "true".parse().unwrap());
    h.insert("X-Nomad-Lastcontact", "0".parse().unwrap());
    resp
}

fn json_body(v: &Value, pretty: bool) -> Response {
    let body = if pretty {
        serde_json::to_string_pretty(v).unwrap()
    } else {
        serde_json::to_string(v).unwrap()
    };
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap()
}

fn error_response(e: ApiError) -> Response {
    text(e.0, &e.1)
}

/// A read: meta headers on success and on errors (a 404 still carries them).
fn read_reply(index: u64, res: Result<Value, ApiError>, pretty: bool) -> Response {
    match res {
        Ok(v) => with_meta(json_body(&v, pretty), index),
        Err(e) if e.0 == 404 => with_meta(error_response(e), index),
        Err(e) => error_response(e),
    }
}

fn write_reply(index: u64, v: &Value, pretty: bool) -> Response {
    let mut r = json_body(v, pretty);
    r.headers_mut()
        .insert("X-Nomad-Index", index.to_string().parse().unwrap());
    r
}

fn denied() -> Response {
    text(403, "Permission denied")
}

// ----- tokens -----

/// The secret from the headers the profile honours: `X-Nomad-Token` (trimmed), and on modern
/// agents `Authorization: Bearer`.
pub fn header_secret(shared: &Shared, headers: &HeaderMap) -> Option<String> {
    if let Some(t) = headers.get("x-nomad-token").and_then(|v| v.to_str().ok()) {
        let t = t.trim();
        if !t.is_empty() {
            return Some(t.to_string());
        }
    }
    if !shared.config.profile.is_v1_1()
        && let Some(auth) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
    {
        let mut words = auth.split_whitespace();
        if let (Some(scheme), Some(tok)) = (words.next(), words.next())
            && scheme.eq_ignore_ascii_case("bearer")
        {
            return Some(tok.to_string());
        }
    }
    None
}

pub fn identity(shared: &Shared, secret: Option<&str>) -> Result<Identity, Response> {
    shared
        .read(|st| acl::resolve(st, shared.config.acl_enabled, secret))
        .map_err(|TokenError::NotFound| text(403, "ACL token not found"))
}

// ----- ACL administration -----

fn token_hash() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Bootstraps ACLs: `Ok(secret)`, or `Err(existing management secret)` when already done.
pub fn bootstrap(shared: &Shared) -> Result<String, String> {
    let tok = shared.write(|st| {
        if st.acl_bootstrapped.is_some() {
            let existing = st
                .tokens
                .values()
                .find(|t| t.name == "Bootstrap Token")
                .map(|t| t.secret_id.clone())
                .unwrap_or_default();
            return Err(existing);
        }
        let idx = st.bump();
        st.acl_bootstrapped = Some(idx);
        let t = new_token(idx, "Bootstrap Token", "management", &[], true);
        st.tokens.insert(t.accessor_id.clone(), t.clone());
        st.tables.acl = idx;
        Ok(t)
    })?;
    Ok(tok.secret_id)
}

fn new_token(idx: u64, name: &str, kind: &str, policies: &[String], global: bool) -> AclToken {
    AclToken {
        accessor_id: new_id(),
        secret_id: new_id(),
        name: name.to_string(),
        token_type: kind.to_string(),
        policies: policies.to_vec(),
        global,
        hash: token_hash(),
        create_time: now_rfc3339(),
        create_index: idx,
        modify_index: idx,
    }
}

pub fn put_policy(
    shared: &Shared,
    name: &str,
    description: &str,
    rules: &str,
) -> Result<u64, String> {
    let parsed = acl::parse_rules(rules)?;
    Ok(shared.write(|st| {
        let idx = st.bump();
        let create_index = st.policies.get(name).map(|p| p.create_index).unwrap_or(idx);
        st.policies.insert(
            name.to_string(),
            AclPolicy {
                name: name.to_string(),
                description: description.to_string(),
                rules: rules.to_string(),
                parsed,
                create_index,
                modify_index: idx,
            },
        );
        st.tables.acl = idx;
        idx
    }))
}

pub fn create_token(shared: &Shared, name: &str, kind: &str, policies: &[String]) -> AclToken {
    shared.write(|st| {
        let idx = st.bump();
        let t = new_token(idx, name, kind, policies, false);
        st.tokens.insert(t.accessor_id.clone(), t.clone());
        st.tables.acl = idx;
        t
    })
}

// ----- the handler -----

async fn handle(AxState(shared): AxState<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 64 << 20)
        .await
        .unwrap_or_default();
    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let method = parts.method.clone();
    shared.requests.lock().unwrap().push(RecordedRequest {
        method: method.to_string(),
        path: path.clone(),
        query: raw_query.clone(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
    });
    // Faults: unresponsive, latency, injected errors.
    let mut unresponsive = shared.unresponsive_tx.subscribe();
    if unresponsive.wait_for(|u| !*u).await.is_err() {
        return text(500, "server stopped");
    }
    let (delay, failure) = {
        let mut f = shared.faults.lock().unwrap();
        let delay: Duration = f
            .latency
            .iter()
            .filter(|l| l.route.matches(method.as_str(), &path))
            .map(|l| l.delay)
            .sum();
        let mut failure = None;
        for h in f.http.iter_mut() {
            if h.route.matches(method.as_str(), &path) {
                h.seen += 1;
                if failure.is_none() && h.seen >= h.nth && h.seen < h.nth + h.times {
                    failure = Some((h.status, h.body.clone()));
                }
            }
        }
        (delay, failure)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some((status, body)) = failure {
        return text(status, &body);
    }
    let q = Query::parse(&raw_query);
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if segs.first() != Some(&"v1") {
        return empty(404);
    }
    let rest = &segs[1..];
    if let ["client", "allocation", alloc_id, "exec"] = rest {
        if method != Method::GET {
            return text(405, "Invalid method");
        }
        let alloc_id = alloc_id.to_string();
        return exec::handle(shared, parts, q, alloc_id).await;
    }
    let secret = header_secret(&shared, &parts.headers);
    route(&shared, &method, rest, &q, secret.as_deref(), &body).await
}

fn empty(status: u16) -> Response {
    Response::builder()
        .status(status)
        .body(Body::empty())
        .unwrap()
}

fn parse_body(body: &[u8]) -> Result<Value, Response> {
    if body.is_empty() {
        return Err(text(400, "Request body is empty"));
    }
    serde_json::from_slice(body).map_err(|e| text(400, &go_json_error(body, &e)))
}

/// Approximates Go `encoding/json` error texts for the common cases.
pub fn go_json_error(input: &[u8], e: &serde_json::Error) -> String {
    let s = String::from_utf8_lossy(input);
    let first = s.trim_start().chars().next();
    match first {
        None => "unexpected end of JSON input".into(),
        Some(c) if !matches!(c, '{' | '[' | '"' | '-' | '0'..='9' | 't' | 'f' | 'n') => {
            format!("invalid character '{c}' looking for beginning of value")
        }
        _ if e.is_eof() => "unexpected EOF".into(),
        _ => format!("invalid character in JSON input: {e}"),
    }
}

struct Blocking {
    index: u64,
    wait: Duration,
}

fn blocking_params(shared: &Shared, q: &Query) -> Result<Blocking, Response> {
    let index = match q.get("index") {
        None | Some("") => 0,
        Some(v) => v.parse::<u64>().map_err(|_| text(400, "Invalid index"))?,
    };
    let wait = match q.get("wait") {
        None | Some("") => shared.config.timings.default_blocking_wait,
        Some(v) => {
            let ns = hcl::go_duration_nanos(v).ok_or_else(|| text(400, "Invalid wait time"))?;
            Duration::from_nanos(ns.max(0) as u64)
        }
    };
    let wait = wait.min(shared.config.timings.max_blocking_wait);
    Ok(Blocking { index, wait })
}

/// Runs a read as a blocking query: answers at once when `index` is 0 or older than the
/// result, otherwise waits for a write (or the wait plus jitter) and runs it again.
async fn blocking_read<F>(shared: &Shared, q: &Query, mut f: F) -> Response
where
    F: FnMut(&State) -> (u64, Result<Value, ApiError>),
{
    let params = match blocking_params(shared, q) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let pretty = q.has("pretty");
    let jitter_max = params.wait.as_nanos() as u64 / 16;
    let jitter = if jitter_max > 0 {
        rand::random::<u64>() % jitter_max
    } else {
        0
    };
    let deadline = tokio::time::Instant::now() + params.wait + Duration::from_nanos(jitter);
    let mut rx = shared.index_tx.subscribe();
    loop {
        rx.borrow_and_update();
        let (idx, res) = shared.read(&mut f);
        if params.index == 0
            || idx > params.index
            || res.is_err()
            || tokio::time::Instant::now() >= deadline
        {
            return page(q, idx, res, pretty);
        }
        tokio::select! {
            r = rx.changed() => { if r.is_err() { return page(q, idx, res, pretty); } }
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// Paging on list endpoints: `per_page`, `next_token` (the ID to start from), `reverse=true`;
/// `X-Nomad-Nexttoken` only when more pages exist.
fn page(q: &Query, idx: u64, res: Result<Value, ApiError>, pretty: bool) -> Response {
    let per_page = match q.get("per_page") {
        None | Some("") => 0,
        Some(v) => match v.parse::<usize>() {
            Ok(n) => n,
            Err(_) => return text(400, "Invalid per_page"),
        },
    };
    let reverse = q.bool("reverse").unwrap_or(false);
    let Ok(Value::Array(mut items)) = res else {
        return read_reply(idx, res, pretty);
    };
    if reverse {
        items.reverse();
    }
    if let Some(tok) = q.get("next_token").filter(|t| !t.is_empty()) {
        let start = items
            .iter()
            .position(|i| {
                let id = i["ID"].as_str().unwrap_or("");
                if reverse { id <= tok } else { id >= tok }
            })
            .unwrap_or(items.len());
        items.drain(..start);
    }
    let mut next = None;
    if per_page > 0 && items.len() > per_page {
        next = items[per_page]["ID"].as_str().map(str::to_string);
        items.truncate(per_page);
    }
    let mut r = read_reply(idx, Ok(Value::Array(items)), pretty);
    if let Some(n) = next
        && let Ok(v) = n.parse()
    {
        r.headers_mut().insert("X-Nomad-Nexttoken", v);
    }
    r
}

fn check_region(shared: &Shared, q: &Query) -> Result<(), Response> {
    match q.get("region") {
        Some(r) if !r.is_empty() && r != shared.config.region => {
            Err(text(500, "No path to region"))
        }
        _ => Ok(()),
    }
}

async fn route(
    shared: &Arc<Shared>,
    method: &Method,
    rest: &[&str],
    q: &Query,
    secret: Option<&str>,
    body: &[u8],
) -> Response {
    let is_get = method == Method::GET;
    let put = method == Method::PUT || method == Method::POST;
    let pretty = q.has("pretty");
    let cfg = &shared.config;
    let v11 = cfg.profile.is_v1_1();
    macro_rules! ident {
        () => {
            match identity(shared, secret) {
                Ok(i) => i,
                Err(r) => return r,
            }
        };
    }
    macro_rules! region {
        () => {
            if let Err(r) = check_region(shared, q) {
                return r;
            }
        };
    }
    match rest {
        ["status", "leader"] if is_get => json_body(&json!("127.0.0.1:4647"), pretty),
        ["status", "peers"] if is_get => json_body(&json!(["127.0.0.1:4647"]), pretty),
        ["regions"] if is_get => json_body(&json!([cfg.region]), pretty),
        ["agent", "self"] if is_get => {
            let id = ident!();
            if !id.allow_agent_read() {
                return denied();
            }
            json_body(&agent_self(shared), pretty)
        }
        ["acl", "token", "self"] if is_get => token_self(shared, secret, pretty),
        ["acl", "bootstrap"] if put => {
            if !cfg.acl_enabled {
                return text(400, "ACL support disabled");
            }
            match bootstrap(shared) {
                Ok(secret) => {
                    let (tok, idx) = shared.read(|st| {
                        (
                            st.tokens
                                .values()
                                .find(|t| t.secret_id == secret)
                                .cloned()
                                .unwrap(),
                            st.tables.acl,
                        )
                    });
                    write_reply(idx, &tok.render(cfg.profile), pretty)
                }
                Err(_) => {
                    let idx = shared.read(|st| st.acl_bootstrapped.unwrap_or(0));
                    text(
                        400,
                        &format!("ACL bootstrap already done (reset index: {idx})"),
                    )
                }
            }
        }
        ["acl", "policy", name] if put => {
            if !cfg.acl_enabled {
                return text(400, "ACL support disabled");
            }
            if !ident!().is_management() {
                return denied();
            }
            let b = match parse_body(body) {
                Ok(b) => b,
                Err(r) => return r,
            };
            let rules = get_str(&b, "Rules");
            match put_policy(shared, name, &get_str(&b, "Description"), &rules) {
                Ok(idx) => {
                    let mut r = empty(200);
                    r.headers_mut()
                        .insert("X-Nomad-Index", idx.to_string().parse().unwrap());
                    r
                }
                Err(e) => text(400, &format!("Policy rules failed to parse: {e}")),
            }
        }
        ["acl", "policy", name] if is_get => {
            // A management token, or a token the policy is attached to, may read it.
            let attached = shared.read(|st| {
                secret.is_some_and(|s| {
                    st.tokens
                        .values()
                        .any(|t| t.secret_id == s && t.policies.iter().any(|p| p == name))
                })
            });
            if !attached && !ident!().is_management() {
                return denied();
            }
            let found = shared.read(|st| {
                (
                    st.tables.acl,
                    st.policies.get(*name).map(|p| {
                        json!({"Name": p.name, "Description": p.description, "Rules": p.rules,
                               "CreateIndex": p.create_index, "ModifyIndex": p.modify_index})
                    }),
                )
            });
            read_reply(
                found.0,
                found.1.ok_or(ApiError(404, "ACL policy not found".into())),
                pretty,
            )
        }
        ["acl", "token"] if put => {
            if !cfg.acl_enabled {
                return text(400, "ACL support disabled");
            }
            if !ident!().is_management() {
                return denied();
            }
            let b = match parse_body(body) {
                Ok(b) => b,
                Err(r) => return r,
            };
            let kind = match get_str(&b, "Type").as_str() {
                "" => "client".to_string(),
                k => k.to_string(),
            };
            let policies: Vec<String> = get(&b, "Policies")
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p.as_str().map(str::to_string))
                .collect();
            if kind == "client" && policies.is_empty() {
                return text(
                    500,
                    "1 error occurred:\n\t* client token missing policies\n\n",
                );
            }
            let mut tok = create_token(shared, &get_str(&b, "Name"), &kind, &policies);
            tok.global = get(&b, "Global").as_bool().unwrap_or(false);
            shared.write(|st| st.tokens.insert(tok.accessor_id.clone(), tok.clone()));
            write_reply(tok.create_index, &tok.render(cfg.profile), pretty)
        }
        ["namespaces"] if is_get => {
            let id = ident!();
            let profile = cfg.profile;
            blocking_read(shared, q, |st| {
                let list: Vec<Value> = st
                    .namespaces
                    .iter()
                    .filter(|(n, _, _)| {
                        id.is_management()
                            || id.allow_ns(n, "list-jobs")
                            || id.allow_ns(n, "read-job")
                    })
                    .map(|(n, d, i)| namespace_json(n, d, *i, profile))
                    .collect();
                (st.tables.namespaces, Ok(json!(list)))
            })
            .await
        }
        ["namespace", name] if is_get => {
            let profile = cfg.profile;
            blocking_read(shared, q, |st| {
                let found = st.namespaces.iter().find(|(n, _, _)| n == name);
                (
                    st.tables.namespaces,
                    found
                        .map(|(n, d, i)| namespace_json(n, d, *i, profile))
                        .ok_or(ApiError(404, "namespace not found".into())),
                )
            })
            .await
        }
        ["nodes"] if is_get => {
            region!();
            if !ident!().allow_node_read() {
                return denied();
            }
            blocking_read(shared, q, |st| {
                (st.tables.nodes, Ok(json!(st.node_stubs(cfg))))
            })
            .await
        }
        ["node", id] if is_get => {
            region!();
            if !ident!().allow_node_read() {
                return denied();
            }
            let addr = shared.http_addr.lock().unwrap().clone();
            blocking_read(shared, q, |st| {
                let Some(mut n) = st.node_stub_by_id(cfg, id) else {
                    return (st.tables.nodes, Err(ApiError(404, "node not found".into())));
                };
                n["HTTPAddr"] = json!(addr);
                (st.tables.nodes, Ok(n))
            })
            .await
        }
        ["jobs"] if is_get => {
            region!();
            let id = ident!();
            let ns = q.namespace();
            if ns != "*" && !id.allow_ns(&ns, "list-jobs") {
                return denied();
            }
            let meta = q.bool("meta").unwrap_or(false);
            let prefix = q.get("prefix").unwrap_or("").to_string();
            blocking_read(shared, q, |st| {
                let list: Vec<Value> = st
                    .jobs
                    .values()
                    .filter(|j| {
                        (ns == "*" && id.allow_ns(&j.namespace, "list-jobs")) || j.namespace == ns
                    })
                    .filter(|j| j.id.starts_with(&prefix))
                    .map(|j| st.job_stub(j, cfg.profile, meta))
                    .collect();
                // Status and summaries follow the allocations: wake on either table.
                (st.tables.jobs.max(st.tables.allocs), Ok(json!(list)))
            })
            .await
        }
        ["jobs"] if put => {
            region!();
            register(shared, q, secret, body, None, pretty)
        }
        ["jobs", "parse"] if put => {
            let id = ident!();
            let ns = q.namespace();
            if !id.allow_ns(&ns, "parse-job") && !id.allow_ns(&ns, "submit-job") {
                return denied();
            }
            let b = match parse_body(body) {
                Ok(b) => b,
                Err(r) => return r,
            };
            let src = get_str(&b, "JobHCL");
            if src.trim().is_empty() {
                return text(400, "Job spec is empty");
            }
            match hcl::job_from_hcl(&src) {
                Ok(mut job) => {
                    if get(&b, "Canonicalize").as_bool().unwrap_or(false) {
                        hcl::canonicalize_api_job(&mut job);
                    }
                    json_body(&job, pretty)
                }
                Err(e) => {
                    if v11 {
                        text(400, &e.0)
                    } else {
                        text(400, &format!("Failed to parse job: {}", e.0))
                    }
                }
            }
        }
        ["validate", "job"] if put => {
            let b = match parse_body(body) {
                Ok(b) => b,
                Err(r) => return r,
            };
            let res = super::jobspec::canonicalize(get(&b, "Job"), cfg);
            let (errors, err) = match res {
                Ok(_) => (Value::Null, String::new()),
                Err(
                    super::jobspec::RegisterError::BadRequest(m)
                    | super::jobspec::RegisterError::Invalid(m),
                ) => (json!([m.clone()]), m),
            };
            json_body(
                &json!({"DriverConfigValidated": true, "ValidationErrors": errors, "Error": err, "Warnings": ""}),
                pretty,
            )
        }
        ["job", job_id] if is_get => {
            region!();
            let id = ident!();
            let ns = q.namespace();
            if !id.allow_ns(&ns, "read-job") {
                return denied();
            }
            blocking_read(shared, q, |st| {
                let res = st
                    .job(&ns, job_id)
                    .map(|j| st.job_full(j))
                    .ok_or(ApiError(404, "job not found".into()));
                (st.tables.jobs.max(st.tables.allocs), res)
            })
            .await
        }
        ["job", job_id] if put => {
            region!();
            register(shared, q, secret, body, Some(job_id), pretty)
        }
        ["job", job_id] if method == Method::DELETE => {
            region!();
            let id = ident!();
            let ns = q.namespace();
            if !id.allow_ns(&ns, "submit-job") {
                return denied();
            }
            let purge = match q.bool("purge") {
                Ok(p) => p,
                Err(e) => return error_response(e),
            };
            if let Err(e) = q.bool("global").and(q.bool("no_shutdown_delay")) {
                return error_response(e);
            }
            let reply = scheduler::deregister(shared, &ns, job_id, purge);
            let idx = reply["Index"].as_u64().unwrap_or(0);
            write_reply(idx, &reply, pretty)
        }
        ["job", job_id, "allocations"] if is_get => {
            region!();
            let id = ident!();
            let ns = q.namespace();
            if !id.allow_ns(&ns, "read-job") {
                return denied();
            }
            let all = q.bool("all").unwrap_or(false);
            let profile = cfg.profile;
            blocking_read(shared, q, |st| {
                let current = st.job(&ns, job_id).map(|j| j.create_index);
                let list: Vec<Value> = st
                    .job_allocs(&ns, job_id)
                    .into_iter()
                    .filter(|a| all || current.is_none_or(|c| a.job_create_index == c))
                    .map(|a| a.stub(profile))
                    .collect();
                (st.tables.allocs, Ok(json!(list)))
            })
            .await
        }
        ["job", job_id, "summary"] if is_get => {
            region!();
            let id = ident!();
            let ns = q.namespace();
            if !id.allow_ns(&ns, "read-job") {
                return denied();
            }
            blocking_read(shared, q, |st| {
                let res = st
                    .job(&ns, job_id)
                    .map(|j| st.summary(j, cfg.profile))
                    .ok_or(ApiError(404, "job not found".into()));
                (st.tables.jobs.max(st.tables.allocs), res)
            })
            .await
        }
        ["job", job_id, "evaluations"] if is_get => {
            let id = ident!();
            let ns = q.namespace();
            if !id.allow_ns(&ns, "read-job") {
                return denied();
            }
            blocking_read(shared, q, |st| {
                let list: Vec<Value> = st
                    .evals
                    .values()
                    .filter(|e| e.namespace == ns && e.job_id == *job_id)
                    .map(|e| e.render())
                    .collect();
                (st.tables.evals, Ok(json!(list)))
            })
            .await
        }
        ["allocations"] if is_get => {
            let id = ident!();
            let ns = q.namespace();
            let profile = cfg.profile;
            let prefix = q.get("prefix").unwrap_or("").to_string();
            blocking_read(shared, q, |st| {
                let list: Vec<Value> = st
                    .allocs
                    .values()
                    .filter(|a| {
                        (ns == "*" || a.namespace == ns) && id.allow_ns(&a.namespace, "read-job")
                    })
                    .filter(|a| a.id.starts_with(&prefix))
                    .map(|a| a.stub(profile))
                    .collect();
                (st.tables.allocs, Ok(json!(list)))
            })
            .await
        }
        ["allocation", alloc_id] if is_get => {
            region!();
            let id = ident!();
            let profile = cfg.profile;
            let dc = cfg.datacenter.clone();
            let allowed = shared.read(|st| {
                st.allocs
                    .get(*alloc_id)
                    .is_none_or(|a| id.allow_ns(&a.namespace, "read-job"))
            });
            if !allowed {
                return denied();
            }
            blocking_read(shared, q, |st| {
                let res = st
                    .allocs
                    .get(*alloc_id)
                    .map(|a| a.full(profile, &dc))
                    .ok_or(ApiError(404, "alloc not found".into()));
                (st.tables.allocs, res)
            })
            .await
        }
        ["allocation", alloc_id, "stop"] if put => {
            let id = ident!();
            let ns = shared.read(|st| st.allocs.get(*alloc_id).map(|a| a.namespace.clone()));
            let Some(ns) = ns else {
                return text(404, "alloc not found");
            };
            if !id.allow_ns(&ns, "alloc-lifecycle") {
                return denied();
            }
            let reply = stop_alloc(shared, alloc_id);
            let idx = reply["Index"].as_u64().unwrap_or(0);
            write_reply(idx, &reply, pretty)
        }
        ["evaluation", eval_id] if is_get => {
            region!();
            let id = ident!();
            let allowed = shared.read(|st| {
                st.evals
                    .get(*eval_id)
                    .is_none_or(|e| id.allow_ns(&e.namespace, "read-job"))
            });
            if !allowed {
                return denied();
            }
            blocking_read(shared, q, |st| {
                let res = st
                    .evals
                    .get(*eval_id)
                    .map(|e| e.render())
                    .ok_or(ApiError(404, "eval not found".into()));
                (st.tables.evals, res)
            })
            .await
        }
        ["evaluations"] if is_get => {
            let id = ident!();
            blocking_read(shared, q, |st| {
                let list: Vec<Value> = st
                    .evals
                    .values()
                    .filter(|e| id.allow_ns(&e.namespace, "read-job"))
                    .map(|e| e.render())
                    .collect();
                (st.tables.evals, Ok(json!(list)))
            })
            .await
        }
        // Known routes with another method.
        ["status", "leader" | "peers"]
        | ["regions"]
        | ["agent", "self"]
        | ["acl", ..]
        | ["namespaces"]
        | ["namespace", _]
        | ["nodes"]
        | ["node", _]
        | ["jobs"]
        | ["jobs", "parse"]
        | ["validate", "job"]
        | ["job", _]
        | ["job", _, "allocations" | "summary" | "evaluations"]
        | ["allocations"]
        | ["allocation", _]
        | ["allocation", _, "stop"]
        | ["evaluation", _]
        | ["evaluations"] => text(405, "Invalid method"),
        _ => empty(404),
    }
}

fn get_str(v: &Value, key: &str) -> String {
    get(v, key).as_str().unwrap_or("").to_string()
}

fn register(
    shared: &Arc<Shared>,
    q: &Query,
    secret: Option<&str>,
    body: &[u8],
    path_id: Option<&str>,
    pretty: bool,
) -> Response {
    let b = match parse_body(body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    // The header wins; the body's SecretID is a fallback.
    let body_secret = get_str(&b, "SecretID");
    let secret = secret
        .map(str::to_string)
        .or((!body_secret.is_empty()).then_some(body_secret));
    let id = match identity(shared, secret.as_deref()) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let ns = q
        .get("namespace")
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .or_else(|| Some(get_str(&b, "Namespace")).filter(|s| !s.is_empty()))
        .or_else(|| Some(get_str(get(&b, "Job"), "Namespace")).filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "default".into());
    if !id.allow_ns(&ns, "submit-job") {
        return denied();
    }
    match scheduler::register(shared, &b, q.get("namespace"), q.get("region"), path_id) {
        Ok(reply) => {
            let idx = reply["Index"].as_u64().unwrap_or(0);
            write_reply(idx, &reply, pretty)
        }
        Err(e) => error_response(e),
    }
}

fn stop_alloc(shared: &Arc<Shared>, alloc_id: &str) -> Value {
    let (idx, eval_id) = shared.write(|st| {
        let idx = st.bump();
        let mut eval_id = String::new();
        if let Some(a) = st.allocs.get_mut(alloc_id) {
            a.desired_status = "stop".into();
            a.desired_description = "alloc was stopped by user".into();
            a.modify_index = idx;
            eval_id = new_id();
        }
        st.tables.allocs = idx;
        (idx, eval_id)
    });
    shared.kill_alloc(alloc_id, scheduler::KillReason::Stop);
    json!({"EvalID": eval_id, "Index": idx})
}

fn namespace_json(name: &str, desc: &str, idx: u64, profile: super::Profile) -> Value {
    let mut v = json!({"Name": name, "Description": desc, "Quota": "", "Hash": "C7UbjDwBK0dK8wQq7Izg7SJIzaV+lIo2X7wRtzY3pSw=",
                       "CreateIndex": idx, "ModifyIndex": idx});
    if profile == super::Profile::Modern {
        v["Capabilities"] = Value::Null;
        v["NodePoolConfiguration"] = Value::Null;
        v["Meta"] = Value::Null;
    }
    v
}

fn token_self(shared: &Shared, secret: Option<&str>, pretty: bool) -> Response {
    let cfg = &shared.config;
    let v11 = cfg.profile.is_v1_1();
    if !cfg.acl_enabled {
        if v11 {
            return text(400, "ACL support disabled");
        }
        let idx = shared.read(|st| st.tables.acl);
        let tok = json!({"AccessorID": "acls-disabled", "SecretID": "acls-disabled", "Name": "ACLs disabled",
                         "Type": "client", "Policies": null, "Roles": null, "Global": false, "Hash": null,
                         "CreateTime": "0001-01-01T00:00:00Z", "CreateIndex": 0, "ModifyIndex": 0});
        return read_reply(idx, Ok(tok), pretty);
    }
    let (idx, found) = shared.read(|st| {
        (
            st.tables.acl,
            secret.and_then(|s| st.tokens.values().find(|t| t.secret_id == s).cloned()),
        )
    });
    match (secret, found) {
        (_, Some(t)) => read_reply(idx, Ok(t.render(cfg.profile)), pretty),
        (None, None) if v11 => text(500, "acl token lookup failed: missing secret id"),
        (None, None) => {
            let tok = json!({"AccessorID": "anonymous", "SecretID": "anonymous", "Name": "Anonymous Token",
                             "Type": "client", "Policies": ["anonymous"], "Roles": null, "Global": false,
                             "Hash": null, "CreateTime": "0001-01-01T00:00:00Z", "CreateIndex": 0, "ModifyIndex": 0});
            read_reply(idx, Ok(tok), pretty)
        }
        (Some(_), None) if v11 => read_reply(
            idx,
            Err(ApiError(404, "ACL token not found".into())),
            pretty,
        ),
        (Some(_), None) => denied(),
    }
}

fn agent_self(shared: &Shared) -> Value {
    let cfg = &shared.config;
    let (node_id, leader) = shared.read(|st| (st.node_id.clone(), st.node_status == "ready"));
    let port = shared
        .http_addr
        .lock()
        .unwrap()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse::<u64>().ok())
        .unwrap_or(4646);
    let version = cfg.profile.version();
    let config = json!({
            "ACL": {"Enabled": cfg.acl_enabled, "PolicyTTL": 30_000_000_000i64, "ReplicationToken": "", "TokenTTL": 30_000_000_000i64},
            "Addresses": {"HTTP": "127.0.0.1", "RPC": "127.0.0.1", "Serf": "127.0.0.1"},
            "AdvertiseAddrs": {"HTTP": format!("127.0.0.1:{port}"), "RPC": "127.0.0.1:4647", "Serf": "127.0.0.1:4648"},
            "Audit": {"Enabled": null, "Filters": null, "Sinks": null},
            "Autopilot": {},
            "BindAddr": "127.0.0.1",
            "Client": {"Enabled": true, "DisableRemoteExec": cfg.disable_remote_exec, "NodeClass": "",
                       "Options": {"driver.raw_exec.enable": "true"}, "Meta": {}, "Servers": null,
                       "MaxKillTimeout": "30s"},
            "Consul": {},
            "DataDir": shared.data_dir.display().to_string(),
            "Datacenter": cfg.datacenter,
            "DevMode": true,
            "DisableAnonymousSignature": true,
            "DisableUpdateCheck": true,
            "EnableDebug": true,
            "EnableSyslog": false,
            "Files": null,
            "HTTPAPIResponseHeaders": {},
            "LeaveOnInt": false,
            "LeaveOnTerm": false,
            "Limits": {},
            "Version": {"Revision": format!("v{version}-test"), "Version": version, "VersionMetadata": "", "VersionPrerelease": ""},
    });
    let mut config = config;
    let more = json!({
            "LogFile": "",
            "LogJson": false,
            "LogLevel": "DEBUG",
            "LogRotateBytes": 0,
            "LogRotateDuration": "",
            "LogRotateMaxFiles": 0,
            "NodeName": cfg.node_name,
            "PluginDir": shared.data_dir.join("plugins").display().to_string(),
            "Plugins": null,
            "Ports": {"HTTP": port, "RPC": 4647, "Serf": 4648},
            "Region": cfg.region,
            "Sentinel": {},
            "Server": {"Enabled": true, "BootstrapExpect": 1},
            "SyslogFacility": "LOCAL0",
            "TLSConfig": {},
            "Telemetry": {},
            "Vault": {},
    });
    for (k, v) in more.as_object().unwrap() {
        config[k] = v.clone();
    }
    json!({
        "config": config,
        "member": {
            "Addr": "127.0.0.1", "DelegateCur": 4, "DelegateMax": 5, "DelegateMin": 2,
            "Name": format!("{}.{}", cfg.node_name, cfg.region), "Port": 4648, "ProtocolCur": 2,
            "ProtocolMax": 5, "ProtocolMin": 1, "Status": "alive",
            "Tags": {"build": version, "region": cfg.region, "dc": cfg.datacenter, "role": "nomad",
                     "id": node_id, "port": "4647", "rpc_addr": "127.0.0.1", "vsn": "1", "mvn": "1",
                     "raft_vsn": "2", "bootstrap": "1", "expect": "1"},
        },
        "stats": {
            "nomad": {"server": "true", "leader": leader.to_string(), "leader_addr": "127.0.0.1:4647",
                      "bootstrap": "true", "known_regions": "1"},
            "raft": {"state": "Leader", "num_peers": "0", "last_contact": "0", "applied_index": "1",
                     "commit_index": "1", "term": "2"},
            "serf": {"members": "1", "failed": "0", "left": "0", "health_score": "0", "encrypted": "false"},
            "runtime": {"version": "go1.16", "max_procs": "2", "goroutines": "100", "cpu_count": "2",
                        "kernel.name": "linux", "arch": "amd64"},
            "vault": {"tracked_for_revoked": "0", "token_ttl": "0s", "token_expire_time": ""},
            "client": {"node_id": node_id, "known_servers": "127.0.0.1:4647", "num_allocations": "0",
                       "last_heartbeat": "0s", "heartbeat_ttl": "10s"},
        },
    })
}
