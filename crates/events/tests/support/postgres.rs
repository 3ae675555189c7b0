//! A throwaway PostgreSQL server for integration tests: `initdb` into a temporary directory, `postgres` on a
//! free loopback port, stopped (and the directory removed) when the guard drops, even when the test fails.
//!
//! Use it from a test crate with
//! ```ignore
//! #[path = "support/postgres.rs"]
//! mod pg;
//! let Some(server) = pg::PgServer::start_or_skip("my_test") else { return };
//! ```
//!
//! Binaries are looked for in `$RAMPART_PG_BINDIR`, `pg_config --bindir`, `/usr/lib/postgresql/<newest>/bin`,
//! then `$PATH`. When they are missing the test is skipped with a message, except under `CI=true` where
//! that is a failure (CI installs PostgreSQL: see .ci/run). PostgreSQL refuses to run as root, so as root
//! the server runs as the `postgres` system user (`setpriv`, or `runuser` where setpriv is missing).
//!
//! Everything here blocks: call it outside async code (or from `spawn_blocking`).

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the server may take to accept connections after it is started.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs commands as another user (root only).
#[derive(Debug, Clone)]
enum RunAs {
    Myself,
    /// `setpriv` execs the command: the child is the command itself.
    Setpriv {
        uid: u32,
        gid: u32,
    },
    /// `runuser` forks: the child is runuser, the server's pid comes from postmaster.pid.
    Runuser {
        user: String,
    },
}

pub struct PgServer {
    bindir: PathBuf,
    dir: tempfile::TempDir,
    data: PathBuf,
    port: u16,
    run_as: RunAs,
    child: Option<Child>,
}

impl PgServer {
    /// Starts a server, or returns `None` after printing why the test is skipped (no PostgreSQL here).
    /// Under `CI=true` a missing PostgreSQL panics instead. Any other failure panics.
    pub fn start_or_skip(test: &str) -> Option<PgServer> {
        match find_bindir() {
            Ok(bindir) => Some(PgServer::start(&bindir).unwrap_or_else(|e| panic!("{test}: {e}"))),
            Err(why) => {
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!("{test}: PostgreSQL is required under CI=true, but {why}");
                }
                eprintln!("SKIPPED {test}: {why} (install the postgresql package, or set RAMPART_PG_BINDIR)");
                None
            }
        }
    }

    /// initdb into a new temporary directory and start the server on a free port.
    pub fn start(bindir: &Path) -> Result<PgServer, String> {
        let run_as = run_as()?;
        let dir = tempfile::Builder::new()
            .prefix("rampart-pg-")
            .tempdir()
            .map_err(|e| format!("creating a temporary directory: {e}"))?;
        if let RunAs::Setpriv { uid, gid } = run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .map_err(|e| format!("chown {}: {e}", dir.path().display()))?;
        } else if let RunAs::Runuser { user } = &run_as {
            let st = Command::new("chown")
                .arg(format!("{user}:"))
                .arg(dir.path())
                .status()
                .map_err(|e| format!("chown: {e}"))?;
            if !st.success() {
                return Err(format!("chown {user} {} failed", dir.path().display()));
            }
        }
        let data = dir.path().join("data");
        let out = as_user(&run_as, &bindir.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let port = free_port()?;
        let mut server = PgServer {
            bindir: bindir.to_path_buf(),
            dir,
            data,
            port,
            run_as,
            child: None,
        };
        server.launch()?;
        Ok(server)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A libpq connection string for the superuser `postgres` on TCP.
    pub fn url(&self) -> String {
        format!("host=127.0.0.1 port={} user=postgres dbname=postgres", self.port)
    }

    /// The server's log (appended to across restarts).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// Kills the server with SIGKILL, as a crash would, and waits for it and its backends to be gone (they
    /// exit by themselves when they notice the postmaster's death).
    pub fn kill(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let backends = self.postmaster_pid().map(children_of).unwrap_or_default();
        match &self.run_as {
            RunAs::Runuser { .. } => {
                if let Some(pid) = self.postmaster_pid() {
                    let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
                }
                let _ = child.kill();
            }
            _ => {
                let _ = child.kill();
            }
        }
        let _ = child.wait();
        let deadline = Instant::now() + Duration::from_secs(10);
        while backends.iter().any(|pid| Path::new(&format!("/proc/{pid}")).exists()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the server again on the same port and data directory (after [`PgServer::kill`] or
    /// [`PgServer::stop`]), and waits until it accepts connections.
    pub fn restart(&mut self) -> Result<(), String> {
        if self.child.is_some() {
            return Ok(());
        }
        self.launch()
    }

    /// Stops the server (fast shutdown), or kills it if that fails.
    pub fn stop(&mut self) {
        if self.child.is_none() {
            return;
        }
        let ok = as_user(&self.run_as, &self.bindir.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["stop", "-m", "fast", "-w", "-t", "20"])
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            if let Some(mut child) = self.child.take() {
                let _ = child.wait();
            }
        } else {
            self.kill();
        }
    }

    fn postmaster_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.data.join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// Spawns `postgres` and waits until it accepts connections. A restart right after a kill can find the
    /// old backends still attached to shared memory for a moment: it is retried.
    fn launch(&mut self) -> Result<(), String> {
        let mut last = String::new();
        for _ in 0..10 {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.log_path())
                .map_err(|e| format!("opening the server log: {e}"))?;
            let log2 = log.try_clone().map_err(|e| e.to_string())?;
            let child = as_user(&self.run_as, &self.bindir.join("postgres"))
                .arg("-D")
                .arg(&self.data)
                .arg("-p")
                .arg(self.port.to_string())
                .arg("-k")
                .arg(self.dir.path())
                // fsync=off: nothing survives an OS crash, but everything committed survives the SIGKILL of
                // `kill()` (synchronous_commit=off would not: it loses the last commits in a crash).
                .args([
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "shared_buffers=16MB",
                    "-c",
                    "max_connections=30",
                ])
                .current_dir(self.dir.path())
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log2)
                .spawn()
                .map_err(|e| format!("starting postgres: {e}"))?;
            self.child = Some(child);
            match self.wait_ready() {
                Ok(()) => return Ok(()),
                Err(e) => {
                    last = e;
                    self.kill();
                    std::thread::sleep(Duration::from_millis(300));
                }
            }
        }
        Err(format!(
            "postgres did not start: {last}\n--- server log ---\n{}",
            self.log()
        ))
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!("postgres exited: {status}"));
                }
            }
            let ready = Command::new(self.bindir.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-t", "1", "-q"])
                .stdin(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("not accepting connections after {READY_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn as_user(run_as: &RunAs, program: &Path) -> Command {
    match run_as {
        RunAs::Myself => Command::new(program),
        RunAs::Setpriv { uid, gid } => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={gid}"))
                .arg("--clear-groups")
                .arg("--")
                .arg(program);
            c
        }
        RunAs::Runuser { user } => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--"]).arg(program);
            c
        }
    }
}

