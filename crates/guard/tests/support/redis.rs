//! A real redis-server for tests: started on a free loopback port, stopped on drop.
//!
//! Without redis-server the tests print why they skip, except in CI (CI=true), where they fail: CI installs
//! it (.ci/run).

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

fn binary() -> Option<String> {
    ["redis-server", "valkey-server"].into_iter().find_map(|b| {
        Command::new(b)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()
            .filter(|s| s.success())
            .map(|_| b.to_string())
    })
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RedisServer {
    /// Starts a server, or returns None (after saying why) when none is installed outside CI.
    pub fn start() -> Option<RedisServer> {
        Self::start_on(free_port())
    }

    pub fn start_on(port: u16) -> Option<RedisServer> {
        let Some(bin) = binary() else {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("redis-server is not installed; .ci/run installs it");
            }
            eprintln!("skipping: redis-server is not installed (apt-get install redis-server)");
            return None;
        };
        let mut s = RedisServer { port, child: None };
        s.spawn(&bin);
        Some(s)
    }

    fn spawn(&mut self, bin: &str) {
        let child = Command::new(bin)
            .args(["--port", &self.port.to_string()])
            .args([
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start on {}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills the server (SIGKILL), as an outage.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        let bin = binary().expect("redis-server");
        self.spawn(&bin);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
