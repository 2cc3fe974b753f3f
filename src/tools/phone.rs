//! A virtual phone: one call's `FlowMachine` driven on a clock the caller of this module
//! moves, with the media side simulated from the prompt library (how long each prompt
//! lasts, the words it speaks). `simulate` and flow tests both stand on it, so what they
//! show is what the same interpreter does on a live call.
//!
//! Owns the simulated playback timeline (which item of which playback is heard when), the
//! log of what happened, and the answers of the outside world to the machine's actions
//! ([`VirtualCall::act`], the one place that maps an `Action` to a simulated outcome). It is
//! pure: it never reads a clock, sleeps or prints; times are given to it.
//!
//! A [`scripted`](VirtualCall::scripted) call leaves the actions to its caller instead of
//! answering them: the interpreter's tests check its requests to the shell one by one.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::flow::flowset::FlowSet;
use crate::flow::machine::{
    Action, Audio, CallContext, Event, FlowMachine, HttpFailure, MachineError, PlayId, PromptRef,
    QueueOutcome, RecordEnd, TransferOutcome,
};
use crate::flow::model::SayKind;
use crate::flow::story::{Outcome, StoryEvent};
use crate::media::prompt::PromptLibrary;

/// How long a `say` item lasts in the simulation: speech of values is not rendered by the
/// prompt library, so there is no recording to measure.
pub const SAY_DURATION: Duration = Duration::from_secs(1);

/// One thing the caller hears.
#[derive(Debug, Clone, PartialEq)]
pub enum Sound {
    /// A recorded prompt. `transcript` is its `.txt`, `found` whether a recording exists
    /// (a live call skips a missing one, so it lasts no time here either).
    Prompt {
        name: String,
        language: String,
        transcript: Option<String>,
        found: bool,
    },
    Say {
        kind: SayKind,
        value: String,
    },
    Silence(Duration),
    /// A generated tone, such as the beep before a recording.
    Tone {
        freq_hz: u16,
    },
}

impl Sound {
    /// The prompt's name, for prompts only.
    pub fn prompt_name(&self) -> Option<&str> {
        match self {
            Sound::Prompt { name, .. } => Some(name),
            _ => None,
        }
    }
}

/// Something that happened in the call, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Happening {
    /// A sound started playing.
    Heard(Sound),
    /// The caller pressed a key.
    Pressed(char),
    /// A key stopped the playback (barge-in).
    PromptStopped,
    /// What the interpreter noted (steps, key uses, tags...), except plays and stops,
    /// which come as `Heard` and `PromptStopped`.
    Story(StoryEvent),
    /// The flow ended the call.
    FlowHungUp,
    /// The call was handed to this agent queue.
    Queued(String),
    /// The call was transferred to this address.
    Transferred(String),
    /// The machine asked for something the simulation cannot answer yet.
    Unsupported(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    /// Time since the call started.
    pub at: Duration,
    pub what: Happening,
}

/// A canned answer for an `http` step in a flow test.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpStub {
    pub status: u16,
    pub body: serde_json::Value,
    /// Answer only after this long (a stub longer than the step's timeout is a timeout).
    pub delay: Duration,
}

/// How the simulated agent queue answers every `queue` step of a call, at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueAnswer {
    pub outcome: QueueOutcome,
    /// The wait reported to the flow (`queue.wait`).
    pub waited: Duration,
}

/// The words a flow test uses for a queue's answer.
pub const QUEUE_ANSWERS: &str =
    "answered, caller_hangs_up, max_wait, full, no_agents, callback or failed";

impl QueueAnswer {
    /// The answer named `word` (see [`QUEUE_ANSWERS`]); `agent` answers for `answered`.
    pub fn from_word(word: &str, agent: &str, waited: Duration) -> Option<QueueAnswer> {
        let outcome = match word {
            "answered" => QueueOutcome::AgentHungUp {
                agent: agent.to_owned(),
            },
            "caller_hangs_up" => QueueOutcome::CallerHungUp,
            "max_wait" | "full" | "no_agents" => QueueOutcome::Overflow {
                reason: word.to_owned(),
            },
            "callback" => QueueOutcome::Callback,
            "failed" => QueueOutcome::Failed("failed in the test".to_owned()),
            _ => return None,
        };
        Some(QueueAnswer { outcome, waited })
    }
}

impl Default for QueueAnswer {
    /// An agent named `agent` answers at once and hangs up first.
    fn default() -> Self {
        QueueAnswer {
            outcome: QueueOutcome::AgentHungUp {
                agent: "agent".to_owned(),
            },
            waited: Duration::ZERO,
        }
    }
}

