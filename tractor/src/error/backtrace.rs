//! A remote panic's backtrace, captured cheaply where it happened and
//! symbolised only where someone reads it.
//!
//! Symbolising a backtrace (reading the executable's debug information)
//! takes tens of milliseconds the first time in a process; a panicking
//! actor that did it before answering would hold up its parent's whole
//! teardown. So the panicking actor walks its stack (microseconds) and
//! sends each frame's offset into the executable; the actor that reads
//! `traceback()` turns the offsets into names and lines, in its own
//! process, which works because every actor of a program runs the same
//! executable. A backtrace from another executable (a tree of several
//! programs) arrives with its offsets only.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::platform;

/// At most this many frames are captured, or rendered.
const MAX_FRAMES: usize = 100;

/// Frame offsets into one executable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Frames {
    /// The executable's identity (see `platform::ExeImage`).
    image: u64,
    /// Each frame's return address minus the image's load bias; `None`
    /// for frames outside the executable (in a shared library).
    offsets: Vec<Option<u64>>,
}

/// Whether panics should carry backtraces: `RUST_BACKTRACE` is set and not
/// `0`, as for Rust's own panic messages.
fn wanted() -> bool {
    static WANTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WANTED.get_or_init(|| std::env::var_os("RUST_BACKTRACE").is_some_and(|value| value != "0"))
}

impl Frames {
    /// The calling thread's stack, if backtraces are wanted.
    pub(crate) fn capture() -> Option<Frames> {
        if !wanted() {
            return None;
        }
        let image = platform::exe_image()?;
        let mut offsets = Vec::with_capacity(32);
        backtrace::trace(|frame| {
            let ip = frame.ip() as usize;
            offsets.push(image.code.contains(&ip).then(|| (ip - image.bias) as u64));
            offsets.len() < MAX_FRAMES
        });
        Some(Frames {
            image: image.id,
            offsets,
        })
    }

    /// The backtrace as text: symbolised if this process runs the same
    /// executable, offsets otherwise.
    pub(crate) fn render(&self) -> String {
        let here = platform::exe_image().filter(|image| image.id == self.image);
        let Some(image) = here else {
            let offsets: Vec<String> = self
                .offsets
                .iter()
                .take(MAX_FRAMES)
                .map(|offset| offset.map_or("?".into(), |offset| format!("{offset:#x}")))
                .collect();
            return format!(
                "  backtrace from another executable (offsets into it): {}",
                offsets.join(" ")
            );
        };
        let frames: Vec<Vec<(String, Option<String>)>> = self
            .offsets
            .iter()
            .take(MAX_FRAMES)
            .map(|offset| match offset {
                Some(offset) => symbols((*offset as usize).wrapping_add(image.bias)),
                None => vec![("<in a shared library>".into(), None)],
            })
            .collect();
        // Start after the panic's entry into std (and the core::panicking
        // helpers a failed assert goes through), stop where tractor's own
        // machinery that ran the function begins.
        let named = |symbols: &Vec<(String, Option<String>)>, test: fn(&str) -> bool| {
            symbols.iter().any(|(name, _)| test(name))
        };
        let first = match frames
            .iter()
            .position(|symbols| named(symbols, is_panic_entry))
        {
            Some(entry) => {
                entry
                    + frames[entry..]
                        .iter()
                        .position(|symbols| !named(symbols, is_panic_machinery))
                        .unwrap_or(frames.len() - entry)
            }
            None => 0,
        };
        let mut text = String::from("  backtrace:");
        for (index, symbols) in frames[first..].iter().enumerate() {
            if named(symbols, is_tractor_runner) {
                break;
            }
            for (name, place) in symbols {
                let _ = write!(text, "\n    {index:>3}: {name}");
                if let Some(place) = place {
                    let _ = write!(text, "\n             at {place}");
                }
            }
        }
        text
    }
}

/// The symbols (an inlined call gives several) at `ip`, with their places.
fn symbols(ip: usize) -> Vec<(String, Option<String>)> {
    let mut found = Vec::new();
    backtrace::resolve(ip as *mut std::ffi::c_void, |symbol| {
        let name = symbol
            .name()
            .map_or_else(|| "<unknown>".to_owned(), |name| format!("{name:#}"));
        let place = match (symbol.filename(), symbol.lineno()) {
            (Some(file), Some(line)) => Some(match symbol.colno() {
                Some(column) => format!("{}:{line}:{column}", file.display()),
                None => format!("{}:{line}", file.display()),
            }),
            _ => None,
        };
        found.push((name, place));
    });
    if found.is_empty() {
        found.push((format!("{ip:#x}"), None));
    }
    found
}

/// Where a panic enters std's machinery.
fn is_panic_entry(name: &str) -> bool {
    name.contains("rust_begin_unwind")
        || name.contains("begin_panic")
        || name.ends_with("panic_fmt")
}

/// The machinery between that entry and the code that panicked.
fn is_panic_machinery(name: &str) -> bool {
    is_panic_entry(name)
        || name.starts_with("core::panicking::")
        || name.starts_with("std::panicking::")
}

/// What runs a remote function: the end of the interesting part.
fn is_tractor_runner(name: &str) -> bool {
    name.starts_with("tractor::invoke::") || name.starts_with("<tractor::invoke::")
}
