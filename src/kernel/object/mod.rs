//! ELF objects as libbpf loads them: several programs sharing maps and global data, each
//! linked and verified on its own, with real tail calls between them
//! (`docs/kernel-programs.md`, "Objects"; the C API is `rbpf_object_*` and `rbpf_program_*`).
//!
//! [`Object::open`] reads the file and declares its maps: every map of `.maps`/`maps`, and one
//! single-entry array per global-data section (`.rodata`, `.data`, `.bss` and their `.*`
//! variants) holding the section's bytes. Until [`Object::load`] the host may resize maps,
//! set global data through those maps, register helpers and change program types. Loading
//! links each program (a function in a code section other than `.text`) with only the
//! functions it reaches, verifies it in a VM of its own that has the kernel's helpers, the
//! host's helpers and every map of the object, and records why a program failed without
//! affecting the others. Tail calls go through [`ObjectProgram::run`] ([`tail`]).
//!
//! The VMs are of a type the embedder chooses ([`ProgramVm`]): a plain [`Vm`] for Rust hosts,
//! the C API's VM handle for C hosts, so that `rbpf_program_vm` hands out a VM every uBPF
//! function accepts.

mod link;
mod parse;
pub mod tail;

use std::collections::HashMap;
use std::ptr::NonNull;
use std::sync::Arc;

use object::elf::SHT_NOBITS;

use crate::error::{ExecError, JitError, ObjectError};
use crate::exec::helpers::HelperFn;
use crate::exec::maps::{BPF_ANY, Map, MapDef, MapSet, MapType};
use crate::jit::JitMode;
use crate::kernel::object_maps::declared_map_defs;
use crate::kernel::program_type::ProgramType;
use crate::kernel::test_run::{self, TestRunOptions};
use crate::vm::Vm;

use parse::Elf;

/// The VM type an [`Object`] creates for each of its programs.
pub trait ProgramVm: Send + Sync + 'static {
    /// Wraps a VM the object has configured and loaded.
    fn from_vm(vm: Vm) -> Self;
    /// The VM.
    fn vm(&self) -> &Vm;
    /// The VM, for changes (compiling).
    fn vm_mut(&mut self) -> &mut Vm;
}

impl ProgramVm for Vm {
    fn from_vm(vm: Vm) -> Self {
        vm
    }

    fn vm(&self) -> &Vm {
        self
    }

    fn vm_mut(&mut self) -> &mut Vm {
        self
    }
}

