//! One call as data: its UAS (the caller's dialog) and its flow machine composed into one
//! state machine, `handle(now, CallInput)` / `poll_output()` / `poll_timeout()`. What the
//! caller sends, what the media hears and what IO returns go in; SIP messages, media
//! commands, HTTP requests and the call's end (with its story) come out.
//!
//! Pure: no sockets, no tasks, no clock, no randomness (the Via branches of our requests
//! are a prefix drawn by the shell and a counter). It does not resolve prompts (the shell
//! has the library) and does not yet own the call's queue place or its outgoing legs: the
//! flow's `Transfer`, `Queue` and `LeaveQueue` come out as [`CallOutput::Flow`] for the
//! shell to carry out. The engine's call task does not run on it yet.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::Outcome;
use crate::flow::machine::{Action, Audio, Event, FlowMachine, PlayId, RequestId};
use crate::flow::story::CallStory;
use crate::sip::message::{Request, Response, Via};
use crate::sip::sdp::Negotiated;
use crate::sip::transaction::TransactionKey;
use crate::sip::uas::{Ending, Uas, UasEvent, UasInput, UasOutput};

/// What the call hears.
#[derive(Debug, Clone)]
pub enum CallInput {
    /// Something of the caller's dialog.
    Sip(UasInput),
    /// A key the media heard (RFC 4733 or in-band).
    Key(char),
    /// The last frame of this playback was sent.
    PlayFinished { id: u64 },
    /// Nothing arrived from the caller for too long.
    NoMedia,
    /// What IO the call asked for returned (an HTTP answer, a saved recording).
    Io(Event),
}

/// What the media session should do.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaCommand {
    /// Set up the session for what was negotiated.
    Start(Negotiated),
    Play {
        id: u64,
        audio: Vec<Audio>,
        barge_in: bool,
    },
    Stop {
        id: u64,
    },
    /// The caller moved or held the call.
    Update {
        remote: SocketAddr,
        send: bool,
        reset_latch: bool,
    },
    Record {
        id: u64,
        max_duration: Duration,
        silence_timeout: Option<Duration>,
        terminator: Option<char>,
        name: String,
    },
}

/// What the call wants done.
#[derive(Debug, Clone, PartialEq)]
pub enum CallOutput {
    /// Answer a server transaction.
    Respond {
        key: TransactionKey,
        resp: Response,
    },
    /// Send as it is, outside any transaction (a copy of our 2xx until its ACK).
    Retransmit(Response),
    /// Send through a new client transaction.
    Request(Request),
    Media(MediaCommand),
    /// The flow's HTTP step (answer with `CallInput::Io(Event::HttpDone)`).
    Http(Action),
    /// A flow action the core does not own yet (transfer, queue).
    Flow(Action),
    /// The call is over; nothing more comes out.
    Ended {
        outcome: Option<Outcome>,
        story: CallStory,
    },
}

pub struct CallCore {
    uas: Uas,
    machine: FlowMachine,
    /// Our Via without its branch, and the branch prefix the shell drew.
    via: Via,
    branch_prefix: String,
    branches: u64,
    started: bool,
    outcome: Option<Outcome>,
    ended: bool,
    out: VecDeque<CallOutput>,
}

impl CallCore {
    /// A call for the INVITE `uas` was made from, running `machine` once answered. `via`
    /// is our Via for requests; each gets the branch `<branch_prefix>-<n>`.
    pub fn new(uas: Uas, machine: FlowMachine, via: Via, branch_prefix: String) -> CallCore {
        let mut core = CallCore {
            uas,
            machine,
            via,
            branch_prefix,
            branches: 0,
            started: false,
            outcome: None,
            ended: false,
            out: VecDeque::new(),
        };
        core.pump(None);
        core
    }

    /// Answers (or starts ringing); see [`Uas::answer`].
    pub fn answer(&mut self, now: Instant) {
        self.uas.answer(now);
        self.pump(Some(now));
    }

    pub fn uas(&self) -> &Uas {
        &self.uas
    }

    pub fn story(&self) -> &CallStory {
        self.machine.story()
    }

