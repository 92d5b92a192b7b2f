//! The Linux implementation of [`platform`](super).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use rustix::process::{Pid, PidfdFlags, Signal};

/// This executable, to be started again for a child or a fork server.
pub(crate) const SELF_EXE: &str = "/proc/self/exe";

/// No orphans: asks the kernel to SIGKILL this process when the thread
/// that forked it exits, then exits at once if the parent (`parent_pid`)
/// is already gone (it died before the request was made).
///
/// Linux ties the parent-death signal to the parent *thread*, which is
/// why parents fork from a dedicated thread that never exits (see
/// `spawn::exec`).
pub(crate) fn die_with_parent(parent_pid: u32) {
    if let Err(err) = rustix::process::set_parent_process_death_signal(Some(Signal::KILL)) {
        tracing::warn!("could not arm the parent-death signal: {err}");
    }
    if std::os::unix::process::parent_id() != parent_pid {
        eprintln!("tractor: the parent actor (pid {parent_pid}) is already gone; exiting");
        std::process::exit(1);
    }
}

/// A process handle that cannot be confused with a later process reusing
/// the pid.
pub(crate) struct Pidfd(OwnedFd);

impl Pidfd {
    /// Opens a handle on `pid`. Race-free only while `pid` cannot have
    /// been reaped: it is our unreaped child, or we hold it some other way.
    pub(crate) fn open(pid: u32) -> io::Result<Pidfd> {
        let pid = Pid::from_raw(pid as i32)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "pid 0"))?;
        Ok(Pidfd(rustix::process::pidfd_open(
            pid,
            PidfdFlags::empty(),
        )?))
    }

    /// A handle another process opened and passed over a Unix socket (a
    /// fork server sends its actor one for each child it forks).
    pub(crate) fn received(fd: OwnedFd) -> Pidfd {
        Pidfd(fd)
    }

    /// Sends SIGKILL; a process that already exited is not an error.
    pub(crate) fn kill(&self) {
        match rustix::process::pidfd_send_signal(&self.0, Signal::KILL) {
            Ok(()) | Err(rustix::io::Errno::SRCH) => {}
            Err(err) => tracing::warn!("could not kill a child through its pidfd: {err}"),
        }
    }
}

impl AsFd for Pidfd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// For `tokio::io::unix::AsyncFd`: a pidfd polls readable once its
/// process has exited.
impl AsRawFd for Pidfd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// Counts this process's threads, from its `/proc` stat file kept open:
/// one read per count, for a process that checks before every fork.
pub(crate) struct ThreadCount(std::fs::File);

impl ThreadCount {
    /// Opens this process's stat file. The descriptor stays this
    /// process's: a fork's copy would count its parent's threads (forks
    /// close it: see [`close_inherited_fds`]).
    pub(crate) fn open() -> io::Result<Self> {
        std::fs::File::open("/proc/self/stat").map(ThreadCount)
    }

    /// How many threads this process runs now.
    pub(crate) fn now(&self) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let mut stat = [0u8; 1024];
        let read = self.0.read_at(&mut stat, 0)?;
        parse_thread_count(&stat[..read])
            .ok_or_else(|| io::Error::other("no thread count in /proc/<pid>/stat"))
    }
}

/// The thread count in a `/proc/<pid>/stat` line: the 20th field, the
/// 18th after the command name (which may hold spaces and parentheses,
/// but ends at the line's last `)`).
fn parse_thread_count(stat: &[u8]) -> Option<usize> {
    let after_name = stat.iter().rposition(|&byte| byte == b')')? + 1;
    let fields = std::str::from_utf8(&stat[after_name..]).ok()?;
    fields.split_ascii_whitespace().nth(17)?.parse().ok()
}

/// In a fresh fork: closes every descriptor from 3 up, so the new actor
/// keeps only stdio. Uses `close_range`; where the kernel lacks it, closes
/// what `/proc/self/fd` lists.
///
/// Only for a single-threaded process (the fork server's forks), where
/// allocating is safe.
pub(crate) fn close_inherited_fds() -> io::Result<()> {
    // SAFETY: closing descriptors this process owns and will not use again.
    let closed = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    if closed == 0 {
        return Ok(());
    }
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")?
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2)
        .collect();
    for fd in fds {
        // SAFETY: as above; the directory's own descriptor is among them
        // and is closed already or now, harmlessly.
        unsafe { libc::close(fd) };
    }
    Ok(())
}

/// What `fork` returned.
pub(crate) enum Forked {
    /// In the new process.
    Child,
    /// In the parent: the child's pid.
    Parent(u32),
}

/// Forks this process.
///
/// # Safety
///
/// The calling process must be single-threaded: the fork inherits no
/// other thread, so no lock another thread holds may be held there.
pub(crate) unsafe fn fork() -> io::Result<Forked> {
    // SAFETY: the caller guarantees a single-threaded process.
    match unsafe { libc::fork() } {
        0 => Ok(Forked::Child),
        -1 => Err(io::Error::last_os_error()),
        pid => Ok(Forked::Parent(pid as u32)),
    }
}

/// Reaps child `pid` (which has exited); its raw wait status.
pub(crate) fn reap(pid: u32) -> i32 {
    let mut status = 0;
    // SAFETY: plain waitpid on our own child.
    unsafe { libc::waitpid(pid as i32, &mut status, 0) };
    status
}

