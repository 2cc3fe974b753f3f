//! One call as data: its UAS (the caller's dialog) and what the call runs once answered
//! (its flow machine, or the tones of a feature code) composed into one state machine,
//! `handle(now, CallInput)` / `poll_output()` / `poll_timeout()`. What the caller sends,
//! what the media hears and what IO returns go in; SIP messages, media commands, HTTP
//! requests and the call's end (with its story) come out.
//!
//! Pure: no sockets, no tasks, no clock, no randomness (the Via branches of our requests
//! are a prefix drawn by the shell and a counter). It does not resolve prompts (the shell
//! has the library). The call's place in a queue and its outgoing legs are carried out by
//! the shell: the flow's `Transfer`, `Queue` and `LeaveQueue` come out as
//! [`CallOutput::Flow`], and what they bring back comes in as [`CallInput::Io`].

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

/// The play id of a feature code's tones (a flow's plays count up from 1 too, but a call
/// runs one or the other).
pub const TONES_PLAY: u64 = 1;

/// How long a call whose dialog is over waits for a recording in progress to be stopped
/// and saved, so that a caller who hangs up mid-message still leaves a whole file.
pub const RECORDING_GRACE: Duration = Duration::from_secs(5);

/// What the call runs once answered.
pub enum Script {
    /// A call flow.
    Flow(FlowMachine),
    /// These sounds, then hang up (a feature code's confirmation).
    Tones(Vec<Audio>),
    /// Nothing of its own: the shell keeps it in a queue (a call back).
    Queue,
}

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
    /// What IO the call asked for returned (an HTTP answer, a saved recording, a
    /// transfer's or a queue's end).
    Io(Event),
    /// The shell ends the call (the far end of a bridge hung up or went silent, a call back
    /// is over).
    HangUp(Outcome),
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
    /// End the recording in progress now (the call is over); what it holds is kept.
    StopRecording {
        id: u64,
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
    /// Send through a new client transaction.
    Request(Request),
    Media(MediaCommand),
    /// The flow's HTTP step (answer with `CallInput::Io(Event::HttpDone)`).
    Http(Action),
    /// A flow action the shell carries out (transfer, queue).
    Flow(Action),
    /// The call was answered (the flow starts with its media).
    Answered,
    /// The INVITE was refused with this status, or cancelled (487).
    Refused {
        status: u16,
    },
    /// The call is over; nothing more comes out.
    Ended {
        outcome: Option<Outcome>,
        story: CallStory,
    },
}

pub struct CallCore {
    uas: Uas,
    script: Script,
    /// Our Via without its branch, and the branch prefix the shell drew.
    via: Via,
    branch_prefix: String,
    branches: u64,
    started: bool,
    outcome: Option<Outcome>,
    /// The recording in progress (its id), and once the dialog is over, until when the
    /// call waits for it.
    recording: Option<u64>,
    recording_until: Option<Instant>,
    ended: bool,
    out: VecDeque<CallOutput>,
}

