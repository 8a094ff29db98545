//! The ELF loader: `ubpf_load_elf` / `ubpf_load_elf_ex` semantics (`docs/elf.md`) for
//! relocatable eBPF objects such as `clang -target bpf -c` produces.
//!
//! [`Vm::load_elf`] runs uBPF's checks in uBPF's order and with its texts, links every
//! function of every executable section into one program (main first), applies the
//! relocations, and hands the result to the verifier. The `object` crate provides the ELF
//! record layouts and field accessors; this module decides which offsets and sizes to trust and
//! checks every one of them against the file, so malformed input gives an [`ElfError`], never a
//! panic or an out-of-bounds read.
//!
//! Behaviour beyond uBPF (each only turns a uBPF failure or mislink into a working program):
//! - a `call` with src = 1 whose `R_BPF_64_32` relocation names an *undefined* symbol (what
//!   clang emits for a call to an `extern` function) is resolved as a helper by name and
//!   rewritten into a helper call (src = 0);
//! - a local call's target is `st_value + (imm + 1) * 8` in the symbol's section (uBPF ignores
//!   `st_value`, which is 0 for the section symbols clang uses for static functions, but not
//!   for the function symbols it uses for global ones);
//! - local calls that clang resolved itself (no relocation) are re-targeted when linking moves
//!   functions (uBPF leaves their offsets stale);
//! - a relocation may apply to the first instruction of a function (uBPF's search skips it);
//! - without an entry name, when `.text` exists but has no function at offset 0 (libbpf-style
//!   objects, one program per section), main is the first function that starts a section;
//! - maps declared in `.maps` (BTF) or `maps` are created, and `lddw`s relocated against
//!   them receive the map's handle (`docs/maps.md`);
//! - without a data-relocation callback, `R_BPF_64_64` relocations against `.data`, `.bss`,
//!   `.rodata` (and their `.data.*`/`.bss.*`/`.rodata.*` variants) are served from copies of
//!   those sections owned by the loaded program ([`DataSection`]); the `lddw` receives the
//!   copy's address plus the symbol offset plus the addend clang left in the `lddw`.
//!
//! Where uBPF reads out of bounds or keeps an arbitrary choice, librbpf decides:
//! - a function symbol whose bytes lie outside its section, or a call relocation whose
//!   instruction runs past its function, is an error ([`ElfError::FunctionOutsideSection`],
//!   [`ElfError::BadCallRelocationOffset`]); an `lddw` relocation must also fit its function;
//! - a section header is checked whole (uBPF checks 8 of its 64 bytes);
//! - names must end within [`MAX_NAME_LEN`] bytes (a longer one is a bad name);
//! - when several symbols qualify as main, the first is main and the others are ordinary
//!   functions (uBPF keeps the last and drops the others);
//! - a program too large for `ubpf_load` fails with `ubpf_load`'s message before relocation.

#![deny(clippy::arithmetic_side_effects)]

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use object::LittleEndian;
use object::elf::{
    ELFCLASS64, ELFDATA2LSB, ELFMAG, ELFOSABI_NONE, EM_BPF, EM_NONE, ET_REL, EV_CURRENT,
    FileHeader64, R_BPF_64_32, R_BPF_64_64, Rel64, SHF_ALLOC, SHF_EXECINSTR, SHF_WRITE, SHN_UNDEF,
    SHT_NOBITS, SHT_PROGBITS, SHT_REL, SHT_STRTAB, SHT_SYMTAB, STT_FUNC, STT_NOTYPE, STT_OBJECT,
    SectionHeader64, Sym64,
};
use object::read::elf::{SectionHeader as _, Sym as _};

use crate::error::{ElfError, LoadError};
use crate::isa::{INSN_SIZE, Insn, MAX_INSTS, call_kind, op};
use crate::kernel::object_maps::{ObjectMaps, SectionView, SymbolView, declared_maps};
use crate::program::DataSection;
use crate::vm::Vm;

type Ehdr = FileHeader64<LittleEndian>;
type Shdr = SectionHeader64<LittleEndian>;
type Sym = Sym64<LittleEndian>;
type Rel = Rel64<LittleEndian>;
const LE: LittleEndian = LittleEndian;

/// uBPF's `MAX_SECTIONS`: files with more section headers are refused.
pub const MAX_SECTIONS: usize = 32;
/// Size of the ELF64 file header; shorter input is refused.
pub const ELF_HEADER_SIZE: usize = 64;
/// Size of one ELF64 section header.
const SHDR_SIZE: u64 = 64;
/// Size of one ELF64 symbol.
const SYM_SIZE: usize = 24;
/// Size of one ELF64 `Rel` entry.
const REL_SIZE: usize = 16;
/// Size of one instruction slot, as a file offset.
const SLOT: u64 = INSN_SIZE as u64;
/// Size of an `lddw` (two slots), as a file offset.
const LDDW_SIZE: u64 = 16;
/// The relocation type older toolchains (and uBPF's test template) use for calls.
pub const R_BPF_64_32_LEGACY: u32 = 2;
/// Section flags of an executable section, which uBPF requires exactly.
const EXEC_FLAGS: u64 = (SHF_ALLOC | SHF_EXECINSTR) as u64;
/// Section flags of a data section accepted by uBPF's `R_BPF_64_64` check, exactly.
const DATA_FLAGS: u64 = (SHF_ALLOC | SHF_WRITE) as u64;

/// One function of the linked program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedFunction {
    /// The symbol name.
    pub name: String,
    /// Byte offset in the linked code (main is at 0).
    pub offset: usize,
    /// Size in bytes.
    pub size: usize,
}

