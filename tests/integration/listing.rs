//! `list` and `status` for people: relative times (`now`, `5m ago`), when the lease expires
//! (`in 29m`), the box's live state; their `--json` shapes stay what they were.

use crate::support::{Scratch, code, describe, stdout};

#[test]
fn list_and_status_read_relative_times_expiry_and_the_live_state() {
    let s = Scratch::new();
    s.write("a.txt", "a\n");
    s.commit();
    let out = s.run(&["warmup", "--lease-idle", "30m", "--lease-ttl", "2h"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let id = stdout(&out).trim().to_owned();

    let list = s.run(&["list"]);
    assert_eq!(code(&list), 0, "{}", describe(&list));
    let text = stdout(&list);
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "ID",
            "BACKEND",
            "STATE",
            "BOX",
            "KEEP",
            "CREATED",
            "USED",
            "EXPIRES",
            "REPOSITORY"
        ]
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..5],
        [id.as_str(), "local", "active", "ready", "yes"],
        "{text}"
    );
    // Just made: created and used now (or seconds ago); the idle limit expires it first.
    assert!(row[5] == "now" || row[6] == "ago", "{text}");
    assert!(
        text.contains(" in 29m ") || text.contains(" in 30m "),
        "{text}"
    );
    assert!(!text.contains('\x1b'), "piped: no colour: {text}");

    let status = s.run(&["status", &id]);
    assert_eq!(code(&status), 0, "{}", describe(&status));
    let text = stdout(&status);
    assert!(text.contains("state:      active (box: ready)"), "{text}");
    for field in ["created:", "last used:"] {
        let line = text.lines().find(|l| l.starts_with(field)).unwrap();
        assert!(
            line.ends_with("(now)") || (line.ends_with(" ago)") && !line.contains("ago ago")),
            "{text}"
        );
    }
    let expires = text.lines().find(|l| l.starts_with("expires:")).unwrap();
    assert!(
        expires.ends_with("(in 29m)") || expires.ends_with("(in 30m)"),
        "{text}"
    );

    // The JSON shapes are the ones scripts already read.
    let json: serde_json::Value =
        serde_json::from_slice(&s.run(&["status", &id, "--json"]).stdout).unwrap();
    let mut keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "backend",
            "created",
            "expires_at",
            "handle",
            "holder",
            "id",
            "idle_secs",
            "in_use",
            "keep",
            "last_used",
            "owner",
            "remote",
            "renewed",
            "repo_root",
            "state",
            "ttl_secs",
            "workdir"
        ]
    );
    let list: serde_json::Value =
        serde_json::from_slice(&s.run(&["list", "--json"]).stdout).unwrap();
    assert_eq!(list[0]["remote"], "ready");
    // Nobody holds a warmed-up lease between runs.
    assert_eq!(list[0]["in_use"], false);
    assert_eq!(code(&s.run(&["stop", &id])), 0);
}
