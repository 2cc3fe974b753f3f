//! The engine under load: either a child process the load tool starts (`hotline serve` on a
//! loopback port, killed when the tool ends, even if the tool itself dies) or one already
//! running that the tool only addresses. It knows how to ask "are you up?" (OPTIONS, 200)
//! and how to stop the child; it measures nothing.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::load::error::{Context, LoadError, bail};
use tokio::time::Instant;

use crate::caller::Phone;
use crate::config::{PortRange, Protocol};
use crate::sip::message::Method;
use crate::sip::random_token;

/// How to start the engine as a child.
#[derive(Debug, Clone)]
pub struct SpawnOptions {
    pub config: PathBuf,
    pub sip: SocketAddr,
    pub rtp_ports: PortRange,
    pub media_workers: usize,
    /// Where the child's stdout and stderr go.
    pub log: PathBuf,
}

/// The engine the load is placed against.
pub struct Engine {
    child: Option<Child>,
    pub pid: Option<u32>,
    pub sip: SocketAddr,
    pub log: Option<PathBuf>,
}

impl Engine {
    /// An engine somebody else runs.
    pub fn attach(sip: SocketAddr, pid: Option<u32>) -> Engine {
        Engine {
            child: None,
            pid,
            sip,
            log: None,
        }
    }

    /// Starts this very binary as `hotline serve`.
    pub fn spawn(opts: &SpawnOptions) -> Result<Engine, LoadError> {
        let exe = std::env::current_exe().context("finding the hotline binary")?;
        let log = std::fs::File::create(&opts.log)
            .with_context(|| format!("creating the engine log {}", opts.log.display()))?;
        let log2 = log
            .try_clone()
            .context("duplicating the engine log handle")?;
        // Relative paths in the configuration are resolved from its own directory, but the
        // engine is started there too so that its log names familiar paths.
        let dir = opts
            .config
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        let mut cmd = Command::new(exe);
        cmd.arg("serve")
            .arg("--config")
            .arg(&opts.config)
            .arg("--sip")
            .arg(format!("udp:{}", opts.sip))
            .arg("--rtp-ports")
            .arg(opts.rtp_ports.to_string())
            .arg("--media-workers")
            .arg(opts.media_workers.to_string())
            // The engine under load needs neither; a sample running beside it keeps its ports.
            .arg("--admin")
            .arg("off")
            .arg("--demo-shop")
            .arg("off")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        // SAFETY: prctl is async-signal-safe and touches no memory of ours; it makes the
        // kernel kill the engine if the load tool dies without cleaning up.
        unsafe {
            cmd.pre_exec(|| {
                if nix::libc::prctl(nix::libc::PR_SET_PDEATHSIG, nix::libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().context("starting `hotline serve`")?;
        Ok(Engine {
            pid: Some(child.id()),
            child: Some(child),
            sip: opts.sip,
            log: Some(opts.log.clone()),
        })
    }

    pub fn spawned(&self) -> bool {
        self.child.is_some()
    }

    /// Whether the child has ended (never true for an attached engine).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Asks with OPTIONS until the engine answers 200, the child dies or `timeout` passes.
    /// Returns how long it took.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<Duration, LoadError> {
        let start = Instant::now();
        let deadline = start + timeout;
        let mut phone = Phone::new(Protocol::Udp, self.sip)
            .await
            .context("opening a SIP socket for the readiness probe")?;
        let mut cseq = 0u32;
        while Instant::now() < deadline {
            if let Some(status) = self.exited() {
                bail!(
                    "the engine exited ({status}) before answering; see {}",
                    self.log_name()
                );
            }
            cseq += 1;
            let call_id = format!("probe-{}", random_token(12));
            let text = options_text(&phone, &call_id, cseq);
            if phone.send_raw(text.as_bytes()).await.is_ok()
                && let Ok(r) = phone
                    .response(&call_id, &Method::Options, 200, Duration::from_millis(250))
                    .await
                && r.status == 200
            {
                return Ok(start.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "no 200 to OPTIONS from {} within {:?}; see {}",
            self.sip,
            timeout,
            self.log_name()
        )
    }

    fn log_name(&self) -> String {
        self.log
            .as_ref()
            .map_or_else(|| "the engine's log".into(), |p| p.display().to_string())
    }

    /// Stops the child: SIGINT (the engine's orderly stop), then SIGKILL after `grace`.
    pub async fn stop(&mut self, grace: Duration) {
        let Some(child) = self.child.as_mut() else {
            return;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: kill only sends a signal to our own child.
            unsafe {
                nix::libc::kill(pid, nix::libc::SIGINT);
            }
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                self.child = None;
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        self.child = None;
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn options_text(phone: &Phone, call_id: &str, cseq: u32) -> String {
    format!(
        "OPTIONS sip:probe@{server} SIP/2.0\r\n\
Via: {via}\r\n\
Max-Forwards: 70\r\n\
From: <sip:load@{local}>;tag={tag}\r\n\
To: <sip:probe@{server}>\r\n\
Call-ID: {call_id}\r\n\
CSeq: {cseq} OPTIONS\r\n\
Content-Length: 0\r\n\r\n",
        server = phone.server,
        via = phone.via(),
        local = phone.local,
        tag = random_token(8),
    )
}
