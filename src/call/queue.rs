//! The call's time in an agent queue: joins the ACD, loops the queue's music, says the
//! announcements the ACD asks for, rings the agents it names (legs), connects the caller
//! the moment an agent is chosen, and tells the flow how it ended. The ACD decides; this
//! carries out its news for one call.

use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::actor::{Call, Origin};
use super::core::CallInput;
use super::core::LegRole;
use crate::flow::machine::{Audio, Event, PromptRef, QueueOutcome, RequestId};
use crate::flow::model::SayKind;
use crate::media::session::SessionCommand;
use crate::queue::acd::Input;
use crate::queue::config::dialable;
use crate::queue::ewt::spoken_minutes;
use crate::queue::service::QueueNews;

/// Play ids the flow machine never sees.
const MUSIC_PLAY: u64 = u64::MAX - 2;
const ANNOUNCE_PLAY: u64 = u64::MAX - 3;

use crate::queue::config::prompts::{
    CALLBACK_OFFER as CALLBACK_PROMPT, MINUTES as MINUTES_PROMPT, POSITION as POSITION_PROMPT,
    WAIT as WAIT_PROMPT,
};

/// A caller in a queue.
pub(super) struct Queued {
    id: RequestId,
    queue: String,
    joined: Instant,
    /// The agent the caller is talking to.
    agent: Option<String>,
    /// Pressing this asks for a callback (offered by the ACD).
    callback_key: Option<char>,
    /// An announcement is playing (the music resumes after it).
    announcing: bool,
    /// The callback offer waits for the announcement playing to end.
    offer_next: bool,
}

impl Call {
    /// Puts the caller in `queue` (the flow's `queue` step).
    pub(super) async fn join_queue(
        &mut self,
        id: RequestId,
        queue: String,
        priority: i32,
        skills: Vec<String>,
    ) {
        let joined = match (self.deps.acd(), self.callback_to_rejoin()) {
            (None, _) => Err("no queues are configured".to_string()),
            (Some(acd), Some(request)) => {
                acd.rejoin(request, &self.call_id, self.queue_news()).await
            }
            (Some(acd), None) => {
                acd.join(
                    &self.call_id,
                    &queue,
                    priority,
                    skills,
                    &self.caller,
                    self.queue_news(),
                )
                .await
            }
        };
        if let Err(why) = joined {
            warn!(%queue, %why, "caller not queued");
            self.queue_done(id, QueueOutcome::Failed(why), Duration::ZERO);
            return;
        }
        self.callback_rejoined();
        info!(%queue, "caller queued");
        self.queued = Some(Queued {
            id,
            queue,
            joined: Instant::now(),
            agent: None,
            callback_key: None,
            announcing: false,
            offer_next: false,
        });
        self.play_music();
    }

    pub(super) async fn on_queue_news(&mut self, news: QueueNews) {
        let Some(q) = self.queued.as_ref() else {
            return;
        };
        let (id, connected) = (q.id, q.agent.is_some());
        match news {
            QueueNews::Offer {
                agent,
                contact,
                via,
            } => {
                let role = LegRole::Agent(agent.clone());
                if let Err(e) = self.place_leg(role, &contact, via).await {
                    warn!(%agent, %contact, error = %e, "offer not placed");
                    if let Some(acd) = self.deps.acd() {
                        acd.input(Input::OfferFailed {
                            call: self.call_id.clone(),
                            agent,
                            reason: crate::queue::acd::OfferFailure::Error,
                        });
                    }
                }
            }
            QueueNews::CancelOffer { agent } => self.hang_up_leg(&LegRole::Agent(agent)),
            QueueNews::Connect { agent, waited } => {
                // At once, whatever plays: the agent must not hear dead air.
                self.media(SessionCommand::Stop { id: MUSIC_PLAY });
                self.media(SessionCommand::Stop { id: ANNOUNCE_PLAY });
                let bridged = self.bridge_to(&LegRole::Agent(agent.clone()));
                info!(%agent, waited = ?waited, "talking to an agent");
                if let Some(q) = self.queued.as_mut() {
                    q.agent = Some(agent.clone());
                }
                self.input(CallInput::Io(Event::QueueConnected {
                    id,
                    agent: agent.clone(),
                }));
                if !bridged {
                    // The agent answered and hung up before this call heard of the
                    // connection (the ACD was told then).
                    info!(%agent, "the agent's leg ended before the connection");
                    self.agent_hung_up(agent);
                }
            }
            QueueNews::Announce {
                prompt,
                position,
                ewt,
            } if !connected => {
                let audio = self.announcement(prompt, position, ewt);
                self.announce(audio);
            }
            QueueNews::OfferCallback { key } if !connected => {
                if !dialable(&self.caller) {
                    info!(caller = %self.caller, "no callback offered: the caller's number cannot be dialled");
                    return;
                }
                let Some(q) = self.queued.as_mut() else {
                    return;
                };
                q.callback_key = Some(key);
                // After the announcement that says the wait, not over it.
                if q.announcing {
                    q.offer_next = true;
                } else {
                    self.offer_callback();
                }
            }
            QueueNews::Overflow { reason, waited } => {
                // The ACD has taken the caller out of the line already.
                self.stop_waiting();
                let reason = reason.as_str().to_string();
                self.queue_done(id, QueueOutcome::Overflow { reason }, waited);
            }
            QueueNews::Announce { .. } | QueueNews::OfferCallback { .. } => {}
        }
    }