/// What [`Vm::link_elf`] produces: the linked bytecode, not yet verified.
#[derive(Debug)]
pub struct LinkedElf {
    /// Little-endian bytecode: main first, then every other function in symbol order.
    pub code: Vec<u8>,
    /// The functions in linked order.
    pub functions: Vec<LinkedFunction>,
    /// Sections copied for data relocations (only when no data-relocation callback is set).
    pub data_sections: Vec<DataSection>,
    /// Maps the object declares (`.maps` with BTF, legacy `maps`), created while linking.
    pub maps: Vec<std::sync::Arc<crate::exec::maps::Map>>,
    /// The programs `PROG_ARRAY` values number, when the object makes tail calls.
    pub programs: Vec<String>,
    /// Warnings printed while linking (`Warning: bad relocation type N; skipping.`), without
    /// the trailing newline. [`Vm::load_elf`] sends them to the error printer.
    pub warnings: Vec<String>,
}

/// `bytes[offset .. offset + size]`, if it lies inside `bytes` (uBPF's `bounds_check`, which
/// also refuses an empty range that starts past the end).
fn file_range(bytes: &[u8], offset: u64, size: u64) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(size).ok()?)?;
    bytes.get(start..end)
}

/// A symbol name as the non-executable-section error prints it: `(null)` for the empty name
/// (string table offset 0), which is what uBPF prints there (docs/elf.md).
fn printed_name(name: &[u8]) -> String {
    if name.is_empty() {
        "(null)".to_owned()
    } else {
        lossy(name).into_owned()
    }
}

/// Longest symbol or section name accepted, in bytes. uBPF has no limit (it reads C strings
/// straight out of the file); bounding names keeps the work per relocation bounded.
pub const MAX_NAME_LEN: usize = 4096;

/// The NUL-terminated string at `offset` of a string table, or `None` if `offset` is not inside
/// it or the name is longer than [`MAX_NAME_LEN`]. A short string that runs to the end of the
/// table without a NUL is cut there.
fn c_string(table: &[u8], offset: u32) -> Option<&[u8]> {
    let tail = table.get(usize::try_from(offset).ok()?..)?;
    if tail.is_empty() {
        return None;
    }
    let window = &tail[..tail.len().min(MAX_NAME_LEN.saturating_add(1))];
    // `CStr` finds the NUL with std's optimised search, which matters for long names.
    match std::ffi::CStr::from_bytes_until_nul(window) {
        Ok(name) => Some(name.to_bytes()),
        Err(_) if tail.len() <= MAX_NAME_LEN => Some(tail),
        Err(_) => None,
    }
}

/// A section header with its contents (for SHT_NOBITS: the file range uBPF checks anyway).
struct Section<'a> {
    header: &'a Shdr,
    data: &'a [u8],
}

impl Section<'_> {
    fn kind(&self) -> u32 {
        self.header.sh_type(LE)
    }

    fn flags(&self) -> u64 {
        self.header.sh_flags(LE)
    }

    fn size(&self) -> u64 {
        self.header.sh_size(LE)
    }

    /// uBPF's test for a code section: PROGBITS with flags exactly ALLOC|EXECINSTR.
    fn is_executable(&self) -> bool {
        self.kind() == SHT_PROGBITS && self.flags() == EXEC_FLAGS
    }
}

/// A function collected from the symbol table.
struct Func<'a> {
    name: &'a [u8],
    section: usize,
    start: u64,
    size: u64,
    /// Byte offset in the linked code.
    landed: usize,
}

impl Func<'_> {
    fn end(&self) -> u64 {
        // Cannot overflow: `start + size` was checked against the section when collected.
        self.start.saturating_add(self.size)
    }

    /// Linked byte offset of the section offset `offset`, which must lie inside this function.
    fn linked(&self, offset: u64) -> usize {
        let delta = offset.saturating_sub(self.start);
        // Cannot fail: delta < size, and size fits in usize (the function was copied).
        self.landed
            .saturating_add(usize::try_from(delta).unwrap_or(usize::MAX))
    }
}

/// The parsed file: sections, the first string table and the first symbol table.
struct Elf<'a> {
    sections: Vec<Section<'a>>,
    strtab: &'a [u8],
    symbols: &'a [Sym],
}

impl<'a> Elf<'a> {
    /// `docs/elf.md`, "Header checks": header and section-table checks, in uBPF's order.
    fn parse(bytes: &'a [u8]) -> Result<Self, ElfError> {
        let header_bytes = bytes.get(..ELF_HEADER_SIZE).ok_or(ElfError::TooShort)?;
        let (header, _) =
            object::pod::from_bytes::<Ehdr>(header_bytes).map_err(|()| ElfError::TooShort)?;
        let ident = &header.e_ident;
        if ident.magic != ELFMAG {
            return Err(ElfError::WrongMagic);
        }
        if ident.class != ELFCLASS64 {
            return Err(ElfError::WrongClass);
        }
        if ident.data != ELFDATA2LSB {
            return Err(ElfError::WrongByteOrder);
        }
        if ident.version != EV_CURRENT {
            return Err(ElfError::WrongVersion);
        }
        if ident.os_abi != ELFOSABI_NONE {
            return Err(ElfError::WrongOsAbi);
        }
        if header.e_type.get(LE) != ET_REL {
            return Err(ElfError::WrongType);
        }
        let machine = header.e_machine.get(LE);
        if machine != EM_NONE && machine != EM_BPF {
            return Err(ElfError::WrongMachine(machine));
        }
        let count = usize::from(header.e_shnum.get(LE));
        if count > MAX_SECTIONS {
            return Err(ElfError::TooManySections);
        }

        // Headers sit e_shentsize apart from e_shoff (uBPF does not insist on 64); each one is
        // checked whole, and its contents right after it, as uBPF interleaves the two checks.
        let stride = u64::from(header.e_shentsize.get(LE));
        let mut offset = Some(header.e_shoff.get(LE));
        let mut sections = Vec::with_capacity(count);
        for _ in 0..count {
            let header_bytes = offset
                .and_then(|at| file_range(bytes, at, SHDR_SIZE))
                .ok_or(ElfError::BadSectionHeader)?;
            let (header, _) = object::pod::from_bytes::<Shdr>(header_bytes)
                .map_err(|()| ElfError::BadSectionHeader)?;
            offset = offset.and_then(|at| at.checked_add(stride));
            // uBPF checks the range of SHT_NOBITS sections (.bss) against the file too.
            let data = file_range(bytes, header.sh_offset(LE), header.sh_size(LE))
                .ok_or(ElfError::BadSectionOffset)?;
            sections.push(Section { header, data });
        }

        let strtab = sections
            .iter()
            .find(|s| s.kind() == SHT_STRTAB)
            .ok_or(ElfError::NoStringTable)?
            .data;
        let symtab = sections
            .iter()
            .find(|s| s.kind() == SHT_SYMTAB)
            .ok_or(ElfError::NoSymbolTable)?
            .data;
        let symbols = symbols_of(symtab);
        Ok(Elf {
            sections,
            strtab,
            symbols,
        })
    }

