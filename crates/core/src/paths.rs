//! Confinement of the files a flow reaches by name (prompts, recordings, flow files) to
//! the folder they belong in.
//!
//! Owns the one rule: a path is used only when its real location (symlinks resolved,
//! canonicalised) lies inside the real location of its folder, and a name given for a new
//! file is a single plain file name. It does not read or write the files, and it does not
//! decide which folder is which (the configuration does).

use std::path::{Component, Path, PathBuf};

/// A path that would lead out of its folder, or that cannot be resolved to tell.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error("'{path}' is outside the folder {root}")]
    Outside { path: PathBuf, root: PathBuf },
    #[error("'{name}' is not a plain file name")]
    NotAFileName { name: String },
    #[error("cannot resolve '{path}': {source}")]
    Resolve {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn canonical(path: &Path) -> Result<PathBuf, PathError> {
    std::fs::canonicalize(path).map_err(|source| PathError::Resolve {
        path: path.to_path_buf(),
        source,
    })
}

/// The real location of `path`, which must exist and lie inside `root` once both are
/// resolved (a symlink inside the folder that points elsewhere is refused).
pub fn confined(root: &Path, path: &Path) -> Result<PathBuf, PathError> {
    let root = canonical(root)?;
    let real = canonical(path)?;
    if real.starts_with(&root) {
        Ok(real)
    } else {
        Err(PathError::Outside {
            path: path.to_path_buf(),
            root,
        })
    }
}

/// Where a new file named `name` goes in `root`: `name` must be one plain component
/// (no `/`, `..`, or absolute path), and if a file of that name is already there (a
/// symlink, say), its real location must be inside `root` too.
pub fn file_in(root: &Path, name: &str) -> Result<PathBuf, PathError> {
    let mut parts = Path::new(name).components();
    let plain = matches!(parts.next(), Some(Component::Normal(_))) && parts.next().is_none();
    if !plain || name.contains(['/', '\\', '\0']) {
        return Err(PathError::NotAFileName {
            name: name.to_owned(),
        });
    }
    let root_real = canonical(root)?;
    let path = root_real.join(name);
    if std::fs::symlink_metadata(&path).is_ok() {
        return confined(&root_real, &path);
    }
    Ok(path)
}

/// Whether a name written in a flow (a prompt name, a sub-folder path) climbs out of its
/// folder: an absolute path, a `..` step, or a drive or root prefix.
pub fn climbs_out(name: &str) -> bool {
    name.starts_with(['/', '\\'])
        || Path::new(name)
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        || name.split(['/', '\\']).any(|seg| seg == "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hotline-paths-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("inside")).expect("scratch folder");
        dir
    }

    #[test]
    fn names_that_climb_out_are_found() {
        for bad in [
            "../x",
            "a/../../x",
            "/etc/passwd",
            "..",
            "\\\\server\\x",
            "a/..",
        ] {
            assert!(climbs_out(bad), "{bad}");
        }
        for ok in ["welcome", "menu/main", "de/hello-1", "a..b"] {
            assert!(!climbs_out(ok), "{ok}");
        }
    }

    #[test]
    fn a_symlink_out_of_the_folder_is_refused() {
        let dir = scratch("link");
        let root = dir.join("inside");
        std::fs::write(dir.join("secret.wav"), b"x").expect("write");
        std::fs::write(root.join("ok.wav"), b"x").expect("write");
        std::os::unix::fs::symlink(dir.join("secret.wav"), root.join("evil.wav")).expect("link");
        assert!(confined(&root, &root.join("ok.wav")).is_ok());
        assert!(matches!(
            confined(&root, &root.join("evil.wav")),
            Err(PathError::Outside { .. })
        ));
        assert!(matches!(
            confined(&root, &root.join("../secret.wav")),
            Err(PathError::Outside { .. })
        ));
        assert!(matches!(
            file_in(&root, "evil.wav"),
            Err(PathError::Outside { .. })
        ));
        assert!(file_in(&root, "new.wav").is_ok());
        for bad in ["../new.wav", "/tmp/new.wav", "a/b.wav", "..", ""] {
            assert!(
                matches!(file_in(&root, bad), Err(PathError::NotAFileName { .. })),
                "{bad}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
