//! The transaction table driven the way the shell drives it: messages in, outputs drained,
//! a fake clock advanced from deadline to deadline.

use std::time::{Duration, Instant};

use hotline::sip::transaction::{
    Output, Reliability, RequestKeyFields, Role, State, TimerConfig, TransactionError,
    TransactionKey, TransactionTable, Uas2xxAction, Uas2xxRetransmitter,
};

type Msg = &'static str;

const UDP: Reliability = Reliability::Unreliable;
const TCP: Reliability = Reliability::Reliable;

struct Clock(Instant);

impl Clock {
    fn new() -> Self {
        Clock(Instant::now())
    }
    fn at(&self, secs: f64) -> Instant {
        self.0 + Duration::from_micros((secs * 1e6).round() as u64)
    }
    fn secs(&self, at: Instant) -> f64 {
        at.duration_since(self.0).as_micros() as f64 / 1e6
    }
}

fn table() -> TransactionTable<Msg> {
    TransactionTable::new(TimerConfig::default())
}

fn drain(t: &mut TransactionTable<Msg>) -> Vec<Output<Msg>> {
    std::iter::from_fn(|| t.poll_output()).collect()
}

/// Fires every deadline up to `until`, returning (time, output) pairs.
fn run_until(t: &mut TransactionTable<Msg>, clock: &Clock, until: f64) -> Vec<(f64, Output<Msg>)> {
    let mut seen = Vec::new();
    while let Some(at) = t.poll_timeout() {
        if clock.secs(at) > until {
            break;
        }
        t.handle_timeout(at);
        seen.extend(drain(t).into_iter().map(|o| (clock.secs(at), o)));
    }
    seen
}

fn request_fields(method: &'static str, branch: &'static str) -> RequestKeyFields<'static> {
    RequestKeyFields {
        method,
        branch: Some(branch),
        sent_by_host: "carrier.example.net",
        sent_by_port: Some(5060),
        request_uri: "sip:+15551234@ivr.example.com",
        to_tag: None,
        from_tag: Some("caller-tag"),
        call_id: "call-1@carrier",
        cseq: 1,
        top_via: "SIP/2.0/UDP carrier.example.net:5060",
    }
}

fn server_key(method: &'static str, branch: &'static str) -> TransactionKey {
    TransactionKey::for_request(&request_fields(method, branch))
}

fn transmit_times(seen: &[(f64, Output<Msg>)], what: Msg) -> Vec<f64> {
    seen.iter()
        .filter_map(|(t, o)| match o {
            Output::Transmit { msg, .. } if *msg == what => Some(*t),
            _ => None,
        })
        .collect()
}

#[test]
fn answered_call_over_udp() {
    let clock = Clock::new();
    let mut t = table();
    let invite = server_key("INVITE", "z9hG4bK-inv");
    t.handle_request(clock.at(0.0), invite.clone(), "INVITE", UDP)
        .unwrap();
    assert_eq!(
        drain(&mut t),
        [Output::RequestToTu {
            key: invite.clone(),
            msg: "INVITE"
        }]
    );
    // A retransmission before the TU answered is absorbed.
    t.handle_request(clock.at(0.05), invite.clone(), "INVITE", UDP)
        .unwrap();
    assert_eq!(drain(&mut t), []);
    t.send_response(clock.at(0.06), &invite, 100, "100")
        .unwrap();
    t.handle_request(clock.at(0.5), invite.clone(), "INVITE", UDP)
        .unwrap();
    let hundreds = drain(&mut t)
        .into_iter()
        .filter(|o| matches!(o, Output::Transmit { msg: "100", .. }))
        .count();
    assert_eq!(
        hundreds, 2,
        "the 100 and its resend for the retransmitted INVITE"
    );

    // Answer: the transaction goes Accepted and the UAS core retransmits the 200.
    t.send_response(clock.at(1.0), &invite, 200, "200").unwrap();
    assert_eq!(t.state(Role::Server, &invite), Some(State::Accepted));
    let mut retransmitter = Uas2xxRetransmitter::new(clock.at(1.0), "200", t.timers());
    assert_eq!(
        drain(&mut t),
        [Output::Transmit {
            role: Role::Server,
            key: invite.clone(),
            msg: "200"
        }]
    );
    assert_eq!(retransmitter.poll_timeout(), Some(clock.at(1.5)));
    assert_eq!(
        retransmitter.handle_timeout(clock.at(1.5)),
        Some(Uas2xxAction::Retransmit("200"))
    );
    // The INVITE retransmitted again is absorbed: the 2xx retransmitter owns resending.
    t.handle_request(clock.at(1.6), invite.clone(), "INVITE", UDP)
        .unwrap();
    assert_eq!(drain(&mut t), []);

    // The ACK of a 2xx carries a new branch: no transaction matches, the dialog gets it.
    let ack = server_key("ACK", "z9hG4bK-ack");
    t.handle_request(clock.at(2.0), ack.clone(), "ACK", UDP)
        .unwrap();
    assert_eq!(
        drain(&mut t),
        [Output::AckToTu {
            key: ack,
            msg: "ACK"
        }]
    );
    retransmitter.ack_received();
    assert_eq!(retransmitter.poll_timeout(), None);

    // Timer L ends the INVITE transaction 64*T1 after the 200.
    assert_eq!(t.poll_timeout(), Some(clock.at(33.0)));
    assert_eq!(
        run_until(&mut t, &clock, 100.0),
        [(
            33.0,
            Output::Terminated {
                role: Role::Server,
                key: invite
            }
        )]
    );
    assert!(t.is_empty());
    assert_eq!(t.poll_timeout(), None);
}

