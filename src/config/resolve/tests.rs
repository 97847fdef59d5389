//! Tests of [`Config::load`] and [`Config::with_recipe`]: precedence, provenance, the
//! trust gate, and the errors each layer gives.

use std::collections::BTreeSet;
use std::time::Duration;

use toml::de::DeValue;

use super::*;
use crate::config::settings::BackendChoice;
use crate::config::trust::{RepositoryFile, TrustStore};
use crate::config::value::raw_example;
use crate::error::HasKind;

/// A scratch `XDG_CONFIG_HOME` holding an optional user config.
struct Scratch {
    dir: tempfile::TempDir,
    inputs: ConfigInputs,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        let mut inputs = ConfigInputs::default();
        inputs.env.insert(
            "XDG_CONFIG_HOME".into(),
            dir.path().to_str().unwrap().into(),
        );
        inputs.env.insert("USER".into(), "alice".into());
        Scratch { dir, inputs }
    }

    fn user_config_path(&self) -> PathBuf {
        self.dir.path().join("leasebox").join("config.toml")
    }

    fn user_config(self, text: &str) -> Scratch {
        let path = self.user_config_path();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self
    }

    fn env(mut self, var: &str, value: &str) -> Scratch {
        self.inputs.env.insert(var.into(), value.into());
        self
    }

    fn flag(mut self, key: &str, value: &str) -> Scratch {
        self.inputs.flags.push((key.into(), value.into()));
        self
    }

    fn load(&self) -> Config {
        Config::load(&self.inputs).unwrap()
    }

    fn error(&self) -> String {
        Config::load(&self.inputs).unwrap_err().to_string()
    }
}

fn shown(config: &Config, key: &str) -> (String, Source) {
    let r = config.get(key).unwrap();
    (
        r.value.as_ref().map_or("(unset)".into(), Value::shown),
        r.source.clone(),
    )
}

#[test]
fn default_toml_declares_exactly_the_keys_of_the_table() {
    // Keys with a value.
    let entries = file::parse_file(Path::new("default.toml"), DEFAULT_TOML).unwrap();
    let valued: BTreeSet<&str> = entries.iter().map(|e| e.key.name).collect();
    // Keys declared as comments: `# key = example` lines, in their section.
    let mut commented = BTreeSet::new();
    let mut section: Option<String> = None;
    for line in DEFAULT_TOML.lines() {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.to_owned());
            continue;
        }
        let Some(rest) = line.strip_prefix("# ") else {
            continue;
        };
        let Some((leaf, example)) = rest.split_once(" = ") else {
            continue;
        };
        if !leaf.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            continue;
        }
        let name = match &section {
            Some(s) => format!("{s}.{leaf}"),
            None => leaf.to_owned(),
        };
        let key = KeyDef::find(&name)
            .unwrap_or_else(|| panic!("default.toml comments out an unknown key `{name}`"));
        let parsed = DeValue::parse(example).unwrap();
        assert!(
            Value::from_toml(key, parsed.get_ref()).is_ok(),
            "the commented example of `{name}` is not valid"
        );
        assert!(commented.insert(key.name), "`{name}` commented out twice");
    }
    assert!(
        valued.is_disjoint(&commented),
        "keys both set and commented out"
    );
    let declared: BTreeSet<&str> = valued.union(&commented).copied().collect();
    let table: BTreeSet<&str> = KEYS.iter().map(|k| k.name).collect();
    assert_eq!(declared, table, "default.toml and KEYS disagree");
    assert_eq!(
        commented,
        BTreeSet::from([
            "backend",
            "owner",
            "exec_timeout",
            "nomad.address",
            "nomad.ca_cert",
            "nomad.ca_path",
            "nomad.client_cert",
            "nomad.client_key",
            "nomad.tls_server_name",
            "nomad.node_pool",
            "nomad.workdir",
            "nomad.jobspec_template",
        ])
    );
}

#[test]
fn every_example_fits_its_key() {
    for key in KEYS {
        let parsed = DeValue::parse(key.example).unwrap();
        assert!(
            Value::from_toml(key, parsed.get_ref()).is_ok(),
            "example of {}",
            key.name
        );
        assert!(
            Value::from_raw(key, &raw_example(key)).is_ok(),
            "raw example of {}",
            key.name
        );
    }
}

