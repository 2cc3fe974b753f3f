//! The endpoint core on a fake clock: messages in, outputs out, no socket and no task.

use std::net::SocketAddr;
use std::time::Instant;

use super::core::{CallCommand, CoreConfig, EndpointCore, Origin, Output, ToCall, Tokens};
use crate::config::Protocol;
use crate::sip::admission::{AdmissionConfig, Refusal};
use crate::sip::message::{HeaderName, Limits, Message, Method, Request, Response, parse};
use crate::sip::transaction::test_support::Clock;
use crate::sip::transaction::{Role, TimerConfig};
use crate::sip::transport::Peer;

/// Tags `t1`, `t2`...; every spread draws 7.
struct Counting(u32);

impl Tokens for Counting {
    fn token(&mut self, _len: usize) -> String {
        self.0 += 1;
        format!("t{}", self.0)
    }

    fn below(&mut self, n: u32) -> u32 {
        7.min(n - 1)
    }
}

fn peer() -> Peer {
    Peer {
        transport: Protocol::Udp,
        remote: "127.0.0.1:5070".parse::<SocketAddr>().unwrap(),
        local: "127.0.0.1:5060".parse::<SocketAddr>().unwrap(),
    }
}

fn core(max_calls: usize) -> EndpointCore {
    core_with(max_calls, AdmissionConfig::default())
}

fn core_with(max_calls: usize, admission: AdmissionConfig) -> EndpointCore {
    EndpointCore::new(
        CoreConfig {
            user_agent: "hotline-test".into(),
            max_calls,
            timers: TimerConfig::default(),
            guard: Default::default(),
            admission,
            started_unix_secs: 1_700_000_000,
        },
        Box::new(Counting(0)),
    )
}

fn retry_after(r: &Response) -> String {
    r.headers
        .get(HeaderName::new("Retry-After"))
        .expect("Retry-After")
        .to_str_lossy()
        .to_string()
}

fn message(text: &str) -> Message {
    parse(text.as_bytes(), &Limits::default()).expect("test message parses")
}

/// A request from the caller at 127.0.0.1:5070.
fn request(method: &str, call_id: &str, branch: &str, cseq: u32, to_tag: Option<&str>) -> Request {
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    let text = format!(
        "{method} sip:hotline@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK{branch}\r\n\
Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=from1\r\n\
To: <sip:hotline@127.0.0.1>{to_tag}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n\
Contact: <sip:alice@127.0.0.1:5070>\r\nContent-Length: 0\r\n\r\n"
    );
    match message(&text) {
        Message::Request(r) => r,
        Message::Response(_) => unreachable!(),
    }
}

fn inbound(c: &mut EndpointCore, at: Instant, req: Request) {
    c.handle_inbound(at, peer(), Message::Request(req));
}

fn drain(c: &mut EndpointCore) -> Vec<Output> {
    std::iter::from_fn(|| c.poll_output()).collect()
}

/// The statuses of the responses transmitted.
fn statuses(out: &[Output]) -> Vec<u16> {
    out.iter()
        .filter_map(|o| match o {
            Output::Transmit(t) => match &t.msg.message {
                Message::Response(r) => Some(r.status),
                Message::Request(_) => None,
            },
            _ => None,
        })
        .collect()
}

