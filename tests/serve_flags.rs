//! `hotline serve`'s command line moves or switches off the admin API and the demo shop,
//! with the configuration's own rule for an admin API reachable from other hosts.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn hotline() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hotline"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

/// The status line of `GET /health` on `port`, or `None` while nothing answers.
fn health(port: u16) -> Option<String> {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.lines().next().map(str::to_string)
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_admin_api_moves_to_the_address_given_and_the_demo_shop_can_be_switched_off() {
    let admin = free_port();
    let sip = free_port();
    let child = hotline()
        .args(["serve", "--config", "hotline.yaml", "--demo-shop", "off"])
        .args(["--admin", &format!("127.0.0.1:{admin}")])
        .args(["--sip", &format!("udp:127.0.0.1:{sip}")])
        .args(["--rtp-ports", "47000-47099"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Killed(child);
    let until = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = health(admin) {
            break s;
        }
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "the engine exited before answering"
        );
        assert!(Instant::now() < until, "no admin API on port {admin}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.contains(" 200 "), "{status}");
}

#[test]
fn an_admin_api_reachable_from_other_hosts_needs_a_token() {
    let out = hotline()
        .args(["serve", "--config", "hotline.yaml", "--admin", "0.0.0.0:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs admin.token"), "{err}");
}

#[test]
fn a_listener_address_that_is_not_one_is_refused_with_the_expected_form() {
    let out = hotline()
        .args([
            "serve",
            "--config",
            "hotline.yaml",
            "--demo-shop",
            "port 80",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("expected an address like"), "{err}");
}