    /// The name of section `index`, looked up (like uBPF) in the first string table.
    fn section_name(&self, index: usize) -> &'a [u8] {
        self.sections
            .get(index)
            .and_then(|s| c_string(self.strtab, s.header.sh_name(LE)))
            .unwrap_or(b"")
    }
}

/// A symbol table's entries (a trailing partial entry is ignored, as uBPF's division does).
fn symbols_of(data: &[u8]) -> &[Sym] {
    object::pod::slice_from_bytes::<Sym>(data, data.len() / SYM_SIZE)
        .map(|(symbols, _)| symbols)
        .unwrap_or(&[])
}

/// A relocation section's entries (a trailing partial entry is ignored).
fn relocations_of(data: &[u8]) -> &[Rel] {
    object::pod::slice_from_bytes::<Rel>(data, data.len() / REL_SIZE)
        .map(|(rels, _)| rels)
        .unwrap_or(&[])
}

fn lossy(name: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(name)
}

/// Whether the loader may serve `R_BPF_64_64` relocations against this section from its own
/// copy (only when no data-relocation callback is registered).
fn is_loader_data_section(name: &[u8], section: &Section<'_>) -> bool {
    let named = matches!(name, b".data" | b".bss" | b".rodata")
        || name.starts_with(b".data.")
        || name.starts_with(b".bss.")
        || name.starts_with(b".rodata.");
    let flags = section.flags();
    named
        && matches!(section.kind(), SHT_PROGBITS | SHT_NOBITS)
        && flags & u64::from(SHF_ALLOC) != 0
        && flags & u64::from(SHF_EXECINSTR) == 0
}

/// The 64-bit immediate an `lddw`'s two slots carry (low half in the first).
fn lddw_immediate(first: Insn, second: Insn) -> u64 {
    first.lddw_value(Some(&second))
}

fn read_insn(code: &[u8], at: usize) -> Option<Insn> {
    let bytes: [u8; INSN_SIZE] = code.get(at..at.checked_add(INSN_SIZE)?)?.try_into().ok()?;
    Some(Insn::from_bytes(bytes))
}

fn write_insn(code: &mut [u8], at: usize, insn: Insn) {
    if let Some(slot) = at
        .checked_add(INSN_SIZE)
        .and_then(|end| code.get_mut(at..end))
    {
        slot.copy_from_slice(&insn.to_bytes());
    }
}

/// The `imm` of a call at linked byte offset `call_at` that reaches the function at linked byte
/// offset `target_at` (both divided into slots as uBPF does).
fn call_displacement(call_at: usize, target_at: usize) -> Result<i32, ElfError> {
    let slot = |bytes: usize| i64::try_from(bytes / INSN_SIZE).ok();
    let (call, target) = slot(call_at)
        .zip(slot(target_at))
        .ok_or(ElfError::UnknownCallTarget)?;
    target
        .checked_sub(call)
        .and_then(|d| d.checked_sub(1))
        .and_then(|d| i32::try_from(d).ok())
        .ok_or(ElfError::UnknownCallTarget)
}

/// Splits possibly overlapping `(start, end, order)` intervals into disjoint sorted pieces,
/// each owned by the lowest-order interval covering it (a sweep over the interval ends with a
/// heap of the open intervals: O(n log n)).
fn first_owner_pieces(mut intervals: Vec<(u64, u64, usize)>) -> Vec<(u64, u64, usize)> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    let mut points: Vec<u64> = intervals.iter().flat_map(|&(s, e, _)| [s, e]).collect();
    points.sort_unstable();
    points.dedup();
    intervals.sort_unstable();
    let mut open: BinaryHeap<Reverse<(usize, u64)>> = BinaryHeap::new();
    let mut next = intervals.iter().peekable();
    let mut pieces: Vec<(u64, u64, usize)> = Vec::new();
    for pair in points.windows(2) {
        let (from, to) = (pair[0], pair[1]);
        while let Some(&&(start, end, order)) = next.peek() {
            if start > from {
                break;
            }
            open.push(Reverse((order, end)));
            next.next();
        }
        while open.peek().is_some_and(|Reverse((_, end))| *end <= from) {
            open.pop();
        }
        if let Some(&Reverse((owner, _))) = open.peek() {
            match pieces.last_mut() {
                Some(last) if last.1 == from && last.2 == owner => last.1 = to,
                _ => pieces.push((from, to, owner)),
            }
        }
    }
    pieces
}