fn only_response(out: &[Output]) -> &Response {
    let responses: Vec<&Response> = out
        .iter()
        .filter_map(|o| match o {
            Output::Transmit(t) => match &t.msg.message {
                Message::Response(r) => Some(r),
                Message::Request(_) => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(responses.len(), 1, "{out:?}");
    responses[0]
}

fn new_calls(out: &[Output]) -> Vec<&str> {
    out.iter()
        .filter_map(|o| match o {
            Output::NewCall { call_id, .. } => Some(call_id.as_str()),
            _ => None,
        })
        .collect()
}

/// Takes an INVITE in and returns its transaction key (the call is created).
fn invite(c: &mut EndpointCore, at: Instant, call_id: &str, branch: &str) -> Request {
    let req = request("INVITE", call_id, branch, 1, None);
    inbound(c, at, req.clone());
    let out = drain(c);
    assert_eq!(statuses(&out), [100]);
    assert_eq!(new_calls(&out), [call_id]);
    req
}

/// A call the engine places itself opens its inbox.
fn originate(c: &mut EndpointCore, at: Instant, call_id: &str) {
    c.handle_call(
        at,
        CallCommand::Originate {
            call_id: call_id.into(),
        },
    );
}

/// What arrives for Call-ID `leg` goes to call `owner`.
fn open_leg(c: &mut EndpointCore, at: Instant, leg: &str, owner: &str) {
    c.handle_call(
        at,
        CallCommand::OpenLeg {
            leg: leg.into(),
            owner: owner.into(),
        },
    );
}

/// Call `call_id` sends `req` to the test peer.
fn call_sends(c: &mut EndpointCore, at: Instant, call_id: &str, req: Request) {
    c.handle_call(
        at,
        CallCommand::Request {
            call_id: call_id.into(),
            peer: peer(),
            req,
        },
    );
}

fn key_of(req: &Request) -> crate::sip::transaction::TransactionKey {
    super::request_key(req).unwrap()
}

#[test]
fn new_invite_gets_100_trying_and_a_new_call() {
    let clock = Clock::new();
    let mut c = core(10);
    let req = request("INVITE", "a@test", "inv1", 1, None);
    inbound(&mut c, clock.at(0.0), req.clone());
    let out = drain(&mut c);
    assert_eq!(out.len(), 2, "{out:?}");
    let (trying, call) = match &out[..] {
        [a @ Output::Transmit(_), b] | [b, a @ Output::Transmit(_)] => (a, b),
        o => panic!("expected a 100 and a new call, found {o:?}"),
    };
    match trying {
        Output::Transmit(t) => {
            assert_eq!(
                t.origin,
                Origin::Transaction {
                    role: Role::Server,
                    key: key_of(&req)
                }
            );
            assert_eq!(t.msg.peer, peer());
        }
        o => panic!("expected the 100, found {o:?}"),
    }
    assert_eq!(statuses(&out), [100]);
    match call {
        Output::NewCall {
            call_id,
            key,
            peer: p,
            ..
        } => {
            assert_eq!(call_id, "a@test");
            assert_eq!(*key, key_of(&req));
            assert_eq!(*p, peer());
        }
        o => panic!("expected a new call, found {o:?}"),
    }
    let n = c.counters();
    assert_eq!((n.active_calls, n.calls_total), (1, 1));
}

#[test]
fn retransmitted_invite_is_absorbed() {
    let clock = Clock::new();
    let mut c = core(10);
    let req = invite(&mut c, clock.at(0.0), "a@test", "inv1");
    inbound(&mut c, clock.at(0.5), req);
    let out = drain(&mut c);
    assert_eq!(statuses(&out), [100], "the last response again");
    assert!(new_calls(&out).is_empty());
    assert_eq!(c.counters().calls_total, 1);
}

#[test]
fn cancel_is_matched_to_its_invite_and_told_to_the_call() {
    let clock = Clock::new();
    let mut c = core(10);
    invite(&mut c, clock.at(0.0), "a@test", "inv1");
    let cancel = request("CANCEL", "a@test", "inv1", 1, None);
    inbound(&mut c, clock.at(1.0), cancel);
    let out = drain(&mut c);
    assert_eq!(out.len(), 1, "{out:?}");
    match &out[0] {
        Output::ToCall {
            call_id,
            msg: ToCall::Cancel { req, .. },
        } => {
            assert_eq!(call_id, "a@test");
            assert_eq!(req.method, Method::Cancel);
        }
        o => panic!("expected the CANCEL for the call, found {o:?}"),
    }
}

#[test]
fn cancel_without_a_transaction_is_481() {
    let clock = Clock::new();
    let mut c = core(10);
    inbound(
        &mut c,
        clock.at(0.0),
        request("CANCEL", "none@test", "nothing", 1, None),
    );
    let out = drain(&mut c);
    let r = only_response(&out);
    assert_eq!(r.status, 481);
    assert_eq!(r.headers.to_addr().unwrap().tag(), Some("t1"));
}

#[test]
fn cancel_for_a_call_that_vanished_is_answered_here() {
    let clock = Clock::new();
    let mut c = core(10);
    invite(&mut c, clock.at(0.0), "a@test", "inv1");
    inbound(
        &mut c,
        clock.at(1.0),
        request("CANCEL", "a@test", "inv1", 1, None),
    );
    let Some(Output::ToCall { call_id, msg }) = c.poll_output() else {
        panic!("the CANCEL goes to the call");
    };
    // The shell found the call's inbox closed.
    c.handle_undeliverable(clock.at(1.0), &call_id, msg);
    let out = drain(&mut c);
    assert_eq!(only_response(&out).status, 200);
    assert_eq!(c.counters().active_calls, 0, "the call is forgotten");
}

#[test]
fn merged_requests_are_482() {
    let clock = Clock::new();
    let mut c = core(10);
    // The same OPTIONS by two paths: same From tag, Call-ID and CSeq, another branch.
    inbound(
        &mut c,
        clock.at(0.0),
        request("OPTIONS", "o@test", "path1", 7, None),
    );
    assert_eq!(statuses(&drain(&mut c)), [200]);
    inbound(
        &mut c,
        clock.at(0.1),
        request("OPTIONS", "o@test", "path2", 7, None),
    );
    assert_eq!(statuses(&drain(&mut c)), [482]);
    // The first path's retransmission is still answered as before.
    inbound(
        &mut c,
        clock.at(0.2),
        request("OPTIONS", "o@test", "path1", 7, None),
    );
    assert_eq!(statuses(&drain(&mut c)), [200]);

    // The same for an INVITE: one call, the second copy 482.
    invite(&mut c, clock.at(1.0), "i@test", "path1");
    inbound(
        &mut c,
        clock.at(1.1),
        request("INVITE", "i@test", "path2", 1, None),
    );
    let out = drain(&mut c);
    assert_eq!(statuses(&out), [482]);
    assert!(new_calls(&out).is_empty());
    assert_eq!(c.counters().calls_total, 1);
}

#[test]
fn merged_request_index_is_forgotten_with_the_transaction() {
    let clock = Clock::new();
    let mut c = core(10);
    inbound(
        &mut c,
        clock.at(0.0),
        request("OPTIONS", "o@test", "path1", 7, None),
    );
    drain(&mut c);
    // Timer J (64*T1 over UDP) ends the first transaction; the same request is new again.
    c.handle_timeout(clock.at(40.0));
    drain(&mut c);
    assert_eq!(c.transactions(), 0);
    inbound(
        &mut c,
        clock.at(41.0),
        request("OPTIONS", "o@test", "path2", 7, None),
    );
    assert_eq!(statuses(&drain(&mut c)), [200]);
}

#[test]
fn in_dialog_request_for_an_unknown_dialog_is_481() {
    let clock = Clock::new();
    let mut c = core(10);
    inbound(
        &mut c,
        clock.at(0.0),
        request("BYE", "gone@test", "bye1", 2, Some("ours")),
    );
    assert_eq!(statuses(&drain(&mut c)), [481]);
    // Out of dialog too, BYE/INFO belong to no call.
    inbound(
        &mut c,
        clock.at(0.0),
        request("INFO", "gone2@test", "info1", 2, None),
    );
    assert_eq!(statuses(&drain(&mut c)), [481]);
}

#[test]
fn in_dialog_request_goes_to_its_call_until_it_ends() {
    let clock = Clock::new();
    let mut c = core(10);
    invite(&mut c, clock.at(0.0), "a@test", "inv1");
    inbound(
        &mut c,
        clock.at(1.0),
        request("BYE", "a@test", "bye1", 2, Some("ours")),
    );
    let out = drain(&mut c);
    assert!(
        matches!(&out[..], [Output::ToCall { call_id, msg: ToCall::Request { req, .. } }]
            if call_id == "a@test" && req.method == Method::Bye),
        "{out:?}"
    );
    c.handle_call(
        clock.at(1.0),
        CallCommand::Ended {
            call_id: "a@test".into(),
        },
    );
    inbound(
        &mut c,
        clock.at(2.0),
        request("INFO", "a@test", "info1", 3, Some("ours")),
    );
    assert_eq!(statuses(&drain(&mut c)), [481]);
    assert_eq!(c.counters().active_calls, 0);
}

#[test]
fn max_calls_reached_is_503_with_retry_after() {
    let clock = Clock::new();
    let mut c = core(1);
    invite(&mut c, clock.at(0.0), "a@test", "inv1");
    inbound(
        &mut c,
        clock.at(0.1),
        request("INVITE", "b@test", "inv2", 1, None),
    );
    let out = drain(&mut c);
    assert!(new_calls(&out).is_empty());
    let r = only_response(&out);
    assert_eq!(r.status, 503);
    let retry = r
        .headers
        .get(HeaderName::new("Retry-After"))
        .expect("Retry-After")
        .to_str_lossy();
    assert_eq!(retry, "12", "5 s plus the drawn spread");
    assert_eq!(c.counters().rejected_busy, 1);
}

#[test]
fn new_calls_beyond_the_rate_get_503_with_a_short_retry_and_the_bucket_refills() {
    let clock = Clock::new();
    let mut c = core_with(
        100,
        AdmissionConfig {
            calls_per_second: 2.0,
            burst: 3,
            ..AdmissionConfig::default()
        },
    );
    for i in 0..3 {
        invite(
            &mut c,
            clock.at(0.0),
            &format!("ok{i}@test"),
            &format!("ok{i}"),
        );
    }
    // A flood above the rate: every INVITE gets its own 503, none is dropped silently.
    for i in 0..200 {
        inbound(
            &mut c,
            clock.at(0.1),
            request("INVITE", &format!("x{i}@test"), &format!("x{i}"), 1, None),
        );
        let out = drain(&mut c);
        assert!(new_calls(&out).is_empty());
        let r = only_response(&out);
        assert_eq!(r.status, 503, "INVITE {i}");
        assert_eq!(retry_after(r), "5", "1 s plus the drawn spread (4 at most)");
    }
    assert_eq!(c.counters().refused[1], 200);
    assert_eq!(Refusal::ALL[1], Refusal::Rate);
    // Half a second later one token is back.
    invite(&mut c, clock.at(0.6), "later@test", "later");
    assert_eq!(c.counters().active_calls, 4);
}

#[test]
fn options_answer_503_while_full_and_200_once_a_call_ends() {
    let clock = Clock::new();
    let mut c = core(1);
    let options = |c: &mut EndpointCore, at, branch: &str| {
        inbound(
            c,
            at,
            request("OPTIONS", &format!("{branch}@test"), branch, 1, None),
        );
        let out = drain(c);
        only_response(&out).clone()
    };
    assert_eq!(options(&mut c, clock.at(0.0), "o1").status, 200);
    invite(&mut c, clock.at(0.1), "a@test", "inv1");
    let r = options(&mut c, clock.at(0.2), "o2");
    assert_eq!(r.status, 503);
    assert_eq!(retry_after(&r), "12");
    assert_eq!(
        c.counters().refused,
        [0; 5],
        "a probe is not a refused call"
    );
    c.handle_call(
        clock.at(0.3),
        CallCommand::Ended {
            call_id: "a@test".into(),
        },
    );
    drain(&mut c);
    assert_eq!(options(&mut c, clock.at(0.4), "o3").status, 200);
}

#[test]
fn no_free_rtp_port_or_a_late_media_clock_refuse_new_calls_before_they_exist() {
    let clock = Clock::new();
    let mut c = core(10);
    c.set_load(std::time::Duration::ZERO, 0);
    inbound(
        &mut c,
        clock.at(0.0),
        request("INVITE", "p@test", "p", 1, None),
    );
    let out = drain(&mut c);
    assert!(new_calls(&out).is_empty());
    assert_eq!(only_response(&out).status, 503);
    c.set_load(std::time::Duration::from_millis(40), 100);
    inbound(
        &mut c,
        clock.at(0.1),
        request("INVITE", "l@test", "l", 1, None),
    );
    let out = drain(&mut c);
    assert!(new_calls(&out).is_empty());
    assert_eq!(only_response(&out).status, 503);
    let refused = c.counters().refused;
    assert_eq!(
        (refused[2], refused[3]),
        (1, 1),
        "lateness, ports: {refused:?}"
    );
    c.set_load(std::time::Duration::from_millis(2), 100);
    invite(&mut c, clock.at(0.2), "ok@test", "ok");
}

#[test]
fn draining_refuses_new_calls_and_options_while_calls_in_progress_keep_their_requests() {
    let clock = Clock::new();
    let mut c = core(10);
    invite(&mut c, clock.at(0.0), "a@test", "inv1");
    c.start_draining();
    assert!(c.counters().draining);
    inbound(
        &mut c,
        clock.at(0.1),
        request("INVITE", "b@test", "inv2", 1, None),
    );
    let out = drain(&mut c);
    assert!(new_calls(&out).is_empty());
    let r = only_response(&out);
    assert_eq!(r.status, 503);
    assert_eq!(retry_after(r), "67", "60 s plus the drawn spread");
    inbound(
        &mut c,
        clock.at(0.2),
        request("OPTIONS", "o@test", "o", 1, None),
    );
    assert_eq!(only_response(&drain(&mut c)).status, 503);
    inbound(
        &mut c,
        clock.at(0.3),
        request("BYE", "a@test", "bye1", 2, Some("ours")),
    );
    let out = drain(&mut c);
    assert!(
        out.iter().any(|o| matches!(o, Output::ToCall { call_id, msg: ToCall::Request { .. } } if call_id == "a@test")),
        "{out:?}"
    );
    assert_eq!(c.call_ids().collect::<Vec<_>>(), ["a@test"]);
    assert_eq!(c.counters().refused[4], 1);
}

#[test]
fn options_and_unsupported_methods_are_answered_here() {
    let clock = Clock::new();
    let mut c = core(10);
    for (method, status) in [("OPTIONS", 200), ("SUBSCRIBE", 405), ("FOOBAR", 501)] {
        inbound(
            &mut c,
            clock.at(0.0),
            request(method, &format!("{method}@test"), method, 1, None),
        );
        let out = drain(&mut c);
        let r = only_response(&out);
        assert_eq!(r.status, status, "{method}");
        let allow = r.headers.get(HeaderName::Allow).expect("Allow");
        assert!(allow.to_str_lossy().contains("INVITE"));
        assert!(r.headers.get(HeaderName::new("Server")).is_some());
    }
}

#[test]
fn register_goes_to_the_registrar_and_its_answer_out() {
    let clock = Clock::new();
    let mut c = core(10);
    inbound(
        &mut c,
        clock.at(0.0),
        request("REGISTER", "r@test", "reg1", 1, None),
    );
    let Some(Output::Register { key, peer: p, req }) = c.poll_output() else {
        panic!("REGISTER is handed out");
    };
    assert!(c.poll_output().is_none());
    let resp = Response::for_request(&req, 401, "Unauthorized");
    c.answer_register(clock.at(0.0), &key, p, resp);
    let out = drain(&mut c);
    let r = only_response(&out);
    assert_eq!(r.status, 401);
    assert_eq!(r.headers.to_addr().unwrap().tag(), Some("t1"));
    assert!(r.headers.get(HeaderName::new("Server")).is_some());
}

/// A leg's INVITE, as the call that places it sends it.
fn leg_invite(call_id: &str, branch: &str, method: &str) -> Request {
    let text = format!(
        "{method} sip:agent@127.0.0.1:5070 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK{branch};rport\r\n\
Max-Forwards: 70\r\nFrom: <sip:hotline@127.0.0.1>;tag=ours\r\n\
To: <sip:agent@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 {method}\r\n\
Contact: <sip:hotline@127.0.0.1:5060>\r\nContent-Length: 0\r\n\r\n"
    );
    match message(&text) {
        Message::Request(r) => r,
        Message::Response(_) => unreachable!(),
    }
}

fn answer(req: &Request, status: u16) -> Message {
    let mut r = Response::for_request(req, status, "Whatever");
    r.headers.ensure_to_tag("theirs").unwrap();
    message(&String::from_utf8(r.to_bytes()).unwrap())
}

#[test]
fn a_legs_messages_go_to_the_call_that_placed_it() {
    let clock = Clock::new();
    let mut c = core(10);
    originate(&mut c, clock.at(0.0), "owner@test");
    open_leg(&mut c, clock.at(0.0), "leg@test", "owner@test");
    let inv = leg_invite("leg@test", "leg1", "INVITE");
    call_sends(&mut c, clock.at(0.0), "leg@test", inv.clone());
    let out = drain(&mut c);
    assert!(
        matches!(&out[..], [Output::Transmit(t)] if matches!(t.origin, Origin::Transaction { role: Role::Client, .. })),
        "{out:?}"
    );
    c.handle_inbound(clock.at(0.1), peer(), answer(&inv, 180));
    let out = drain(&mut c);
    match &out[..] {
        [
            Output::ToCall {
                call_id,
                msg: ToCall::Leg { call_id: leg, msg },
            },
        ] => {
            assert_eq!(call_id, "owner@test");
            assert_eq!(leg, "leg@test");
            assert!(matches!(&**msg, ToCall::Response(r) if r.status == 180));
        }
        o => panic!("expected the 180 for the owner, found {o:?}"),
    }
    // A request for the leg's dialog comes to the owner too.
    inbound(
        &mut c,
        clock.at(0.2),
        request("BYE", "leg@test", "legbye", 1, Some("ours")),
    );
    let out = drain(&mut c);
    assert!(
        matches!(&out[..], [Output::ToCall { call_id, msg: ToCall::Leg { .. } }] if call_id == "owner@test"),
        "{out:?}"
    );
    // Closed, the leg's Call-ID is unknown again.
    c.handle_call(
        clock.at(0.3),
        CallCommand::CloseLeg {
            leg: "leg@test".into(),
        },
    );
    inbound(
        &mut c,
        clock.at(0.4),
        request("BYE", "leg@test", "legbye2", 2, Some("ours")),
    );
    assert_eq!(statuses(&drain(&mut c)), [481]);
}

#[test]
fn a_request_that_cannot_be_sent_fails_the_call_at_once() {
    let clock = Clock::new();
    let mut c = core(10);
    originate(&mut c, clock.at(0.0), "c@test");
    call_sends(
        &mut c,
        clock.at(0.0),
        "c@test",
        leg_invite("c@test", "bye1", "BYE"),
    );
    let Some(Output::Transmit(t)) = c.poll_output() else {
        panic!("the BYE is transmitted");
    };
    let live = c.transactions();
    c.handle_send_error(clock.at(0.0), &t);
    let out = drain(&mut c);
    assert!(
        matches!(&out[..], [Output::ToCall { call_id, msg: ToCall::RequestTimeout { .. } }] if call_id == "c@test"),
        "{out:?}"
    );
    assert_eq!(c.counters().requests_unsent, 1);
    assert_eq!(c.transactions(), live - 1, "the transaction ended");
    // Nothing left to retransmit or time out.
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn a_response_that_cannot_be_sent_is_counted() {
    let clock = Clock::new();
    let mut c = core(10);
    inbound(
        &mut c,
        clock.at(0.0),
        request("OPTIONS", "o@test", "o1", 1, None),
    );
    let Some(Output::Transmit(t)) = c.poll_output() else {
        panic!("the 200 is transmitted");
    };
    c.handle_send_error(clock.at(0.0), &t);
    assert!(drain(&mut c).is_empty());
    assert_eq!(c.counters().responses_unsent, 1);
    assert_eq!(c.transactions(), 0);
}

#[test]
fn timer_e_retransmits_and_timer_f_times_out() {
    let clock = Clock::new();
    let mut c = core(10);
    originate(&mut c, clock.at(0.0), "c@test");
    call_sends(
        &mut c,
        clock.at(0.0),
        "c@test",
        leg_invite("c@test", "bye1", "BYE"),
    );
    assert_eq!(drain(&mut c).len(), 1);
    let mut sends = Vec::new();
    let mut timed_out = None;
    while let Some(at) = c.poll_timeout() {
        c.handle_timeout(at);
        for o in drain(&mut c) {
            match o {
                Output::Transmit(_) => sends.push(clock.secs(at)),
                Output::ToCall {
                    msg: ToCall::RequestTimeout { .. },
                    ..
                } => timed_out = Some(clock.secs(at)),
                o => panic!("unexpected {o:?}"),
            }
        }
    }
    // Timer E: T1, doubling, capped at T2; Timer F at 64*T1.
    assert_eq!(sends[..5], [0.5, 1.5, 3.5, 7.5, 11.5]);
    assert_eq!(timed_out, Some(32.0));
}

#[test]
fn timer_b_times_out_an_unanswered_invite() {
    let clock = Clock::new();
    let mut c = core(10);
    originate(&mut c, clock.at(0.0), "owner@test");
    open_leg(&mut c, clock.at(0.0), "leg@test", "owner@test");
    call_sends(
        &mut c,
        clock.at(0.0),
        "leg@test",
        leg_invite("leg@test", "leg1", "INVITE"),
    );
    drain(&mut c);
    let mut last = None;
    while let Some(at) = c.poll_timeout() {
        c.handle_timeout(at);
        for o in drain(&mut c) {
            if let Output::ToCall {
                call_id,
                msg: ToCall::Leg { msg, .. },
            } = o
            {
                assert_eq!(call_id, "owner@test");
                assert!(matches!(*msg, ToCall::RequestTimeout { .. }));
                last = Some(clock.secs(at));
            }
        }
    }
    assert_eq!(last, Some(32.0), "Timer B is 64*T1");
}

#[test]
fn a_2xx_goes_out_once_and_its_copies_come_from_the_call() {
    let clock = Clock::new();
    let mut c = core(10);
    let inv = invite(&mut c, clock.at(0.0), "a@test", "inv1");
    let mut ok = Response::for_request(&inv, 200, "OK");
    ok.headers.ensure_to_tag("ours").unwrap();
    c.handle_call(
        clock.at(1.0),
        CallCommand::Respond {
            key: key_of(&inv),
            peer: peer(),
            resp: ok.clone(),
            call_id: "a@test".into(),
        },
    );
    let out = drain(&mut c);
    let [Output::Transmit(first)] = &out[..] else {
        panic!("{out:?}")
    };
    // The endpoint keeps no 2xx schedule: only the INVITE transaction's own timer (L)
    // is left, and it sends nothing.
    while let Some(at) = c.poll_timeout() {
        c.handle_timeout(at);
        assert!(statuses(&drain(&mut c)).is_empty());
    }
    // The UAS core's copy goes out as it is, signed as the first, outside any transaction.
    c.handle_call(
        clock.at(1.5),
        CallCommand::SendResponse {
            peer: peer(),
            resp: ok,
        },
    );
    let out = drain(&mut c);
    let [Output::Transmit(copy)] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(copy.origin, Origin::Direct);
    assert_eq!(copy.msg.bytes, first.msg.bytes, "the same bytes every time");
    assert!(String::from_utf8_lossy(&copy.msg.bytes).contains("Server: hotline-test\r\n"));
    // The ACK goes to the call, whose UAS stops its copies.
    inbound(
        &mut c,
        clock.at(2.0),
        request("ACK", "a@test", "ack1", 1, Some("ours")),
    );
    let out = drain(&mut c);
    assert!(
        matches!(
            &out[..],
            [Output::ToCall {
                msg: ToCall::Ack(_),
                ..
            }]
        ),
        "{out:?}"
    );
}

#[test]
fn a_full_transaction_table_is_answered_503_statelessly() {
    let clock = Clock::new();
    let mut c = core(10).with_max_transactions(1);
    inbound(
        &mut c,
        clock.at(0.0),
        request("OPTIONS", "o1@test", "o1", 1, None),
    );
    assert_eq!(statuses(&drain(&mut c)), [200]);
    inbound(
        &mut c,
        clock.at(0.0),
        request("OPTIONS", "o2@test", "o2", 1, None),
    );
    let out = drain(&mut c);
    assert!(
        matches!(&out[..], [Output::Transmit(t)] if t.origin == Origin::Direct),
        "{out:?}"
    );
    assert_eq!(only_response(&out).status, 503);
}

/// A caller at a public address (not trusted), for the guard's tests.
fn stranger(port: u16) -> Peer {
    Peer {
        remote: SocketAddr::from(([203, 0, 113, 5], port)),
        ..peer()
    }
}

#[test]
fn a_flooding_source_is_ignored_for_five_minutes_and_its_call_keeps_its_requests() {
    let clock = Clock::new();
    let mut c = core(10);
    let from = stranger(5070);
    // A call from that address first: admitted.
    c.handle_inbound(
        clock.at(0.0),
        from,
        Message::Request(request("INVITE", "call@test", "inv", 1, None)),
    );
    assert_eq!(new_calls(&drain(&mut c)), ["call@test"]);
    // Then 15 OPTIONS within the same 2 s are answered (16 requests in all)...
    for i in 0..15 {
        let req = request("OPTIONS", &format!("o{i}@test"), &format!("o{i}"), 1, None);
        c.handle_inbound(clock.at(0.1), from, Message::Request(req));
        assert_eq!(statuses(&drain(&mut c)), [200], "OPTIONS {i}");
    }
    // ...and the 17th bans the address: no reply, and nothing for new INVITEs either.
    for (i, method) in ["OPTIONS", "INVITE", "REGISTER"].iter().enumerate() {
        let req = request(method, &format!("x{i}@test"), &format!("x{i}"), 1, None);
        c.handle_inbound(clock.at(0.2), from, Message::Request(req));
        assert!(drain(&mut c).is_empty(), "{method} from a banned source");
    }
    // The call in progress still gets its BYE.
    c.handle_inbound(
        clock.at(1.0),
        from,
        Message::Request(request("BYE", "call@test", "bye", 2, Some("ours"))),
    );
    let out = drain(&mut c);
    assert!(
        matches!(&out[..], [Output::ToCall { call_id, msg: ToCall::Request { .. } }] if call_id == "call@test"),
        "{out:?}"
    );
    // Another address is served meanwhile, and the trusted loopback always.
    c.handle_inbound(
        clock.at(1.0),
        Peer {
            remote: SocketAddr::from(([203, 0, 113, 6], 5070)),
            ..peer()
        },
        Message::Request(request("OPTIONS", "other@test", "other", 1, None)),
    );
    assert_eq!(statuses(&drain(&mut c)), [200]);
    let counters = c.counters();
    assert_eq!((counters.bans, counters.dropped_banned), (1, 3));
    // Five minutes later the guard's sweep lifts the ban.
    let later = clock.at(300.3);
    while let Some(t) = c.poll_timeout().filter(|t| *t <= later) {
        c.handle_timeout(t);
    }
    c.handle_timeout(later);
    drain(&mut c);
    c.handle_inbound(
        later,
        from,
        Message::Request(request("OPTIONS", "back@test", "back", 1, None)),
    );
    assert_eq!(statuses(&drain(&mut c)), [200]);
}

#[test]
fn scanners_are_dropped_without_a_reply() {
    let clock = Clock::new();
    let mut c = core(10);
    let mut req = request("OPTIONS", "scan@test", "scan", 1, None);
    req.headers
        .push(HeaderName::UserAgent, "friendly-scanner".to_string());
    c.handle_inbound(clock.at(0.0), stranger(5070), Message::Request(req));
    assert!(drain(&mut c).is_empty());
    assert_eq!(c.counters().dropped_scanner, 1);
}

#[test]
fn five_refused_logins_ban_the_guesser() {
    let clock = Clock::new();
    let mut c = core(10);
    let from = stranger(5070);
    for i in 0..5 {
        c.handle_inbound(
            clock.at(0.5 * f64::from(i)),
            from,
            Message::Request(request("REGISTER", "r@test", &format!("r{i}"), i + 1, None)),
        );
        let Some(Output::Register { key, peer: p, req }) = c.poll_output() else {
            panic!("REGISTER {i} is handed out");
        };
        c.auth_failed(clock.at(0.5 * f64::from(i)), p.remote.ip(), "agent1");
        c.answer_register(
            clock.at(0.5 * f64::from(i)),
            &key,
            p,
            Response::for_request(&req, 403, "Forbidden"),
        );
        assert_eq!(statuses(&drain(&mut c)), [403]);
    }
    c.handle_inbound(
        clock.at(3.0),
        from,
        Message::Request(request("REGISTER", "r@test", "r9", 9, None)),
    );
    assert!(drain(&mut c).is_empty(), "the guesser is ignored");
    assert_eq!(c.counters().bans, 1);
}

/// A request from a proxy at 127.0.0.1:5080 that announces RFC 7339 overload control.
fn proxied(method: &str, call_id: &str, branch: &str) -> Request {
    let text = format!(
        "{method} sip:hotline@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKp{branch};oc;oc-algo=\"loss\"\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK{branch}\r\n\
Max-Forwards: 69\r\nFrom: <sip:alice@127.0.0.1>;tag=from1\r\n\
To: <sip:hotline@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 {method}\r\n\
Contact: <sip:alice@127.0.0.1:5070>\r\nContent-Length: 0\r\n\r\n"
    );
    match message(&text) {
        Message::Request(r) => r,
        Message::Response(_) => unreachable!(),
    }
}

fn oc_of(r: &Response) -> (Option<String>, Option<String>) {
    let via = r.headers.top_via().expect("Via");
    let get = |n: &str| via.params.get(n).and_then(|p| p.value.clone());
    (get("oc"), get("oc-validity"))
}

#[test]
fn a_proxy_announcing_overload_control_is_told_how_much_to_hold_back() {
    let clock = Clock::new();
    let mut c = core_with(
        100,
        AdmissionConfig {
            calls_per_second: 2.0,
            burst: 2,
            ..AdmissionConfig::default()
        },
    );
    // Taking calls: the 100 Trying says oc=0 with validity 0 (nothing to hold back).
    inbound(&mut c, clock.at(0.0), proxied("INVITE", "a@test", "a"));
    let out = drain(&mut c);
    let trying = only_response(&out);
    assert_eq!(trying.status, 100);
    assert_eq!(oc_of(trying), (Some("0".into()), Some("0".into())));
    inbound(&mut c, clock.at(0.0), proxied("INVITE", "b@test", "b"));
    drain(&mut c);
    // Over the rate: 503 with a loss figure and a validity.
    inbound(&mut c, clock.at(0.1), proxied("INVITE", "c@test", "c"));
    let out = drain(&mut c);
    let refused = only_response(&out);
    assert_eq!(refused.status, 503);
    let (loss, validity) = oc_of(refused);
    let loss: u8 = loss.expect("oc").parse().expect("a number");
    assert!((1..=100).contains(&loss), "{loss}");
    assert_eq!(validity.as_deref(), Some("2000"));
    // The probe of a proxy hears the same while the bucket is empty, and the client's
    // own Via below is left alone.
    inbound(&mut c, clock.at(0.2), proxied("OPTIONS", "o1@test", "o1"));
    let out = drain(&mut c);
    let probe = only_response(&out);
    assert_eq!(probe.status, 503);
    assert!(oc_of(probe).0.is_some_and(|l| l != "0"));
    let vias = probe.headers.vias().expect("Vias");
    assert!(vias[1].params.get("oc").is_none());
    // A request without `oc` gets no advice.
    inbound(
        &mut c,
        clock.at(0.3),
        request("OPTIONS", "o2@test", "o2", 1, None),
    );
    let out = drain(&mut c);
    assert_eq!(oc_of(only_response(&out)), (None, None));
    // Two seconds on the bucket is full again: oc=0, validity 0.
    inbound(&mut c, clock.at(2.5), proxied("OPTIONS", "o3@test", "o3"));
    let out = drain(&mut c);
    let probe = only_response(&out);
    assert_eq!(probe.status, 200);
    assert_eq!(oc_of(probe), (Some("0".into()), Some("0".into())));
}