    pub fn handle(&mut self, now: Instant, input: CallInput) {
        if self.ended {
            return;
        }
        match input {
            CallInput::Sip(s) => {
                let (via, prefix, n) = (&self.via, &self.branch_prefix, &mut self.branches);
                self.uas.handle(now, s, || branched(via, prefix, n));
            }
            CallInput::Key(k) => self.flow(now, Event::Key(k)),
            CallInput::PlayFinished { id } => {
                self.flow(now, Event::PromptFinished { id: PlayId(id) })
            }
            CallInput::NoMedia => {
                self.outcome.get_or_insert(Outcome::NoMedia);
                self.hang_up(now);
            }
            CallInput::Io(ev) => self.flow(now, ev),
        }
        self.pump(Some(now));
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let flow = if self.started && !self.ended {
            self.machine.poll_timeout()
        } else {
            None
        };
        match (self.uas.poll_timeout(), flow) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let (via, prefix, n) = (&self.via, &self.branch_prefix, &mut self.branches);
        self.uas.handle_timeout(now, || branched(via, prefix, n));
        if self.started && self.machine.poll_timeout().is_some_and(|d| d <= now) {
            self.machine.handle_timeout(now);
        }
        self.pump(Some(now));
    }

    pub fn poll_output(&mut self) -> Option<CallOutput> {
        self.out.pop_front()
    }

    fn hang_up(&mut self, now: Instant) {
        let via = branched(&self.via, &self.branch_prefix, &mut self.branches);
        self.uas.hang_up(now, via);
    }

    fn flow(&mut self, now: Instant, ev: Event) {
        if self.started && self.outcome.is_none() {
            self.machine.handle(now, ev);
        }
    }

    /// Moves what the UAS and the machine produced to the outputs, until both are quiet.
    fn pump(&mut self, now: Option<Instant>) {
        loop {
            let mut moved = false;
            while let Some(o) = self.uas.poll_output() {
                moved = true;
                match o {
                    UasOutput::Respond { key, resp } => {
                        self.out.push_back(CallOutput::Respond { key, resp })
                    }
                    UasOutput::Retransmit(r) => self.out.push_back(CallOutput::Retransmit(r)),
                    UasOutput::Request(r) => self.out.push_back(CallOutput::Request(r)),
                    UasOutput::Event(e) => self.on_uas(now, e),
                }
            }
            while let Some(a) = self.machine.poll_action() {
                moved = true;
                self.on_action(now, a);
            }
            if !moved {
                break;
            }
        }
        if !self.ended && self.uas.is_over() {
            self.ended = true;
            let story = self.machine.story().clone();
            self.out.push_back(CallOutput::Ended {
                outcome: self.outcome,
                story,
            });
        }
    }

    fn on_uas(&mut self, now: Option<Instant>, ev: UasEvent) {
        match ev {
            UasEvent::Media(n) => {
                self.out
                    .push_back(CallOutput::Media(MediaCommand::Start(n)));
                if !self.started
                    && let Some(now) = now
                {
                    self.started = true;
                    self.machine.handle(now, Event::Started);
                }
            }
            UasEvent::MediaUpdate {
                remote,
                send,
                reset_latch,
            } => self.out.push_back(CallOutput::Media(MediaCommand::Update {
                remote,
                send,
                reset_latch,
            })),
            UasEvent::Key(k) => {
                if let Some(now) = now {
                    self.flow(now, Event::Key(k.as_char()));
                }
            }
            UasEvent::Ended(why) => {
                let outcome = match why {
                    Ending::RemoteBye => Outcome::CallerHungUp,
                    Ending::AckTimeout => Outcome::AckTimeout,
                    Ending::NoUsableAnswer => Outcome::NoUsableAnswer,
                };
                if self.outcome.is_none() {
                    self.outcome = Some(outcome);
                    if outcome == Outcome::CallerHungUp
                        && self.started
                        && let Some(now) = now
                    {
                        self.machine.handle(now, Event::CallerHangup);
                    }
                }
            }
            UasEvent::Refused { .. } | UasEvent::Cancelled | UasEvent::Answered => {}
            UasEvent::Closed => {}
        }
    }

