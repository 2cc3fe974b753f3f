//! A caller's place in an agent queue, as one pure state machine: `handle(now, PlaceInput)`
//! and `poll_output()`. It carries out the ACD's news for one call (hold music,
//! announcements, the callback offer and key, the agents' legs, the bridge) and tells the
//! flow how the time in line ended. The ACD decides who is offered and connected; this
//! only follows.
//!
//! Pure: no tasks, no sockets, no clock (`now` comes in), no prompt library. What the
//! caller hears goes out as [`Audio`] values (prompt references and numbers to say) for
//! the shell to resolve; legs are dialled, hung up and bridged by the owner, which reports
//! their news back. It needs no timer: every deadline of a queue is the ACD's.
//!
//! The owner puts the call in line first (`acd::Input::Join`, or `CallbackAnswered` for a
//! call back) and builds the place only once the ACD took it; a refused join is the
//! owner's `QueueDone(Failed)`. When [`PlaceOutput::Done`] comes out, the owner drops the
//! place. A call back runs no flow: its owner reads the same [`PlaceOutput::Flow`]
//! outputs (`QueueConnected`, `QueueDone`) and ends the call on `QueueDone` instead.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use tracing::{debug, info};

use crate::flow::machine::{Audio, Event, PromptRef, QueueOutcome, RequestId};
use crate::flow::model::SayKind;
use crate::flow::story::StoryEvent;
use crate::queue::acd::{Input, OfferFailure};
use crate::queue::config::prompts::{CALLBACK_OFFER, MINUTES, POSITION, WAIT};
use crate::queue::ewt::spoken_minutes;
use crate::queue::news::QueueNews;
use crate::sip::leg::LegNews;
use crate::sip::peer::Peer;
use crate::sip::uac::LegFailure;

/// The play id of the hold music; the flow never sees it.
pub const MUSIC_PLAY: u64 = u64::MAX - 2;
/// The play id of announcements and the callback offer; the flow never sees it.
pub const ANNOUNCE_PLAY: u64 = u64::MAX - 3;

/// A queue without music waits in silence, played again each time it ends: one play end a
/// minute per waiting caller costs nothing, and silence has no seam to hear.
const SILENT_WAIT: Duration = Duration::from_secs(60);

/// What the owner knows when the ACD has taken the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaceParams {
    /// The flow's `Queue` request (any id for a call back, which runs no flow).
    pub id: RequestId,
    pub queue: String,
    /// The call's id, as the ACD knows it.
    pub call: String,
    /// The caller's prompt language, and the one used when a prompt lacks it.
    pub language: String,
    pub fallback_language: String,
    /// The queue's `music` prompt; `None` when it has none or the prompt library lacks
    /// it (then the caller waits in silence).
    pub music: Option<String>,
    /// Whether the caller's number can be dialled: a callback is offered only then.
    pub dialable: bool,
}

/// What the place hears.
#[derive(Debug, Clone, PartialEq)]
pub enum PlaceInput {
    /// The ACD's news for this call.
    News(QueueNews),
    /// A key the caller pressed.
    Key(char),
    /// The last frame of this play was sent.
    PlayFinished { id: u64 },
    /// What the leg dialled for `agent` reports.
    AgentLeg { agent: String, news: LegNews },
    /// The leg for `agent` could not be placed (no route, no port...).
    AgentNotPlaced { agent: String },
    /// The caller put the call on hold (`on`) or took it off hold (a re-INVITE).
    CallerHold { on: bool },
    /// The caller leaves the line: the flow's `LeaveQueue`, or the call is ending.
    Leave,
    /// The connected `agent` transferred the caller elsewhere (a REFER whose target
    /// answered): the agent leaves (wrap-up), the bridge ends and the agent's leg is hung
    /// up; the flow is not told (the call goes on with the target).
    Transferred { agent: String },
}

/// Whether an input was the place's. A key or a play end that is not goes to the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Handled {
    Consumed,
    NotMine,
}

/// What the place wants done.
#[derive(Debug, Clone, PartialEq)]
pub enum PlaceOutput {
    /// Play this to the caller instead of what plays (no barge-in); report its end.
    Play { id: u64, audio: Vec<Audio> },
    /// Stop play `id` if it is still the one playing.
    Stop { id: u64 },
    /// Report this to the ACD.
    Acd(Input),
    /// Place a leg to `agent` at `contact` (sent to `via` when given); report its news as
    /// [`PlaceInput::AgentLeg`], or [`PlaceInput::AgentNotPlaced`].
    DialAgent {
        agent: String,
        contact: String,
        via: Option<Peer>,
    },
    /// Hang up the leg of `agent` (CANCEL or BYE); its news are no longer wanted.
    HangUpAgent { agent: String },
    /// Bridge the caller's media to the answered leg of `agent`. While bridged, the
    /// media relays the caller's keys to the agent.
    Bridge { agent: String },
    /// End the bridge.
    Unbridge,
    /// For the flow machine: `QueueConnected`, then `QueueDone`.
    Flow(Event),
    /// For the call's story (and so its record): the agents rung and who did not answer,
    /// hold, the wrap-up.
    Story(StoryEvent),
    /// The place is over: nothing more comes out; drop it.
    Done,
}

/// A leg placed for an offer.
#[derive(Debug)]
struct AgentLeg {
    agent: String,
    answered: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    Waiting,
    /// Talking to `agent`, who answered after the caller had waited `waited` and will
    /// have `wrap_up` after the call.
    Connected {
        agent: String,
        waited: Duration,
        wrap_up: Duration,
    },
    Over,
}

