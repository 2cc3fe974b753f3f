//! The core's promise, checked on its dependency tree: no async runtime, no sockets, no
//! HTTP, no random numbers. A dependency that brings one of those in fails this test, so
//! the core stays pure by construction rather than by review.

// This test runs `cargo tree`; the core's ban on processes is for the library, not this.
#![allow(clippy::disallowed_methods)]

use std::process::Command;

/// Crates that would give the core a runtime, sockets, HTTP or a random source.
const FORBIDDEN: &[&str] = &[
    "tokio", "mio", "socket2", "nix", "reqwest", "hyper", "axum", "rustls", "rusqlite", "notify",
    "rand",
];

/// `rand` reaches the tree only through the `sdp` crate (its session-id helper, which the
/// core never calls: clippy.toml forbids it). Any other path to a random source fails.
const ALLOWED_PARENTS: &[(&str, &str)] = &[("rand", "sdp")];

/// (depth, crate name) for every line of `cargo tree`, in order.
fn tree() -> Vec<(usize, String)> {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "-p",
            "hotline-core",
            "-e",
            "normal",
            "--prefix",
            "depth",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .filter_map(|line| {
            let digits = line.chars().take_while(char::is_ascii_digit).count();
            let depth = line[..digits].parse().ok()?;
            let name = line[digits..].split_whitespace().next()?.to_owned();
            Some((depth, name))
        })
        .collect()
}

#[test]
fn the_core_depends_on_no_runtime_socket_or_random_source() {
    let tree = tree();
    assert_eq!(tree.first().map(|(_, n)| n.as_str()), Some("hotline-core"));
    let mut path: Vec<&str> = Vec::new();
    let mut bad = Vec::new();
    for (depth, name) in &tree {
        path.truncate(*depth);
        let parent = path.last().copied().unwrap_or("");
        let allowed = ALLOWED_PARENTS
            .iter()
            .any(|(c, p)| c == name && *p == parent);
        if FORBIDDEN.contains(&name.as_str()) && !allowed {
            bad.push(format!("{} -> {name}", path.join(" -> ")));
        }
        path.push(name);
    }
    assert!(
        bad.is_empty(),
        "forbidden dependencies of hotline-core:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_check_sees_the_whole_tree() {
    // A broken `cargo tree` call must not pass the test above by printing nothing.
    let names: Vec<String> = tree().into_iter().map(|(_, n)| n).collect();
    for expected in ["thiserror", "serde", "sdp", "minijinja"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
}