/// What the world outside the flow answers: stubbed HTTP replies by step name, the
/// agent queue and the wall clock for `hours`. Used by [`VirtualCall::act`] as the
/// interpreter gains those actions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct World {
    pub http: BTreeMap<String, HttpStub>,
    /// The wall-clock time of the call, RFC 3339 (`2026-11-23T10:00:00+01:00`).
    pub at: Option<String>,
    /// How queues answer; by default an agent answers at once and hangs up first.
    pub queue: Option<QueueAnswer>,
}

impl World {
    /// The wall-clock time the call starts at: `at` when given, else now.
    pub fn wall_clock(&self) -> chrono::DateTime<chrono::Utc> {
        self.at
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_else(|| std::time::SystemTime::now().into())
    }
}

/// What the call is doing now, from the caller's side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// A playback runs (the caller hears something).
    Playing,
    /// The flow waits for a key in this step; the timeout fires at `deadline`.
    Waiting {
        step: String,
        deadline: Instant,
    },
    Ended,
}

#[derive(Debug)]
struct Item {
    starts: Instant,
    sound: Sound,
}

#[derive(Debug)]
struct Playback {
    id: PlayId,
    items: Vec<Item>,
    /// Items before this index have been heard.
    next_item: usize,
    ends: Instant,
}

/// One simulated call. Move time with [`advance_to`](VirtualCall::advance_to), act as the caller
/// with [`press`](VirtualCall::press) and [`hang_up`](VirtualCall::hang_up), read [`log`](VirtualCall::log).
#[derive(Debug)]
pub struct VirtualCall {
    machine: FlowMachine,
    prompts: PromptLibrary,
    world: World,
    started: Instant,
    now: Instant,
    playback: Option<Playback>,
    log: Vec<LogEntry>,
    story_seen: usize,
    ended: bool,
    /// The machine's actions kept for a test that answers them itself
    /// ([`scripted`](VirtualCall::scripted)); `None` when the simulated world answers.
    script: Option<VecDeque<Action>>,
}

impl VirtualCall {
    /// A call to `flow`, answered at `now`: the first step runs at once.
    pub fn start(
        flows: Arc<FlowSet>,
        prompts: PromptLibrary,
        flow: &str,
        ctx: CallContext,
        world: World,
        now: Instant,
    ) -> Result<VirtualCall, MachineError> {
        VirtualCall::answered_by(flows, prompts, flow, ctx, world, None, now)
    }

    /// A call to `flow` whose actions nobody answers: they wait for
    /// [`poll_action`](VirtualCall::poll_action), in the machine's order, and the caller
    /// of this module answers with [`send`](VirtualCall::send). This is how the
    /// interpreter's requests to the shell are checked one by one. Nothing plays on its
    /// own (a playback lasts until `PromptFinished` is sent); `advance_to` fires the
    /// machine's timer; the log holds only the keys pressed.
    pub fn scripted(
        flows: Arc<FlowSet>,
        flow: &str,
        ctx: CallContext,
        now: Instant,
    ) -> Result<VirtualCall, MachineError> {
        VirtualCall::answered_by(
            flows,
            PromptLibrary::default(),
            flow,
            ctx,
            World::default(),
            Some(VecDeque::new()),
            now,
        )
    }

    fn answered_by(
        flows: Arc<FlowSet>,
        prompts: PromptLibrary,
        flow: &str,
        ctx: CallContext,
        world: World,
        script: Option<VecDeque<Action>>,
        now: Instant,
    ) -> Result<VirtualCall, MachineError> {
        let machine = FlowMachine::new(flows, flow, ctx, now)?;
        let mut phone = VirtualCall {
            machine,
            prompts,
            world,
            started: now,
            now,
            playback: None,
            log: Vec::new(),
            story_seen: 0,
            ended: false,
            script,
        };
        phone.machine.handle(now, Event::Started);
        phone.pump();
        Ok(phone)
    }

