//! Logins against a running engine, with its log captured at the most verbose level:
//! every failed login is one line the fail2ban filter of docs/reliability.md matches
//! (source, reason, user), and no credential (the Authorization header, the digest
//! response, the password, its HA1) reaches any line. The sample hotline.yaml listens on
//! loopback, and `serve` refuses a public address while an agent keeps a sample password.

mod common;

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hotline::config::{Config, Protocol};
use hotline::server::Server;
use hotline::sip::digest::{Algorithm, Authorization, Challenge};
use hotline::sip::message::{HeaderName, Message, Response, parse};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// The fail2ban filter of docs/reliability.md ("Toll fraud and logins").
const FAILREGEX: &str =
    r#"^.* login failed source=<HOST> reason="(?:wrong_password|unknown_user)""#;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn exchange(sock: &tokio::net::UdpSocket, server: SocketAddr, text: &str) -> Response {
    sock.send_to(text.as_bytes(), server).await.unwrap();
    let mut buf = vec![0u8; 65536];
    let n = tokio::time::timeout(Duration::from_secs(10), sock.recv(&mut buf))
        .await
        .expect("an answer")
        .unwrap();
    match parse(&buf[..n], &Default::default()).unwrap() {
        Message::Response(r) => r,
        Message::Request(r) => panic!("{r:?}"),
    }
}

fn register_text(
    sock: SocketAddr,
    server: SocketAddr,
    user: &str,
    cseq: u32,
    auth: Option<&str>,
) -> String {
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "REGISTER sip:{server} SIP/2.0\r\nVia: SIP/2.0/UDP {sock};branch=z9hG4bKr{user}{cseq};rport\r\n\
Max-Forwards: 70\r\nFrom: <sip:{user}@{server}>;tag=t{cseq}\r\nTo: <sip:{user}@{server}>\r\n\
Call-ID: reg-{user}@test\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{sock}>\r\n\
Expires: 600\r\n{auth}Content-Length: 0\r\n\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_fail2ban_lines_and_credentials_never_reach_the_log() {
    let captured = Captured::default();
    let sink = captured.clone();
    // The binary's text format, at the most verbose level.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
        .with_target(false)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .try_init();

    let dir = std::env::temp_dir().join(format!("hotline-reg-sec-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("flows")).unwrap();
    std::fs::write(
        dir.join("flows/main.yaml"),
        "start: bye\nsteps:\n  bye:\n    play: goodbye\n    next: hangup\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("hotline.yaml"),
        format!(
            "sip: {{ listen: [\"udp:127.0.0.1:0\"] }}\nrtp: {{ ports: 47300-47319 }}\nflows: flows\n\
prompts: {}\ndata: data\nrecords: off\nqueues:\n  support: {{}}\n\
agents:\n  alice: {{ password: s3cret-pw, queues: {{ support: 0 }} }}\n",
            common::repo().join("prompts").display()
        ),
    )
    .unwrap();
    let cfg = Config::load(&dir.join("hotline.yaml")).unwrap();
    let srv = Server::start(cfg, 1).await.unwrap().spawn();
    let server = common::addr(&srv, Protocol::Udp);
    let sock = tokio::net::UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let me = sock.local_addr().unwrap();

    let mut secrets = vec![
        "s3cret-pw".to_string(),
        Algorithm::Sha256.ha1("alice", "hotline", "s3cret-pw"),
        Algorithm::Md5.ha1("alice", "hotline", "s3cret-pw"),
    ];
    let mut cseq = 0;
    let mut answers = Vec::new();
    for (user, password) in [
        ("alice", "guess-1"),
        ("mallory", "guess-2"),
        ("alice", "s3cret-pw"),
    ] {
        cseq += 1;
        let challenge = exchange(&sock, server, &register_text(me, server, user, cseq, None)).await;
        assert_eq!(challenge.status, 401);
        let ch = challenge
            .headers
            .get_all(HeaderName::WwwAuthenticate)
            .map(|v| Challenge::parse(v.as_str().unwrap()).unwrap())
            .find(|c| c.algorithm == Algorithm::Sha256)
            .unwrap();
        let auth = Authorization::answer(
            &ch,
            user,
            password,
            "REGISTER",
            &format!("sip:{server}"),
            "c0ffee",
            1,
        );
        secrets.push(auth.response.clone());
        let auth = auth.to_string();
        secrets.push(auth.clone());
        cseq += 1;
        let resp = exchange(
            &sock,
            server,
            &register_text(me, server, user, cseq, Some(&auth)),
        )
        .await;
        answers.push((resp.status, resp.reason.clone()));
    }
    // An unknown user and a wrong password look alike; the right one logs in.
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0].0, 403);
    assert_eq!(answers[2].0, 200);
    drop(srv);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let log = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    let re = regex::Regex::new(&FAILREGEX.replace("<HOST>", r"(?P<host>\S+)")).unwrap();
    let hits: Vec<(String, String)> = log
        .lines()
        .filter_map(|l| {
            re.captures(l)
                .map(|c| (c["host"].to_string(), l.to_string()))
        })
        .collect();
    assert_eq!(hits.len(), 2, "{log}");
    for (host, line) in &hits {
        assert_eq!(host, "127.0.0.1", "{line}");
    }
    assert!(hits[0].1.contains("user=\"alice\""), "{}", hits[0].1);
    assert!(hits[1].1.contains("user=\"mallory\""), "{}", hits[1].1);
    for s in &secrets {
        assert!(!log.contains(s.as_str()), "'{s}' reached the log:\n{log}");
    }
    assert!(!log.contains("Authorization"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_sample_listens_on_loopback_and_serve_refuses_a_public_address_with_its_passwords() {
    let repo = common::repo();
    let sample = Config::load(&repo.join("hotline.yaml")).unwrap();
    assert!(!sample.listen.is_empty());
    for l in &sample.listen {
        assert!(l.addr.ip().is_loopback(), "{:?}", l.addr);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_hotline"))
        .current_dir(&repo)
        .args(["serve", "--config", "hotline.yaml", "--demo-shop", "off"])
        .args(["--admin", "127.0.0.1:0", "--sip", "udp:0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("agents.alice.password"), "{err}");
    assert!(err.contains("0.0.0.0"), "{err}");
}
