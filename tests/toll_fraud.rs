//! No open relay and no toll fraud, on live calls over loopback: the engine answers only
//! the numbers it has routes for, never calls a number a caller chose unless
//! `callback.allowed` lets it, and no REFER or 3xx from outside makes it call anywhere.
//! A scripted phone on loopback plays the telephone network: every test checks that
//! nothing reaches it.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{SECOND, prompt, repo};
use hotline::config::{Config, Protocol};
use hotline::media::dtmf::Key;
use hotline::metrics::Scrape;
use hotline::records::SinkCounters;
use hotline::server::{RunningServer, Server};
use hotline::sip::message::{HeaderName, Method, Response};
use hotline_load::caller::answerer::Answerer;
use hotline_load::caller::{CallMedia, KeyMethod, Offer, Phone};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hotline-fraud-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("flows")).unwrap();
    d
}

/// A hotline with one route (`100`), whose `support` queue calls back through `network`
/// with the default `callback.allowed` (national numbers only), and a `transfer` flow.
async fn serve(dir: &Path, rtp: &str, network: SocketAddr) -> RunningServer {
    serve_with(dir, rtp, network, "").await
}

/// `serve`, with `extra` added to hotline.yaml.
async fn serve_with(dir: &Path, rtp: &str, network: SocketAddr, extra: &str) -> RunningServer {
    std::fs::write(dir.join("flows/main.yaml"), common::CALLBACK_FLOW).unwrap();
    std::fs::write(
        dir.join("hotline.yaml"),
        format!(
            "sip: {{ listen: [\"udp:127.0.0.1:0\"] }}\nrtp: {{ ports: {rtp} }}\nflows: flows\n\
prompts: {}\ndata: data\nroutes: {{ \"100\": main }}\n\
queues:\n  support:\n    music: hold_music\n    announce: [position, wait]\n    \
ring_timeout: 20s\n    callback:\n      key: \"1\"\n      offer_after_wait: 0s\n      \
dial: \"sip:{{number}}@{network}\"\n      caller_id: \"+18005550100\"\n\
agents:\n  alice: {{ password: alice-secret, queues: {{ support: 0 }} }}\n{extra}",
            repo().join("prompts").display()
        ),
    )
    .unwrap();
    let cfg = Config::load(&dir.join("hotline.yaml")).unwrap();
    Server::start(cfg, 1).await.unwrap().spawn()
}

fn metrics(srv: &RunningServer) -> String {
    srv.server.deps.metrics().render(&Scrape {
        calls_active: 0,
        media: &[],
        records: &SinkCounters::default(),
        queues: None,
        resources: srv.server.deps.resources(),
    })
}

