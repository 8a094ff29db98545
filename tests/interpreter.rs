//! The interpreter's own tests, through the public API: entry registers, arithmetic edge
//! cases, memory errors, the instruction limit, local calls, helpers, atomics, the
//! undefined-behaviour check, the debug callback, concurrency, random programs and the
//! data-section and bounds-callback regions. (Moved out of `src/interpreter/`, which is a
//! layer below the VM and the assembler these tests use.)

mod prelude {
    pub use rbpf::error::{Access, ExecError};
    pub use rbpf::isa::{Insn, STACK_SIZE};
    pub use rbpf::vm::Vm;
    pub use std::ffi::c_void;
}

mod basics {
    use std::sync::{Arc, Mutex};

    use super::prelude::*;
    use rbpf::isa::encode_slots;

    fn ins(opc: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn::new(opc, dst, src, off, imm)
    }
    fn mov(dst: u8, imm: i32) -> Insn {
        ins(0xb7, dst, 0, 0, imm)
    }
    fn movr(dst: u8, src: u8) -> Insn {
        ins(0xbf, dst, src, 0, 0)
    }
    fn lddw(dst: u8, value: u64) -> [Insn; 2] {
        [
            ins(0x18, dst, 0, 0, value as u32 as i32),
            ins(0, 0, 0, 0, (value >> 32) as u32 as i32),
        ]
    }
    fn exit() -> Insn {
        ins(0x95, 0, 0, 0, 0)
    }

    /// A VM with the conformance helpers whose printed errors are collected in the returned
    /// buffer.
    fn vm_with_log() -> (Vm, Arc<Mutex<Vec<String>>>) {
        let mut vm = Vm::new();
        rbpf::tools::conformance::register_helpers(&mut vm);
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        vm.set_error_printer(Some(Box::new(move |msg| {
            sink.lock().expect("log lock").push(msg.to_owned());
        })));
        (vm, log)
    }

    fn run(insns: &[Insn], mem: &mut [u8]) -> Result<u64, ExecError> {
        let (mut vm, _) = vm_with_log();
        vm.load(&encode_slots(insns)).expect("program loads");
        vm.execute(mem)
    }

    fn r0(insns: &[Insn]) -> u64 {
        run(insns, &mut []).expect("program runs")
    }

    #[test]
    fn entry_registers() {
        let mut mem = [0u8; 13];
        assert_eq!(run(&[movr(0, 2), exit()], &mut mem), Ok(13));
        let addr = mem.as_ptr() as u64;
        assert_eq!(run(&[movr(0, 1), exit()], &mut mem), Ok(addr));
        // Without memory r1 is null and r2 is 0.
        assert_eq!(r0(&[movr(0, 1), ins(0x0f, 0, 2, 0, 0), exit()]), 0);
    }

    #[test]
    fn nested_execution_from_a_helper_gets_its_own_stack() {
        static INNER: std::sync::OnceLock<Vm> = std::sync::OnceLock::new();
        unsafe extern "C" fn nested(_: u64, _: u64, _: u64, _: u64, _: u64, _: *mut c_void) -> u64 {
            let inner = INNER.get().expect("inner VM set");
            inner.execute(&mut []).unwrap_or(u64::MAX)
        }
        let mut inner = Vm::new();
        // Clobbers the top of its stack and returns 40.
        inner
            .load(&encode_slots(&[
                ins(0x72, 10, 0, -1, 0x7f),
                mov(0, 40),
                exit(),
            ]))
            .expect("inner loads");
        let _ = INNER.set(inner);
        let mut outer = Vm::new();
        outer
            .register_helper(9, Some("nested"), nested)
            .expect("index");
        outer
            .load(&encode_slots(&[
                ins(0x72, 10, 0, -1, 2),
                ins(0x85, 0, 0, 0, 9),
                ins(0x71, 1, 10, -1, 0),
                ins(0x0f, 0, 1, 0, 0),
                exit(),
            ]))
            .expect("outer loads");
        assert_eq!(outer.execute(&mut []), Ok(42));
    }

