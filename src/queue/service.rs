//! The ACD's task: the thin tokio shell around [`Acd`]. It owns the pure core, feeds it
//! what calls, the registrar and the admin report, wakes it at its deadlines, and routes
//! its actions to the call each concerns (through the mailbox the call gave when it
//! joined). It places no calls and plays nothing itself: calls do, as the news say, and a
//! call back is started through the [`Dialer`] it is given.
//!
//! One task for every queue keeps the ACD's decisions in one order without locks; the
//! per-call work (legs, media) stays in the call tasks.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::mailbox::Mailbox;
use crate::metrics::Metrics;
use crate::queue::acd::{Acd, Input, Snapshot};
use crate::queue::agent::AgentCommand;
use crate::queue::config::{AgentsConfig, QueuesConfig};
use crate::queue::deliver::{Delivery, Dialer};
use crate::queue::store::CallbackId;
use crate::sip::registrar::{RegistrarEvent, Registrations};

/// What the ACD tells a queued call; the vocabulary is the core's, so a call's pure place
/// in line can follow it.
pub use hotline_core::queue::news::QueueNews;

pub(crate) enum Msg {
    Join {
        input: Input,
        news: Mailbox<QueueNews>,
        reply: oneshot::Sender<Result<(), String>>,
    },
    Input(Input),
    Command {
        agent: String,
        command: AgentCommand,
        reply: oneshot::Sender<Result<(), String>>,
    },
    Snapshot(oneshot::Sender<Snapshot>),
    Reconfigure {
        queues: QueuesConfig,
        agents: AgentsConfig,
        reply: oneshot::Sender<Result<Vec<String>, String>>,
    },
    Stop,
}

/// A cheap handle on the ACD task.
#[derive(Clone)]
pub struct AcdHandle {
    tx: mpsc::UnboundedSender<Msg>,
}

impl AcdHandle {
    /// A handle on whichever task serves `Msg`s: the one-node service or the cluster relay.
    pub(crate) fn new(tx: mpsc::UnboundedSender<Msg>) -> AcdHandle {
        AcdHandle { tx }
    }

    /// Puts `call` in `queue`; its news arrive on `news`.
    #[allow(clippy::too_many_arguments)]
    pub async fn join(
        &self,
        call: &str,
        queue: &str,
        priority: i32,
        skills: Vec<String>,
        caller: &str,
        news: Mailbox<QueueNews>,
    ) -> Result<(), String> {
        let input = Input::Join {
            call: call.to_string(),
            queue: queue.to_string(),
            priority,
            skills,
            caller: caller.to_string(),
        };
        self.enter(input, news).await
    }

    /// Puts the caller called back for request `id` back in line at its place, as
    /// `call`; its news arrive on `news`.
    pub async fn rejoin(
        &self,
        id: CallbackId,
        call: &str,
        news: Mailbox<QueueNews>,
    ) -> Result<(), String> {
        let input = Input::CallbackAnswered {
            id,
            call: call.to_string(),
        };
        self.enter(input, news).await
    }

    async fn enter(&self, input: Input, news: Mailbox<QueueNews>) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Join { input, news, reply })
            .map_err(|_| "the queue service has stopped".to_string())?;
        rx.await
            .map_err(|_| "the queue service has stopped".to_string())?
    }

    /// Reports something (a leg answered, a side hung up...). Errors are logged there.
    pub fn input(&self, input: Input) {
        let _ = self.tx.send(Msg::Input(input));
    }

    /// Login, logout, pause or resume an agent (admin API, feature codes).
    pub async fn command(&self, agent: &str, command: AgentCommand) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Command {
                agent: agent.to_string(),
                command,
                reply,
            })
            .map_err(|_| "the queue service has stopped".to_string())?;
        rx.await
            .map_err(|_| "the queue service has stopped".to_string())?
    }

    /// Takes edited `queues:` and `agents:` (checked already), or says why not; for
    /// the reload, which runs on a blocking thread (never call it from async code).
    pub fn reconfigure_blocking(
        &self,
        queues: QueuesConfig,
        agents: AgentsConfig,
    ) -> Result<Vec<String>, String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Reconfigure {
                queues,
                agents,
                reply,
            })
            .map_err(|_| "the queue service has stopped".to_string())?;
        rx.blocking_recv()
            .map_err(|_| "the queue service has stopped".to_string())?
    }

    /// Stops the task: nothing more is decided, dialled or written (the engine is
    /// stopping; what is stored stays for the next start).
    pub fn stop(&self) {
        let _ = self.tx.send(Msg::Stop);
    }

    /// The live state of every queue and agent.
    pub async fn snapshot(&self) -> Option<Snapshot> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Msg::Snapshot(tx)).ok()?;
        rx.await.ok()
    }
}