/// Defines `$name`, a hook that runs `$hook()` before `main` in every
/// process of this executable (an `.init_array` entry). Keep a reference
/// to `$name` in code that is surely linked, so the linker keeps it.
macro_rules! before_main {
    ($name:ident, $hook:path) => {
        #[used]
        #[unsafe(link_section = ".init_array")]
        pub(crate) static $name: extern "C" fn() = {
            extern "C" fn hook() {
                $hook()
            }
            hook
        };
    };
}
pub(crate) use before_main;

/// This executable as mapped into this process: an identity that every
/// process running the same file shares, and the load bias that turns an
/// address in its code into an offset (the same in every such process).
#[derive(Debug)]
pub(crate) struct ExeImage {
    pub(crate) id: u64,
    pub(crate) bias: usize,
    /// Where its loaded segments start and end.
    pub(crate) code: std::ops::Range<usize>,
}

/// This process's [`ExeImage`], looked up once.
pub(crate) fn exe_image() -> Option<&'static ExeImage> {
    static IMAGE: std::sync::OnceLock<Option<ExeImage>> = std::sync::OnceLock::new();
    IMAGE.get_or_init(find_exe_image).as_ref()
}

fn find_exe_image() -> Option<ExeImage> {
    use std::hash::{Hash, Hasher};
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(SELF_EXE).ok()?;
    let mut hasher = rustc_hash::FxHasher::default();
    (
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
    )
        .hash(&mut hasher);

    unsafe extern "C" fn first(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        out: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: the loader passes a valid entry, and `out` is the
        // `Option<(usize, Range)>` below; the first entry is the program.
        unsafe {
            let info = &*info;
            let headers = std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize);
            let bias = info.dlpi_addr as usize;
            let loads = headers.iter().filter(|h| h.p_type == libc::PT_LOAD);
            let start = loads.clone().map(|h| h.p_vaddr as usize).min().unwrap_or(0);
            let end = loads
                .map(|h| (h.p_vaddr + h.p_memsz) as usize)
                .max()
                .unwrap_or(0);
            *(out as *mut Option<(usize, std::ops::Range<usize>)>) =
                Some((bias, bias + start..bias + end));
        }
        1
    }
    let mut found: Option<(usize, std::ops::Range<usize>)> = None;
    // SAFETY: `first` writes only into `found`, which outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(first), (&mut found as *mut Option<_>).cast()) };
    let (bias, code) = found?;
    Some(ExeImage {
        id: hasher.finish(),
        bias,
        code,
    })
}

/// Raises this process's soft limit on open descriptors to its hard limit
/// (children inherit it): an actor holds a descriptor per peer and per
/// opening in progress, and the usual soft limit of 1024 is soon reached.
pub(crate) fn raise_fd_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(err) = setrlimit(Resource::Nofile, limit) {
            tracing::debug!("could not raise the descriptor limit: {err}");
        }
    }
}

/// The time slice a process starting in the background asks for: long, so
/// that under the kernel's EEVDF scheduler (Linux 6.12 and later) any
/// thread waking with the default, shorter slice preempts it at once. It
/// keeps its fair share of the CPU; it only stops delaying the wake-ups
/// of the work in the foreground. Older kernels ignore the request.
const BACKGROUND_SLICE_NS: u64 = 100_000_000;

/// Puts the calling thread in the background (the long time slice) or
/// back to the default slice, keeping its policy and nice value; a thread
/// under another policy than the normal or batch one is left alone.
/// Threads and processes it starts from then on inherit the slice, across
/// fork and exec. Failures are logged (at debug): the slice only tunes.
pub(crate) fn set_background(background: bool) {
    if let Err(err) = set_slice(if background { BACKGROUND_SLICE_NS } else { 0 }) {
        tracing::debug!(background, "could not set the thread's time slice: {err}");
    }
}

fn set_slice(runtime_ns: u64) -> io::Result<()> {
    let size = std::mem::size_of::<libc::sched_attr>() as u32;
    // SAFETY: sched_attr is plain data; all zeroes is a valid value.
    let mut attr: libc::sched_attr = unsafe { std::mem::zeroed() };
    // SAFETY: `attr` is a writable sched_attr of `size` bytes.
    let got = unsafe { libc::syscall(libc::SYS_sched_getattr, 0, &raw mut attr, size, 0) };
    if got != 0 {
        return Err(io::Error::last_os_error());
    }
    if !matches!(
        attr.sched_policy as i32,
        libc::SCHED_OTHER | libc::SCHED_BATCH
    ) {
        return Ok(());
    }
    attr.size = size;
    // Keep reset-on-fork if the program asked for it; the other flags
    // (clamps, deadline) need fields this call does not carry.
    attr.sched_flags &= libc::SCHED_FLAG_RESET_ON_FORK as u64;
    attr.sched_runtime = runtime_ns;
    // SAFETY: `attr` is a valid sched_attr of `size` bytes.
    let set = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &raw const attr, 0) };
    match set {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thread_count_is_read_after_the_last_parenthesis() {
        let stat = b"42 (odd) (name 1) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 7 0 \
                     12345 1000 200";
        assert_eq!(parse_thread_count(stat), Some(7));
        assert_eq!(parse_thread_count(b"42 (cut) S 1"), None);
        assert_eq!(parse_thread_count(b"no name at all"), None);
    }

    #[test]
    fn this_process_threads_are_counted() {
        let count = ThreadCount::open().unwrap();
        let before = count.now().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || rx.recv());
        assert_eq!(count.now().unwrap(), before + 1);
        drop(tx);
        thread.join().unwrap().unwrap_err();
    }
}