    #[test]
    fn execute_gives_an_aligned_stack() {
        assert_eq!(r0(&[movr(0, 10), ins(0x57, 0, 0, 0, 15), exit()]), 0);
    }

    #[test]
    fn division_edge_cases() {
        // div/mod by zero (64 and 32 bit, imm and reg).
        assert_eq!(r0(&[mov(0, 7), ins(0x37, 0, 0, 0, 0), exit()]), 0);
        assert_eq!(
            r0(&[mov(0, 7), mov(1, 0), ins(0x9f, 0, 1, 0, 0), exit()]),
            7
        );
        assert_eq!(
            r0(&[
                lddw(0, 0x1_0000_0007)[0],
                lddw(0, 0x1_0000_0007)[1],
                ins(0x94, 0, 0, 0, 0),
                exit()
            ]),
            7
        );
        // Signed division: INT_MIN / -1 and INT_MIN % -1.
        let min = lddw(0, i64::MIN as u64);
        assert_eq!(
            r0(&[min[0], min[1], ins(0x37, 0, 0, 1, -1), exit()]),
            i64::MIN as u64
        );
        assert_eq!(r0(&[min[0], min[1], ins(0x97, 0, 0, 1, -1), exit()]), 0);
        assert_eq!(
            r0(&[mov(0, i32::MIN), ins(0x34, 0, 0, 1, -1), exit()]),
            u64::from(i32::MIN as u32)
        );
        // C truncating remainder keeps the dividend's sign.
        assert_eq!(
            r0(&[mov(0, -7), ins(0x97, 0, 0, 1, 2), exit()]),
            (-1i64) as u64
        );
        assert_eq!(
            r0(&[mov(0, -7), ins(0x94, 0, 0, 1, 2), exit()]),
            0xffff_ffff
        );
        // 64-bit unsigned divisor from a negative imm is sign-extended.
        assert_eq!(r0(&[mov(0, -1), ins(0x37, 0, 0, 0, -1), exit()]), 1);
    }

    #[test]
    fn shifts_moves_and_byte_swaps() {
        // arsh32-high-shift: r0 = 8, r1 = 0x100000001, arsh32 r0, r1 → 4.
        let r1 = lddw(1, 0x1_0000_0001);
        assert_eq!(
            r0(&[mov(0, 8), r1[0], r1[1], ins(0xcc, 0, 1, 0, 0), exit()]),
            4
        );
        assert_eq!(r0(&[mov(0, 1), ins(0x67, 0, 0, 0, 65), exit()]), 2);
        // 32-bit results are zero-extended.
        assert_eq!(r0(&[mov(0, -1), ins(0x04, 0, 0, 0, 1), exit()]), 0);
        assert_eq!(r0(&[mov(0, 1), ins(0x84, 0, 0, 0, 0), exit()]), 0xffff_ffff);
        // movsx.
        assert_eq!(
            r0(&[mov(1, 0x80), ins(0xbf, 0, 1, 8, 0), exit()]),
            (-128i64) as u64
        );
        assert_eq!(
            r0(&[mov(1, 0x8000), ins(0xbc, 0, 1, 16, 0), exit()]),
            0xffff_8000
        );
        // le truncates, be and bswap swap.
        let v = lddw(0, 0x1122_3344_5566_7788);
        assert_eq!(r0(&[v[0], v[1], ins(0xd4, 0, 0, 0, 16), exit()]), 0x7788);
        assert_eq!(
            r0(&[v[0], v[1], ins(0xdc, 0, 0, 0, 32), exit()]),
            0x8877_6655
        );
        assert_eq!(
            r0(&[v[0], v[1], ins(0xd7, 0, 0, 0, 64), exit()]),
            0x8877_6655_4433_2211
        );
    }

