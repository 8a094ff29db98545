//! Tests of the interpreter's safe profile (`crate::interpreter`), through the VM.

#[allow(unused_imports)]
use crate::test_prelude::*;
use std::ffi::c_void;

use crate::interpreter::*;
use crate::isa::Insn;
use crate::isa::encode_slots;
use crate::vm::ExecutionProfile;
use crate::vm::Vm;

fn ins(opc: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn::new(opc, dst, src, off, imm)
}
fn exit() -> Insn {
    ins(0x95, 0, 0, 0, 0)
}

fn safe_vm() -> Vm {
    let mut vm = Vm::new();
    vm.config_mut().profile = ExecutionProfile::Safe;
    vm.set_error_printer(Some(Box::new(|_| {})));
    vm
}

fn run(vm: &mut Vm, insns: &[Insn], mem: &mut [u8]) -> Result<u64, String> {
    vm.unload().unwrap();
    vm.load(&encode_slots(insns)).map_err(|e| e.to_string())?;
    vm.execute(mem).map_err(|e| e.to_string())
}

#[test]
fn accesses_need_pointers_inside_their_region() {
    let mut vm = safe_vm();
    let mut mem = [1u8, 2, 3, 4, 5, 6, 7, 8];
    // Through r1 (input) and r10 (stack): fine.
    assert_eq!(
        run(&mut vm, &[ins(0x71, 0, 1, 7, 0), exit()], &mut mem),
        Ok(8)
    );
    assert_eq!(
        run(
            &mut vm,
            &[ins(0x7a, 10, 0, -8, 9), ins(0x79, 0, 10, -8, 0), exit()],
            &mut mem
        ),
        Ok(9)
    );
    // A scalar base.
    assert_eq!(
        run(
            &mut vm,
            &[ins(0xb7, 2, 0, 0, 64), ins(0x71, 0, 2, 0, 0), exit()],
            &mut mem
        ),
        Err("uBPF safe mode error: load requires a pointer at PC 1".into())
    );
    // Before the start, past the end, starting at the end, and overrunning it.
    assert_eq!(
        run(&mut vm, &[ins(0x72, 1, 0, -1, 0), exit()], &mut mem),
        Err("uBPF safe mode error: store is out of bounds at PC 0".into())
    );
    assert_eq!(
        run(&mut vm, &[ins(0x72, 1, 0, 9, 0), exit()], &mut mem),
        Err("uBPF safe mode error: store is out of bounds at PC 0".into())
    );
    assert_eq!(
        run(&mut vm, &[ins(0x72, 1, 0, 8, 0), exit()], &mut mem),
        Err("uBPF safe mode error: store overruns region at PC 0".into())
    );
    assert_eq!(
        run(&mut vm, &[ins(0x79, 0, 1, 4, 0), exit()], &mut mem),
        Err("uBPF safe mode error: load overruns region at PC 0".into())
    );
    // No memory: r1 is a scalar.
    assert_eq!(
        run(&mut vm, &[ins(0x71, 0, 1, 0, 0), exit()], &mut []),
        Err("uBPF safe mode error: load requires a pointer at PC 0".into())
    );
    // The bounds-check toggle does not matter.
    vm.config_mut().bounds_check = false;
    assert_eq!(
        run(&mut vm, &[ins(0x72, 10, 0, 0, 0), exit()], &mut mem),
        Err("uBPF safe mode error: store overruns region at PC 0".into())
    );
}