/// State while linking one file.
struct Linker<'v, 'a, 'w> {
    vm: &'v Vm,
    /// Receives each warning as it occurs.
    warn: &'w mut dyn FnMut(&str),
    elf: Elf<'a>,
    funcs: Vec<Func<'a>>,
    code: Vec<u8>,
    data_sections: Vec<DataSection>,
    /// ELF section index → index in `data_sections`.
    owned: HashMap<usize, usize>,
    /// Linked byte offsets of instructions a relocation has rewritten.
    relocated: HashSet<usize>,
    /// Per section: disjoint `(start, end, function)` pieces, sorted, giving for every offset
    /// the first function (in linked order) that contains it.
    owners: HashMap<usize, Vec<(u64, u64, usize)>>,
    /// (section, start offset) → the first function (in linked order) starting there.
    starts: HashMap<(usize, u64), usize>,
    /// The maps the object declares.
    maps: ObjectMaps,
    /// Functions (indices in `funcs`) named as `bpf_loop` callbacks; callback id = index + 1.
    callbacks: Vec<usize>,
    /// `(linked offset of a call 12, linked offset of its stub)`.
    tail_calls: Vec<(usize, usize)>,
}

impl<'v, 'a, 'w> Linker<'v, 'a, 'w> {
    /// `docs/elf.md`, "Functions": collect every STT_FUNC symbol; main first, the rest in symbol order.
    fn collect_functions(
        vm: &'v Vm,
        warn: &'w mut dyn FnMut(&str),
        elf: Elf<'a>,
        entry: Option<&str>,
    ) -> Result<Self, ElfError> {
        let count = elf.sections.len();
        let mut main: Option<Func<'a>> = None;
        let mut others = Vec::new();
        for sym in elf.symbols {
            if sym.st_type() != STT_FUNC {
                continue;
            }
            let name = c_string(elf.strtab, sym.st_name(LE)).ok_or(ElfError::BadFunctionName)?;
            let index = usize::from(sym.st_shndx(LE));
            // uBPF's off-by-one: an index equal to the count passes this check (and then reads
            // past its table); here it finds no section and fails the next check.
            if index > count {
                return Err(ElfError::BadFunctionSection);
            }
            let section = elf
                .sections
                .get(index)
                .filter(|s| s.is_executable())
                .ok_or_else(|| ElfError::NonExecutableFunction(printed_name(name)))?;
            let start = sym.st_value(LE);
            let size = sym.st_size(LE);
            if start
                .checked_add(size)
                .is_none_or(|end| end > section.size())
            {
                return Err(ElfError::FunctionOutsideSection(lossy(name).into_owned()));
            }
            let is_main = match entry {
                Some(wanted) => name == wanted.as_bytes(),
                None => elf.section_name(index) == b".text" && start == 0,
            };
            let func = Func {
                name,
                section: index,
                start,
                size,
                landed: 0,
            };
            // When several symbols qualify, the first is main and the rest are ordinary
            // functions (uBPF keeps the last and drops the others).
            if is_main && main.is_none() {
                main = Some(func);
            } else {
                others.push(func);
            }
        }
        let has_text = (0..count).any(|i| elf.section_name(i) == b".text");
        // With the kernel's helpers registered, objects are libbpf-style: programs live in
        // named sections and `.text` holds their subprograms (bpf_loop callbacks, ...).
        let libbpf_style = vm.machine.maps.publish_runs;
        if entry.is_none()
            && libbpf_style
            && let Some(i) = others
                .iter()
                .position(|f| f.start == 0 && f.size > 0 && elf.section_name(f.section) != b".text")
        {
            let program = others.remove(i);
            if let Some(text_main) = main.replace(program) {
                others.insert(0, text_main);
            }
        }
        if main.is_none() && entry.is_none() && has_text {
            // libbpf-style objects put each program in its own section (`SEC("xdp")`) and
            // leave `.text` empty: the first function starting a section is then main.
            if let Some(i) = others.iter().position(|f| f.start == 0 && f.size > 0) {
                main = Some(others.remove(i));
            }
        }
        let main =
            main.ok_or_else(|| ElfError::MainNotFound(entry.unwrap_or("(null)").to_owned()))?;
        let mut funcs = Vec::with_capacity(others.len().saturating_add(1));
        funcs.push(main);
        funcs.extend(others);
        Ok(Linker {
            vm,
            warn,
            elf,
            funcs,
            code: Vec::new(),
            data_sections: Vec::new(),
            owned: HashMap::new(),
            relocated: HashSet::new(),
            owners: HashMap::new(),
            starts: HashMap::new(),
            maps: ObjectMaps::default(),
            callbacks: Vec::new(),
            tail_calls: Vec::new(),
        })
    }