    #[test]
    fn jumps_compare_sign_extended_imm_and_low_words() {
        // jgt r0(=u64::MAX), -2 (imm sign-extended) is taken.
        assert_eq!(
            r0(&[
                mov(0, -1),
                ins(0x25, 0, 0, 1, -2),
                exit(),
                mov(0, 5),
                exit()
            ]),
            5
        );
        // jeq32 looks only at the low 32 bits.
        let v = lddw(1, 0xdead_0000_0001);
        assert_eq!(
            r0(&[
                mov(0, 0),
                v[0],
                v[1],
                ins(0x16, 1, 0, 1, 1),
                exit(),
                mov(0, 9),
                exit()
            ]),
            9
        );
        // ja32 uses the immediate.
        assert_eq!(
            r0(&[mov(0, 1), ins(0x06, 0, 0, 0, 1), exit(), mov(0, 2), exit()]),
            2
        );
    }

    #[test]
    fn runtime_memory_errors_are_reported() {
        let (mut vm, log) = vm_with_log();
        // err-stack-oob: stb [r10], 0
        vm.load(&encode_slots(&[ins(0x72, 10, 0, 0, 0), exit()]))
            .expect("loads");
        let err = vm.execute(&mut []).unwrap_err();
        assert!(matches!(
            err,
            ExecError::OutOfBounds {
                pc: 0,
                size: 1,
                stack_len: 4096,
                ..
            }
        ));
        let printed = log.lock().expect("log").clone();
        assert_eq!(printed.len(), 1);
        assert!(printed[0].starts_with("uBPF error: out of bounds memory store at PC 0, addr 0x"));
        assert!(printed[0].contains("\nmem (nil)/0 stack 0x"));

        // err-address-overflow-offset: r6 = -16; stb [r6+16], 0
        assert_eq!(
            run(&[mov(6, -16), ins(0x72, 6, 0, 16, 0), exit()], &mut []),
            Err(ExecError::AddressOverflow {
                pc: 1,
                access: Access::Store
            })
        );
        // err-address-underflow: r6 = 0; ldxb r0, [r6-1]
        assert_eq!(
            run(&[mov(6, 0), ins(0x71, 0, 6, -1, 0), exit()], &mut []),
            Err(ExecError::AddressUnderflow {
                pc: 1,
                access: Access::Load
            })
        );
        // err-integer-overflow-bounds: r6 = 0 - 1; stb [r6], 0
        let err = run(
            &[
                mov(6, 0),
                ins(0x17, 6, 0, 0, 1),
                ins(0x72, 6, 0, 0, 0),
                exit(),
            ],
            &mut [],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "uBPF error: integer overflow in store at PC 2, addr 0xffffffffffffffff, size 1"
        );
    }

    #[test]
    fn bounds_check_off_allows_host_memory() {
        let mut vm = Vm::new();
        vm.config_mut().bounds_check = false;
        let cell = Box::new(0x1234_5678u64);
        let v = lddw(1, &*cell as *const u64 as u64);
        vm.load(&encode_slots(&[v[0], v[1], ins(0x79, 0, 1, 0, 0), exit()]))
            .expect("loads");
        assert_eq!(vm.execute(&mut []), Ok(0x1234_5678));
    }

    #[test]
    fn instruction_limit_counts_exactly() {
        let (mut vm, log) = vm_with_log();
        vm.load(&encode_slots(&[mov(0, 1), mov(0, 2), exit()]))
            .expect("loads");
        vm.config_mut().instruction_limit = 3;
        assert_eq!(vm.execute(&mut []), Ok(2));
        vm.config_mut().instruction_limit = 2;
        assert_eq!(
            vm.execute(&mut []),
            Err(ExecError::InstructionLimit { pc: 2 })
        );
        assert_eq!(
            log.lock().expect("log").as_slice(),
            ["Error: Instruction limit exceeded."]
        );
        // lddw is one instruction.
        let v = lddw(0, 5);
        vm.unload().unwrap();
        vm.load(&encode_slots(&[v[0], v[1], exit()]))
            .expect("loads");
        assert_eq!(vm.execute(&mut []), Ok(5));
        vm.config_mut().instruction_limit = 1;
        assert_eq!(
            vm.execute(&mut []),
            Err(ExecError::InstructionLimit { pc: 2 })
        );
        // Limits above i32::MAX are negative in uBPF and fail at once.
        vm.config_mut().instruction_limit = u32::MAX;
        assert_eq!(
            vm.execute(&mut []),
            Err(ExecError::InstructionLimit { pc: 0 })
        );
    }