#[test]
fn ack_reusing_the_invite_branch_reaches_the_tu_in_accepted() {
    let clock = Clock::new();
    let mut t = table();
    let invite = server_key("INVITE", "z9hG4bK-inv");
    t.handle_request(clock.at(0.0), invite.clone(), "INVITE", TCP)
        .unwrap();
    t.send_response(clock.at(0.1), &invite, 200, "200").unwrap();
    drain(&mut t);
    t.handle_request(clock.at(0.2), server_key("ACK", "z9hG4bK-inv"), "ACK", TCP)
        .unwrap();
    assert!(matches!(
        drain(&mut t).as_slice(),
        [Output::AckToTu { msg: "ACK", .. }]
    ));
    assert_eq!(t.state(Role::Server, &invite), Some(State::Accepted));
}

#[test]
fn rejected_call_timer_g_schedule_then_ack_then_timer_i_udp() {
    let clock = Clock::new();
    let mut t = table();
    let invite = server_key("INVITE", "z9hG4bK-inv");
    t.handle_request(clock.at(0.0), invite.clone(), "INVITE", UDP)
        .unwrap();
    t.send_response(clock.at(0.0), &invite, 486, "486").unwrap();
    drain(&mut t);
    let seen = run_until(&mut t, &clock, 5.0);
    assert_eq!(transmit_times(&seen, "486"), [0.5, 1.5, 3.5]);
    // A retransmitted INVITE is answered with the final response again.
    t.handle_request(clock.at(5.0), invite.clone(), "INVITE", UDP)
        .unwrap();
    assert_eq!(
        drain(&mut t),
        [Output::Transmit {
            role: Role::Server,
            key: invite.clone(),
            msg: "486"
        }]
    );
    // The ACK of a non-2xx carries the INVITE's branch and is absorbed.
    t.handle_request(clock.at(6.0), server_key("ACK", "z9hG4bK-inv"), "ACK", UDP)
        .unwrap();
    assert_eq!(drain(&mut t), []);
    assert_eq!(t.state(Role::Server, &invite), Some(State::Confirmed));
    let seen = run_until(&mut t, &clock, 100.0);
    assert_eq!(
        seen,
        [(
            11.0,
            Output::Terminated {
                role: Role::Server,
                key: invite
            }
        )],
        "Timer I = T4 after the ACK, no more retransmissions"
    );
    assert!(t.is_empty());
}

#[test]
fn rejected_call_without_ack_times_out_on_timer_h() {
    for (reliability, expected_sends) in [
        (
            UDP,
            vec![0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5],
        ),
        (TCP, vec![]),
    ] {
        let clock = Clock::new();
        let mut t = table();
        let invite = server_key("INVITE", "z9hG4bK-inv");
        t.handle_request(clock.at(0.0), invite.clone(), "INVITE", reliability)
            .unwrap();
        t.send_response(clock.at(0.0), &invite, 603, "603").unwrap();
        drain(&mut t);
        let seen = run_until(&mut t, &clock, 100.0);
        assert_eq!(transmit_times(&seen, "603"), expected_sends);
        let tail: Vec<_> = seen
            .iter()
            .filter(|(_, o)| !matches!(o, Output::Transmit { .. }))
            .cloned()
            .collect();
        assert_eq!(
            tail,
            [
                (
                    32.0,
                    Output::Timeout {
                        role: Role::Server,
                        key: invite.clone()
                    }
                ),
                (
                    32.0,
                    Output::Terminated {
                        role: Role::Server,
                        key: invite
                    }
                )
            ]
        );
        assert!(t.is_empty());
    }
}

