//! Live reload on a running hotline: a flow edited during a call changes what new callers
//! get, the call in progress finishes on the version it started with, and an edit that
//! fails the check is refused while the running version stays.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use std::time::{Duration, Instant};

use common::{SECOND, prompt, repo};
use hotline::config::{Config, Protocol};
use hotline::server::Server;
use hotline_load::caller::{CallMedia, KeyMethod, Offer, Phone};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

async fn wait_for_version(deps: &hotline::call::CallDeps, v: u64) -> bool {
    let deadline = Instant::now() + 20 * SECOND;
    while Instant::now() < deadline {
        if deps.live().version >= v {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_during_a_call() {
    let dir = std::env::temp_dir().join(format!("hotline-reload-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("flows")).unwrap();
    let original = std::fs::read_to_string(repo().join("flows/main.yaml")).unwrap();
    std::fs::write(dir.join("flows/main.yaml"), &original).unwrap();
    std::fs::copy(
        repo().join("flows/survey.yaml"),
        dir.join("flows/survey.yaml"),
    )
    .unwrap();
    std::fs::write(
        dir.join("hotline.yaml"),
        format!(
            "sip: {{ listen: [\"udp:127.0.0.1:0\"] }}\nrtp: {{ ports: 42900-42999 }}\n\
flows: flows\nprompts: {}\n{}",
            repo().join("prompts").display(),
            common::SAMPLE_TEST_CONFIG
        ),
    )
    .unwrap();
    let cfg = Config::load(&dir.join("hotline.yaml")).unwrap();
    let srv = Server::start(cfg, 1).await.unwrap().spawn();
    let deps = srv.server.deps.clone();
    tokio::spawn(hotline::reload::watch(
        deps.clone(),
        Duration::from_millis(100),
    ));
    tokio::time::sleep(SECOND / 2).await; // the watcher is in place
    let sip = srv.server.addr(Protocol::Udp).unwrap();

    // Call A starts on version 1.
    let mut a = Phone::new(Protocol::Udp, sip).await.unwrap();
    let media_a = CallMedia::bind(LOCALHOST, true).unwrap();
    let call_a = a.call("hotline", &media_a, Offer::Default).await.unwrap();
    media_a.connect(
        call_a.remote_rtp,
        call_a.codec,
        call_a.payload_type,
        call_a.telephone_event_pt,
    );
    let w = media_a
        .wait_for_prompt(&prompt("en", "welcome"), 0, 5 * SECOND)
        .await
        .expect("A hears the welcome");

    // Version 2: the welcome says goodbye and hangs up.
    let edited = original.replacen(
        "    play: welcome               # in English and German: no language chosen yet\n    next: choose_language",
        "    play: goodbye\n    next: hangup",
        1,
    );
    assert_ne!(edited, original, "the edit applies to the sample");
    std::fs::write(dir.join("flows/main.yaml"), &edited).unwrap();
    assert!(wait_for_version(&deps, 2).await, "the edit was picked up");

    // Call A goes on in version 1: 2 during the welcome still chooses German.
    media_a.press_all("2", KeyMethod::Rfc4733);
    media_a
        .wait_for_prompt(&prompt("de", "main_menu"), w, 5 * SECOND)
        .await
        .expect("A stays on the version it started with");

    // Call B gets version 2.
    let mut b = Phone::new(Protocol::Udp, sip).await.unwrap();
    let media_b = CallMedia::bind(LOCALHOST, true).unwrap();
    let call_b = b.call("hotline", &media_b, Offer::Default).await.unwrap();
    media_b.connect(
        call_b.remote_rtp,
        call_b.codec,
        call_b.payload_type,
        call_b.telephone_event_pt,
    );
    media_b
        .wait_for_prompt(&prompt("en", "goodbye"), 0, 5 * SECOND)
        .await
        .expect("B hears the edited flow");
    b.expect_bye(10 * SECOND).await.expect("and is hung up");

    // A broken edit is refused; version 2 stays live.
    std::fs::write(
        dir.join("flows/main.yaml"),
        edited.replacen("next: hangup", "next: hangup_typo", 1),
    )
    .unwrap();
    tokio::time::sleep(2 * SECOND).await;
    assert_eq!(deps.live().version, 2, "the broken edit was refused");
    let direct = hotline::reload::reload(&deps).unwrap_err();
    assert!(
        direct
            .report
            .diagnostics
            .iter()
            .any(|d| d.to_string().contains("hangup_typo")),
        "the refusal names the problem"
    );
    let mut c = Phone::new(Protocol::Udp, sip).await.unwrap();
    let media_c = CallMedia::bind(LOCALHOST, true).unwrap();
    let call_c = c.call("hotline", &media_c, Offer::Default).await.unwrap();
    media_c.connect(
        call_c.remote_rtp,
        call_c.codec,
        call_c.payload_type,
        call_c.telephone_event_pt,
    );
    media_c
        .wait_for_prompt(&prompt("en", "goodbye"), 0, 5 * SECOND)
        .await
        .expect("C still gets version 2");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writes `text` to a new file beside `path` and renames it over `path`, as vim, `sed -i`
/// and configuration-management tools save.
fn save_by_rename(path: &std::path::Path, scratch_name: &str, text: &str) {
    let scratch = path.with_file_name(scratch_name);
    std::fs::write(&scratch, text).unwrap();
    std::fs::rename(&scratch, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saves_that_rename_a_new_file_over_the_old_are_each_reloaded() {
    let dir = std::env::temp_dir().join(format!("hotline-reload-rename-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("flows")).unwrap();
    let flow = std::fs::read_to_string(repo().join("flows/main.yaml")).unwrap();
    std::fs::write(dir.join("flows/main.yaml"), &flow).unwrap();
    std::fs::copy(
        repo().join("flows/survey.yaml"),
        dir.join("flows/survey.yaml"),
    )
    .unwrap();
    let config = format!(
        "sip: {{ listen: [\"udp:127.0.0.1:0\"] }}\nrtp: {{ ports: 42800-42899 }}\n\
flows: flows\nprompts: {}\n{}",
        repo().join("prompts").display(),
        common::SAMPLE_TEST_CONFIG
    );
    std::fs::write(dir.join("hotline.yaml"), &config).unwrap();
    let cfg = Config::load(&dir.join("hotline.yaml")).unwrap();
    let srv = Server::start(cfg, 1).await.unwrap().spawn();
    let deps = srv.server.deps.clone();
    tokio::spawn(hotline::reload::watch(
        deps.clone(),
        Duration::from_millis(100),
    ));
    tokio::time::sleep(SECOND / 2).await; // the watcher is in place
    let first = deps.live().version;
    let mut expected = first;

    // hotline.yaml twice: the second save is the one a watch on the file would miss.
    for save in 0..2 {
        save_by_rename(
            &dir.join("hotline.yaml"),
            "hotline.yaml.new",
            &format!("{config}# save {save}\n"),
        );
        expected += 1;
        assert!(
            wait_for_version(&deps, expected).await,
            "hotline.yaml's save {save} was reloaded"
        );
    }
    // A flow twice, from a hidden scratch file (which alone must not reload).
    for save in 0..2 {
        let edited = flow.replacen(
            "    play: welcome               # in English and German: no language chosen yet\n    next: choose_language",
            &format!("    play: goodbye    # save {save}\n    next: hangup"),
            1,
        );
        assert_ne!(edited, flow, "the edit applies to the sample");
        save_by_rename(&dir.join("flows/main.yaml"), ".main.yaml.swp", &edited);
        expected += 1;
        assert!(
            wait_for_version(&deps, expected).await,
            "the flow's save {save} was reloaded"
        );
    }
    // And the last one is what new callers get.
    let sip = srv.server.addr(Protocol::Udp).unwrap();
    let (mut phone, media, _call) = common::call(sip, "hotline").await;
    media
        .wait_for_prompt(&prompt("en", "goodbye"), 0, 5 * SECOND)
        .await
        .expect("the renamed flow is live");
    phone.expect_bye(10 * SECOND).await.expect("and hangs up");

    // Files beside the configuration that are not it (a database, a backup) reload nothing.
    std::fs::write(dir.join("notes.txt"), "not configuration").unwrap();
    std::fs::write(dir.join("hotline.yaml~"), &config).unwrap();
    tokio::time::sleep(SECOND).await;
    assert_eq!(
        deps.live().version,
        expected,
        "one reload a save, none for other files"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
