//! Links one program of an object on its own: the program's function first, then every
//! function it reaches (local calls, `bpf_loop` callbacks), transitively, and nothing else.
//! Relocations are applied to the copy: calls get their distance in the linked code, helper
//! calls by name get the helper's number, `lddw`s of maps get the map's handle and `lddw`s of
//! global data the address of the data map's value (`docs/kernel-programs.md`, "Linking").

use std::collections::HashMap;

use object::elf::{R_BPF_64_32, R_BPF_64_64};

use crate::isa::{INSN_SIZE, Insn, call_kind, op};
use crate::kernel::object::parse::Elf;
use crate::vm::Vm;

/// The legacy call relocation type (`R_BPF_64_32` was 2 in older toolchains).
const R_BPF_64_32_LEGACY: u32 = 2;

/// What a relocation against a symbol in a map or data section resolves to.
pub(crate) trait Resolver {
    /// The handle of the map defined at `offset` of `section`, or why there is none.
    fn map_handle(&self, section: usize, offset: u64) -> Option<Result<u64, String>>;
    /// The address of the value of the data map made from `section`, or why there is none.
    fn data_address(&self, section: usize) -> Option<Result<u64, String>>;
}

fn read(code: &[u8], at: usize) -> Option<Insn> {
    let bytes = code.get(at..at.checked_add(INSN_SIZE)?)?;
    Some(Insn::from_bytes(bytes.try_into().ok()?))
}

fn write(code: &mut [u8], at: usize, insn: Insn) {
    if let Some(slot) = code.get_mut(at..at.saturating_add(INSN_SIZE)) {
        slot.copy_from_slice(&insn.to_bytes());
    }
}

/// The 64-bit immediate of an `lddw` (low half in the first slot).
fn lddw_value(first: Insn, second: Insn) -> u64 {
    first.lddw_value(Some(&second))
}

fn set_lddw(code: &mut [u8], at: usize, first: Insn, second: Insn, value: u64) {
    write(
        code,
        at,
        Insn {
            src: 0,
            imm: value as u32 as i32,
            ..first
        },
    );
    write(
        code,
        at + INSN_SIZE,
        Insn {
            imm: (value >> 32) as u32 as i32,
            ..second
        },
    );
}

/// The section offset a local call at section offset `at` with immediate `imm` reaches
/// relative to `base` (the symbol's value, or the call's own offset).
fn call_target(base: u64, imm: i32) -> Option<u64> {
    let delta = (i64::from(imm) + 1).checked_mul(INSN_SIZE as i64)?;
    u64::try_from(i64::try_from(base).ok()?.checked_add(delta)?).ok()
}