async fn call(
    sip: SocketAddr,
    dialed: &str,
) -> (Phone, CallMedia, hotline_load::caller::Established) {
    let mut phone = Phone::new(Protocol::Udp, sip).await.unwrap();
    let media = CallMedia::bind(LOCALHOST, true).unwrap();
    let c = phone
        .call(dialed, &media, Offer::Default)
        .await
        .expect("call answered");
    media.connect(c.remote_rtp, c.codec, c.payload_type, c.telephone_event_pt);
    (phone, media, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_number_outside_callback_allowed_is_never_called_back() {
    common::logs();
    let dir = scratch("callback");
    let mut network = Answerer::bind(LOCALHOST).await.unwrap();
    let srv = serve(&dir, "46600-46639", network.local).await;
    let addr = common::addr(&srv, Protocol::Udp);
    let mut alice = common::alice_at(addr).await;

    // One call handled (the queue then has a handling time to estimate waits from),
    // a second talking to alice, so that the third waits with an estimate.
    let (_p1, _m1, _c1) = call(addr, "100").await;
    let offer = alice.next_invite(20 * SECOND).await.unwrap();
    let agent_media = CallMedia::bind(LOCALHOST, false).unwrap();
    let mut first = alice.accept(&offer, &agent_media).await.unwrap();
    alice.hang_up(&mut first).await.unwrap();
    let _second = call(addr, "100").await;
    let offer = alice.next_invite(20 * SECOND).await.unwrap();
    let talking_media = CallMedia::bind(LOCALHOST, true).unwrap();
    let _talking = alice.accept(&offer, &talking_media).await.unwrap();

    // The test phone calls from +4930123456: an international number, which the default
    // `callback.allowed` (national numbers, '0[1-8]XXXXXX.') does not let through. It
    // hears its wait, but no offer: the refusal is counted.
    let (_phone, media, _c3) = call(addr, "100").await;
    let at = media
        .wait_for_prompt(&prompt("en", "queue_minutes"), 0, 20 * SECOND)
        .await
        .expect("the third caller hears its expected wait");
    let deadline = std::time::Instant::now() + 20 * SECOND;
    while !metrics(&srv).contains("hotline_callback_refusals_total{reason=\"not_allowed\"} 1") {
        assert!(
            std::time::Instant::now() < deadline,
            "no refusal counted:\n{}",
            metrics(&srv)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        media
            .wait_for_prompt(&prompt("en", "queue_callback_offer"), at, 3 * SECOND)
            .await
            .is_none(),
        "no callback is offered to a number that may not be called"
    );
    // Pressing the key anyway asks for nothing: nothing is dialled.
    media.press(Key::from_char('1').unwrap(), KeyMethod::Rfc4733);
    assert!(network.next_invite(3 * SECOND).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_routed_numbers_are_answered() {
    common::logs();
    let dir = scratch("routes");
    let network = Answerer::bind(LOCALHOST).await.unwrap();
    let srv = serve(&dir, "46640-46659", network.local).await;
    let addr = common::addr(&srv, Protocol::Udp);
    let mut phone = Phone::new(Protocol::Udp, addr).await.unwrap();
    let media = CallMedia::bind(LOCALHOST, true).unwrap();
    for dialed in ["999", "+900123456", "00442079460000"] {
        let err = phone
            .call(dialed, &media, Offer::Default)
            .await
            .expect_err("no route, no call");
        assert!(err.to_string().contains("404"), "{dialed}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refer_in_a_call_is_refused_and_calls_nobody() {
    common::logs();
    let dir = scratch("refer");
    let mut network = Answerer::bind(LOCALHOST).await.unwrap();
    // Agents may transfer to this very target; a caller still may not.
    let srv = serve_with(
        &dir,
        "46660-46679",
        network.local,
        "agent_transfers: { allowed: [\"+900X.@127.0.0.1\"] }\n",
    )
    .await;
    let addr = common::addr(&srv, Protocol::Udp);
    let (mut phone, _media, mut c) = call(addr, "100").await;
    let target = network.uri("+900123456");
    let refer = phone.in_dialog_text(
        &mut c,
        "REFER",
        &format!("Refer-To: <{target}>\r\nReferred-By: <sip:+4930123456@127.0.0.1>\r\n"),
        "",
    );
    phone.send_raw(refer.as_bytes()).await.unwrap();
    let resp = phone
        .response(&c.call_id, &Method::Refer, 200, 10 * SECOND)
        .await
        .unwrap();
    assert_eq!(resp.status, 405, "{}", resp.reason);
    assert!(network.next_invite(3 * SECOND).await.is_err());
    assert!(
        metrics(&srv).contains("hotline_refer_refusals_total 1"),
        "{}",
        metrics(&srv)
    );
    // The call goes on: it hangs up normally.
    phone.hang_up(&mut c).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_from_an_agent_is_not_followed() {
    common::logs();
    let dir = scratch("redirect");
    let mut network = Answerer::bind(LOCALHOST).await.unwrap();
    let srv = serve(&dir, "46680-46699", network.local).await;
    let addr = common::addr(&srv, Protocol::Udp);
    let mut alice = common::alice_at(addr).await;
    let (_phone, _media, _c) = call(addr, "100").await;
    let offer = alice.next_invite(20 * SECOND).await.unwrap();
    // A 302 naming a premium number behind the network: sent from another socket, as
    // whoever answers for the agent's address could.
    let mut moved = Response::for_request(&offer.invite, 302, "Moved Temporarily");
    if let Ok(mut to) = moved.headers.to_addr() {
        to = to.with_tag("redir1");
        moved.headers.set(HeaderName::To, to.to_string());
    }
    moved.headers.push(
        HeaderName::Contact,
        format!("<{}>", network.uri("+900123456")),
    );
    let sock = tokio::net::UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    sock.send_to(&moved.to_bytes(), addr).await.unwrap();
    assert!(
        network.next_invite(3 * SECOND).await.is_err(),
        "the redirect was followed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callers_number_is_asserted_only_when_the_call_came_from_a_trusted_source() {
    common::logs();
    let network = Answerer::bind(LOCALHOST).await.unwrap();
    for (name, extra, rtp, asserted) in [
        // The default: 127.0.0.1, where the test phone calls from, is trusted.
        ("trusted", "", "46700-46719", true),
        (
            "untrusted",
            "limits: { trusted: [\"10.0.0.0/8\"] }\n",
            "46720-46739",
            false,
        ),
    ] {
        let dir = scratch(name);
        let srv = serve_with(&dir, rtp, network.local, extra).await;
        let addr = common::addr(&srv, Protocol::Udp);
        let mut alice = common::alice_at(addr).await;
        let (_phone, _media, _c) = call(addr, "100").await;
        let offer = alice.next_invite(20 * SECOND).await.unwrap();
        let text = String::from_utf8_lossy(&offer.invite.to_bytes()).into_owned();
        assert_eq!(
            text.contains("P-Asserted-Identity: <sip:+4930123456@"),
            asserted,
            "{name}: {text}"
        );
        // The number is still shown (From), only not vouched for.
        assert!(
            text.contains("From: <sip:+4930123456@") || text.contains("+4930123456@"),
            "{text}"
        );
    }
}
