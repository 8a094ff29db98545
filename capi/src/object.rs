//! librbpf's object API (`include/rbpf.h`): an ELF object's programs, each loaded into a VM
//! of its own, and the maps they share (`docs/kernel-programs.md`, "Objects"). Each function
//! wraps one method of [`rbpf::kernel::object::Object`] or
//! [`rbpf::kernel::object::ObjectProgram`]; the VMs are `struct ubpf_vm`s, so every uBPF
//! function works on `rbpf_program_vm(prog)`.

use std::ffi::{CStr, CString, c_char, c_int, c_uint, c_void};
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use crate::maps::rbpf_map;
use crate::register::{six_argument_helper, stderr_printer};
use crate::types::external_function_t;
use crate::ubpf_vm;
use rbpf::kernel::object::{Object, ObjectProgram, ProgramVm};
use rbpf::kernel::program_type::ProgramType;
use rbpf::vm::Vm;

impl ProgramVm for ubpf_vm {
    /// A VM as `ubpf_create` makes them: errors printed to `stderr`, extra regions on.
    fn from_vm(mut vm: Vm) -> Self {
        vm.set_error_printer(Some(stderr_printer()));
        vm.enable_extra_regions();
        ubpf_vm {
            vm,
            execution_started: AtomicBool::new(false),
        }
    }

    fn vm(&self) -> &Vm {
        &self.vm
    }

    fn vm_mut(&mut self) -> &mut Vm {
        &mut self.vm
    }
}

/// An ELF object: its programs and the maps they share (opaque). Open it with
/// `rbpf_object_open` or `rbpf_object_open_mem`, free it with `rbpf_object_close`.
///
/// Methods:
/// - before load: `rbpf_object_find_map` + `rbpf_map_set_max_entries` and the `rbpf_map_*`
///   functions (global data: `.rodata`, `.data`, `.bss`), `rbpf_object_register`,
///   `rbpf_program_set_type`
/// - `rbpf_object_load`, then `rbpf_object_find_program`, `rbpf_object_next_program`
///
/// Threads: none of these functions may race with another call on the same object, or with
/// a run of one of its programs, except runs of loaded programs, which may run on many
/// threads at once.
pub struct rbpf_object {
    object: Object<ubpf_vm>,
    /// One handle per program, allocated by `Box::into_raw` (so that references to the object
    /// never cover them), freed by `rbpf_object_close`.
    programs: *mut [rbpf_program],
}

/// One program of an object (opaque), owned by the object.
pub struct rbpf_program {
    object: *mut rbpf_object,
    index: usize,
    name: CString,
    error: Option<CString>,
}

/// The address of every open object: how `rbpf_map_set_max_entries` finds the object of a
/// map. An object is removed before it is freed, under the lock.
static OPEN: Mutex<Vec<usize>> = Mutex::new(Vec::new());

fn open_objects() -> std::sync::MutexGuard<'static, Vec<usize>> {
    OPEN.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Boxes an opened object, makes its program handles and registers it.
fn publish(object: Object<ubpf_vm>) -> *mut rbpf_object {
    let raw = Box::into_raw(Box::new(rbpf_object {
        object,
        programs: Box::into_raw(Box::<[rbpf_program]>::default()),
    }));
    // SAFETY: `raw` was just allocated and is not shared yet.
    let handle = unsafe { &mut *raw };
    let programs: Box<[rbpf_program]> = handle
        .object
        .programs()
        .iter()
        .enumerate()
        .map(|(index, p)| rbpf_program {
            object: raw,
            index,
            name: CString::new(p.name()).unwrap_or_default(),
            error: None,
        })
        .collect();
    // SAFETY: the empty slice was made by `Box::into_raw` above and is replaced once.
    drop(unsafe { Box::from_raw(handle.programs) });
    handle.programs = Box::into_raw(programs);
    open_objects().push(raw as usize);
    raw
}