/// Links program `program` (an index in `elf.funcs`) into bytecode ready for the verifier.
/// Helpers called by name are looked up in `vm`; maps and data through `resolver`.
pub(crate) fn link_program(
    elf: &Elf<'_>,
    program: usize,
    vm: &Vm,
    resolver: &dyn Resolver,
) -> Result<Vec<u8>, String> {
    let mut order = vec![program];
    let mut landed: HashMap<usize, usize> = HashMap::new();
    let mut code: Vec<u8> = Vec::new();

    // Pass 1: lay out the program and every function it reaches.
    let mut next = 0;
    while let Some(&f) = order.get(next) {
        next += 1;
        let func = &elf.funcs[f];
        let bytes = &elf.sections[func.section].data[func.start as usize..][..func.size as usize];
        landed.insert(f, code.len());
        code.extend_from_slice(bytes);
        let mut at = 0usize;
        while let Some(insn) = read(bytes, at) {
            let offset = func.start + at as u64;
            let reloc = elf.relocs.get(&(func.section, offset));
            let target = match (insn.opc, reloc) {
                (op::CALL, Some(r)) if insn.src == call_kind::LOCAL => {
                    let sym = &elf.symbols[r.symbol];
                    match sym.section {
                        None => None, // an extern: a helper by name
                        Some(section) => {
                            let to = call_target(sym.value, insn.imm)
                                .ok_or_else(|| format!("bad call at offset {offset}"))?;
                            Some((section, to))
                        }
                    }
                }
                (op::CALL, None) if insn.src == call_kind::LOCAL => {
                    let to = call_target(offset, insn.imm)
                        .ok_or_else(|| format!("bad call at offset {offset}"))?;
                    Some((func.section, to))
                }
                (op::LDDW, Some(r)) => {
                    let sym = &elf.symbols[r.symbol];
                    match sym.section {
                        Some(s) if elf.sections[s].is_code() => {
                            // A callback (`bpf_loop`): the function at symbol + addend.
                            let second = read(bytes, at + INSN_SIZE).unwrap_or_default();
                            Some((s, sym.value.wrapping_add(lddw_value(insn, second))))
                        }
                        _ => None,
                    }
                }
                _ => None,
            };
            if let Some((section, to)) = target {
                let callee = elf.func_at(section, to).ok_or_else(|| {
                    format!(
                        "function '{}' calls offset {to} of section '{}', where no function starts",
                        func.name,
                        elf.section_name(section)
                    )
                })?;
                if !order.contains(&callee) {
                    order.push(callee);
                }
            }
            at += insn.slots() * INSN_SIZE;
        }
    }

    // Pass 2: relocate the copy.
    let mut callbacks: Vec<usize> = Vec::new();
    for &f in &order {
        let func = &elf.funcs[f];
        let base = landed[&f];
        let mut at = 0usize;
        while at < func.size as usize {
            let here = base + at;
            let Some(insn) = read(&code, here) else { break };
            let slots = insn.slots();
            let offset = func.start + at as u64;
            at += slots * INSN_SIZE;
            let reloc = elf.relocs.get(&(func.section, offset)).copied();
            let slot_of = |bytes: usize| (bytes / INSN_SIZE) as i64;
            let displacement = |target: usize| -> Result<i32, String> {
                i32::try_from(slot_of(landed[&target]) - slot_of(here) - 1)
                    .map_err(|_| "program too large".to_string())
            };
            match insn.opc {
                op::CALL if insn.src == call_kind::LOCAL => {
                    let (section, to) = match reloc {
                        Some(r) => {
                            let sym = &elf.symbols[r.symbol];
                            match sym.section {
                                Some(s) => (s, call_target(sym.value, insn.imm).unwrap_or(0)),
                                None => {
                                    let name = String::from_utf8_lossy(sym.name);
                                    let index = vm.helper_index(&name).ok_or_else(|| {
                                        format!(
                                            "function '{name}' not found (no helper has that name)"
                                        )
                                    })?;
                                    let imm = i32::try_from(index)
                                        .map_err(|_| format!("helper '{name}' out of range"))?;
                                    let call = Insn {
                                        src: call_kind::HELPER,
                                        imm,
                                        ..insn
                                    };
                                    write(&mut code, here, call);
                                    continue;
                                }
                            }
                        }
                        None => (func.section, call_target(offset, insn.imm).unwrap_or(0)),
                    };
                    let target = elf
                        .func_at(section, to)
                        .ok_or_else(|| format!("call at offset {offset} reaches no function"))?;
                    let imm = displacement(target)?;
                    write(&mut code, here, Insn { imm, ..insn });
                }
                op::CALL => {
                    if let Some(r) = reloc
                        && matches!(r.kind, R_BPF_64_32 | R_BPF_64_32_LEGACY)
                    {
                        let sym = &elf.symbols[r.symbol];
                        let name = String::from_utf8_lossy(sym.name);
                        let index = vm
                            .helper_index(&name)
                            .ok_or_else(|| format!("function '{name}' not found"))?;
                        let imm = i32::try_from(index)
                            .map_err(|_| format!("helper '{name}' out of range"))?;
                        write(&mut code, here, Insn { imm, ..insn });
                    }
                }
                op::LDDW => {
                    let Some(r) = reloc else { continue };
                    if r.kind != R_BPF_64_64 {
                        return Err(format!(
                            "relocation type {} on the lddw at offset {offset} of section '{}' is not supported",
                            r.kind,
                            elf.section_name(func.section)
                        ));
                    }
                    if offset + 16 > func.start + func.size {
                        return Err(format!(
                            "the lddw at offset {offset} runs past its function"
                        ));
                    }
                    let second = read(&code, here + INSN_SIZE).unwrap_or_default();
                    let addend = lddw_value(insn, second);
                    let sym = &elf.symbols[r.symbol];
                    let name = String::from_utf8_lossy(sym.name);
                    let Some(section) = sym.section else {
                        return Err(format!("relocation against undefined symbol '{name}'"));
                    };
                    let value = sym.value.wrapping_add(addend);
                    if elf.sections[section].is_code() {
                        let target = elf
                            .func_at(section, value)
                            .ok_or_else(|| format!("'{name}' is no function"))?;
                        let id = match callbacks.iter().position(|&c| c == target) {
                            Some(i) => i + 1,
                            None => {
                                callbacks.push(target);
                                callbacks.len()
                            }
                        };
                        set_lddw(&mut code, here, insn, second, id as u64);
                    } else if let Some(handle) = resolver.map_handle(section, value) {
                        set_lddw(&mut code, here, insn, second, handle?);
                    } else if let Some(address) = resolver.data_address(section) {
                        let address = address?.wrapping_add(value);
                        set_lddw(&mut code, here, insn, second, address);
                    } else {
                        return Err(format!(
                            "relocation against '{name}' in section '{}', which is neither a map nor global data",
                            elf.section_name(section)
                        ));
                    }
                }
                _ => {}
            }
        }
    }

    let callback_offsets: Vec<usize> = callbacks.iter().map(|c| landed[c]).collect();
    crate::kernel::helpers::link_bpf_loop(&mut code, &callback_offsets)?;
    Ok(code)
}