#[test]
fn cancel_finds_the_invite() {
    let clock = Clock::new();
    let mut t = table();
    let invite = server_key("INVITE", "z9hG4bK-inv");
    t.handle_request(clock.at(0.0), invite.clone(), "INVITE", UDP)
        .unwrap();
    t.send_response(clock.at(0.0), &invite, 180, "180").unwrap();
    let cancel = server_key("CANCEL", "z9hG4bK-inv");
    t.handle_request(clock.at(1.0), cancel.clone(), "CANCEL", UDP)
        .unwrap();
    assert_eq!(t.len(), 2, "the CANCEL is a transaction of its own");
    let outputs = drain(&mut t);
    assert_eq!(
        outputs.last(),
        Some(&Output::RequestToTu {
            key: cancel.clone(),
            msg: "CANCEL"
        })
    );
    let (found, state) = t.find_invite_for_cancel(&cancel).unwrap();
    assert_eq!((found.clone(), state), (invite.clone(), State::Proceeding));
    assert!(found.is_invite());
    t.send_response(clock.at(1.0), &cancel, 200, "200-cancel")
        .unwrap();
    t.send_response(clock.at(1.0), &found, 487, "487").unwrap();
    t.handle_request(clock.at(1.1), server_key("ACK", "z9hG4bK-inv"), "ACK", UDP)
        .unwrap();
    // A retransmitted CANCEL gets the same 200.
    drain(&mut t);
    t.handle_request(clock.at(1.2), cancel.clone(), "CANCEL", UDP)
        .unwrap();
    assert_eq!(
        drain(&mut t),
        [Output::Transmit {
            role: Role::Server,
            key: cancel.clone(),
            msg: "200-cancel"
        }]
    );
    assert_eq!(
        t.find_invite_for_cancel(&cancel).map(|(_, s)| s),
        Some(State::Confirmed)
    );
    let ends: Vec<_> = run_until(&mut t, &clock, 100.0)
        .into_iter()
        .map(|(at, o)| (at, matches!(o, Output::Terminated { .. })))
        .collect();
    assert_eq!(ends, [(6.1, true), (33.0, true)], "Timer I, then Timer J");
    assert!(t.is_empty());

    // A CANCEL for nothing: 481.
    let stray = server_key("CANCEL", "z9hG4bK-nothing");
    assert_eq!(t.find_invite_for_cancel(&stray), None);
    assert_eq!(t.find_invite_for_cancel(&invite), None, "not a CANCEL key");
}

#[test]
fn bye_retransmitted_until_answered_then_timer_k() {
    let clock = Clock::new();
    let mut t = table();
    let bye = TransactionKey::client("z9hG4bK-bye", "BYE");
    t.start_client(clock.at(0.0), bye.clone(), "BYE", UDP)
        .unwrap();
    assert_eq!(
        drain(&mut t),
        [Output::Transmit {
            role: Role::Client,
            key: bye.clone(),
            msg: "BYE"
        }]
    );
    let seen = run_until(&mut t, &clock, 4.0);
    assert_eq!(transmit_times(&seen, "BYE"), [0.5, 1.5, 3.5]);
    t.handle_response(clock.at(4.0), bye.clone(), 200, "200", |_, _| {
        panic!("no ACK for BYE")
    })
    .unwrap();
    assert_eq!(
        drain(&mut t),
        [Output::ResponseToTu {
            key: bye.clone(),
            status: 200,
            msg: "200"
        }]
    );
    // Retransmitted 200: absorbed while Completed.
    t.handle_response(clock.at(4.5), bye.clone(), 200, "200", |_, _| "x")
        .unwrap();
    assert_eq!(drain(&mut t), []);
    assert_eq!(
        run_until(&mut t, &clock, 100.0),
        [(
            9.0,
            Output::Terminated {
                role: Role::Client,
                key: bye.clone()
            }
        )]
    );
    // After termination, a late 200 is stray.
    t.handle_response(clock.at(10.0), bye.clone(), 200, "200", |_, _| "x")
        .unwrap();
    assert_eq!(
        drain(&mut t),
        [Output::StrayResponse {
            key: bye,
            status: 200,
            msg: "200"
        }]
    );
}

