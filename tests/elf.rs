//! ELF loader tests: uBPF's error texts reproduced by corrupting valid objects, linking and
//! relocation results of the example programs in `examples-c/bpf/`, hand-built objects for the
//! forms clang does not emit, a fixed-seed mutation sweep that must never panic, and every
//! example run in the interpreter and both JIT modes against reference results (also after
//! recompiling the examples, when clang is installed).

mod common;

use common::engines::{MODES as ENGINES, Mode as Engine};
use common::rng::Rng;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rbpf::elf::LinkedElf;
use rbpf::isa::Insn;
use rbpf::{ElfError, LoadError, Vm};

// ---------------------------------------------------------------------------------------------
// Fixtures

fn bpf_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples-c/bpf")
}

/// A checked-in example object, by stem (`packet_filter`, `calls`, ...).
fn example(name: &str) -> Vec<u8> {
    let path = bpf_dir().join(format!("{name}.o"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

const EXAMPLES: [&str; 6] = [
    "packet_filter",
    "packet_filter_btf",
    "calls",
    "globals",
    "helpers",
    "map",
];

unsafe extern "C" fn helper_sqrti(
    x: u64,
    _: u64,
    _: u64,
    _: u64,
    _: u64,
    _: *mut std::ffi::c_void,
) -> u64 {
    x.isqrt()
}

unsafe extern "C" fn helper_checksum(
    data: u64,
    len: u64,
    _: u64,
    _: u64,
    _: u64,
    _: *mut std::ffi::c_void,
) -> u64 {
    if data == 0 {
        return 0;
    }
    // SAFETY: the eBPF program passes its own input buffer and length.
    let bytes = unsafe { std::slice::from_raw_parts(data as *const u8, len as usize) };
    checksum_reference(bytes)
}

unsafe extern "C" fn helper_mix(
    a: u64,
    b: u64,
    c: u64,
    d: u64,
    e: u64,
    _: *mut std::ffi::c_void,
) -> u64 {
    mix_reference(a, b, c, d, e)
}

fn checksum_reference(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |sum, &b| {
        sum.wrapping_mul(31).wrapping_add(u64::from(b))
    })
}

fn mix_reference(a: u64, b: u64, c: u64, d: u64, e: u64) -> u64 {
    (a.wrapping_mul(b) ^ c.wrapping_add(d)).wrapping_sub(e) & 0xffff
}

/// The array map behind `map_lookup`/`map_update` (one per process; map tests serialise on it).
static MAP: Mutex<[i64; 8]> = Mutex::new([0; 8]);

unsafe extern "C" fn helper_map_lookup(
    key: u64,
    _: u64,
    _: u64,
    _: u64,
    _: u64,
    _: *mut std::ffi::c_void,
) -> u64 {
    let map = MAP.lock().unwrap_or_else(|e| e.into_inner());
    usize::try_from(key)
        .ok()
        .and_then(|k| map.get(k))
        .map_or(0, |&v| v as u64)
}

unsafe extern "C" fn helper_map_update(
    key: u64,
    value: u64,
    _: u64,
    _: u64,
    _: u64,
    _: *mut std::ffi::c_void,
) -> u64 {
    let mut map = MAP.lock().unwrap_or_else(|e| e.into_inner());
    match usize::try_from(key).ok().and_then(|k| map.get_mut(k)) {
        Some(slot) => {
            *slot = value as i64;
            0
        }
        None => u64::MAX,
    }
}

/// A VM with every helper the examples call, at indices that differ from their order.
fn vm_with_helpers() -> Vm {
    let mut vm = Vm::new();
    vm.register_helper(1, Some("mix"), helper_mix).unwrap();
    vm.register_helper(3, Some("sqrti"), helper_sqrti).unwrap();
    vm.register_helper(4, Some("checksum"), helper_checksum)
        .unwrap();
    vm.register_helper(9, Some("map_lookup"), helper_map_lookup)
        .unwrap();
    vm.register_helper(12, Some("map_update"), helper_map_update)
        .unwrap();
    vm
}

// ---------------------------------------------------------------------------------------------
// A small reader/patcher for ELF64 files, so tests can corrupt exactly one field.

const E_TYPE: usize = 16;
const E_MACHINE: usize = 18;
const E_SHOFF: usize = 40;
const E_SHENTSIZE: usize = 58;
const E_SHNUM: usize = 60;
const SH_NAME: usize = 0;
const SH_TYPE: usize = 4;
const SH_FLAGS: usize = 8;
const SH_OFFSET: usize = 24;
const SH_SIZE: usize = 32;
const SH_LINK: usize = 40;
const SH_INFO: usize = 44;
const ST_NAME: usize = 0;
const ST_SHNDX: usize = 6;
const ST_VALUE: usize = 8;
const ST_SIZE: usize = 16;
const R_OFFSET: usize = 0;
const R_INFO: usize = 8;

#[derive(Clone)]
struct Patch(Vec<u8>);

impl Patch {
    fn of(name: &str) -> Self {
        Patch(example(name))
    }

    fn u16_at(&self, at: usize) -> u16 {
        u16::from_le_bytes(self.0[at..at + 2].try_into().unwrap())
    }

    fn u32_at(&self, at: usize) -> u32 {
        u32::from_le_bytes(self.0[at..at + 4].try_into().unwrap())
    }

    fn u64_at(&self, at: usize) -> u64 {
        u64::from_le_bytes(self.0[at..at + 8].try_into().unwrap())
    }

    fn put_u8(&mut self, at: usize, v: u8) -> &mut Self {
        self.0[at] = v;
        self
    }

    fn put_u16(&mut self, at: usize, v: u16) -> &mut Self {
        self.0[at..at + 2].copy_from_slice(&v.to_le_bytes());
        self
    }

    fn put_u32(&mut self, at: usize, v: u32) -> &mut Self {
        self.0[at..at + 4].copy_from_slice(&v.to_le_bytes());
        self
    }

    fn put_u64(&mut self, at: usize, v: u64) -> &mut Self {
        self.0[at..at + 8].copy_from_slice(&v.to_le_bytes());
        self
    }

    fn shnum(&self) -> usize {
        usize::from(self.u16_at(E_SHNUM))
    }

    /// File offset of section header `index`.
    fn shdr(&self, index: usize) -> usize {
        self.u64_at(E_SHOFF) as usize + index * 64
    }

    fn sh_type(&self, index: usize) -> u32 {
        self.u32_at(self.shdr(index) + SH_TYPE)
    }

    fn sh_offset(&self, index: usize) -> usize {
        self.u64_at(self.shdr(index) + SH_OFFSET) as usize
    }

    fn sh_size(&self, index: usize) -> usize {
        self.u64_at(self.shdr(index) + SH_SIZE) as usize
    }

    fn first_of_type(&self, kind: u32) -> usize {
        (0..self.shnum())
            .find(|&i| self.sh_type(i) == kind)
            .expect("section type present")
    }

    fn string(&self, offset: u32) -> String {
        let strtab = self.first_of_type(3);
        let start = self.sh_offset(strtab) + offset as usize;
        let end = start + self.0[start..].iter().position(|&b| b == 0).unwrap();
        String::from_utf8(self.0[start..end].to_vec()).unwrap()
    }

    /// Index of the section called `name`.
    fn section(&self, name: &str) -> usize {
        (0..self.shnum())
            .find(|&i| self.string(self.u32_at(self.shdr(i) + SH_NAME)) == name)
            .unwrap_or_else(|| panic!("no section {name}"))
    }

    fn section_field(&self, name: &str, field: usize) -> usize {
        self.shdr(self.section(name)) + field
    }

    fn symbol_count(&self) -> usize {
        self.sh_size(self.first_of_type(2)) / 24
    }

    /// File offset of symbol number `index`.
    fn symbol_at(&self, index: usize) -> usize {
        self.sh_offset(self.first_of_type(2)) + index * 24
    }

    /// File offset of the symbol called `name`.
    fn symbol(&self, name: &str) -> usize {
        (0..self.symbol_count())
            .map(|i| self.symbol_at(i))
            .find(|&at| self.string(self.u32_at(at + ST_NAME)) == name)
            .unwrap_or_else(|| panic!("no symbol {name}"))
    }

    /// File offset of the first relocation in `section` whose symbol is `name`.
    fn rel_for(&self, section: &str, name: &str) -> usize {
        let s = self.section(section);
        (0..self.sh_size(s) / 16)
            .map(|i| self.sh_offset(s) + i * 16)
            .find(|&at| {
                let sym = (self.u64_at(at + R_INFO) >> 32) as usize;
                self.string(self.u32_at(self.symbol_at(sym) + ST_NAME)) == name
            })
            .unwrap_or_else(|| panic!("no relocation against {name}"))
    }

    fn strtab_size(&self) -> u32 {
        self.sh_size(self.first_of_type(3)) as u32
    }
}

/// Links (or loads, when `load`) and returns the error text.
fn link_err(vm: &Vm, bytes: &[u8], entry: Option<&str>) -> String {
    match vm.link_elf(bytes, entry) {
        Ok(_) => panic!("linking succeeded, expected an error"),
        Err(e) => e.to_string(),
    }
}

fn link_err_plain(bytes: &[u8]) -> String {
    link_err(&vm_with_helpers(), bytes, None)
}

// ---------------------------------------------------------------------------------------------
// A builder for objects clang does not produce (uBPF's src = 0 helper form, legacy type 2, ...).

struct SectionSpec {
    name: String,
    kind: u32,
    flags: u64,
    data: Vec<u8>,
    link: u32,
    info: u32,
}

#[derive(Default)]
struct Builder {
    sections: Vec<SectionSpec>,
    symbols: Vec<(String, u8, u16, u64, u64)>,
}

/// (name offset, type, flags, contents, link, info) of one section header to write.
type HeaderSpec<'a> = (u32, u32, u64, &'a [u8], u32, u32);

/// Placeholder for "the symbol table's index", resolved by `build`.
const LINK_SYMTAB: u32 = u32::MAX;

impl Builder {
    /// Adds a section; returns its index (the null section is 0).
    fn section(&mut self, name: &str, kind: u32, flags: u64, data: Vec<u8>) -> u16 {
        self.sections.push(SectionSpec {
            name: name.into(),
            kind,
            flags,
            data,
            link: 0,
            info: 0,
        });
        self.sections.len() as u16
    }

    fn text(&mut self, name: &str, insns: &[Insn]) -> u16 {
        let data = insns.iter().flat_map(|i| i.to_bytes()).collect();
        self.section(name, 1, 6, data)
    }

    /// Adds a symbol; returns its index (the null symbol is 0).
    fn symbol(&mut self, name: &str, kind: u8, shndx: u16, value: u64, size: u64) -> u32 {
        self.symbols
            .push((name.into(), 0x10 | kind, shndx, value, size));
        self.symbols.len() as u32
    }

    /// Adds a REL section for section `target`: (offset, symbol, type) entries.
    fn rel(&mut self, target: u16, entries: &[(u64, u32, u32)]) -> u16 {
        let data = entries
            .iter()
            .flat_map(|&(off, sym, kind)| {
                let mut e = off.to_le_bytes().to_vec();
                e.extend_from_slice(&((u64::from(sym) << 32) | u64::from(kind)).to_le_bytes());
                e
            })
            .collect();
        let index = self.section(".rel", 9, 0, data);
        let s = self.sections.last_mut().unwrap();
        s.link = LINK_SYMTAB;
        s.info = u32::from(target);
        index
    }

    fn build(&self) -> Vec<u8> {
        let mut strtab = vec![0u8];
        let mut add = |s: &str| {
            let at = strtab.len() as u32;
            strtab.extend_from_slice(s.as_bytes());
            strtab.push(0);
            at
        };
        let section_names: Vec<u32> = self.sections.iter().map(|s| add(&s.name)).collect();
        let strtab_name = add(".strtab");
        let symtab_name = add(".symtab");
        let symbol_names: Vec<u32> = self.symbols.iter().map(|s| add(&s.0)).collect();
        let strtab_index = self.sections.len() as u32 + 1;
        let symtab_index = strtab_index + 1;

        let mut symtab = vec![0u8; 24];
        for (sym, &name) in self.symbols.iter().zip(&symbol_names) {
            symtab.extend_from_slice(&name.to_le_bytes());
            symtab.push(sym.1);
            symtab.push(0);
            symtab.extend_from_slice(&sym.2.to_le_bytes());
            symtab.extend_from_slice(&sym.3.to_le_bytes());
            symtab.extend_from_slice(&sym.4.to_le_bytes());
        }

        let mut all: Vec<HeaderSpec<'_>> = self
            .sections
            .iter()
            .zip(&section_names)
            .map(|(s, &n)| {
                let link = if s.link == LINK_SYMTAB {
                    symtab_index
                } else {
                    s.link
                };
                (n, s.kind, s.flags, &s.data[..], link, s.info)
            })
            .collect();
        all.push((strtab_name, 3, 0, &strtab[..], 0, 0));
        all.push((symtab_name, 2, 0, &symtab[..], strtab_index, 1));

        let mut file = vec![0u8; 64];
        let mut headers = vec![0u8; 64]; // the null section
        for (name, kind, flags, data, link, info) in all {
            while !file.len().is_multiple_of(8) {
                file.push(0);
            }
            let offset = file.len() as u64;
            file.extend_from_slice(data);
            headers.extend_from_slice(&name.to_le_bytes());
            headers.extend_from_slice(&kind.to_le_bytes());
            headers.extend_from_slice(&flags.to_le_bytes());
            headers.extend_from_slice(&0u64.to_le_bytes());
            headers.extend_from_slice(&offset.to_le_bytes());
            headers.extend_from_slice(&(data.len() as u64).to_le_bytes());
            headers.extend_from_slice(&link.to_le_bytes());
            headers.extend_from_slice(&info.to_le_bytes());
            headers.extend_from_slice(&8u64.to_le_bytes());
            headers.extend_from_slice(&0u64.to_le_bytes());
        }
        while !file.len().is_multiple_of(8) {
            file.push(0);
        }
        let shoff = file.len() as u64;
        let shnum = (headers.len() / 64) as u16;
        file.extend_from_slice(&headers);

        file[..4].copy_from_slice(b"\x7fELF");
        file[4] = 2; // ELFCLASS64
        file[5] = 1; // little-endian
        file[6] = 1; // EV_CURRENT
        file[16..18].copy_from_slice(&1u16.to_le_bytes()); // ET_REL
        file[18..20].copy_from_slice(&247u16.to_le_bytes()); // EM_BPF
        file[20..24].copy_from_slice(&1u32.to_le_bytes());
        file[40..48].copy_from_slice(&shoff.to_le_bytes());
        file[52..54].copy_from_slice(&64u16.to_le_bytes());
        file[58..60].copy_from_slice(&64u16.to_le_bytes());
        file[60..62].copy_from_slice(&shnum.to_le_bytes());
        file[62..64].copy_from_slice(&(shnum - 2).to_le_bytes());
        file
    }
}

const STT_NOTYPE: u8 = 0;
const STT_OBJECT: u8 = 1;
const STT_FUNC: u8 = 2;

fn mov64_imm(dst: u8, imm: i32) -> Insn {
    Insn::new(0xb7, dst, 0, 0, imm)
}

fn call(src: u8, imm: i32) -> Insn {
    Insn::new(0x85, 0, src, 0, imm)
}

fn exit() -> Insn {
    Insn::new(0x95, 0, 0, 0, 0)
}

/// uBPF's `test_elf.py` template, repaired so current loaders accept it: `mov r1, 1764;
/// call -1; exit` in `.text` with a relocation of type `rel_type` at offset 8 against the
/// undefined symbol `sqrti`, and the call's src field set to `call_src`.
fn sqrti_template(rel_type: u32, call_src: u8) -> Vec<u8> {
    let mut b = Builder::default();
    let text = b.text(".text", &[mov64_imm(1, 1764), call(call_src, -1), exit()]);
    b.symbol("entry", STT_FUNC, text, 0, 24);
    let sqrti = b.symbol("sqrti", STT_NOTYPE, 0, 0, 0);
    b.rel(text, &[(8, sqrti, rel_type)]);
    b.build()
}

fn slots(linked: &LinkedElf) -> Vec<Insn> {
    linked
        .code
        .chunks_exact(8)
        .map(|c| Insn::from_bytes(c.try_into().unwrap()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// docs/elf.md, "Header checks", in order

#[test]
fn short_files_are_refused() {
    let vm = Vm::new();
    let bytes = example("packet_filter");
    assert_eq!(
        link_err(&vm, &bytes[..63], None),
        "not enough data for ELF header"
    );
    assert_eq!(
        link_err(&vm, b"\x7fELF", None),
        "not enough data for ELF header"
    );
    assert_eq!(link_err(&vm, b"", None), "not enough data for ELF header");
}

#[test]
fn identification_bytes_are_checked_in_order() {
    let cases: [(usize, u8, &str); 6] = [
        (0, 0x7e, "wrong magic"),
        (3, b'E', "wrong magic"),
        (4, 1, "wrong class"),
        (5, 2, "wrong byte order"),
        (6, 2, "wrong version"),
        (7, 3, "wrong OS ABI"),
    ];
    for (at, value, text) in cases {
        let mut p = Patch::of("packet_filter");
        p.put_u8(at, value);
        assert_eq!(link_err_plain(&p.0), text, "byte {at} = {value}");
    }
    // Order: a wrong class is reported before a wrong byte order.
    let mut p = Patch::of("packet_filter");
    p.put_u8(4, 1).put_u8(5, 2).put_u8(7, 3);
    assert_eq!(link_err_plain(&p.0), "wrong class");
}

#[test]
fn type_and_machine_are_checked() {
    for e_type in [0u16, 2, 3, 4] {
        let mut p = Patch::of("packet_filter");
        p.put_u16(E_TYPE, e_type);
        assert_eq!(link_err_plain(&p.0), "wrong type, expected relocatable");
    }
    let mut p = Patch::of("packet_filter");
    p.put_u16(E_MACHINE, 1);
    assert_eq!(
        link_err_plain(&p.0),
        "wrong machine, expected none or BPF, got 1"
    );
    p.put_u16(E_MACHINE, 62);
    assert_eq!(
        link_err_plain(&p.0),
        "wrong machine, expected none or BPF, got 62"
    );
    // EM_NONE is accepted, as by uBPF's test template.
    p.put_u16(E_MACHINE, 0);
    assert!(vm_with_helpers().link_elf(&p.0, None).is_ok());
}

#[test]
fn section_count_is_limited_to_32() {
    let mut p = Patch::of("packet_filter");
    p.put_u16(E_SHNUM, 33);
    assert_eq!(link_err_plain(&p.0), "too many sections");
    p.put_u16(E_SHNUM, 1024);
    assert_eq!(link_err_plain(&p.0), "too many sections");
}

#[test]
fn section_headers_must_lie_inside_the_file() {
    let base = Patch::of("packet_filter");
    let len = base.0.len() as u64;
    for shoff in [len, len - 8, 1 << 40, u64::MAX - 4] {
        let mut p = base.clone();
        p.put_u64(E_SHOFF, shoff);
        assert_eq!(
            link_err_plain(&p.0),
            "bad section header offset or size",
            "e_shoff {shoff}"
        );
    }
    let mut p = base.clone();
    p.put_u16(E_SHENTSIZE, 1024);
    assert_eq!(link_err_plain(&p.0), "bad section header offset or size");
}

#[test]
fn section_contents_must_lie_inside_the_file() {
    let base = Patch::of("packet_filter");
    let mut p = base.clone();
    p.put_u64(p.section_field(".text", SH_OFFSET), 1 << 20);
    assert_eq!(link_err_plain(&p.0), "bad section offset or size");
    let mut p = base.clone();
    p.put_u64(p.section_field(".text", SH_SIZE), 1 << 20);
    assert_eq!(link_err_plain(&p.0), "bad section offset or size");
    let mut p = base.clone();
    p.put_u64(p.section_field(".text", SH_OFFSET), u64::MAX - 8);
    assert_eq!(link_err_plain(&p.0), "bad section offset or size");
    // uBPF checks SHT_NOBITS sections against the file too.
    let mut p = Patch::of("globals");
    p.put_u64(p.section_field(".bss", SH_SIZE), 1 << 20);
    assert_eq!(link_err_plain(&p.0), "bad section offset or size");
}

#[test]
fn string_and_symbol_tables_are_required() {
    let mut p = Patch::of("packet_filter");
    let strtab = p.section(".strtab");
    let at = p.shdr(strtab) + SH_TYPE;
    p.put_u32(at, 1);
    assert_eq!(
        link_err_plain(&p.0),
        "could not find the string table in the elf file"
    );

    let mut p = Patch::of("packet_filter");
    let at = p.section_field(".symtab", SH_TYPE);
    p.put_u32(at, 1);
    assert_eq!(
        link_err_plain(&p.0),
        "could not find the symbol table in the elf file"
    );

    // No sections at all: the string table is looked for first.
    let mut p = Patch::of("packet_filter");
    p.put_u16(E_SHNUM, 0);
    assert_eq!(
        link_err_plain(&p.0),
        "could not find the string table in the elf file"
    );
}

// ---------------------------------------------------------------------------------------------
// docs/elf.md, "Functions"

#[test]
fn function_symbols_are_checked() {
    let base = Patch::of("packet_filter");
    let filter = base.symbol("filter");

    let mut p = base.clone();
    let size = p.strtab_size();
    p.put_u32(filter + ST_NAME, size);
    assert_eq!(
        link_err_plain(&p.0),
        "a function symbol contained a bad name"
    );
    p.put_u32(filter + ST_NAME, u32::MAX);
    assert_eq!(
        link_err_plain(&p.0),
        "a function symbol contained a bad name"
    );

    let mut p = base.clone();
    let count = p.shnum() as u16;
    p.put_u16(filter + ST_SHNDX, count + 1);
    assert_eq!(
        link_err_plain(&p.0),
        "a function symbol contained a bad section index"
    );
    p.put_u16(filter + ST_SHNDX, 0xfff1); // SHN_ABS
    assert_eq!(
        link_err_plain(&p.0),
        "a function symbol contained a bad section index"
    );
    // uBPF's off-by-one lets an index equal to the count through; it is then no code section.
    p.put_u16(filter + ST_SHNDX, count);
    assert_eq!(
        link_err_plain(&p.0),
        "function symbol filter points to a non-executable section"
    );

    let mut p = base.clone();
    let strtab = p.section(".strtab") as u16;
    p.put_u16(filter + ST_SHNDX, strtab);
    assert_eq!(
        link_err_plain(&p.0),
        "function symbol filter points to a non-executable section"
    );
    // A nameless symbol (string offset 0) is printed as uBPF prints it, "(null)".
    p.put_u32(filter + ST_NAME, 0);
    assert_eq!(
        link_err_plain(&p.0),
        "function symbol (null) points to a non-executable section"
    );

    // Flags must be exactly ALLOC|EXECINSTR.
    let mut p = base.clone();
    let at = p.section_field(".text", SH_FLAGS);
    p.put_u64(at, 7);
    assert_eq!(
        link_err_plain(&p.0),
        "function symbol filter points to a non-executable section"
    );

    // librbpf's own check: the function's bytes must lie inside its section.
    let mut p = base.clone();
    p.put_u64(filter + ST_SIZE, 1 << 30);
    assert_eq!(
        link_err_plain(&p.0),
        "function symbol filter lies outside its section"
    );
    let mut p = base.clone();
    p.put_u64(filter + ST_VALUE, u64::MAX - 4);
    assert_eq!(
        link_err_plain(&p.0),
        "function symbol filter lies outside its section"
    );
}

#[test]
fn main_function_is_found_by_name_or_text_offset_zero() {
    let vm = vm_with_helpers();
    let bytes = example("packet_filter");
    assert_eq!(
        link_err(&vm, &bytes, Some("nope")),
        "nope function not found."
    );

    let linked = vm.link_elf(&bytes, Some("filter")).unwrap();
    assert_eq!(linked.functions[0].name, "filter");

    // Without a name, main is the function at offset 0 of the section named ".text".
    let mut p = Patch::of("packet_filter");
    let at = p.section_field(".text", SH_NAME);
    let name = p.u32_at(at);
    p.put_u32(at, name + 1); // ".text" -> "text"
    assert_eq!(link_err(&vm, &p.0, None), "(null) function not found.");
    assert!(vm.link_elf(&p.0, Some("filter")).is_ok());
}

#[test]
fn functions_are_linked_main_first_then_in_symbol_order() {
    let vm = vm_with_helpers();
    let bytes = example("calls");
    let names = |linked: &LinkedElf| -> Vec<String> {
        linked.functions.iter().map(|f| f.name.clone()).collect()
    };
    let default = vm.link_elf(&bytes, None).unwrap();
    assert_eq!(default.functions[0].name, "entry");
    let by_name = vm.link_elf(&bytes, Some("weigh")).unwrap();
    assert_eq!(by_name.functions[0].name, "weigh");
    // Same set of functions (from .text and sec1), packed back to back.
    let mut a = names(&default);
    let mut b = names(&by_name);
    a.sort();
    b.sort();
    assert_eq!(a, ["combine", "entry", "fib", "gcd", "weigh"]);
    assert_eq!(a, b);
    for linked in [&default, &by_name] {
        let mut at = 0;
        for f in &linked.functions {
            assert_eq!(f.offset, at, "{} lands after the previous function", f.name);
            at += f.size;
        }
        assert_eq!(at, linked.code.len());
    }
}

/// (caller, callee) pairs of every local call in a linked program, by function name.
fn call_graph(linked: &LinkedElf) -> Vec<(String, String)> {
    let fn_at = |slot: usize| {
        linked
            .functions
            .iter()
            .find(|f| f.offset / 8 <= slot && slot < (f.offset + f.size) / 8)
            .map(|f| f.name.clone())
    };
    let mut edges = Vec::new();
    for (pc, insn) in slots(linked).iter().enumerate() {
        if insn.opc == 0x85 && insn.src == 1 {
            let target = (pc as i64 + 1 + i64::from(insn.imm)) as usize;
            let callee = linked
                .functions
                .iter()
                .find(|f| f.offset / 8 == target)
                .unwrap_or_else(|| panic!("call at {pc} lands on no function start"));
            edges.push((fn_at(pc).unwrap(), callee.name.clone()));
        }
    }
    edges.sort();
    edges.dedup();
    edges
}

#[test]
fn local_calls_reach_the_same_functions_whatever_the_layout() {
    let vm = vm_with_helpers();
    let bytes = example("calls");
    let expected: Vec<(String, String)> = [
        ("combine", "gcd"),
        ("entry", "combine"),
        ("entry", "fib"),
        ("entry", "weigh"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    for entry in [None, Some("entry"), Some("weigh"), Some("gcd"), Some("fib")] {
        let linked = vm.link_elf(&bytes, entry).unwrap();
        assert_eq!(call_graph(&linked), expected, "entry {entry:?}");
    }
    // map.c calls its static classify() without a relocation.
    let linked = vm.link_elf(&example("map"), Some("classify")).unwrap();
    assert_eq!(
        call_graph(&linked),
        [("entry".to_string(), "classify".to_string())]
    );
}

// ---------------------------------------------------------------------------------------------
// docs/elf.md, "Relocations"

#[test]
fn relocation_sections_are_checked() {
    let base = Patch::of("helpers");
    let mut p = base.clone();
    let count = p.shnum() as u32;
    let at = p.section_field(".rel.text", SH_LINK);
    p.put_u32(at, count);
    assert_eq!(link_err_plain(&p.0), "bad symbol table section index");

    // A relocation section for a non-code section is skipped entirely, even a broken one.
    let mut p = base.clone();
    let strtab = p.section(".strtab") as u32;
    let info = p.section_field(".rel.text", SH_INFO);
    let link = p.section_field(".rel.text", SH_LINK);
    p.put_u32(info, strtab).put_u32(link, count + 5);
    let linked = vm_with_helpers().link_elf(&p.0, None).unwrap();
    // ... so the extern calls stay unresolved.
    assert!(
        slots(&linked)
            .iter()
            .any(|i| i.opc == 0x85 && i.src == 1 && i.imm == -1)
    );
    let mut p = base.clone();
    p.put_u32(info, 1000);
    assert!(vm_with_helpers().link_elf(&p.0, None).is_ok());
}

#[test]
fn relocation_entries_are_checked() {
    let base = Patch::of("helpers");
    let rel = base.rel_for(".rel.text", "sqrti");

    let mut p = base.clone();
    let count = p.symbol_count() as u64;
    let info = p.u64_at(rel + R_INFO);
    p.put_u64(rel + R_INFO, (count << 32) | (info & 0xffff_ffff));
    assert_eq!(
        link_err_plain(&p.0),
        "a relocation contained a bad symbol index"
    );

    let mut p = base.clone();
    let size = p.strtab_size();
    let sym = p.symbol("sqrti");
    p.put_u32(sym + ST_NAME, size);
    assert_eq!(
        link_err_plain(&p.0),
        "a relocation's symbol contained a bad name"
    );

    // An offset in no function of the section reuses the "bad name" text.
    let text_size = base.sh_size(base.section(".text")) as u64;
    for offset in [text_size, text_size + 8, 1 << 40] {
        let mut p = base.clone();
        p.put_u64(rel + R_OFFSET, offset);
        assert_eq!(
            link_err_plain(&p.0),
            "a relocation's symbol contained a bad name"
        );
    }

    // librbpf's own check: the relocated instruction must fit in its function.
    let mut p = base.clone();
    p.put_u64(rel + R_OFFSET, text_size - 4);
    assert_eq!(link_err_plain(&p.0), "bad R_BPF_64_32 relocation offset");
}

#[test]
fn unknown_relocation_types_are_skipped() {
    let mut p = Patch::of("helpers");
    let rel = p.rel_for(".rel.text", "sqrti");
    let info = p.u64_at(rel + R_INFO);
    p.put_u64(rel + R_INFO, (info & !0xffff_ffff) | 3);
    // uBPF prints "Warning: bad relocation type 3; skipping." to stdout and goes on.
    let linked = vm_with_helpers().link_elf(&p.0, None).unwrap();
    assert_eq!(
        linked.warnings,
        ["Warning: bad relocation type 3; skipping."]
    );
    let calls: Vec<Insn> = slots(&linked)
        .into_iter()
        .filter(|i| i.opc == 0x85)
        .collect();
    assert_eq!(
        calls[0],
        call(1, -1),
        "the sqrti call is left as clang wrote it"
    );
    assert_eq!(calls[1], call(0, 4), "checksum is still resolved");
    // Loading goes on to the verifier, which sees the unresolved local call to itself.
    assert_eq!(
        vm_with_helpers()
            .load_elf(&p.0, None)
            .unwrap_err()
            .to_string(),
        "sub-program does not end with EXIT or unconditional jump at PC 3"
    );
}

#[test]
fn extern_calls_resolve_to_registered_helpers_by_name() {
    let vm = vm_with_helpers();
    let linked = vm.link_elf(&example("helpers"), None).unwrap();
    let calls: Vec<Insn> = slots(&linked)
        .into_iter()
        .filter(|i| i.opc == 0x85)
        .collect();
    // sqrti and checksum by name (rewritten to helper calls), mix by number.
    assert_eq!(calls, [call(0, 3), call(0, 4), call(0, 1)]);

    let mut vm = Vm::new();
    vm.register_helper(3, Some("sqrti"), helper_sqrti).unwrap();
    assert_eq!(
        link_err(&vm, &example("helpers"), None),
        "function 'checksum' not found"
    );
    assert_eq!(
        link_err(&Vm::new(), &example("helpers"), None),
        "function 'sqrti' not found"
    );

    // The lowest index wins when a name is registered twice.
    let mut vm = Vm::new();
    vm.register_helper(40, Some("sqrti"), helper_sqrti).unwrap();
    vm.register_helper(7, Some("sqrti"), helper_sqrti).unwrap();
    vm.register_helper(8, Some("checksum"), helper_checksum)
        .unwrap();
    let linked = vm.link_elf(&example("helpers"), None).unwrap();
    assert_eq!(slots(&linked)[4], call(0, 7));
}

#[test]
fn ubpf_style_helper_relocations_resolve_by_name() {
    let mut vm = Vm::new();
    vm.register_helper(5, Some("sqrti"), helper_sqrti).unwrap();
    for rel_type in [2, 10] {
        for src in [0, 1] {
            let linked = vm.link_elf(&sqrti_template(rel_type, src), None).unwrap();
            assert_eq!(slots(&linked)[1], call(0, 5), "type {rel_type}, src {src}");
        }
    }
    assert_eq!(
        link_err(&Vm::new(), &sqrti_template(2, 0), None),
        "function 'sqrti' not found"
    );
}

#[test]
fn local_call_targets_must_be_functions() {
    // calls.o: `entry` calls `combine` through a relocation; aim it elsewhere.
    let mut p = Patch::of("calls");
    let rel = p.rel_for(".rel.text", "combine");
    let off = p.u64_at(rel + R_OFFSET) as usize;
    let insn_at = p.sh_offset(p.section(".text")) + off;
    p.put_u32(insn_at + 4, 100);
    assert_eq!(
        link_err_plain(&p.0),
        "relocated target of a function call does not point to a known function"
    );
    p.put_u32(insn_at + 4, (-5i32) as u32);
    assert_eq!(
        link_err_plain(&p.0),
        "relocated target of a function call does not point to a known function"
    );
}

#[test]
fn data_relocation_checks_follow_ubpf() {
    let base = Patch::of("globals");
    let rel = base.rel_for(".rel.text", "previous_len");
    let sym = base.symbol("previous_len");
    let text = base.section(".text");
    let text_size = base.sh_size(text) as u64;

    // r_offset + 8 past the section (inside the last function).
    let mut p = base.clone();
    p.put_u64(rel + R_OFFSET, text_size - 4);
    assert_eq!(link_err_plain(&p.0), "bad R_BPF_64_64 relocation offset");

    let mut p = base.clone();
    let count = p.shnum() as u16;
    p.put_u16(sym + ST_SHNDX, count + 1);
    assert_eq!(
        link_err_plain(&p.0),
        "bad R_BPF_64_64 relocation section index"
    );

    let mut p = base.clone();
    p.put_u16(sym + ST_SHNDX, text as u16);
    assert_eq!(link_err_plain(&p.0), "bad R_BPF_64_64 relocation section");
    p.put_u16(sym + ST_SHNDX, count);
    assert_eq!(link_err_plain(&p.0), "bad R_BPF_64_64 relocation section");

    let mut p = base.clone();
    p.put_u64(sym + ST_SIZE, 9);
    assert_eq!(link_err_plain(&p.0), "bad R_BPF_64_64 size");
    p.put_u64(sym + ST_SIZE, 8).put_u64(sym + ST_VALUE, 1);
    assert_eq!(link_err_plain(&p.0), "bad R_BPF_64_64 size");

    // Aimed at an instruction that is not an lddw (slot 2: a load).
    let mut p = base.clone();
    p.put_u64(rel + R_OFFSET, 16);
    assert_eq!(
        link_err_plain(&p.0),
        "bad R_BPF_64_64 relocation instruction"
    );

    // An lddw in the section's last slot passes the first offset check but not the second.
    let mut p = base.clone();
    let last = p.sh_offset(text) + text_size as usize - 8;
    p.put_u8(last, 0x18);
    p.put_u64(rel + R_OFFSET, text_size - 8);
    assert_eq!(link_err_plain(&p.0), "bad R_BPF_64_64 relocation offset");

    // A writable data section the loader does not copy itself needs the callback.
    let mut p = base.clone();
    let at = p.section_field(".data", SH_NAME);
    let name = p.u32_at(at);
    p.put_u32(at, name + 1); // ".data" -> "data"
    assert_eq!(
        link_err_plain(&p.0),
        "R_BPF_64_64 data relocation function not set"
    );
}

#[test]
fn data_relocation_callback_is_used_exactly_as_ubpf() {
    // .data holds two u32s; the lddw refers to the second.
    let mut b = Builder::default();
    let lddw = [
        Insn::new(0x18, 1, 0, 0, 0),
        Insn::new(0, 0, 0, 0, 0),
        Insn::new(0x61, 0, 1, 0, 0),
        exit(),
    ];
    let text = b.text(".text", &lddw);
    let data = b.section(".data", 1, 3, vec![1, 0, 0, 0, 2, 0, 0, 0]);
    b.symbol("entry", STT_FUNC, text, 0, 32);
    let counter = b.symbol("counter", STT_OBJECT, data, 4, 4);
    b.rel(text, &[(0, counter, 1)]);
    let bytes = b.build();

    let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
    let mut vm = Vm::new();
    let record = seen.clone();
    vm.set_data_relocation(Box::new(
        move |data: &[u8], name: &str, offset: u64, size: u64| {
            record
                .lock()
                .unwrap()
                .push((data.to_vec(), name.to_string(), offset, size));
            0x1122_3344_5566_7788
        },
    ))
    .unwrap();
    let linked = vm.link_elf(&bytes, None).unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [(vec![1, 0, 0, 0, 2, 0, 0, 0], "counter".to_string(), 4, 4)]
    );
    let s = slots(&linked);
    assert_eq!(s[0], Insn::new(0x18, 1, 0, 0, 0x5566_7788));
    assert_eq!(s[1], Insn::new(0, 0, 0, 0, 0x1122_3344));
    assert!(
        linked.data_sections.is_empty(),
        "the callback owns the data"
    );

    // With a callback, uBPF's strict section check applies: .rodata and .bss are refused.
    let mut vm = vm_with_helpers();
    vm.set_data_relocation(Box::new(|_: &[u8], _: &str, _: u64, _: u64| 0))
        .unwrap();
    assert_eq!(
        link_err(&vm, &example("globals"), None),
        "bad R_BPF_64_64 relocation section"
    );
}

#[test]
fn data_sections_are_copied_when_no_callback_is_set() {
    let vm = vm_with_helpers();
    let linked = vm.link_elf(&example("globals"), None).unwrap();
    let mut sections: Vec<(&str, usize, bool)> = linked
        .data_sections
        .iter()
        .map(|s| (s.name(), s.len(), s.writable()))
        .collect();
    sections.sort();
    assert_eq!(
        sections,
        [
            (".bss", 8, true),
            (".data", 8, true),
            (".rodata.cst16", 16, false),
            (".rodata.str1.1", 17, false),
        ]
    );
    // Every lddw now holds an address inside one of the copies.
    let s = slots(&linked);
    let mut lddws = 0;
    for pair in s.windows(2) {
        if pair[0].opc == 0x18 {
            let value = u64::from(pair[0].imm as u32) | (u64::from(pair[1].imm as u32) << 32);
            assert!(
                linked
                    .data_sections
                    .iter()
                    .any(|d| d.addr() <= value && value < d.addr() + d.len() as u64),
                "lddw value {value:#x} is in no data section"
            );
            lddws += 1;
        }
    }
    assert_eq!(lddws, 6);
}

#[test]
fn btf_and_debug_sections_are_ignored() {
    let vm = vm_with_helpers();
    let plain = vm.link_elf(&example("packet_filter"), None).unwrap();
    let btf = vm.link_elf(&example("packet_filter_btf"), None).unwrap();
    assert_eq!(plain.code, btf.code);
}

#[test]
fn oversized_programs_fail_as_ubpf_load_would() {
    let mut b = Builder::default();
    let insns = vec![exit(); 65536];
    let text = b.text(".text", &insns);
    b.symbol("entry", STT_FUNC, text, 0, 65536 * 8);
    let bytes = b.build();
    assert_eq!(
        Vm::new().link_elf(&bytes, None).unwrap_err(),
        ElfError::Load(LoadError::TooManyInstructions { max: 65536 })
    );
}

// ---------------------------------------------------------------------------------------------
// Robustness: mutated and truncated objects never panic

/// Applies one random mutation; structure-aware ones aim at header, section, symbol and
/// relocation fields so the sweep reaches the later checks, not just the magic.
fn mutate(bytes: &mut Vec<u8>, rng: &mut Rng) {
    let interesting: [u64; 10] = [
        0,
        1,
        7,
        8,
        0xff,
        0xffff,
        0xffff_ffff,
        u64::MAX,
        bytes.len() as u64,
        rng.next(),
    ];
    let value = interesting[rng.below(interesting.len())];
    let len = bytes.len();
    let width = [1usize, 2, 4, 8][rng.below(4)];
    let put = |bytes: &mut Vec<u8>, at: usize| {
        if at.saturating_add(width) <= bytes.len() {
            bytes[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
        }
    };
    let shoff = u64::from_le_bytes(bytes[40..48].try_into().unwrap()) as usize;
    let shnum = usize::from(u16::from_le_bytes(bytes[60..62].try_into().unwrap()));
    match rng.below(8) {
        0 => bytes.truncate(rng.below(len)),
        1 => {
            let at = rng.below(len);
            bytes[at] ^= 1 << rng.below(8);
        }
        2 => put(bytes, rng.below(64)),
        3 => put(bytes, shoff.saturating_add(rng.below(shnum.max(1) * 64))),
        4 | 5 => {
            // A field inside some section's contents (symbols, relocations, code, strings).
            let section = rng.below(shnum.max(1));
            let header = shoff.saturating_add(section * 64);
            if header.saturating_add(64) <= len {
                let offset =
                    u64::from_le_bytes(bytes[header + 24..header + 32].try_into().unwrap());
                let size = u64::from_le_bytes(bytes[header + 32..header + 40].try_into().unwrap());
                if size > 0 && offset < len as u64 {
                    put(
                        bytes,
                        (offset as usize).saturating_add(rng.below(size as usize)),
                    );
                }
            }
        }
        6 => {
            let at = rng.below(len);
            let extra = rng.below(64);
            bytes.splice(at..at, std::iter::repeat_n(0xa5, extra));
        }
        _ => {
            let at = rng.below(len);
            let end = (at + rng.below(64)).min(len);
            bytes.drain(at..end);
        }
    }
}

#[test]
fn mutated_objects_never_panic() {
    let mut rng = Rng(0x5eed_e1f0_0bad_cafe);
    let mut vm = vm_with_helpers();
    let mut vm_with_callback = vm_with_helpers();
    vm_with_callback
        .set_data_relocation(Box::new(
            |data: &[u8], name: &str, offset: u64, size: u64| {
                data.len() as u64 ^ name.len() as u64 ^ offset ^ size
            },
        ))
        .unwrap();
    let mut outcomes = [0usize; 2];
    for name in EXAMPLES {
        let original = example(name);
        for round in 0..3000 {
            let mut bytes = original.clone();
            for _ in 0..=rng.below(3) {
                if bytes.len() < 64 {
                    break;
                }
                mutate(&mut bytes, &mut rng);
            }
            let target = if round % 4 == 0 {
                &mut vm_with_callback
            } else {
                &mut vm
            };
            let entry = ["entry", "filter", "weigh", "nope"][rng.below(4)];
            // Link (quietly: unknown relocation types only produce warnings), then run the
            // verifier on whatever linked, as load_elf does.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let _ = target.link_elf(&bytes, Some(entry));
                let loaded = match target.link_elf(&bytes, None) {
                    Ok(linked) => target.load_linked(linked).is_ok(),
                    Err(_) => false,
                };
                target.unload().unwrap();
                loaded
            }));
            match result {
                Ok(ok) => outcomes[usize::from(ok)] += 1,
                Err(_) => panic!("{name}: round {round} panicked on {} bytes", bytes.len()),
            }
        }
    }
    // The sweep must exercise both outcomes, or it tests nothing.
    assert!(
        outcomes[0] > 1000 && outcomes[1] > 100,
        "outcomes {outcomes:?}"
    );
}

#[test]
fn overlong_names_are_bad_names() {
    let long = "f".repeat(rbpf::elf::MAX_NAME_LEN + 1);
    let mut b = Builder::default();
    let text = b.text(".text", &[mov64_imm(0, 1), exit()]);
    b.symbol(&long, STT_FUNC, text, 0, 16);
    assert_eq!(
        link_err_plain(&b.build()),
        "a function symbol contained a bad name"
    );

    let mut b = Builder::default();
    let text = b.text(".text", &[call(1, -1), exit()]);
    b.symbol("entry", STT_FUNC, text, 0, 16);
    let helper = b.symbol(&long, STT_NOTYPE, 0, 0, 0);
    b.rel(text, &[(0, helper, 10)]);
    assert_eq!(
        link_err_plain(&b.build()),
        "a relocation's symbol contained a bad name"
    );
}

#[test]
fn pathological_objects_link_in_bounded_time() {
    // 8000 one-slot functions, 24000 relocations of an unknown type spread over them, and
    // names as long as allowed: every lookup must stay cheap.
    let mut b = Builder::default();
    let functions = 8000u64;
    let text = b.text(".text", &vec![exit(); functions as usize]);
    let long = "g".repeat(rbpf::elf::MAX_NAME_LEN - 8);
    for i in 0..functions {
        b.symbol(&format!("{long}{i:06}"), STT_FUNC, text, i * 8, 8);
    }
    let entries: Vec<(u64, u32, u32)> = (0..3 * functions)
        .map(|i| ((i % functions) * 8, 1 + (i % functions) as u32, 99))
        .collect();
    b.rel(text, &entries);
    let bytes = b.build();
    let started = std::time::Instant::now();
    let linked = Vm::new()
        .link_elf(&bytes, Some(&format!("{long}{:06}", functions - 1)))
        .unwrap();
    assert_eq!(linked.functions.len(), functions as usize);
    assert_eq!(linked.warnings.len(), 3 * functions as usize);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// Running the examples: every program loads and returns the reference results.

/// Prepares `vm` (already loaded) for `engine`.
fn prepare(vm: &mut Vm, engine: Engine) {
    engine
        .prepare(vm)
        .unwrap_or_else(|e| panic!("{engine:?}: compile failed: {e}"));
}

fn try_run(vm: &Vm, engine: Engine, mem: &mut [u8]) -> Result<u64, rbpf::ExecError> {
    engine.run(vm, mem)
}

fn run(vm: &Vm, engine: Engine, mem: &mut [u8]) -> u64 {
    try_run(vm, engine, mem).unwrap_or_else(|e| panic!("{engine:?}: execution failed: {e}"))
}

/// Loads `bytes` into a fresh VM with every example helper registered.
fn loaded(bytes: &[u8], entry: Option<&str>) -> Vm {
    let mut vm = vm_with_helpers();
    vm.load_elf(bytes, entry)
        .unwrap_or_else(|e| panic!("load_elf failed: {e}"));
    vm
}

/// The frames of a classic little-endian pcap file.
fn pcap_frames(bytes: &[u8]) -> Vec<Vec<u8>> {
    assert_eq!(
        &bytes[..4],
        &0xa1b2_c3d4u32.to_le_bytes(),
        "microsecond pcap"
    );
    let mut frames = Vec::new();
    let mut at = 24;
    while at < bytes.len() {
        let caplen = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        at += 16;
        frames.push(bytes[at..at + caplen].to_vec());
        at += caplen;
    }
    frames
}

fn sample_frames() -> Vec<Vec<u8>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples-c/data/sample.pcap");
    pcap_frames(&std::fs::read(path).unwrap())
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// What packet_filter.c accepts, written independently in Rust.
fn http_reference(frame: &[u8]) -> bool {
    let (mut ethertype, mut ip) = match be16(frame, 12) {
        Some(t) => (t, 14),
        None => return false,
    };
    if ethertype == 0x8100 {
        match be16(frame, 16) {
            Some(t) => (ethertype, ip) = (t, 18),
            None => return false,
        }
    }
    if ethertype != 0x0800 || frame.len() < ip + 20 || frame[ip] >> 4 != 4 {
        return false;
    }
    let ihl = usize::from(frame[ip] & 15) * 4;
    if ihl < 20 || frame.len() < ip + ihl || frame[ip + 9] != 6 {
        return false;
    }
    if be16(frame, ip + 6).unwrap() & 0x1fff != 0 {
        return false;
    }
    be16(frame, ip + ihl + 2) == Some(80) && frame.len() >= ip + ihl + 4
}

fn check_packet_filter(bytes: &[u8]) {
    let frames = sample_frames();
    let expected = frames.iter().filter(|f| http_reference(f)).count();
    assert!(
        expected > 20 && expected < frames.len() / 2,
        "sample has {expected} matches"
    );
    for engine in ENGINES {
        let mut vm = loaded(bytes, None);
        prepare(&mut vm, engine);
        let mut matched = 0;
        for (i, frame) in frames.iter().enumerate() {
            let mut mem = frame.clone();
            let verdict = run(&vm, engine, &mut mem);
            assert_eq!(
                verdict,
                u64::from(http_reference(frame)),
                "{engine:?}: frame {i}"
            );
            matched += verdict as usize;
        }
        assert_eq!(matched, expected);
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn calls_reference(a: u32, b: u32) -> u64 {
    let (a, b) = (u64::from(a), u64::from(b));
    let fib = (0..a % 32)
        .fold((0u64, 1u64), |(x, y), _| (y, x.wrapping_add(y)))
        .0;
    (gcd(a, b) * 1000 + (a ^ b))
        .wrapping_add(fib)
        .wrapping_add(b * 3 + 1)
}

fn check_calls(bytes: &[u8]) {
    let inputs = [
        (0u32, 0u32),
        (12, 18),
        (1071, 462),
        (31, 1),
        (u32::MAX, 65537),
        (7, 0),
    ];
    for engine in ENGINES {
        for entry in [None, Some("entry")] {
            let mut vm = loaded(bytes, entry);
            prepare(&mut vm, engine);
            for (a, b) in inputs {
                let mut mem = [a.to_le_bytes(), b.to_le_bytes()].concat();
                assert_eq!(
                    run(&vm, engine, &mut mem),
                    calls_reference(a, b),
                    "{engine:?} {a} {b}"
                );
            }
            let mut short = [0u8; 7];
            assert_eq!(run(&vm, engine, &mut short), u64::MAX);
        }
        // Entering at another function runs that function: weigh(r1) = 3 * r1 + 1, with r1
        // the address of mem.
        let mut vm = loaded(bytes, Some("weigh"));
        prepare(&mut vm, engine);
        let mut mem = [0u8; 8];
        let address = mem.as_ptr() as u64;
        assert_eq!(
            run(&vm, engine, &mut mem),
            address.wrapping_mul(3).wrapping_add(1)
        );
    }
}

fn nibble_weight(len: u64) -> u64 {
    u64::from((len & 0xff).count_ones())
}

fn check_globals(bytes: &[u8]) {
    for engine in ENGINES {
        let mut vm = loaded(bytes, None);
        prepare(&mut vm, engine);
        let mut previous = 0xfeed_beefu64;
        for (run_no, len) in [(1u64, 20usize), (2, 5), (3, 0x1234), (4, 16)] {
            let mut mem = vec![b'.'; len];
            let result = run(&vm, engine, &mut mem);
            let expected =
                (run_no << 48) | (nibble_weight(len as u64) << 32) | (previous & 0xffff_ffff);
            assert_eq!(result, expected, "{engine:?}: run {run_no}");
            let hex = format!("{:016x}", len as u64);
            let written = len.min(16);
            assert_eq!(&mem[..written], &hex.as_bytes()[..written]);
            assert!(mem[written..].iter().all(|&b| b == b'.'));
            previous = len as u64;
        }
        // Reloading starts from fresh copies of .data and .bss.
        vm.unload().unwrap();
        vm.load_elf(bytes, None).unwrap();
        prepare(&mut vm, engine);
        let mut mem = vec![0u8; 3];
        assert_eq!(
            run(&vm, engine, &mut mem),
            (1 << 48) | (2 << 32) | 0xfeed_beef
        );
    }
}

fn check_helpers(bytes: &[u8]) {
    for engine in ENGINES {
        let mut vm = loaded(bytes, None);
        prepare(&mut vm, engine);
        for len in [0usize, 1, 9, 100, 1500] {
            let mut mem: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let n = len as u64;
            let expected = (n * 1000)
                .isqrt()
                .wrapping_add(checksum_reference(&mem) << 16)
                .wrapping_add(mix_reference(n, 7, 11, 13, 17) << 40);
            assert_eq!(
                run(&vm, engine, &mut mem),
                expected,
                "{engine:?}: len {len}"
            );
        }
    }
}

fn class_reference(frame: &[u8]) -> usize {
    if frame.len() < 34 || be16(frame, 12) != Some(0x0800) {
        return 0;
    }
    match frame[23] {
        6 => 1,
        17 => 2,
        1 => 3,
        _ => 4,
    }
}

/// Serialises tests that use the process-wide map.
static MAP_USERS: Mutex<()> = Mutex::new(());

fn check_map(bytes: &[u8]) {
    let _guard = MAP_USERS.lock().unwrap_or_else(|e| e.into_inner());
    let frames = sample_frames();
    for engine in ENGINES {
        *MAP.lock().unwrap() = [0; 8];
        let mut vm = loaded(bytes, None);
        prepare(&mut vm, engine);
        let mut expected = [0i64; 8];
        for frame in &frames {
            let class = class_reference(frame);
            expected[class] += 1;
            expected[5] += 1;
            let mut mem = frame.clone();
            assert_eq!(
                run(&vm, engine, &mut mem),
                expected[class] as u64,
                "{engine:?}"
            );
        }
        assert_eq!(*MAP.lock().unwrap(), expected);
        assert!(expected[1] > 0 && expected[2] > 0 && expected[3] > 0 && expected[0] > 0);
    }
}

#[test]
fn packet_filter_matches_the_reference_on_the_sample_capture() {
    check_packet_filter(&example("packet_filter"));
    check_packet_filter(&example("packet_filter_btf"));
}

#[test]
fn calls_example_returns_reference_results() {
    check_calls(&example("calls"));
}

#[test]
fn globals_example_keeps_state_in_data_sections() {
    check_globals(&example("globals"));
}

#[test]
fn helpers_example_calls_helpers_by_name_and_number() {
    check_helpers(&example("helpers"));
}

#[test]
fn map_example_counts_frames_through_host_helpers() {
    check_map(&example("map"));
}

#[test]
fn ubpf_test_template_computes_sqrti() {
    // uBPF's tests/elf/ok.data expects 0x2a = sqrti(1764).
    for rel_type in [2, 10] {
        let mut vm = Vm::new();
        vm.register_helper(5, Some("sqrti"), helper_sqrti).unwrap();
        vm.load_elf(&sqrti_template(rel_type, 0), None).unwrap();
        for engine in ENGINES {
            prepare(&mut vm, engine);
            assert_eq!(run(&vm, engine, &mut []), 42);
        }
    }
}

#[test]
fn rodata_is_readable_but_not_writable() {
    // lddw r1, greeting; ldxb r0, [r1+1]; stb [r1+0], 1 (only when r2 != 0); exit
    let mut b = Builder::default();
    let text = b.text(
        ".text",
        &[
            Insn::new(0x18, 1, 0, 0, 0),
            Insn::new(0, 0, 0, 0, 0),
            Insn::new(0x71, 0, 1, 1, 0),
            Insn::new(0x15, 2, 0, 1, 0), // if r2 == 0 goto exit
            Insn::new(0x72, 1, 0, 0, 1),
            exit(),
        ],
    );
    let rodata = b.section(".rodata", 1, 2, b"hi!\0".to_vec());
    b.symbol("entry", STT_FUNC, text, 0, 48);
    let greeting = b.symbol("greeting", STT_OBJECT, rodata, 0, 4);
    b.rel(text, &[(0, greeting, 1)]);
    let bytes = b.build();
    let mut vm = Vm::new();
    vm.load_elf(&bytes, None).unwrap();
    for engine in ENGINES {
        prepare(&mut vm, engine);
        assert_eq!(run(&vm, engine, &mut []), u64::from(b'i'));
        let mut mem = [0u8; 1];
        let err = try_run(&vm, engine, &mut mem);
        assert!(
            matches!(
                err,
                Err(rbpf::ExecError::OutOfBounds {
                    access: rbpf::Access::Store,
                    ..
                })
            ),
            "{engine:?}: {err:?}"
        );
    }
}

/// `readonly.o`: a load from a `const volatile int` in `.rodata`, then a store to the same
/// bytes in the same basic block. Every engine refuses the store (the JIT must not reuse the
/// load's check for it) and the value stays 5.
fn check_readonly(bytes: &[u8]) {
    let mut vm = Vm::new();
    vm.set_error_printer(Some(Box::new(|_| {})));
    vm.load_elf(bytes, None).unwrap();
    let section = vm
        .program()
        .unwrap()
        .data_sections
        .iter()
        .find(|s| s.name() == ".rodata")
        .map(|s| (s.addr(), s.len(), s.writable()))
        .expect("x lives in .rodata");
    assert_eq!((section.1, section.2), (4, false));
    let store_pc = vm
        .program()
        .unwrap()
        .insns
        .iter()
        .position(|i| i.opc == 0x63)
        .expect("a stxw");
    for engine in ENGINES {
        prepare(&mut vm, engine);
        for len in [0usize, 1, 8] {
            let mut mem = vec![0u8; len];
            let err = try_run(&vm, engine, &mut mem);
            assert!(
                matches!(
                    err,
                    Err(rbpf::ExecError::OutOfBounds {
                        access: rbpf::Access::Store,
                        pc,
                        size: 4,
                        ..
                    }) if pc == store_pc
                ),
                "{engine:?}: {err:?}"
            );
            // SAFETY: the section is alive while the program is loaded; 4 readable bytes.
            let x = unsafe { (section.0 as *const i32).read_unaligned() };
            assert_eq!(x, 5, "{engine:?} modified .rodata");
        }
    }
}

#[test]
fn stores_into_rodata_fail_even_right_after_a_load_of_the_same_bytes() {
    check_readonly(&example("readonly"));
}

#[test]
fn loading_twice_needs_an_unload() {
    let mut vm = loaded(&example("packet_filter"), None);
    assert_eq!(
        vm.load_elf(&example("packet_filter"), None)
            .unwrap_err()
            .to_string(),
        "code has already been loaded into this VM. Use ubpf_unload_code() if you need to reuse this VM"
    );
    vm.unload().unwrap();
    vm.load_elf(&example("packet_filter"), None).unwrap();
}

#[test]
fn verifier_errors_are_returned_as_load_errors() {
    // An unknown opcode in the second slot of helpers.o's main.
    let mut p = Patch::of("helpers");
    let text = p.sh_offset(p.section(".text"));
    p.put_u8(text + 8, 0xff);
    let mut vm = vm_with_helpers();
    let err = vm.load_elf(&p.0, None).unwrap_err();
    assert_eq!(
        err,
        ElfError::Load(LoadError::UnknownOpcode {
            pc: 1,
            opcode: 0xff
        })
    );
    assert_eq!(err.to_string(), "unknown opcode 0xff at PC 1");
    assert!(vm.program().is_none());
}

/// Recompiles every example with the installed clang (if any) and checks the fresh objects
/// behave like the checked-in ones. Byte-identical output is not expected across versions.
#[test]
fn examples_recompiled_with_clang_behave_the_same() {
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    if std::process::Command::new(&clang)
        .arg("--version")
        .output()
        .is_err()
    {
        common::skip(&clang, "the example eBPF programs were not recompiled");
        return;
    }
    let out = std::env::temp_dir().join(format!("rbpf-elf-examples-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    let compile = |source: &str, debug: bool| -> Vec<u8> {
        let object = out.join(format!("{source}{}.o", if debug { "_g" } else { "" }));
        let status = std::process::Command::new(&clang)
            .args(["-target", "bpf", "-O2", "-Wall", "-Wextra", "-Werror"])
            .arg(if debug { "-g" } else { "-g0" })
            .arg("-c")
            .arg(bpf_dir().join(format!("{source}.c")))
            .arg("-o")
            .arg(&object)
            .status()
            .unwrap();
        assert!(status.success(), "clang failed on {source}.c");
        std::fs::read(&object).unwrap()
    };
    check_packet_filter(&compile("packet_filter", false));
    check_packet_filter(&compile("packet_filter", true));
    check_calls(&compile("calls", false));
    check_globals(&compile("globals", false));
    check_helpers(&compile("helpers", false));
    check_map(&compile("map", false));
    check_readonly(&compile("readonly", false));
    let _ = std::fs::remove_dir_all(&out);
}

/// main: `call sub; exit` with the call at offset 0 of main (uBPF's relocation search skips a
/// function's first byte); sub: `mov r0, 7; exit`. The call is relocated with `rel_type`
/// against either the section symbol (clang's form for static functions: imm = offset/8 - 1)
/// or sub's own symbol (clang's form for global functions: imm = -1).
fn local_call_object(rel_type: u32, against_function_symbol: bool) -> Vec<u8> {
    let mut b = Builder::default();
    let imm = if against_function_symbol { -1 } else { 1 };
    let text = b.text(".text", &[call(1, imm), exit(), mov64_imm(0, 7), exit()]);
    b.symbol("main", STT_FUNC, text, 0, 16);
    let sub = b.symbol("sub", STT_FUNC, text, 16, 16);
    let section = b.symbol("", 3, text, 0, 0);
    let target = if against_function_symbol {
        sub
    } else {
        section
    };
    b.rel(text, &[(0, target, rel_type)]);
    b.build()
}

#[test]
fn local_call_relocations_of_both_types_and_symbol_kinds_link() {
    for rel_type in [2, 10] {
        for against_function_symbol in [false, true] {
            let bytes = local_call_object(rel_type, against_function_symbol);
            for entry in [None, Some("sub")] {
                let linked = Vm::new().link_elf(&bytes, entry).unwrap();
                assert_eq!(
                    call_graph(&linked),
                    [("main".to_string(), "sub".to_string())],
                    "type {rel_type}, function symbol {against_function_symbol}, entry {entry:?}"
                );
            }
            let mut vm = Vm::new();
            vm.load_elf(&bytes, None).unwrap();
            for engine in ENGINES {
                prepare(&mut vm, engine);
                assert_eq!(run(&vm, engine, &mut []), 7, "{engine:?}");
            }
        }
    }
}

#[test]
fn data_relocation_callback_sees_the_callers_buffer() {
    let bytes = example("globals");
    let range = bytes.as_ptr() as usize..bytes.as_ptr() as usize + bytes.len();
    let inside = std::sync::Arc::new(Mutex::new(Vec::new()));
    let record = inside.clone();
    let mut vm = Vm::new();
    vm.set_data_relocation(Box::new(move |data: &[u8], _: &str, _: u64, _: u64| {
        let start = data.as_ptr() as usize;
        record
            .lock()
            .unwrap()
            .push(range.start <= start && start + data.len() <= range.end);
        0
    }))
    .unwrap();
    // previous_len (.data) reaches the callback; runs (.bss) is then refused, as in uBPF.
    assert!(vm.link_elf(&bytes, None).is_err());
    assert_eq!(*inside.lock().unwrap(), [true]);
}