fn c_str<'a>(s: *const c_char) -> Option<&'a CStr> {
    // SAFETY: a non-NULL string is NUL-terminated (API contract).
    (!s.is_null()).then(|| unsafe { CStr::from_ptr(s) })
}

fn object_mut<'a>(obj: *mut rbpf_object) -> Option<&'a mut rbpf_object> {
    // SAFETY: a non-NULL handle comes from `rbpf_object_open*` and is not used concurrently
    // (API contract).
    unsafe { obj.as_mut() }
}

fn program_handle<'a>(prog: *const rbpf_program) -> Option<&'a rbpf_program> {
    // SAFETY: a non-NULL handle comes from `rbpf_object_find_program` or
    // `rbpf_object_next_program` of an object that is still open (API contract).
    unsafe { prog.as_ref() }
}

/// The object program behind a program handle: what the functions taking a
/// `struct rbpf_program*` (here and in other files, such as test runs) work on.
pub(crate) fn program_ref<'a>(prog: *const rbpf_program) -> Option<&'a ObjectProgram<ubpf_vm>> {
    let handle = program_handle(prog)?;
    // SAFETY: the handle's object is open (API contract) and not changed meanwhile.
    let object = unsafe { handle.object.as_ref() }?;
    object.object.programs().get(handle.index)
}

/// The object owning a program handle, and the program's position in it: for functions that
/// change the whole object (compiling every program for a JIT test run).
pub(crate) fn program_object<'a>(
    prog: *const rbpf_program,
) -> Option<(&'a mut Object<ubpf_vm>, usize)> {
    let handle = program_handle(prog)?;
    let index = handle.index;
    Some((&mut object_mut(handle.object)?.object, index))
}

fn program_mut<'a>(prog: *mut rbpf_program) -> Option<&'a mut ObjectProgram<ubpf_vm>> {
    let (object, index) = {
        let handle = program_handle(prog)?;
        (handle.object, handle.index)
    };
    object_mut(object)?.object.programs_mut().get_mut(index)
}

/// Opens the eBPF ELF object at `path` (as clang writes them with `-target bpf`, any number
/// of sections). Nothing is loaded yet: see `rbpf_object_load`. The object's name (for
/// libbpf's names of global-data maps, such as `obj.rodata`) is the file name up to its first
/// dot.
///
/// Returns the object (free it with `rbpf_object_close`), or NULL with a message in `*errmsg`
/// (when `errmsg` is not NULL; the caller frees it with `free()`).
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_object_open(
    path: *const c_char,
    errmsg: *mut *mut c_char,
) -> *mut rbpf_object {
    ffi_boundary!(errmsg; {
        crate::errmsg::clear(errmsg);
        let Some(path) = c_str(path) else {
            crate::errmsg::set(errmsg, &"invalid argument: path is NULL");
            return std::ptr::null_mut();
        };
        let path = std::path::PathBuf::from(path.to_string_lossy().into_owned());
        match Object::<ubpf_vm>::open(path) {
            Ok(object) => publish(object),
            Err(e) => {
                crate::errmsg::set(errmsg, &e);
                std::ptr::null_mut()
            }
        }
    })
}

/// `rbpf_object_open` for an object in memory (`len` bytes at `buf`, copied). Its name is
/// empty: global-data maps are found by their section names (`.rodata`).
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_object_open_mem(
    buf: *const c_void,
    len: usize,
    errmsg: *mut *mut c_char,
) -> *mut rbpf_object {
    ffi_boundary!(errmsg; {
        crate::errmsg::clear(errmsg);
        let bytes = try_slice!(buf, len, errmsg, "buf");
        match Object::<ubpf_vm>::from_bytes(bytes.to_vec(), "") {
            Ok(object) => publish(object),
            Err(e) => {
                crate::errmsg::set(errmsg, &e);
                std::ptr::null_mut()
            }
        }
    })
}

