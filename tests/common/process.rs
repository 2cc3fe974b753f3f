//! Child processes the tests start (`hotline serve`, Kamailio) and the ports they get.

use std::net::{Ipv4Addr, UdpSocket};
use std::process::Child;

/// A child process killed (SIGKILL) when dropped, even on a failed assert. A child
/// started as the leader of its own process group (`CommandExt::process_group(0)`, as
/// Kamailio is, whose workers outlive a killed main process) is killed with its group.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        // Only while the child is unreaped: until then its pid is not reused, so a group
        // whose id is that pid can only be the one it leads.
        if let (Ok(None), Ok(pid)) = (self.0.try_wait(), i32::try_from(self.0.id())) {
            // SAFETY: a plain kill(2); without such a group it fails with ESRCH.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A UDP port on loopback that was free a moment ago.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the `hotline serve` binary in `dir` (on its `hotline.yaml`, the log in
/// `dir/engine.log`) with SIP on `sip` over UDP and `args` more (`--admin`, `--rtp-ports`,
/// ...; the demo shop is off), and waits (generously) until it answers.
pub async fn serve_in(dir: &std::path::Path, sip: std::net::SocketAddr, args: &[&str]) -> Killed {
    let log = std::fs::File::create(dir.join("engine.log")).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_hotline"))
        .args(["serve", "--config", "hotline.yaml", "--demo-shop", "off"])
        .args(["--sip", &format!("udp:{sip}")])
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("hotline serve starts");
    let process = Killed(child);
    let mut probe = hotline_load::load::engine::Engine::attach(sip, Some(process.0.id()));
    if let Err(e) = probe.wait_ready(std::time::Duration::from_secs(60)).await {
        panic!(
            "hotline serve in {} did not answer: {e}\n{}",
            dir.display(),
            std::fs::read_to_string(dir.join("engine.log")).unwrap_or_default()
        );
    }
    process
}

/// A TCP port on loopback that was free a moment ago (for a listener such as the admin
/// API: a free UDP port says nothing of TCP).
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