#[test]
fn pointer_arithmetic_rules() {
    let mut vm = safe_vm();
    let mut mem = [0u8; 16];
    // pointer + scalar stays a pointer and can be used.
    assert_eq!(
        run(
            &mut vm,
            &[ins(0x07, 1, 0, 0, 15), ins(0x71, 0, 1, 0, 0), exit()],
            &mut mem
        ),
        Ok(0)
    );
    // ... but not beyond [base, base + size].
    assert_eq!(
        run(&mut vm, &[ins(0x07, 1, 0, 0, 17), exit()], &mut mem),
        Err("uBPF safe mode error: pointer arithmetic escaped its region at PC 0".into())
    );
    // Stack pointers get slack.
    assert_eq!(
        run(
            &mut vm,
            &[
                ins(0xbf, 2, 10, 0, 0),
                ins(0x07, 2, 0, 0, 100),
                ins(0xb7, 0, 0, 0, 0),
                exit()
            ],
            &mut mem
        ),
        Ok(0)
    );
    assert_eq!(
        run(&mut vm, &[ins(0x0f, 1, 10, 0, 0), exit()], &mut mem),
        Err("uBPF safe mode error: invalid add operand at PC 0".into())
    );
    assert_eq!(
        run(
            &mut vm,
            &[ins(0xb7, 2, 0, 0, 1), ins(0x1f, 2, 1, 0, 0), exit()],
            &mut mem
        ),
        Err("uBPF safe mode error: invalid sub operand at PC 1".into())
    );
    // pointer - pointer in one region is a scalar.
    assert_eq!(
        run(
            &mut vm,
            &[
                ins(0xbf, 2, 1, 0, 0),
                ins(0x07, 2, 0, 0, 5),
                ins(0x1f, 2, 1, 0, 0),
                ins(0xbf, 0, 2, 0, 0),
                exit()
            ],
            &mut mem
        ),
        Ok(5)
    );
    assert_eq!(
        run(&mut vm, &[ins(0x57, 1, 0, 0, 0xff), exit()], &mut mem),
        Err("uBPF safe mode error: ALU operation requires scalar operands at PC 0".into())
    );
    assert_eq!(
        run(&mut vm, &[ins(0xbf, 2, 1, 32, 0), exit()], &mut mem),
        Err("uBPF safe mode error: sign-ext move requires a scalar source at PC 0".into())
    );
    // 32-bit results are scalars.
    assert_eq!(
        run(
            &mut vm,
            &[ins(0xbc, 2, 1, 0, 0), ins(0x71, 0, 2, 0, 0), exit()],
            &mut mem
        ),
        Err("uBPF safe mode error: load requires a pointer at PC 1".into())
    );
}

#[test]
fn spills_keep_tags_until_overwritten() {
    let mut vm = safe_vm();
    let mut mem = [7u8; 8];
    let spill = [ins(0x7b, 10, 1, -8, 0), ins(0x79, 2, 10, -8, 0)];
    let mut prog = spill.to_vec();
    prog.extend([ins(0x71, 0, 2, 0, 0), exit()]);
    assert_eq!(run(&mut vm, &prog, &mut mem), Ok(7));
    let mut prog = vec![spill[0], ins(0x72, 10, 0, -5, 0), spill[1]];
    prog.extend([ins(0x71, 0, 2, 0, 0), exit()]);
    assert_eq!(
        run(&mut vm, &prog, &mut mem),
        Err("uBPF safe mode error: load requires a pointer at PC 3".into())
    );
}

#[test]
fn spill_slots_are_relative_to_the_stack_start() {
    let mut vm = safe_vm();
    vm.load(&encode_slots(&[
        ins(0x7b, 10, 1, -8, 0),
        ins(0x79, 2, 10, -8, 0),
        ins(0x71, 0, 2, 0, 0),
        exit(),
    ]))
    .expect("loads");
    let mut mem = [5u8; 4];
    let mut buffer = [0u8; 65];
    // An external stack at an odd address: slots are still recognised.
    let stack = buffer[1..].as_mut_ptr();
    // SAFETY: `mem` and the 64-byte stack slice are valid for the call.
    let result = unsafe { vm.execute_raw(mem.as_mut_ptr(), mem.len(), stack, 64) };
    assert_eq!(result, Ok(5));
}

unsafe extern "C" fn give(p: u64, _: u64, _: u64, _: u64, _: u64, _: *mut c_void) -> u64 {
    p
}