    fn on_action(&mut self, now: Option<Instant>, a: Action) {
        match a {
            Action::Play {
                id,
                audio,
                barge_in,
            } => self.out.push_back(CallOutput::Media(MediaCommand::Play {
                id: id.0,
                audio,
                barge_in,
            })),
            Action::StopPlayback { id } => self
                .out
                .push_back(CallOutput::Media(MediaCommand::Stop { id: id.0 })),
            Action::Record {
                id: RequestId(id),
                max_duration,
                silence_timeout,
                terminator,
                name,
            } => self.out.push_back(CallOutput::Media(MediaCommand::Record {
                id,
                max_duration,
                silence_timeout,
                terminator,
                name,
            })),
            Action::Hangup => {
                self.outcome.get_or_insert(Outcome::FlowHungUp);
                if let Some(now) = now {
                    self.hang_up(now);
                }
            }
            a @ Action::Http { .. } => self.out.push_back(CallOutput::Http(a)),
            a @ (Action::Transfer { .. } | Action::Queue { .. } | Action::LeaveQueue { .. }) => {
                self.out.push_back(CallOutput::Flow(a))
            }
        }
    }
}

/// Our Via with the next branch of this call.
fn branched(via: &Via, prefix: &str, n: &mut u64) -> Via {
    *n += 1;
    let mut via = via.clone();
    via.params.set("branch", Some(&format!("{prefix}-{n}")));
    via
}

