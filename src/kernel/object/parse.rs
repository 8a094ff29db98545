//! A relocatable eBPF ELF object read with the `object` crate, as plain tables the object
//! loader works from: sections, symbols, functions and relocations. Unlike the uBPF-compatible
//! loader ([`crate::kernel::elf`]) there is no limit on the number of sections: whatever clang
//! emits with `-g` (BTF, DWARF and their relocation sections) is read, and sections this
//! loader has no use for are skipped. Every offset and size is checked against the file by the
//! `object` crate or here, so a malformed file gives [`ObjectError::Malformed`], never a panic.

use std::collections::HashMap;

use object::LittleEndian;
use object::elf::{
    ELFDATA2LSB, EM_BPF, EM_NONE, ET_REL, FileHeader64, SHF_ALLOC, SHF_EXECINSTR, SHN_LORESERVE,
    SHT_NOBITS, SHT_PROGBITS, SHT_REL, SHT_SYMTAB, STT_FUNC, STT_NOTYPE, STT_OBJECT,
};
use object::read::elf::{FileHeader as _, SectionHeader as _, Sym as _};

use crate::error::ObjectError;
use crate::isa::INSN_SIZE;

const LE: LittleEndian = LittleEndian;

/// One section.
pub(crate) struct Section<'a> {
    /// Its name (empty when the name is outside the string table).
    pub name: &'a [u8],
    /// `sh_type`.
    pub kind: u32,
    /// `sh_flags`.
    pub flags: u64,
    /// `sh_size` (also for `SHT_NOBITS`, which has no bytes in the file).
    pub size: u64,
    /// Its bytes (empty for `SHT_NOBITS`).
    pub data: &'a [u8],
}

impl Section<'_> {
    /// Code: `PROGBITS` with `SHF_EXECINSTR` (libbpf's test).
    pub fn is_code(&self) -> bool {
        self.kind == SHT_PROGBITS && self.flags & u64::from(SHF_EXECINSTR) != 0
    }

    /// Global data the object loader turns into a map: `.rodata`, `.data`, `.bss` and their
    /// `.rodata.*`, `.data.*`, `.bss.*` variants, allocated and not executable.
    pub fn is_global_data(&self) -> bool {
        let named = matches!(self.name, b".data" | b".bss" | b".rodata")
            || self.name.starts_with(b".data.")
            || self.name.starts_with(b".bss.")
            || self.name.starts_with(b".rodata.");
        named
            && matches!(self.kind, SHT_PROGBITS | SHT_NOBITS)
            && self.flags & u64::from(SHF_ALLOC) != 0
            && self.flags & u64::from(SHF_EXECINSTR) == 0
    }
}

/// One symbol.
pub(crate) struct Symbol<'a> {
    /// Its name (empty for section symbols).
    pub name: &'a [u8],
    /// Its section index; `None` for undefined, absolute and other special indices.
    pub section: Option<usize>,
    /// `st_value`.
    pub value: u64,
    /// `st_size`.
    pub size: u64,
    /// `st_type`.
    pub kind: u8,
}

/// A function: an `STT_FUNC` symbol in a code section.
#[derive(Debug, Clone)]
pub(crate) struct Func {
    /// Its symbol name.
    pub name: String,
    /// Its section.
    pub section: usize,
    /// Its first byte in the section.
    pub start: u64,
    /// Its size in bytes.
    pub size: u64,
}

/// One relocation entry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reloc {
    /// `r_type`.
    pub kind: u32,
    /// Index in [`Elf::symbols`].
    pub symbol: usize,
}

/// The parsed object.
pub(crate) struct Elf<'a> {
    /// Every section, by index.
    pub sections: Vec<Section<'a>>,
    /// The symbol table (empty when there is none).
    pub symbols: Vec<Symbol<'a>>,
    /// Every function, in symbol-table order.
    pub funcs: Vec<Func>,
    /// (section, offset) → relocation, for every `SHT_REL` section.
    pub relocs: HashMap<(usize, u64), Reloc>,
}

fn malformed(e: impl std::fmt::Display) -> ObjectError {
    ObjectError::Malformed(e.to_string())
}

