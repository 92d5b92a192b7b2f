//! Three test hosts on one machine: network namespaces `a`, `b` and `c`
//! (10.20.0.1-3/24) joined by veth pairs to a bridge in a fourth, with an
//! sshd for the test in `b` and `c` that takes a key made for the test.
//! Nothing is sent anywhere but between those namespaces; dropping
//! [`Hosts`] kills every process left in them and deletes them.
//!
//! Needs root, `ip` (iproute2) and OpenSSH's `sshd` and `ssh`; where one
//! is missing [`Hosts::new`] says which, and the test skips with that
//! reason — unless `TRACTOR_REQUIRE_HOSTS=1` (as on CI), where it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Set to `1` where the hosts must be made (CI runs as root): a test that
/// cannot make them fails instead of skipping.
pub const REQUIRE_ENV: &str = "TRACTOR_REQUIRE_HOSTS";

const SSHD: &str = "/usr/sbin/sshd";

/// One test host.
#[derive(Debug, Clone)]
pub struct Host {
    /// Its network namespace.
    pub netns: String,
    /// Its address on the test network.
    pub ip: String,
}

impl Host {
    /// Its placement URL.
    pub fn url(&self) -> String {
        format!("ssh://root@{}", self.ip)
    }
}

/// The three hosts, their switch, and the files of their sshds.
pub struct Hosts {
    pub a: Host,
    pub b: Host,
    pub c: Host,
    switch: String,
    dir: PathBuf,
    sshds: Vec<std::process::Child>,
}

/// The hosts, or why a test cannot have them: skipped with that reason,
/// or a failure where [`REQUIRE_ENV`] says they are required.
pub fn hosts_or_skip(test: &str) -> Option<Hosts> {
    match Hosts::new() {
        Ok(hosts) => Some(hosts),
        Err(why) if std::env::var(REQUIRE_ENV).as_deref() == Ok("1") => {
            panic!("{test} needs its test hosts and {REQUIRE_ENV}=1 requires them: {why}")
        }
        Err(why) => {
            eprintln!("skipped {test}: {why}");
            None
        }
    }
}