struct Service {
    acd: Acd,
    out: Delivery,
}

/// Starts the ACD task. Registrations of agents' phones come from `registrar`; call
/// backs are placed through `dialer` (without one, every attempt counts as unanswered).
pub fn spawn(
    acd: Acd,
    registrations: Registrations,
    registrar: broadcast::Receiver<RegistrarEvent>,
    dialer: Option<Dialer>,
    metrics: Arc<Metrics>,
) -> AcdHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut svc = Service {
        acd,
        out: Delivery {
            calls: HashMap::new(),
            registrations,
            dialer,
            metrics,
        },
    };
    // Registrations restored at start (kept from before a restart) came before anyone
    // listened to the registrar's events: the agents are reachable at once.
    let now = Instant::now();
    for user in svc.out.registrations.snapshot(now).into_keys() {
        svc.registration_changed(&user);
    }
    tokio::spawn(svc.run(rx, registrar));
    AcdHandle::new(tx)
}

impl Service {
    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Msg>,
        mut registrar: broadcast::Receiver<RegistrarEvent>,
    ) {
        loop {
            let deadline = self.acd.poll_timeout();
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                m = rx.recv() => match m {
                    Some(Msg::Stop) | None => return,
                    Some(m) => self.on_msg(m),
                },
                ev = registrar.recv() => match ev {
                    Ok(ev) => self.on_registration(ev),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        warn!(missed = n, "queue service missed registrations");
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        // No registrar (tests without one): carry on without it.
                        registrar = broadcast::channel(1).1;
                    }
                },
                _ = sleep => self.acd.handle_timeout(Instant::now()),
            }
            self.drain();
        }
    }

    fn on_msg(&mut self, m: Msg) {
        let now = Instant::now();
        match m {
            Msg::Join { input, news, reply } => {
                let call = match &input {
                    Input::Join { call, .. } | Input::CallbackAnswered { call, .. } => call.clone(),
                    _ => String::new(),
                };
                self.out.calls.insert(call.clone(), news);
                let r = self.acd.handle(now, input).map_err(|e| e.to_string());
                if r.is_err() {
                    self.out.calls.remove(&call);
                }
                let _ = reply.send(r);
            }
            Msg::Input(input) => {
                self.out.after_input(&input);
                if let Err(e) = self.acd.handle(now, input) {
                    debug!(error = %e, "queue input not applied");
                }
            }
            Msg::Command {
                agent,
                command,
                reply,
            } => {
                let r = self
                    .acd
                    .handle(
                        now,
                        Input::Agent {
                            agent: agent.clone(),
                            command: command.clone(),
                        },
                    )
                    .map_err(|e| e.to_string());
                info!(%agent, ?command, ok = r.is_ok(), "agent command");
                let _ = reply.send(r);
            }
            Msg::Snapshot(tx) => {
                let _ = tx.send(self.acd.snapshot(now));
            }
            Msg::Reconfigure {
                queues,
                agents,
                reply,
            } => {
                let r = self
                    .acd
                    .reconfigure(now, &queues, &agents)
                    .map_err(|e| e.to_string());
                let _ = reply.send(r);
            }
            Msg::Stop => {}
        }
    }

    fn on_registration(&mut self, ev: RegistrarEvent) {
        self.registration_changed(ev.user());
    }

    fn registration_changed(&mut self, user: &str) {
        if self.acd.agent(user).is_none() {
            return;
        }
        let input = self.out.registration(user);
        if let Err(e) = self.acd.handle(Instant::now(), input) {
            debug!(error = %e, "registration not applied");
        }
    }

    fn drain(&mut self) {
        while let Some(a) = self.acd.poll_action() {
            if let Some(input) = self.out.carry_out(a)
                && let Err(e) = self.acd.handle(Instant::now(), input)
            {
                debug!(error = %e, "queue input not applied");
            }
        }
    }
}

/// Where the callback store lives when queues offer callbacks.
pub fn store_path(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("callbacks.sqlite")
}
