//! Placing a child on another host through OpenSSH.
//!
//! Starting a process elsewhere is a solved problem with its own keys,
//! config, agents, jump hosts and audit trail; the user's `ssh` client
//! already has all of it, so tractor runs it (as Erlang's `peer` does)
//! rather than a daemon of its own. The local `ssh` process stands for the
//! child: killing it ends the session, and with it the remote process
//! (which asked to die with the session's process there); its exit
//! status is the remote process's.
//!
//! The remote command names only the program, its arguments and which
//! descriptor the spec is on; the spec itself (with the tree's secret and
//! the transport settings) goes over the session's standard input, never
//! argv or the remote environment. The child then connects back to its
//! parent over TCP like any actor on another host.
//!
//! [`Launcher`] is the seam for other engines (a container scheduler, a
//! batch system): anything that can start a program somewhere with bytes
//! on its standard input and hand back a local process standing for it.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::spec::SPEC_FD_ENV;
use super::{SpawnSpec, Spawning};

/// The environment variable holding the command that runs `ssh` (like
/// git's `GIT_SSH_COMMAND`): run by `sh`, with the destination and remote
/// command appended. Default: `ssh`.
pub const SSH_COMMAND_ENV: &str = "TRACTOR_SSH_COMMAND";

/// Something that starts a child actor's process on another host.
pub(crate) trait Launcher: Send + Sync {
    /// Starts `program` on the launcher's host with `spec` on its standard
    /// input (read to its end, see `spec`).
    fn launch(&self, program: &std::path::Path, args: &[String], spec: &SpawnSpec) -> Spawning;
}

/// Where an `ssh://[user@]host[:port]` URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SshTarget {
    pub(crate) user: Option<String>,
    /// A name or an address (IPv6 without its brackets).
    pub(crate) host: String,
    pub(crate) port: Option<u16>,
}

impl SshTarget {
    /// Parses a placement URL; the error says what is wrong with it.
    pub(crate) fn parse(url: &str) -> Result<SshTarget, String> {
        let bad = |why: &str| format!("bad host {url:?}: {why}; use ssh://[user@]host[:port]");
        let rest = url
            .strip_prefix("ssh://")
            .ok_or_else(|| bad("only ssh:// is supported"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') {
            return Err(bad("a path has no meaning here (see .program(..))"));
        }
        let (user, hostport) = match rest.rsplit_once('@') {
            Some((user, hostport)) => (Some(user), hostport),
            None => (None, rest),
        };
        if let Some(user) = user
            && (user.is_empty()
                || user.starts_with('-')
                || !user
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)))
        {
            return Err(bad("the user name is empty or not a plain name"));
        }
        let (host, port) = match hostport.strip_prefix('[') {
            Some(bracketed) => {
                let (host, after) = bracketed
                    .split_once(']')
                    .ok_or_else(|| bad("an IPv6 address lacks its ']'"))?;
                match after {
                    "" => (host, None),
                    _ => (
                        host,
                        Some(
                            after
                                .strip_prefix(':')
                                .ok_or_else(|| bad("junk after the IPv6 address"))?,
                        ),
                    ),
                }
            }
            None => match hostport.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (hostport, None),
            },
        };
        if host.is_empty()
            || host.starts_with('-')
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-_:".contains(c))
        {
            return Err(bad("the host is empty or not a host name or address"));
        }
        let port = match port {
            None => None,
            Some(port) => match port.parse::<u16>() {
                Ok(port) if port > 0 => Some(port),
                _ => return Err(bad("the port is not a number from 1 to 65535")),
            },
        };
        Ok(SshTarget {
            user: user.map(str::to_owned),
            host: host.to_owned(),
            port,
        })
    }
}

/// The OpenSSH launcher.
pub(crate) struct Ssh {
    pub(crate) target: SshTarget,
}

impl Launcher for Ssh {
    fn launch(&self, program: &std::path::Path, args: &[String], spec: &SpawnSpec) -> Spawning {
        let command = self.command(program, args);
        let started = command.and_then(|mut command| {
            command.stdin(Stdio::from(spec.to_memfd()?));
            Ok(super::exec::start(command, None, false))
        });
        Box::pin(async move { Ok(started?.await?.into_started()) })
    }
}