fn run(command: &mut Command) -> Result<(), String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|err| format!("{command:?}: {err}"))?;
    match output.status.success() {
        true => Ok(()),
        false => Err(format!(
            "{command:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )),
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    run(Command::new("ip").args(args))
}

impl Hosts {
    /// Makes the hosts and starts their sshds.
    pub fn new() -> Result<Hosts, String> {
        if !rustix::process::geteuid().is_root() {
            return Err("the test hosts (network namespaces) need root".into());
        }
        for (tool, path) in [("ip", "/usr/sbin/ip"), ("sshd", SSHD)] {
            if !Path::new(path).exists() && !Path::new(&format!("/usr/bin/{tool}")).exists() {
                return Err(format!("{tool} is not installed ({path})"));
            }
        }
        static MADE: AtomicU32 = AtomicU32::new(0);
        let prefix = format!(
            "tr{}x{}",
            std::process::id(),
            MADE.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(format!("tractor-hosts-{prefix}"));
        let host = |name: &str, n: u8| Host {
            netns: format!("{prefix}{name}"),
            ip: format!("10.20.0.{n}"),
        };
        let mut hosts = Hosts {
            a: host("a", 1),
            b: host("b", 2),
            c: host("c", 3),
            switch: format!("{prefix}sw"),
            dir,
            sshds: Vec::new(),
        };
        // Whatever fails from here, dropping `hosts` undoes what was made.
        hosts.build()?;
        Ok(hosts)
    }

    fn build(&mut self) -> Result<(), String> {
        std::fs::create_dir_all(&self.dir).map_err(|err| err.to_string())?;
        std::fs::create_dir_all("/run/sshd").map_err(|err| err.to_string())?;
        let sw = self.switch.clone();
        ip(&["netns", "add", &sw])?;
        ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &sw, "link", "set", "br0", "up"])?;
        for (host, port) in [(&self.a, "pa"), (&self.b, "pb"), (&self.c, "pc")] {
            let ns = host.netns.as_str();
            ip(&["netns", "add", ns])?;
            ip(&[
                "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", port, "netns",
                &sw,
            ])?;
            ip(&["-n", &sw, "link", "set", port, "master", "br0", "up"])?;
            let cidr = format!("{}/24", host.ip);
            ip(&["-n", ns, "addr", "add", &cidr, "dev", "eth0"])?;
            ip(&["-n", ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        let keygen = |file: &Path| {
            run(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(file))
        };
        let host_key = self.dir.join("host_key");
        let user_key = self.dir.join("id");
        keygen(&host_key)?;
        keygen(&user_key)?;
        let read = |path: PathBuf| std::fs::read_to_string(path).map_err(|err| err.to_string());
        let host_pub = read(self.dir.join("host_key.pub"))?;
        let write = |name: &str, text: String| {
            std::fs::write(self.dir.join(name), text).map_err(|err| err.to_string())
        };
        write("authorized_keys", read(self.dir.join("id.pub"))?)?;
        write(
            "known_hosts",
            [&self.a, &self.b, &self.c]
                .iter()
                .map(|host| format!("{} {host_pub}", host.ip))
                .collect(),
        )?;
        write(
            "ssh_config",
            format!(
                "Host *\n  IdentityFile {}\n  IdentitiesOnly yes\n  UserKnownHostsFile {}\n  \
                 StrictHostKeyChecking yes\n  BatchMode yes\n  ConnectTimeout 5\n  LogLevel \
                 ERROR\n",
                user_key.display(),
                self.dir.join("known_hosts").display()
            ),
        )?;
        for host in [self.b.clone(), self.c.clone()] {
            let config = self.dir.join(format!("sshd_{}", host.netns));
            write(
                config.file_name().unwrap().to_str().unwrap(),
                format!(
                    "ListenAddress {}:22\nHostKey {}\nAuthorizedKeysFile {}\nPermitRootLogin \
                     prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication \
                     no\nUsePAM no\nStrictModes no\nPidFile none\nLogLevel ERROR\n",
                    host.ip,
                    host_key.display(),
                    self.dir.join("authorized_keys").display()
                ),
            )?;
            let sshd = Command::new("ip")
                .args(["netns", "exec", &host.netns, SSHD, "-D", "-e", "-f"])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .map_err(|err| format!("starting sshd: {err}"))?;
            self.sshds.push(sshd);
        }
        for host in [self.b.clone(), self.c.clone()] {
            self.wait_for_sshd(&host)?;
        }
        Ok(())
    }

    /// Waits until `host`'s sshd answers a command (it has no readiness
    /// signal of its own).
    fn wait_for_sshd(&self, host: &Host) -> Result<(), String> {
        let started = std::time::Instant::now();
        loop {
            let answered = self
                .command_in(&self.a, "ssh")
                .args(["-F"])
                .arg(self.dir.join("ssh_config"))
                .args([&format!("root@{}", host.ip), "true"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success());
            if answered {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(10) {
                return Err(format!(
                    "the sshd on {} did not answer within 10 s",
                    host.ip
                ));
            }
            // Polled: sshd says nothing when it starts listening.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The command that runs `program` on `host`.
    pub fn command_in(&self, host: &Host, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &host.netns]).arg(program);
        command
    }

    /// The value for `TRACTOR_SSH_COMMAND` that reaches the hosts with
    /// the test's key.
    pub fn ssh_command(&self) -> String {
        format!("ssh -F {}", self.dir.join("ssh_config").display())
    }

    /// Every process in `host`'s namespace, its sshd included.
    pub fn pids_in(&self, host: &Host) -> Vec<u32> {
        pids_in(&host.netns)
    }

    /// The pids of the sshds (and the `ip netns exec` that became them).
    pub fn sshd_pids(&self) -> Vec<u32> {
        self.sshds.iter().map(|sshd| sshd.id()).collect()
    }

    /// Every process in `host`'s namespace but its sshd.
    pub fn actors_in(&self, host: &Host) -> Vec<u32> {
        let sshds = self.sshd_pids();
        self.pids_in(host)
            .into_iter()
            .filter(|pid| !sshds.contains(pid))
            .collect()
    }

    /// Cuts `host` off the network (its link down), or joins it again.
    pub fn set_link(&self, host: &Host, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&["-n", &host.netns, "link", "set", "eth0", state]).unwrap();
    }
}

fn pids_in(netns: &str) -> Vec<u32> {
    let Ok(output) = Command::new("ip").args(["netns", "pids", netns]).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .filter_map(|pid| pid.parse().ok())
        .collect()
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for sshd in &mut self.sshds {
            let _ = sshd.kill();
            let _ = sshd.wait();
        }
        let all = [&self.a.netns, &self.b.netns, &self.c.netns, &self.switch];
        for netns in all {
            let pids = pids_in(netns);
            for &pid in &pids {
                crate::kill(pid);
            }
            // No panic in a drop: a test that failed is failing already.
            for pid in pids {
                crate::exits_within_blocking(pid, Duration::from_secs(5));
            }
            let _ = ip(&["netns", "del", netns]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