/// Where a map of an object comes from.
/// What a `PROG_ARRAY` or map-of-maps entry declared in BTF holds at load.
#[derive(Debug, Clone, Copy)]
enum InitialValue {
    /// A program of the object (its index, which is its fd).
    Program(usize),
    /// A map of the object (its index; the entry holds the map's id).
    Map(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MapSource {
    /// A definition in `.maps` or `maps`, at this offset of this section.
    Declared { section: usize, offset: u64 },
    /// A global-data section.
    Data { section: usize },
}

/// One map of an object.
#[derive(Debug)]
pub struct ObjectMap {
    name: String,
    /// libbpf's name for a global-data map (`<object>.rodata`, shortened as libbpf does).
    libbpf_name: Option<String>,
    source: MapSource,
    def: MapDef,
    map: Option<Arc<Map>>,
    /// Why the map could not be created.
    error: Option<String>,
    /// Declared with `max_entries = 0` and not sized by the host yet.
    needs_size: bool,
}

impl ObjectMap {
    /// The map's name: its symbol, or the section name of global data.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The map, unless it could not be created (then [`ObjectMap::error`] says why).
    pub fn map(&self) -> Option<&Arc<Map>> {
        self.map.as_ref()
    }

    /// Why the map could not be created, or why it cannot be used yet.
    pub fn error(&self) -> Option<String> {
        if self.needs_size {
            return Some(format!(
                "map '{}' has max_entries 0: give it a size (rbpf_map_set_max_entries) before load",
                self.name
            ));
        }
        self.error.clone()
    }

    /// Whether `name` names this map: its own name or libbpf's name for global data.
    fn is_named(&self, name: &str) -> bool {
        self.name == name || self.libbpf_name.as_deref() == Some(name)
    }
}

/// A helper the host registered on the object.
#[derive(Debug, Clone)]
struct HostHelper {
    index: u32,
    name: Option<String>,
    f: HelperFn,
}

/// The loaded programs' VMs, shared by every program of the object (for tail calls).
struct Table<V: ProgramVm> {
    /// `vms[n]` is program `n`'s VM, allocated by `Box::into_raw` and owned by the table.
    vms: Vec<Option<NonNull<V>>>,
    /// `loaded[n]`: whether `vms[n]` is `Some`.
    loaded: Vec<bool>,
}

// SAFETY: the table owns its VMs (`Box::into_raw`); `V: Send + Sync`, so owning and sharing
// them across threads is as safe as for a `Vec<Box<V>>`.
unsafe impl<V: ProgramVm> Send for Table<V> {}
// SAFETY: as above.
unsafe impl<V: ProgramVm> Sync for Table<V> {}

impl<V: ProgramVm> Table<V> {
    fn empty() -> Self {
        Table {
            vms: Vec::new(),
            loaded: Vec::new(),
        }
    }

    fn get(&self, n: usize) -> Option<&V> {
        let ptr = self.vms.get(n).copied().flatten()?;
        // SAFETY: the pointer came from `Box::into_raw` and stays valid until the table is
        // dropped; the object hands out mutable access only through `&mut` to itself (Rust)
        // or under the C API's contract that nothing runs meanwhile.
        Some(unsafe { ptr.as_ref() })
    }
}

impl<V: ProgramVm> Drop for Table<V> {
    fn drop(&mut self) {
        for ptr in self.vms.drain(..).flatten() {
            // SAFETY: made by `Box::into_raw` in `Object::load` and freed only here, once.
            drop(unsafe { Box::from_raw(ptr.as_ptr()) });
        }
    }
}

/// One program of an object.
pub struct ObjectProgram<V: ProgramVm = Vm> {
    name: String,
    section: String,
    /// Index in the parsed object's functions.
    func: usize,
    /// Position in the object (also its `PROG_ARRAY` value).
    index: usize,
    program_type: ProgramType,
    error: Option<String>,
    object_loaded: bool,
    table: Arc<Table<V>>,
}

impl<V: ProgramVm> std::fmt::Debug for ObjectProgram<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectProgram")
            .field("name", &self.name)
            .field("section", &self.section)
            .field("program_type", &self.program_type)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<V: ProgramVm> ObjectProgram<V> {
    /// The program's function name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The section it lives in (`xdp`, `tc`, …).
    pub fn section(&self) -> &str {
        &self.section
    }

    /// Its type: from the section name, or set by the host before load.
    pub fn program_type(&self) -> ProgramType {
        self.program_type
    }

    /// Sets its type; refused once the object is loaded.
    pub fn set_program_type(&mut self, program_type: ProgramType) -> Result<(), ObjectError> {
        if self.object_loaded {
            return Err(ObjectError::AlreadyLoaded);
        }
        self.program_type = program_type;
        Ok(())
    }

    /// Why it failed to load; `None` when it loaded, or before the object is loaded.
    pub fn load_error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// The value a `PROG_ARRAY` update takes to name this program (libbpf's
    /// `bpf_program__fd`): its position in the object. `None` unless it loaded.
    pub fn fd(&self) -> Option<u32> {
        self.vm()?;
        u32::try_from(self.index).ok()
    }

    /// Its VM, once loaded.
    pub fn vm(&self) -> Option<&V> {
        self.table.get(self.index)
    }

    /// Its VM for changes (compiling, settings), once loaded.
    pub fn vm_mut(&mut self) -> Option<&mut V> {
        let ptr = self.table.vms.get(self.index).copied().flatten()?;
        // SAFETY: the pointer is valid while the table lives (it outlives `self`), and
        // `&mut self` on a program of an object whose table nobody else holds (the table is
        // shared only among the object's own programs) excludes every other access through
        // Rust; C callers promise not to run the object meanwhile.
        Some(unsafe { &mut *ptr.as_ptr() })
    }

    /// Its VM as a raw pointer (what `rbpf_program_vm` returns), once loaded.
    pub fn vm_ptr(&self) -> Option<*mut V> {
        self.table
            .vms
            .get(self.index)
            .copied()
            .flatten()
            .map(NonNull::as_ptr)
    }

    /// Runs the program on `mem` (r1 = its address, r2 = its length), following tail calls:
    /// each target runs with the same `mem` on a fresh stack, in the JIT when its VM has
    /// compiled code and in the interpreter otherwise. Returns the last program's r0.
    pub fn run(&self, mem: &mut [u8]) -> Result<u64, ExecError> {
        let ptr = if mem.is_empty() {
            std::ptr::null_mut()
        } else {
            mem.as_mut_ptr()
        };
        // SAFETY: `mem` is valid for reads and writes of its length for the whole call.
        unsafe { self.run_raw(ptr, mem.len()) }
    }

    /// [`ObjectProgram::run`] over a raw `mem` (null when empty).
    ///
    /// # Safety
    /// `mem` is null or valid for reads and writes of `mem_len` bytes for the whole call.
    pub unsafe fn run_raw(&self, mem: *mut u8, mem_len: usize) -> Result<u64, ExecError> {
        self.run_with(|vm| {
            if vm.jit_mode().is_some() {
                // SAFETY: the caller's contract on `mem`; a null stack gets a fresh one.
                unsafe { vm.execute_jit_raw(mem, mem_len, std::ptr::null_mut(), 0) }
            } else {
                // SAFETY: the caller's contract on `mem`.
                unsafe { vm.execute_on_own_stack(mem, mem_len) }
            }
        })
    }

    /// Runs the program and its tail calls with `exec` running each program's VM (for run
    /// drivers that give the programs more than `mem`, such as test runs with a packet).
    pub fn run_with(
        &self,
        exec: impl FnMut(&Vm) -> Result<u64, ExecError>,
    ) -> Result<u64, ExecError> {
        let table = &*self.table;
        let vm_of = |n: usize| table.get(n).map(ProgramVm::vm);
        tail::run_chain(&vm_of, &table.loaded, self.index, exec)
    }

    /// A test run (the kernel's `BPF_PROG_TEST_RUN`, [`test_run::test_run`]) of this program,
    /// following its tail calls ([`test_run::test_run_with`] driven by
    /// [`ObjectProgram::run_with`]): the packet, the context and the recorded redirect stay
    /// the same across the chain. With `opts.jit` this program is compiled first unless it
    /// was; the programs it tail-calls run compiled when they were compiled
    /// ([`Object::compile_programs`] compiles them all) and in the interpreter otherwise.
    /// Errors are the kernel's negative errno values; `-EINVAL` for a program that did not
    /// load or does not compile.
    pub fn test_run(&mut self, opts: &mut TestRunOptions<'_>) -> Result<(), i32> {
        let Some(vm) = self.vm_mut().map(ProgramVm::vm_mut) else {
            return Err(-libc::EINVAL);
        };
        if opts.jit && vm.jit_mode().is_none() {
            vm.compile(JitMode::Basic).map_err(|_| -libc::EINVAL)?;
        }
        let program_type = self.program_type;
        test_run::test_run_with(program_type, opts, &mut |each| self.run_with(each))
    }
}

/// An ELF object: its programs and the maps they share.
pub struct Object<V: ProgramVm = Vm> {
    /// libbpf's object name: the file name up to its first dot.
    name: String,
    bytes: Vec<u8>,
    maps: Vec<ObjectMap>,
    programs: Vec<ObjectProgram<V>>,
    helpers: Vec<HostHelper>,
    /// Initial values declared in BTF (`.values = { [i] = &x }`): (map, index, value).
    initial_values: Vec<(usize, u32, InitialValue)>,
    loaded: bool,
}

impl<V: ProgramVm> std::fmt::Debug for Object<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Object")
            .field("name", &self.name)
            .field("maps", &self.maps)
            .field("programs", &self.programs)
            .field("loaded", &self.loaded)
            .finish_non_exhaustive()
    }
}