    #[test]
    fn local_calls_frames_and_depth() {
        // main writes [r10-4..-1] = 0x55, calls f, returns f's r0; f reads r10 and returns the
        // distance to main's r10 via r6 (preserved across the call).
        let prog = [
            ins(0x72, 10, 0, -1, 0x55),
            movr(6, 10),
            ins(0x85, 0, 1, 0, 3),
            ins(0x1f, 6, 0, 0, 0), // r6 -= r0 (callee's r10)
            movr(0, 6),
            exit(),
            movr(0, 10),
            mov(6, 0),
            exit(),
        ];
        assert_eq!(r0(&prog), 256);

        // With a calculator returning 0, the callee's frame is main's: it sees main's byte.
        let (mut vm, _) = vm_with_log();
        vm.set_stack_usage_calculator(Some(Box::new(|_| 0)));
        let prog = [
            ins(0x72, 10, 0, -1, 0x55),
            ins(0x85, 0, 1, 0, 1),
            exit(),
            ins(0x71, 0, 10, -1, 0),
            exit(),
        ];
        vm.load(&encode_slots(&prog)).expect("loads");
        assert_eq!(vm.execute(&mut []), Ok(0x55));

        // Unbounded recursion hits the depth limit at the 9th nested call.
        let (mut vm, log) = vm_with_log();
        vm.set_stack_usage_calculator(Some(Box::new(|_| 16)));
        vm.load(&encode_slots(&[
            ins(0x85, 0, 1, 0, 1),
            exit(),
            ins(0x85, 0, 1, 0, -1),
            exit(),
        ]))
        .expect("loads");
        assert!(matches!(
            vm.execute(&mut []),
            Err(ExecError::CallDepthExceeded {
                depth: 9,
                max: 8,
                pc: 2
            })
        ));
        assert_eq!(
            log.lock().expect("log").as_slice(),
            ["uBPF error: number of nested functions calls (9) exceeds max (8) at PC 2"]
        );
    }

    #[test]
    fn helpers_unwind_and_callx() {
        // gather_bytes(1..5)
        let args: Vec<Insn> = (1..=5).map(|r| mov(r, i32::from(r))).collect();
        let mut prog = args.clone();
        prog.extend([ins(0x85, 0, 0, 0, 0), exit()]);
        assert_eq!(r0(&prog), 0x01_0203_0405);
        // r6..r9 and r1..r5 survive a helper call in the interpreter.
        assert_eq!(
            r0(&[mov(6, 3), ins(0x85, 0, 0, 0, 2), movr(0, 6), exit()]),
            3
        );
        // call_unwind_fail: r1 = -1 continues; r1 = 0 stops with r0 = 0.
        assert_eq!(
            r0(&[mov(1, -1), ins(0x85, 0, 0, 0, 5), mov(0, 2), exit()]),
            2
        );
        assert_eq!(
            r0(&[mov(1, 0), ins(0x85, 0, 0, 0, 5), mov(0, 2), exit()]),
            0
        );
        // Unwind from inside a local function ends the whole program.
        assert_eq!(
            r0(&[
                ins(0x85, 0, 1, 0, 2),
                mov(0, 7),
                exit(),
                mov(1, 0),
                ins(0x85, 0, 0, 0, 5),
                mov(0, 9),
                exit()
            ]),
            0
        );
        // callx: index from the register named in dst.
        assert_eq!(
            r0(&[mov(1, 49), mov(2, 3), ins(0x8d, 2, 0, 0, 0), exit()]),
            7
        );
        assert_eq!(
            run(&[mov(2, 40), ins(0x8d, 2, 0, 0, 0), exit()], &mut []),
            Err(ExecError::NonexistentFunction { pc: 1, index: 40 })
        );
    }