impl<'a> Elf<'a> {
    /// Reads `bytes`: a 64-bit little-endian relocatable object for `EM_BPF` (or machine 0).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ObjectError> {
        let header = FileHeader64::<LittleEndian>::parse(bytes).map_err(malformed)?;
        if !header.is_class_64() || header.e_ident.data != ELFDATA2LSB {
            return Err(malformed("not a 64-bit little-endian ELF file"));
        }
        if header.e_type.get(LE) != ET_REL {
            return Err(malformed("not a relocatable object (ET_REL)"));
        }
        let machine = header.e_machine.get(LE);
        if machine != EM_BPF && machine != EM_NONE {
            return Err(malformed(format!("machine {machine} is not BPF")));
        }
        let table = header.sections(LE, bytes).map_err(malformed)?;
        let mut sections = Vec::with_capacity(table.len());
        for header in table.iter() {
            let kind = header.sh_type(LE);
            let data = if kind == SHT_NOBITS {
                &[][..]
            } else {
                header.data(LE, bytes).map_err(malformed)?
            };
            sections.push(Section {
                name: table.section_name(LE, header).unwrap_or(b""),
                kind,
                flags: header.sh_flags(LE),
                size: header.sh_size(LE),
                data,
            });
        }
        let section_count = sections.len();
        let symtab = table.symbols(LE, bytes, SHT_SYMTAB).map_err(malformed)?;
        let strings = symtab.strings();
        let symbols: Vec<Symbol<'a>> = symtab
            .symbols()
            .iter()
            .map(|s| {
                let index = usize::from(s.st_shndx(LE));
                Symbol {
                    name: s.name(LE, strings).unwrap_or(b""),
                    section: (index != 0
                        && index < usize::from(SHN_LORESERVE)
                        && index < section_count)
                        .then_some(index),
                    value: s.st_value(LE),
                    size: s.st_size(LE),
                    kind: s.st_type(),
                }
            })
            .collect();

        let mut funcs = Vec::new();
        for sym in &symbols {
            if sym.kind != STT_FUNC {
                continue;
            }
            let name = String::from_utf8_lossy(sym.name).into_owned();
            let Some(section) = sym
                .section
                .filter(|&i| sections.get(i).is_some_and(Section::is_code))
            else {
                return Err(malformed(format!(
                    "function '{name}' is not in an executable section"
                )));
            };
            let fits = sym
                .value
                .checked_add(sym.size)
                .is_some_and(|end| end <= sections[section].data.len() as u64);
            let slot = INSN_SIZE as u64;
            if !fits || sym.value % slot != 0 || sym.size % slot != 0 {
                return Err(malformed(format!(
                    "function '{name}' lies outside its section or is not made of whole instructions"
                )));
            }
            funcs.push(Func {
                name,
                section,
                start: sym.value,
                size: sym.size,
            });
        }

        let mut relocs = HashMap::new();
        for header in table.iter() {
            if header.sh_type(LE) != SHT_REL {
                continue;
            }
            let target = usize::try_from(header.sh_info(LE)).unwrap_or(usize::MAX);
            let Some((rels, _)) = header.rel(LE, bytes).map_err(malformed)? else {
                continue;
            };
            for rel in rels {
                let symbol = usize::try_from(rel.r_sym(LE)).unwrap_or(usize::MAX);
                if symbol >= symbols.len() {
                    return Err(malformed(format!(
                        "a relocation of section {target} names symbol {symbol}, which does not exist"
                    )));
                }
                relocs.insert(
                    (target, rel.r_offset.get(LE)),
                    Reloc {
                        kind: rel.r_type(LE),
                        symbol,
                    },
                );
            }
        }
        Ok(Elf {
            sections,
            symbols,
            funcs,
            relocs,
        })
    }

    /// The name of section `index`, for messages.
    pub fn section_name(&self, index: usize) -> String {
        self.sections
            .get(index)
            .map(|s| String::from_utf8_lossy(s.name).into_owned())
            .unwrap_or_default()
    }

    /// The function starting at `offset` of `section` (the first one, if several do).
    pub fn func_at(&self, section: usize, offset: u64) -> Option<usize> {
        self.funcs
            .iter()
            .position(|f| f.section == section && f.start == offset && f.size > 0)
    }

    /// The views [`crate::kernel::object_maps`] reads map declarations from.
    pub fn map_views(
        &self,
    ) -> (
        Vec<crate::kernel::object_maps::SectionView<'a>>,
        Vec<crate::kernel::object_maps::SymbolView<'a>>,
    ) {
        use crate::kernel::object_maps::{SectionView, SymbolView};
        let sections = self
            .sections
            .iter()
            .map(|s| SectionView {
                name: s.name,
                data: s.data,
            })
            .collect();
        let symbols = self
            .symbols
            .iter()
            .map(|s| SymbolView {
                name: s.name,
                section: s.section.unwrap_or(0),
                value: s.value,
                size: s.size,
                is_object: matches!(s.kind, STT_OBJECT | STT_NOTYPE),
            })
            .collect();
        (sections, symbols)
    }
}
