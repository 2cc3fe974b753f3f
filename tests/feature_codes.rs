//! Feature codes from an agent's phone on a real hotline on loopback: the agent registers
//! with digest, dials *41 from its registered address and hears two beeps before the
//! hotline hangs up, and the queues show it paused; *42 resumes it. The same From from
//! another address, or a caller who is not an agent, gets 403 and changes nothing.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::{SECOND, addr, server};
use hotline::config::{Config, Protocol};
use hotline::server::RunningServer;
use hotline::sip::digest::{Algorithm, Authorization, Challenge};
use hotline::sip::message::{HeaderName, Method, Response};
use hotline_load::caller::{CallMedia, Phone};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

const QUEUES: &str = "
queues:
  support: {}
agents:
  alice: { password: s3cret, queues: { support: 0 } }
";

fn with_queues(cfg: &mut Config) {
    let q = Config::from_str_at(QUEUES, &common::repo().join("hotline.yaml")).expect("queues");
    cfg.queues = q.queues;
    cfg.agents = q.agents;
}

/// Sends a REGISTER for `user` from `phone`, answering the digest challenge.
async fn register(phone: &mut Phone, user: &str, password: &str) {
    let call_id = format!("reg-{}@test", phone.local.port());
    let mut auth: Option<Authorization> = None;
    for cseq in 1..=2u32 {
        let local = phone.local;
        let header = auth
            .as_ref()
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        let text = format!(
            "REGISTER sip:hotline SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n\
             From: <sip:{user}@hotline>;tag=r{cseq}\r\nTo: <sip:{user}@hotline>\r\n\
             Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n\
             Contact: <sip:{user}@{local}>\r\nExpires: 300\r\n{header}Content-Length: 0\r\n\r\n",
            via = phone.via(),
        );
        phone.send_raw(text.as_bytes()).await.expect("send");
        let r = phone
            .response(&call_id, &Method::Register, 200, 5 * SECOND)
            .await
            .expect("REGISTER answered");
        if r.status == 200 {
            return;
        }
        assert_eq!(r.status, 401);
        let ch = r
            .headers
            .get_all(HeaderName::WwwAuthenticate)
            .filter_map(|v| Challenge::parse(v.as_str()?).ok())
            .find(|c| c.algorithm == Algorithm::Md5)
            .expect("an MD5 challenge");
        auth = Some(Authorization::answer(
            &ch,
            user,
            password,
            "REGISTER",
            "sip:hotline",
            "feed",
            1,
        ));
    }
    panic!("REGISTER not accepted");
}

/// Dials `code` from `phone` with `from` as the From user: the final response, and when it
/// is a 200, the ACK sent.
async fn dial(phone: &mut Phone, from: &str, code: &str, media: &CallMedia) -> Response {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let call_id = format!("fc-{}-{n}@test", phone.local.port());
    let from_uri = format!("sip:{from}@");
    let invite = phone
        .invite_text(code, &call_id, "ft1", 1, &media.offer(&[0, 8], true))
        .replacen("sip:+4930123456@", &from_uri, 1);
    phone.send_raw(invite.as_bytes()).await.expect("send");
    let resp = phone
        .response(&call_id, &Method::Invite, 200, 10 * SECOND)
        .await
        .expect("the INVITE is answered");
    let ack = phone
        .ack_text(code, &call_id, "ft1", &resp, 1, "", resp.status != 200)
        .replacen("sip:+4930123456@", &from_uri, 1);
    phone.send_raw(ack.as_bytes()).await.expect("ack");
    resp
}

async fn alice(srv: &RunningServer) -> (String, Option<String>) {
    let snap = srv
        .server
        .deps
        .acd()
        .expect("queues")
        .snapshot()
        .await
        .expect("snapshot");
    let a = snap
        .agents
        .iter()
        .find(|a| a.name == "alice")
        .expect("alice");
    (a.state.to_owned(), a.reason.clone())
}

