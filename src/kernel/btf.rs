//! Just enough of BTF (the `.BTF` section clang writes with `-g`) to read libbpf's map
//! definitions: the `.maps` DATASEC, each variable's anonymous struct, and in it the members
//! `__uint(name, N)` (a pointer to an array of N elements) and `__type(name, T)` (a pointer to
//! T, whose size is the key or value size).
//!
//! Every offset and count comes from the file and is checked; type chains are followed a
//! bounded number of steps, so malformed or cyclic BTF gives an error, never a panic or hang.

use crate::exec::maps::MapDef;

const MAGIC: u16 = 0xeb9f;
const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_FWD: u32 = 7;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_FLOAT: u32 = 16;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

/// A map variable of a DATASEC: name, offset in the section, definition, and the byte offset
/// of its `values` member.
pub(crate) type MapDecl = (String, u32, MapDef, Option<u32>);

/// Longest chain of typedefs, qualifiers and arrays followed when sizing a type.
const MAX_DEPTH: usize = 32;

/// One parsed type: its header and where its kind-specific data starts.
#[derive(Clone, Copy)]
struct Type {
    name_off: u32,
    info: u32,
    size_or_type: u32,
    extra: usize,
}

impl Type {
    fn kind(&self) -> u32 {
        (self.info >> 24) & 0x1f
    }
    fn vlen(&self) -> usize {
        (self.info & 0xffff) as usize
    }
}

/// A parsed `.BTF` section.
pub(crate) struct Btf<'a> {
    types_bytes: &'a [u8],
    strings: &'a [u8],
    /// Type id `i` is `types[i - 1]`.
    types: Vec<Type>,
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(b.try_into().ok()?))
}

impl<'a> Btf<'a> {
    /// Parses the header and indexes every type.
    pub(crate) fn parse(data: &'a [u8]) -> Result<Self, String> {
        let magic = data.get(..2).map(|m| u16::from_le_bytes([m[0], m[1]]));
        if magic != Some(MAGIC) {
            return Err("bad BTF magic".into());
        }
        let field = |at| u32_at(data, at).ok_or_else(|| "truncated BTF header".to_string());
        let hdr_len = field(4)? as usize;
        let (type_off, type_len) = (field(8)? as usize, field(12)? as usize);
        let (str_off, str_len) = (field(16)? as usize, field(20)? as usize);
        let range = |off: usize, len: usize| {
            let start = hdr_len.checked_add(off)?;
            data.get(start..start.checked_add(len)?)
        };
        let types_bytes = range(type_off, type_len).ok_or("BTF type section out of bounds")?;
        let strings = range(str_off, str_len).ok_or("BTF string section out of bounds")?;
        let mut types = Vec::new();
        let mut at = 0usize;
        while at < types_bytes.len() {
            let start = at;
            let bad = || format!("truncated BTF type at offset {start}");
            let name_off = u32_at(types_bytes, at).ok_or_else(bad)?;
            let info = u32_at(types_bytes, at + 4).ok_or_else(bad)?;
            let size_or_type = u32_at(types_bytes, at + 8).ok_or_else(bad)?;
            let t = Type {
                name_off,
                info,
                size_or_type,
                extra: at + 12,
            };
            let extra = match t.kind() {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => 12 * t.vlen(),
                KIND_ENUM | KIND_FUNC_PROTO => 8 * t.vlen(),
                KIND_PTR | KIND_FWD | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT
                | KIND_FUNC | KIND_FLOAT | KIND_TYPE_TAG => 0,
                other => return Err(format!("unknown BTF kind {other}")),
            };
            at = t.extra + extra;
            if at > types_bytes.len() {
                return Err(bad());
            }
            types.push(t);
        }
        Ok(Btf {
            types_bytes,
            strings,
            types,
        })
    }

    fn get(&self, id: u32) -> Option<Type> {
        self.types.get((id as usize).checked_sub(1)?).copied()
    }

