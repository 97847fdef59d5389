//! The trust gate with the real binary: a repository's `.leasebox.toml` sets its own keys
//! freely, execution boundaries only after `leasebox trust` (until the file changes), and
//! user-only keys never; and, from the Nomad test server's request log, a repository that tries
//! to redirect the cluster never gets a request, let alone the token.

use std::process::Output;

use crate::support::nomad::{NomadServer, RecordedRequest};
use crate::support::{Scratch, describe};

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A git repository whose `.leasebox.toml` is `text`.
fn repo_with(text: &str) -> Scratch {
    let s = Scratch::new();
    s.write("hello.txt", "hello\n");
    s.write(".leasebox.toml", text);
    s.commit();
    s
}

/// The repository root as the binary sees it (symlinks resolved).
fn root(s: &Scratch) -> String {
    s.repo().canonicalize().unwrap().display().to_string()
}

/// The `--explain` row of one key.
fn explain_row(s: &Scratch, key: &str) -> String {
    let out = s.run(&["config", "--explain"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    stdout(&out)
        .lines()
        .find(|l| l.starts_with(&format!("{key} ")))
        .unwrap_or_else(|| panic!("no row for {key}: {}", describe(&out)))
        .to_owned()
}

const NAMESPACE: &str =
    "# the team's CI settings\n[nomad]\nnamespace = \"ci\"\nimage = \"rust:1.88\"\n";

#[test]
fn an_untrusted_boundary_is_refused_until_trusted() {
    let s = repo_with(NAMESPACE);
    for args in [&["config", "--explain"][..], &["run", "--", "true"][..]] {
        let out = s.run(args);
        assert_eq!(code(&out), 78, "{args:?}: {}", describe(&out));
        let err = stderr(&out);
        assert!(err.contains("`nomad.namespace`"), "{err}");
        assert!(err.contains(".leasebox.toml:3"), "{err}");
        assert!(err.contains("never been trusted"), "{err}");
        assert!(err.contains("`leasebox trust "), "{err}");
    }
    let out = s.run(&["config", "--explain", "--json"]);
    assert_eq!(code(&out), 78);

    let out = s.run(&["trust"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let shown = stdout(&out);
    assert!(shown.contains(&format!("trusted {}", root(&s))), "{shown}");
    assert!(shown.contains("execution boundaries it sets"), "{shown}");
    assert!(shown.contains("nomad.namespace = \"ci\""), "{shown}");
    assert!(shown.contains(".leasebox.toml:3)"), "{shown}");
    assert!(shown.contains("nomad.image = \"rust:1.88\""), "{shown}");

    let explained = stdout(&s.run(&["config", "--explain"]));
    assert!(
        explained.contains(".leasebox.toml: trusted: its execution boundaries apply"),
        "{explained}"
    );
    let row = explain_row(&s, "nomad.namespace");
    assert!(row.contains("\"ci\""), "{row}");
    assert!(row.contains(".leasebox.toml:3"), "{row}");
    assert!(row.contains("boundary"), "{row}");
    let row = explain_row(&s, "nomad.image");
    assert!(row.contains(".leasebox.toml:4"), "{row}");
    let out = s.run(&["config", "--explain", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["nomad.namespace"]["source"]["kind"], "repository");
    assert_eq!(json["nomad.namespace"]["source"]["line"], 3);

    // The local backend runs with the trusted file.
    let out = s.run(&["run", "--", "cat", "hello.txt"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
}

#[test]
fn editing_the_file_lapses_the_trust() {
    let s = repo_with(NAMESPACE);
    assert_eq!(code(&s.run(&["trust"])), 0);
    assert_eq!(code(&s.run(&["config"])), 0);
    s.write(".leasebox.toml", &NAMESPACE.replace("\"ci\"", "\"prod\""));
    let out = s.run(&["config", "--explain"]);
    assert_eq!(code(&out), 78, "{}", describe(&out));
    let err = stderr(&out);
    assert!(err.contains("changed since you trusted it"), "{err}");
    assert!(err.contains("leasebox trust"), "{err}");

    let out = s.run(&["trust", "--list", "--json"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["state"], "changed", "{list}");

    // Trusting again approves the new content.
    assert_eq!(code(&s.run(&["trust"])), 0);
    assert!(explain_row(&s, "nomad.namespace").contains("\"prod\""));
}

#[test]
fn revoke_and_list() {
    let a = repo_with(NAMESPACE);
    let out = a.run(&["trust", "--list", "--json"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(),
        serde_json::json!([])
    );
    assert!(stdout(&a.run(&["trust", "--list"])).contains("no repository is trusted"));

    assert_eq!(code(&a.run(&["trust"])), 0);
    let out = a.run(&["trust", "--list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let entries = list.as_array().unwrap();
    assert_eq!(entries.len(), 1, "{list}");
    assert_eq!(entries[0]["root"], root(&a).as_str());
    assert_eq!(entries[0]["state"], "trusted");
    let sha = entries[0]["sha256"].as_str().unwrap();
    assert_eq!(sha.len(), 64);
    assert!(entries[0]["trusted_at"].as_u64().unwrap() > 1_600_000_000);
    let text = stdout(&a.run(&["trust", "--list"]));
    assert!(
        text.contains(&root(&a)) && text.contains("trusted"),
        "{text}"
    );

    // The store lives in the state dir.
    let store: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.state().join("trust.json")).unwrap()).unwrap();
    assert_eq!(store["version"], 2);
    assert_eq!(store["repositories"][0]["sha256"], sha);

    let out = a.run(&["trust", "--revoke"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(
        stdout(&out).contains("revoked the trust of"),
        "{}",
        describe(&out)
    );
    assert_eq!(code(&a.run(&["config"])), 78);
    let out = a.run(&["trust", "--revoke", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["revoked"], false);
    assert!(stdout(&a.run(&["trust", "--revoke"])).contains("was not trusted"));
}

#[test]
fn trust_takes_a_path_and_says_when_there_is_nothing_to_trust() {
    let s = repo_with(NAMESPACE);
    std::fs::create_dir_all(s.repo().join("sub/dir")).unwrap();
    // From elsewhere, naming a directory inside the repository: its root is trusted.
    let out = s
        .leasebox(&["trust", "repo/sub/dir"])
        .current_dir(s.path())
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(stdout(&out).contains(&format!("trusted {}", root(&s))));
    assert_eq!(code(&s.run(&["config"])), 0);

    let bare = Scratch::new();
    bare.write("x", "");
    let out = bare.run(&["trust"]);
    assert_eq!(code(&out), 78, "{}", describe(&out));
    assert!(
        stderr(&out).contains("there is no `.leasebox.toml` in"),
        "{}",
        describe(&out)
    );
    assert!(!bare.state().join("trust.json").exists());
}

#[test]
fn own_keys_need_no_trust_but_stay_within_the_users_limits() {
    let s = repo_with("[nomad]\nimage = \"node:22\"\ncpu = 9000\n");
    let out = s.run(&["config"]);
    assert_eq!(code(&out), 78, "{}", describe(&out));
    let err = stderr(&out);
    assert!(err.contains("`nomad.cpu = 9000`"), "{err}");
    assert!(err.contains(".leasebox.toml:3"), "{err}");
    assert!(err.contains("`max_cpu = 8000` (set by default)"), "{err}");
    assert!(err.contains("LEASEBOX_MAX_CPU"), "{err}");
    let out = s
        .leasebox(&["config", "--explain"])
        .env("LEASEBOX_MAX_CPU", "10000")
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let text = stdout(&out);
    assert!(text.contains(".leasebox.toml:2"), "{text}");
}

/// A repository setting `nomad.address`: refused, with the same message, trusted (its hash
/// pinned by hand, since `leasebox trust` refuses such a file) or not, token set or not.
#[test]
fn a_repository_can_never_set_the_address() {
    let s = repo_with("[nomad]\naddress = \"http://127.0.0.1:9\"\n");
    let out = s.run(&["trust"]);
    assert_eq!(code(&out), 78, "trust refuses the file: {}", describe(&out));
    assert!(stderr(&out).contains("user-only"));
    let user_config = s.path().join("config/leasebox/config.toml");
    assert!(
        stderr(&out).contains(&user_config.display().to_string()),
        "names the user config: {}",
        describe(&out)
    );

    let mut seen = Vec::new();
    for pinned in [false, true] {
        if pinned {
            let bytes = std::fs::read(s.repo().join(".leasebox.toml")).unwrap();
            let sha = {
                use sha2::Digest;
                hex::encode(sha2::Sha256::digest(&bytes))
            };
            let doc = serde_json::json!({"version": 1, "repositories": [
                {"root": root(&s), "sha256": sha, "trusted_at": 0}]});
            std::fs::write(s.state().join("trust.json"), doc.to_string()).unwrap();
        }
        for token in [None, Some("s3cr3t-t0k3n")] {
            let mut cmd = s.leasebox(&["run", "--", "true"]);
            if let Some(t) = token {
                cmd.env("NOMAD_TOKEN", t)
                    .env("NOMAD_ADDR", "http://127.0.0.1:1");
            }
            let out = cmd.output().unwrap();
            assert_eq!(code(&out), 78, "{}", describe(&out));
            let err = stderr(&out);
            assert!(err.contains("`nomad.address`"), "{err}");
            assert!(
                err.contains(".leasebox.toml:2 is a user-only setting"),
                "{err}"
            );
            assert!(err.contains("LEASEBOX_NOMAD_ADDR="), "{err}");
            assert!(err.contains("--nomad-address"), "{err}");
            assert!(err.contains("config.toml"), "{err}");
            assert!(!err.contains("s3cr3t"), "{err}");
            seen.push(err);
        }
    }
    seen.dedup();
    assert_eq!(
        seen.len(),
        1,
        "one message whatever the trust and token: {seen:#?}"
    );
}

fn carries_token_only_in_its_header(r: &RecordedRequest, token: &str) {
    assert_eq!(
        r.header("X-Nomad-Token"),
        Some(token),
        "{} {} without the token header",
        r.method,
        r.path
    );
    for (name, value) in &r.headers {
        if !name.eq_ignore_ascii_case("X-Nomad-Token") {
            assert!(
                !value.contains(token),
                "token in header {name} of {}",
                r.path
            );
        }
    }
    assert!(!r.path.contains(token), "token in the path {}", r.path);
    assert!(!r.query.contains(token), "token in the query of {}", r.path);
    assert!(
        !String::from_utf8_lossy(&r.body).contains(token),
        "token in the body of {} {}",
        r.method,
        r.path
    );
}

/// A repository trying to send the user's token to another cluster: leasebox never contacts
/// it, and the user's cluster gets the token only as `X-Nomad-Token`.
#[test]
fn a_repository_cannot_redirect_the_token() {
    let mine = NomadServer::builder().acl(true).start();
    let token = mine.management_token();
    let theirs = NomadServer::start_modern();
    let run = |s: &Scratch, args: &[&str]| {
        s.leasebox(args)
            .env("NOMAD_ADDR", mine.url())
            .env("NOMAD_TOKEN", &token)
            .env("LEASEBOX_NOMAD_DRIVER", "raw_exec")
            .output()
            .unwrap()
    };

    let hostile = format!(
        "[nomad]\nimage = \"rust:1.88\"\naddress = \"{}\"\n",
        theirs.url()
    );
    let s = repo_with(&hostile);
    for args in [
        &["run", "--", "true"][..],
        &["warmup"][..],
        &["list"][..],
        &["config", "--explain"][..],
    ] {
        let out = run(&s, args);
        assert_eq!(code(&out), 78, "{args:?}: {}", describe(&out));
        assert!(
            stderr(&out).contains("`nomad.address`"),
            "{}",
            describe(&out)
        );
        assert!(
            !describe(&out).contains(&token),
            "the token is never printed"
        );
    }
    // Trusting cannot help either: `leasebox trust` refuses the file.
    assert_eq!(code(&run(&s, &["trust"])), 78);
    assert_eq!(code(&run(&s, &["run", "--", "true"])), 78);
    assert!(
        theirs.requests().is_empty(),
        "the repository's cluster was contacted: {:?}",
        theirs.requests()
    );
    assert!(
        mine.requests().is_empty(),
        "a refused config contacts nobody: {:?}",
        mine.requests()
    );

    // A benign repository (its own keys only) runs on the user's cluster, token as the header.
    let s = repo_with("[nomad]\nimage = \"rust:1.88\"\ncpu = 500\n");
    let out = run(&s, &["run", "--", "cat", "hello.txt"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(stdout(&out), "hello\n");
    let requests = mine.requests();
    assert!(!requests.is_empty());
    for r in &requests {
        carries_token_only_in_its_header(r, &token);
    }
    let register = requests
        .iter()
        .find(|r| r.method == "PUT" && r.path == "/v1/jobs")
        .expect("a job registration");
    assert!(
        String::from_utf8_lossy(&register.body).contains("\"CPU\":500"),
        "the repository's cpu reached the job"
    );
    assert!(theirs.requests().is_empty(), "{:?}", theirs.requests());
}

// ----- a recipe's `lease{}` / `warmup{}`: own keys only, through the same config gate -----

/// A git repository with `recipes/r.lua` and, when given, a `.leasebox.toml`.
fn recipe_repo(toml: Option<&str>, recipe: &str) -> Scratch {
    let s = Scratch::new();
    s.write("hello.txt", "hello\n");
    s.write("recipes/r.lua", recipe);
    if let Some(toml) = toml {
        s.write(".leasebox.toml", toml);
    }
    s.commit();
    s
}

/// `leasebox run r --timing-json …` with extra environment; the output and the timing file.
fn run_r(s: &Scratch, extra: &[&str], env: &[(&str, &str)]) -> (Output, serde_json::Value) {
    let timing = s.path().join("timing.json");
    let _ = std::fs::remove_file(&timing);
    let mut args = vec!["run", "r", "--timing-json", timing.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = s
        .leasebox(&args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let json = std::fs::read_to_string(&timing)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null);
    (out, json)
}

fn assert_refused(out: &Output, timing: &serde_json::Value, needles: &[&str]) {
    assert_eq!(code(out), 78, "{}", describe(out));
    assert_eq!(timing["error_kind"], "trust_refused", "{}", describe(out));
    let err = stderr(out);
    for needle in needles {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
}

const BOUNDARY_RECIPES: [(&str, &str, &str); 2] = [
    (
        "local lb = require('leasebox')\n\nreturn lb.recipe {\n  lease = { namespace = 'prod' },\n  steps = { { 'never', 'touch never.txt' } },\n}\n",
        "`nomad.namespace`",
        "recipes/r.lua:3: recipe{}: lease:",
    ),
    (
        "local lb = require('leasebox')\nlocal box = lb.warmup { image = 'alpine:3', driver = 'raw_exec' }\nbox:exec('touch never.txt')\n",
        "`nomad.driver`",
        "recipes/r.lua:2: warmup:",
    ),
];

/// A recipe never sets an execution boundary: not in an untrusted repository, not in one whose
/// `.leasebox.toml` the user trusted (which may set that very key), not without a file.
#[test]
fn a_recipe_never_sets_an_execution_boundary_even_in_a_trusted_repository() {
    for (recipe, key, at) in BOUNDARY_RECIPES {
        for toml in [None, Some(NAMESPACE)] {
            let s = recipe_repo(toml, recipe);
            if toml.is_some() {
                let out = s.run(&["trust"]);
                assert_eq!(code(&out), 0, "{}", describe(&out));
            }
            let (out, timing) = run_r(&s, &[], &[]);
            assert_refused(
                &out,
                &timing,
                &[
                    at,
                    key,
                    "is an execution boundary",
                    "`.leasebox.toml`",
                    "`leasebox trust`",
                ],
            );
            assert!(!s.repo().join("never.txt").exists());
            assert!(
                !stderr(&out).contains("==> leased"),
                "refused before leasing: {}",
                describe(&out)
            );
        }
    }
}

/// A recipe setting the address or the token variable gets the user-only error — whatever the
/// token — and neither cluster is asked for anything.
#[test]
fn a_recipe_can_never_redirect_the_cluster_or_the_token() {
    let mine = NomadServer::builder().acl(true).start();
    let token = mine.management_token();
    let theirs = NomadServer::start_modern();
    let recipes = [
        (
            format!(
                "local lb = require('leasebox')\nlb.warmup {{ address = '{}' }}\n",
                theirs.url()
            ),
            "recipes/r.lua:2: warmup: `nomad.address` in recipes/r.lua:2 is a user-only setting",
            "LEASEBOX_NOMAD_ADDR=",
        ),
        (
            "return require('leasebox').recipe {\n  lease = { token_env = 'AWS_SECRET_ACCESS_KEY' },\n  steps = { 'true' },\n}\n"
                .to_owned(),
            "recipes/r.lua:1: recipe{}: lease: `nomad.token_env` in recipes/r.lua:1 is a user-only \
             setting",
            "LEASEBOX_NOMAD_TOKEN_ENV=",
        ),
    ];
    for (recipe, start, twin) in &recipes {
        let s = recipe_repo(None, recipe);
        let user_config = s.path().join("config/leasebox/config.toml");
        let mut seen = Vec::new();
        for token in [None, Some(token.as_str())] {
            let mut env = vec![
                ("NOMAD_ADDR", mine.url()),
                ("LEASEBOX_NOMAD_DRIVER", "raw_exec".to_owned()),
            ];
            if let Some(t) = token {
                env.push(("NOMAD_TOKEN", t.to_owned()));
            }
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let (out, timing) = run_r(&s, &[], &env);
            assert_refused(
                &out,
                &timing,
                &[
                    start,
                    "remove it from the recipe",
                    twin,
                    &user_config.display().to_string(),
                ],
            );
            if let Some(t) = token {
                assert!(!describe(&out).contains(t), "the token is never printed");
            }
            seen.push(stderr(&out));
        }
        seen.dedup();
        assert_eq!(seen.len(), 1, "one message, token or not: {seen:#?}");
    }
    assert!(theirs.requests().is_empty(), "{:?}", theirs.requests());
    assert!(
        !mine.requests().iter().any(|r| r.method == "PUT"),
        "nothing registered: {:?}",
        mine.requests()
    );
}

/// More CPU or memory than the user allows: refused, naming the limit and where it is set;
/// within the limit it runs.
#[test]
fn a_recipe_above_the_users_limit_is_refused_naming_the_limit() {
    let s = recipe_repo(
        None,
        "local lb = require('leasebox')\nlocal box = lb.warmup { cpu = 4000 }\nbox:exec('true')\n",
    );
    let user_config = s.path().join("config/leasebox/config.toml");
    std::fs::create_dir_all(user_config.parent().unwrap()).unwrap();
    std::fs::write(&user_config, "# my limits\nmax_cpu = 2000\n").unwrap();
    let (out, timing) = run_r(&s, &[], &[]);
    assert_refused(
        &out,
        &timing,
        &[
            "recipes/r.lua:2: warmup: `nomad.cpu = 4000` from recipe recipes/r.lua:2 is above \
             your limit `max_cpu = 2000`",
            &format!("(set by user config {}:2)", user_config.display()),
            "LEASEBOX_MAX_CPU",
        ],
    );
    let (out, timing) = run_r(&s, &[], &[("LEASEBOX_MAX_CPU", "3000")]);
    assert_refused(
        &out,
        &timing,
        &["`max_cpu = 3000` (set by env LEASEBOX_MAX_CPU)"],
    );
    let (out, _) = run_r(&s, &[], &[("LEASEBOX_MAX_CPU", "4000")]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    // The limit is the user's own: a recipe cannot raise it either.
    let s = recipe_repo(
        None,
        "require('leasebox').warmup { max_cpu = 100000, cpu = 50000 }\n",
    );
    let (out, timing) = run_r(&s, &[], &[]);
    assert_refused(&out, &timing, &["`max_cpu`", "is a user-only setting"]);
}

/// The registered job of a recipe run on Nomad.
fn registered_job(nomad: &NomadServer) -> serde_json::Value {
    let register = nomad
        .requests()
        .into_iter()
        .rfind(|r| r.method == "PUT" && r.path == "/v1/jobs")
        .expect("a job registration");
    let body: serde_json::Value = serde_json::from_slice(&register.body).unwrap();
    body["Job"]["TaskGroups"][0]["Tasks"][0].clone()
}

/// A recipe's image and resources reach the Nomad job (above the repository's own values),
/// and flags still beat the recipe.
#[test]
fn a_recipes_image_and_resources_reach_the_job_and_flags_win() {
    use crate::support::nomad::DriverHealth;
    let nomad = NomadServer::builder()
        .driver("docker", DriverHealth::Healthy)
        .start();
    let s = recipe_repo(
        Some("[nomad]\nimage = \"node:22\"\ncpu = 300\n"),
        "return require('leasebox').recipe {\n  lease = { image = 'rust:1.88', cpu = 700, memory_mb = 300 },\n  steps = { { 'read', 'cat hello.txt' } },\n}\n",
    );
    let url = nomad.url();
    let env = [
        ("NOMAD_ADDR", url.as_str()),
        ("LEASEBOX_NOMAD_DRIVER", "docker"),
        // The test server runs docker tasks as local processes: keep the box in the alloc dir.
        ("LEASEBOX_NOMAD_WORKDIR", "${NOMAD_ALLOC_DIR}/leasebox"),
    ];
    for (flags, image, cpu) in [
        (&[][..], "rust:1.88", 700),
        (&["--nomad-cpu", "600"][..], "rust:1.88", 600),
        (&["--nomad-image", "alpine:3"][..], "alpine:3", 700),
    ] {
        let (out, _) = run_r(&s, flags, &env);
        assert_eq!(code(&out), 0, "{flags:?}: {}", describe(&out));
        assert!(stdout(&out).contains("hello"), "{}", describe(&out));
        let task = registered_job(&nomad);
        assert_eq!(task["Config"]["image"], image, "{flags:?}: {task}");
        assert_eq!(task["Resources"]["CPU"], cpu, "{flags:?}: {task}");
        assert_eq!(task["Resources"]["MemoryMB"], 300, "{flags:?}: {task}");
        assert!(nomad.jobs().is_empty(), "jobs left: {:?}", nomad.jobs());
    }
}

/// A recipe that prints everything it can reach: `os.getenv` of the token variables, every
/// string under `leasebox` (its `args` too) and the globals, a step function's context, a step's
/// environment (as a step and through `box:exec`).
const TOKEN_PROBE: &str = r#"local lb = require('leasebox')
local function dump(v, seen)
  seen = seen or {}
  if type(v) == 'table' then
    if seen[v] then return end
    seen[v] = true
    for k, x in pairs(v) do dump(k, seen); dump(x, seen) end
  elseif type(v) == 'string' or type(v) == 'number' then
    lb.log('seen:', v)
  end
end
dump(lb)
dump(_G)
for _, name in ipairs({ 'NOMAD_TOKEN', 'LEASEBOX_NOMAD_TOKEN', 'MY_CI_TOKEN' }) do
  local ok = pcall(os.getenv, name)
  lb.log(name, ok and 'READABLE' or 'refused')
end
return lb.recipe {
  env = { VISIBLE = 'yes' },
  steps = {
    { 'env', 'env' },
    { 'ctx', function(box, ctx)
        dump(ctx)
        local r = box:exec { 'env', capture = true }
        lb.log('exec-env:', r.stdout)
      end },
  },
}
"#;

/// None of it holds the token: on the local backend with a custom `token_env`, and on Nomad,
/// where the token travels only as the `X-Nomad-Token` header.
#[test]
fn the_token_is_unreachable_from_a_recipe() {
    let check = |out: &Output, tokens: &[&str], secrets: &[&str]| {
        assert_eq!(code(out), 0, "{}", describe(out));
        let err = stderr(out);
        for name in tokens {
            assert!(
                err.contains(&format!("--> {name} refused")),
                "{name}: {err}"
            );
        }
        assert!(
            err.contains("--> seen: fast"),
            "the args were walked: {err}"
        );
        assert!(err.contains("exec-env:"), "{err}");
        assert!(stdout(out).contains("VISIBLE=yes"), "{}", describe(out));
        for secret in secrets {
            assert!(
                !describe(out).contains(secret),
                "{secret} reached the recipe"
            );
        }
    };
    let allow = "lua_env_allow = [\"NOMAD_TOKEN\", \"LEASEBOX_NOMAD_TOKEN\", \"MY_CI_TOKEN\"]\n";

    // Local backend, the token in a variable of the user's choosing.
    let s = recipe_repo(None, TOKEN_PROBE);
    let user_config = s.path().join("config/leasebox/config.toml");
    std::fs::create_dir_all(user_config.parent().unwrap()).unwrap();
    std::fs::write(
        &user_config,
        format!("{allow}[nomad]\ntoken_env = \"MY_CI_TOKEN\"\n"),
    )
    .unwrap();
    let out = s
        .leasebox(&["run", "r", "--", "mode=fast"])
        .env("NOMAD_TOKEN", "tok-nomad-1")
        .env("LEASEBOX_NOMAD_TOKEN", "tok-leasebox-2")
        .env("MY_CI_TOKEN", "tok-mine-3")
        .output()
        .unwrap();
    check(
        &out,
        &["NOMAD_TOKEN", "LEASEBOX_NOMAD_TOKEN", "MY_CI_TOKEN"],
        &["tok-nomad-1", "tok-leasebox-2", "tok-mine-3"],
    );

    // Nomad with ACLs: the steps run, and the token is only ever the request header.
    let nomad = NomadServer::builder().acl(true).start();
    let token = nomad.management_token();
    let s = recipe_repo(None, TOKEN_PROBE);
    let user_config = s.path().join("config/leasebox/config.toml");
    std::fs::create_dir_all(user_config.parent().unwrap()).unwrap();
    std::fs::write(&user_config, allow).unwrap();
    let out = s
        .leasebox(&["run", "r", "--", "mode=fast"])
        .env("NOMAD_ADDR", nomad.url())
        .env("NOMAD_TOKEN", &token)
        .env("LEASEBOX_NOMAD_DRIVER", "raw_exec")
        .env("LEASEBOX_NOMAD_TOKEN", "tok-leasebox-2")
        .output()
        .unwrap();
    check(
        &out,
        &["NOMAD_TOKEN", "LEASEBOX_NOMAD_TOKEN"],
        &[&token, "tok-leasebox-2"],
    );
    let requests = nomad.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.method == "PUT" && r.path == "/v1/jobs")
    );
    for r in &requests {
        carries_token_only_in_its_header(r, &token);
    }
    assert!(nomad.jobs().is_empty(), "jobs left: {:?}", nomad.jobs());
}
