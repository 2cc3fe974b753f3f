//! Secrets kept out of hotline.yaml: `${NAME}` from the environment and `KEY_file` files,
//! their diagnostics at the line and column they are written, `HOTLINE_CONFIG` naming the
//! configuration, and substituted values kept out of messages, logs and `/health`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hotline::config::{Config, ConfigError, RecordsStore};
use hotline::config_text::Sources;

fn env(name: &str) -> Option<String> {
    match name {
        "DB_URL" => Some("postgres://hotline:hunter2-db@db.example.net/hotline".to_owned()),
        "BAD_URL" => Some("mysql://hotline:hunter2-my@db.example.net/hotline".to_owned()),
        "ADMIN_TOKEN" => Some("tok-0123456789".to_owned()),
        "MAX_CALLS" => Some("42".to_owned()),
        _ => None,
    }
}

fn no_files(_: &Path) -> std::io::Result<String> {
    Err(std::io::Error::new(
        std::io::ErrorKind::NotFound,
        "not found",
    ))
}

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_text(
        text,
        Path::new("/etc/hotline/hotline.yaml"),
        &Sources {
            env: &env,
            read: &no_files,
        },
    )
}

fn problems(text: &str) -> Vec<hotline::flow::diagnostic::Diagnostic> {
    match load(text) {
        Ok(_) => panic!("accepted: {text}"),
        Err(e) => e.diagnostics(Path::new("/etc/hotline/hotline.yaml")),
    }
}

#[test]
fn variables_are_replaced_in_values_of_every_kind() {
    let c = load(
        "sip: { max_calls: \"${MAX_CALLS}\" }\n\
         admin: { listen: \"0.0.0.0:8080\", token: \"${ADMIN_TOKEN}\" }\n\
         records: { store: \"${DB_URL}\", keep: \"${KEEP:-30d}\" }\n",
    )
    .unwrap();
    assert_eq!(c.max_calls, 42, "a plain number stays a number");
    assert_eq!(c.admin.unwrap().token.as_deref(), Some("tok-0123456789"));
    let records = c.records.unwrap();
    assert_eq!(
        records.store,
        RecordsStore::Postgres("postgres://hotline:hunter2-db@db.example.net/hotline".into())
    );
    assert_eq!(records.keep, Duration::from_secs(30 * 24 * 3600));
    // `$${` is a literal `${`.
    let c = load("sip: { user_agent: \"hotline $${NOT_A_VARIABLE}\" }\n").unwrap();
    assert_eq!(c.user_agent, "hotline ${NOT_A_VARIABLE}");
}

#[test]
fn an_unset_variable_is_an_error_where_it_is_written_naming_it() {
    let text = "sip:\n  realm: hotline\nadmin:\n  token: \"Bearer-${HOTLINE_ADMIN_SECRET}\"\n";
    let d = problems(text);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(
        d[0].message,
        "the environment variable 'HOTLINE_ADMIN_SECRET' is not set"
    );
    assert_eq!((d[0].line, d[0].column), (4, 18));
    assert_eq!(d[0].file, PathBuf::from("/etc/hotline/hotline.yaml"));
    assert!(
        d[0].help
            .as_deref()
            .unwrap()
            .contains("${HOTLINE_ADMIN_SECRET:-"),
        "{d:?}"
    );
}

#[test]
fn a_substituted_value_is_named_not_shown_in_messages() {
    let d = problems("records:\n  store: \"${BAD_URL}\"\n");
    assert_eq!(d.len(), 1, "{d:?}");
    let shown = format!("{}", d[0]);
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("the value of ${BAD_URL}"), "{shown}");
    assert_eq!((d[0].line, d[0].column), (2, 10));
    // The rendered error of the whole file hides it too.
    let err = load("records:\n  store: \"${BAD_URL}\"\n").unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn a_problem_after_a_longer_substituted_value_keeps_its_column() {
    let text = "records: { store: \"${DB_URL}\", keep: 5m }\n";
    let d = problems(text);
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(d[0].message.contains("at least 1h"), "{d:?}");
    let column = text.find("5m").unwrap() as u32 + 1;
    assert_eq!((d[0].line, d[0].column), (1, column));
    assert_eq!(d[0].source_line.as_deref(), Some(text.trim_end()));
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "hotline-config-secrets-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn file_keys_read_the_secret_and_say_what_is_wrong_with_them() {
    let dir = scratch("files");
    std::fs::write(dir.join("admin_token"), "tok-from-a-file\n").unwrap();
    std::fs::write(dir.join("alice.pw"), "alice-from-a-file").unwrap();
    let config = dir.join("hotline.yaml");
    std::fs::write(
        &config,
        "queues: { support: {} }\n\
         agents:\n  alice: { password_file: alice.pw, queues: { support: 0 } }\n\
         admin: { listen: \"[::]:9000\", token_file: admin_token }\n",
    )
    .unwrap();
    let c = Config::load(&config).unwrap();
    assert_eq!(c.admin.unwrap().token.as_deref(), Some("tok-from-a-file"));
    assert_eq!(
        c.agents["alice"].password.as_ref().map(|p| p.0.as_str()),
        Some("alice-from-a-file")
    );

    std::fs::write(&config, "admin:\n  token_file: nowhere/token\n").unwrap();
    let d = Config::load(&config).unwrap_err().diagnostics(&config);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!((d[0].line, d[0].column), (2, 15));
    assert!(
        d[0].message.starts_with("token_file: cannot read "),
        "{d:?}"
    );
    assert_eq!(d[0].file, config);

    std::fs::write(&config, "admin:\n  token: abc\n  token_file: admin_token\n").unwrap();
    let d = Config::load(&config).unwrap_err().diagnostics(&config);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].message, "both 'token' and 'token_file' are given");
    assert_eq!((d[0].line, d[0].column), (3, 3));
    let _ = std::fs::remove_dir_all(&dir);
}

