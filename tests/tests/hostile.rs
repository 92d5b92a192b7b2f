//! Hostile input at a live actor: garbage, truncated and oversized frames,
//! wrong secrets, and well-formed but wrong messages from a peer that does
//! know the secret. The actor must drop the offending connection, keep
//! serving its tree, and never allocate on a peer's word.
//!
//! The attacker is written from the wire format alone (`tractor_tests::wire`
//! mirrors tractor's envelope), as a third party would write it.

use std::io::Write;

use tractor_tests::wire::{
    ActorUid, Handshake, MAX_FRAME, Msg, Opening, PROTOCOL, Proven, Refusal, SECRET, Sink,
    UNKNOWN_MSG_TAGS, closed_by_peer, frame, hello_and_challenge, mac, message, open, read_frame,
    vm_data_kib,
};

#[test]
fn hostile_input_is_dropped_and_the_actor_keeps_serving() {
    let mut sink = Sink::start(env!("CARGO_BIN_EXE_sink"));
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
                protocol: PROTOCOL,
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
                protocol: PROTOCOL,
                nonce: [3; 32],
                early: Some(Box::new(Proven {
                    proof: [0; 32],
                    peer: introduction("impostor", uuid::Uuid::new_v4(), None, true),
                })),
            },
            &[],
        ),
        message(
            &Opening::Welcome(Box::new(Proven {
                proof: [0; 32],
                peer: introduction("x", uuid::Uuid::nil(), None, true),
            })),
            &[],
        ),
    ];
    for (index, attack) in attacks.iter().enumerate() {
        let mut stream = sink.connect();
        let _ = stream.write_all(attack);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        assert!(
            closed_by_peer(&mut stream),
            "the victim closes on attack {index}"
        );
        sink.still_serving();
        tried += 1;
    }

    // A wrong secret. The victim challenges without proving anything (a
    // stranger gets nothing to test guesses against), refuses the proof,
    // and never reads the command behind it.
    {
        let mut stream = sink.connect();
        let transcript = hello_and_challenge(&mut stream, [1; 32]);
        let mallory = introduction("mallory", uuid::Uuid::new_v4(), None, false);
        let ours = postcard::to_allocvec(&mallory).unwrap();
        let forged = Opening::Proof(Box::new(Proven {
            proof: mac(
                b"a guess at the secret",
                b"tractor/dial",
                &transcript.with(&ours),
            ),
            peer: mallory,
        }));
        let mut attack = message(&forged, &[]);
        // A command right behind the forged proof must never run.
        attack.extend(message(&Msg::CancelActor { id: 1, grace_ms: 0 }, &[]));
        stream.write_all(&attack).unwrap();
        let answer: Opening = postcard::from_bytes(&read_frame(&mut stream).unwrap()).unwrap();
        assert!(
            matches!(answer, Opening::Refused(Refusal::BadProof)),
            "{answer:?}"
        );
        assert!(
            closed_by_peer(&mut stream),
            "a forged proof ends the connection"
        );
        sink.still_serving();
        tried += 1;
    }

    // A relay's move: a proof made over one introduction, sent with
    // another. The proof covers the introduction, so it does not check.
    {
        let mut stream = sink.connect();
        let transcript = hello_and_challenge(&mut stream, [2; 32]);
        let honest = introduction("root", uuid::Uuid::new_v4(), None, false);
        let proof = mac(
            SECRET.as_bytes(),
            b"tractor/dial",
            &transcript.with(&postcard::to_allocvec(&honest).unwrap()),
        );
        let swapped = Opening::Proof(Box::new(Proven {
            proof,
            peer: introduction("mallory", uuid::Uuid::new_v4(), None, true),
        }));
        stream.write_all(&message(&swapped, &[])).unwrap();
        let answer: Opening = postcard::from_bytes(&read_frame(&mut stream).unwrap()).unwrap();
        assert!(
            matches!(answer, Opening::Refused(Refusal::BadProof)),
            "{answer:?}"
        );
        sink.still_serving();
        tried += 1;
    }

    // Members of the tree get only what their role gives them.
    let victim_uuid: uuid::Uuid = sink
        .victim
        .file_stem()
        .and_then(|stem| stem.to_str())
        .and_then(|stem| stem.parse().ok())
        .expect("the victim's socket is named after its uuid");
    let refused = |socket: &std::path::Path, me: Handshake| {
        let mut stream = std::os::unix::net::UnixStream::connect(socket).unwrap();
        open(&mut stream, SECRET.as_bytes(), &me).expect_err("refused")
    };
    // The victim's uuid, claimed at its parent (which holds a channel to
    // it): refused, so no one takes a child's place.
    let claim = introduction("victim", victim_uuid, None, false);
    assert_eq!(refused(&sink.registrar, claim), Refusal::UidInUse);
    // An opening meant for another actor (delivered here by a relay).
    let elsewhere = introduction(
        "mallory",
        uuid::Uuid::new_v4(),
        Some(uuid::Uuid::new_v4()),
        false,
    );
    assert_eq!(refused(&sink.victim, elsewhere), Refusal::NotMeant);
    // The victim's own uuid, without meaning to reach itself.
    let itself = introduction("victim", victim_uuid, None, false);
    assert_eq!(refused(&sink.victim, itself), Refusal::Itself);
    // A registration at an actor that is not a registrar.
    let register = introduction("mallory", uuid::Uuid::new_v4(), None, true);
    assert_eq!(refused(&sink.victim, register), Refusal::NotRegistrar);
    sink.still_serving();
    // A member that is not the victim's parent cannot cancel it.
    {
        let mut stream = sink.authenticated(SECRET.as_bytes());
        stream
            .write_all(&message(&Msg::CancelActor { id: 5, grace_ms: 0 }, &[]))
            .unwrap();
        let answer = read_frame(&mut stream).expect("an answer to the cancel request");
        let (envelope, error): (Msg<'_>, &[u8]) = postcard::take_from_bytes(&answer).unwrap();
        assert!(matches!(envelope, Msg::Error { id: 5 }), "{envelope:?}");
        let error = String::from_utf8_lossy(error);
        assert!(error.contains("NotCancellable"), "{error}");
        assert!(error.contains("only by its parent"), "{error}");
        sink.still_serving();
        tried += 1;
    }

    // Past the opening: a peer that knows the secret and misbehaves.
    let before = vm_data_kib(sink.pid);
    {
        // Declares the largest frame allowed and sends none of it: nothing
        // is allocated for it.
        let mut stream = sink.authenticated(SECRET.as_bytes());
        stream.write_all(&MAX_FRAME.to_le_bytes()).unwrap();
        sink.still_serving();
        let grown = vm_data_kib(sink.pid).saturating_sub(before);
        assert!(
            grown < 8 * 1024,
            "the victim grew by {grown} KiB on a peer's word"
        );
        tried += 1;
    }
    let wrong: Vec<Vec<u8>> = vec![
        (MAX_FRAME + 1).to_le_bytes().to_vec(),
        // Random bytes behind a tag no message has: wholly random bytes
        // would now and then spell a well-formed message, which is answered
        // or ignored, not refused.
        frame(
            &std::iter::once(fastrand::u8(UNKNOWN_MSG_TAGS))
                .chain((0..199).map(|_| fastrand::u8(..)))
                .collect::<Vec<_>>(),
        ),
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
            message(&Msg::Yield { id: 5, n: 1 }, &[1]),
            message(
                &Msg::Stop {
                    id: 5,
                    hangup: false,
                },
                &[],
            ),
            message(
                &Msg::Credit {
                    id: 6,
                    n: u32::MAX,
                    bytes: u32::MAX,
                },
                &[],
            ),
            message(
                &Msg::Credit {
                    id: 6,
                    n: u32::MAX,
                    bytes: u32::MAX,
                },
                &[],
            ),
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
                    timeout_ms: None,
                },
                &[],
            ),
            message(
                &Msg::Call {
                    id: 11,
                    func: "sink::echo",
                    timeout_ms: None,
                },
                &[0xff, 0xff],
            ),
            message(
                &Msg::OpenStream {
                    id: 12,
                    func: "sink::echo",
                    window: 1,
                    window_bytes: 1024,
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

/// An introduction as actor `name` (`uuid`), dialing `to`.
fn introduction(name: &str, uuid: uuid::Uuid, to: Option<uuid::Uuid>, register: bool) -> Handshake {
    Handshake {
        uid: ActorUid {
            name: name.into(),
            uuid,
        },
        addr: None,
        pid: std::process::id(),
        to,
        register,
    }
}