#[test]
fn defaults_when_nothing_is_set() {
    let config = Scratch::new().load();
    let s = config.settings();
    assert_eq!(s.backend, BackendChoice::Local);
    assert_eq!(
        (s.max_cpu, s.max_memory_mb, s.max_disk_mb, s.max_leases),
        (8000, 16384, 20480, 20)
    );
    assert!(s.lua_env_allow.is_empty());
    assert_eq!(s.exec_timeout, None);
    assert_eq!(s.lease_ttl, Duration::from_secs(90 * 60));
    assert_eq!(s.lease_idle, Duration::from_secs(30 * 60));
    assert!(s.sync_exclude.contains(&"target/".to_owned()));
    assert!(s.sync_exclude.contains(&"node_modules/".to_owned()));
    let n = &s.nomad;
    assert_eq!(n.address, None);
    assert_eq!(n.token_env, "NOMAD_TOKEN");
    assert_eq!(
        (
            n.ca_cert.as_ref(),
            n.tls_server_name.as_ref(),
            n.skip_verify
        ),
        (None, None, false)
    );
    assert_eq!(
        (n.region.as_str(), n.namespace.as_str()),
        ("global", "default")
    );
    assert!(n.datacenters.is_empty() && n.constraints.is_empty());
    assert_eq!((n.driver.as_str(), n.task.as_str()), ("docker", "leasebox"));
    assert_eq!(
        (
            n.node_pool.as_ref(),
            n.workdir.as_ref(),
            n.jobspec_template.as_ref()
        ),
        (None, None, None)
    );
    assert_eq!(n.alloc_ready_timeout, Duration::from_secs(300));
    assert_eq!(n.image, "ubuntu:24.04");
    assert_eq!((n.cpu, n.memory_mb, n.disk_mb), (1000, 2048, 1024));
    assert_eq!(
        shown(&config, "nomad.image"),
        ("\"ubuntu:24.04\"".into(), Source::Default)
    );
    assert_eq!(
        shown(&config, "nomad.address"),
        ("(unset)".into(), Source::Default)
    );
    assert!(config.get("nomad.imgae").is_none());
    assert!(config.notices().is_empty());
}

#[test]
fn each_layer_beats_the_one_below() {
    let base = Scratch::new();
    let user_path = base.user_config_path();
    let ladder = base;
    assert_eq!(
        shown(&ladder.load(), "nomad.region"),
        ("\"global\"".into(), Source::Default)
    );
    let ladder = ladder.env("NOMAD_REGION", "r1");
    assert_eq!(
        shown(&ladder.load(), "nomad.region"),
        (
            "\"r1\"".into(),
            Source::NomadEnv {
                var: "NOMAD_REGION".into()
            }
        )
    );
    let ladder = ladder.user_config("\n[nomad]\nregion = \"r2\"\n");
    assert_eq!(
        shown(&ladder.load(), "nomad.region"),
        (
            "\"r2\"".into(),
            Source::UserConfig {
                path: user_path,
                line: 3
            }
        )
    );
    let ladder = ladder.env("LEASEBOX_NOMAD_REGION", "r3");
    assert_eq!(
        shown(&ladder.load(), "nomad.region"),
        (
            "\"r3\"".into(),
            Source::Env {
                var: "LEASEBOX_NOMAD_REGION".into()
            }
        )
    );
    let ladder = ladder.flag("nomad.region", "r4");
    let config = ladder.load();
    assert_eq!(
        shown(&config, "nomad.region"),
        (
            "\"r4\"".into(),
            Source::Flag {
                flag: "--nomad-region".into()
            }
        )
    );
    assert_eq!(config.settings().nomad.region, "r4");
}

#[test]
fn nomad_variables_rank_below_the_user_config() {
    let config = Scratch::new()
        .env("NOMAD_ADDR", "http://from-env:4646")
        .user_config("[nomad]\naddress = \"https://from-file:4646\"\n")
        .load();
    assert_eq!(
        config.settings().nomad.address.as_deref(),
        Some("https://from-file:4646")
    );
    let config = Scratch::new()
        .env("NOMAD_ADDR", "http://from-env:4646")
        .env("LEASEBOX_NOMAD_ADDR", "http://twin:4646")
        .user_config("[nomad]\naddress = \"https://from-file:4646\"\n")
        .load();
    assert_eq!(
        config.settings().nomad.address.as_deref(),
        Some("http://twin:4646")
    );
}

#[test]
fn nomad_tls_family_and_empty_variables() {
    let config = Scratch::new()
        .env("NOMAD_REGION", "")
        .env("NOMAD_NAMESPACE", "")
        .env("NOMAD_CACERT", "/etc/nomad/ca.pem")
        .env("NOMAD_CAPATH", "/etc/nomad/ca.d")
        .env("NOMAD_CLIENT_CERT", "/etc/nomad/cli.pem")
        .env("NOMAD_CLIENT_KEY", "/etc/nomad/cli-key.pem")
        .env("NOMAD_TLS_SERVER_NAME", "server.global.nomad")
        .env("NOMAD_SKIP_VERIFY", "1")
        .load();
    let n = &config.settings().nomad;
    assert_eq!(
        (n.region.as_str(), n.namespace.as_str()),
        ("global", "default")
    );
    assert_eq!(config.get("nomad.region").unwrap().source, Source::Default);
    assert_eq!(n.ca_cert.as_deref(), Some(Path::new("/etc/nomad/ca.pem")));
    assert_eq!(n.ca_path.as_deref(), Some(Path::new("/etc/nomad/ca.d")));
    assert_eq!(
        n.client_cert.as_deref(),
        Some(Path::new("/etc/nomad/cli.pem"))
    );
    assert_eq!(
        n.client_key.as_deref(),
        Some(Path::new("/etc/nomad/cli-key.pem"))
    );
    assert_eq!(n.tls_server_name.as_deref(), Some("server.global.nomad"));
    assert!(n.skip_verify);
    assert_eq!(
        config.get("nomad.skip_verify").unwrap().source,
        Source::NomadEnv {
            var: "NOMAD_SKIP_VERIFY".into()
        }
    );
}