/// One caller's place in a queue.
#[derive(Debug)]
pub struct QueuePlace {
    id: RequestId,
    queue: String,
    call: String,
    joined: Instant,
    language: String,
    fallback_language: String,
    music: Option<String>,
    dialable: bool,
    stage: Stage,
    /// Pressing this asks for a callback (offered by the ACD).
    callback_key: Option<char>,
    /// An announcement (or the callback offer) is playing; the music resumes after it.
    announcing: bool,
    /// The callback offer waits for the announcement playing to end.
    offer_next: bool,
    /// Legs placed for offers and not ended, in the order they were dialled.
    legs: Vec<AgentLeg>,
    /// Which sides hold the conversation with the agent: (agent, caller).
    held: (bool, bool),
    out: VecDeque<PlaceOutput>,
}

impl QueuePlace {
    /// The caller is in line from `now`; the music starts.
    pub fn new(now: Instant, p: PlaceParams) -> QueuePlace {
        info!(queue = %p.queue, "caller queued");
        let mut place = QueuePlace {
            id: p.id,
            queue: p.queue,
            call: p.call,
            joined: now,
            language: p.language,
            fallback_language: p.fallback_language,
            music: p.music,
            dialable: p.dialable,
            stage: Stage::Waiting,
            callback_key: None,
            announcing: false,
            offer_next: false,
            legs: Vec::new(),
            held: (false, false),
            out: VecDeque::new(),
        };
        place.play_music();
        place
    }

    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The agent the caller is talking to.
    pub fn agent(&self) -> Option<&str> {
        match &self.stage {
            Stage::Connected { agent, .. } => Some(agent),
            _ => None,
        }
    }

    pub fn is_over(&self) -> bool {
        self.stage == Stage::Over
    }

    pub fn poll_output(&mut self) -> Option<PlaceOutput> {
        self.out.pop_front()
    }

    pub fn handle(&mut self, now: Instant, input: PlaceInput) -> Handled {
        if self.stage == Stage::Over {
            return Handled::NotMine;
        }
        match input {
            PlaceInput::News(news) => {
                self.on_news(news);
                Handled::Consumed
            }
            PlaceInput::Key(key) => self.on_key(now, key),
            PlaceInput::PlayFinished { id } => self.on_play_finished(id),
            PlaceInput::AgentLeg { agent, news } => self.on_agent_leg(agent, news),
            PlaceInput::AgentNotPlaced { agent } => {
                if self.forget_leg(&agent).is_none() {
                    return Handled::NotMine;
                }
                info!(%agent, "offer not placed");
                self.no_answer(&agent, "failed");
                self.acd(Input::OfferFailed {
                    call: self.call.clone(),
                    agent,
                    reason: OfferFailure::Error,
                });
                Handled::Consumed
            }
            PlaceInput::CallerHold { on } => {
                if !matches!(self.stage, Stage::Connected { .. }) {
                    return Handled::NotMine;
                }
                self.hold(false, on);
                Handled::Consumed
            }
            PlaceInput::Leave => {
                self.acd(Input::CallerLeft {
                    call: self.call.clone(),
                });
                self.end(None);
                Handled::Consumed
            }
            PlaceInput::Transferred { agent } => {
                if self.agent() != Some(agent.as_str()) {
                    return Handled::NotMine;
                }
                info!(%agent, "the agent transferred the caller");
                self.acd(Input::AgentLeft {
                    call: self.call.clone(),
                });
                self.end(None);
                Handled::Consumed
            }
        }
    }

    fn on_news(&mut self, news: QueueNews) {
        let waiting = self.stage == Stage::Waiting;
        match news {
            QueueNews::Offer {
                agent,
                contact,
                via,
            } => {
                if self.legs.iter().any(|l| l.agent == agent) {
                    // Its leg is still there and will answer for this offer too.
                    debug!(%agent, "offered again while its leg is up");
                    return;
                }
                self.legs.push(AgentLeg {
                    agent: agent.clone(),
                    answered: false,
                });
                self.story(StoryEvent::AgentRinging {
                    agent: agent.clone(),
                });
                self.out.push_back(PlaceOutput::DialAgent {
                    agent,
                    contact,
                    via,
                });
            }
            QueueNews::CancelOffer { agent, missed } => {
                // The connected agent is no longer an offer: only a hang-up ends that.
                if self.agent() != Some(agent.as_str()) && self.forget_leg(&agent).is_some() {
                    if missed {
                        self.no_answer(&agent, "ring_timeout");
                    }
                    self.out.push_back(PlaceOutput::HangUpAgent { agent });
                }
            }
            QueueNews::Connect {
                agent,
                waited,
                wrap_up,
            } if waiting => self.connect(agent, waited, wrap_up),
            QueueNews::Announce {
                prompt,
                position,
                ewt,
            } if waiting => {
                debug!(
                    ?prompt,
                    ?position,
                    ?ewt,
                    announcing = self.announcing,
                    "announcement"
                );
                let audio = self.announcement(prompt, position, ewt);
                if !audio.is_empty() {
                    self.announce(audio);
                }
            }
            QueueNews::OfferCallback { key } if waiting => {
                if !self.dialable {
                    info!("no callback offered: the caller's number cannot be dialled");
                    return;
                }
                self.callback_key = Some(key);
                debug!(announcing = self.announcing, "callback offer");
                // After the announcement that says the wait, not over it.
                if self.announcing {
                    self.offer_next = true;
                } else {
                    self.offer_callback();
                }
            }
            QueueNews::Overflow { reason, waited } => {
                // The ACD has taken the caller out of the line already.
                info!(reason = reason.as_str(), "caller leaves the queue");
                let outcome = QueueOutcome::Overflow {
                    reason: reason.as_str().to_string(),
                };
                self.end(Some((outcome, waited)));
            }
            QueueNews::Connect { .. }
            | QueueNews::Announce { .. }
            | QueueNews::OfferCallback { .. } => {}
        }
    }

