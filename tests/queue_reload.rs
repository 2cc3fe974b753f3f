//! Editing `queues:` and `agents:` of a running hotline: a reload (admin API) adds an
//! agent, who can register at once with the new password and is offered a waiting caller;
//! a reload that would remove the queue that caller waits in (the flow moved to another
//! queue in the same edit) is refused with the reason, and the running queues stay.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use common::{SECOND, repo};
use hotline::config::{Config, Protocol};
use hotline::server::{RunningServer, Server};
use hotline_load::caller::answerer::Answerer;
use hotline_load::caller::{CallMedia, Offer, Phone};
use serde_json::Value;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const TOKEN: &str = "reload-token";

fn write_config(dir: &Path, queues_and_agents: &str) {
    std::fs::write(
        dir.join("hotline.yaml"),
        format!(
            "sip: {{ listen: [\"udp:127.0.0.1:0\"] }}\nrtp: {{ ports: 46580-46599 }}\n\
flows: flows\nprompts: {}\n\
admin: {{ listen: \"127.0.0.1:0\", token: {TOKEN} }}\n{queues_and_agents}",
            repo().join("prompts").display()
        ),
    )
    .unwrap();
}

const BEFORE: &str = "queues:
  support: { ring_timeout: 20s }
agents:
  alice: { password: alice-secret, queues: { support: 0 } }
";

const AFTER: &str = "queues:
  support: { ring_timeout: 20s }
  sales: {}
agents:
  alice: { password: alice-secret, queues: { support: 0 } }
  dave: { password: dave-secret, queues: { support: 0, sales: 0 } }
";

const WITHOUT_SUPPORT: &str = "queues:
  sales: {}
agents:
  alice: { password: alice-secret, queues: { sales: 0 } }
  dave: { password: dave-secret, queues: { sales: 0 } }
";

async fn start(dir: &Path) -> RunningServer {
    let cfg = Config::load(&dir.join("hotline.yaml")).unwrap();
    Server::start(cfg, 1).await.unwrap().spawn()
}

async fn reload(admin: SocketAddr) -> (u16, Value) {
    let r = hotline::webhook::client()
        .post(format!("http://{admin}/reload"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn agents(admin: SocketAddr) -> Value {
    let r = hotline::webhook::client()
        .get(format!("http://{admin}/agents"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    r.json().await.unwrap()
}

fn state_of(agents: &Value, name: &str) -> Option<String> {
    agents["agents"]
        .as_array()?
        .iter()
        .find(|a| a["name"] == name)
        .and_then(|a| a["state"].as_str().map(str::to_string))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_added_by_a_reload_registers_and_takes_the_waiting_caller() {
    let dir = std::env::temp_dir().join(format!("hotline-queue-reload-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("flows")).unwrap();
    std::fs::write(dir.join("flows/main.yaml"), common::QUEUE_FLOW).unwrap();
    write_config(&dir, BEFORE);
    let srv = start(&dir).await;
    let sip = common::addr(&srv, Protocol::Udp);
    let admin = srv.server.admin_addr().unwrap();

    // dave is nobody yet.
    let mut dave = Answerer::bind(LOCALHOST).await.unwrap();
    assert_eq!(
        dave.register(sip, "dave", "dave-secret", 300)
            .await
            .unwrap(),
        403
    );
    assert_eq!(state_of(&agents(admin).await, "dave"), None);

    // A caller waits: alice never registered.
    let mut phone = Phone::new(Protocol::Udp, sip).await.unwrap();
    let media = CallMedia::bind(LOCALHOST, true).unwrap();
    let mut call = phone.call("hotline", &media, Offer::Default).await.unwrap();

    write_config(&dir, AFTER);
    let (status, body) = reload(admin).await;
    assert_eq!(status, 200, "{body}");
    let changes: Vec<&str> = body["queue_changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(changes, ["queue sales added", "agent dave added"], "{body}");

    // dave's password works at once; registering logs him in, and he is offered the
    // caller who was waiting.
    assert_eq!(
        dave.register(sip, "dave", "dave-secret", 300)
            .await
            .unwrap(),
        200
    );
    let offer = dave.next_invite(20 * SECOND).await.unwrap();
    dave.ring(&offer).await.unwrap();
    assert_eq!(
        state_of(&agents(admin).await, "dave").as_deref(),
        Some("ringing")
    );

    // Moving the flow to `sales` and removing `support`, where the caller is, is refused;
    // nothing changes.
    std::fs::write(
        dir.join("flows/main.yaml"),
        common::QUEUE_FLOW.replace("queue: support", "queue: sales"),
    )
    .unwrap();
    write_config(&dir, WITHOUT_SUPPORT);
    let (status, body) = reload(admin).await;
    assert_eq!(status, 422, "{body}");
    let text = body["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("queues.support: cannot remove the queue while 1 caller"),
        "{body}"
    );
    assert_eq!(
        state_of(&agents(admin).await, "dave").as_deref(),
        Some("ringing")
    );

    // The caller hangs up; dave's offer is cancelled.
    phone.hang_up(&mut call).await.unwrap();
    dave.expect_cancel(&offer, 10 * SECOND).await.unwrap();
}