#[test]
fn backend_choice_follows_the_design() {
    let local = Scratch::new().load();
    assert_eq!(local.settings().backend, BackendChoice::Local);
    assert!(matches!(
        local.get("backend").unwrap().source,
        Source::Computed { .. }
    ));

    let by_address = Scratch::new()
        .env("NOMAD_ADDR", "http://127.0.0.1:4646")
        .load();
    assert_eq!(by_address.settings().backend, BackendChoice::Nomad);
    assert_eq!(
        by_address.get("backend").unwrap().source,
        Source::Computed {
            from: "`nomad.address` is set by env NOMAD_ADDR".into()
        }
    );
    let by_flag = Scratch::new()
        .flag("nomad.address", "unix:///run/nomad.sock")
        .load();
    assert_eq!(by_flag.settings().backend, BackendChoice::Nomad);

    let explicit = Scratch::new()
        .env("NOMAD_ADDR", "http://127.0.0.1:4646")
        .user_config("backend = \"local\"\n")
        .load();
    assert_eq!(explicit.settings().backend, BackendChoice::Local);
    let flag = Scratch::new()
        .user_config("backend = \"local\"\n")
        .flag("backend", "nomad")
        .load();
    assert_eq!(flag.settings().backend, BackendChoice::Nomad);
    assert_eq!(
        flag.get("backend").unwrap().source,
        Source::Flag {
            flag: "--backend".into()
        }
    );
}

#[test]
fn owner_default_is_a_hash_of_user_at_host() {
    let a = Scratch::new().load();
    let b = Scratch::new().load();
    let host = settings::hostname();
    assert_eq!(a.settings().owner, settings::owner_default("alice", &host));
    assert_eq!(a.settings().owner, b.settings().owner);
    let logname = Scratch::new().env("USER", "").env("LOGNAME", "bob").load();
    assert_eq!(
        logname.settings().owner,
        settings::owner_default("bob", &host)
    );
    let set = Scratch::new().user_config("owner = \"team-ci\"\n").load();
    assert_eq!(set.settings().owner, "team-ci");
}

#[test]
fn user_config_values_are_typed_with_lines() {
    let s = Scratch::new().user_config(
        "max_leases = 3\nlua_env_allow = [\"CI\"]\nexec_timeout = \"20m\"\n\n[sync]\n\
         exclude = [\"out/\"]\n\n[nomad]\nca_cert = \"certs/ca.pem\"\n\
         jobspec_template = \"~/job.hcl\"\ndatacenters = [\"dc1\", \"dc2\"]\n\
         [[nomad.constraints]]\nattribute = \"${attr.kernel.name}\"\nvalue = \"linux\"\n",
    );
    let s = s.env("HOME", "/home/alice");
    let dir = s.user_config_path().parent().unwrap().to_owned();
    let config = s.load();
    let st = config.settings();
    assert_eq!(st.max_leases, 3);
    assert_eq!(st.lua_env_allow, ["CI"]);
    assert_eq!(st.exec_timeout, Some(Duration::from_secs(1200)));
    assert_eq!(
        st.sync_exclude,
        ["out/"],
        "a list replaces the default list"
    );
    assert_eq!(st.nomad.ca_cert, Some(dir.join("certs/ca.pem")));
    assert_eq!(
        st.nomad
            .jobspec_template
            .clone()
            .map(|t| (t.path, t.pinned)),
        Some((PathBuf::from("/home/alice/job.hcl"), None))
    );
    assert_eq!(st.nomad.datacenters, ["dc1", "dc2"]);
    assert_eq!(st.nomad.constraints[0].attribute, "${attr.kernel.name}");
    assert_eq!(st.nomad.constraints[0].operator, "=");
    let line = |k| match config.get(k).unwrap().source {
        Source::UserConfig { line, .. } => line,
        ref other => panic!("{k} from {other}"),
    };
    assert_eq!(
        [
            line("max_leases"),
            line("exec_timeout"),
            line("sync.exclude"),
            line("nomad.ca_cert")
        ],
        [1, 3, 6, 9]
    );
    assert_eq!(line("nomad.constraints"), 12);
}

