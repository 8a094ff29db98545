//! The maps an ELF object declares: libbpf's BTF-defined maps in `.maps`, and legacy
//! `struct bpf_map_def` variables in `maps` (or `maps/…`) sections. The ELF loader gives a
//! plain view of the file's sections and symbols; this module creates every map up front (so a
//! bad one fails the load before anything is installed) and tells the loader what an `lddw`
//! relocated against a map symbol receives.

use std::collections::HashMap;
use std::sync::Arc;

use crate::exec::maps::{Map, MapDef};
use crate::kernel::btf::Btf;

/// A section, as the loader sees it.
pub(crate) struct SectionView<'a> {
    /// Its name.
    pub name: &'a [u8],
    /// Its bytes (empty for SHT_NOBITS).
    pub data: &'a [u8],
}

/// A symbol, as the loader sees it.
pub(crate) struct SymbolView<'a> {
    /// Its name.
    pub name: &'a [u8],
    /// Its section index.
    pub section: usize,
    /// `st_value`.
    pub value: u64,
    /// `st_size`.
    pub size: u64,
    /// Whether it is a data object (`STT_OBJECT`) or untyped, as map variables are.
    pub is_object: bool,
}

/// The maps of one object.
#[derive(Default)]
pub(crate) struct ObjectMaps {
    /// Every map, in declaration order.
    pub maps: Vec<Arc<Map>>,
    /// (section index, offset in it) → index in `maps`.
    at: HashMap<(usize, u64), usize>,
    /// Sections that hold map definitions.
    sections: Vec<usize>,
}

impl ObjectMaps {
    /// Whether section `index` holds map definitions.
    pub(crate) fn is_map_section(&self, index: usize) -> bool {
        self.sections.contains(&index)
    }

    /// The handle of the map defined at `offset` of section `index`.
    pub(crate) fn handle_at(&self, index: usize, offset: u64) -> Option<u64> {
        let &i = self.at.get(&(index, offset))?;
        Some(self.maps[i].handle())
    }
}

fn is_legacy_section(name: &[u8]) -> bool {
    name == b"maps" || name.starts_with(b"maps/")
}

/// A map an object declares, before it is created.
pub(crate) struct DeclaredMap {
    /// The section holding its definition.
    pub section: usize,
    /// The definition's offset in that section.
    pub offset: u64,
    /// Its name (the variable's symbol).
    pub name: String,
    /// What it declares.
    pub def: MapDef,
    /// For BTF definitions with `__array(values, …)`: the byte offset, in the section, of
    /// the initial values (one 8-byte slot per index, relocated against what it holds).
    pub values: Option<u64>,
}

/// Creates every map `sections` and `symbols` declare.
pub(crate) fn declared_maps(
    sections: &[SectionView<'_>],
    symbols: &[SymbolView<'_>],
) -> Result<ObjectMaps, String> {
    let (declared, map_sections) = declared_map_defs(sections, symbols)?;
    let mut out = ObjectMaps {
        sections: map_sections,
        ..ObjectMaps::default()
    };
    for d in declared {
        let map = Map::new(d.name.clone(), d.def).map_err(|e| format!("map '{}': {e}", d.name))?;
        out.at.insert((d.section, d.offset), out.maps.len());
        out.maps.push(Arc::new(map));
    }
    Ok(out)
}

/// Reads every map definition of `sections` (BTF-defined in `.maps`, legacy in `maps` and
/// `maps/…`) without creating the maps, and the indices of the sections that hold them. A
/// name defined twice, or a definition that cannot be read, is an error.
pub(crate) fn declared_map_defs(
    sections: &[SectionView<'_>],
    symbols: &[SymbolView<'_>],
) -> Result<(Vec<DeclaredMap>, Vec<usize>), String> {
    let mut out: Vec<DeclaredMap> = Vec::new();
    let mut map_sections = Vec::new();
    let add = |out: &mut Vec<DeclaredMap>, declared: DeclaredMap| {
        if out.iter().any(|m| m.name == declared.name) {
            return Err(format!("map '{}': defined twice", declared.name));
        }
        out.push(declared);
        Ok(())
    };

    if let Some(index) = sections.iter().position(|s| s.name == b".maps") {
        let btf = sections
            .iter()
            .find(|s| s.name == b".BTF")
            .ok_or("section .maps needs BTF: compile with -g")?;
        let btf = Btf::parse(btf.data)?;
        for (name, _, def, values) in btf.map_defs_with_values(b".maps")? {
            // clang leaves the DATASEC offsets 0 (libbpf fixes them up from the symbols):
            // the symbol of the same name says where the map is.
            let offset = symbols
                .iter()
                .find(|s| s.section == index && s.name == name.as_bytes())
                .map(|s| s.value)
                .ok_or_else(|| format!("map '{name}': no symbol in .maps"))?;
            let values = values.and_then(|v| offset.checked_add(u64::from(v)));
            let declared = DeclaredMap {
                section: index,
                offset,
                name,
                def,
                values,
            };
            add(&mut out, declared)?;
        }
        map_sections.push(index);
    }

    for (index, section) in sections.iter().enumerate() {
        if !is_legacy_section(section.name) {
            continue;
        }
        map_sections.push(index);
        let vars: Vec<&SymbolView<'_>> = symbols
            .iter()
            .filter(|s| s.section == index && s.is_object && !s.name.is_empty())
            .collect();
        for var in &vars {
            let name = String::from_utf8_lossy(var.name).into_owned();
            // Older objects leave st_size 0: each definition is then the section split evenly.
            let size = if var.size != 0 {
                var.size
            } else {
                section.data.len() as u64 / vars.len() as u64
            };
            if size < 16 {
                return Err(format!(
                    "map '{name}': definition of {size} bytes is too small"
                ));
            }
            let field = |i: u64| -> Option<u32> {
                if 4 * i + 4 > size {
                    return Some(0);
                }
                let at = usize::try_from(var.value.checked_add(4 * i)?).ok()?;
                let bytes = section.data.get(at..at.checked_add(4)?)?;
                Some(u32::from_le_bytes(bytes.try_into().ok()?))
            };
            let fields: Option<Vec<u32>> = (0..5).map(field).collect();
            let Some(f) = fields else {
                return Err(format!("map '{name}': definition lies outside its section"));
            };
            let def = MapDef {
                map_type: f[0],
                key_size: f[1],
                value_size: f[2],
                max_entries: f[3],
                map_flags: f[4],
                map_extra: 0,
            };
            let declared = DeclaredMap {
                section: index,
                offset: var.value,
                name,
                def,
                values: None,
            };
            add(&mut out, declared)?;
        }
    }
    Ok((out, map_sections))
}
