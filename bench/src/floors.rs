//! The floors: what the same work costs without tractor, measured in the
//! same run. Each floor runs its far end in this executable started again
//! with a role (see `main.rs`), so both sides are real processes.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::stats::Rate;

/// Environment variable naming the role of a floor's helper process.
pub const ROLE: &str = "TRACTOR_BENCH_ROLE";

fn helper(role: &str, args: &str) -> std::io::Result<tokio::process::Child> {
    tokio::process::Command::new(std::env::current_exe()?)
        .env(ROLE, format!("{role} {args}"))
        .kill_on_drop(true)
        .spawn()
}

/// Runs the helper side of a floor, if this process is one. Returns
/// whether it was.
pub fn run_helper() -> bool {
    let Ok(spec) = std::env::var(ROLE) else {
        return false;
    };
    let mut parts = spec.split(' ');
    let role = parts.next().unwrap_or_default();
    let args: Vec<String> = parts.map(str::to_owned).collect();
    if role == "reexec" {
        // The bare re-exec floor: connect back, nothing else.
        let _ = std::net::TcpStream::connect(&args[0]);
        return true;
    }
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async move {
        let result = match role {
            "pingpong" => echo(&args[0]).await,
            "pingpong-unix" => echo_unix(&args[0]).await,
            "tls-pong" => crate::hosts::tls_pong(&args[0]).await,
            "rawstream" => {
                produce(&args[0], args[1].parse().unwrap(), args[2].parse().unwrap()).await
            }
            other => panic!("unknown bench role {other}"),
        };
        result.expect("bench helper failed");
    });
    true
}

/// Spawn floors: start this executable again and wait for it to connect
/// back (the first samples), and on until it has exited and been reaped
/// (the second: what a whole spawn cycle compares with).
pub async fn reexec(runs: usize) -> std::io::Result<(Vec<Duration>, Vec<Duration>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let mut connected = Vec::with_capacity(runs);
    let mut reaped = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let mut child = helper("reexec", &addr)?;
        let _ = listener.accept().await?;
        connected.push(start.elapsed());
        child.wait().await?;
        reaped.push(start.elapsed());
    }
    Ok((connected, reaped))
}

/// The peer's figure: procspawn (re-exec of this executable, its own
/// IPC) spawning a closure and joining it, on a blocking thread as its
/// API is blocking.
pub async fn procspawn_join(runs: usize) -> std::io::Result<Vec<Duration>> {
    tokio::task::spawn_blocking(move || {
        let mut samples = Vec::with_capacity(runs);
        for _ in 0..runs {
            let start = Instant::now();
            let handle = procspawn::spawn((), |()| 1u64);
            let one = handle.join().map_err(std::io::Error::other)?;
            assert_eq!(one, 1);
            samples.push(start.elapsed());
        }
        Ok(samples)
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Round-trip floor: 8-byte ping-pong between two processes' tokio tasks.
pub async fn ping_pong(rounds: usize) -> std::io::Result<Vec<Duration>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let mut child = helper("pingpong", &listener.local_addr()?.to_string())?;
    let (stream, _) = listener.accept().await?;
    stream.set_nodelay(true)?;
    let samples = ping(stream, rounds).await?;
    child.wait().await?;
    Ok(samples)
}

/// The same over a Unix-domain socket, to see whether local actors would
/// gain from one.
pub async fn ping_pong_unix(rounds: usize) -> std::io::Result<Vec<Duration>> {
    let dir = std::env::temp_dir().join(format!("tractor-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("pingpong.sock");
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path)?;
    let mut child = helper("pingpong-unix", &path.to_string_lossy())?;
    let (stream, _) = listener.accept().await?;
    let samples = ping(stream, rounds).await?;
    child.wait().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(samples)
}

/// `rounds` timed round trips (after 1000 to warm up), then hangs up.
pub async fn ping<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    rounds: usize,
) -> std::io::Result<Vec<Duration>> {
    let mut buf = [0u8; 8];
    let mut samples = Vec::with_capacity(rounds);
    for i in 0..rounds + 1000 {
        let start = Instant::now();
        stream.write_all(&(i as u64).to_le_bytes()).await?;
        stream.read_exact(&mut buf).await?;
        if i >= 1000 {
            samples.push(start.elapsed());
        }
    }
    Ok(samples)
}

/// The far end of a ping-pong: echoes until the other end hangs up.
pub async fn pong<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    mut stream: S,
) -> std::io::Result<()> {
    tokio::spawn(async move {
        let mut buf = [0u8; 8];
        while stream.read_exact(&mut buf).await.is_ok() {
            if stream.write_all(&buf).await.is_err() {
                break;
            }
        }
    })
    .await?;
    Ok(())
}

async fn echo_unix(path: &str) -> std::io::Result<()> {
    pong(tokio::net::UnixStream::connect(path).await?).await
}

async fn echo(addr: &str) -> std::io::Result<()> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    pong(stream).await
}

/// Streaming floor: one process writes length-prefixed postcard frames
/// (batched into large writes), this one reads and decodes them.
/// `item_size` 0 means u64 items.
pub async fn raw_stream(item_size: usize, items: u64) -> std::io::Result<Rate> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let args = format!("{} {item_size} {items}", listener.local_addr()?);
    let mut child = helper("rawstream", &args)?;
    let (mut stream, _) = listener.accept().await?;
    let start = Instant::now();
    let mut buf = BytesMut::with_capacity(1 << 20);
    let mut received = 0u64;
    while received < items {
        if stream.read_buf(&mut buf).await? == 0 {
            break;
        }
        while buf.len() >= 4 {
            let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            if buf.len() < 4 + len {
                break;
            }
            let frame = buf.split_to(4 + len);
            if item_size == 0 {
                let _: u64 = postcard::from_bytes(&frame[4..]).map_err(std::io::Error::other)?;
            } else {
                let item: Bytes =
                    postcard::from_bytes(&frame[4..]).map_err(std::io::Error::other)?;
                assert_eq!(item.len(), item_size);
            }
            received += 1;
        }
        if buf.capacity() - buf.len() < 64 * 1024 {
            buf.reserve(1 << 20);
        }
    }
    let took = start.elapsed();
    child.wait().await?;
    assert_eq!(received, items);
    let item_bytes = if item_size == 0 { 8 } else { item_size as u64 };
    Ok(Rate::new(items, items * item_bytes, took))
}

async fn produce(addr: &str, size: usize, items: u64) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(addr).await?;
    let payload = Bytes::from(vec![7u8; size]);
    let mut scratch = vec![0u8; size + 16];
    let mut buf = Vec::with_capacity(1 << 20);
    for i in 0..items {
        let encoded = if size == 0 {
            postcard::to_slice(&i, &mut scratch)
        } else {
            postcard::to_slice(&payload, &mut scratch)
        }
        .map_err(std::io::Error::other)?;
        buf.extend_from_slice(&(encoded.len() as u32).to_le_bytes());
        buf.extend_from_slice(encoded);
        if buf.len() >= 1 << 16 {
            stream.write_all(&buf).await?;
            buf.clear();
        }
    }
    stream.write_all(&buf).await?;
    stream.shutdown().await?;
    Ok(())
}