fn hotline() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hotline"));
    c.env_remove("HOTLINE_CONFIG").env("RUST_LOG", "off");
    c
}

#[test]
fn hotline_config_names_the_configuration_and_the_option_wins() {
    let dir = scratch("env");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let broken = dir.join("broken.yaml");
    std::fs::write(&broken, "sip:\n  listn: []\n").unwrap();
    let run = |cmd: &mut Command| {
        let out = cmd.current_dir(&dir).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(hotline().arg("check").env("HOTLINE_CONFIG", &broken));
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("--> {}:2:3", broken.display())),
        "{err}"
    );
    assert!(err.contains("did you mean 'listen'?"), "{err}");
    let (code, err) = run(hotline()
        .arg("check")
        .env("HOTLINE_CONFIG", repo.join("hotline.yaml")));
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = run(hotline()
        .args(["check", "--config"])
        .arg(repo.join("hotline.yaml"))
        .env("HOTLINE_CONFIG", &broken));
    assert_eq!(code, Some(0), "--config wins: {err}");
    // `serve` refuses the broken one the same way, as a problem found (1).
    let (code, err) = run(hotline().arg("serve").env("HOTLINE_CONFIG", &broken));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("unknown key 'listn'"), "{err}");
    assert!(!err.contains("<input>"), "{err}");
    // A file that is not there keeps the command from running (2).
    let (code, err) = run(hotline()
        .arg("serve")
        .env("HOTLINE_CONFIG", dir.join("nowhere.yaml")));
    assert_eq!(code, Some(2), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The whole answer to one HTTP/1.0 request, or None while nothing answers.
fn http(port: u16, method: &str, path: &str, token: &str) -> Option<String> {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    Some(text)
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serve_takes_its_secrets_from_the_environment_and_files_and_shows_them_nowhere() {
    const TOKEN: &str = "tok-secret-4f1c9a77";
    const PASSWORD: &str = "pw-secret-8d2e0b55";
    let dir = scratch("serve");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(dir.join("flows")).unwrap();
    std::fs::write(
        dir.join("flows/main.yaml"),
        "start: hello\nsteps:\n  hello:\n    play: welcome\n    next: bye\n  bye:\n    hangup: goodbye\n",
    )
    .unwrap();
    std::fs::write(dir.join("alice.pw"), format!("{PASSWORD}\n")).unwrap();
    let (admin, sip) = (free_port(), free_port());
    let config = format!(
        "sip: {{ listen: [\"udp:127.0.0.1:{sip}\"] }}\n\
         rtp: {{ ports: 47200-47299 }}\n\
         flows: flows\n\
         prompts: {prompts}\n\
         admin: {{ listen: \"127.0.0.1:{admin}\", token: \"${{HOTLINE_TEST_TOKEN}}\" }}\n\
         queues: {{ support: {{}} }}\n\
         agents:\n  alice: {{ password_file: alice.pw, queues: {{ support: 0 }} }}\n",
        prompts = repo.join("prompts").display()
    );
    std::fs::write(dir.join("hotline.yaml"), &config).unwrap();
    let child = hotline()
        .arg("serve")
        .current_dir(&dir)
        .env("HOTLINE_CONFIG", dir.join("hotline.yaml"))
        .env("HOTLINE_TEST_TOKEN", TOKEN)
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Killed(child);
    let until = Instant::now() + Duration::from_secs(60);
    let health = loop {
        if let Some(h) = http(admin, "GET", "/health", TOKEN) {
            break h;
        }
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "the engine exited before answering"
        );
        assert!(Instant::now() < until, "no admin API on port {admin}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        health.starts_with("HTTP/1.0 200") || health.starts_with("HTTP/1.1 200"),
        "{health}"
    );
    let wrong = http(admin, "GET", "/health", "wrong").unwrap();
    assert!(
        wrong.contains(" 401 "),
        "the token from the environment is required: {wrong}"
    );

    // An edit that puts the secret where it does not belong: refused, and /health says
    // so naming the variable, not showing its value.
    std::fs::write(
        dir.join("hotline.yaml"),
        config.replace(
            "rtp: {",
            "rtp: { no_media_timeout: \"${HOTLINE_TEST_TOKEN}\",",
        ),
    )
    .unwrap();
    let reload = http(admin, "POST", "/reload", TOKEN).unwrap();
    assert!(!reload.contains(TOKEN), "{reload}");
    let health = http(admin, "GET", "/health", TOKEN).unwrap();
    assert!(health.contains("edits_refused"), "{health}");
    assert!(
        health.contains("the value of ${HOTLINE_TEST_TOKEN}"),
        "{health}"
    );
    assert!(
        !health.contains(TOKEN) && !health.contains(PASSWORD),
        "{health}"
    );

    let _ = child.0.kill();
    let _ = child.0.wait();
    let mut logs = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(logs.contains("listening"), "the logs were captured: {logs}");
    assert!(!logs.contains(TOKEN), "the token is logged: {logs}");
    assert!(!logs.contains(PASSWORD), "a password is logged: {logs}");
    let _ = std::fs::remove_dir_all(&dir);
}