    #[test]
    fn helpers_get_the_original_mem() {
        unsafe extern "C" fn sixth(
            _: u64,
            _: u64,
            _: u64,
            _: u64,
            _: u64,
            mem: *mut c_void,
        ) -> u64 {
            mem as u64
        }
        unsafe extern "C" fn dispatch(
            a: u64,
            _: u64,
            _: u64,
            _: u64,
            _: u64,
            index: u32,
            mem: *mut c_void,
        ) -> u64 {
            (mem as u64).wrapping_add(a).wrapping_add(u64::from(index))
        }
        let mut vm = Vm::new();
        vm.register_helper(7, Some("sixth"), sixth)
            .expect("index in range");
        // r1 is overwritten before the call: the helper still sees the original mem.
        vm.load(&encode_slots(&[mov(1, 0), ins(0x85, 0, 0, 0, 7), exit()]))
            .expect("loads");
        let mut mem = [0u8; 4];
        let addr = mem.as_ptr() as u64;
        assert_eq!(vm.execute(&mut mem), Ok(addr));
        vm.set_dispatcher(Some(dispatch), Some(Box::new(|i| i == 7)));
        vm.unload().unwrap();
        vm.load(&encode_slots(&[mov(1, 100), ins(0x85, 0, 0, 0, 7), exit()]))
            .expect("loads");
        assert_eq!(vm.execute(&mut mem), Ok(addr + 107));
    }

    #[test]
    fn atomics() {
        let mut mem = [0u8; 24];
        mem[3..11].copy_from_slice(&5u64.to_le_bytes());
        mem[16..20].copy_from_slice(&9u32.to_le_bytes());
        let prog = [
            // Misaligned 64-bit fetch-add at mem+3: r2 = old (5), memory = 7.
            mov(2, 2),
            ins(0xdb, 1, 2, 3, 0x01),
            // 32-bit cmpxchg at mem+16: r0 = 9 matches, store 1; r0 = old.
            mov(0, 9),
            mov(3, 1),
            ins(0xc3, 1, 3, 16, 0xf1),
            // 32-bit xchg at mem+16: r4 = old (1), memory = 0xffffffff.
            mov(4, -1),
            ins(0xc3, 1, 4, 16, 0xe1),
            // r0 = r0 + r2 * 16 + r4 * 256
            ins(0x27, 2, 0, 0, 16),
            ins(0x0f, 0, 2, 0, 0),
            ins(0x27, 4, 0, 0, 256),
            ins(0x0f, 0, 4, 0, 0),
            exit(),
        ];
        assert_eq!(run(&prog, &mut mem), Ok(9 + 5 * 16 + 256));
        assert_eq!(&mem[3..11], &7u64.to_le_bytes());
        assert_eq!(&mem[16..20], &u32::MAX.to_le_bytes());
        // 32-bit cmpxchg: the old value goes to r0.
        let mut word = 9u32.to_le_bytes();
        let prog = [
            mov(0, 9),
            mov(3, 1),
            ins(0xc3, 1, 3, 0, 0xf1),
            ins(0x07, 0, 0, 0, 100),
            exit(),
        ];
        assert_eq!(run(&prog, &mut word), Ok(109));
        assert_eq!(word, 1u32.to_le_bytes());
        // Atomics out of bounds report a store.
        assert!(matches!(
            run(&[mov(0, 0), ins(0xdb, 1, 0, 0, 0), exit()], &mut [0u8; 4]),
            Err(ExecError::OutOfBounds {
                access: Access::Store,
                size: 8,
                ..
            })
        ));
    }

    #[test]
    fn falling_off_the_end_and_nothing_loaded_are_silent() {
        let (mut vm, log) = vm_with_log();
        assert_eq!(vm.execute(&mut []), Err(ExecError::NotLoaded));
        vm.load(&encode_slots(&[mov(0, 1)])).expect("loads");
        assert_eq!(vm.execute(&mut []), Err(ExecError::FellOffEnd { pc: 1 }));
        assert!(log.lock().expect("log").is_empty());
    }