    /// At once, whatever plays: the agent must not hear dead air.
    fn connect(&mut self, agent: String, waited: Duration, wrap_up: Duration) {
        self.stop_audio();
        let answered = self.legs.iter().any(|l| l.agent == agent && l.answered);
        if answered {
            self.out.push_back(PlaceOutput::Bridge {
                agent: agent.clone(),
            });
        }
        info!(%agent, ?waited, "talking to an agent");
        self.stage = Stage::Connected {
            agent: agent.clone(),
            waited,
            wrap_up,
        };
        self.flow(Event::QueueConnected {
            id: self.id,
            agent: agent.clone(),
        });
        if !answered {
            // The agent answered and hung up before this call heard of the connection
            // (the ACD was told then): the conversation is over at once.
            info!(%agent, "the agent's leg ended before the connection");
            self.end(Some((QueueOutcome::AgentHungUp { agent }, waited)));
        }
    }

    fn on_key(&mut self, now: Instant, key: char) -> Handled {
        match &self.stage {
            // Talking to the agent: the bridge relays keys to the agent's phone.
            Stage::Connected { .. } => Handled::Consumed,
            Stage::Waiting if self.callback_key == Some(key) => {
                info!("caller asked to be called back");
                self.acd(Input::CallbackRequested {
                    call: self.call.clone(),
                    number: None,
                });
                let waited = now.saturating_duration_since(self.joined);
                self.end(Some((QueueOutcome::Callback, waited)));
                Handled::Consumed
            }
            Stage::Waiting | Stage::Over => Handled::NotMine,
        }
    }

    /// The music or an announcement ended: the music plays (again) while waiting.
    fn on_play_finished(&mut self, id: u64) -> Handled {
        if id != MUSIC_PLAY && id != ANNOUNCE_PLAY {
            return Handled::NotMine;
        }
        if self.stage != Stage::Waiting {
            return Handled::Consumed;
        }
        debug!(id, announcing = self.announcing, "play finished");
        if id == MUSIC_PLAY {
            // The music's end crossed an announcement that replaced it: the music
            // resumes after the announcement, not over it.
            if !self.announcing {
                self.play_music();
            }
            return Handled::Consumed;
        }
        if !self.announcing {
            // A stale end (a later play replaced it): the music plays already.
            return Handled::Consumed;
        }
        self.announcing = false;
        if std::mem::take(&mut self.offer_next) {
            self.offer_callback();
        } else {
            self.play_music();
        }
        Handled::Consumed
    }

    fn on_agent_leg(&mut self, agent: String, news: LegNews) -> Handled {
        let Some(i) = self.legs.iter().position(|l| l.agent == agent) else {
            return Handled::NotMine;
        };
        let call = self.call.clone();
        match news {
            LegNews::Ringing => debug!(%agent, "agent rings"),
            LegNews::Answered => {
                self.legs[i].answered = true;
                // The ACD decides whom to connect (another agent may have answered first).
                self.acd(Input::OfferAnswered { call, agent });
            }
            LegNews::Failed(f) => {
                self.legs.remove(i);
                info!(%agent, why = %f, "offer failed");
                let (reason, why) = match f {
                    LegFailure::Busy => (OfferFailure::Busy, "busy"),
                    LegFailure::Declined => (OfferFailure::Declined, "declined"),
                    LegFailure::NoAnswer => (OfferFailure::Error, "no_answer"),
                    LegFailure::Error { .. } => (OfferFailure::Error, "failed"),
                };
                self.no_answer(&agent, why);
                self.acd(Input::OfferFailed {
                    call,
                    agent,
                    reason,
                });
            }
            LegNews::HungUp => {
                // Only an answered leg hangs up, and an answer the ACD took is a
                // connection there even if its Connect has not reached this call yet
                // (then Connect finds the leg gone and ends the conversation at once).
                self.legs.remove(i);
                self.acd(Input::AgentLeft { call });
                if let Stage::Connected {
                    agent: talking,
                    waited,
                    ..
                } = &self.stage
                    && *talking == agent
                {
                    let waited = *waited;
                    info!(%agent, "the agent hung up");
                    self.out.push_back(PlaceOutput::Unbridge);
                    self.end(Some((QueueOutcome::AgentHungUp { agent }, waited)));
                }
            }
            LegNews::Hold { on } => {
                if self.agent() == Some(agent.as_str()) {
                    self.hold(true, on);
                }
            }
            // A transfer is the call's (it places the target's leg): not the place's.
            LegNews::Refer { .. } => return Handled::NotMine,
        }
        Handled::Consumed
    }

    /// A side of the conversation held it or took it back; the story hears of changes
    /// only (a re-INVITE that moves the media without holding is not one).
    fn hold(&mut self, by_agent: bool, on: bool) {
        let side = if by_agent {
            &mut self.held.0
        } else {
            &mut self.held.1
        };
        if *side == on {
            return;
        }
        *side = on;
        info!(on, by_agent, "hold");
        self.story(StoryEvent::Hold {
            on,
            by: if by_agent { "agent" } else { "caller" }.to_owned(),
        });
    }

    /// An agent rang and did not take the call.
    fn no_answer(&mut self, agent: &str, reason: &str) {
        self.story(StoryEvent::AgentNoAnswer {
            agent: agent.to_owned(),
            reason: reason.to_owned(),
        });
    }

    fn story(&mut self, event: StoryEvent) {
        self.out.push_back(PlaceOutput::Story(event));
    }