#[test]
fn leasebox_config_names_the_file() {
    let other = tempfile::tempdir().unwrap();
    let file = other.path().join("mine.toml");
    std::fs::write(&file, "max_cpu = 1234\n").unwrap();
    let config = Scratch::new()
        .env("LEASEBOX_CONFIG", file.to_str().unwrap())
        .load();
    assert_eq!(config.settings().max_cpu, 1234);
    assert_eq!(config.user_config_path(), Some(file.as_path()));

    let missing = other.path().join("missing.toml");
    let err = Scratch::new()
        .env("LEASEBOX_CONFIG", missing.to_str().unwrap())
        .error();
    assert!(
        err.contains(&format!("`LEASEBOX_CONFIG` names {}", missing.display())),
        "{err}"
    );
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn leasebox_config_inside_the_repository_is_refused() {
    let repo = tempfile::tempdir().unwrap();
    let file = repo.path().join("config.toml");
    std::fs::write(&file, "max_cpu = 99999\n").unwrap();
    let mut s = Scratch::new().env("LEASEBOX_CONFIG", file.to_str().unwrap());
    s.inputs.repo_root = Some(repo.path().to_owned());
    let err = s.error();
    assert!(
        err.contains("a repository cannot supply the user config"),
        "{err}"
    );
    let e = Config::load(&s.inputs).unwrap_err();
    assert_eq!(crate::error::HasKind::kind(&e).exit_code(), 78);
}

#[test]
fn a_missing_standard_user_config_is_fine() {
    let config = Scratch::new().load();
    assert!(!config.user_config_path().unwrap().exists());
    let config = Config::load(&ConfigInputs::default()).unwrap();
    assert_eq!(config.user_config_path(), None);
}

#[test]
fn file_errors_point_at_file_and_line() {
    let s = Scratch::new().user_config("max_cpu = 1\n[nomad]\nimgae = \"rust\"\n");
    let p = s.user_config_path().display().to_string();
    assert_eq!(
        s.error(),
        format!("unknown key `nomad.imgae` in {p}:3; did you mean `nomad.image`?")
    );

    let s = Scratch::new().user_config("[nomad]\ncpu = \"2000\"\n");
    let p = s.user_config_path().display().to_string();
    assert_eq!(
        s.error(),
        format!(
            "`nomad.cpu` in {p}:2 must be a non-negative integer, e.g. `cpu = 2000`, but is a string"
        )
    );

    let s = Scratch::new().user_config("[lease]\n\nttl = \"ninety minutes\"\n");
    let p = s.user_config_path().display().to_string();
    let err = s.error();
    assert!(
        err.starts_with(&format!(
            "invalid `lease.ttl` in {p}:3: `ninety minutes` is not a duration"
        )),
        "{err}"
    );
    assert!(err.ends_with("write it like `ttl = \"90m\"`"), "{err}");

    let s = Scratch::new().user_config("[lease]\nttl = 90\n");
    let err = s.error();
    assert!(
        err.contains("must be a duration string, e.g. `ttl = \"90m\"`, but is an integer"),
        "{err}"
    );

    let s = Scratch::new().user_config("max_cpu = 1\nmax_cpu = 2\n");
    let p = s.user_config_path().display().to_string();
    let err = s.error();
    assert!(
        err.starts_with(&format!("failed to parse {p}:2: ")),
        "{err}"
    );
}

#[test]
fn environment_errors_name_the_variable() {
    let err = Scratch::new().env("LEASEBOX_LEASE_TTL", "ninety").error();
    assert!(
        err.starts_with(
            "invalid `LEASEBOX_LEASE_TTL` (for `lease.ttl`): `ninety` is not a duration"
        ),
        "{err}"
    );
    assert!(
        err.ends_with("e.g. `LEASEBOX_LEASE_TTL=90m`, or unset `LEASEBOX_LEASE_TTL`"),
        "{err}"
    );
    let err = Scratch::new().env("LEASEBOX_NOMAD_CPU", "-5").error();
    assert!(
        err.starts_with("invalid `LEASEBOX_NOMAD_CPU` (for `nomad.cpu`)"),
        "{err}"
    );
    let err = Scratch::new().env("NOMAD_SKIP_VERIFY", "sometimes").error();
    assert!(
        err.starts_with("invalid `NOMAD_SKIP_VERIFY` (for `nomad.skip_verify`)"),
        "{err}"
    );
    let err = Scratch::new().env("NOMAD_ADDR", "nomad:4646").error();
    assert!(err.contains("`NOMAD_ADDR`"), "{err}");
    assert!(
        err.contains("must start with `http://`, `https://` or `unix:///`"),
        "{err}"
    );
}

#[test]
fn flag_errors_name_the_flag() {
    let err = Scratch::new().flag("lease.ttl", "soon").error();
    assert!(
        err.starts_with("invalid value for `--lease-ttl`: `soon` is not a duration"),
        "{err}"
    );
    assert!(err.ends_with("e.g. `--lease-ttl 90m`"), "{err}");
    let err = Scratch::new().flag("backend", "k8s").error();
    assert_eq!(
        err,
        "invalid value for `--backend`: `k8s` is not one of `local`, `nomad`; expected one of \
         `local`, `nomad`, e.g. `--backend nomad`"
    );
    let err = Scratch::new().flag("nomad.imgae", "x").error();
    assert_eq!(
        err,
        "unknown config key `nomad.imgae` given as a flag; did you mean `nomad.image`?"
    );
}

#[test]
fn list_flags_accumulate_and_scalars_keep_the_last() {
    let config = Scratch::new()
        .flag("sync.exclude", "a/,b/")
        .flag("sync.exclude", "c/")
        .flag("nomad.cpu", "100")
        .flag("nomad.cpu", "200")
        .load();
    assert_eq!(config.settings().sync_exclude, ["a/", "b/", "c/"]);
    assert_eq!(config.settings().nomad.cpu, 200);
}

/// A scratch repository holding `.leasebox.toml` (and a state dir for the trust store),
/// wired into `s`.
fn with_repo(mut s: Scratch, text: &str) -> (Scratch, tempfile::TempDir, tempfile::TempDir) {
    let repo = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    std::fs::write(repo.path().join(REPOSITORY_FILE), text).unwrap();
    s.inputs.repo_root = Some(repo.path().to_owned());
    s.inputs.trust_dir = Some(state.path().to_owned());
    (s, repo, state)
}

fn trust(repo: &Path, state: &Path) {
    let file = RepositoryFile::read(repo, None).unwrap().unwrap();
    TrustStore::new(state).trust(&file).unwrap();
}

fn recipe(key: &str, value: toml::Value, line: usize) -> RecipeOption {
    RecipeOption {
        key: key.to_owned(),
        value,
        path: PathBuf::from("recipes/ci.lua"),
        line,
    }
}

#[test]
fn repository_own_keys_are_read_with_their_lines() {
    let (s, repo, _state) = with_repo(
        Scratch::new(),
        "exec_timeout = \"5m\"\n[nomad]\nimage = \"node:22\"\ncpu = 3000\n",
    );
    let config = s.load();
    assert!(config.notices().is_empty(), "{:?}", config.notices());
    assert_eq!(config.settings().nomad.image, "node:22");
    assert_eq!(config.settings().nomad.cpu, 3000);
    assert_eq!(
        config.get("nomad.image").unwrap().source,
        Source::Repository {
            path: repo.path().join(REPOSITORY_FILE),
            line: 3
        }
    );
    let rows = config.explain_text();
    let file = repo.path().join(REPOSITORY_FILE);
    assert!(
        rows.contains(&format!("repository {}:4", file.display())),
        "{rows}"
    );
    let r = config.repository().unwrap();
    assert_eq!(
        r.trust, None,
        "no boundary: the trust store is not consulted"
    );
    assert_eq!(r.file.entries.len(), 3);
}

#[test]
fn own_keys_follow_the_design_order() {
    // defaults < user config < environment < .leasebox.toml < recipe < flags
    let image = |c: &Config| c.settings().nomad.image.clone();
    let s = Scratch::new().user_config("[nomad]\nimage = \"user\"\n");
    let (s, _repo, _state) = with_repo(s, "[nomad]\nimage = \"repo\"\n");
    assert_eq!(
        image(&s.load()),
        "repo",
        "the repository beats the user config"
    );
    let s = s.env("LEASEBOX_NOMAD_IMAGE", "env");
    assert_eq!(
        image(&s.load()),
        "repo",
        "the repository beats the environment"
    );
    let with = |c: &Config| {
        c.with_recipe(&[recipe("image", toml::Value::String("recipe".into()), 7)])
            .unwrap()
    };
    let config = with(&s.load());
    assert_eq!(image(&config), "recipe", "a recipe beats the repository");
    assert_eq!(
        config.get("nomad.image").unwrap().source,
        Source::Recipe {
            path: PathBuf::from("recipes/ci.lua"),
            line: 7
        }
    );
    assert!(
        config.explain_text().contains("recipe recipes/ci.lua:7"),
        "explain shows the recipe source"
    );
    let s = s.flag("nomad.image", "flag");
    assert_eq!(image(&with(&s.load())), "flag", "flags beat everything");

    // A second `with_recipe` replaces the first one's options.
    let base = Scratch::new().load();
    let one = base
        .with_recipe(&[recipe("cpu", toml::Value::Integer(3000), 1)])
        .unwrap();
    let two = one
        .with_recipe(&[recipe("memory_mb", toml::Value::Integer(4096), 2)])
        .unwrap();
    assert_eq!(two.settings().nomad.cpu, 1000);
    assert_eq!(two.settings().nomad.memory_mb, 4096);
}

#[test]
fn boundaries_need_trust_and_lapse_on_change() {
    let text = "[nomad]\nimage = \"rust\"\nnamespace = \"ci\"\n";
    let (s, repo, state) = with_repo(Scratch::new(), text);
    let err = Config::load(&s.inputs).unwrap_err();
    assert_eq!(
        crate::error::HasKind::kind(&err),
        crate::error::ErrorKind::TrustRefused
    );
    let msg = err.to_string();
    let file = repo.path().join(REPOSITORY_FILE);
    assert!(
        msg.starts_with(&format!(
            "`nomad.namespace` in {}:3 is an execution boundary",
            file.display()
        )),
        "{msg}"
    );
    assert!(msg.contains("has never been trusted"), "{msg}");
    assert!(
        msg.contains(&format!("run `leasebox trust {}`", repo.path().display())),
        "{msg}"
    );

    trust(repo.path(), state.path());
    let config = s.load();
    assert_eq!(config.settings().nomad.namespace, "ci");
    assert!(
        config
            .repository()
            .unwrap()
            .trust
            .as_ref()
            .unwrap()
            .is_trusted()
    );

    std::fs::write(&file, format!("{text}# a harmless comment\n")).unwrap();
    let msg = s.error();
    assert!(msg.contains("changed since you trusted it"), "{msg}");
    assert!(msg.contains("leasebox trust"), "{msg}");

    // Without a state dir nothing is trusted.
    let mut s = s;
    s.inputs.trust_dir = None;
    assert!(s.error().contains("no state dir"));
}

#[test]
fn user_only_keys_in_the_repository_say_how_to_set_them() {
    let (s, repo, state) = with_repo(Scratch::new(), "[nomad]\naddress = \"http://evil:4646\"\n");
    let file = repo.path().join(REPOSITORY_FILE);
    let user = s.user_config_path();
    let expect = format!(
        "`nomad.address` in {}:2 is a user-only setting: a repository's `.leasebox.toml` can \
         never set it, trusted or not; remove it from the file and set it yourself: `address \
         = \"https://nomad.example.com:4646\"` under `[nomad]` in your user config {}, \
         `LEASEBOX_NOMAD_ADDR=https://nomad.example.com:4646` in your environment, or the \
         flag `--nomad-address https://nomad.example.com:4646`",
        file.display(),
        user.display()
    );
    assert_eq!(s.error(), expect);
    // Pinning the file's hash by hand changes nothing.
    let bytes = std::fs::read(&file).unwrap();
    let doc = serde_json::json!({"version": 1, "repositories": [{
        "root": crate::config::canonical_root(repo.path()),
        "sha256": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)),
        "trusted_at": 0}]});
    std::fs::write(state.path().join("trust.json"), doc.to_string()).unwrap();
    assert_eq!(s.error(), expect);
    let s = s
        .env("NOMAD_TOKEN", "t0k3n")
        .env("NOMAD_ADDR", "http://mine:4646");
    assert_eq!(s.error(), expect, "the same whether or not a token is set");
}

