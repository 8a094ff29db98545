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

/// Creates every map `sections` and `symbols` declare.
pub(crate) fn declared_maps(
    sections: &[SectionView<'_>],
    symbols: &[SymbolView<'_>],
) -> Result<ObjectMaps, String> {
    let mut out = ObjectMaps::default();
    let add = |out: &mut ObjectMaps, section: usize, offset: u64, name: String, def: MapDef| {
        if out.maps.iter().any(|m| m.name() == name) {
            return Err(format!("map '{name}': defined twice"));
        }
        let map = Map::new(name.clone(), def).map_err(|e| format!("map '{name}': {e}"))?;
        out.at.insert((section, offset), out.maps.len());
        out.maps.push(Arc::new(map));
        Ok(())
    };

    if let Some(index) = sections.iter().position(|s| s.name == b".maps") {
        let btf = sections
            .iter()
            .find(|s| s.name == b".BTF")
            .ok_or("section .maps needs BTF: compile with -g")?;
        let btf = Btf::parse(btf.data)?;
        for (name, _, def) in btf.map_defs(b".maps")? {
            // clang leaves the DATASEC offsets 0 (libbpf fixes them up from the symbols):
            // the symbol of the same name says where the map is.
            let offset = symbols
                .iter()
                .find(|s| s.section == index && s.name == name.as_bytes())
                .map(|s| s.value)
                .ok_or_else(|| format!("map '{name}': no symbol in .maps"))?;
            add(&mut out, index, offset, name, def)?;
        }
        out.sections.push(index);
    }

    for (index, section) in sections.iter().enumerate() {
        if !is_legacy_section(section.name) {
            continue;
        }
        out.sections.push(index);
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
            add(&mut out, index, var.value, name, def)?;
        }
    }
    Ok(out)
}