    /// Copies every function into the linked image. A program too large for `ubpf_load` is
    /// refused here with the error `ubpf_load` would give, before anything is allocated.
    fn lay_out(&mut self) -> Result<(), ElfError> {
        let total = self
            .funcs
            .iter()
            .try_fold(0u64, |sum, f| sum.checked_add(f.size));
        let slots = total.map(|t| t / SLOT);
        if slots.is_none_or(|n| n >= MAX_INSTS as u64) {
            return Err(ElfError::Load(if self.vm.program().is_some() {
                LoadError::AlreadyLoaded
            } else if total.is_some_and(|t| t % SLOT != 0) {
                LoadError::LengthNotMultipleOf8
            } else {
                LoadError::TooManyInstructions { max: MAX_INSTS }
            }));
        }
        for func in &mut self.funcs {
            let bytes = self
                .elf
                .sections
                .get(func.section)
                .and_then(|s| file_range(s.data, func.start, func.size))
                .ok_or_else(|| ElfError::FunctionOutsideSection(lossy(func.name).into_owned()))?;
            func.landed = self.code.len();
            self.code.extend_from_slice(bytes);
            if self.vm.machine.maps.publish_runs && func.size % SLOT == 0 {
                // Room for each tail call's stub, inside the function (`link_tail_calls`).
                for site in crate::kernel::helpers::tail_call_sites(bytes) {
                    let stub = self.code.len();
                    let stub_bytes = crate::kernel::helpers::TAIL_STUB_SLOTS * INSN_SIZE;
                    self.code.resize(stub.saturating_add(stub_bytes), 0);
                    self.tail_calls
                        .push((func.landed.saturating_add(site), stub));
                }
            }
        }
        // Index the functions for the relocation pass (first function wins, as in uBPF's
        // searches).
        let mut by_section: HashMap<usize, Vec<(u64, u64, usize)>> = HashMap::new();
        for (index, func) in self.funcs.iter().enumerate() {
            self.starts
                .entry((func.section, func.start))
                .or_insert(index);
            if func.size > 0 {
                by_section
                    .entry(func.section)
                    .or_default()
                    .push((func.start, func.end(), index));
            }
        }
        self.owners = by_section
            .into_iter()
            .map(|(section, intervals)| (section, first_owner_pieces(intervals)))
            .collect();
        Ok(())
    }

    /// The first function (in linked order) of `section` that contains `offset`.
    fn function_containing(&self, section: usize, offset: u64) -> Option<usize> {
        let pieces = self.owners.get(&section)?;
        let i = pieces.partition_point(|&(start, _, _)| start <= offset);
        let &(_, end, owner) = pieces.get(i.checked_sub(1)?)?;
        (offset < end).then_some(owner)
    }

