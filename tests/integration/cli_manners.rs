//! The command line's manners, through the real binary: `-h` against `--help`, `config --keys`,
//! shell completions (bash sourcing the script and completing recipe names and lease ids),
//! the man pages, and `--version` with the git revision.

use std::path::Path;
use std::process::Command;

use leasebox::config::KEYS;

use crate::support::{Scratch, code, describe, stdout};

const HEADING: &str = "Config flags (each also a config key and a LEASEBOX_* variable):";

#[test]
fn short_help_is_the_commands_own_options_and_long_help_adds_the_config_flags() {
    let s = Scratch::new();
    for command in [&["run"][..], &["status"], &["config"], &[]] {
        let mut short_args = command.to_vec();
        short_args.push("-h");
        let mut long_args = command.to_vec();
        long_args.push("--help");
        let short = s.run(&short_args);
        let long = s.run(&long_args);
        assert_eq!(code(&short), 0, "{}", describe(&short));
        assert_eq!(code(&long), 0, "{}", describe(&long));
        let (short, long) = (stdout(&short), stdout(&long));
        assert!(!short.contains(HEADING), "{command:?} -h:\n{short}");
        assert!(
            !short.contains("--nomad-image <"),
            "{command:?} -h:\n{short}"
        );
        assert!(
            short.contains("`--help` also shows the config flags"),
            "{short}"
        );
        // Short without counting the list of commands (which grows with each command).
        let own_lines: usize = short
            .split("\n\n")
            .filter(|block| !block.starts_with("Commands:"))
            .map(|block| block.lines().count())
            .sum();
        assert!(own_lines < 30, "{command:?} -h is long:\n{short}");
        // Every config flag sits under its own heading in `--help`, after the command's options.
        let (own, config) = long
            .split_once(HEADING)
            .unwrap_or_else(|| panic!("{command:?} --help has no config heading:\n{long}"));
        for key in KEYS {
            let flag = format!("--{} <", key.flag);
            assert!(
                config.contains(&flag),
                "{flag} not under the heading:\n{long}"
            );
            assert!(!own.contains(&flag), "{flag} before the heading:\n{long}");
        }
        assert!(
            long.lines().count() >= short.lines().count() + KEYS.len(),
            "{command:?}: --help {} lines, -h {}",
            long.lines().count(),
            short.lines().count()
        );
    }
}

#[test]
fn config_keys_lists_every_key_even_when_the_config_is_broken() {
    let s = Scratch::new();
    // `--keys` resolves nothing, so a broken user config does not stop it.
    let config_dir = s.path().join("config/leasebox");
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::write(config_dir.join("config.toml"), "nomad = [broken\n").unwrap();
    let broken = s.run(&["config"]);
    assert_ne!(code(&broken), 0, "{}", describe(&broken));
    let out = s.run(&["config", "--keys"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let text = stdout(&out);
    let header = text.lines().next().unwrap();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["KEY", "CLASS", "FLAG", "ENVIRONMENT", "DEFAULT"]
    );
    for key in KEYS {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(key.name))
            .unwrap_or_else(|| panic!("`{}` not listed:\n{text}", key.name));
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells[1], key.class.as_str(), "{line}");
        assert_eq!(cells[2], key.flag_arg(), "{line}");
        assert!(cells[3].starts_with(key.env), "{line}");
    }
    let ttl = text.lines().find(|l| l.starts_with("lease.ttl ")).unwrap();
    assert!(ttl.trim_end().ends_with("\"90m\""), "{ttl}");

    let json = s.run(&["config", "--keys", "--json"]);
    assert_eq!(code(&json), 0, "{}", describe(&json));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(rows.len(), KEYS.len());
    for (row, key) in rows.iter().zip(KEYS) {
        assert_eq!(row["key"], key.name);
        assert_eq!(row["env"], key.env);
        assert_eq!(row["flag"], key.flag_arg());
        assert_eq!(row["class"], key.class.as_str());
    }
    let cpu = rows.iter().find(|r| r["key"] == "nomad.cpu").unwrap();
    assert_eq!(cpu["default"], 1000);

    let both = s.run(&["config", "--keys", "--explain"]);
    assert_eq!(code(&both), 2, "{}", describe(&both));
}