    /// The time in line is over: the waiting audio stops, the bridge ends, every leg
    /// still up is hung up, the flow hears `done` (when it is to), and the place is over.
    fn end(&mut self, done: Option<(QueueOutcome, Duration)>) {
        match &self.stage {
            Stage::Waiting => self.stop_audio(),
            Stage::Connected { agent, wrap_up, .. } => {
                // Bridged exactly when the agent's leg had answered at `Connect`.
                if self.legs.iter().any(|l| l.agent == *agent && l.answered) {
                    self.out.push_back(PlaceOutput::Unbridge);
                }
                let (agent, wrap_up) = (agent.clone(), *wrap_up);
                self.story(StoryEvent::WrapUp { agent, wrap_up });
            }
            Stage::Over => return,
        }
        self.stage = Stage::Over;
        for leg in std::mem::take(&mut self.legs) {
            self.out
                .push_back(PlaceOutput::HangUpAgent { agent: leg.agent });
        }
        if let Some((outcome, waited)) = done {
            self.flow(Event::QueueDone {
                id: self.id,
                outcome,
                waited,
            });
        }
        self.out.push_back(PlaceOutput::Done);
    }

    fn forget_leg(&mut self, agent: &str) -> Option<AgentLeg> {
        let i = self.legs.iter().position(|l| l.agent == agent)?;
        Some(self.legs.remove(i))
    }

    fn stop_audio(&mut self) {
        self.announcing = false;
        self.offer_next = false;
        self.out.push_back(PlaceOutput::Stop { id: MUSIC_PLAY });
        self.out.push_back(PlaceOutput::Stop { id: ANNOUNCE_PLAY });
    }

    fn play_music(&mut self) {
        let audio = match &self.music {
            Some(name) => vec![self.prompt(name)],
            None => vec![Audio::Silence(SILENT_WAIT)],
        };
        self.out.push_back(PlaceOutput::Play {
            id: MUSIC_PLAY,
            audio,
        });
    }

    /// Says `audio` instead of the music.
    fn announce(&mut self, audio: Vec<Audio>) {
        self.announcing = true;
        self.out.push_back(PlaceOutput::Play {
            id: ANNOUNCE_PLAY,
            audio,
        });
    }

    /// "To keep your place in line and be called back, press 1."
    fn offer_callback(&mut self) {
        let audio = vec![self.prompt(CALLBACK_OFFER)];
        self.announce(audio);
    }

    /// "[prompt] You are caller number 3. Your expected wait is about 4 minutes."
    fn announcement(
        &self,
        prompt: Option<String>,
        position: Option<usize>,
        ewt: Option<Duration>,
    ) -> Vec<Audio> {
        let mut audio = Vec::new();
        if let Some(p) = prompt {
            audio.push(self.prompt(&p));
        }
        if let Some(pos) = position {
            audio.push(self.prompt(POSITION));
            audio.push(self.say_number(pos as u64));
        }
        if let Some(ewt) = ewt {
            audio.push(self.prompt(WAIT));
            audio.push(self.say_number(spoken_minutes(ewt)));
            audio.push(self.prompt(MINUTES));
        }
        audio
    }

    fn prompt(&self, name: &str) -> Audio {
        Audio::Prompt(PromptRef {
            language: self.language.clone(),
            fallback_language: self.fallback_language.clone(),
            name: name.to_string(),
        })
    }

    fn say_number(&self, n: u64) -> Audio {
        Audio::Say {
            language: self.language.clone(),
            kind: SayKind::Number,
            value: n.to_string(),
        }
    }

    fn acd(&mut self, input: Input) {
        self.out.push_back(PlaceOutput::Acd(input));
    }

    fn flow(&mut self, ev: Event) {
        self.out.push_back(PlaceOutput::Flow(ev));
    }
}