#[test]
fn helpers_need_metadata_and_valid_results() {
    let mut vm = safe_vm();
    vm.register_helper(1, Some("plain"), give).expect("index");
    assert_eq!(
        run(&mut vm, &[ins(0x85, 0, 0, 0, 1), exit()], &mut []),
        Err("uBPF safe mode error: helper metadata is missing for helper 1 at PC 0".into())
    );
    let buffer = Box::new([3u8; 32]);
    let base = buffer.as_ptr() as u64;
    vm.register_safe_region(SafeRegion {
        id: 9,
        base,
        size: 32,
        kind: SafeRegionKind::Pointer,
        permissions: PERM_READ,
    })
    .expect("valid region");
    let result = SafeHelperResult::Pointer {
        region_id: 9,
        region_size: 8,
    };
    vm.register_safe_helper(2, Some("give"), give, result)
        .expect("valid helper");
    let lddw = |value: u64| {
        [
            ins(0x18, 1, 0, 0, value as u32 as i32),
            ins(0, 0, 0, 0, (value >> 32) as u32 as i32),
        ]
    };
    let call = |value: u64, tail: &[Insn]| {
        let mut p = lddw(value).to_vec();
        p.push(ins(0x85, 0, 0, 0, 2));
        p.extend_from_slice(tail);
        p
    };
    // A pointer result can be read through, not written.
    assert_eq!(
        run(
            &mut vm,
            &call(base + 24, &[ins(0x71, 0, 0, 7, 0), exit()]),
            &mut []
        ),
        Ok(3)
    );
    assert_eq!(
        run(
            &mut vm,
            &call(base, &[ins(0x72, 0, 0, 0, 1), exit()]),
            &mut []
        ),
        Err("uBPF safe mode error: store is not permitted at PC 3".into())
    );
    assert_eq!(
        run(&mut vm, &call(base + 25, &[exit()]), &mut []),
        Err("uBPF safe mode error: helper 2 returned an out-of-range pointer at PC 2".into())
    );
    let handle = SafeHelperResult::Handle {
        region_id: 9,
        region_size: 8,
    };
    vm.register_safe_helper(3, None, give, handle)
        .expect("valid helper");
    let mut p = lddw(base).to_vec();
    p.extend([ins(0x85, 0, 0, 0, 3), exit()]);
    assert_eq!(
        run(&mut vm, &p, &mut []),
        Err("uBPF safe mode error: helper 3 result kind does not match region 9 at PC 2".into())
    );
    let stray = SafeHelperResult::Pointer {
        region_id: 10,
        region_size: 8,
    };
    vm.register_safe_helper(4, None, give, stray)
        .expect("valid helper");
    assert_eq!(
        run(&mut vm, &[ins(0x85, 0, 0, 0, 4), exit()], &mut []),
        Err("uBPF safe mode error: helper 4 references unknown region 10 at PC 0".into())
    );
}

#[test]
fn registration_rules() {
    let mut vm = Vm::new();
    let region = SafeRegion {
        id: 1,
        base: 0x1000,
        size: 16,
        kind: SafeRegionKind::Handle,
        permissions: PERM_READ | PERM_WRITE,
    };
    assert!(vm.register_safe_region(region).is_ok());
    assert!(
        vm.register_safe_region(SafeRegion { size: 32, ..region })
            .is_ok()
    );
    assert!(
        vm.register_safe_region(SafeRegion {
            id: STACK_REGION_ID,
            ..region
        })
        .is_err()
    );
    assert!(
        vm.register_safe_region(SafeRegion { size: 0, ..region })
            .is_err()
    );
    assert!(
        vm.register_safe_region(SafeRegion { base: 0, ..region })
            .is_err()
    );
    assert!(
        vm.register_safe_region(SafeRegion {
            permissions: 8,
            ..region
        })
        .is_err()
    );
    assert!(
        vm.register_safe_region(SafeRegion {
            base: u64::MAX,
            ..region
        })
        .is_err()
    );
    for id in 2..=MAX_SAFE_REGIONS as u32 {
        assert!(vm.register_safe_region(SafeRegion { id, ..region }).is_ok());
    }
    assert!(
        vm.register_safe_region(SafeRegion { id: 500, ..region })
            .is_err()
    );
    let zero = SafeHelperResult::Pointer {
        region_id: 1,
        region_size: 0,
    };
    assert!(vm.register_safe_helper(0, None, give, zero).is_err());
    let reserved = SafeHelperResult::Handle {
        region_id: INPUT_REGION_ID,
        region_size: 4,
    };
    assert!(vm.register_safe_helper(0, None, give, reserved).is_err());
    assert!(
        vm.register_safe_helper(64, None, give, SafeHelperResult::Scalar)
            .is_err()
    );
    assert!(
        vm.register_safe_helper(0, Some("g"), give, SafeHelperResult::Scalar)
            .is_ok()
    );
    assert_eq!(vm.helper_index("g"), Some(0));
}
