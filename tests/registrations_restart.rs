//! Registrations survive a restart: an agent's phone registers with a real `hotline serve`,
//! the process is killed and started again on the same data folder, and a caller queued
//! right after makes the agent's phone ring without it registering again.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hotline::config::Protocol;
use hotline_load::caller::answerer::Answerer;
use hotline_load::caller::{CallMedia, Offer, Phone};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const SECOND: Duration = Duration::from_secs(1);

fn free_udp_port() -> u16 {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn scratch() -> PathBuf {
    let d = std::env::temp_dir().join(format!("hotline-reg-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("flows")).unwrap();
    d
}

fn write_config(dir: &Path, sip: u16) {
    std::fs::write(
        dir.join("flows/main.yaml"),
        "start: q\nsteps:\n  q:\n    queue: support\n    on_timeout: bye\n  bye:\n    play: goodbye\n    next: hangup\n",
    )
    .unwrap();
    let prompts = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
    std::fs::write(
        dir.join("hotline.yaml"),
        format!(
            "sip: {{ listen: [\"udp:127.0.0.1:{sip}\"] }}\nrtp: {{ ports: 47200-47299 }}\n\
flows: flows\nprompts: {}\ndata: data\nrecords: off\n\
queues:\n  support: {{ ring_timeout: 20s }}\n\
agents:\n  alice: {{ password: alice-secret, queues: {{ support: 0 }} }}\n",
            prompts.display()
        ),
    )
    .unwrap();
}

fn serve(dir: &Path) -> Killed {
    let child = Command::new(env!("CARGO_BIN_EXE_hotline"))
        .current_dir(dir)
        .args(["serve", "--config", "hotline.yaml"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Killed(child)
}

/// Waits until the engine answers an OPTIONS on `sip` (without registering anything).
async fn ready(child: &mut Killed, sip: SocketAddr) {
    let mut phone = Phone::new(Protocol::Udp, sip).await.unwrap();
    let until = Instant::now() + 60 * SECOND;
    for n in 1.. {
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "the engine exited before answering"
        );
        assert!(Instant::now() < until, "no SIP answer on {sip}");
        let call_id = format!("ready-{n}@test");
        let options = format!(
            "OPTIONS sip:ping@{sip} SIP/2.0\r\nVia: {}\r\nMax-Forwards: 70\r\n\
From: <sip:probe@{local}>;tag=p{n}\r\nTo: <sip:ping@{sip}>\r\nCall-ID: {call_id}\r\n\
CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
            phone.via(),
            local = phone.local,
        );
        phone.send_raw(options.as_bytes()).await.unwrap();
        if phone
            .response(
                &call_id,
                &hotline::sip::message::Method::Options,
                200,
                SECOND,
            )
            .await
            .is_ok()
        {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_registered_before_a_restart_is_rung_at_once_after_it() {
    let dir = scratch();
    let port = free_udp_port();
    write_config(&dir, port);
    let sip = SocketAddr::new(LOCALHOST, port);

    let mut first = serve(&dir);
    ready(&mut first, sip).await;
    let mut alice = Answerer::bind(LOCALHOST).await.unwrap();
    assert_eq!(
        alice
            .register(sip, "alice", "alice-secret", 600)
            .await
            .unwrap(),
        200
    );
    // Killed outright: nothing is written at exit, the 200 meant it was on disk.
    drop(first);
    assert!(dir.join("data/registrations.json").exists());

    let mut second = serve(&dir);
    ready(&mut second, sip).await;
    let mut caller = Phone::new(Protocol::Udp, sip).await.unwrap();
    let media = CallMedia::bind(LOCALHOST, true).unwrap();
    let _call = caller
        .call("100", &media, Offer::Default)
        .await
        .expect("the caller is answered");
    let offer = alice
        .next_invite(20 * SECOND)
        .await
        .expect("the agent's phone rings without registering again");
    let text = String::from_utf8_lossy(&offer.invite.to_bytes()).into_owned();
    assert!(text.starts_with("INVITE sip:"), "{text}");
    drop(second);
    let _ = std::fs::remove_dir_all(&dir);
}