/// A scripted caller, the core and the flow machine on a fake clock, in the manner of
/// quinn-proto's `Pair`: no socket, no task.
#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::flow::load::{AnyPrompt, FlowSource, compile_flows};
    use crate::flow::machine::CallContext;
    use crate::sip::message::{Host, Method, Transport, Uri};
    use crate::sip::uas::test_requests::{OFFER, in_dialog, request};
    use crate::sip::uas::{AnswerParams, LocalMedia, Route, UasState};

    const FLOW: &str = "steps:
  welcome:
    play: welcome
    next: menu
  menu:
    menu:
      prompt: main_menu
      options: { \"1\": bye }
  bye:
    hangup: thanks
";

    fn invite() -> Request {
        request(&format!(
            "INVITE sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bK-inv\r\n\
From: <sip:alice@192.0.2.1>;tag=theirs\r\nTo: <sip:100@127.0.0.1>\r\nCall-ID: c1\r\n\
CSeq: 1 INVITE\r\nContact: <sip:alice@192.0.2.1:5070>\r\nContent-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{OFFER}",
            OFFER.len()
        ))
    }

    fn key(name: &str) -> TransactionKey {
        TransactionKey::client(name, "X")
    }

    struct Pair {
        core: CallCore,
        now: Instant,
        /// Everything the core put out, in order.
        out: Vec<CallOutput>,
    }

    impl Pair {
        fn new(route: Route, ring_for: Duration) -> Pair {
            let now = Instant::now();
            let (set, diags) = compile_flows(
                vec![FlowSource {
                    name: "main".into(),
                    file: "flows/main.yaml".into(),
                    text: FLOW.into(),
                }],
                &AnyPrompt,
            );
            assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
            let ctx = CallContext {
                call_id: "c1".into(),
                caller: "alice".into(),
                dialed: "100".into(),
                wall_clock_at_start: std::time::SystemTime::UNIX_EPOCH.into(),
            };
            let machine = FlowMachine::new(Arc::new(set), "main", ctx, now).expect("machine");
            let uas = Uas::new(
                key("inv"),
                invite(),
                AnswerParams {
                    local_tag: "ours".into(),
                    first_cseq: 10,
                    contact: Uri::parse("sip:hotline@127.0.0.1:5060").expect("uri"),
                    route,
                    media: Some(LocalMedia {
                        advertised: "127.0.0.1".parse().expect("ip"),
                        rtp_port: 20000,
                        sdp_session_id: 5,
                        sdp_version: 1,
                    }),
                    ring_for,
                    timers: crate::sip::transaction::TimerConfig::default(),
                },
            );
            let via = Via::new(
                Transport::Udp,
                Host::parse("127.0.0.1").expect("host"),
                Some(5060),
                "z9hG4bK-x",
            );
            let mut pair = Pair {
                core: CallCore::new(uas, machine, via, "z9hG4bK-call".into()),
                now,
                out: Vec::new(),
            };
            pair.drain();
            pair
        }

        fn drain(&mut self) -> Vec<CallOutput> {
            let new: Vec<CallOutput> = std::iter::from_fn(|| self.core.poll_output()).collect();
            self.out.extend(new.iter().cloned());
            new
        }

        fn input(&mut self, i: CallInput) -> Vec<CallOutput> {
            self.core.handle(self.now, i);
            self.drain()
        }

        fn sip(&mut self, i: UasInput) -> Vec<CallOutput> {
            self.input(CallInput::Sip(i))
        }

        /// Lets the fake clock run for `d`, firing every timer due on the way.
        fn advance(&mut self, d: Duration) -> Vec<CallOutput> {
            let until = self.now + d;
            let mut got = Vec::new();
            while let Some(t) = self.core.poll_timeout().filter(|t| *t <= until) {
                self.now = self.now.max(t);
                self.core.handle_timeout(self.now);
                got.extend(self.drain());
            }
            self.now = until;
            got
        }

        fn answered_and_acked(route: Route) -> Pair {
            let mut p = Pair::new(route, Duration::ZERO);
            p.core.answer(p.now);
            p.drain();
            p.sip(UasInput::Ack(in_dialog("ACK", 1, "", "")));
            p
        }
    }

    fn statuses(out: &[CallOutput]) -> Vec<u16> {
        out.iter()
            .filter_map(|o| match o {
                CallOutput::Respond { resp, .. } => Some(resp.status),
                _ => None,
            })
            .collect()
    }

    fn plays(out: &[CallOutput]) -> Vec<(u64, String)> {
        out.iter()
            .filter_map(|o| match o {
                CallOutput::Media(MediaCommand::Play { id, audio, .. }) => match audio.first() {
                    Some(Audio::Prompt(p)) => Some((*id, p.name.clone())),
                    _ => Some((*id, String::new())),
                },
                _ => None,
            })
            .collect()
    }

    fn ended(out: &[CallOutput]) -> Option<(Option<Outcome>, CallStory)> {
        out.iter().find_map(|o| match o {
            CallOutput::Ended { outcome, story } => Some((*outcome, story.clone())),
            _ => None,
        })
    }

    #[test]
    fn a_whole_call_walks_the_menu_with_an_info_key_and_the_flow_hangs_up() {
        let mut p = Pair::new(Route::Found, Duration::ZERO);
        p.core.answer(p.now);
        let out = p.drain();
        assert_eq!(statuses(&out), vec![200]);
        assert!(matches!(out[1], CallOutput::Media(MediaCommand::Start(_))));
        let welcome = plays(&out);
        assert_eq!(welcome[0].1, "welcome");
        p.sip(UasInput::Ack(in_dialog("ACK", 1, "", "")));
        let out = p.input(CallInput::PlayFinished { id: welcome[0].0 });
        assert_eq!(plays(&out)[0].1, "main_menu");
        let info = in_dialog(
            "INFO",
            2,
            "Content-Type: application/dtmf-relay\r\n",
            "Signal=1\r\nDuration=160\r\n",
        );
        let out = p.sip(UasInput::Request {
            key: key("info"),
            req: info,
        });
        assert_eq!(statuses(&out)[0], 200);
        let thanks = plays(&out);
        assert_eq!(thanks.last().map(|t| t.1.as_str()), Some("thanks"));
        let out = p.input(CallInput::PlayFinished {
            id: thanks.last().expect("play").0,
        });
        let bye = out
            .iter()
            .find_map(|o| match o {
                CallOutput::Request(r) if r.method == Method::Bye => Some(r.clone()),
                _ => None,
            })
            .expect("a BYE");
        assert_eq!(
            bye.headers.top_via().expect("via").branch(),
            Some("z9hG4bK-call-1")
        );
        assert!(ended(&out).is_none(), "the BYE's answer is awaited");
        let out = p.sip(UasInput::Response(Response::for_request(&bye, 200, "OK")));
        let (outcome, story) = ended(&out).expect("ended");
        assert_eq!(outcome, Some(Outcome::FlowHungUp));
        assert_eq!(story.path(), vec!["main/welcome", "main/menu", "main/bye"]);
        assert!(p.core.poll_timeout().is_none());
    }

    #[test]
    fn no_route_ends_the_call_with_404_before_any_flow() {
        let p = Pair::new(Route::NotFound, Duration::ZERO);
        assert_eq!(statuses(&p.out), vec![404]);
        let (outcome, story) = ended(&p.out).expect("ended");
        assert_eq!(outcome, None);
        assert!(story.entries.is_empty(), "the flow never ran");
    }

    #[test]
    fn cancel_while_ringing_ends_the_call_before_the_flow() {
        let mut p = Pair::new(Route::Found, Duration::from_secs(2));
        p.core.answer(p.now);
        assert_eq!(statuses(&p.drain()), vec![180]);
        p.advance(Duration::from_secs(1));
        let mut cancel = invite();
        cancel.method = Method::Cancel;
        cancel
            .headers
            .set(crate::sip::message::HeaderName::CSeq, "1 CANCEL");
        let out = p.sip(UasInput::Cancel {
            key: key("c"),
            req: cancel,
        });
        assert_eq!(statuses(&out), vec![200, 487]);
        assert!(ended(&out).is_some());
        assert!(plays(&p.out).is_empty());
        assert_eq!(p.core.uas().state(), UasState::Terminated);
    }

    #[test]
    fn ringing_gives_way_to_the_answer_and_the_flow_on_the_fake_clock() {
        let mut p = Pair::new(Route::Found, Duration::from_secs(2));
        p.core.answer(p.now);
        p.drain();
        assert!(p.advance(Duration::from_millis(1999)).is_empty());
        let out = p.advance(Duration::from_millis(1));
        assert_eq!(statuses(&out), vec![200]);
        assert_eq!(plays(&out)[0].1, "welcome");
    }

    #[test]
    fn a_hold_reinvite_stops_sending_and_the_flow_goes_on() {
        let mut p = Pair::answered_and_acked(Route::Found);
        let hold = OFFER.replace("c=IN IP4 192.0.2.1", "c=IN IP4 0.0.0.0") + "a=sendonly\r\n";
        let req = in_dialog("INVITE", 2, "Content-Type: application/sdp\r\n", &hold);
        let out = p.sip(UasInput::Request {
            key: key("re"),
            req,
        });
        assert_eq!(statuses(&out), vec![200]);
        assert!(out.iter().any(|o| matches!(
            o,
            CallOutput::Media(MediaCommand::Update { send: false, .. })
        )));
        assert!(ended(&p.out).is_none());
    }

    #[test]
    fn the_callers_bye_mid_prompt_ends_the_call_and_the_story() {
        let mut p = Pair::answered_and_acked(Route::Found);
        let out = p.sip(UasInput::Request {
            key: key("bye"),
            req: in_dialog("BYE", 2, "", ""),
        });
        assert_eq!(statuses(&out), vec![200]);
        let (outcome, story) = ended(&out).expect("ended");
        assert_eq!(outcome, Some(Outcome::CallerHungUp));
        assert_eq!(story.path(), vec!["main/welcome"]);
        // Nothing more comes out of an ended call.
        assert!(p.input(CallInput::Key('1')).is_empty());
    }

    #[test]
    fn silence_from_the_caller_hangs_up() {
        let mut p = Pair::answered_and_acked(Route::Found);
        let out = p.input(CallInput::NoMedia);
        assert!(
            out.iter()
                .any(|o| matches!(o, CallOutput::Request(r) if r.method == Method::Bye))
        );
        let out = p.sip(UasInput::RequestTimeout);
        assert_eq!(ended(&out).expect("ended").0, Some(Outcome::NoMedia));
    }
}