/// The place on a fake clock, with the ACD's news, the caller's keys, the media's play
/// ends and the agents' legs played by hand.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::acd::OverflowReason;

    const QUEUE: &str = "support";
    const CALL: &str = "c1";
    const ID: RequestId = RequestId(7);

    struct Fake {
        place: QueuePlace,
        now: Instant,
        /// What the place told the story, kept apart from its other outputs.
        story: Vec<StoryEvent>,
    }

    fn params(music: Option<&str>, dialable: bool) -> PlaceParams {
        PlaceParams {
            id: ID,
            queue: QUEUE.into(),
            call: CALL.into(),
            language: "fr".into(),
            fallback_language: "en".into(),
            music: music.map(str::to_string),
            dialable,
        }
    }

    impl Fake {
        /// A caller in line, its first outputs (the music) already taken.
        fn new(p: PlaceParams) -> (Fake, Vec<PlaceOutput>) {
            let start = Instant::now();
            let mut f = Fake {
                place: QueuePlace::new(start, p),
                now: start,
                story: Vec::new(),
            };
            let first = f.drain();
            (f, first)
        }

        fn waiting() -> Fake {
            Fake::new(params(Some("hold"), true)).0
        }

        fn drain(&mut self) -> Vec<PlaceOutput> {
            let mut out = Vec::new();
            while let Some(o) = self.place.poll_output() {
                match o {
                    PlaceOutput::Story(ev) => self.story.push(ev),
                    o => out.push(o),
                }
            }
            out
        }

        fn advance(&mut self, secs: u64) {
            self.now += Duration::from_secs(secs);
        }

        fn run(&mut self, input: PlaceInput) -> (Handled, Vec<PlaceOutput>) {
            let h = self.place.handle(self.now, input);
            (h, self.drain())
        }

        /// Runs an input that must be the place's.
        fn mine(&mut self, input: PlaceInput) -> Vec<PlaceOutput> {
            let (h, out) = self.run(input);
            assert_eq!(h, Handled::Consumed);
            out
        }

        fn news(&mut self, news: QueueNews) -> Vec<PlaceOutput> {
            self.mine(PlaceInput::News(news))
        }

        fn leg(&mut self, agent: &str, news: LegNews) -> Vec<PlaceOutput> {
            self.mine(PlaceInput::AgentLeg {
                agent: agent.into(),
                news,
            })
        }

        fn offer(&mut self, agent: &str) -> Vec<PlaceOutput> {
            self.news(QueueNews::Offer {
                agent: agent.into(),
                contact: format!("sip:{agent}@192.0.2.9"),
                via: None,
            })
        }

        /// `agent` is offered, answers, and the ACD connects it after `waited`.
        fn talking_to(&mut self, agent: &str, waited: u64) -> Vec<PlaceOutput> {
            self.offer(agent);
            self.leg(agent, LegNews::Answered);
            self.advance(waited);
            self.news(QueueNews::Connect {
                agent: agent.into(),
                waited: Duration::from_secs(waited),
                wrap_up: Duration::ZERO,
            })
        }
    }

    fn prompt(name: &str) -> Audio {
        Audio::Prompt(PromptRef {
            language: "fr".into(),
            fallback_language: "en".into(),
            name: name.into(),
        })
    }

    fn number(n: u64) -> Audio {
        Audio::Say {
            language: "fr".into(),
            kind: SayKind::Number,
            value: n.to_string(),
        }
    }

    fn music() -> PlaceOutput {
        PlaceOutput::Play {
            id: MUSIC_PLAY,
            audio: vec![prompt("hold")],
        }
    }

    fn stops() -> [PlaceOutput; 2] {
        [
            PlaceOutput::Stop { id: MUSIC_PLAY },
            PlaceOutput::Stop { id: ANNOUNCE_PLAY },
        ]
    }

    fn callback_offer() -> PlaceOutput {
        PlaceOutput::Play {
            id: ANNOUNCE_PLAY,
            audio: vec![prompt(CALLBACK_OFFER)],
        }
    }

    fn acd(input: Input) -> PlaceOutput {
        PlaceOutput::Acd(input)
    }

    fn done(outcome: QueueOutcome, waited: u64) -> PlaceOutput {
        PlaceOutput::Flow(Event::QueueDone {
            id: ID,
            outcome,
            waited: Duration::from_secs(waited),
        })
    }

    fn hang_up(agent: &str) -> PlaceOutput {
        PlaceOutput::HangUpAgent {
            agent: agent.into(),
        }
    }

    fn position_only(n: usize) -> QueueNews {
        QueueNews::Announce {
            prompt: None,
            position: Some(n),
            ewt: None,
        }
    }

    #[test]
    fn joining_plays_the_queues_music_in_the_callers_language() {
        let (f, first) = Fake::new(params(Some("hold"), true));
        assert_eq!(first, vec![music()]);
        assert_eq!(f.place.queue(), QUEUE);
        assert_eq!(f.place.agent(), None);
        assert!(!f.place.is_over());
    }

    #[test]
    fn the_music_loops_and_a_queue_without_music_waits_in_silence() {
        let mut f = Fake::waiting();
        f.advance(180);
        assert_eq!(
            f.mine(PlaceInput::PlayFinished { id: MUSIC_PLAY }),
            [music()]
        );

        let (mut f, first) = Fake::new(params(None, true));
        let silence = PlaceOutput::Play {
            id: MUSIC_PLAY,
            audio: vec![Audio::Silence(Duration::from_secs(60))],
        };
        assert_eq!(first, std::slice::from_ref(&silence));
        f.advance(60);
        assert_eq!(
            f.mine(PlaceInput::PlayFinished { id: MUSIC_PLAY }),
            [silence]
        );
    }

    #[test]
    fn an_announcement_is_said_instead_of_the_music_which_resumes_after_it() {
        let mut f = Fake::waiting();
        let out = f.news(QueueNews::Announce {
            prompt: Some("thanks_for_waiting".into()),
            position: Some(3),
            ewt: Some(Duration::from_secs(200)),
        });
        let said = vec![
            prompt("thanks_for_waiting"),
            prompt(POSITION),
            number(3),
            prompt(WAIT),
            number(4),
            prompt(MINUTES),
        ];
        assert_eq!(
            out,
            [PlaceOutput::Play {
                id: ANNOUNCE_PLAY,
                audio: said
            }]
        );
        f.advance(8);
        assert_eq!(
            f.mine(PlaceInput::PlayFinished { id: ANNOUNCE_PLAY }),
            [music()]
        );
        // An announcement with nothing to say does not cut the music.
        assert!(
            f.news(QueueNews::Announce {
                prompt: None,
                position: None,
                ewt: None
            })
            .is_empty()
        );
    }

    #[test]
    fn the_musics_end_crossing_an_announcement_does_not_cut_it() {
        let mut f = Fake::waiting();
        f.news(position_only(2));
        // The music had ended just before the announcement replaced it.
        assert!(
            f.mine(PlaceInput::PlayFinished { id: MUSIC_PLAY })
                .is_empty()
        );
        assert_eq!(
            f.mine(PlaceInput::PlayFinished { id: ANNOUNCE_PLAY }),
            [music()]
        );
        // A second end of the same announcement is stale: the music plays already.
        assert!(
            f.mine(PlaceInput::PlayFinished { id: ANNOUNCE_PLAY })
                .is_empty()
        );
    }

    #[test]
    fn the_callback_offer_waits_for_the_announcement_playing_to_end() {
        let mut f = Fake::waiting();
        f.news(position_only(5));
        assert!(f.news(QueueNews::OfferCallback { key: '1' }).is_empty());
        f.advance(6);
        assert_eq!(
            f.mine(PlaceInput::PlayFinished { id: ANNOUNCE_PLAY }),
            [callback_offer()]
        );
        f.advance(4);
        assert_eq!(
            f.mine(PlaceInput::PlayFinished { id: ANNOUNCE_PLAY }),
            [music()]
        );
    }

    #[test]
    fn the_callback_offer_is_said_at_once_over_the_music() {
        let mut f = Fake::waiting();
        assert_eq!(
            f.news(QueueNews::OfferCallback { key: '1' }),
            [callback_offer()]
        );
        assert_eq!(
            f.mine(PlaceInput::PlayFinished { id: ANNOUNCE_PLAY }),
            [music()]
        );
    }

    #[test]
    fn the_callback_key_leaves_the_line_with_the_time_waited_since_joining() {
        let mut f = Fake::waiting();
        f.offer("alice");
        f.advance(90);
        f.news(QueueNews::OfferCallback { key: '1' });
        f.advance(5);
        let (h, out) = f.run(PlaceInput::Key('1'));
        assert_eq!(h, Handled::Consumed);
        let mut want = vec![acd(Input::CallbackRequested {
            call: CALL.into(),
            number: None,
        })];
        want.extend(stops());
        want.extend([
            hang_up("alice"),
            done(QueueOutcome::Callback, 95),
            PlaceOutput::Done,
        ]);
        assert_eq!(out, want);
        assert!(f.place.is_over());
    }

    #[test]
    fn keys_other_than_the_callback_key_are_the_flows() {
        let mut f = Fake::waiting();
        // Not offered yet: the key is not the queue's.
        assert_eq!(f.run(PlaceInput::Key('1')), (Handled::NotMine, vec![]));
        f.news(QueueNews::OfferCallback { key: '1' });
        assert_eq!(f.run(PlaceInput::Key('2')), (Handled::NotMine, vec![]));
        assert_eq!(f.run(PlaceInput::Key('#')), (Handled::NotMine, vec![]));
        // Play ends of the flow's own prompts are the flow's too.
        assert_eq!(
            f.run(PlaceInput::PlayFinished { id: 3 }),
            (Handled::NotMine, vec![])
        );
    }

    #[test]
    fn a_caller_whose_number_cannot_be_dialled_is_never_offered_a_callback() {
        let (mut f, _) = Fake::new(params(Some("hold"), false));
        assert!(f.news(QueueNews::OfferCallback { key: '1' }).is_empty());
        assert_eq!(f.run(PlaceInput::Key('1')), (Handled::NotMine, vec![]));
        assert!(!f.place.is_over());
    }

    #[test]
    fn an_offer_dials_the_agent_and_its_answer_goes_to_the_acd() {
        let mut f = Fake::waiting();
        let via = Peer {
            transport: crate::config::Protocol::Udp,
            remote: "192.0.2.9:5060".parse().unwrap(),
            local: "192.0.2.1:5060".parse().unwrap(),
        };
        let out = f.news(QueueNews::Offer {
            agent: "alice".into(),
            contact: "sip:alice@10.0.0.9".into(),
            via: Some(via),
        });
        assert_eq!(
            out,
            [PlaceOutput::DialAgent {
                agent: "alice".into(),
                contact: "sip:alice@10.0.0.9".into(),
                via: Some(via)
            }]
        );
        assert!(f.leg("alice", LegNews::Ringing).is_empty());
        assert_eq!(
            f.leg("alice", LegNews::Answered),
            [acd(Input::OfferAnswered {
                call: CALL.into(),
                agent: "alice".into()
            })]
        );
        // News of a leg the place did not dial are not its own.
        let (h, out) = f.run(PlaceInput::AgentLeg {
            agent: "mallory".into(),
            news: LegNews::Answered,
        });
        assert_eq!((h, out), (Handled::NotMine, vec![]));
    }

    #[test]
    fn offer_failures_reach_the_acd_with_a_reason() {
        let cases = [
            (LegFailure::Busy, OfferFailure::Busy),
            (LegFailure::Declined, OfferFailure::Declined),
            (LegFailure::NoAnswer, OfferFailure::Error),
            (
                LegFailure::Error {
                    status: 503,
                    reason: "Service Unavailable".into(),
                },
                OfferFailure::Error,
            ),
        ];
        let mut f = Fake::waiting();
        for (failure, reason) in cases {
            f.offer("alice");
            let out = f.leg("alice", LegNews::Failed(failure));
            let want = acd(Input::OfferFailed {
                call: CALL.into(),
                agent: "alice".into(),
                reason,
            });
            assert_eq!(out, [want]);
        }
        f.offer("bob");
        let out = f.mine(PlaceInput::AgentNotPlaced {
            agent: "bob".into(),
        });
        let want = acd(Input::OfferFailed {
            call: CALL.into(),
            agent: "bob".into(),
            reason: OfferFailure::Error,
        });
        assert_eq!(out, [want]);
        // Those legs are gone: leaving hangs up nothing.
        let mut want = vec![acd(Input::CallerLeft { call: CALL.into() })];
        want.extend(stops());
        want.push(PlaceOutput::Done);
        assert_eq!(f.mine(PlaceInput::Leave), want);
    }

    #[test]
    fn connect_stops_the_waiting_audio_at_once_bridges_and_tells_the_flow() {
        let mut f = Fake::waiting();
        f.news(position_only(1));
        let out = f.talking_to("alice", 42);
        let mut want = stops().to_vec();
        want.extend([
            PlaceOutput::Bridge {
                agent: "alice".into(),
            },
            PlaceOutput::Flow(Event::QueueConnected {
                id: ID,
                agent: "alice".into(),
            }),
        ]);
        assert_eq!(out, want);
        assert_eq!(f.place.agent(), Some("alice"));
        // The announcement's end, cut by the connection, restarts nothing.
        assert!(
            f.mine(PlaceInput::PlayFinished { id: ANNOUNCE_PLAY })
                .is_empty()
        );
    }

    #[test]
    fn announcements_and_callback_offers_are_ignored_once_connected() {
        let mut f = Fake::waiting();
        f.news(position_only(4));
        // The offer waits for the announcement, which the connection cuts.
        f.news(QueueNews::OfferCallback { key: '1' });
        f.talking_to("alice", 30);
        assert!(f.news(position_only(1)).is_empty());
        assert!(f.news(QueueNews::OfferCallback { key: '1' }).is_empty());
        assert!(
            f.mine(PlaceInput::PlayFinished { id: ANNOUNCE_PLAY })
                .is_empty()
        );
        assert!(
            f.mine(PlaceInput::PlayFinished { id: MUSIC_PLAY })
                .is_empty()
        );
        // The callback key is the conversation's now.
        assert!(f.mine(PlaceInput::Key('1')).is_empty());
    }

    #[test]
    fn keys_while_talking_to_an_agent_are_relayed_not_the_flows() {
        let mut f = Fake::waiting();
        f.talking_to("alice", 10);
        for k in ['1', '5', '*', '#'] {
            assert_eq!(f.run(PlaceInput::Key(k)), (Handled::Consumed, vec![]));
        }
    }

    #[test]
    fn connect_for_an_agent_whose_leg_hung_up_ends_the_conversation_at_once() {
        let mut f = Fake::waiting();
        f.offer("alice");
        f.leg("alice", LegNews::Answered);
        // The ACD took the answer; the agent hangs up before the Connect arrives.
        let out = f.leg("alice", LegNews::HungUp);
        assert_eq!(out, [acd(Input::AgentLeft { call: CALL.into() })]);
        assert!(!f.place.is_over());
        let out = f.news(QueueNews::Connect {
            agent: "alice".into(),
            waited: Duration::from_secs(12),
            wrap_up: Duration::ZERO,
        });
        let mut want = stops().to_vec();
        want.extend([
            PlaceOutput::Flow(Event::QueueConnected {
                id: ID,
                agent: "alice".into(),
            }),
            done(
                QueueOutcome::AgentHungUp {
                    agent: "alice".into(),
                },
                12,
            ),
            PlaceOutput::Done,
        ]);
        // No bridge to a leg that is gone, and no second AgentLeft.
        assert_eq!(out, want);
    }

    #[test]
    fn the_agent_hanging_up_while_connected_unbridges_and_tells_acd_and_flow() {
        let mut f = Fake::waiting();
        f.talking_to("alice", 25);
        f.advance(300);
        let out = f.leg("alice", LegNews::HungUp);
        let want = vec![
            acd(Input::AgentLeft { call: CALL.into() }),
            PlaceOutput::Unbridge,
            done(
                QueueOutcome::AgentHungUp {
                    agent: "alice".into(),
                },
                25,
            ),
            PlaceOutput::Done,
        ];
        assert_eq!(out, want);
        assert!(f.place.is_over());
    }

    #[test]
    fn an_agent_hanging_up_before_the_connection_only_tells_the_acd() {
        let mut f = Fake::waiting();
        f.offer("alice");
        f.offer("bob");
        f.leg("alice", LegNews::Answered);
        assert_eq!(
            f.leg("alice", LegNews::HungUp),
            [acd(Input::AgentLeft { call: CALL.into() })]
        );
        // Still waiting: the music goes on and bob may still be connected.
        assert_eq!(
            f.mine(PlaceInput::PlayFinished { id: MUSIC_PLAY }),
            [music()]
        );
        f.leg("bob", LegNews::Answered);
        let out = f.news(QueueNews::Connect {
            agent: "bob".into(),
            waited: Duration::from_secs(20),
            wrap_up: Duration::ZERO,
        });
        assert!(out.contains(&PlaceOutput::Bridge {
            agent: "bob".into()
        }));
    }

    #[test]
    fn overflow_stops_waiting_and_hangs_up_the_agents_being_offered() {
        let mut f = Fake::waiting();
        f.offer("alice");
        f.offer("bob");
        f.advance(600);
        let out = f.news(QueueNews::Overflow {
            reason: OverflowReason::MaxWait,
            waited: Duration::from_secs(600),
        });
        let mut want = stops().to_vec();
        want.extend([
            hang_up("alice"),
            hang_up("bob"),
            done(
                QueueOutcome::Overflow {
                    reason: "max_wait".into(),
                },
                600,
            ),
            PlaceOutput::Done,
        ]);
        // The ACD took the caller out itself: nothing is reported to it.
        assert_eq!(out, want);
        // The legs hung up are no longer the place's, nor is anything else.
        let (h, out) = f.run(PlaceInput::AgentLeg {
            agent: "alice".into(),
            news: LegNews::Answered,
        });
        assert_eq!((h, out), (Handled::NotMine, vec![]));
    }

    #[test]
    fn leaving_hangs_up_every_offered_agent_and_tells_the_acd() {
        let mut f = Fake::waiting();
        f.offer("alice");
        f.offer("bob");
        f.leg("bob", LegNews::Ringing);
        let mut want = vec![acd(Input::CallerLeft { call: CALL.into() })];
        want.extend(stops());
        want.extend([hang_up("alice"), hang_up("bob"), PlaceOutput::Done]);
        assert_eq!(f.mine(PlaceInput::Leave), want);
    }

    #[test]
    fn leaving_while_talking_unbridges_and_hangs_up_the_agent() {
        let mut f = Fake::waiting();
        f.talking_to("alice", 15);
        let want = vec![
            acd(Input::CallerLeft { call: CALL.into() }),
            PlaceOutput::Unbridge,
            hang_up("alice"),
            PlaceOutput::Done,
        ];
        assert_eq!(f.mine(PlaceInput::Leave), want);
    }

    #[test]
    fn a_cancelled_offer_hangs_up_that_agent_only() {
        let mut f = Fake::waiting();
        f.offer("alice");
        f.offer("bob");
        assert_eq!(
            f.news(QueueNews::CancelOffer {
                agent: "alice".into(),
                missed: false,
            }),
            [hang_up("alice")]
        );
        // Cancelling again, or an agent never offered, does nothing.
        assert!(
            f.news(QueueNews::CancelOffer {
                agent: "alice".into(),
                missed: false,
            })
            .is_empty()
        );
        let mut want = vec![acd(Input::CallerLeft { call: CALL.into() })];
        want.extend(stops());
        want.extend([hang_up("bob"), PlaceOutput::Done]);
        assert_eq!(f.mine(PlaceInput::Leave), want);
    }

    #[test]
    fn the_connected_agent_is_not_hung_up_by_a_late_cancel() {
        let mut f = Fake::waiting();
        f.talking_to("alice", 5);
        assert!(
            f.news(QueueNews::CancelOffer {
                agent: "alice".into(),
                missed: false,
            })
            .is_empty()
        );
        assert_eq!(
            f.leg("alice", LegNews::HungUp)[0],
            acd(Input::AgentLeft { call: CALL.into() })
        );
    }

    #[test]
    fn a_call_back_owner_reads_the_end_from_the_flow_outputs() {
        // A call back runs no flow: its owner ends the call on QueueDone, whatever the id.
        let (mut f, _) = Fake::new(PlaceParams {
            id: RequestId(0),
            ..params(None, true)
        });
        f.talking_to("alice", 3);
        let out = f.leg("alice", LegNews::HungUp);
        let ended = out.iter().find_map(|o| match o {
            PlaceOutput::Flow(Event::QueueDone { outcome, .. }) => Some(outcome.clone()),
            _ => None,
        });
        assert_eq!(
            ended,
            Some(QueueOutcome::AgentHungUp {
                agent: "alice".into()
            })
        );
        assert_eq!(out.last(), Some(&PlaceOutput::Done));
    }

    #[test]
    fn nothing_is_the_places_once_it_is_over() {
        let mut f = Fake::waiting();
        f.offer("alice");
        f.mine(PlaceInput::Leave);
        let inputs = [
            PlaceInput::Leave,
            PlaceInput::Key('1'),
            PlaceInput::PlayFinished { id: MUSIC_PLAY },
            PlaceInput::News(position_only(1)),
            PlaceInput::News(QueueNews::Connect {
                agent: "alice".into(),
                waited: Duration::ZERO,
                wrap_up: Duration::ZERO,
            }),
            PlaceInput::AgentLeg {
                agent: "alice".into(),
                news: LegNews::HungUp,
            },
        ];
        for input in inputs {
            assert_eq!(f.run(input), (Handled::NotMine, vec![]));
        }
    }

    fn no_answer(agent: &str, reason: &str) -> StoryEvent {
        StoryEvent::AgentNoAnswer {
            agent: agent.into(),
            reason: reason.into(),
        }
    }

    fn ringing(agent: &str) -> StoryEvent {
        StoryEvent::AgentRinging {
            agent: agent.into(),
        }
    }

    #[test]
    fn the_story_hears_each_agent_rung_and_why_it_did_not_answer() {
        let mut f = Fake::waiting();
        for (failure, reason) in [
            (LegFailure::Busy, "busy"),
            (LegFailure::Declined, "declined"),
            (LegFailure::NoAnswer, "no_answer"),
            (
                LegFailure::Error {
                    status: 503,
                    reason: "Service Unavailable".into(),
                },
                "failed",
            ),
        ] {
            f.offer("alice");
            f.leg("alice", LegNews::Failed(failure));
            assert_eq!(
                std::mem::take(&mut f.story),
                [ringing("alice"), no_answer("alice", reason)]
            );
        }
        // The queue's ring time ran out: a no-answer. Cancelled because another agent
        // answered (or the caller left): not one.
        f.offer("bob");
        f.news(QueueNews::CancelOffer {
            agent: "bob".into(),
            missed: true,
        });
        f.offer("carol");
        f.news(QueueNews::CancelOffer {
            agent: "carol".into(),
            missed: false,
        });
        f.offer("dave");
        f.mine(PlaceInput::AgentNotPlaced {
            agent: "dave".into(),
        });
        assert_eq!(
            f.story,
            [
                ringing("bob"),
                no_answer("bob", "ring_timeout"),
                ringing("carol"),
                ringing("dave"),
                no_answer("dave", "failed"),
            ]
        );
    }

    #[test]
    fn hold_by_either_side_and_the_wrap_up_reach_the_story_once_each() {
        let mut f = Fake::waiting();
        f.offer("alice");
        f.leg("alice", LegNews::Answered);
        // Not talking yet: the caller's hold is not the place's.
        assert_eq!(
            f.run(PlaceInput::CallerHold { on: true }),
            (Handled::NotMine, vec![])
        );
        f.news(QueueNews::Connect {
            agent: "alice".into(),
            waited: Duration::from_secs(5),
            wrap_up: Duration::from_secs(30),
        });
        f.story.clear();
        f.leg("alice", LegNews::Hold { on: true });
        // A second re-INVITE that holds again, or one that only moves the media, is no
        // change.
        f.leg("alice", LegNews::Hold { on: true });
        f.mine(PlaceInput::CallerHold { on: false });
        f.mine(PlaceInput::CallerHold { on: true });
        f.leg("alice", LegNews::Hold { on: false });
        f.mine(PlaceInput::CallerHold { on: false });
        let hold = |on: bool, by: &str| StoryEvent::Hold { on, by: by.into() };
        assert_eq!(
            std::mem::take(&mut f.story),
            [
                hold(true, "agent"),
                hold(true, "caller"),
                hold(false, "agent"),
                hold(false, "caller"),
            ]
        );
        f.leg("alice", LegNews::HungUp);
        assert_eq!(
            f.story,
            [StoryEvent::WrapUp {
                agent: "alice".into(),
                wrap_up: Duration::from_secs(30),
            }]
        );
    }
}