    /// The first function starting at `offset` of `section`.
    fn function_at(&self, section: usize, offset: u64) -> Option<&Func<'a>> {
        let &index = self.starts.get(&(section, offset))?;
        self.funcs.get(index)
    }

    /// `docs/elf.md`, "Relocations": every SHT_REL section that applies to an executable section, in section order.
    fn relocate(&mut self) -> Result<(), ElfError> {
        let count = self.elf.sections.len();
        for index in 0..count {
            let Some(rel_section) = self.elf.sections.get(index) else {
                continue;
            };
            if rel_section.kind() != SHT_REL {
                continue;
            }
            let target = usize::try_from(rel_section.header.sh_info(LE)).unwrap_or(usize::MAX);
            if !self
                .elf
                .sections
                .get(target)
                .is_some_and(Section::is_executable)
            {
                continue;
            }
            let symtab_index =
                usize::try_from(rel_section.header.sh_link(LE)).unwrap_or(usize::MAX);
            let symbols = self
                .elf
                .sections
                .get(symtab_index)
                .map(|s| symbols_of(s.data))
                .ok_or(ElfError::BadSymbolTableIndex)?;
            for rel in relocations_of(rel_section.data) {
                self.apply(target, symbols, rel)?;
            }
        }
        Ok(())
    }

    /// Applies one relocation to the copy of `target`'s code.
    fn apply(&mut self, target: usize, symbols: &'a [Sym], rel: &Rel) -> Result<(), ElfError> {
        let sym_index = usize::try_from(rel.r_sym(LE)).unwrap_or(usize::MAX);
        let sym = symbols
            .get(sym_index)
            .ok_or(ElfError::BadRelocationSymbol)?;
        let name = c_string(self.elf.strtab, sym.st_name(LE)).ok_or(ElfError::BadRelocationName)?;
        let offset = rel.r_offset.get(LE);
        // uBPF reuses the "bad name" text when the offset is in no function of the section.
        let func = self
            .function_containing(target, offset)
            .ok_or(ElfError::BadRelocationName)?;
        match rel.r_type(LE) {
            R_BPF_64_64 => self.apply_data(target, func, sym, name, offset),
            R_BPF_64_32 | R_BPF_64_32_LEGACY => self.apply_call(func, sym, name, offset),
            other => {
                // uBPF prints this with printf and carries on.
                (self.warn)(&format!("Warning: bad relocation type {other}; skipping."));
                Ok(())
            }
        }
    }

    /// `R_BPF_64_64` on an `lddw`: uBPF's checks, then the callback or a loader-owned copy.
    fn apply_data(
        &mut self,
        target: usize,
        func: usize,
        sym: &Sym,
        name: &[u8],
        offset: u64,
    ) -> Result<(), ElfError> {
        let elf = &self.elf;
        let target_size = elf.sections.get(target).map_or(0, Section::size);
        let fits = |len: u64| {
            offset
                .checked_add(len)
                .is_some_and(|end| end <= target_size)
        };
        if !fits(SLOT) {
            return Err(ElfError::BadDataRelocationOffset);
        }
        let data_index = usize::from(sym.st_shndx(LE));
        if data_index > elf.sections.len() {
            return Err(ElfError::BadDataRelocationSectionIndex);
        }
        let data_section = elf
            .sections
            .get(data_index)
            .ok_or(ElfError::BadDataRelocationSection)?;
        if self.maps.is_map_section(data_index) {
            return self.apply_map(func, data_index, sym, name, offset);
        }
        if data_section.is_executable() && self.vm.machine.maps.publish_runs {
            return self.apply_callback(func, data_index, sym, offset);
        }
        let callback = self.vm.data_relocation.as_ref();
        let loader_owned = callback.is_none()
            && is_loader_data_section(elf.section_name(data_index), data_section);
        let ubpf_data = data_section.kind() == SHT_PROGBITS && data_section.flags() == DATA_FLAGS;
        if !loader_owned && !ubpf_data {
            return Err(ElfError::BadDataRelocationSection);
        }
        let value = sym.st_value(LE);
        let size = sym.st_size(LE);
        if value
            .checked_add(size)
            .is_none_or(|end| end > data_section.size())
        {
            return Err(ElfError::BadDataRelocationSize);
        }
        let func = &self.funcs[func];
        let at = func.linked(offset);
        let first = read_insn(&self.code, at).ok_or(ElfError::BadDataRelocationOffset)?;
        if first.opc != op::LDDW {
            return Err(ElfError::BadDataRelocationInstruction);
        }
        if !fits(LDDW_SIZE) {
            return Err(ElfError::BadDataRelocationOffset);
        }
        // Both halves must belong to this function, or the patch would land in the next one.
        let within_function = offset
            .checked_add(LDDW_SIZE)
            .is_some_and(|end| end <= func.end());
        let second_at = at.checked_add(INSN_SIZE);
        let second = second_at
            .filter(|_| within_function)
            .and_then(|s| read_insn(&self.code, s).map(|insn| (s, insn)));
        let Some((second_at, second)) = second else {
            return Err(ElfError::BadDataRelocationOffset);
        };

        let address = if let Some(callback) = callback {
            callback(data_section.data, &lossy(name), value, size)
        } else if loader_owned {
            let base = self.data_section_address(data_index)?;
            // The addend clang leaves in the lddw (section-relative symbols).
            let addend = lddw_immediate(first, second);
            base.wrapping_add(value).wrapping_add(addend)
        } else {
            return Err(ElfError::NoDataRelocationFunction);
        };
        write_insn(
            &mut self.code,
            at,
            Insn {
                imm: address as u32 as i32,
                ..first
            },
        );
        write_insn(
            &mut self.code,
            second_at,
            Insn {
                imm: (address >> 32) as u32 as i32,
                ..second
            },
        );
        self.relocated.insert(at);
        Ok(())
    }

    /// The `lddw` a relocation at `offset` of function `func` patches: its address, its first
    /// slot, its second slot's address and its second slot. Both slots must lie inside the
    /// function, and the first must be an `lddw`.
    fn lddw_in_function(
        &self,
        func: usize,
        offset: u64,
    ) -> Result<(usize, Insn, usize, Insn), ElfError> {
        let func = &self.funcs[func];
        if offset
            .checked_add(LDDW_SIZE)
            .is_none_or(|end| end > func.end())
        {
            return Err(ElfError::BadDataRelocationOffset);
        }
        let at = func.linked(offset);
        let second_at = at.saturating_add(INSN_SIZE);
        let (Some(first), Some(second)) =
            (read_insn(&self.code, at), read_insn(&self.code, second_at))
        else {
            return Err(ElfError::BadDataRelocationOffset);
        };
        if first.opc != op::LDDW {
            return Err(ElfError::BadDataRelocationInstruction);
        }
        Ok((at, first, second_at, second))
    }

    /// `R_BPF_64_64` against a map: the `lddw` (plain, or libbpf's `BPF_PSEUDO_MAP_FD` form)
    /// becomes a plain `lddw` of the map's handle (`docs/maps.md`).
    fn apply_map(
        &mut self,
        func: usize,
        section: usize,
        sym: &Sym,
        name: &[u8],
        offset: u64,
    ) -> Result<(), ElfError> {
        let (at, first, second_at, second) = self.lddw_in_function(func, offset)?;
        // Section-relative references carry the map's offset in the immediate.
        let addend = lddw_immediate(first, second);
        let handle = sym
            .st_value(LE)
            .checked_add(addend)
            .and_then(|at| self.maps.handle_at(section, at))
            .ok_or_else(|| {
                ElfError::Map(format!("relocation against '{}' names no map", lossy(name)))
            })?;
        write_insn(
            &mut self.code,
            at,
            Insn {
                src: 0,
                imm: handle as u32 as i32,
                ..first
            },
        );
        write_insn(
            &mut self.code,
            second_at,
            Insn {
                imm: (handle >> 32) as u32 as i32,
                ..second
            },
        );
        self.relocated.insert(at);
        Ok(())
    }

    /// `R_BPF_64_64` against a function (a `bpf_loop` callback): the `lddw` receives the
    /// callback's id (`crate::kernel::helpers::link_bpf_loop`).
    fn apply_callback(
        &mut self,
        func: usize,
        section: usize,
        sym: &Sym,
        offset: u64,
    ) -> Result<(), ElfError> {
        let (at, first, second_at, second) = self.lddw_in_function(func, offset)?;
        let addend = lddw_immediate(first, second);
        let target = sym
            .st_value(LE)
            .checked_add(addend)
            .and_then(|start| self.starts.get(&(section, start)).copied())
            .ok_or(ElfError::UnknownCallTarget)?;
        let id = match self.callbacks.iter().position(|&c| c == target) {
            Some(i) => i.saturating_add(1),
            None => {
                self.callbacks.push(target);
                self.callbacks.len()
            }
        };
        write_insn(
            &mut self.code,
            at,
            Insn {
                src: 0,
                imm: id as i32,
                ..first
            },
        );
        write_insn(&mut self.code, second_at, Insn { imm: 0, ..second });
        self.relocated.insert(at);
        Ok(())
    }

    /// The address of the loader's copy of section `index`, made on first use.
    fn data_section_address(&mut self, index: usize) -> Result<u64, ElfError> {
        if let Some(&copy) = self.owned.get(&index) {
            return Ok(self.data_sections[copy].addr());
        }
        let name = lossy(self.elf.section_name(index)).into_owned();
        let section = self
            .elf
            .sections
            .get(index)
            .ok_or(ElfError::BadDataRelocationSection)?;
        let size = usize::try_from(section.size()).map_err(|_| ElfError::BadDataRelocationSize)?;
        let contents: &[u8] = if section.kind() == SHT_NOBITS {
            &[]
        } else {
            section.data
        };
        let writable = section.flags() & u64::from(SHF_WRITE) != 0;
        let copy = DataSection::new(name, contents, size, writable);
        let address = copy.addr();
        self.owned.insert(index, self.data_sections.len());
        self.data_sections.push(copy);
        Ok(address)
    }

    /// `R_BPF_64_32` (or legacy type 2): local calls by section offset, helpers by name.
    fn apply_call(
        &mut self,
        func: usize,
        sym: &Sym,
        name: &[u8],
        offset: u64,
    ) -> Result<(), ElfError> {
        let func = &self.funcs[func];
        if offset.checked_add(SLOT).is_none_or(|end| end > func.end()) {
            return Err(ElfError::BadCallRelocationOffset);
        }
        let at = func.linked(offset);
        let insn = read_insn(&self.code, at).ok_or(ElfError::BadCallRelocationOffset)?;
        let undefined = sym.st_shndx(LE) == SHN_UNDEF;
        let patched = if insn.src == call_kind::LOCAL && !(undefined && insn.opc == op::CALL) {
            // clang encodes the target as imm = offset/8 - 1 from the symbol (the section
            // symbol for static functions, the function's own symbol for global ones).
            let section = usize::from(sym.st_shndx(LE));
            let target_offset = i64::from(insn.imm)
                .checked_add(1)
                .and_then(|slots| slots.checked_mul(INSN_SIZE as i64))
                .and_then(|delta| i64::try_from(sym.st_value(LE)).ok()?.checked_add(delta))
                .and_then(|t| u64::try_from(t).ok())
                .ok_or(ElfError::UnknownCallTarget)?;
            let target = self
                .function_at(section, target_offset)
                .ok_or(ElfError::UnknownCallTarget)?;
            Insn {
                imm: call_displacement(at, target.landed)?,
                ..insn
            }
        } else {
            // A helper by name: uBPF's src = 0 form, and clang's src = 1 call to an extern.
            let index = self
                .vm
                .helper_index(&lossy(name))
                .ok_or_else(|| ElfError::HelperNotFound(lossy(name).into_owned()))?;
            Insn {
                // clang's extern call becomes a helper call; other forms keep their src.
                src: if insn.src == call_kind::LOCAL {
                    call_kind::HELPER
                } else {
                    insn.src
                },
                imm: index as i32,
                ..insn
            }
        };
        write_insn(&mut self.code, at, patched);
        self.relocated.insert(at);
        Ok(())
    }

    /// Re-targets local calls that had no relocation (clang resolves calls between static
    /// functions of one section itself) to where their target function landed.
    fn fix_unrelocated_calls(&mut self) -> Result<(), ElfError> {
        let mut patches = Vec::new();
        for func in &self.funcs {
            let mut at = 0u64;
            while at.checked_add(SLOT).is_some_and(|end| end <= func.size) {
                let native = func.start.saturating_add(at);
                let linked = func.linked(native);
                let step = SLOT;
                at = at.saturating_add(step);
                let Some(insn) = read_insn(&self.code, linked) else {
                    break;
                };
                if insn.opc == op::LDDW {
                    at = at.saturating_add(step);
                    continue;
                }
                if insn.opc != op::CALL
                    || insn.src != call_kind::LOCAL
                    || self.relocated.contains(&linked)
                {
                    continue;
                }
                let target_offset = i64::from(insn.imm)
                    .checked_add(1)
                    .and_then(|slots| slots.checked_mul(INSN_SIZE as i64))
                    .and_then(|delta| i64::try_from(native).ok()?.checked_add(delta))
                    .and_then(|t| u64::try_from(t).ok());
                let Some(target) = target_offset.and_then(|t| self.function_at(func.section, t))
                else {
                    continue;
                };
                let imm = call_displacement(linked, target.landed)?;
                patches.push((linked, Insn { imm, ..insn }));
            }
        }
        for (at, insn) in patches {
            write_insn(&mut self.code, at, insn);
        }
        Ok(())
    }

    fn finish(self, warnings: Vec<String>) -> LinkedElf {
        let functions = self
            .funcs
            .iter()
            .map(|f| LinkedFunction {
                name: lossy(f.name).into_owned(),
                offset: f.landed,
                size: usize::try_from(f.size).unwrap_or(usize::MAX),
            })
            .collect();
        LinkedElf {
            code: self.code,
            functions,
            data_sections: self.data_sections,
            maps: self.maps.maps,
            programs: Vec::new(),
            warnings,
        }
    }
}

