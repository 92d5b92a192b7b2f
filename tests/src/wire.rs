//! tractor's wire format, written from its documentation alone (as a third
//! party would write it), and a driver for the `sink` program: what the
//! hostile-input and backpressure tests attack a live actor with.

use std::io::{BufRead, BufReader, Lines, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{is_alive, private_registrar};

/// The secret of the tree under attack.
pub const SECRET: &str = "the secret of the hostile-input test tree";
/// The largest frame tractor accepts.
pub const MAX_FRAME: u32 = 64 * 1024 * 1024;
/// The protocol version spoken in the opening.
pub const PROTOCOL: u32 = 6;

/// An actor's identity.
#[derive(Debug, Serialize, Deserialize)]
pub struct ActorUid {
    pub name: Arc<str>,
    pub uuid: uuid::Uuid,
}

/// Who is on the other end of a channel.
#[derive(Debug, Serialize, Deserialize)]
pub struct Handshake {
    pub uid: ActorUid,
    pub addr: Option<String>,
    pub pid: u32,
    pub to: Option<uuid::Uuid>,
    pub register: bool,
}

/// An introduction and the proof that covers it.
#[derive(Debug, Serialize, Deserialize)]
pub struct Proven {
    pub peer: Handshake,
    pub proof: [u8; 32],
}

/// Why an acceptor refused.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    BadProof,
    Itself,
    NotMeant,
    UidInUse,
    NotExpected,
    NotRegistrar,
}

/// The frames of the opening exchange.
#[derive(Debug, Serialize, Deserialize)]
pub enum Opening {
    Hello {
        magic: [u8; 8],
        protocol: u32,
        nonce: [u8; 32],
        early: Option<Box<Proven>>,
    },
    Challenge {
        nonce: [u8; 32],
    },
    Proof(Box<Proven>),
    Welcome(Box<Proven>),
    Refused(Refusal),
}

/// The envelope of every frame after the opening.
#[derive(Debug, Serialize, Deserialize)]
pub enum Msg<'a> {
    Call {
        id: u64,
        func: &'a str,
        timeout_ms: Option<u32>,
    },
    OpenStream {
        id: u64,
        func: &'a str,
        window: u32,
        window_bytes: u32,
    },
    OpenContext {
        id: u64,
        func: &'a str,
        window: u32,
        window_bytes: u32,
    },
    Return {
        id: u64,
    },
    Started {
        id: u64,
        window: u32,
        window_bytes: u32,
    },
    Yield {
        id: u64,
        n: u32,
    },
    Push {
        id: u64,
        n: u32,
    },
    Stop {
        id: u64,
        hangup: bool,
    },
    PushEnd {
        id: u64,
        hangup: bool,
    },
    Credit {
        id: u64,
        n: u32,
        bytes: u32,
    },
    PushCredit {
        id: u64,
        n: u32,
        bytes: u32,
    },
    Error {
        id: u64,
    },
    Cancel {
        id: u64,
    },
    CancelActor {
        id: u64,
        grace_ms: u32,
    },
    Leave {
        id: u64,
    },
    Heartbeat,
}

/// First bytes no [`Msg`] starts with: postcard writes the variant as a
/// varint, so a byte below 0x80 is the whole tag, and `Msg` has 16 variants.
pub const UNKNOWN_MSG_TAGS: std::ops::Range<u8> = 16..0x80;

/// `body` with its length prefix.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut frame = (body.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(body);
    frame
}

/// A frame holding `value` followed by `payload`.
pub fn message<T: Serialize>(value: &T, payload: &[u8]) -> Vec<u8> {
    let mut body = postcard::to_allocvec(value).unwrap();
    body.extend_from_slice(payload);
    frame(&body)
}

/// The running hash of an opening: each part length-prefixed (u64 LE).
#[derive(Clone)]
pub struct Transcript(Sha256);

impl Transcript {
    /// A transcript over a connection without TLS.
    pub fn new() -> Self {
        let mut transcript = Transcript(Sha256::new());
        transcript.absorb(b"tractor opening 4");
        transcript.absorb(b"");
        transcript
    }

    pub fn absorb(&mut self, part: &[u8]) {
        self.0.update((part.len() as u64).to_le_bytes());
        self.0.update(part);
    }

    /// The hash with `last` added.
    pub fn with(&self, last: &[u8]) -> [u8; 32] {
        let mut transcript = self.clone();
        transcript.absorb(last);
        transcript.0.finalize().into()
    }
}

impl Default for Transcript {
    fn default() -> Self {
        Transcript::new()
    }
}

/// A proof: HMAC-SHA256(key, role | transcript hash).
pub fn mac(key: &[u8], role: &[u8], transcript: &[u8; 32]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    mac.update(role);
    mac.update(transcript);
    mac.finalize().into_bytes().into()
}

/// The next frame's body, or `None` at end of stream.
pub fn read_frame(stream: &mut UnixStream) -> Option<Vec<u8>> {
    let mut len = [0; 4];
    stream.read_exact(&mut len).ok()?;
    let mut body = vec![0; u32::from_le_bytes(len) as usize];
    stream.read_exact(&mut body).ok()?;
    Some(body)
}

/// Whether the victim closed `stream`: reading reaches end of stream or
/// the connection is reset within 5 s (whatever it sent first is skipped).
/// A read that times out is not a close: it is `false`.
pub fn closed_by_peer(stream: &mut UnixStream) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut chunk = [0; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut chunk) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(err) => match err.kind() {
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted => {
                    return true;
                }
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => return false,
                std::io::ErrorKind::Interrupted => continue,
                other => panic!("reading from the victim failed oddly: {other:?} ({err})"),
            },
        }
    }
}