/// A scratch repository with a recipe `hello` and a kept lease; returns its id.
fn repo_with_recipe_and_lease(s: &Scratch) -> String {
    s.write("recipes/hello.lua", "return nil\n");
    s.write(".leasebox/recipes/deploy.lua", "return nil\n");
    s.commit();
    let warm = s.run(&["warmup"]);
    assert_eq!(code(&warm), 0, "{}", describe(&warm));
    stdout(&warm).trim().to_owned()
}

/// Complete `words` (the last being the word under the cursor) the way bash does: source the
/// script `leasebox completions bash` printed, call its function with COMP_WORDS set, print
/// COMPREPLY one per line.
fn bash_complete(s: &Scratch, script: &str, words: &[&str]) -> Vec<String> {
    let script_path = s.path().join("leasebox.bash");
    std::fs::write(&script_path, script).unwrap();
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let cword = words.len() - 1;
    let current = words[cword];
    let previous = if cword > 0 { words[cword - 1] } else { "" };
    let program = format!(
        "set -eu\nsource '{}'\nCOMP_WORDS=({})\nCOMP_CWORD={cword}\nCOMP_TYPE=9\n\
         _clap_complete_leasebox leasebox '{current}' '{previous}'\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        script_path.display(),
        quoted.join(" ")
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&program)
        .current_dir(s.repo())
        .env_clear()
        .envs(s.env())
        .output()
        .expect("bash");
    assert_eq!(code(&out), 0, "{program}\n{}", describe(&out));
    // An empty COMPREPLY prints one empty line.
    stdout(&out)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_sources_the_script_and_completes_commands_recipes_and_lease_ids() {
    let s = Scratch::new();
    let id = repo_with_recipe_and_lease(&s);
    let out = s.run(&["completions", "bash"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let script = stdout(&out);
    assert!(script.contains("LEASEBOX_COMPLETE=\"bash\""), "{script}");
    // Sourcing it registers the completion and prints nothing.
    let path = s.path().join("registered.bash");
    std::fs::write(&path, &script).unwrap();
    let sourced = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -eu; source '{}'; complete -p leasebox",
            path.display()
        ))
        .env_clear()
        .envs(s.env())
        .output()
        .unwrap();
    assert_eq!(code(&sourced), 0, "{}", describe(&sourced));
    assert!(
        stdout(&sourced).contains("-F _clap_complete_leasebox leasebox"),
        "{}",
        describe(&sourced)
    );
    assert!(sourced.stderr.is_empty(), "{}", describe(&sourced));

    let commands = bash_complete(&s, &script, &["leasebox", "st"]);
    assert_eq!(commands, ["status", "stop"]);
    let recipes = bash_complete(&s, &script, &["leasebox", "run", ""]);
    assert!(recipes.contains(&"hello".to_owned()), "{recipes:?}");
    assert!(recipes.contains(&"deploy".to_owned()), "{recipes:?}");
    let recipes = bash_complete(&s, &script, &["leasebox", "run", "he"]);
    assert_eq!(recipes, ["hello"]);
    let ids = bash_complete(&s, &script, &["leasebox", "stop", "lbx_"]);
    assert_eq!(ids, std::slice::from_ref(&id));
    let ids = bash_complete(&s, &script, &["leasebox", "run", "--lease", ""]);
    assert_eq!(ids, std::slice::from_ref(&id));
    let stop = s.run(&["stop", &id]);
    assert_eq!(code(&stop), 0, "{}", describe(&stop));
    assert!(bash_complete(&s, &script, &["leasebox", "status", "lbx_"]).is_empty());
}

/// What the binary answers a shell's completion request with (the protocol each script uses).
fn ask(s: &Scratch, shell: &str, words: &[&str]) -> String {
    let mut cmd = s.leasebox(&["--"]);
    cmd.args(words)
        .env("LEASEBOX_COMPLETE", shell)
        .env("_CLAP_COMPLETE_INDEX", (words.len() - 1).to_string());
    let out = cmd.output().unwrap();
    assert_eq!(code(&out), 0, "{}", describe(&out));
    stdout(&out)
}

#[test]
fn zsh_and_fish_scripts_call_back_for_live_recipe_names_and_lease_ids() {
    let s = Scratch::new();
    let id = repo_with_recipe_and_lease(&s);
    let zsh = stdout(&s.run(&["completions", "zsh"]));
    assert!(zsh.starts_with("#compdef leasebox"), "{zsh}");
    assert!(zsh.contains("LEASEBOX_COMPLETE=\"zsh\""), "{zsh}");
    let fish = stdout(&s.run(&["completions", "fish"]));
    assert!(
        fish.contains("complete --keep-order --exclusive --command leasebox"),
        "{fish}"
    );
    assert!(fish.contains("LEASEBOX_COMPLETE=fish"), "{fish}");
    for shell in ["zsh", "fish"] {
        let names = ask(&s, shell, &["leasebox", "run", "he"]);
        assert!(
            names.lines().any(|l| l.starts_with("hello")),
            "{shell}: {names}"
        );
        let ids = ask(&s, shell, &["leasebox", "status", "lbx"]);
        assert!(ids.lines().any(|l| l.starts_with(&id)), "{shell}: {ids}");
    }
    let bad = s.run(&["completions", "tcsh"]);
    assert_eq!(code(&bad), 2, "{}", describe(&bad));
    let _ = s.run(&["stop", &id]);
}

#[test]
fn man_writes_roff_pages() {
    let s = Scratch::new();
    let out = s.run(&["man"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let page = stdout(&out);
    let th = page
        .lines()
        .find(|l| l.starts_with(".TH "))
        .unwrap_or_else(|| panic!("no .TH header:\n{page}"));
    assert!(th.starts_with(".TH leasebox 1 "), "{th}");
    for section in [
        ".SH NAME",
        ".SH SYNOPSIS",
        ".SH SUBCOMMANDS",
        ".SH \"CONFIG FLAGS\"",
    ] {
        assert!(page.contains(section), "{section} missing:\n{page}");
    }
    // Each config flag once, in its own section, not in the synopsis.
    assert!(page.contains("\\fB\\-\\-nomad\\-image\\fR"), "{page}");
    let synopsis = page.split(".SH SYNOPSIS").nth(1).unwrap();
    let synopsis = synopsis.split(".SH ").next().unwrap();
    assert!(!synopsis.contains("nomad"), "{synopsis}");

    let dir = s.path().join("man/man1");
    let out = s.run(&["man", "-o", dir.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    for name in [
        "leasebox.1",
        "leasebox-run.1",
        "leasebox-report.1",
        "leasebox-man.1",
    ] {
        let text = std::fs::read_to_string(dir.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}\n{}", describe(&out)));
        let stem = name.trim_end_matches(".1");
        assert!(text.contains(&format!(".TH {stem} 1 ")), "{name}");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.join(name)).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o644, "{name}");
    }
    // Nothing else was left there (no temporary files).
    let count = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(count, stdout(&out).lines().count());
}

#[test]
fn version_names_the_git_revision_it_was_built_from() {
    let s = Scratch::new();
    let out = s.run(&["--version"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let line = stdout(&out).trim().to_owned();
    let prefix = format!("leasebox {} (", env!("CARGO_PKG_VERSION"));
    let revision = line
        .strip_prefix(&prefix)
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{line:?}"));
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(manifest)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(head) => {
            let hash = revision.trim_end_matches("-dirty");
            assert!(
                hash.len() >= 7 && hash.chars().all(|c| c.is_ascii_hexdigit()),
                "{line}"
            );
            assert!(
                head.starts_with(hash) || hash.starts_with(&head),
                "{line} vs {head}"
            );
        }
        None => assert_eq!(revision, "unknown revision", "{line}"),
    }
    // Every command says the same.
    let sub = s.run(&["run", "--version"]);
    assert_eq!(
        stdout(&sub).trim(),
        line.replacen("leasebox", "leasebox-run", 1)
    );
}