    fn name(&self, off: u32) -> &'a [u8] {
        let tail = self.strings.get(off as usize..).unwrap_or(&[]);
        let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        &tail[..end]
    }

    fn word(&self, t: &Type, index: usize) -> Option<u32> {
        u32_at(self.types_bytes, t.extra + 4 * index)
    }

    /// Skips typedefs and qualifiers.
    fn resolve(&self, mut id: u32) -> Result<Type, String> {
        for _ in 0..MAX_DEPTH {
            let t = self
                .get(id)
                .ok_or_else(|| format!("bad BTF type id {id}"))?;
            match t.kind() {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = t.size_or_type;
                }
                _ => return Ok(t),
            }
        }
        Err("BTF type chain too long".into())
    }

    /// The size in bytes of type `id`.
    fn size_of(&self, id: u32, depth: usize) -> Result<u64, String> {
        if depth > MAX_DEPTH {
            return Err("BTF type chain too long".into());
        }
        let t = self.resolve(id)?;
        match t.kind() {
            KIND_INT | KIND_STRUCT | KIND_UNION | KIND_ENUM | KIND_ENUM64 | KIND_FLOAT => {
                Ok(u64::from(t.size_or_type))
            }
            KIND_PTR => Ok(8),
            KIND_ARRAY => {
                let elem = self.word(&t, 0).ok_or("truncated BTF array")?;
                let n = self.word(&t, 2).ok_or("truncated BTF array")?;
                Ok(self.size_of(elem, depth + 1)?.saturating_mul(u64::from(n)))
            }
            other => Err(format!("BTF type of kind {other} has no size")),
        }
    }

    /// Every variable of the DATASEC named `section`: `(name, offset in the section, def,
    /// values)`, where `values` is the byte offset of the definition's `values` member
    /// (`__array(values, …)`: the initial values of a `PROG_ARRAY` or a map of maps), if it has one.
    pub(crate) fn map_defs_with_values(&self, section: &[u8]) -> Result<Vec<MapDecl>, String> {
        let Some(datasec) = self
            .types
            .iter()
            .find(|t| t.kind() == KIND_DATASEC && self.name(t.name_off) == section)
        else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for i in 0..datasec.vlen() {
            let var_id = self.word(datasec, 3 * i).ok_or("truncated BTF DATASEC")?;
            let offset = self
                .word(datasec, 3 * i + 1)
                .ok_or("truncated BTF DATASEC")?;
            let var = self.get(var_id).ok_or("bad BTF variable id")?;
            if var.kind() != KIND_VAR {
                return Err("BTF .maps entry is not a variable".into());
            }
            let name = String::from_utf8_lossy(self.name(var.name_off)).into_owned();
            let (def, values) = self
                .map_def(var.size_or_type)
                .map_err(|e| format!("map '{name}': {e}"))?;
            out.push((name, offset, def, values));
        }
        Ok(out)
    }

    /// The value of a one-member enum (`KIND_ENUM`: 32-bit values; `KIND_ENUM64`: two words).
    fn enum_value(&self, t: &Type) -> Result<u64, String> {
        if t.vlen() != 1 {
            return Err("map_extra enum must have one value".into());
        }
        if t.kind() == KIND_ENUM {
            let v = self.word(t, 1).ok_or("truncated BTF enum")?;
            return Ok(u64::from(v));
        }
        let lo = self.word(t, 1).ok_or("truncated BTF enum")?;
        let hi = self.word(t, 2).ok_or("truncated BTF enum")?;
        Ok((u64::from(hi) << 32) | u64::from(lo))
    }

    /// Reads libbpf's `__uint`/`__type` members of a map definition struct, and the byte
    /// offset of its `__array(values, …)` member if it has one.
    fn map_def(&self, id: u32) -> Result<(MapDef, Option<u32>), String> {
        let st = self.resolve(id)?;
        if st.kind() != KIND_STRUCT {
            return Err("map definition is not a struct".into());
        }
        let mut def = MapDef::default();
        let (mut key_type, mut value_type, mut values) = (None, None, None);
        for m in 0..st.vlen() {
            let name_off = self.word(&st, 3 * m).ok_or("truncated BTF struct")?;
            let member_type = self.word(&st, 3 * m + 1).ok_or("truncated BTF struct")?;
            let member = self.name(name_off);
            let ptr = self.resolve(member_type)?;
            if member == b"map_extra" && matches!(ptr.kind(), KIND_ENUM | KIND_ENUM64) {
                // libbpf's `__ulong(map_extra, N)`: an anonymous enum whose one value is N.
                def.map_extra = self.enum_value(&ptr)?;
                continue;
            }
            if member == b"values" && ptr.kind() == KIND_ARRAY {
                // `__array(values, …)`: a flexible array of pointers (inner maps of a map of
                // maps, programs of a PROG_ARRAY), 4-byte ids as values like the kernel's
                // fds; its initial elements are relocations against the section.
                def.value_size = 4;
                let bits = self.word(&st, 3 * m + 2).ok_or("truncated BTF struct")?;
                // With the kind flag set, the low 24 bits are the bit offset.
                let bits = if st.info & (1 << 31) != 0 {
                    bits & 0x00ff_ffff
                } else {
                    bits
                };
                values = Some(bits / 8);
                continue;
            }
            if ptr.kind() != KIND_PTR {
                // libbpf ignores nothing here either: every member is __uint, __type or
                // __array, all pointers.
                return Err(format!(
                    "member '{}' is not a pointer",
                    String::from_utf8_lossy(member)
                ));
            }
            let uint = || -> Result<u32, String> {
                let arr = self.resolve(ptr.size_or_type)?;
                if arr.kind() != KIND_ARRAY {
                    return Err(format!(
                        "member '{}' is not __uint",
                        String::from_utf8_lossy(member)
                    ));
                }
                self.word(&arr, 2)
                    .ok_or_else(|| "truncated BTF array".into())
            };
            match member {
                b"type" => def.map_type = uint()?,
                b"max_entries" => def.max_entries = uint()?,
                b"map_flags" => def.map_flags = uint()?,
                b"key_size" => def.key_size = uint()?,
                b"value_size" => def.value_size = uint()?,
                b"map_extra" => def.map_extra = u64::from(uint()?),
                b"key" => key_type = Some(ptr.size_or_type),
                b"value" => value_type = Some(ptr.size_or_type),
                // pinning, numa_node: no meaning in a userspace VM.
                b"pinning" | b"numa_node" => {}
                other => {
                    return Err(format!(
                        "unsupported map definition member '{}'",
                        String::from_utf8_lossy(other)
                    ));
                }
            }
        }
        for (ty, size, what) in [
            (key_type, &mut def.key_size, "key"),
            (value_type, &mut def.value_size, "value"),
        ] {
            if let Some(ty) = ty {
                let bytes = self.size_of(ty, 0)?;
                *size = u32::try_from(bytes).map_err(|_| format!("{what} type too large"))?;
            }
        }
        Ok((def, values))
    }
}