    /// The next action of a [`scripted`](VirtualCall::scripted) call; always `None` when
    /// the simulated world answers the actions.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.script.as_mut()?.pop_front()
    }

    /// Hands `event` to the machine now, as the shell does with its answers.
    pub fn send(&mut self, event: Event) {
        self.machine.handle(self.now, event);
        self.pump();
    }

    pub fn now(&self) -> Instant {
        self.now
    }

    /// Time since the call started.
    pub fn elapsed(&self) -> Duration {
        self.now.saturating_duration_since(self.started)
    }

    pub fn log(&self) -> &[LogEntry] {
        &self.log
    }

    pub fn machine(&self) -> &FlowMachine {
        &self.machine
    }

    pub fn world(&self) -> &World {
        &self.world
    }

    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// How the call ended, once decided.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.machine.story().outcome.as_ref()
    }

    pub fn state(&self) -> State {
        if self.ended {
            return State::Ended;
        }
        if self.playback.is_some() {
            return State::Playing;
        }
        match self.machine.poll_timeout() {
            Some(deadline) => State::Waiting {
                step: self.machine.position().1.to_owned(),
                deadline,
            },
            // Neither playing nor waiting: nothing will ever happen again.
            None => State::Ended,
        }
    }

    /// When something happens next on its own (a sound starts, a playback ends, a timeout
    /// fires); `None` once the call has ended.
    pub fn next_event_at(&self) -> Option<Instant> {
        if self.ended {
            return None;
        }
        if let Some(p) = &self.playback {
            return Some(p.items.get(p.next_item).map_or(p.ends, |i| i.starts));
        }
        self.machine.poll_timeout()
    }

    /// When the playback running now ends.
    pub fn playback_ends_at(&self) -> Option<Instant> {
        self.playback.as_ref().map(|p| p.ends)
    }

    /// Lets time pass until `t`, handling everything due on the way at its own time.
    pub fn advance_to(&mut self, t: Instant) {
        while let Some(next) = self.next_event_at() {
            if next > t {
                break;
            }
            self.now = self.now.max(next);
            self.fire_due();
        }
        self.now = self.now.max(t);
    }

    /// Lets time pass until the next thing happens on its own; false when nothing will.
    pub fn step(&mut self) -> bool {
        match self.next_event_at() {
            Some(t) => {
                self.advance_to(t);
                true
            }
            None => false,
        }
    }

    /// The caller presses `key` now.
    pub fn press(&mut self, key: char) {
        if self.ended {
            return;
        }
        self.push(Happening::Pressed(key));
        self.machine.handle(self.now, Event::Key(key));
        self.pump();
    }

    /// The caller hangs up now.
    pub fn hang_up(&mut self) {
        if self.ended {
            return;
        }
        self.machine.handle(self.now, Event::CallerHangup);
        self.pump();
        self.playback = None;
        self.ended = true;
    }

    // ------------------------------------------------------------------ internals

    /// Handles the one event due at `self.now`.
    fn fire_due(&mut self) {
        let now = self.now;
        if let Some(p) = &mut self.playback {
            if let Some(item) = p.items.get(p.next_item)
                && item.starts <= now
            {
                let sound = item.sound.clone();
                p.next_item += 1;
                self.push(Happening::Heard(sound));
                return;
            }
            if p.ends <= now {
                let id = p.id;
                self.playback = None;
                self.machine.handle(now, Event::PromptFinished { id });
                self.pump();
                return;
            }
        }
        if self.machine.poll_timeout().is_some_and(|d| d <= now) {
            self.machine.handle_timeout(now);
            self.pump();
        }
    }

    /// Takes what the machine did: its story in order (plays and stops become the
    /// playback timeline), then the actions left, until it has nothing more to say.
    fn pump(&mut self) {
        if let Some(script) = &mut self.script {
            script.extend(std::iter::from_fn(|| self.machine.poll_action()));
            return;
        }
        loop {
            let mut actions: Vec<Action> =
                std::iter::from_fn(|| self.machine.poll_action()).collect();
            let entries = self
                .machine
                .story()
                .entries
                .get(self.story_seen..)
                .unwrap_or(&[])
                .to_vec();
            self.story_seen += entries.len();
            if actions.is_empty() && entries.is_empty() {
                return;
            }
            for e in entries {
                match e.event {
                    StoryEvent::Played { id, .. } => {
                        if let Some(i) = actions
                            .iter()
                            .position(|a| matches!(a, Action::Play { id: p, .. } if *p == id))
                        {
                            let a = actions.remove(i);
                            self.act(a);
                        }
                    }
                    StoryEvent::PlaybackStopped { id } => {
                        actions
                            .retain(|a| !matches!(a, Action::StopPlayback { id: s } if *s == id));
                        self.act(Action::StopPlayback { id });
                    }
                    other => self.push(Happening::Story(other)),
                }
            }
            for a in actions {
                self.act(a);
            }
        }
    }

    /// The simulated outside world's answer to one action of the machine. New actions
    /// of the interpreter (HTTP requests, queues, transfers, recordings) get their arm
    /// here: answer from `self.world`, then feed the result back with `machine.handle`.
    fn act(&mut self, action: Action) {
        match action {
            Action::Play { id, audio, .. } => self.start_playback(id, &audio),
            Action::StopPlayback { id } => {
                if self.playback.as_ref().is_some_and(|p| p.id == id) {
                    self.playback = None;
                    self.push(Happening::PromptStopped);
                }
            }
            Action::Hangup => {
                self.playback = None;
                if !self.ended {
                    self.ended = true;
                    self.push(Happening::FlowHungUp);
                }
            }
            Action::Http { id, timeout, .. } => {
                let step = self.machine.position().1.to_owned();
                let outcome = match self.world.http.get(&step) {
                    None => Err(HttpFailure::Connect),
                    Some(stub) if stub.delay > timeout => Err(HttpFailure::Timeout),
                    Some(stub) if !(200..300).contains(&stub.status) => {
                        Err(HttpFailure::Status(stub.status))
                    }
                    Some(stub) => Ok(stub.body.clone()),
                };
                let now = self.now;
                self.machine.handle(now, Event::HttpDone { id, outcome });
            }
            Action::Record { id, name, .. } => {
                // A simulated caller says nothing: the message ends on silence, empty.
                let now = self.now;
                self.machine.handle(
                    now,
                    Event::RecordDone {
                        id,
                        path: format!("{name}.wav"),
                        duration: Duration::ZERO,
                        reason: RecordEnd::Silence,
                    },
                );
            }
            Action::Queue { id, queue, .. } => {
                self.playback = None;
                self.push(Happening::Queued(queue));
                let answer = self.world.queue.clone().unwrap_or_default();
                let now = self.now;
                if let QueueOutcome::AgentHungUp { agent } = &answer.outcome {
                    let agent = agent.clone();
                    self.machine
                        .handle(now, Event::QueueConnected { id, agent });
                }
                let hung_up = answer.outcome == QueueOutcome::CallerHungUp;
                self.machine.handle(
                    now,
                    Event::QueueDone {
                        id,
                        outcome: answer.outcome,
                        waited: answer.waited,
                    },
                );
                if hung_up {
                    self.ended = true;
                }
            }
            // The simulated queue answers at once, so the caller is never still waiting.
            Action::LeaveQueue { .. } => {}
            Action::Transfer { id, target, .. } => {
                self.playback = None;
                self.push(Happening::Transferred(target));
                let now = self.now;
                self.machine.handle(
                    now,
                    Event::TransferDone {
                        id,
                        outcome: TransferOutcome::Connected,
                    },
                );
            }
        }
    }

    fn start_playback(&mut self, id: PlayId, audio: &[Audio]) {
        let mut at = self.now;
        let mut items = Vec::with_capacity(audio.len());
        for a in audio {
            let (sound, length) = self.sound(a);
            items.push(Item { starts: at, sound });
            at = at.checked_add(length).unwrap_or(at);
        }
        self.playback = Some(Playback {
            id,
            items,
            next_item: 0,
            ends: at,
        });
        // The first sound starts now; later ones as time passes.
        self.fire_due_sounds();
    }

    fn fire_due_sounds(&mut self) {
        let now = self.now;
        while let Some(p) = &mut self.playback {
            match p.items.get(p.next_item) {
                Some(item) if item.starts <= now => {
                    let sound = item.sound.clone();
                    p.next_item += 1;
                    self.push(Happening::Heard(sound));
                }
                _ => break,
            }
        }
    }

    /// What an audio item sounds like and how long it lasts, resolved as a live call does.
    fn sound(&self, a: &Audio) -> (Sound, Duration) {
        match a {
            Audio::Prompt(PromptRef {
                language,
                fallback_language,
                name,
            }) => {
                let found = self
                    .prompts
                    .get(language, name)
                    .or_else(|| self.prompts.get(fallback_language, name));
                let transcript = found
                    .and_then(|p| p.transcript())
                    .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
                    .filter(|t| !t.is_empty());
                (
                    Sound::Prompt {
                        name: name.clone(),
                        language: language.clone(),
                        transcript,
                        found: found.is_some(),
                    },
                    found.map_or(Duration::ZERO, |p| p.duration()),
                )
            }
            Audio::Say { kind, value, .. } => (
                Sound::Say {
                    kind: *kind,
                    value: value.clone(),
                },
                SAY_DURATION,
            ),
            Audio::Silence(d) => (Sound::Silence(*d), *d),
            Audio::Tone { freq_hz, duration } => (Sound::Tone { freq_hz: *freq_hz }, *duration),
        }
    }

    fn push(&mut self, what: Happening) {
        let at = self.elapsed();
        self.log.push(LogEntry { at, what });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::load::{AnyPrompt, FlowSource, compile_flows};
    use crate::media::prompt::Prompt;

    const FLOW: &str = r#"
steps:
  hello:
    play: [one_second, { silence: 500ms }, { say: digits, value: "{{ caller }}" }, two_seconds]
    next: menu
  menu:
    menu:
      prompt: two_seconds
      options: { "1": bye }
      timeout: 3s
  bye:
    hangup: one_second
"#;

    fn flows() -> Arc<FlowSet> {
        let (set, diags) = compile_flows(
            vec![FlowSource {
                name: "t".into(),
                file: "t.yaml".into(),
                text: FLOW.into(),
            }],
            &AnyPrompt,
        );
        assert!(diags.is_empty(), "{diags:?}");
        Arc::new(set)
    }

    fn call() -> (VirtualCall, Instant) {
        let prompts = PromptLibrary::from_prompts(
            "en",
            [
                (
                    "en".to_owned(),
                    Prompt::from_samples("one_second", vec![0; 8000]),
                ),
                (
                    "en".to_owned(),
                    Prompt::from_samples("two_seconds", vec![0; 16000]),
                ),
            ],
        );
        let t0 = Instant::now();
        let ctx = CallContext {
            caller: "42".into(),
            ..CallContext::default()
        };
        let c = VirtualCall::start(flows(), prompts, "t", ctx, World::default(), t0).unwrap();
        (c, t0)
    }

    fn heard(c: &VirtualCall) -> Vec<(u128, String)> {
        c.log()
            .iter()
            .filter_map(|e| match &e.what {
                Happening::Heard(s) => Some((
                    e.at.as_millis(),
                    match s {
                        Sound::Prompt { name, .. } => name.clone(),
                        Sound::Say { value, .. } => format!("say {value}"),
                        Sound::Silence(d) => format!("silence {}", d.as_millis()),
                        Sound::Tone { freq_hz } => format!("tone {freq_hz}"),
                    },
                )),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn sounds_start_when_the_ones_before_end() {
        let (mut c, t0) = call();
        assert_eq!(c.state(), State::Playing);
        c.advance_to(t0 + Duration::from_secs(9));
        assert_eq!(
            heard(&c),
            vec![
                (0, "one_second".to_owned()),
                (1000, "silence 500".to_owned()),
                (1500, "say 42".to_owned()),
                (2500, "two_seconds".to_owned()),
                (4500, "two_seconds".to_owned()),
            ]
        );
        // The menu prompt ended at 6.5 s; its timeout counts from there.
        assert_eq!(
            c.state(),
            State::Waiting {
                step: "menu".into(),
                deadline: t0 + Duration::from_millis(9500)
            }
        );
    }

    #[test]
    fn a_key_during_a_menu_prompt_stops_it_and_answers() {
        let (mut c, t0) = call();
        c.advance_to(t0 + Duration::from_secs(5));
        c.press('1');
        assert!(c.log().iter().any(|e| e.what == Happening::PromptStopped));
        assert_eq!(c.state(), State::Playing);
        assert!(c.step() && c.is_ended());
        assert_eq!(c.elapsed(), Duration::from_secs(6));
        assert_eq!(c.outcome(), Some(&Outcome::FlowHungUp));
        assert_eq!(c.next_event_at(), None);
        assert!(!c.step());
    }

    #[test]
    fn the_caller_hangs_up() {
        let (mut c, _) = call();
        c.hang_up();
        assert!(c.is_ended());
        assert_eq!(c.outcome(), Some(&Outcome::CallerHungUp));
        assert!(
            c.log()
                .iter()
                .any(|e| e.what == Happening::Story(StoryEvent::CallerHungUp))
        );
        assert_eq!(c.state(), State::Ended);
    }

    #[test]
    fn a_scripted_call_leaves_the_actions_to_its_caller() {
        let t0 = Instant::now();
        let mut c = VirtualCall::scripted(flows(), "t", CallContext::default(), t0).unwrap();
        let Some(Action::Play { id, .. }) = c.poll_action() else {
            panic!("the greeting plays");
        };
        assert_eq!(c.poll_action(), None);
        // Nothing ends a playback but the caller of the module.
        assert!(!c.step());
        c.send(Event::PromptFinished { id });
        assert!(matches!(c.poll_action(), Some(Action::Play { .. })));
        assert!(c.log().is_empty());
    }
}