#[test]
fn repository_file_errors_point_at_file_and_line() {
    let (s, repo, _state) = with_repo(Scratch::new(), "[nomad]\n\nimgae = \"x\"\n");
    let file = repo.path().join(REPOSITORY_FILE);
    assert_eq!(
        s.error(),
        format!(
            "unknown key `nomad.imgae` in {}:3; did you mean `nomad.image`?",
            file.display()
        )
    );
    let (s, repo, _state) = with_repo(Scratch::new(), "[nomad]\ncpu = \"lots\"\n");
    let file = repo.path().join(REPOSITORY_FILE);
    assert_eq!(
        s.error(),
        format!(
            "`nomad.cpu` in {}:2 must be a non-negative integer, e.g. `cpu = 2000`, but is a \
             string",
            file.display()
        )
    );
    let (s, _repo, _state) = with_repo(Scratch::new(), "[nomad\n");
    assert!(s.error().contains("fix the TOML syntax there"));
}

#[test]
fn resources_above_the_users_limits_are_refused() {
    let (s, repo, _state) = with_repo(Scratch::new(), "[nomad]\ncpu = 9000\n");
    let file = repo.path().join(REPOSITORY_FILE);
    let err = Config::load(&s.inputs).unwrap_err();
    assert_eq!(
        crate::error::HasKind::kind(&err),
        crate::error::ErrorKind::TrustRefused
    );
    assert_eq!(
        err.to_string(),
        format!(
            "`nomad.cpu = 9000` from repository {}:2 is above your limit `max_cpu = 8000` \
             (set by default); ask for at most 8000, or raise `max_cpu` in your user config, \
             with `LEASEBOX_MAX_CPU` or with `--max-cpu`",
            file.display()
        )
    );
    // The user raises the limit: accepted.
    let s = s.user_config("max_cpu = 10000\n");
    assert_eq!(s.load().settings().nomad.cpu, 9000);
    // The user lowers it: the message names where.
    let s = s.user_config("max_memory_mb = 1000\n");
    let base = Config::load(&ConfigInputs {
        repo_root: None,
        ..s.inputs.clone()
    })
    .unwrap();
    let err = base
        .with_recipe(&[recipe("memory_mb", toml::Value::Integer(2000), 5)])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("`nomad.memory_mb = 2000` from recipe recipes/ci.lua:5"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "`max_memory_mb = 1000` (set by user config {}:1)",
            s.user_config_path().display()
        )),
        "{err}"
    );
    // The user's own request above their limit is theirs to make.
    let config = Scratch::new().flag("nomad.disk_mb", "99999").load();
    assert_eq!(config.settings().nomad.disk_mb, 99999);
    // A flag overriding the repository's request is what is checked.
    let (s, _repo, _state) = with_repo(Scratch::new(), "[nomad]\ncpu = 9000\n");
    let s = s.flag("nomad.cpu", "2000");
    assert_eq!(s.load().settings().nomad.cpu, 2000);
}