impl Ssh {
    /// The local `ssh` command that starts `program` there.
    fn command(&self, program: &std::path::Path, args: &[String]) -> std::io::Result<Command> {
        let program = program.to_str().ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("the program path {program:?} is not UTF-8"),
            )
        })?;
        // The remote side runs this through the user's shell: every word
        // is quoted, and `exec` leaves the actor a child of the session,
        // which it dies with.
        let mut remote = format!("exec env {SPEC_FD_ENV}=0 {}", quote(program)?);
        for arg in args {
            remote.push(' ');
            remote.push_str(&quote(arg)?);
        }
        let mut ssh_args: Vec<String> = vec![
            // Never a prompt: a spawn cannot answer one.
            "-o".into(),
            "BatchMode=yes".into(),
            "-T".into(),
        ];
        if let Some(user) = &self.target.user {
            ssh_args.extend(["-l".into(), user.clone()]);
        }
        if let Some(port) = self.target.port {
            ssh_args.extend(["-p".into(), port.to_string()]);
        }
        ssh_args.extend(["--".into(), self.target.host.clone(), remote]);
        let mut command = match std::env::var(SSH_COMMAND_ENV) {
            Ok(custom) if !custom.trim().is_empty() => {
                let mut command = Command::new("sh");
                command
                    .arg("-c")
                    .arg(format!("exec {custom} \"$@\""))
                    .arg("tractor-ssh");
                command
            }
            _ => Command::new("ssh"),
        };
        command.args(ssh_args).process_group(0);
        // The session ends with this actor, even if it is killed: `ssh`
        // dies with the thread that started it, which never exits (see
        // `exec`).
        // SAFETY: one system call, async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::KILL,
                ))
                .map_err(std::io::Error::from)
            });
        }
        Ok(command)
    }
}

/// `word` quoted for a POSIX shell.
fn quote(word: &str) -> std::io::Result<String> {
    shlex::try_quote(word)
        .map(|quoted| quoted.into_owned())
        .map_err(|err| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{word:?} cannot be passed to a remote shell: {err}"),
            )
        })
}

/// The program a child on another host runs: `program`, else this one's
/// path (which must then exist there).
pub(crate) fn program_for(program: Option<&PathBuf>) -> std::io::Result<PathBuf> {
    match program {
        Some(program) => Ok(program.clone()),
        None => std::env::current_exe(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_urls_parse_and_bad_ones_say_why() {
        let target = SshTarget::parse("ssh://deploy@10.20.0.2:2222").unwrap();
        assert_eq!(target.user.as_deref(), Some("deploy"));
        assert_eq!(target.host, "10.20.0.2");
        assert_eq!(target.port, Some(2222));
        let target = SshTarget::parse("ssh://[fd00::2]:22/").unwrap();
        assert_eq!((target.host.as_str(), target.port), ("fd00::2", Some(22)));
        let target = SshTarget::parse("ssh://worker-3.lan").unwrap();
        assert_eq!((target.user, target.port), (None, None));
        for (bad, why) in [
            ("worker", "only ssh://"),
            ("tcp://worker", "only ssh://"),
            ("ssh://", "host is empty"),
            ("ssh://-oProxyCommand=x", "host is empty or not"),
            ("ssh://-l@host", "user name"),
            ("ssh://a b", "not a host"),
            ("ssh://h;rm", "not a host"),
            ("ssh://host:0", "port"),
            ("ssh://host:99999", "port"),
            ("ssh://host/bin/x", "path"),
        ] {
            let err = SshTarget::parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn the_remote_command_quotes_every_word() {
        let ssh = Ssh {
            target: SshTarget::parse("ssh://u@h:2").unwrap(),
        };
        let command = ssh
            .command(std::path::Path::new("/opt/my app/bin"), &["a'b".into()])
            .unwrap();
        let args: Vec<_> = command.get_args().map(|a| a.to_str().unwrap()).collect();
        let remote = shlex::split(args.last().unwrap()).unwrap();
        let spec_fd = format!("{SPEC_FD_ENV}=0");
        assert_eq!(remote, ["exec", "env", &spec_fd, "/opt/my app/bin", "a'b"]);
        assert!(args.contains(&"BatchMode=yes"), "{args:?}");
        let at = args.iter().position(|a| *a == "--").unwrap();
        assert_eq!(args[at + 1], "h");
    }
}
