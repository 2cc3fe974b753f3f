//! The dashboard in a real headless Chromium against a real hotline on loopback: the
//! login form sets the session cookie, calls placed by a scripted phone appear on the Now
//! tab (and leave it), a queue's waiting figure follows a caller joining and leaving, and
//! the Pause button pauses the agent (checked through the API). The other tabs load and
//! draw: the flow graph, the report's charts and tables, the call search.
//!
//! Chromium is driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`:
//! JSON messages ended by NUL on file descriptors 3 and 4), so no WebSocket client is
//! needed. Without a `chromium` binary the test passes with a note, unless
//! HOTLINE_REQUIRE_CHROMIUM=1 (CI) makes that a failure.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{SECOND, prompt, repo};
use hotline::config::{Config, Protocol};
use hotline::server::Server;
use serde_json::{Value, json};

const TOKEN: &str = "dashboard-test-token";

/// Generous: Chromium and the engine share a loaded 2-core machine with other builds.
const LIMIT: Duration = Duration::from_secs(30);

const MENU_FLOW: &str = "start: menu
defaults: { timeout: 60s, retries: 5 }
steps:
  menu:
    menu:
      prompt: main_menu
      options:
        \"1\": told
      on_failure: hangup
  told:
    play: shipping_info
    next: hangup
";

/// The Chromium binary, if the machine has one.
fn chromium() -> Option<PathBuf> {
    [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "headless_shell",
    ]
    .iter()
    .filter_map(|name| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
    })
    .next()
}

fn required() -> bool {
    std::env::var("HOTLINE_REQUIRE_CHROMIUM").is_ok_and(|v| v == "1")
}

/// A headless Chromium and its DevTools session on one page.
struct Browser {
    child: Child,
    to_browser: std::io::PipeWriter,
    replies: mpsc::Receiver<Value>,
    next_id: u64,
    session: String,
    profile: PathBuf,
    /// Events and replies read while waiting for another reply.
    pending: HashMap<u64, Value>,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Browser {
    fn start(binary: &PathBuf, window: (u32, u32)) -> Browser {
        let profile = std::env::temp_dir().join(format!(
            "hotline-chromium-{}-{}",
            std::process::id(),
            window.0
        ));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).expect("profile dir");
        let (cmd_read, cmd_write) = std::io::pipe().expect("pipe");
        let (out_read, out_write) = std::io::pipe().expect("pipe");
        let (r, w) = (cmd_read.as_raw_fd(), out_write.as_raw_fd());
        let mut command = Command::new(binary);
        command
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--remote-debugging-pipe",
                &format!("--window-size={},{}", window.0, window.1),
                &format!("--user-data-dir={}", profile.display()),
                "about:blank",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: between fork and exec only async-signal-safe calls (dup/dup2) are made.
        // The pipe ends are moved to high numbers first, so that placing one on 3 or 4
        // cannot overwrite the other.
        unsafe {
            command.pre_exec(move || {
                let r2 = libc::fcntl(r, libc::F_DUPFD, 10);
                let w2 = libc::fcntl(w, libc::F_DUPFD, 10);
                if r2 < 0 || w2 < 0 || libc::dup2(r2, 3) < 0 || libc::dup2(w2, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("chromium starts");
        drop(cmd_read);
        drop(out_write);
        let (tx, replies) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(out_read);
            let mut buf = Vec::new();
            while reader.read_until(0, &mut buf).is_ok_and(|n| n > 0) {
                if buf.last() == Some(&0) {
                    buf.pop();
                }
                if let Ok(v) = serde_json::from_slice::<Value>(&buf)
                    && tx.send(v).is_err()
                {
                    break;
                }
                buf.clear();
            }
        });
        let mut b = Browser {
            child,
            to_browser: cmd_write,
            replies,
            next_id: 0,
            session: String::new(),
            profile,
            pending: HashMap::new(),
        };
        let targets = b.send("Target.getTargets", json!({}), None);
        let page = targets["targetInfos"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["type"] == "page"))
            .map(|t| t["targetId"].clone())
            .unwrap_or_else(|| {
                b.send("Target.createTarget", json!({ "url": "about:blank" }), None)["targetId"]
                    .clone()
            });
        let attached = b.send(
            "Target.attachToTarget",
            json!({ "targetId": page, "flatten": true }),
            None,
        );
        b.session = attached["sessionId"]
            .as_str()
            .expect("a session")
            .to_owned();
        b.page("Page.enable", json!({}));
        b.page("Runtime.enable", json!({}));
        b
    }

    /// Sends a command and waits for its reply's result.
    fn send(&mut self, method: &str, params: Value, session: Option<&str>) -> Value {
        let reply = self.reply(method, params, session);
        result_of(method, reply)
    }

    /// Sends a command and waits for its whole reply: a result or an error.
    fn reply(&mut self, method: &str, params: Value, session: Option<&str>) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = msg.to_string().into_bytes();
        bytes.push(0);
        self.to_browser.write_all(&bytes).expect("to chromium");
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(v) = self.pending.remove(&id) {
                return v;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self
                .replies
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no reply to {method} within {LIMIT:?}"));
            match v["id"].as_u64() {
                Some(n) if n == id => return v,
                Some(n) => {
                    self.pending.insert(n, v);
                }
                None => {} // an event: not needed here
            }
        }
    }

