//! The queue service of a node in a cluster (`cluster:` with queues, docs/cluster.md). Calls
//! hold the same [`AcdHandle`] as on one node, but the ACD runs on the cluster's leader:
//! this task turns what calls, agents' commands and the registrar report into inputs for
//! the cluster thread to write to the shared log, and carries out the actions the leader
//! addressed to this node. It decides nothing itself.
//!
//! A join is answered at once when the queue exists: a caller turned away (a full queue,
//! no agents) hears so from the leader as an `Overflow`, like on one node.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::metrics::Metrics;
use crate::queue::acd::{Action, Input, Snapshot};
use crate::queue::config::{AgentsConfig, QueuesConfig};
use crate::queue::deliver::{Delivery, Dialer};
use crate::queue::service::{AcdHandle, Msg};
use crate::sip::registrar::{RegistrarEvent, Registrations};

/// What the relay asks of the cluster thread.
#[derive(Debug)]
pub enum ToCluster {
    /// An input for the shared log.
    Input(Input),
    /// The live state of the queues, as the leader last saved it.
    Snapshot(oneshot::Sender<Snapshot>),
    /// An edited `queues:`/`agents:` (checked already), for the ACD when this node leads.
    Reconfigure {
        queues: QueuesConfig,
        agents: AgentsConfig,
    },
}

/// The cluster thread's end of the relay: what to write, and where to put the actions
/// addressed to this node.
pub struct RelayLink {
    pub requests: std::sync::mpsc::Receiver<ToCluster>,
    pub actions: mpsc::UnboundedSender<Action>,
}

/// Starts the relay; calls talk to it through the handle, the cluster thread through the
/// link.
pub fn spawn(
    queues: QueuesConfig,
    agents: AgentsConfig,
    registrations: Registrations,
    registrar: broadcast::Receiver<RegistrarEvent>,
    dialer: Option<Dialer>,
    metrics: Arc<Metrics>,
) -> (AcdHandle, RelayLink) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (requests_tx, requests) = std::sync::mpsc::channel();
    let (actions, actions_rx) = mpsc::unbounded_channel();
    let mut relay = Relay {
        queues,
        agents,
        cluster: requests_tx,
        out: Delivery {
            calls: HashMap::new(),
            registrations,
            dialer,
            metrics,
        },
    };
    // Phones registered before a restart are reachable at once: the leader hears so.
    let now = Instant::now();
    for user in relay.out.registrations.snapshot(now).into_keys() {
        relay.registration_changed(&user);
    }
    tokio::spawn(relay.run(rx, registrar, actions_rx));
    (AcdHandle::new(tx), RelayLink { requests, actions })
}

struct Relay {
    queues: QueuesConfig,
    agents: AgentsConfig,
    cluster: std::sync::mpsc::Sender<ToCluster>,
    out: Delivery,
}

impl Relay {
    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Msg>,
        mut registrar: broadcast::Receiver<RegistrarEvent>,
        mut actions: mpsc::UnboundedReceiver<Action>,
    ) {
        loop {
            tokio::select! {
                m = rx.recv() => match m {
                    Some(Msg::Stop) | None => return,
                    Some(m) => self.on_msg(m),
                },
                ev = registrar.recv() => match ev {
                    Ok(ev) => self.on_registration(ev),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        warn!(missed = n, "queue relay missed registrations");
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        registrar = broadcast::channel(1).1;
                    }
                },
                Some(action) = actions.recv() => {
                    if let Some(input) = self.out.carry_out(action) {
                        self.write(input);
                    }
                }
            }
        }
    }

    fn write(&self, input: Input) {
        if self.cluster.send(ToCluster::Input(input)).is_err() {
            warn!("the cluster thread has stopped; queue input lost");
        }
    }

    fn on_msg(&mut self, m: Msg) {
        match m {
            Msg::Join { input, news, reply } => {
                let call = match &input {
                    Input::Join { call, queue, .. } => {
                        if !self.queues.contains_key(queue) {
                            let _ = reply.send(Err(format!("no queue named '{queue}'")));
                            return;
                        }
                        call.clone()
                    }
                    Input::CallbackAnswered { call, .. } => call.clone(),
                    _ => String::new(),
                };
                self.out.calls.insert(call, news);
                self.write(input);
                let _ = reply.send(Ok(()));
            }
            Msg::Input(input) => {
                self.out.after_input(&input);
                self.write(input);
            }
            Msg::Command {
                agent,
                command,
                reply,
            } => {
                if !self.agents.contains_key(&agent) {
                    let _ = reply.send(Err(format!("no agent named '{agent}'")));
                    return;
                }
                info!(%agent, ?command, "agent command (to the cluster's leader)");
                self.write(Input::Agent { agent, command });
                let _ = reply.send(Ok(()));
            }
            Msg::Snapshot(tx) => {
                let _ = self.cluster.send(ToCluster::Snapshot(tx));
            }
            Msg::Reconfigure {
                queues,
                agents,
                reply,
            } => {
                self.queues = queues.clone();
                self.agents = agents.clone();
                let r = self
                    .cluster
                    .send(ToCluster::Reconfigure { queues, agents })
                    .map(|()| Vec::new())
                    .map_err(|_| "the cluster thread has stopped".to_string());
                let _ = reply.send(r);
            }
            Msg::Stop => {}
        }
    }

    /// A phone registered here: the leader hears of its newest binding on this node. An
    /// expiry is not reported (the ACD expires registrations itself, and the agent may
    /// have refreshed at another node since); a phone that unregistered here is.
    fn on_registration(&mut self, ev: RegistrarEvent) {
        match ev {
            RegistrarEvent::Expired { .. } => {}
            RegistrarEvent::Registered { user, .. } | RegistrarEvent::Unregistered { user, .. } => {
                self.registration_changed(&user)
            }
        }
    }

    fn registration_changed(&mut self, user: &str) {
        if !self.agents.contains_key(user) {
            return;
        }
        let input = self.out.registration(user);
        debug!(agent = user, "registration to the cluster's leader");
        self.write(input);
    }
}