/// Frees an object: its programs, their VMs (and compiled code) and its maps. Every handle
/// obtained from it (`rbpf_program`, `rbpf_map`, `rbpf_program_vm`'s VMs) dies with it. NULL is
/// ignored.
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_object_close(obj: *mut rbpf_object) {
    ffi_boundary!({
        if obj.is_null() {
            return;
        }
        let mut open = open_objects();
        let Some(at) = open.iter().position(|&o| o == obj as usize) else {
            return;
        };
        open.remove(at);
        drop(open);
        // SAFETY: a registered handle was made by `Box::into_raw` in `publish` and, by the
        // API contract, is closed once and not used afterwards.
        let object = unsafe { Box::from_raw(obj) };
        // SAFETY: made by `Box::into_raw` in `publish`, freed only here.
        drop(unsafe { Box::from_raw(object.programs) });
    })
}

/// The map called `name` in the object: a map's symbol, a global-data section (`.rodata`,
/// `.data`, `.bss`, `.rodata.*`, …) or libbpf's name for it (`<object>.rodata`, shortened as
/// libbpf does). Usable before load (to set global data with `rbpf_map_update_elem` or a size
/// with `rbpf_map_set_max_entries`) and after, with every `rbpf_map_*` function; owned by the
/// object.
///
/// Returns NULL when there is no such map, the map could not be created (an unsupported
/// type), or an argument is NULL.
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_object_find_map(
    obj: *mut rbpf_object,
    name: *const c_char,
) -> *mut rbpf_map {
    ffi_boundary!({
        let (Some(handle), Some(name)) = (object_mut(obj), c_str(name)) else {
            return std::ptr::null_mut();
        };
        handle
            .object
            .map(&name.to_string_lossy())
            .map_or(std::ptr::null_mut(), |m| {
                std::sync::Arc::as_ptr(m).cast_mut().cast()
            })
    })
}

/// Sets the number of entries of an object's map before the object is loaded (libbpf's
/// `bpf_map__set_max_entries`): a map declared with `max_entries` 0 needs it, or the programs
/// using it fail to load. The map is emptied; its handle stays valid. Must not race with any
/// other use of the map.
///
/// Returns 0; -EINVAL for NULL or a size the map's type refuses (and for global data, which
/// has one entry); -EBUSY once the object is loaded; -ENOENT when `map` is no open object's
/// map.
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_map_set_max_entries(map: *mut rbpf_map, max_entries: u32) -> c_int {
    ffi_boundary!({
        if map.is_null() {
            return -libc::EINVAL;
        }
        let open = open_objects();
        for &addr in open.iter() {
            let Some(handle) = object_mut(addr as *mut rbpf_object) else {
                continue;
            };
            let Some(index) = handle.object.map_index_by_handle(map as u64) else {
                continue;
            };
            return match handle.object.set_max_entries_at(index, max_entries) {
                Ok(()) => 0,
                Err(rbpf::error::ObjectError::AlreadyLoaded) => -libc::EBUSY,
                Err(_) => -libc::EINVAL,
            };
        }
        -libc::ENOENT
    })
}

/// Registers helper `fn` at `index` (0..255, unlike `ubpf_register`'s 64) under `name` for
/// every program of the object, before load. It replaces a kernel helper of the same number
/// (registering 12 replaces `bpf_tail_call`, and then a return of 0 no longer ends the
/// program). `name` (may be NULL) is copied; `extern` functions of the object called by name
/// resolve to it.
///
/// Returns 0, or -1 for a NULL object or function, an index above 255, or a loaded object.
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_object_register(
    obj: *mut rbpf_object,
    index: c_uint,
    name: *const c_char,
    r#fn: external_function_t,
) -> c_int {
    ffi_boundary!({
        let (Some(handle), Some(f)) = (object_mut(obj), r#fn) else {
            return -1;
        };
        let name = c_str(name).map(|n| n.to_string_lossy().into_owned());
        match handle
            .object
            .register_helper(index, name.as_deref(), six_argument_helper(f))
        {
            Ok(()) => 0,
            Err(_) => -1,
        }
    })
}