/// libbpf's name for the global-data map of section `section` in object `object`
/// (`internal_map_name`): up to 15 characters, the object's name shortened so that the
/// section name fits, other characters than letters, digits, `_` and `.` made `_`.
fn libbpf_data_name(object: &str, section: &str) -> String {
    const NAME_LEN: usize = 16;
    let custom = section.get(1..).is_some_and(|rest| rest.contains('.'));
    let suffix = section.len().max(7);
    let prefix = if custom {
        0
    } else {
        (NAME_LEN - 1).saturating_sub(suffix).min(object.len())
    };
    let name: String = object
        .chars()
        .take(prefix)
        .chain(section.chars())
        .take(NAME_LEN - 1)
        .collect();
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The placeholder size of a map declared with `max_entries = 0`, until the host sets one.
fn placeholder_entries(def: &MapDef) -> u32 {
    if def.map_type == MapType::Ringbuf as u32 {
        4096
    } else {
        1
    }
}

impl<V: ProgramVm> Object<V> {
    /// Opens the object file at `path`; its name is the file name up to the first dot, as in
    /// libbpf.
    pub fn open(path: impl AsRef<std::path::Path>) -> Result<Self, ObjectError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| ObjectError::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = file.split('.').next().unwrap_or_default().to_owned();
        Self::from_bytes(bytes, &name)
    }

    /// Opens an object from its bytes under the name `name` (used only for libbpf's names of
    /// global-data maps).
    pub fn from_bytes(bytes: Vec<u8>, name: &str) -> Result<Self, ObjectError> {
        let elf = Elf::parse(&bytes)?;
        let (section_views, symbol_views) = elf.map_views();
        let (declared, _) =
            declared_map_defs(&section_views, &symbol_views).map_err(ObjectError::Map)?;

        let mut maps = Vec::new();
        let mut values = Vec::new();
        for d in declared {
            let mut d = d;
            if d.values.is_some() && d.def.map_type == MapType::ProgArray as u32 {
                // `__array(values, …)` declares no key or value type: libbpf's sizes.
                if d.def.key_size == 0 {
                    d.def.key_size = 4;
                }
                if d.def.value_size == 0 {
                    d.def.value_size = 4;
                }
            }
            let mut def = d.def;
            if def.max_entries == 0 && def.map_type == MapType::PerfEventArray as u32 {
                // libbpf sizes a perf event array declared without max_entries to the number
                // of possible CPUs; so does the loader (one slot per CPU, as docs/maps.md says).
                def.max_entries = u32::try_from(crate::exec::maps::possible_cpus()).unwrap_or(1);
            }
            let needs_size = def.max_entries == 0;
            if needs_size {
                def.max_entries = placeholder_entries(&def);
            }
            let (map, error) = match Map::new(d.name.clone(), def) {
                Ok(m) => (Some(Arc::new(m)), None),
                Err(e) => (None, Some(format!("map '{}': {e}", d.name))),
            };
            if let Some(start) = d.values {
                values.push((maps.len(), d.section, d.offset, start));
            }
            maps.push(ObjectMap {
                name: d.name,
                libbpf_name: None,
                source: MapSource::Declared {
                    section: d.section,
                    offset: d.offset,
                },
                def: d.def,
                map,
                error,
                needs_size: needs_size && error_free(&def),
            });
        }
        for (index, section) in elf.sections.iter().enumerate() {
            if !section.is_global_data() || section.size == 0 {
                continue;
            }
            let section_name = String::from_utf8_lossy(section.name).into_owned();
            let def = MapDef {
                map_type: MapType::Array as u32,
                key_size: 4,
                value_size: u32::try_from(section.size).unwrap_or(u32::MAX),
                max_entries: 1,
                map_flags: 0,
                map_extra: 0,
            };
            let created = Map::new(section_name.clone(), def).and_then(|m| {
                let mut value = vec![0u8; def.value_size as usize];
                if section.kind != SHT_NOBITS {
                    let n = value.len().min(section.data.len());
                    value[..n].copy_from_slice(&section.data[..n]);
                }
                m.update(&0u32.to_ne_bytes(), &value, BPF_ANY)
                    .map_err(|e| crate::exec::maps::CreateError::BadSize(e.to_string()))?;
                Ok(m)
            });
            let (map, error) = match created {
                Ok(m) => (Some(Arc::new(m)), None),
                Err(e) => (None, Some(format!("global data '{section_name}': {e}"))),
            };
            maps.push(ObjectMap {
                libbpf_name: Some(libbpf_data_name(name, &section_name)),
                name: section_name,
                source: MapSource::Data { section: index },
                def,
                map,
                error,
                needs_size: false,
            });
        }

        let mut programs = Vec::new();
        let mut by_position: Vec<usize> = (0..elf.funcs.len()).collect();
        by_position.sort_by_key(|&f| (elf.funcs[f].section, elf.funcs[f].start));
        for f in by_position {
            let func = &elf.funcs[f];
            let section = &elf.sections[func.section];
            if section.name == b".text" || func.size == 0 {
                continue;
            }
            let section = String::from_utf8_lossy(section.name).into_owned();
            programs.push(ObjectProgram {
                name: func.name.clone(),
                program_type: ProgramType::from_section(&section),
                section,
                func: f,
                index: programs.len(),
                error: None,
                object_loaded: false,
                table: Arc::new(Table::empty()),
            });
        }

        // Initial values: relocations in the definition's `values` array, against programs
        // (PROG_ARRAY) or against other maps' definitions (maps of maps).
        let mut initial_values = Vec::new();
        for (map, section, offset, start) in values {
            let end = elf
                .symbols
                .iter()
                .find(|s| s.section == Some(section) && s.value == offset && s.size > 0)
                .map_or(u64::MAX, |s| offset.saturating_add(s.size));
            let mut entries: Vec<_> = elf
                .relocs
                .iter()
                .filter(|((s, at), _)| *s == section && *at >= start && *at < end)
                .collect();
            entries.sort_by_key(|((_, at), _)| *at);
            for ((_, at), reloc) in entries {
                let sym = &elf.symbols[reloc.symbol];
                let map_name = &maps[map].name;
                let program = sym
                    .section
                    .and_then(|s| elf.func_at(s, sym.value))
                    .and_then(|f| programs.iter().position(|p| p.func == f));
                let inner = maps.iter().position(|m: &ObjectMap| {
                    matches!(m.source, MapSource::Declared { section, offset }
                        if Some(section) == sym.section && offset == sym.value)
                });
                let value = match (program, inner) {
                    (Some(p), _) => InitialValue::Program(p),
                    (None, Some(m)) => InitialValue::Map(m),
                    (None, None) => {
                        return Err(ObjectError::Map(format!(
                            "map '{map_name}': initial value '{}' is neither a program nor a map",
                            String::from_utf8_lossy(sym.name)
                        )));
                    }
                };
                let slot = u32::try_from((at - start) / 8).unwrap_or(u32::MAX);
                initial_values.push((map, slot, value));
            }
        }

        Ok(Object {
            name: name.to_owned(),
            bytes,
            maps,
            programs,
            helpers: Vec::new(),
            initial_values,
            loaded: false,
        })
    }

    /// The object's name (libbpf's: the file name up to its first dot).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether [`Object::load`] has run.
    pub fn is_loaded(&self) -> bool {
        self.loaded
    }

    /// Every map, in declaration order, then global data in section order.
    pub fn maps(&self) -> &[ObjectMap] {
        &self.maps
    }

    /// The map called `name`: a map's symbol, a global-data section (`.rodata`) or libbpf's
    /// name for it (`<object>.rodata`). `None` also for a map that could not be created.
    pub fn map(&self, name: &str) -> Option<&Arc<Map>> {
        self.maps.iter().find(|m| m.is_named(name))?.map.as_ref()
    }

    /// The position of the map whose handle ([`Map::handle`], the address of the map, which
    /// is what `struct rbpf_map *` points to) is `handle`.
    pub fn map_index_by_handle(&self, handle: u64) -> Option<usize> {
        self.maps
            .iter()
            .position(|m| m.map.as_ref().is_some_and(|map| map.handle() == handle))
    }

    /// Sets the `max_entries` of the map called `name` before load (libbpf's
    /// `bpf_map__set_max_entries`); a map declared with 0 needs this to be usable.
    pub fn set_max_entries(&mut self, name: &str, max_entries: u32) -> Result<(), ObjectError> {
        let index = self
            .maps
            .iter()
            .position(|m| m.is_named(name))
            .ok_or_else(|| ObjectError::NoSuchMap(name.to_owned()))?;
        self.set_max_entries_at(index, max_entries)
    }

    /// [`Object::set_max_entries`] for the map at `index` in [`Object::maps`]. The map keeps
    /// its address (the handle C hosts hold stays valid); its contents are emptied.
    pub fn set_max_entries_at(
        &mut self,
        index: usize,
        max_entries: u32,
    ) -> Result<(), ObjectError> {
        if self.loaded {
            return Err(ObjectError::AlreadyLoaded);
        }
        let entry = self
            .maps
            .get_mut(index)
            .ok_or_else(|| ObjectError::NoSuchMap(index.to_string()))?;
        let bad = |reason: String| ObjectError::BadSize {
            name: entry.name.clone(),
            reason,
        };
        if matches!(entry.source, MapSource::Data { .. }) {
            return Err(bad("global data has exactly one entry".into()));
        }
        let def = MapDef {
            max_entries,
            ..entry.def
        };
        let map = Map::new(entry.name.clone(), def).map_err(|e| bad(e.to_string()))?;
        match &mut entry.map {
            Some(arc) => {
                // Before load only the object holds the map, so it can change in place.
                let slot = Arc::get_mut(arc).ok_or(ObjectError::AlreadyLoaded)?;
                *slot = map;
            }
            None => entry.map = Some(Arc::new(map)),
        }
        entry.def = def;
        entry.error = None;
        entry.needs_size = false;
        Ok(())
    }

    /// Registers helper `f` at `index` (0..256) for every program of the object, replacing a
    /// kernel helper at that number; before load only.
    pub fn register_helper(
        &mut self,
        index: u32,
        name: Option<&str>,
        f: HelperFn,
    ) -> Result<(), ObjectError> {
        if self.loaded {
            return Err(ObjectError::AlreadyLoaded);
        }
        if index as usize >= crate::isa::HELPER_SLOTS {
            return Err(ObjectError::HelperIndex(index));
        }
        self.helpers.retain(|h| h.index != index);
        self.helpers.push(HostHelper {
            index,
            name: name.map(str::to_owned),
            f,
        });
        Ok(())
    }

    /// Every program, in section order.
    pub fn programs(&self) -> &[ObjectProgram<V>] {
        &self.programs
    }

    /// Every program, for changes.
    pub fn programs_mut(&mut self) -> &mut [ObjectProgram<V>] {
        &mut self.programs
    }

    /// Compiles every loaded program that is not compiled yet with `mode`, so that runs with
    /// tail calls ([`ObjectProgram::run`], JIT test runs) run compiled code throughout.
    /// Returns the programs that did not compile (they keep running in the interpreter),
    /// each with its name and why.
    pub fn compile_programs(&mut self, mode: JitMode) -> Vec<(String, JitError)> {
        let mut failed = Vec::new();
        for program in &mut self.programs {
            let name = program.name.clone();
            if let Some(vm) = program.vm_mut().map(ProgramVm::vm_mut)
                && vm.jit_mode().is_none()
                && let Err(e) = vm.compile(mode)
            {
                failed.push((name, e));
            }
        }
        failed
    }

    /// The program whose function is called `name`, else the first in section `name`.
    pub fn program(&self, name: &str) -> Option<&ObjectProgram<V>> {
        let i = self.program_position(name)?;
        self.programs.get(i)
    }

    /// [`Object::program`], for changes.
    pub fn program_mut(&mut self, name: &str) -> Option<&mut ObjectProgram<V>> {
        let i = self.program_position(name)?;
        self.programs.get_mut(i)
    }

    fn program_position(&self, name: &str) -> Option<usize> {
        self.programs
            .iter()
            .position(|p| p.name == name)
            .or_else(|| self.programs.iter().position(|p| p.section == name))
    }

    /// Links, verifies and loads every program, each on its own. Returns `Ok` when all
    /// loaded; otherwise [`ObjectError::LoadFailed`] names each failed program (and map
    /// problem) with its reason, and the programs that loaded are usable. Loads once.
    pub fn load(&mut self) -> Result<(), ObjectError> {
        if self.loaded {
            return Err(ObjectError::AlreadyLoaded);
        }
        self.loaded = true;
        let bytes = std::mem::take(&mut self.bytes);
        let result = self.load_programs(&bytes);
        self.bytes = bytes;
        result
    }

    fn load_programs(&mut self, bytes: &[u8]) -> Result<(), ObjectError> {
        let elf = Elf::parse(bytes)?;
        let mut failures = Vec::new();
        let shared = MapSet::new(self.maps.iter().filter_map(|m| m.map.clone()).collect());
        let resolver = Resolver::new(&self.maps);

        let mut vms: Vec<Option<NonNull<V>>> = Vec::with_capacity(self.programs.len());
        for program in &mut self.programs {
            program.object_loaded = true;
            let prog_type = program.program_type;
            match build_vm(
                &elf,
                program.func,
                prog_type,
                &self.helpers,
                &resolver,
                &shared,
            ) {
                Ok(vm) => {
                    let boxed = Box::new(V::from_vm(vm));
                    vms.push(Some(NonNull::from(Box::leak(boxed))));
                }
                Err(reason) => {
                    failures.push(format!("program '{}': {reason}", program.name));
                    program.error = Some(reason);
                    vms.push(None);
                }
            }
        }
        let loaded = vms.iter().map(Option::is_some).collect();
        let table = Arc::new(Table { vms, loaded });
        for program in &mut self.programs {
            program.table = Arc::clone(&table);
        }

        for &(map, slot, value) in &self.initial_values {
            let entry = &self.maps[map];
            let Some(m) = &entry.map else { continue };
            let value = match value {
                InitialValue::Program(program) => u32::try_from(program).unwrap_or(u32::MAX),
                InitialValue::Map(inner) => match &self.maps[inner].map {
                    Some(inner) => inner.id(),
                    None => {
                        failures.push(format!(
                            "map '{}': initial value at index {slot}: map '{}' was not created",
                            entry.name, self.maps[inner].name
                        ));
                        continue;
                    }
                },
            };
            if let Err(e) = m.update(&slot.to_ne_bytes(), &value.to_ne_bytes(), BPF_ANY) {
                failures.push(format!(
                    "map '{}': initial value at index {slot}: {e}",
                    entry.name
                ));
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(ObjectError::LoadFailed(failures))
        }
    }
}

/// Whether a map definition with a placeholder size created fine (only those need a size
/// from the host; the others already carry their own error).
fn error_free(def: &MapDef) -> bool {
    Map::new("", *def).is_ok()
}

/// Creates, links, verifies and loads the VM of the program whose function is `func`, with
/// its context accesses converted for `prog_type` (`crate::kernel::context`).
fn build_vm(
    elf: &Elf<'_>,
    func: usize,
    prog_type: ProgramType,
    helpers: &[HostHelper],
    resolver: &Resolver<'_>,
    maps: &MapSet,
) -> Result<Vm, String> {
    let mut vm = Vm::new();
    vm.register_linux_helpers().map_err(|e| e.to_string())?;
    vm.register_helper(
        tail::BPF_TAIL_CALL,
        Some("bpf_tail_call"),
        tail::bpf_tail_call,
    )
    .map_err(|e| e.to_string())?;
    for h in helpers {
        vm.register_helper(h.index, h.name.as_deref(), h.f)
            .map_err(|e| e.to_string())?;
    }
    if !helpers.iter().any(|h| h.index == tail::BPF_TAIL_CALL) {
        // A recorded tail call ends the caller at once, from any depth (`tail`).
        vm.set_unwind_index(tail::BPF_TAIL_CALL)
            .map_err(|e| e.to_string())?;
    }
    let code = link::link_program(elf, func, &vm, resolver)?;
    vm.load_kernel_program(&code, prog_type)
        .map_err(|e| e.to_string())?;
    // After the load, which starts every program with no maps.
    vm.machine.maps.maps = maps.clone();
    Ok(vm)
}

/// Resolves relocations against the object's maps and global data.
struct Resolver<'a> {
    maps: &'a [ObjectMap],
    declared: HashMap<(usize, u64), usize>,
    map_sections: Vec<usize>,
    data: HashMap<usize, usize>,
}

