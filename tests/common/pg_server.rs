//! A PostgreSQL server of the test's own, for tests that stop and start the database under
//! the engine: Debian's server programs (`initdb`, `pg_ctl`), a data folder in a temporary
//! folder, a free loopback port. Run as the `postgres` user when the tests run as root (the
//! server refuses root).

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// The folder of PostgreSQL's server programs: the newest of Debian's, else `pg_config`'s.
fn postgres_bin() -> Option<PathBuf> {
    let newest = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .max();
    if let Some((_, bin)) = newest {
        return Some(bin);
    }
    let out = Command::new("pg_config").arg("--bindir").output().ok()?;
    let bin = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    bin.join("initdb").exists().then_some(bin)
}

fn id_of(args: &[&str]) -> Option<u32> {
    let out = Command::new("id").args(args).output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// A PostgreSQL server of the test's own, in a temporary folder, on a free loopback port.
/// Dropping it stops the server and removes the folder, also when the test fails.
pub struct PgServer {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    /// Whether its programs run as the `postgres` user (we are root).
    as_postgres: bool,
}

impl PgServer {
    pub fn new(name: &str) -> Result<PgServer, String> {
        let bin = postgres_bin().ok_or("no PostgreSQL server programs (initdb) found")?;
        let as_postgres = id_of(&["-u"]) == Some(0);
        // The `postgres` user must reach it, which a TMPDIR under /root would not allow.
        let base = if as_postgres {
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("hotline-pg-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        if as_postgres {
            let uid = id_of(&["-u", "postgres"]).ok_or("no postgres user")?;
            let gid = id_of(&["-g", "postgres"]).ok_or("no postgres group")?;
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
        }
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let pg = PgServer {
            dir,
            bin,
            port,
            as_postgres,
        };
        let data = pg.data();
        pg.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-locale",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )?;
        pg.start()?;
        Ok(pg)
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    pub fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?connect_timeout=5",
            self.port
        )
    }

    /// Runs one of PostgreSQL's programs (as `postgres` when we are root).
    fn run(&self, program: &str, args: &[&str]) -> Result<Output, String> {
        let exe = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{program}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{program} {args:?}: {}\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(out)
    }

    pub fn start(&self) -> Result<(), String> {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={}",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        )
        .map(drop)
    }

    /// A fast shutdown: open connections are cut, as when the database is restarted.
    pub fn stop(&self) -> Result<(), String> {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "fast", "-w", "-t", "60", "stop"],
        )
        .map(drop)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-m",
                "immediate",
                "-w",
                "-t",
                "60",
                "stop",
            ],
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl PgServer {
    /// A new server for a test that needs one: None (the test skips) when PostgreSQL's
    /// server programs are missing, unless `HOTLINE_REQUIRE_POSTGRES=1`, which fails.
    pub fn start_or_skip(name: &str) -> Option<PgServer> {
        match PgServer::new(name) {
            Ok(pg) => Some(pg),
            Err(e) => {
                assert!(
                    std::env::var("HOTLINE_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                    "HOTLINE_REQUIRE_POSTGRES=1 but no PostgreSQL server of the test's own: {e}"
                );
                eprintln!("skipped: no PostgreSQL server of the test's own: {e}");
                None
            }
        }
    }

    /// The server's log, for a failing test's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}