/// Creates the maps the object declares (none for most objects).
fn object_maps(elf: &Elf<'_>) -> Result<ObjectMaps, ElfError> {
    let sections: Vec<SectionView<'_>> = (0..elf.sections.len())
        .map(|i| SectionView {
            name: elf.section_name(i),
            data: if elf.sections[i].kind() == SHT_NOBITS {
                &[]
            } else {
                elf.sections[i].data
            },
        })
        .collect();
    let symbols: Vec<SymbolView<'_>> = elf
        .symbols
        .iter()
        .map(|s| SymbolView {
            name: c_string(elf.strtab, s.st_name(LE)).unwrap_or(b""),
            section: usize::from(s.st_shndx(LE)),
            value: s.st_value(LE),
            size: s.st_size(LE),
            is_object: matches!(s.st_type(), STT_OBJECT | STT_NOTYPE),
        })
        .collect();
    declared_maps(&sections, &symbols).map_err(ElfError::Map)
}

/// Links `bytes`, passing each warning to `warn` as it occurs.
fn link(
    vm: &Vm,
    bytes: &[u8],
    entry: Option<&str>,
    warn: &mut dyn FnMut(&str),
) -> Result<LinkedElf, ElfError> {
    let elf = Elf::parse(bytes)?;
    let maps = object_maps(&elf)?;
    let mut linker = Linker::collect_functions(vm, warn, elf, entry)?;
    linker.maps = maps;
    linker.lay_out()?;
    linker.relocate()?;
    linker.fix_unrelocated_calls()?;
    if vm.machine.maps.publish_runs {
        let callbacks: Vec<usize> = linker
            .callbacks
            .iter()
            .map(|&f| linker.funcs[f].landed)
            .collect();
        crate::kernel::helpers::link_bpf_loop(&mut linker.code, &callbacks)
            .map_err(ElfError::Map)?;
    }
    let mut programs = Vec::new();
    if !linker.tail_calls.is_empty() {
        // The object's programs: each function starting a section other than `.text`.
        let mut sections = HashSet::new();
        let mut offsets = Vec::new();
        for f in &linker.funcs {
            if f.start == 0
                && f.size > 0
                && linker.elf.section_name(f.section) != b".text"
                && sections.insert(f.section)
            {
                programs.push(lossy(f.name).into_owned());
                offsets.push(f.landed);
            }
        }
        crate::kernel::helpers::link_tail_calls(&mut linker.code, &linker.tail_calls, &offsets)
            .map_err(ElfError::Map)?;
    }
    Ok(LinkedElf {
        programs,
        ..linker.finish(Vec::new())
    })
}