    fn page(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.send(method, params, Some(&session))
    }

    fn navigate(&mut self, url: &str) {
        self.page("Page.navigate", json!({ "url": url }));
        self.wait_for(
            &format!("navigated to {url}"),
            "document.readyState === 'complete'",
        );
    }

    /// The value of a JavaScript expression on the page (awaited if a promise). An
    /// expression the page's navigation cut short (a form it submitted, or one evaluated
    /// while the next page loads) is worth `{"navigated": true}`: a wait asks again.
    fn eval(&mut self, expr: &str) -> Value {
        let session = self.session.clone();
        let reply = self.reply(
            "Runtime.evaluate",
            json!({ "expression": expr, "returnByValue": true, "awaitPromise": true }),
            Some(&session),
        );
        let navigated = reply["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("navigated or closed"));
        if navigated {
            return json!({ "navigated": true });
        }
        let r = result_of("Runtime.evaluate", reply);
        if let Some(e) = r.get("exceptionDetails") {
            return json!({ "exception": e.to_string() });
        }
        r["result"]["value"].clone()
    }

    /// Waits until `expr` is true on the page; fails with `what` and the page's text.
    fn wait_for(&mut self, what: &str, expr: &str) {
        let deadline = Instant::now() + LIMIT;
        loop {
            if self.eval(expr) == json!(true) {
                return;
            }
            if Instant::now() > deadline {
                let text = self.eval("document.body ? document.body.innerText : ''");
                panic!(
                    "the page never {what} ({expr}); it shows:\n{}",
                    text.as_str().unwrap_or("")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn result_of(method: &str, v: Value) -> Value {
    if let Some(e) = v.get("error") {
        panic!("{method}: {e}");
    }
    v["result"].clone()
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn setup() -> (TempDir, Config) {
    let dir = std::env::temp_dir().join(format!("hotline-dashboard-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("flows")).expect("temp dir");
    std::fs::write(dir.join("flows/menu.yaml"), MENU_FLOW).expect("menu flow");
    std::fs::write(dir.join("flows/line.yaml"), common::QUEUE_FLOW).expect("queue flow");
    std::fs::write(
        dir.join("hotline.yaml"),
        format!(
            "sip: {{ listen: [\"udp:127.0.0.1:0\"] }}\nrtp: {{ ports: 47640-47679 }}\n\
flows: flows\nprompts: {}\ndata: data\n\
routes: {{ menu: menu, queue: line }}\n\
admin: {{ listen: \"127.0.0.1:0\", token: {TOKEN} }}\n\
records: {{ store: records.db }}\n\
queues:\n  support: {{ music: hold_music, service_level: 20s }}\n\
agents:\n  carol: {{ uri: \"sip:carol@127.0.0.1:5999\", queues: {{ support: 0 }} }}\n",
            repo().join("prompts").display()
        ),
    )
    .expect("hotline.yaml");
    let cfg = Config::load(&dir.join("hotline.yaml")).expect("config");
    (TempDir(dir), cfg)
}

async fn agent_state(admin: SocketAddr, name: &str) -> String {
    let v: Value = hotline::webhook::client()
        .get(format!("http://{admin}/agents/{name}"))
        .bearer_auth(TOKEN)
        .timeout(LIMIT)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    v["state"].as_str().unwrap_or_default().to_owned()
}

/// Runs blocking browser work off the async workers, so the engine keeps serving.
async fn on_browser<T: Send + 'static>(
    b: &mut Option<Browser>,
    f: impl FnOnce(&mut Browser) -> T + Send + 'static,
) -> T {
    let mut browser = b.take().expect("browser");
    let (browser, out) = tokio::task::spawn_blocking(move || {
        let out = f(&mut browser);
        (browser, out)
    })
    .await
    .expect("browser work");
    *b = Some(browser);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_calls_queues_and_pauses_agents() {
    let Some(binary) = chromium() else {
        assert!(
            !required(),
            "HOTLINE_REQUIRE_CHROMIUM=1 but no chromium is installed"
        );
        eprintln!("skipped: no chromium (apt-get install chromium)");
        return;
    };
    common::logs();
    let (_dir, cfg) = setup();
    let srv = Server::start(cfg, 1).await.expect("server").spawn();
    let admin = srv.server.admin_addr().expect("admin");
    let sip = srv.server.addr(Protocol::Udp).expect("sip");
    let base = format!("http://{admin}");

    let mut b = Some(
        tokio::task::spawn_blocking(move || Browser::start(&binary, (1280, 900)))
            .await
            .expect("chromium"),
    );

    // Without the cookie the page is the login form; a wrong token says so, the right one
    // signs in.
    let url = base.clone();
    on_browser(&mut b, move |b| {
        b.navigate(&format!("{url}/"));
        b.wait_for("showed the login form", "!!document.querySelector('#login')");
        b.eval("document.querySelector('#token').value = 'wrong'; document.querySelector('#login').submit(); true");
        b.wait_for("said the token was wrong", "location.search === '?failed' && !document.querySelector('#failed').hidden");
        b.eval(&format!("document.querySelector('#token').value = '{TOKEN}'; document.querySelector('#login').submit(); true"));
        b.wait_for("signed in and went live", "document.querySelector('#status') && document.querySelector('#status').textContent === 'live'");
        let cookie_visible = b.eval("document.cookie");
        assert_eq!(cookie_visible, json!(""), "the session cookie is HttpOnly");
    })
    .await;

    // A call in the menu appears with its step, then leaves when it ends.
    let (mut phone, media, mut call) = common::call(sip, "menu").await;
    media
        .wait_for_prompt(&prompt("en", "main_menu"), 0, 10 * SECOND)
        .await
        .expect("the menu");
    let id = call.call_id.clone();
    on_browser(&mut b, move |b| {
        b.wait_for(
            "listed the call in the menu",
            &format!("[...document.querySelectorAll('#calls tbody tr')].some(r => r.dataset.call === {id:?} && r.querySelector('.step').textContent === 'menu')"),
        );
        b.wait_for("counted one call", "document.querySelector('#call-count').textContent === '1'");
    })
    .await;
    phone.hang_up(&mut call).await.expect("BYE answered");
    on_browser(&mut b, |b| {
        b.wait_for(
            "dropped the ended call",
            "document.querySelector('#call-count').textContent === '0'",
        );
    })
    .await;

    // A caller joins the queue (no agent is logged in): waiting 1, place 1; then leaves.
    let waiting = "(document.querySelector('[data-queue=\"support\"] .waiting') || {}).textContent";
    on_browser(&mut b, move |b| {
        b.wait_for("showed the queue empty", &format!("{waiting} === '0'"));
    })
    .await;
    let (mut phone, media, mut call) = common::call(sip, "queue").await;
    media
        .wait_for_prompt(&prompt("en", "hold_music"), 0, 10 * SECOND)
        .await
        .expect("hold music");
    let id = call.call_id.clone();
    on_browser(&mut b, move |b| {
        b.wait_for("showed one caller waiting", &format!("{waiting} === '1'"));
        b.wait_for(
            "showed the caller's place in line",
            &format!("[...document.querySelectorAll('#calls tbody tr')].some(r => r.dataset.call === {id:?} && r.querySelector('.queue').textContent === 'support' && r.querySelector('.position').textContent === '1')"),
        );
    })
    .await;
    phone.hang_up(&mut call).await.expect("BYE answered");
    on_browser(&mut b, move |b| {
        b.wait_for("showed the caller gone", &format!("{waiting} === '0'"));
    })
    .await;

    // The Pause button pauses the agent; Resume brings it back.
    let r = hotline::webhook::client()
        .post(format!("{base}/agents/carol/login"))
        .bearer_auth(TOKEN)
        .timeout(LIMIT)
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 200);
    let row = "document.querySelector('#agents tr[data-agent=\"carol\"]')";
    on_browser(&mut b, move |b| {
        b.wait_for(
            "offered Pause",
            &format!("!!{row} && !!{row}.querySelector('button.pause:not([disabled])')"),
        );
        b.eval(&format!(
            "{row}.querySelector('button.pause').click(); true"
        ));
    })
    .await;
    let deadline = Instant::now() + LIMIT;
    while agent_state(admin, "carol").await != "paused" {
        assert!(
            Instant::now() < deadline,
            "the Pause button never paused carol"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    on_browser(&mut b, move |b| {
        b.wait_for(
            "showed carol paused",
            &format!("!!{row}.querySelector('button.resume')"),
        );
        b.eval(&format!(
            "{row}.querySelector('button.resume').click(); true"
        ));
    })
    .await;
    let deadline = Instant::now() + LIMIT;
    while agent_state(admin, "carol").await != "available" {
        assert!(
            Instant::now() < deadline,
            "the Resume button never resumed carol"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The other tabs: the flow graph with today's traffic, the report, the call search
    // and one call's timeline.
    on_browser(&mut b, |b| {
        b.eval("location.hash = '#flows'; true");
        b.wait_for("drew the menu flow", "document.querySelectorAll('#flow-graph svg g.node').length > 2");
        // Records are written a moment after a call ends: each look fetches them again.
        b.eval("document.querySelector('#flow-pick').value = 'menu'; true");
        b.wait_for("put today's visits on the menu step", "refreshFlow().then(() => [...document.querySelectorAll('#flow-graph text.traffic')].some(t => /^1 visits · 1 hung up/.test(t.textContent)))");
        b.eval("location.hash = '#reports'; true");
        b.wait_for("drew the report's charts", "!!document.querySelector('#chart-hours svg') && !!document.querySelector('#chart-outcomes svg')");
        b.wait_for("listed the report's tables with CSV links", "document.querySelectorAll('#report-tables a.csv').length === 10");
        b.eval("location.hash = '#calls'; true");
        b.wait_for("found both calls", "search().then(() => document.querySelectorAll('#records tbody tr[data-call]').length === 2)");
        b.eval("document.querySelector('#records tbody tr[data-call]').click(); true");
        b.wait_for("showed a call's timeline", "document.querySelectorAll('#timeline ol.events li').length > 1");
    })
    .await;
    drop(b);
    drop(srv);
}
