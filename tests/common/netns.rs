//! A network namespace a test makes for itself, whose loopback loses and duplicates
//! datagrams at random: the faults of a bad link, end to end, with real sockets. The test's
//! thread enters it, so every socket the test opens and every process it starts (the
//! engine, SIPp) lives there; nothing outside the namespace is touched, and it is deleted
//! when the value is dropped.
//!
//! The faults are nftables rules: UDP datagrams are dropped on receipt with probability
//! `loss` (dropping them on the way out would tell the sender, as a send error) and
//! duplicated on the way out with probability `duplicate`. `tc netem` would also delay and
//! reorder, but kernels built without `sch_netem` (this project's CI machine among them)
//! cannot run it; nftables' random numbers and `dup` are in every kernel with nf_tables.
//! Instead, [`FaultyNet::delay_some`] sends a share of the datagrams to some ports through
//! a slow HTB class (picked per packet by an nftables rule setting the packet's priority
//! to that class), so they arrive tens of milliseconds late, behind datagrams sent after
//! them: delay and reordering.
//!
//! Needs root, `ip` (iproute2) and `nft` (nftables). When they are missing the test is
//! skipped with a notice, unless `HOTLINE_REQUIRE_NETNS` is set (as in CI).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// A namespace with a faulty loopback.
pub struct FaultyNet {
    name: String,
}

/// What the faults did so far.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    pub dropped: u64,
    pub duplicated: u64,
    /// Sent through the slow class (see [`FaultyNet::delay_some`]).
    pub delayed: u64,
}

fn run(args: &[&str]) -> Result<Output, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", args[0]))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Skips (None) or, under `HOTLINE_REQUIRE_NETNS`, fails the test that cannot run here.
fn cannot_run(test: &str, why: &str) -> Option<FaultyNet> {
    if std::env::var_os("HOTLINE_REQUIRE_NETNS").is_some() {
        panic!("{test}: {why} (HOTLINE_REQUIRE_NETNS is set)");
    }
    eprintln!("skipping {test}: {why}");
    None
}

impl FaultyNet {
    /// A new namespace whose loopback is up, drops `loss_permille` of the UDP datagrams
    /// it receives and duplicates `duplicate_permille` of those sent. None when this
    /// machine cannot make one (see the module comment).
    pub fn create(test: &str, loss_permille: u32, duplicate_permille: u32) -> Option<FaultyNet> {
        static N: AtomicU32 = AtomicU32::new(0);
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return cannot_run(test, "making a network namespace takes root");
        }
        for tool in ["ip", "nft"] {
            if Command::new(tool)
                .arg("-V")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_err()
            {
                return cannot_run(
                    test,
                    &format!("`{tool}` is not on PATH (Debian: apt-get install iproute2 nftables)"),
                );
            }
        }
        let name = format!(
            "hotline-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        if let Err(e) = run(&["ip", "netns", "add", &name]) {
            return cannot_run(test, &e);
        }
        // From here on, dropping the value deletes the namespace.
        let net = FaultyNet { name };
        let rules = format!(
            "table ip faults {{\n\
               chain lose {{\n\
                 type filter hook input priority 0; policy accept;\n\
                 meta l4proto udp numgen random mod 1000 < {loss_permille} counter drop\n\
               }}\n\
               chain outgoing {{\n\
                 type filter hook output priority 0; policy accept;\n\
                 meta l4proto udp numgen random mod 1000 < {duplicate_permille} counter dup to 127.0.0.1 device \"lo\"\n\
               }}\n\
             }}\n"
        );
        let rules_file = std::env::temp_dir().join(format!("{}.nft", net.name));
        std::fs::write(&rules_file, rules).expect("writing the nftables rules");
        let made = net
            .exec(&["ip", "link", "set", "lo", "up"])
            .and_then(|_| net.exec(&["nft", "-f", &rules_file.to_string_lossy()]));
        let _ = std::fs::remove_file(&rules_file);
        if let Err(e) = made {
            return cannot_run(test, &e);
        }
        Some(net)
    }

    fn exec(&self, args: &[&str]) -> Result<Output, String> {
        let mut all = vec!["ip", "netns", "exec", &self.name];
        all.extend_from_slice(args);
        run(&all)
    }

    /// Moves the calling thread into the namespace: its sockets from now on, and the
    /// processes it starts, are there. (Other threads of the test process are not.)
    pub fn enter(&self) {
        let ns = File::open(format!("/run/netns/{}", self.name)).expect("the namespace's file");
        // SAFETY: a valid descriptor of a network namespace; affects this thread only.
        let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
    }

    /// Delays `permille` of the UDP datagrams sent to `ports` (first, last): they go through
    /// an HTB class limited to `kbit`, so each waits its own length at that rate (a
    /// 200-byte RTP packet about 100 ms at 16 kbit/s) while the others pass it.
    pub fn delay_some(&self, ports: (u16, u16), permille: u32, kbit: u32) -> Result<(), String> {
        let rate = format!("{kbit}kbit");
        let (first, last) = ports;
        self.exec(&[
            "tc", "qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default", "10",
            "r2q", "1000",
        ])?;
        self.exec(&[
            "tc", "class", "add", "dev", "lo", "parent", "1:", "classid", "1:10", "htb", "rate",
            "10gbit",
        ])?;
        self.exec(&[
            "tc", "class", "add", "dev", "lo", "parent", "1:", "classid", "1:20", "htb", "rate",
            &rate, "ceil", &rate, "burst", "10b", "cburst", "10b",
        ])?;
        let rule = format!(
            "add rule ip faults outgoing udp dport {first}-{last} numgen random mod 1000 < {permille} meta priority set 1:20 counter"
        );
        let args: Vec<&str> = std::iter::once("nft").chain(rule.split(' ')).collect();
        self.exec(&args).map(|_| ())
    }

    /// The rules' counters: datagrams dropped, duplicated and delayed so far.
    pub fn faults(&self) -> Faults {
        let listing = self
            .exec(&["nft", "list", "table", "ip", "faults"])
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let packets = |action: &str| {
            listing
                .lines()
                .find(|l| l.contains(action))
                .and_then(|l| l.split("packets ").nth(1))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        Faults {
            dropped: packets(" drop"),
            duplicated: packets(" dup to"),
            delayed: packets("priority set"),
        }
    }
}

impl Drop for FaultyNet {
    fn drop(&mut self) {
        let _ = run(&["ip", "netns", "del", &self.name]);
    }
}