impl Vm {
    /// Loads a relocatable eBPF ELF object (`ubpf_load_elf_ex`): checks the file, links every
    /// function (main first), applies relocations, then verifies and installs the program.
    ///
    /// `entry` names the main function's symbol; `None` selects the function at offset 0 of
    /// `.text`. Helpers called by name must be registered first; a data-relocation callback, if
    /// set, resolves every `R_BPF_64_64` as in uBPF. An unknown relocation type in a code
    /// section is skipped with `Warning: bad relocation type N; skipping.`, which goes to the
    /// error printer like every other message (uBPF writes it to standard output; see
    /// `docs/elf.md`).
    pub fn load_elf(&mut self, bytes: &[u8], entry: Option<&str>) -> Result<(), ElfError> {
        let mut print = |warning: &str| self.print_error(warning);
        let linked = link(self, bytes, entry, &mut print)?;
        self.load_linked(linked)
    }

    /// The linking half of [`Vm::load_elf`]: every ELF check and relocation, without the
    /// verifier and without changing the VM. Warnings are returned in
    /// [`LinkedElf::warnings`] instead of being printed.
    pub fn link_elf(&self, bytes: &[u8], entry: Option<&str>) -> Result<LinkedElf, ElfError> {
        let mut warnings = Vec::new();
        let mut collect = |warning: &str| warnings.push(warning.to_owned());
        let linked = link(self, bytes, entry, &mut collect)?;
        Ok(LinkedElf { warnings, ..linked })
    }

    /// The second half of [`Vm::load_elf`]: verifies a linked program and makes it the loaded
    /// one, together with its data sections.
    pub fn load_linked(&mut self, linked: LinkedElf) -> Result<(), ElfError> {
        let mut program = self.verify(&linked.code)?;
        program.data_sections = linked.data_sections;
        self.install(program);
        self.machine.maps.maps = crate::exec::maps::MapSet::new(linked.maps);
        self.machine.maps.programs = linked.programs;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_string_stops_at_nul_or_table_end() {
        let table = b"\0.text\0main";
        assert_eq!(c_string(table, 1), Some(&b".text"[..]));
        assert_eq!(c_string(table, 7), Some(&b"main"[..]));
        assert_eq!(c_string(table, 0), Some(&b""[..]));
        assert_eq!(c_string(table, 11), None);
        assert_eq!(c_string(table, u32::MAX), None);
        let mut long = vec![b'x'; MAX_NAME_LEN];
        assert_eq!(c_string(&long, 0).map(<[u8]>::len), Some(MAX_NAME_LEN));
        long.push(b'x');
        assert_eq!(c_string(&long, 0), None);
        assert_eq!(c_string(&long, 1).map(<[u8]>::len), Some(MAX_NAME_LEN));
        long.push(0);
        assert_eq!(c_string(&long, 0), None);
    }

    #[test]
    fn file_range_refuses_empty_ranges_past_the_end() {
        let bytes = [0u8; 8];
        assert_eq!(file_range(&bytes, 8, 0), Some(&[][..]));
        assert_eq!(file_range(&bytes, 9, 0), None);
        assert_eq!(file_range(&bytes, 4, 5), None);
        assert_eq!(file_range(&bytes, u64::MAX, 2), None);
    }

    #[test]
    fn overlapping_functions_are_owned_by_the_first_in_order() {
        // [0,100) is function 2, [8,16) function 0, [8,40) function 1.
        let pieces = first_owner_pieces(vec![(0, 100, 2), (8, 16, 0), (8, 40, 1)]);
        assert_eq!(pieces, [(0, 8, 2), (8, 16, 0), (16, 40, 1), (40, 100, 2)]);
        let disjoint = first_owner_pieces(vec![(16, 24, 1), (0, 8, 0), (40, 48, 2)]);
        assert_eq!(disjoint, [(0, 8, 0), (16, 24, 1), (40, 48, 2)]);
        assert!(first_owner_pieces(Vec::new()).is_empty());
    }

    #[test]
    fn call_displacement_counts_from_the_next_slot() {
        assert_eq!(call_displacement(0, 24), Ok(2));
        assert_eq!(call_displacement(16, 0), Ok(-3));
    }
}