/// `VmData` of process `pid` in KiB: its private writable memory, which
/// counts what was allocated even if never touched.
pub fn vm_data_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmData:"))
        .and_then(|kb| kb.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

/// The `sink` program: a tree whose daemon `victim` is attacked.
pub struct Sink {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    /// The victim's socket.
    pub victim: PathBuf,
    /// The victim's pid.
    pub pid: u32,
    /// The root's (the registrar's) socket.
    pub registrar: PathBuf,
    /// The root's pid.
    pub root_pid: u32,
    pings: u64,
}

impl Sink {
    /// Starts the program and reads where its actors are.
    pub fn start(binary: &str) -> Sink {
        let mut child = Command::new(binary)
            .env("TRACTOR_REGISTRAR", private_registrar())
            .env(tractor::SECRET_ENV, SECRET)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = lines.next().unwrap().unwrap();
        let mut words = line.split(' ').skip(1);
        let victim = PathBuf::from(words.next().unwrap());
        let pid = words.next().unwrap().parse().unwrap();
        let line = lines.next().unwrap().unwrap();
        let mut words = line.split(' ').skip(1);
        let root_pid = words.next().unwrap().parse().unwrap();
        let registrar = PathBuf::from(words.next().unwrap());
        Sink {
            child,
            stdin,
            lines,
            victim,
            pid,
            registrar,
            root_pid,
            pings: 0,
        }
    }

    /// The victim still answers its tree.
    pub fn still_serving(&mut self) {
        writeln!(self.stdin, "ping").unwrap();
        let line = self.lines.next().unwrap().unwrap();
        assert_eq!(line, format!("pong {}", self.pings));
        self.pings += 1;
        assert!(is_alive(self.pid));
    }

    /// Sends a command line to the program.
    pub fn command(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
    }

    /// The program's next line of output.
    pub fn line(&mut self) -> String {
        self.lines.next().unwrap().unwrap()
    }

    /// A fresh connection to the victim.
    pub fn connect(&self) -> UnixStream {
        UnixStream::connect(&self.victim).unwrap()
    }

    /// A connection to the victim that passed the opening with `key`.
    pub fn authenticated(&self, key: &[u8]) -> UnixStream {
        authenticate(self.connect(), key, "mallory", false)
    }

    /// Ends the program's input and checks it stops cleanly.
    pub fn finish(mut self) {
        drop(self.stdin);
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status}");
        drop(self.lines);
    }
}

/// Passes the opening over `stream` with `key` as actor `name`, asking to
/// be registered if `register`.
pub fn authenticate(mut stream: UnixStream, key: &[u8], name: &str, register: bool) -> UnixStream {
    let me = Handshake {
        uid: ActorUid {
            name: name.into(),
            uuid: uuid::Uuid::new_v4(),
        },
        addr: None,
        pid: std::process::id(),
        to: None,
        register,
    };
    match open(&mut stream, key, &me) {
        Ok(_) => stream,
        Err(refusal) => panic!("the victim refused the opening: {refusal:?}"),
    }
}

/// Sends a hello with `nonce` and reads the challenge (which proves
/// nothing); the transcript so far.
pub fn hello_and_challenge(stream: &mut UnixStream, nonce: [u8; 32]) -> Transcript {
    let mut transcript = Transcript::new();
    let hello = postcard::to_allocvec(&Opening::Hello {
        magic: *b"tractor\0",
        protocol: PROTOCOL,
        nonce,
        early: None,
    })
    .unwrap();
    stream.write_all(&frame(&hello)).unwrap();
    transcript.absorb(&hello);
    let challenge = read_frame(stream).unwrap();
    transcript.absorb(&challenge);
    let Opening::Challenge { .. } = postcard::from_bytes(&challenge).unwrap() else {
        panic!("expected a challenge");
    };
    transcript
}

/// Runs the dialer's side of the opening as `me`: the acceptor's
/// introduction, or its refusal.
pub fn open(stream: &mut UnixStream, key: &[u8], me: &Handshake) -> Result<Handshake, Refusal> {
    let mut transcript = hello_and_challenge(stream, [7u8; 32]);
    let introduction = postcard::to_allocvec(me).unwrap();
    let proof = Opening::Proof(Box::new(Proven {
        peer: postcard::from_bytes(&introduction).unwrap(),
        proof: mac(key, b"tractor/dial", &transcript.with(&introduction)),
    }));
    let proof = postcard::to_allocvec(&proof).unwrap();
    stream.write_all(&frame(&proof)).unwrap();
    transcript.absorb(&proof);
    match postcard::from_bytes(&read_frame(stream).unwrap()).unwrap() {
        Opening::Welcome(welcome) => {
            let theirs = postcard::to_allocvec(&welcome.peer).unwrap();
            assert_eq!(
                welcome.proof,
                mac(key, b"tractor/accept", &transcript.with(&theirs)),
                "the victim proves the secret over this opening"
            );
            Ok(welcome.peer)
        }
        Opening::Refused(refusal) => Err(refusal),
        _ => panic!("expected a welcome or a refusal"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_msg_tags_start_past_the_last_variant() {
        let last = postcard::to_allocvec(&Msg::Heartbeat).unwrap();
        assert_eq!(last[0] + 1, UNKNOWN_MSG_TAGS.start);
        for tag in [UNKNOWN_MSG_TAGS.start, UNKNOWN_MSG_TAGS.end - 1] {
            assert!(postcard::from_bytes::<Msg<'_>>(&[tag, 0, 0, 0]).is_err());
        }
    }
}
