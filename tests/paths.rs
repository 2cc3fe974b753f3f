//! Prompt and flow files stay inside their folders at run time: a symlink planted in the
//! prompts or flows folder that leads elsewhere is refused (with its reason) when the
//! folder is loaded, at start and on every reload, while the files really inside are used.

use std::path::{Path, PathBuf};

use hotline_core::flow::diagnostic::Severity;
use hotline_core::flow::load::load_flows_dir;
use hotline_core::media::prompt::{PromptErrorKind, PromptLibrary};

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hotline-paths-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn copy_prompt(to: &Path) {
    std::fs::copy(repo().join("prompts/en/goodbye.wav"), to).unwrap();
}

#[test]
fn a_prompt_symlink_out_of_the_prompts_folder_is_refused() {
    let dir = scratch("prompts");
    let root = dir.join("prompts");
    std::fs::create_dir_all(root.join("en/menu")).unwrap();
    std::fs::create_dir_all(dir.join("elsewhere")).unwrap();
    copy_prompt(&root.join("en/goodbye.wav"));
    copy_prompt(&dir.join("elsewhere/secret.wav"));
    // A file link and a folder link, both leading out; and a link that stays inside.
    std::os::unix::fs::symlink(
        dir.join("elsewhere/secret.wav"),
        root.join("en/welcome.wav"),
    )
    .unwrap();
    std::os::unix::fs::symlink(dir.join("elsewhere"), root.join("en/menu/more")).unwrap();
    std::os::unix::fs::symlink(root.join("en/goodbye.wav"), root.join("en/bye.wav")).unwrap();

    let (lib, errors) = PromptLibrary::load_dir(&root, "en");
    assert!(lib.get_exact("en", "goodbye").is_some());
    assert!(
        lib.get_exact("en", "bye").is_some(),
        "a link inside the folder is fine"
    );
    assert!(lib.get_exact("en", "welcome").is_none());
    assert!(lib.get_exact("en", "menu/more/secret").is_none());
    let refused: Vec<&Path> = errors
        .iter()
        .filter(|e| matches!(e.kind, PromptErrorKind::Outside(_)))
        .map(|e| e.path.as_path())
        .collect();
    assert_eq!(
        refused,
        [root.join("en/menu/more"), root.join("en/welcome.wav")],
        "{errors:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_flow_symlink_out_of_the_flows_folder_is_refused() {
    let dir = scratch("flows");
    let flows = dir.join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    let flow = "start: bye\nsteps:\n  bye:\n    hangup: goodbye\n";
    std::fs::write(flows.join("main.yaml"), flow).unwrap();
    std::fs::write(dir.join("outside.yaml"), flow).unwrap();
    std::os::unix::fs::symlink(dir.join("outside.yaml"), flows.join("planted.yaml")).unwrap();

    let prompts = |_: &str, _: &str| true;
    let (set, diags) = load_flows_dir(&flows, &prompts);
    assert!(set.get("main").is_some());
    assert!(set.get("planted").is_none());
    let errors: Vec<String> = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| format!("{}: {}", d.file.display(), d.message))
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("planted.yaml") && errors[0].contains("outside the folder"),
        "{errors:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
