//! Hostile input at a live actor: garbage, truncated and oversized frames,
//! wrong secrets, and well-formed but wrong messages from a peer that does
//! know the secret. The actor must drop the offending connection, keep
//! serving its tree, and never allocate on a peer's word.
//!
//! The attacker here is written from the wire format alone (the types
//! below mirror tractor's envelope), as a third party would write it.

use std::io::{BufRead, BufReader, Lines, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tractor_tests::{free_addr, is_alive};

const SECRET: &str = "the secret of the hostile-input test tree";
const MAX_FRAME: u32 = 64 * 1024 * 1024;

// --- the wire format, as documented in tractor's ipc modules --------------

#[derive(Serialize, Deserialize)]
struct ActorUid {
    name: Arc<str>,
    uuid: uuid::Uuid,
}

#[derive(Serialize, Deserialize)]
struct Handshake {
    uid: ActorUid,
    addr: Option<String>,
    local: Option<String>,
    pid: u32,
    register: bool,
}

#[derive(Serialize, Deserialize)]
struct Early {
    proof: [u8; 32],
    peer: Handshake,
}

#[derive(Serialize, Deserialize)]
enum Opening {
    Hello {
        magic: [u8; 8],
        protocol: u32,
        nonce: [u8; 32],
        early: Option<Box<Early>>,
    },
    Challenge {
        nonce: [u8; 32],
        proof: [u8; 32],
    },
    Proof {
        proof: [u8; 32],
        peer: Box<Handshake>,
    },
    Welcome(Box<Handshake>),
    Accepted {
        proof: [u8; 32],
        peer: Box<Handshake>,
    },
}

#[derive(Serialize, Deserialize)]
enum Msg<'a> {
    Call { id: u64, func: &'a str },
    OpenStream { id: u64, func: &'a str, window: u32 },
    Return { id: u64 },
    Yield { id: u64 },
    Stop { id: u64 },
    Credit { id: u64, n: u32 },
    Error { id: u64 },
    Cancel { id: u64 },
    CancelActor { id: u64, grace_ms: u32 },
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut frame = (body.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(body);
    frame
}

fn message<T: Serialize>(value: &T, payload: &[u8]) -> Vec<u8> {
    let mut body = postcard::to_allocvec(value).unwrap();
    body.extend_from_slice(payload);
    frame(&body)
}

fn mac(key: &[u8], role: &[u8], first: &[u8; 32], second: &[u8; 32]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    mac.update(role);
    mac.update(first);
    mac.update(second);
    mac.finalize().into_bytes().into()
}

fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0; 4];
    stream.read_exact(&mut len).ok()?;
    let mut body = vec![0; u32::from_le_bytes(len) as usize];
    stream.read_exact(&mut body).ok()?;
    Some(body)
}

/// Whether the victim closed `stream` (reads EOF or an error).
fn closed_by_peer(stream: &mut TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut byte = [0; 1];
    matches!(stream.read(&mut byte), Ok(0) | Err(_))
}

// --- the tree under attack --------------------------------------------------

struct Sink {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    victim: String,
    pid: u32,
    pings: u64,
}

impl Sink {
    fn start() -> Sink {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sink"))
            .env("TRACTOR_REGISTRAR", free_addr())
            .env(tractor::SECRET_ENV, SECRET)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = lines.next().unwrap().unwrap();
        let mut words = line.split(' ').skip(1);
        let victim = words.next().unwrap().to_owned();
        let pid = words.next().unwrap().parse().unwrap();
        Sink {
            child,
            stdin,
            lines,
            victim,
            pid,
            pings: 0,
        }
    }

    /// The victim still answers its tree.
    fn still_serving(&mut self) {
        writeln!(self.stdin, "ping").unwrap();
        let line = self.lines.next().unwrap().unwrap();
        assert_eq!(line, format!("pong {}", self.pings));
        self.pings += 1;
        assert!(is_alive(self.pid));
    }

    fn connect(&self) -> TcpStream {
        TcpStream::connect(&self.victim).unwrap()
    }

    /// A connection that passed the opening exchange with `key`.
    fn authenticated(&self, key: &[u8]) -> TcpStream {
        let mut stream = self.connect();
        let ours = [7u8; 32];
        let hello = Opening::Hello {
            magic: *b"tractor\0",
            protocol: 2,
            nonce: ours,
            early: None,
        };
        stream.write_all(&message(&hello, &[])).unwrap();
        let challenge: Opening = postcard::from_bytes(&read_frame(&mut stream).unwrap()).unwrap();
        let Opening::Challenge { nonce, proof } = challenge else {
            panic!("expected a challenge");
        };
        assert_eq!(
            proof,
            mac(key, b"tractor/accept", &ours, &nonce),
            "the victim proves the secret"
        );
        let me = Handshake {
            uid: ActorUid {
                name: "mallory".into(),
                uuid: uuid::Uuid::new_v4(),
            },
            addr: None,
            local: None,
            pid: std::process::id(),
            register: false,
        };
        let proof = Opening::Proof {
            proof: mac(key, b"tractor/dial", &nonce, &ours),
            peer: Box::new(me),
        };
        stream.write_all(&message(&proof, &[])).unwrap();
        let welcome: Opening = postcard::from_bytes(&read_frame(&mut stream).unwrap()).unwrap();
        assert!(matches!(welcome, Opening::Welcome(_)));
        stream
    }

    fn finish(mut self) {
        drop(self.stdin);
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status}");
        drop(self.lines);
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kb| kb.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn hostile_input_is_dropped_and_the_actor_keeps_serving() {
    let mut sink = Sink::start();
    sink.still_serving();
    let mut tried = 0;

    // Before the opening exchange: anything but a proper hello.
    let attacks: Vec<Vec<u8>> = vec![
        (0..4096).map(|_| fastrand::u8(..)).collect(),
        u32::MAX.to_le_bytes().to_vec(),
        frame(&[1, 2, 3])[..5].to_vec(),
        message(
            &Opening::Hello {
                magic: *b"nottract",
                protocol: 2,
                nonce: [0; 32],
                early: None,
            },
            &[],
        ),
        message(
            &Opening::Hello {
                magic: *b"tractor\0",
                protocol: 999,
                nonce: [0; 32],
                early: None,
            },
            &[],
        ),
        // A child's early proof, from a child nobody is expecting.
        message(
            &Opening::Hello {
                magic: *b"tractor\0",
                protocol: 2,
                nonce: [3; 32],
                early: Some(Box::new(Early {
                    proof: [0; 32],
                    peer: Handshake {
                        uid: ActorUid {
                            name: "impostor".into(),
                            uuid: uuid::Uuid::new_v4(),
                        },
                        addr: None,
                        local: None,
                        pid: 1,
                        register: true,
                    },
                })),
            },
            &[],
        ),
        message(
            &Opening::Welcome(Box::new(Handshake {
                uid: ActorUid {
                    name: "x".into(),
                    uuid: uuid::Uuid::nil(),
                },
                addr: None,
                local: None,
                pid: 1,
                register: true,
            })),
            &[],
        ),
    ];
    for attack in attacks {
        let mut stream = sink.connect();
        let _ = stream.write_all(&attack);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        assert!(closed_by_peer(&mut stream));
        sink.still_serving();
        tried += 1;
    }

    // A wrong secret: the victim's proof does not check out for us, and
    // ours does not for it; it drops us before reading any command.
    {
        let mut stream = sink.connect();
        let hello = Opening::Hello {
            magic: *b"tractor\0",
            protocol: 2,
            nonce: [1; 32],
            early: None,
        };
        stream.write_all(&message(&hello, &[])).unwrap();
        let Opening::Challenge { nonce, proof } =
            postcard::from_bytes(&read_frame(&mut stream).unwrap()).unwrap()
        else {
            panic!("expected a challenge");
        };
        assert_ne!(
            proof,
            mac(
                b"a guess at the secret",
                b"tractor/accept",
                &[1; 32],
                &nonce
            )
        );
        let forged = Opening::Proof {
            proof: mac(b"a guess at the secret", b"tractor/dial", &nonce, &[1; 32]),
            peer: Box::new(Handshake {
                uid: ActorUid {
                    name: "mallory".into(),
                    uuid: uuid::Uuid::new_v4(),
                },
                addr: None,
                local: None,
                pid: 1,
                register: false,
            }),
        };
        let mut attack = message(&forged, &[]);
        // A command right behind the forged proof must never run.
        attack.extend(message(&Msg::CancelActor { id: 1, grace_ms: 0 }, &[]));
        stream.write_all(&attack).unwrap();
        assert!(closed_by_peer(&mut stream));
        sink.still_serving();
        tried += 1;
    }

    // Past the opening: a peer that knows the secret and misbehaves.
    let before = rss_kib(sink.pid);
    {
        // Declares the largest frame allowed and sends none of it: nothing
        // is allocated for it.
        let mut stream = sink.authenticated(SECRET.as_bytes());
        stream.write_all(&MAX_FRAME.to_le_bytes()).unwrap();
        sink.still_serving();
        let grown = rss_kib(sink.pid).saturating_sub(before);
        assert!(
            grown < 8 * 1024,
            "the victim grew by {grown} KiB on a peer's word"
        );
        tried += 1;
    }
    let wrong: Vec<Vec<u8>> = vec![
        (MAX_FRAME + 1).to_le_bytes().to_vec(),
        frame(&(0..200).map(|_| fastrand::u8(..)).collect::<Vec<_>>()),
        frame(&[]),
        message(&Msg::Error { id: 3 }, &[0xff; 16]),
        message(&Msg::Error { id: 3 }, &[1, 1, 0]),
    ];
    for attack in wrong {
        let mut stream = sink.authenticated(SECRET.as_bytes());
        stream.write_all(&attack).unwrap();
        assert!(
            closed_by_peer(&mut stream),
            "a malformed frame ends the channel"
        );
        sink.still_serving();
        tried += 1;
    }
    // Well-formed but meaningless: answered or ignored, the channel lives.
    {
        let mut stream = sink.authenticated(SECRET.as_bytes());
        let harmless = [
            message(&Msg::Return { id: 999 }, &[1, 2, 3]),
            message(&Msg::Yield { id: 5 }, &[1]),
            message(&Msg::Stop { id: 5 }, &[]),
            message(&Msg::Credit { id: 6, n: u32::MAX }, &[]),
            message(&Msg::Credit { id: 6, n: u32::MAX }, &[]),
            message(&Msg::Cancel { id: 77 }, &[]),
        ];
        for attack in &harmless {
            stream.write_all(attack).unwrap();
            tried += 1;
        }
        // Calls with unknown names, or arguments that do not decode, get
        // error answers on the same channel.
        let calls = [
            message(
                &Msg::Call {
                    id: 10,
                    func: "nowhere::nothing",
                },
                &[],
            ),
            message(
                &Msg::Call {
                    id: 11,
                    func: "sink::echo",
                },
                &[0xff, 0xff],
            ),
            message(
                &Msg::OpenStream {
                    id: 12,
                    func: "sink::echo",
                    window: 1,
                },
                &[0],
            ),
        ];
        for call in &calls {
            stream.write_all(call).unwrap();
            let answer = read_frame(&mut stream).expect("an answer, not a closed channel");
            let (msg, _): (Msg<'_>, &[u8]) = postcard::take_from_bytes(&answer).unwrap();
            assert!(matches!(msg, Msg::Error { .. }), "an error answer");
            tried += 1;
        }
        sink.still_serving();
    }
    println!("malformed inputs tried: {tried}");
    assert!(tried >= 20);
    sink.finish();
}