#[test]
fn recipe_options_by_leaf_or_dotted_name_and_their_errors() {
    let base = Scratch::new().load();
    let config = base
        .with_recipe(&[
            recipe("image", toml::Value::String("rust:1.88".into()), 2),
            recipe("nomad.disk_mb", toml::Value::Integer(2048), 3),
            recipe("exec_timeout", toml::Value::String("20m".into()), 4),
            recipe(
                "exclude",
                toml::Value::Array(vec![toml::Value::String("dist/".into())]),
                5,
            ),
        ])
        .unwrap();
    let st = config.settings();
    assert_eq!(st.nomad.image, "rust:1.88");
    assert_eq!(st.nomad.disk_mb, 2048);
    assert_eq!(st.exec_timeout, Some(Duration::from_secs(1200)));
    assert_eq!(st.sync_exclude, ["dist/"]);

    let err = |o: RecipeOption| base.with_recipe(&[o]).unwrap_err().to_string();
    assert_eq!(
        err(recipe("imgae", toml::Value::String("x".into()), 9)),
        "unknown `lease{}` option `imgae` in recipes/ci.lua:9; did you mean `image`?"
    );
    assert_eq!(
        err(recipe("cpu", toml::Value::String("2000".into()), 9)),
        "invalid `lease{}` option `cpu` in recipes/ci.lua:9: it is a string; expected a \
         non-negative integer, e.g. `cpu = 2000`"
    );
    let e = err(recipe("namespace", toml::Value::String("prod".into()), 9));
    assert!(
        e.starts_with(
            "`nomad.namespace` in recipes/ci.lua:9 is an execution boundary: a recipe's \
             `lease{}` can never set it"
        ),
        "{e}"
    );
    let e = err(recipe(
        "token_env",
        toml::Value::String("AWS_SECRET".into()),
        9,
    ));
    assert!(
        e.starts_with("`nomad.token_env` in recipes/ci.lua:9 is a user-only setting"),
        "{e}"
    );
    assert!(e.contains("remove it from the recipe"), "{e}");
    let e = err(recipe("cpu", toml::Value::Float(2000.0), 9));
    assert!(e.contains("it is a float"), "{e}");
    let e = err(recipe(
        "exclude",
        toml::Value::Array(vec![toml::Value::Integer(1)]),
        9,
    ));
    assert!(e.contains("a list holding an integer"), "{e}");
    // The last of a repeated option wins, with its own line.
    let config = base
        .with_recipe(&[
            recipe("cpu", toml::Value::Integer(1500), 2),
            recipe("nomad.cpu", toml::Value::Integer(2500), 3),
        ])
        .unwrap();
    assert_eq!(config.settings().nomad.cpu, 2500);
    assert_eq!(
        config.get("nomad.cpu").unwrap().source,
        Source::Recipe {
            path: PathBuf::from("recipes/ci.lua"),
            line: 3
        }
    );
}