    #[test]
    fn undefined_behaviour_check() {
        let (mut vm, log) = vm_with_log();
        vm.config_mut().undefined_behavior_check = true;
        // exit with r0 never written.
        vm.load(&encode_slots(&[mov(3, 1), exit()])).expect("loads");
        assert_eq!(
            vm.execute(&mut []).unwrap_err().to_string(),
            "Error: 1: Return value register r0 is not initialized.\nError: Invalid register state at pc 1."
        );
        // A load from an uninitialised register.
        vm.unload().unwrap();
        vm.load(&encode_slots(&[ins(0x79, 0, 4, 0, 0), exit()]))
            .expect("loads");
        assert!(matches!(
            vm.execute(&mut []),
            Err(ExecError::UninitializedRegister {
                pc: 0,
                role: "Source",
                reg: 4
            })
        ));
        // Loading unwritten stack bytes makes the destination uninitialised.
        vm.unload().unwrap();
        vm.load(&encode_slots(&[ins(0x79, 0, 10, -8, 0), exit()]))
            .expect("loads");
        assert!(matches!(
            vm.execute(&mut []),
            Err(ExecError::UninitializedRegister {
                pc: 1,
                role: "Return value",
                reg: 0
            })
        ));
        // Written stack bytes are fine; helper calls clobber r1-r5.
        vm.unload().unwrap();
        vm.load(&encode_slots(&[
            ins(0x7a, 10, 0, -8, 3),
            ins(0x79, 0, 10, -8, 0),
            ins(0x85, 0, 0, 0, 2),
            ins(0x1d, 1, 0, 1, 0),
            exit(),
            exit(),
        ]))
        .expect("loads");
        assert!(matches!(
            vm.execute(&mut []),
            Err(ExecError::UninitializedRegister {
                pc: 3,
                role: "Destination",
                reg: 1
            })
        ));
        assert_eq!(log.lock().expect("log").len(), 4);
    }

    #[test]
    fn debug_callback_sees_every_instruction() {
        let mut vm = Vm::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        vm.set_debug_fn(Some(Box::new(move |state| {
            sink.lock()
                .expect("lock")
                .push((state.pc, state.registers[0], state.register_mask));
            assert_eq!(state.stack.len(), STACK_SIZE);
            assert!(state.stack_mask.is_none());
        })))
        .expect("first debug fn");
        let v = lddw(0, 9);
        vm.load(&encode_slots(&[mov(0, 4), v[0], v[1], exit()]))
            .expect("loads");
        assert_eq!(vm.execute(&mut []), Ok(9));
        assert_eq!(
            seen.lock().expect("lock").as_slice(),
            [(0, 0, 0x406), (1, 4, 0x406), (3, 9, 0x406)]
        );
    }

    #[test]
    fn debug_callback_sees_the_shadow_state_under_the_ub_check() {
        let mut vm = Vm::new();
        vm.config_mut().undefined_behavior_check = true;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        vm.set_debug_fn(Some(Box::new(move |state| {
            let mask = state.stack_mask.expect("stack mask under the UB check");
            assert_eq!(mask.len(), STACK_SIZE / 8);
            sink.lock().expect("lock").push((
                state.pc,
                state.register_mask,
                mask[STACK_SIZE / 8 - 1],
            ));
        })))
        .expect("first debug fn");
        vm.load(&encode_slots(&[
            ins(0x72, 10, 0, -2, 1), // stb [r10-2], 1
            mov(0, 4),
            exit(),
        ]))
        .expect("loads");
        assert_eq!(vm.execute(&mut []), Ok(4));
        // Bit 0 of the mask is the lowest stack byte: r10-2 is bit 6 of the last byte.
        assert_eq!(
            seen.lock().expect("lock").as_slice(),
            [(0, 0x406, 0), (1, 0x406, 0x40), (2, 0x407, 0x40)]
        );
    }

