//! Putting the call in line with the ACD: the shell's half of a queue step. The core asks
//! ([`CallOutput::JoinQueue`](super::core::CallOutput::JoinQueue)); this joins (or, for a
//! call back, rejoins at the kept place), waits for the ACD's answer, and gives the core
//! what its [`QueuePlace`](super::place::QueuePlace) needs: the music the library has, the
//! caller's languages, whether the number can be dialled back. The place does the rest.

use tracing::{info, warn};

use super::actor::Call;
use super::core::CallInput;
use super::place::PlaceParams;
use crate::flow::machine::RequestId;
use crate::queue::config::dialable;

impl Call {
    /// Puts the caller in `queue` (the flow's `queue` step, or a call back's return).
    pub(super) async fn join_queue(
        &mut self,
        id: RequestId,
        queue: String,
        priority: i32,
        skills: Vec<String>,
    ) {
        let news = self.queue_news();
        let joined = match (self.deps.acd(), self.callback_to_rejoin()) {
            (None, _) => Err("no queues are configured".to_string()),
            (Some(acd), Some(request)) => acd.rejoin(request, &self.call_id, news).await,
            (Some(acd), None) => {
                acd.join(&self.call_id, &queue, priority, skills, &self.caller, news)
                    .await
            }
        };
        match joined {
            Ok(()) => {
                self.callback_rejoined();
                let params = self.place_params(id, queue);
                self.input(CallInput::Joined(params));
            }
            Err(why) => {
                warn!(%queue, %why, "caller not queued");
                self.input(CallInput::NotJoined { id, why });
            }
        }
    }

    fn place_params(&self, id: RequestId, queue: String) -> PlaceParams {
        let lib = &self.live.prompts;
        let fallback = lib.default_language().to_string();
        let language = self.core.language().unwrap_or(&fallback).to_string();
        let music = self
            .live
            .config
            .queues
            .get(&queue)
            .and_then(|c| c.music.clone())
            .filter(|m| {
                let found = lib.get(&language, m).or_else(|| lib.get(&fallback, m));
                if found.is_none() {
                    warn!(prompt = %m, %queue, "hold music missing; waiting in silence");
                }
                found.is_some()
            });
        let dialable = dialable(&self.caller);
        if !dialable {
            info!(caller = %self.caller, "no callback can be offered: the caller's number cannot be dialled");
        }
        PlaceParams {
            id,
            queue,
            call: self.call_id.clone(),
            language,
            fallback_language: fallback,
            music,
            dialable,
        }
    }
}