async fn wait_for_state(srv: &RunningServer, state: &str) {
    let deadline = Instant::now() + 5 * SECOND;
    loop {
        let (now, _) = alice(srv).await;
        if now == state {
            return;
        }
        assert!(Instant::now() < deadline, "alice is {now}, not {state}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_pauses_and_resumes_from_its_phone() {
    let srv = server(with_queues).await;
    let sip = addr(&srv, Protocol::Udp);
    let mut phone = Phone::new(Protocol::Udp, sip).await.expect("phone");
    register(&mut phone, "alice", "s3cret").await;
    wait_for_state(&srv, "available").await;

    // *41 from the registered phone: answered, two beeps, BYE; alice is paused.
    let media = CallMedia::bind(LOCALHOST, true).expect("media");
    let resp = dial(&mut phone, "alice", "*41", &media).await;
    assert_eq!(resp.status, 200, "{}", resp.reason);
    let beep = hotline::feature::done_beep();
    let first = media
        .wait_for_prompt(&beep, 0, 5 * SECOND)
        .await
        .expect("the first beep");
    media
        .wait_for_prompt(&beep, first + beep.frame_count(), 5 * SECOND)
        .await
        .expect("the second beep");
    phone
        .expect_bye(5 * SECOND)
        .await
        .expect("the hotline hangs up");
    assert_eq!(alice(&srv).await, ("paused".into(), Some("phone".into())));

    // The same From from another address is refused and changes nothing.
    let mut other = Phone::new(Protocol::Udp, sip).await.expect("phone");
    let media2 = CallMedia::bind(LOCALHOST, false).expect("media");
    let resp = dial(&mut other, "alice", "*42", &media2).await;
    assert_eq!(resp.status, 403);
    // A caller who is not an agent, even from alice's phone.
    let resp = dial(&mut phone, "+4930123456", "*42", &media2).await;
    assert_eq!(resp.status, 403);
    assert_eq!(alice(&srv).await.0, "paused");

    // *42 from the phone: resumed.
    let media3 = CallMedia::bind(LOCALHOST, true).expect("media");
    let resp = dial(&mut phone, "alice", "*42", &media3).await;
    assert_eq!(resp.status, 200);
    phone
        .expect_bye(5 * SECOND)
        .await
        .expect("the hotline hangs up");
    assert_eq!(alice(&srv).await, ("available".into(), None));
    drop(srv);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_command_is_one_low_tone() {
    let srv = server(with_queues).await;
    let sip = addr(&srv, Protocol::Udp);
    let mut phone = Phone::new(Protocol::Udp, sip).await.expect("phone");
    register(&mut phone, "alice", "s3cret").await;
    wait_for_state(&srv, "available").await;
    // Logged out on purpose, then *41: a pause needs a login.
    let media = CallMedia::bind(LOCALHOST, true).expect("media");
    assert_eq!(dial(&mut phone, "alice", "*44", &media).await.status, 200);
    phone.expect_bye(5 * SECOND).await.expect("BYE");
    assert_eq!(alice(&srv).await.0, "logged_out");
    let media = CallMedia::bind(LOCALHOST, true).expect("media");
    assert_eq!(dial(&mut phone, "alice", "*41", &media).await.status, 200);
    media
        .wait_for_prompt(&hotline::feature::refused_tone(), 0, 5 * SECOND)
        .await
        .expect("the low tone");
    phone.expect_bye(5 * SECOND).await.expect("BYE");
    assert_eq!(alice(&srv).await.0, "logged_out");
    // *43 logs back in.
    let media = CallMedia::bind(LOCALHOST, false).expect("media");
    assert_eq!(dial(&mut phone, "alice", "*43", &media).await.status, 200);
    phone.expect_bye(5 * SECOND).await.expect("BYE");
    assert_eq!(alice(&srv).await.0, "available");
    drop(srv);
}