impl CallCore {
    /// A call for the INVITE `uas` was made from, running `script` once answered. `via`
    /// is our Via for requests; each gets the branch `<branch_prefix>-<n>`.
    pub fn new(uas: Uas, script: Script, via: Via, branch_prefix: String) -> CallCore {
        let mut core = CallCore {
            uas,
            script,
            via,
            branch_prefix,
            branches: 0,
            started: false,
            outcome: None,
            recording: None,
            recording_until: None,
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

    /// Refuses the INVITE (before the answer), say when its flow cannot run.
    pub fn refuse(&mut self, now: Instant, status: u16, reason: &str) {
        self.uas.refuse(status, reason);
        self.pump(Some(now));
    }

    /// Starts the script of a call whose dialog is already up (a call back the caller
    /// answered) and whose media the shell set up.
    pub fn start(&mut self, now: Instant) {
        self.begin(now);
        self.pump(Some(now));
    }

    pub fn uas(&self) -> &Uas {
        &self.uas
    }

    /// The flow's story so far (empty for a call that runs no flow).
    pub fn story(&self) -> CallStory {
        match &self.script {
            Script::Flow(m) => m.story().clone(),
            _ => CallStory::default(),
        }
    }

    /// Where the flow is: (flow, step).
    pub fn position(&self) -> Option<(&str, &str)> {
        match &self.script {
            Script::Flow(m) => Some(m.position()),
            _ => None,
        }
    }

    /// The caller's language, when the flow chose one.
    pub fn language(&self) -> Option<&str> {
        match &self.script {
            Script::Flow(m) => Some(m.language()),
            _ => None,
        }
    }

    pub fn outcome(&self) -> Option<Outcome> {
        self.outcome
    }

    /// Whether the call is on its way out (nothing new starts).
    pub fn is_ending(&self) -> bool {
        self.outcome.is_some() || self.ended
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
            CallInput::PlayFinished { id } => self.play_finished(now, id),
            CallInput::NoMedia => {
                self.outcome.get_or_insert(Outcome::NoMedia);
                self.hang_up(now);
            }
            CallInput::Io(ev) => {
                if let Event::RecordDone { id, .. } = &ev
                    && self.recording == Some(id.0)
                {
                    self.recording = None;
                    self.recording_until = None;
                }
                // What IO reports belongs in the story even after the caller hung up.
                if self.started
                    && let Script::Flow(m) = &mut self.script
                {
                    m.handle(now, ev);
                }
            }
            CallInput::HangUp(why) => {
                self.outcome.get_or_insert(why);
                self.hang_up(now);
            }
        }
        self.pump(Some(now));
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let flow = match &self.script {
            Script::Flow(m) if self.started && !self.ended => m.poll_timeout(),
            _ => None,
        };
        [self.uas.poll_timeout(), flow, self.recording_until]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.uas.handle_timeout(now);
        if self.started
            && let Script::Flow(m) = &mut self.script
            && m.poll_timeout().is_some_and(|d| d <= now)
        {
            m.handle_timeout(now);
        }
        if self.recording_until.is_some_and(|t| t <= now) {
            self.recording = None;
            self.recording_until = None;
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
        if self.started
            && self.outcome.is_none()
            && let Script::Flow(m) = &mut self.script
        {
            m.handle(now, ev);
        }
    }

    fn play_finished(&mut self, now: Instant, id: u64) {
        match self.script {
            Script::Flow(_) => self.flow(now, Event::PromptFinished { id: PlayId(id) }),
            Script::Tones(_) if id == TONES_PLAY && self.outcome.is_none() => {
                self.outcome = Some(Outcome::FlowHungUp);
                self.hang_up(now);
            }
            Script::Tones(_) | Script::Queue => {}
        }
    }

    /// The call is answered and its media is up: the script starts.
    fn begin(&mut self, now: Instant) {
        if self.started {
            return;
        }
        self.started = true;
        match &mut self.script {
            Script::Flow(m) => m.handle(now, Event::Started),
            Script::Tones(audio) => {
                let audio = std::mem::take(audio);
                self.out.push_back(CallOutput::Media(MediaCommand::Play {
                    id: TONES_PLAY,
                    audio,
                    barge_in: false,
                }));
            }
            Script::Queue => {}
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
                    UasOutput::Request(r) => self.out.push_back(CallOutput::Request(r)),
                    UasOutput::Event(e) => self.on_uas(now, e),
                }
            }
            while let Some(a) = match &mut self.script {
                Script::Flow(m) => m.poll_action(),
                _ => None,
            } {
                moved = true;
                self.on_action(now, a);
            }
            if !moved {
                break;
            }
        }
        if self.ended || !self.uas.is_over() {
            return;
        }
        if let Some(id) = self.recording
            && self.recording_until.is_none()
            && let Some(now) = now
        {
            self.recording_until = Some(now + RECORDING_GRACE);
            self.out
                .push_back(CallOutput::Media(MediaCommand::StopRecording { id }));
        }
        if self.recording.is_none() {
            self.ended = true;
            let story = self.story();
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
                if let Some(now) = now {
                    self.begin(now);
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
                        && let Script::Flow(m) = &mut self.script
                    {
                        m.handle(now, Event::CallerHangup);
                    }
                }
            }
            UasEvent::Answered => self.out.push_back(CallOutput::Answered),
            UasEvent::Refused { status } => self.out.push_back(CallOutput::Refused { status }),
            UasEvent::Cancelled => self.out.push_back(CallOutput::Refused { status: 487 }),
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
            } => {
                self.recording = Some(id);
                self.out.push_back(CallOutput::Media(MediaCommand::Record {
                    id,
                    max_duration,
                    silence_timeout,
                    terminator,
                    name,
                }))
            }
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
                },
            );
            let via = Via::new(
                Transport::Udp,
                Host::parse("127.0.0.1").expect("host"),
                Some(5060),
                "z9hG4bK-x",
            );
            let mut pair = Pair {
                core: CallCore::new(uas, Script::Flow(machine), via, "z9hG4bK-call".into()),
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
        assert!(
            out.iter()
                .any(|o| matches!(o, CallOutput::Media(MediaCommand::Start(_))))
        );
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