#[test]
fn unanswered_bye_times_out_on_timer_f() {
    for (reliability, sends) in [(UDP, 11), (TCP, 1)] {
        let clock = Clock::new();
        let mut t = table();
        let bye = TransactionKey::client("z9hG4bK-bye", "BYE");
        t.start_client(clock.at(0.0), bye.clone(), "BYE", reliability)
            .unwrap();
        let mut seen = drain(&mut t)
            .into_iter()
            .map(|o| (0.0, o))
            .collect::<Vec<_>>();
        seen.extend(run_until(&mut t, &clock, 100.0));
        assert_eq!(transmit_times(&seen, "BYE").len(), sends);
        assert_eq!(
            seen[seen.len() - 2..],
            [
                (
                    32.0,
                    Output::Timeout {
                        role: Role::Client,
                        key: bye.clone()
                    }
                ),
                (
                    32.0,
                    Output::Terminated {
                        role: Role::Client,
                        key: bye
                    }
                )
            ]
        );
        assert!(t.is_empty());
    }
}

#[test]
fn outgoing_invite_rejected_acked_by_the_transaction() {
    let clock = Clock::new();
    let mut t = table();
    let invite = TransactionKey::client("z9hG4bK-out", "INVITE");
    t.start_client(clock.at(0.0), invite.clone(), "INVITE", UDP)
        .unwrap();
    drain(&mut t);
    assert_eq!(
        transmit_times(&run_until(&mut t, &clock, 2.0), "INVITE"),
        [0.5, 1.5]
    );
    t.handle_response(clock.at(2.0), invite.clone(), 180, "180", |_, _| "x")
        .unwrap();
    assert_eq!(t.state(Role::Client, &invite), Some(State::Proceeding));
    // CANCEL is its own client transaction, found from the INVITE's branch.
    let cancel = TransactionKey::client("z9hG4bK-out", "CANCEL");
    assert_eq!(cancel.invite_key_for_cancel(), Some(invite.clone()));
    t.start_client(clock.at(3.0), cancel.clone(), "CANCEL", UDP)
        .unwrap();
    t.handle_response(clock.at(3.1), cancel.clone(), 200, "200-cancel", |_, _| "x")
        .unwrap();
    drain(&mut t);
    t.handle_response(clock.at(3.2), invite.clone(), 487, "487", |req, resp| {
        assert_eq!((*req, *resp), ("INVITE", "487"));
        "ACK"
    })
    .unwrap();
    assert_eq!(
        drain(&mut t),
        [
            Output::Transmit {
                role: Role::Client,
                key: invite.clone(),
                msg: "ACK"
            },
            Output::ResponseToTu {
                key: invite.clone(),
                status: 487,
                msg: "487"
            }
        ]
    );
    t.handle_response(clock.at(3.7), invite.clone(), 487, "487", |_, _| {
        panic!("the ACK is built once")
    })
    .unwrap();
    assert_eq!(
        drain(&mut t),
        [Output::Transmit {
            role: Role::Client,
            key: invite.clone(),
            msg: "ACK"
        }]
    );
    let ends: Vec<_> = run_until(&mut t, &clock, 100.0)
        .into_iter()
        .map(|(at, o)| match o {
            Output::Terminated { key, .. } => (at, key.method().to_owned()),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        ends,
        [(8.1, "CANCEL".to_owned()), (35.2, "INVITE".to_owned())],
        "Timer K for the CANCEL, Timer D for the INVITE"
    );
}

#[test]
fn outgoing_invite_answered_goes_accepted_until_timer_m() {
    let clock = Clock::new();
    let mut t = table();
    let invite = TransactionKey::client("z9hG4bK-out", "INVITE");
    t.start_client(clock.at(0.0), invite.clone(), "INVITE", TCP)
        .unwrap();
    t.handle_response(clock.at(1.0), invite.clone(), 200, "200", |_, _| "x")
        .unwrap();
    t.handle_response(clock.at(1.5), invite.clone(), 200, "200", |_, _| "x")
        .unwrap();
    let responses = drain(&mut t)
        .into_iter()
        .filter(|o| matches!(o, Output::ResponseToTu { status: 200, .. }))
        .count();
    assert_eq!(responses, 2, "every 2xx reaches the TU, which ACKs each");
    assert_eq!(t.poll_timeout(), Some(clock.at(33.0)));
    assert_eq!(run_until(&mut t, &clock, 100.0).len(), 1);
    assert!(t.is_empty());
}

#[test]
fn outgoing_invite_over_tcp_times_out_on_timer_b() {
    let clock = Clock::new();
    let mut t = table();
    let invite = TransactionKey::client("z9hG4bK-out", "INVITE");
    t.start_client(clock.at(0.0), invite.clone(), "INVITE", TCP)
        .unwrap();
    drain(&mut t);
    let seen = run_until(&mut t, &clock, 100.0);
    assert_eq!(
        seen,
        [
            (
                32.0,
                Output::Timeout {
                    role: Role::Client,
                    key: invite.clone()
                }
            ),
            (
                32.0,
                Output::Terminated {
                    role: Role::Client,
                    key: invite
                }
            )
        ]
    );
}

#[test]
fn transport_error_ends_the_transaction() {
    let clock = Clock::new();
    let mut t = table();
    let options = TransactionKey::client("z9hG4bK-opt", "OPTIONS");
    t.start_client(clock.at(0.0), options.clone(), "OPTIONS", TCP)
        .unwrap();
    drain(&mut t);
    t.transport_error(Role::Client, &options);
    assert_eq!(
        drain(&mut t),
        [
            Output::TransportError {
                role: Role::Client,
                key: options.clone()
            },
            Output::Terminated {
                role: Role::Client,
                key: options.clone()
            }
        ]
    );
    // Reported again (or for an unknown key): nothing happens.
    t.transport_error(Role::Client, &options);
    t.transport_error(Role::Server, &options);
    assert_eq!(drain(&mut t), []);
    assert!(t.is_empty());
}

#[test]
fn rfc2543_invite_and_ack_match_without_branch() {
    let clock = Clock::new();
    let mut t = table();
    let mut fields = request_fields("INVITE", "");
    fields.branch = None;
    let invite = TransactionKey::for_request(&fields);
    assert!(!invite.is_rfc3261());
    t.handle_request(clock.at(0.0), invite.clone(), "INVITE", UDP)
        .unwrap();
    t.send_response(clock.at(0.0), &invite, 404, "404").unwrap();
    drain(&mut t);
    let mut ack = fields;
    ack.method = "ACK";
    ack.to_tag = Some("our-tag");
    t.handle_request(clock.at(0.2), TransactionKey::for_request(&ack), "ACK", UDP)
        .unwrap();
    assert_eq!(drain(&mut t), []);
    assert_eq!(t.state(Role::Server, &invite), Some(State::Confirmed));
}

#[test]
fn api_misuse_is_reported() {
    let clock = Clock::new();
    let mut t = table().with_max_transactions(2);
    let unknown = server_key("BYE", "z9hG4bK-none");
    assert_eq!(
        t.send_response(clock.at(0.0), &unknown, 200, "200"),
        Err(TransactionError::NoSuchTransaction {
            role: Role::Server,
            key: unknown.clone()
        })
    );
    assert_eq!(
        t.start_client(
            clock.at(0.0),
            TransactionKey::client("z9hG4bK-a", "ACK"),
            "ACK",
            UDP
        ),
        Err(TransactionError::AckIsNotATransaction)
    );
    let a = TransactionKey::client("z9hG4bK-a", "INFO");
    t.start_client(clock.at(0.0), a.clone(), "INFO", UDP)
        .unwrap();
    assert!(matches!(
        t.start_client(clock.at(0.0), a.clone(), "INFO", UDP),
        Err(TransactionError::DuplicateKey { .. })
    ));
    assert_eq!(
        t.handle_response(clock.at(0.0), a.clone(), 1000, "bad", |_, _| "x"),
        Err(TransactionError::InvalidStatus(1000))
    );
    t.handle_request(clock.at(0.0), unknown.clone(), "BYE", UDP)
        .unwrap();
    assert_eq!(
        t.handle_request(clock.at(0.0), server_key("BYE", "z9hG4bK-3"), "BYE", UDP),
        Err(TransactionError::TableFull { limit: 2 })
    );
    // Retransmissions and ACKs still work when full.
    t.handle_request(clock.at(0.1), unknown.clone(), "BYE", UDP)
        .unwrap();
    t.handle_request(clock.at(0.1), server_key("ACK", "z9hG4bK-x"), "ACK", UDP)
        .unwrap();
    t.send_response(clock.at(0.2), &unknown, 200, "200")
        .unwrap();
    assert!(matches!(
        t.send_response(clock.at(0.3), &unknown, 200, "200"),
        Err(TransactionError::WrongState {
            state: State::Completed,
            ..
        })
    ));
    let outputs = drain(&mut t);
    assert_eq!(
        outputs
            .iter()
            .filter(|o| matches!(o, Output::RequestToTu { .. }))
            .count(),
        1
    );
    assert_eq!(
        outputs
            .iter()
            .filter(|o| matches!(o, Output::Transmit { msg: "INFO", .. }))
            .count(),
        1,
        "the refused duplicate sent nothing"
    );
}

#[test]
fn ten_thousand_transactions_all_end_and_nothing_leaks() {
    let clock = Clock::new();
    let mut t: TransactionTable<u32> = TransactionTable::new(TimerConfig::default());
    let branches: Vec<String> = (0..10_000).map(|i| format!("z9hG4bK-{i}")).collect();
    let mut created = 0;
    let mut expected_timeouts = 0;
    for (i, branch) in branches.iter().enumerate() {
        let now = clock.at(i as f64 * 0.001);
        let reliability = if i % 3 == 0 { TCP } else { UDP };
        match i % 6 {
            0 => {
                // Rejected call never ACKed: Timer G then H.
                let k = TransactionKey::server(branch, "peer", Some(5060), "INVITE");
                t.handle_request(now, k.clone(), 1, reliability).unwrap();
                t.send_response(now, &k, 486, 2).unwrap();
            }
            1 => {
                // Answered call: Accepted until Timer L.
                let k = TransactionKey::server(branch, "peer", Some(5060), "INVITE");
                t.handle_request(now, k.clone(), 1, reliability).unwrap();
                t.send_response(now, &k, 200, 2).unwrap();
            }
            2 => {
                // Answered OPTIONS: Timer J.
                let k = TransactionKey::server(branch, "peer", Some(5060), "OPTIONS");
                t.handle_request(now, k.clone(), 1, reliability).unwrap();
                t.send_response(now, &k, 200, 2).unwrap();
            }
            3 => {
                // Our INVITE, never answered: Timer A then B.
                let k = TransactionKey::client(branch, "INVITE");
                t.start_client(now, k, 3, reliability).unwrap();
            }
            4 => {
                // Our BYE, answered 100 then nothing: Timer E then F.
                let k = TransactionKey::client(branch, "BYE");
                t.start_client(now, k.clone(), 3, reliability).unwrap();
                t.handle_response(now, k, 100, 4, |_, _| 5).unwrap();
            }
            _ => {
                // Our BYE, answered: Timer K.
                let k = TransactionKey::client(branch, "BYE");
                t.start_client(now, k.clone(), 3, reliability).unwrap();
                t.handle_response(now, k, 200, 4, |_, _| 5).unwrap();
            }
        }
        created += 1;
        if matches!(i % 6, 0 | 3 | 4) {
            expected_timeouts += 1;
        }
    }
    let mut terminated = 0;
    let mut timeouts = 0;
    let mut wakeups = 0;
    let mut last = clock.at(0.0);
    loop {
        terminated += std::iter::from_fn(|| t.poll_output())
            .filter(|o| match o {
                Output::Terminated { .. } => true,
                Output::Timeout { .. } => {
                    timeouts += 1;
                    false
                }
                _ => false,
            })
            .count();
        let Some(at) = t.poll_timeout() else { break };
        assert!(at >= last, "deadlines come in order");
        last = at;
        t.handle_timeout(at);
        wakeups += 1;
    }
    assert_eq!(terminated, created);
    // Server INVITE rejected (H), client INVITE (B), client BYE in Proceeding (F).
    assert_eq!(timeouts, expected_timeouts);
    assert!(t.is_empty());
    assert_eq!(t.poll_timeout(), None);
    assert!(wakeups > 0);
}
