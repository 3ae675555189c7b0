#![allow(dead_code)] // shared by the guard and rampart test crates; each uses part of it
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

/// A three-master Redis Cluster on loopback (no replicas), made with `redis-cli --cluster create`.
pub struct RedisCluster {
    pub ports: Vec<u16>,
    children: Vec<Child>,
    dir: std::path::PathBuf,
}

/// A free port whose cluster bus port (+10000) is free too.
fn free_cluster_port() -> u16 {
    loop {
        let p = free_port();
        if p < 55_000 && std::net::TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok() {
            return p;
        }
    }
}

impl RedisCluster {
    pub fn start() -> Option<RedisCluster> {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        let cli_ok = Command::new("redis-cli")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let (Some(bin), true) = (binary(), cli_ok) else {
            if ci {
                panic!("redis-server and redis-cli are not installed; .ci/run installs them");
            }
            eprintln!("skipping: redis-server / redis-cli are not installed (apt-get install redis-server)");
            return None;
        };
        let dir = std::env::temp_dir().join(format!("rampart-redis-cluster-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut c = RedisCluster {
            ports: Vec::new(),
            children: Vec::new(),
            dir,
        };
        for i in 0..3 {
            let port = free_cluster_port();
            let child = Command::new(&bin)
                .current_dir(&c.dir)
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .args([
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &format!("nodes-{i}.conf"),
                ])
                .args(["--protected-mode", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server starts");
            c.children.push(child);
            c.ports.push(port);
        }
        for port in &c.ports {
            let deadline = Instant::now() + Duration::from_secs(10);
            while TcpStream::connect(("127.0.0.1", *port)).is_err() {
                assert!(Instant::now() < deadline, "redis-server did not start on {port}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(c.ports.iter().map(|p| format!("127.0.0.1:{p}")))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli runs");
        assert!(
            out.status.success(),
            "cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        // Every node must agree the cluster is up before clients use it.
        let deadline = Instant::now() + Duration::from_secs(20);
        for port in &c.ports {
            loop {
                let info = Command::new("redis-cli")
                    .args(["-p", &port.to_string(), "cluster", "info"])
                    .output()
                    .expect("redis-cli runs");
                if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                    break;
                }
                assert!(Instant::now() < deadline, "the cluster never came up");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Some(c)
    }

    pub fn nodes(&self) -> Vec<String> {
        self.ports.iter().map(|p| format!("redis://127.0.0.1:{p}")).collect()
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