    /// The music ended or an announcement did: play the music (again) while waiting.
    /// Returns whether `id` was one of the queue's plays.
    pub(super) fn queue_play_finished(&mut self, id: u64) -> bool {
        if id != MUSIC_PLAY && id != ANNOUNCE_PLAY {
            return false;
        }
        let Some(q) = self.queued.as_mut().filter(|q| q.agent.is_none()) else {
            return true;
        };
        if id == ANNOUNCE_PLAY {
            q.announcing = false;
            if std::mem::take(&mut q.offer_next) {
                self.offer_callback();
                return true;
            }
        }
        self.play_music();
        true
    }

    /// Says `audio` over (instead of) the music.
    fn announce(&mut self, audio: Vec<crate::media::prompt::Prompt>) {
        if let Some(q) = self.queued.as_mut() {
            q.announcing = true;
        }
        self.media(SessionCommand::Play {
            id: ANNOUNCE_PLAY,
            prompts: audio,
            barge_in: false,
        });
    }

    /// "To keep your place in line and be called back, press 1."
    fn offer_callback(&mut self) {
        let audio = self.resolve(&[self.prompt_ref(CALLBACK_PROMPT)]);
        self.announce(audio);
    }

    /// A key while waiting: the callback key is the queue's; others go to the flow.
    pub(super) fn queue_key(&mut self, key: char) -> bool {
        let Some(q) = self.queued.as_ref() else {
            return false;
        };
        if q.agent.is_some() {
            // Talking to the agent: keys are relayed to the agent's phone.
            return true;
        }
        if q.callback_key != Some(key) {
            return false;
        }
        let (id, waited) = (q.id, q.joined.elapsed());
        if let Some(acd) = self.deps.acd() {
            acd.input(Input::CallbackRequested {
                call: self.call_id.clone(),
                number: None,
            });
        }
        info!("caller asked to be called back");
        self.stop_waiting();
        self.queue_done(id, QueueOutcome::Callback, waited);
        true
    }

    /// The caller leaves the line: the flow took it out (a key of the step's `keys`), or
    /// the call ended while queued or talking.
    pub(super) fn leave_line(&mut self) {
        if self.queued.is_none() {
            return;
        }
        if let Some(acd) = self.deps.acd() {
            acd.input(Input::CallerLeft {
                call: self.call_id.clone(),
            });
        }
        self.stop_waiting();
    }

    /// The agent hung up first: the flow goes on at the step's `after`.
    pub(super) fn agent_hung_up(&mut self, agent: String) {
        let Some(q) = self.queued.take() else {
            return;
        };
        info!(%agent, "the agent hung up");
        let outcome = QueueOutcome::AgentHungUp { agent };
        self.queue_done(q.id, outcome, Duration::ZERO);
    }

    /// The time in line is over: the flow goes on (a call back, which runs no flow,
    /// ends).
    fn queue_done(&mut self, id: RequestId, outcome: QueueOutcome, waited: Duration) {
        if matches!(self.origin, Origin::CalledBack(_)) {
            self.call_back_over(&format!("{outcome:?}"));
            return;
        }
        self.input(CallInput::Io(Event::QueueDone {
            id,
            outcome,
            waited,
        }));
    }

    fn stop_waiting(&mut self) {
        self.queued = None;
        self.media(SessionCommand::Stop { id: MUSIC_PLAY });
        self.media(SessionCommand::Stop { id: ANNOUNCE_PLAY });
        let agents: Vec<LegRole> = self
            .legs
            .iter()
            .filter(|(r, _)| matches!(r, LegRole::Agent(_)))
            .map(|(r, _)| r.clone())
            .collect();
        for r in agents {
            self.hang_up_leg(&r);
        }
    }

    fn play_music(&mut self) {
        let Some(q) = self.queued.as_ref() else {
            return;
        };
        let music = self
            .live
            .config
            .queues
            .get(&q.queue)
            .and_then(|c| c.music.clone());
        let prompts = match music {
            Some(name) => self.resolve(&[self.prompt_ref(&name)]),
            None => Vec::new(),
        };
        // No music configured (or missing): quiet waiting, checked again every minute.
        let prompts = if prompts.is_empty() {
            vec![crate::media::prompt::Prompt::silence(Duration::from_secs(
                60,
            ))]
        } else {
            prompts
        };
        self.media(SessionCommand::Play {
            id: MUSIC_PLAY,
            prompts,
            barge_in: false,
        });
    }

    /// The caller's prompt language (the flow's, else the library's default).
    fn language(&self) -> String {
        self.core
            .language()
            .unwrap_or_else(|| self.live.prompts.default_language())
            .to_string()
    }

    pub(super) fn prompt_ref(&self, name: &str) -> Audio {
        Audio::Prompt(PromptRef {
            language: self.language(),
            fallback_language: self.live.prompts.default_language().to_string(),
            name: name.to_string(),
        })
    }

    fn say_number(&self, n: u64) -> Audio {
        Audio::Say {
            language: self.language(),
            kind: SayKind::Number,
            value: n.to_string(),
        }
    }

    /// "[prompt] You are caller number 3. Your expected wait is about 4 minutes."
    fn announcement(
        &self,
        prompt: Option<String>,
        position: Option<usize>,
        ewt: Option<Duration>,
    ) -> Vec<crate::media::prompt::Prompt> {
        let mut audio = Vec::new();
        if let Some(p) = prompt {
            audio.push(self.prompt_ref(&p));
        }
        if let Some(pos) = position {
            audio.push(self.prompt_ref(POSITION_PROMPT));
            audio.push(self.say_number(pos as u64));
        }
        if let Some(ewt) = ewt {
            audio.push(self.prompt_ref(WAIT_PROMPT));
            audio.push(self.say_number(spoken_minutes(ewt)));
            audio.push(self.prompt_ref(MINUTES_PROMPT));
        }
        self.resolve(&audio)
    }
}