    #[test]
    fn concurrent_executions_share_the_vm() {
        let (mut vm, _) = vm_with_log();
        // Sum of mem bytes in a loop.
        vm.load(&encode_slots(&[
            mov(0, 0),
            ins(0x15, 2, 0, 5, 0),
            ins(0x71, 3, 1, 0, 0),
            ins(0x0f, 0, 3, 0, 0),
            ins(0x07, 1, 0, 0, 1),
            ins(0x17, 2, 0, 0, 1),
            ins(0x05, 0, 0, -6, 0),
            exit(),
        ]))
        .expect("loads");
        let vm = &vm;
        std::thread::scope(|scope| {
            for t in 0..4u8 {
                scope.spawn(move || {
                    let mut mem = vec![t; 100];
                    assert_eq!(vm.execute(&mut mem), Ok(u64::from(t) * 100));
                });
            }
        });
    }
}

mod robustness {
    use super::prelude::*;
    use rbpf::isa::{INSN_TABLE, Variant, encode_slots};

    /// xorshift64*: a fixed-seed generator, so failures reproduce.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// A random instruction that is well-formed often enough to pass validation.
    fn random_insn(rng: &mut Rng, len: usize) -> Vec<Insn> {
        let spec = INSN_TABLE[rng.below(INSN_TABLE.len() as u64) as usize];
        let reg = |rng: &mut Rng| rng.below(11) as u8;
        let mut insn = Insn::new(spec.opcode, reg(rng), reg(rng), 0, 0);
        insn.off = match rng.below(4) {
            0 => 0,
            1 => rng.below(len as u64 + 2) as i16 - 2,
            2 => -(rng.below(64) as i16),
            _ => rng.next() as i16,
        };
        insn.imm = match rng.below(4) {
            0 => 0,
            1 => rng.below(70) as i32,
            2 => -(rng.below(16) as i32),
            _ => rng.next() as i32,
        };
        // Mostly respect the operand form, so that many programs pass validation.
        if rng.below(8) != 0 {
            use rbpf::isa::Operands as O;
            let (keep_dst, keep_src, keep_off, keep_imm) = match spec.operands {
                O::DstImm => (true, false, false, true),
                O::DstSrc => (true, true, false, false),
                O::Dst => (true, false, false, false),
                O::DstImm64 => (true, false, false, true),
                O::DstMem | O::MemSrc => (true, true, true, false),
                O::MemImm | O::CondImm => (true, false, true, true),
                O::CondReg => (true, true, true, false),
                O::Jump => (false, false, true, false),
                O::Jump32 => (false, false, false, true),
                O::CallImm | O::CallLocal => (false, false, false, true),
                O::CallReg => (true, false, false, false),
                O::None => (false, false, false, false),
                O::PacketAbs => (false, false, false, true),
                O::PacketInd => (false, true, false, true),
            };
            if !keep_dst {
                insn.dst = 0;
            } else if insn.dst == 10 && !matches!(spec.operands, O::MemImm | O::MemSrc) {
                insn.dst = 9;
            }
            if !keep_src {
                insn.src = 0;
            }
            if !keep_off {
                insn.off = 0;
            }
            if !keep_imm {
                insn.imm = 0;
            }
            if matches!(spec.operands, O::Jump32 | O::CallLocal) {
                insn.imm = rng.below(len as u64 + 2) as i32 - 2;
            }
        }
        match spec.variant {
            Variant::Off(off) => insn.off = off,
            Variant::Imm(imm) => insn.imm = imm,
            Variant::Src(src) => insn.src = src,
            Variant::Any => {}
        }
        if insn.opc == 0x85 && insn.src == 0 {
            // Only helpers that take no pointers: gather_bytes, no_op, sqrti, unwind.
            insn.imm = [0, 2, 3, 5][rng.below(4) as usize];
        }
        if insn.opc == 0x18 {
            return vec![insn, Insn::new(0, 0, 0, 0, rng.next() as i32)];
        }
        vec![insn]
    }

