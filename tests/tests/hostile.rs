//! Hostile input at a live actor: garbage, truncated and oversized frames,
//! wrong secrets, and well-formed but wrong messages from a peer that does
//! know the secret. The actor must drop the offending connection, keep
//! serving its tree, and never allocate on a peer's word.
//!
//! The attacker is written from the wire format alone (`tractor_tests::wire`
//! mirrors tractor's envelope), as a third party would write it.

use std::io::Write;

use tractor_tests::wire::{
    ActorUid, Early, Handshake, MAX_FRAME, Msg, Opening, PROTOCOL, SECRET, Sink, closed_by_peer,
    frame, mac, message, read_frame, vm_data_kib,
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

    // A wrong secret: the victim's proof does not check out for us, and
    // ours does not for it; it drops us before reading any command.
    {
        let mut stream = sink.connect();
        let hello = Opening::Hello {
            magic: *b"tractor\0",
            protocol: PROTOCOL,
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
        assert!(
            closed_by_peer(&mut stream),
            "a forged proof ends the connection"
        );
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
