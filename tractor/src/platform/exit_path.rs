//! The code a process runs as it exits, mapped in ahead by a spare.
//!
//! A fork shares its parent's code but not the page-table entries for it:
//! each page of code a fork server's child runs for the first time costs
//! it a page fault. Most of that code a spare runs before its spec comes
//! (see `runtime::child`), but not the exit path, which no process runs
//! twice: the dynamic loader's `_dl_fini`, which calls every loaded
//! object's finalisers (found at the start of each object's code and in
//! its `.fini` section, at the end), and libc's `exit`. Those faults land
//! on the way from a cancelled child's answer to its reaping, which its
//! parent waits for.
//!
//! So a spare reads one byte of each such page while it waits; a fault
//! maps the page's neighbours too, so few faults map them all. The child
//! then runs them without faulting; the cost is a few more mapped pages
//! to tear down at exit. Only pages inside the executable segments the
//! loader reports are read.

use std::ffi::{CStr, c_char, c_int, c_void};

/// How much code at each end of an object's executable segment is mapped
/// in: where its `_init`, `__do_global_dtors_aux` and `_fini` lie.
const EDGE: usize = 64 * 1024;

const PAGE: usize = 4096;

const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;
const PF_X: u32 = 1;

/// Maps in the code this process will run as it exits (see the module
/// docs).
pub(crate) fn prefault_exit_path() {
    walk();
    // SAFETY: both are functions of libc, mapped code.
    unsafe {
        touch(libc::exit as *const u8);
        touch(libc::_exit as *const u8);
    }
}

/// What a walk over the loaded objects found.
struct Walk {
    /// The program's interpreter, once its headers are read (they come
    /// first).
    loader: *const c_char,
    /// Whether an object of that name was among the loaded ones.
    found_loader: bool,
}

fn walk() -> Walk {
    let mut walk = Walk {
        loader: std::ptr::null(),
        found_loader: false,
    };
    // SAFETY: the callback reads only the loader's descriptions of loaded
    // objects, and bytes inside their executable, file-backed segments.
    unsafe { libc::dl_iterate_phdr(Some(each_object), (&raw mut walk).cast()) };
    walk
}

/// For each loaded object (the program first): notes the program's
/// interpreter (the dynamic loader), and maps in the edges of the
/// object's executable segments, or all of them for the loader.
unsafe extern "C" fn each_object(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    walk: *mut c_void,
) -> c_int {
    // SAFETY: `walk` is the `Walk` that `walk()` passed.
    let walk = unsafe { &mut *walk.cast::<Walk>() };
    // SAFETY: the loader passes a valid description for the call's length.
    let info = unsafe { &*info };
    if info.dlpi_phdr.is_null() {
        return 0;
    }
    // SAFETY: `dlpi_phdr` points at `dlpi_phnum` program headers.
    let headers = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum.into()) };
    let base = info.dlpi_addr as usize;
    // SAFETY: both names are C strings the loader keeps.
    let is_loader = unsafe {
        if walk.loader.is_null() {
            if let Some(interp) = headers.iter().find(|header| header.p_type == PT_INTERP) {
                walk.loader = (base + interp.p_vaddr as usize) as *const c_char;
            }
            false
        } else {
            !info.dlpi_name.is_null()
                && CStr::from_ptr(info.dlpi_name) == CStr::from_ptr(walk.loader)
        }
    };
    walk.found_loader |= is_loader;
    for header in headers {
        if header.p_type != PT_LOAD || header.p_flags & PF_X == 0 {
            continue;
        }
        let start = (base + header.p_vaddr as usize).next_multiple_of(PAGE);
        let end = base + header.p_vaddr as usize + header.p_filesz.min(header.p_memsz) as usize;
        for page in (start..end).step_by(PAGE) {
            if is_loader || page < start + EDGE || page + EDGE >= end {
                // SAFETY: inside a loaded, readable, executable segment.
                unsafe { touch(page as *const u8) };
            }
        }
    }
    0
}

/// Reads a byte of code, which maps its page in.
///
/// # Safety
///
/// `code` must point into mapped, readable code.
unsafe fn touch(code: *const u8) {
    // SAFETY: as the caller promises.
    unsafe { std::ptr::read_volatile(code) };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faults_of_this_thread() -> i64 {
        // SAFETY: getrusage fills the struct it is given.
        unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            assert_eq!(libc::getrusage(libc::RUSAGE_THREAD, &mut usage), 0);
            usage.ru_minflt + usage.ru_majflt
        }
    }

    #[test]
    fn the_exit_path_is_found_and_mapped_in_once() {
        let walk = walk();
        assert!(
            !walk.loader.is_null(),
            "the program names its dynamic loader"
        );
        // SAFETY: the loader keeps the interpreter's name.
        let name = unsafe { CStr::from_ptr(walk.loader) }.to_string_lossy();
        assert!(
            walk.found_loader,
            "no loaded object is the interpreter {name}"
        );

        prefault_exit_path();
        let before = faults_of_this_thread();
        prefault_exit_path();
        assert_eq!(
            faults_of_this_thread() - before,
            0,
            "a second pass faults nothing"
        );
    }
}