    /// Random programs never panic the verifier or the interpreter; execution is bounded by
    /// the instruction limit and memory-safe under bounds checking.
    #[test]
    fn random_programs_never_panic() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        let mut loaded = 0;
        for _ in 0..3000 {
            let len = 1 + rng.below(12) as usize;
            let mut slots = Vec::new();
            while slots.len() < len {
                slots.extend(random_insn(&mut rng, len));
            }
            if rng.below(2) == 0 {
                slots.push(Insn::new(0xb7, 0, 0, 0, 0));
                slots.push(Insn::new(0x95, 0, 0, 0, 0));
            }
            let mut vm = Vm::new();
            for (index, name, f) in rbpf::tools::conformance::HELPERS {
                if matches!(index, 0 | 2 | 3 | 5) {
                    let _ = vm.register_helper(index, Some(name), f);
                }
            }
            let _ = vm.set_unwind_index(5);
            vm.set_error_printer(Some(Box::new(|_| {})));
            vm.config_mut().instruction_limit = 200;
            vm.config_mut().undefined_behavior_check = rng.below(2) == 0;
            if vm.load(&encode_slots(&slots)).is_ok() {
                loaded += 1;
                let mut mem = [0u8; 32];
                let _ = vm.execute(&mut mem);
            }
        }
        assert!(loaded > 100, "only {loaded} random programs loaded");
    }
}

mod regions {
    use super::prelude::*;
    use rbpf::isa::encode_slots;

    fn lddw(dst: u8, value: u64) -> [Insn; 2] {
        [
            Insn::new(0x18, dst, 0, 0, value as u32 as i32),
            Insn::new(0, 0, 0, 0, (value >> 32) as u32 as i32),
        ]
    }

    #[test]
    fn bounds_callback_is_consulted_after_mem_and_stack() {
        let cell = Box::new(0u64);
        let addr = &*cell as *const u64 as u64;
        let mut vm = Vm::new();
        vm.set_error_printer(Some(Box::new(|_| {})));
        vm.set_bounds_check_fn(Box::new(move |a, size| a == addr && size == 8))
            .expect("first callback");
        let p = lddw(1, addr);
        vm.load(&encode_slots(&[
            p[0],
            p[1],
            Insn::new(0x7a, 1, 0, 0, 42),
            Insn::new(0x79, 0, 1, 0, 0),
            Insn::new(0x95, 0, 0, 0, 0),
        ]))
        .expect("loads");
        assert_eq!(vm.execute(&mut []), Ok(42));
        vm.unload().unwrap();
        vm.load(&encode_slots(&[
            p[0],
            p[1],
            Insn::new(0x72, 1, 0, 1, 42),
            Insn::new(0x95, 0, 0, 0, 0),
        ]))
        .expect("loads");
        assert!(matches!(
            vm.execute(&mut []),
            Err(ExecError::OutOfBounds { pc: 2, .. })
        ));
    }

    #[test]
    fn execute_raw_with_a_small_external_stack() {
        // custom_local_function_stack_size_zero-style: a 32-byte stack given by the caller.
        let mut vm = Vm::new();
        vm.set_error_printer(Some(Box::new(|_| {})));
        vm.set_stack_usage_calculator(Some(Box::new(|_| 0)));
        vm.load(&encode_slots(&[
            Insn::new(0x72, 10, 0, -1, 5),
            Insn::new(0x85, 0, 1, 0, 1),
            Insn::new(0x95, 0, 0, 0, 0),
            Insn::new(0x72, 10, 0, -1, 8),
            Insn::new(0x95, 0, 0, 0, 0),
        ]))
        .expect("loads");
        let mut stack = [0u8; 32];
        // SAFETY: the stack buffer is valid for 32 bytes; no memory is given.
        let result =
            unsafe { vm.execute_raw(std::ptr::null_mut(), 0, stack.as_mut_ptr(), stack.len()) };
        assert!(result.is_ok());
        assert_eq!(stack[31], 8);
        // A store below the small stack is out of bounds, and still prints 4096.
        vm.unload().unwrap();
        vm.load(&encode_slots(&[
            Insn::new(0x72, 10, 0, -33, 5),
            Insn::new(0x95, 0, 0, 0, 0),
        ]))
        .expect("loads");
        // SAFETY: as above.
        let err =
            unsafe { vm.execute_raw(std::ptr::null_mut(), 0, stack.as_mut_ptr(), stack.len()) }
                .unwrap_err();
        assert!(err.to_string().ends_with("/4096"));
    }
}