impl<'a> Resolver<'a> {
    fn new(maps: &'a [ObjectMap]) -> Self {
        let mut declared = HashMap::new();
        let mut map_sections = Vec::new();
        let mut data = HashMap::new();
        for (i, m) in maps.iter().enumerate() {
            match m.source {
                MapSource::Declared { section, offset } => {
                    declared.insert((section, offset), i);
                    map_sections.push(section);
                }
                MapSource::Data { section } => {
                    data.insert(section, i);
                }
            }
        }
        Resolver {
            maps,
            declared,
            map_sections,
            data,
        }
    }

    fn usable(&self, i: usize) -> Result<&Arc<Map>, String> {
        let m = &self.maps[i];
        if let Some(e) = m.error() {
            return Err(e);
        }
        m.map
            .as_ref()
            .ok_or_else(|| format!("map '{}' was not created", m.name))
    }
}

impl link::Resolver for Resolver<'_> {
    fn map_handle(&self, section: usize, offset: u64) -> Option<Result<u64, String>> {
        if !self.map_sections.contains(&section) {
            return None;
        }
        Some(match self.declared.get(&(section, offset)) {
            Some(&i) => self.usable(i).map(|m| m.handle()),
            None => Err(format!(
                "a relocation names offset {offset} of a map section, where no map is"
            )),
        })
    }

    fn data_address(&self, section: usize) -> Option<Result<u64, String>> {
        let &i = self.data.get(&section)?;
        Some(self.usable(i).and_then(|m| {
            m.lookup_ptr(&0u32.to_ne_bytes())
                .map(|p| p as u64)
                .ok_or_else(|| format!("global data '{}' has no value", m.name()))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::libbpf_data_name;

    #[test]
    fn data_map_names_follow_libbpf() {
        assert_eq!(libbpf_data_name("globals", ".rodata"), "globals.rodata");
        assert_eq!(libbpf_data_name("flow_counter", ".bss"), "flow_cou.bss");
        assert_eq!(libbpf_data_name("x", ".rodata.str1.1"), ".rodata.str1.1");
        assert_eq!(libbpf_data_name("my-obj", ".data"), "my_obj.data");
    }
}