#[test]
fn a_trusted_repository_is_still_held_to_the_limits() {
    let (s, repo, state) = with_repo(
        Scratch::new(),
        "[nomad]\nnamespace = \"ci\"\nmemory_mb = 20000\n",
    );
    trust(repo.path(), state.path());
    let err = s.error();
    assert!(
        err.starts_with("`nomad.memory_mb = 20000` from repository"),
        "{err}"
    );
    assert!(
        err.contains("`max_memory_mb = 16384` (set by default)"),
        "{err}"
    );
}

#[test]
fn a_misspelled_variable_gets_a_notice() {
    let config = Scratch::new()
        .env("LEASEBOX_NOMAD_IMAGES", "rust")
        .env("LEASEBOX_STATE_DIR", "/tmp/x")
        .load();
    assert_eq!(
        config.notices(),
        [
            "`LEASEBOX_NOMAD_IMAGES` is not a leasebox variable and is ignored; did you mean \
          `LEASEBOX_NOMAD_IMAGE`?"
        ]
    );
}

#[test]
fn empty_twins_are_unset() {
    let config = Scratch::new().env("LEASEBOX_NOMAD_IMAGE", "").load();
    assert_eq!(config.get("nomad.image").unwrap().source, Source::Default);
}

#[test]
fn the_docs_describe_every_key_and_their_example_loads() {
    let doc = include_str!("../../../docs/config.md");
    for key in KEYS {
        for needle in [
            format!("| `{}` |", key.name),
            format!("`{}`", key.env),
            format!("`{}`", key.flag_arg()),
        ] {
            assert!(
                doc.contains(&needle),
                "docs/config.md does not mention {needle}"
            );
        }
        if let Some(var) = key.nomad_env {
            assert!(
                doc.contains(&format!("`{var}`")),
                "docs/config.md does not mention {var}"
            );
        }
    }
    let defaults = Config::load(&ConfigInputs::default()).unwrap();
    for dir in &defaults.settings().sync_exclude {
        assert!(
            doc.contains(&format!("`{dir}`")),
            "docs/config.md does not list {dir}"
        );
    }
    let example = doc.split("## Example").nth(1).unwrap();
    let toml = example
        .split("```toml\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let entries = file::parse_file(Path::new("docs/config.md"), toml).unwrap();
    assert!(entries.len() > 10);
}

#[test]
fn a_trusted_template_is_pinned_and_its_change_lapses_the_trust() {
    let (s, repo, state) = with_repo(
        Scratch::new(),
        "[nomad]\ndriver = \"exec\"\njobspec_template = \"ci/tmpl.hcl\"\n",
    );
    std::fs::create_dir(repo.path().join("ci")).unwrap();
    let template = repo.path().join("ci/tmpl.hcl");
    std::fs::write(&template, "job \"{{lease_id}}\" { driver = \"exec\" }\n").unwrap();
    trust(repo.path(), state.path());
    let config = s.load();
    let t = config.settings().nomad.jobspec_template.clone().unwrap();
    assert_eq!(t.path, template.canonicalize().unwrap());
    assert_eq!(
        t.pinned.as_deref(),
        Some(b"job \"{{lease_id}}\" { driver = \"exec\" }\n".as_slice()),
        "the bytes hashed are the bytes used"
    );
    // Only the template changes: the trust lapses, naming the file.
    std::fs::write(
        &template,
        "job \"{{lease_id}}\" { driver = \"raw_exec\" }\n",
    )
    .unwrap();
    let err = Config::load(&s.inputs).unwrap_err();
    assert_eq!(err.kind(), crate::error::ErrorKind::TrustRefused);
    let text = err.to_string();
    assert!(
        text.contains(&format!(
            "{} (named by `nomad.jobspec_template`) changed since you trusted it",
            template.canonicalize().unwrap().display()
        )),
        "{text}"
    );
    // Trusting again accepts the new bytes.
    trust(repo.path(), state.path());
    let t = s.load().settings().nomad.jobspec_template.clone().unwrap();
    assert!(t.pinned.unwrap().ends_with(b"\"raw_exec\" }\n"));
}

#[test]
fn a_template_outside_the_repository_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("t.hcl");
    std::fs::write(&target, "job \"x\" {}\n").unwrap();
    for (value, link) in [
        (target.display().to_string(), false),
        ("../elsewhere.hcl".to_owned(), false),
        ("~/t.hcl".to_owned(), false),
        ("link.hcl".to_owned(), true),
    ] {
        let text = format!("[nomad]\njobspec_template = \"{value}\"\n");
        let (_s, repo, _state) = with_repo(Scratch::new(), &text);
        if link {
            std::os::unix::fs::symlink(&target, repo.path().join("link.hcl")).unwrap();
        }
        if value.starts_with("..") {
            std::fs::write(repo.path().join("../elsewhere.hcl"), "x").unwrap();
        }
        let err = RepositoryFile::read(repo.path(), None).unwrap_err();
        let shown = err.to_string();
        assert!(
            shown.contains("`nomad.jobspec_template`")
                && shown.contains(&format!("names `{value}`"))
                && shown.contains("outside the repository root"),
            "{value}: {shown}"
        );
        assert_eq!(err.kind(), crate::error::ErrorKind::TrustRefused, "{value}");
        if value.starts_with("..") {
            std::fs::remove_file(repo.path().join("../elsewhere.hcl")).unwrap();
        }
    }
    // A missing template names the file.
    let (_s, repo, _state) = with_repo(Scratch::new(), "[nomad]\njobspec_template = \"no.hcl\"\n");
    let err = RepositoryFile::read(repo.path(), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no.hcl, which cannot be read"), "{err}");
}

#[test]
fn entries_trusted_before_files_were_pinned_lapse_with_a_hint() {
    let (s, repo, state) = with_repo(Scratch::new(), "[nomad]\nnamespace = \"ci\"\n");
    let file = RepositoryFile::read(repo.path(), None).unwrap().unwrap();
    let old = serde_json::json!({
        "version": 1,
        "repositories": [{
            "root": crate::config::canonical_root(repo.path()),
            "sha256": file.sha256,
            "trusted_at": 1,
        }],
    });
    std::fs::write(state.path().join("trust.json"), old.to_string()).unwrap();
    let err = Config::load(&s.inputs).unwrap_err();
    assert_eq!(err.kind(), crate::error::ErrorKind::TrustRefused);
    let text = err.to_string();
    assert!(
        text.contains("trusted by an earlier leasebox")
            && text.contains("run `leasebox trust` again"),
        "{text}"
    );
    let entry = &TrustStore::new(state.path()).list().unwrap()[0];
    assert_eq!(entry.state_now(), "re-trust");
    trust(repo.path(), state.path());
    assert_eq!(s.load().settings().nomad.namespace, "ci");
}