/// Links, verifies and loads every program of the object, each into a VM of its own with the
/// kernel's helpers (`rbpf_register_linux_helpers`), the helpers given to
/// `rbpf_object_register` and every map of the object. A program that fails (an unknown
/// helper, a verifier error, a map without a size) does not stop the others:
/// `rbpf_program_load_error` says why it failed. Loads once.
///
/// Returns 0 when every program loaded; otherwise -1 with one line per failure, each naming
/// the program (or map) and why, in `*errmsg` (freed by the caller with `free()`).
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_object_load(obj: *mut rbpf_object, errmsg: *mut *mut c_char) -> c_int {
    ffi_boundary!(errmsg; {
        crate::errmsg::clear(errmsg);
        let Some(handle) = object_mut(obj) else {
            crate::errmsg::set(errmsg, &"invalid argument: obj is NULL");
            return -1;
        };
        let result = handle.object.load();
        let errors: Vec<Option<CString>> = handle
            .object
            .programs()
            .iter()
            .map(|p| p.load_error().map(|e| CString::new(e.replace('\0', " ")).unwrap_or_default()))
            .collect();
        // SAFETY: the handles were made by `publish` and nothing else refers to them now.
        let programs = unsafe { &mut *handle.programs };
        for (program, error) in programs.iter_mut().zip(errors) {
            program.error = error;
        }
        match result {
            Ok(()) => 0,
            Err(e) => {
                crate::errmsg::set(errmsg, &e);
                -1
            }
        }
    })
}

/// The program whose function is called `name`, else the first program in the section called
/// `name`; owned by the object.
///
/// Returns NULL when there is none or an argument is NULL.
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_object_find_program(
    obj: *mut rbpf_object,
    name: *const c_char,
) -> *mut rbpf_program {
    ffi_boundary!({
        let (Some(handle), Some(name)) = (object_mut(obj), c_str(name)) else {
            return std::ptr::null_mut();
        };
        let name = name.to_string_lossy();
        let programs = handle.object.programs();
        let index = programs
            .iter()
            .position(|p| p.name() == name)
            .or_else(|| programs.iter().position(|p| p.section() == name));
        match index {
            // SAFETY: `index` is below the program count, the length of the handle slice.
            Some(i) => unsafe { handle.programs.cast::<rbpf_program>().add(i) },
            None => std::ptr::null_mut(),
        }
    })
}

/// The program after `prev` in the object (the first one when `prev` is NULL), in section
/// order: `for (p = rbpf_object_next_program(obj, NULL); p; p = rbpf_object_next_program(obj, p))`.
///
/// Returns NULL after the last program, for a NULL object, or for a `prev` of another object.
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_object_next_program(
    obj: *mut rbpf_object,
    prev: *const rbpf_program,
) -> *mut rbpf_program {
    ffi_boundary!({
        let Some(handle) = object_mut(obj) else {
            return std::ptr::null_mut();
        };
        let next = match program_handle(prev) {
            None => 0,
            Some(p) if std::ptr::eq(p.object, obj) => p.index + 1,
            Some(_) => return std::ptr::null_mut(),
        };
        if next >= handle.object.programs().len() {
            return std::ptr::null_mut();
        }
        // SAFETY: `next` is below the program count, the length of the handle slice.
        unsafe { handle.programs.cast::<rbpf_program>().add(next) }
    })
}

/// The program's function name, owned by the object; NULL for a NULL program.
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_program_name(prog: *const rbpf_program) -> *const c_char {
    ffi_boundary!({ program_handle(prog).map_or(std::ptr::null(), |p| p.name.as_ptr()) })
}

/// Why the program failed to load, owned by the object; NULL when it loaded (or before
/// `rbpf_object_load`, or for a NULL program).
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_program_load_error(prog: *const rbpf_program) -> *const c_char {
    ffi_boundary!({
        program_handle(prog)
            .and_then(|p| p.error.as_ref())
            .map_or(std::ptr::null(), |e| e.as_ptr())
    })
}