/// Myself when not root; the `postgres` user (via setpriv or runuser) when root.
fn run_as() -> Result<RunAs, String> {
    let euid = command_stdout("id", &["-u"])?;
    if euid != "0" {
        return Ok(RunAs::Myself);
    }
    let uid = command_stdout("id", &["-u", "postgres"])
        .map_err(|_| "running as root and there is no `postgres` user to run the server as".to_string())?;
    let gid = command_stdout("id", &["-g", "postgres"])?;
    if Command::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        let uid = uid.parse().map_err(|_| format!("id -u postgres: {uid}"))?;
        let gid = gid.parse().map_err(|_| format!("id -g postgres: {gid}"))?;
        Ok(RunAs::Setpriv { uid, gid })
    } else {
        Ok(RunAs::Runuser {
            user: "postgres".to_string(),
        })
    }
}

fn command_stdout(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{program} {args:?}: {}", out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The processes whose parent is `pid` (from /proc; empty where there is no /proc).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let child: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'.
            let ppid: u32 = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
            (ppid == pid).then_some(child)
        })
        .collect()
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("finding a free port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

fn has_server(dir: &Path) -> bool {
    ["initdb", "postgres", "pg_ctl", "pg_isready"]
        .iter()
        .all(|b| dir.join(b).is_file())
}

/// The directory holding initdb, postgres, pg_ctl and pg_isready, or why there is none.
pub fn find_bindir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("RAMPART_PG_BINDIR") {
        let dir = PathBuf::from(dir);
        return if has_server(&dir) {
            Ok(dir)
        } else {
            Err(format!(
                "RAMPART_PG_BINDIR={} has no PostgreSQL server binaries",
                dir.display()
            ))
        };
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_server(&dir) {
            return Ok(dir);
        }
    }
    // Debian and Ubuntu: /usr/lib/postgresql/<major>/bin, not on $PATH. The newest major wins.
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            has_server(&bin).then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if has_server(&dir) {
                return Ok(dir);
            }
        }
    }
    Err("no PostgreSQL server binaries (initdb, postgres, pg_ctl, pg_isready) were found".to_string())
}