/// The program's type: the kernel's `enum bpf_prog_type` value, from its section name as
/// libbpf infers it (`xdp` → 6, `tc` → 3, …; 0 when unknown) or as set by
/// `rbpf_program_set_type`. Returns -1 for a NULL program.
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_program_type(prog: *const rbpf_program) -> c_int {
    ffi_boundary!({
        program_ref(prog).map_or(-1, |p| {
            c_int::try_from(p.program_type().number()).unwrap_or(-1)
        })
    })
}

/// Sets the program's type (an `enum bpf_prog_type` value) before the object is loaded.
///
/// Returns 0; -EINVAL for a NULL program or an unknown type; -EBUSY once loaded.
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_program_set_type(prog: *mut rbpf_program, prog_type: c_int) -> c_int {
    ffi_boundary!({
        let Some(kind) = u32::try_from(prog_type)
            .ok()
            .and_then(|t| ProgramType::try_from(t).ok())
        else {
            return -libc::EINVAL;
        };
        let Some(program) = program_mut(prog) else {
            return -libc::EINVAL;
        };
        match program.set_program_type(kind) {
            Ok(()) => 0,
            Err(_) => -libc::EBUSY,
        }
    })
}

/// The program's VM, owned by the object (never `ubpf_destroy` it): every uBPF function
/// works on it (`ubpf_compile`, `ubpf_exec`, `ubpf_set_error_print`, `rbpf_map_by_name`, …).
/// `ubpf_exec` and compiled code run this program alone: its tail calls fail as if the
/// `PROG_ARRAY` entry were empty; `rbpf_program_exec` follows them.
///
/// Returns NULL for a program that did not load (or before load, or for NULL).
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_program_vm(prog: *mut rbpf_program) -> *mut ubpf_vm {
    ffi_boundary!({
        program_ref(prog)
            .and_then(ObjectProgram::vm_ptr)
            .unwrap_or(std::ptr::null_mut())
    })
}

/// The value a `PROG_ARRAY` update takes to name this program, like libbpf's
/// `bpf_program__fd`: `rbpf_map_update_elem(prog_array, &index, &fd, BPF_ANY)`.
///
/// Returns the value (0 or more), or -EINVAL for a program that did not load (or NULL).
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_program_fd(prog: *const rbpf_program) -> c_int {
    ffi_boundary!({
        program_ref(prog)
            .and_then(ObjectProgram::fd)
            .and_then(|fd| c_int::try_from(fd).ok())
            .unwrap_or(-libc::EINVAL)
    })
}

/// Runs the program over `mem` (`mem_len` bytes; NULL with 0) like `ubpf_exec`, and follows
/// its tail calls: each target program runs with the same `mem` on a fresh stack, in the JIT
/// when `ubpf_compile` was called on its VM and in the interpreter otherwise, at most 33
/// times (the 34th tail call fails, as in the kernel). May run on many threads at once.
///
/// Returns 0 with the last program's r0 in `*ret`, or -1 (a runtime error, printed by the
/// failing program's VM; a NULL argument; a program that did not load).
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_program_exec(
    prog: *const rbpf_program,
    mem: *mut c_void,
    mem_len: usize,
    ret: *mut u64,
) -> c_int {
    ffi_boundary!({
        let (Some(program), false) = (program_ref(prog), ret.is_null()) else {
            return -1;
        };
        if mem.is_null() && mem_len != 0 {
            return -1;
        }
        // SAFETY: `mem` is NULL (with length 0) or valid for `mem_len` bytes (API contract).
        match unsafe { program.run_raw(mem.cast(), mem_len) } {
            Ok(value) => {
                // SAFETY: `ret` is non-NULL and writable (API contract).
                unsafe { ret.write(value) };
                0
            }
            Err(_) => -1,
        }
    })
}
