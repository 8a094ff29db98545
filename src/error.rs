//! Typed errors of every layer. Their `Display` texts are uBPF's, word for word, because C
//! embedders and test harnesses compare them (`docs/validator.md`, `docs/semantics.md` and `docs/elf.md` list them).
//!
//! Every variant that concerns an instruction carries its `pc` (slot index), even where uBPF's
//! text does not print it.

use alloc::string::String;
use alloc::vec::Vec;

use core::fmt;

/// Why `ubpf_load` (or [`crate::Vm::load`]) rejected a program. Texts are uBPF's validator's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// A program is already loaded.
    #[error(
        "code has already been loaded into this VM. Use ubpf_unload_code() if you need to reuse this VM"
    )]
    AlreadyLoaded,
    /// The byte length is not a whole number of slots.
    #[error("code_len must be a multiple of 8")]
    LengthNotMultipleOf8,
    /// The program has `MAX_INSTS` slots or more.
    #[error("too many instructions (max {max})")]
    TooManyInstructions {
        /// The limit printed (uBPF's `UBPF_MAX_INSTS`).
        max: usize,
    },
    /// uBPF's failure for an empty program with read-only bytecode on (its `mmap(0)` fails).
    #[error("out of memory")]
    OutOfMemory,
    /// No row of the instruction table has this opcode.
    #[error("unknown opcode 0x{opcode:02x} at PC {pc}")]
    UnknownOpcode {
        /// Slot index.
        pc: usize,
        /// The opcode byte.
        opcode: u8,
    },
    /// `neg32` with a non-zero source field.
    #[error("invalid src field for neg op at PC {pc}")]
    InvalidNegSource {
        /// Slot index.
        pc: usize,
    },
    /// `neg64` with a non-zero source field.
    #[error("invalid src field for neg64 op at PC {pc}")]
    InvalidNeg64Source {
        /// Slot index.
        pc: usize,
    },
    /// `le`/`be`/`bswap` with a width other than 16, 32 or 64.
    #[error("invalid endian immediate at PC {pc}")]
    InvalidEndianImmediate {
        /// Slot index.
        pc: usize,
    },
    /// `lddw` with a non-zero source field.
    #[error("invalid source register for LDDW at PC {pc}")]
    InvalidLddwSource {
        /// Slot index.
        pc: usize,
    },
    /// `lddw` without a second slot of opcode 0.
    #[error("incomplete lddw at PC {pc}")]
    IncompleteLddw {
        /// Slot index.
        pc: usize,
    },
    /// The second slot of an `lddw` has a non-zero dst, src or offset (pc is the second slot).
    #[error("invalid lddw second half at PC {pc}")]
    InvalidLddwSecondHalf {
        /// Slot index of the second half.
        pc: usize,
    },
    /// A jump to itself (`ja -1`).
    #[error("infinite loop at PC {pc}")]
    InfiniteLoop {
        /// Slot index.
        pc: usize,
    },
    /// A jump whose target lies outside the program or its sub-program.
    #[error("jump out of bounds at PC {pc}")]
    JumpOutOfBounds {
        /// Slot index of the jump.
        pc: usize,
    },
    /// A jump into the second slot of an `lddw`.
    #[error("jump to middle of lddw at PC {pc}")]
    JumpToMiddleOfLddw {
        /// Slot index of the jump.
        pc: usize,
    },
    /// A helper call with a negative immediate.
    #[error("invalid call immediate at PC {pc}")]
    InvalidCallImmediate {
        /// Slot index.
        pc: usize,
    },
    /// A helper call to an index with no helper (or rejected by the dispatcher's validator).
    #[error("call to nonexistent function {index} at PC {pc}")]
    NonexistentFunction {
        /// Slot index.
        pc: usize,
        /// The helper index called.
        index: u32,
    },
    /// A local call whose target lies outside the program.
    #[error("call to local function (at PC {pc}) is out of bounds (target: {target})")]
    LocalCallOutOfBounds {
        /// Slot index.
        pc: usize,
        /// The computed target slot.
        target: i64,
    },
    /// A call by BTF id (src = 2).
    #[error("call to external function by BTF ID (at PC {pc}) is not supported")]
    BtfCallUnsupported {
        /// Slot index.
        pc: usize,
    },
    /// A call with a source field of 3 or more.
    #[error("call (at PC {pc}) contains invalid type value")]
    InvalidCallType {
        /// Slot index.
        pc: usize,
    },
    /// A 64-bit atomic with an unknown operation.
    #[error("invalid atomic operation at PC {pc}")]
    InvalidAtomic {
        /// Slot index.
        pc: usize,
    },
    /// A 32-bit atomic with an unknown operation.
    #[error("invalid atomic operation with opcode 0x{opcode:02x} at PC {pc}")]
    InvalidAtomic32 {
        /// Slot index.
        pc: usize,
        /// The opcode byte (0xc3).
        opcode: u8,
    },
    /// A source register above r10.
    #[error("invalid source register at PC {pc}")]
    InvalidSourceRegister {
        /// Slot index (for `lddw`, the second slot: a uBPF quirk).
        pc: usize,
    },
    /// A destination register above r9 (r10 only for stores).
    #[error("invalid destination register at PC {pc}")]
    InvalidDestinationRegister {
        /// Slot index (for `lddw`, the second slot: a uBPF quirk).
        pc: usize,
    },
    /// Field filter: the opcode has no row (normally caught as `UnknownOpcode` first).
    #[error("Invalid instruction opcode {opcode:>2X}.")]
    FilterOpcode {
        /// Slot index.
        pc: usize,
        /// The opcode byte.
        opcode: u8,
    },
    /// Field filter: the destination field is outside the opcode's allowed range.
    #[error("Invalid destination register {value} for opcode {opcode:>2X}.")]
    FilterDestination {
        /// Slot index.
        pc: usize,
        /// The opcode byte.
        opcode: u8,
        /// The field's value.
        value: u8,
    },
    /// Field filter: the source field is outside the opcode's allowed range.
    #[error("Invalid source register {value} for opcode {opcode:>2X}.")]
    FilterSource {
        /// Slot index.
        pc: usize,
        /// The opcode byte.
        opcode: u8,
        /// The field's value.
        value: u8,
    },
    /// Field filter: the immediate is outside the opcode's allowed range.
    #[error("Invalid immediate value {value} for opcode {opcode:>2X}.")]
    FilterImmediate {
        /// Slot index.
        pc: usize,
        /// The opcode byte.
        opcode: u8,
        /// The field's value.
        value: i32,
    },
    /// Field filter: the offset is outside the opcode's allowed range.
    #[error("Invalid offset value {value} for opcode {opcode:>2X}.")]
    FilterOffset {
        /// Slot index.
        pc: usize,
        /// The opcode byte.
        opcode: u8,
        /// The field's value.
        value: i16,
    },
    /// A sub-program (function) does not end in `exit` or an unconditional jump.
    #[error("sub-program does not end with EXIT or unconditional jump at PC {pc}")]
    SubProgramEnd {
        /// Slot index of the sub-program's last instruction.
        pc: usize,
    },
    /// The stack-usage calculator returned a size that is not a multiple of 16.
    #[error("local function (at PC {pc}) has improperly sized stack use ({size})")]
    ImproperStackSize {
        /// Slot index of the function's first instruction.
        pc: usize,
        /// The size returned (as uBPF stores it: truncated to 16 bits).
        size: i64,
    },
}

/// Kind of memory access, as printed in runtime errors (`load`/`store`; atomics are stores).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// A read (`ldx*`).
    Load,
    /// A write (`st*`, `stx*`, atomics).
    Store,
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Access::Load => "load",
            Access::Store => "store",
        })
    }
}

/// Formats an address as glibc's `%p` does: `(nil)` for zero, `0x…` otherwise.
pub struct CPointer(pub u64);

impl fmt::Display for CPointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            f.write_str("(nil)")
        } else {
            write!(f, "{:#x}", self.0)
        }
    }
}

/// Why an execution failed. Texts are uBPF's runtime messages (without the trailing newline).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// No program is loaded (uBPF fails silently).
    #[error("no code loaded")]
    NotLoaded,
    /// Execution ran past the last slot without `exit` (uBPF fails silently).
    #[error("execution fell off the end of the program at PC {pc}")]
    FellOffEnd {
        /// The slot index that does not exist.
        pc: usize,
    },
    /// The instruction limit was reached.
    #[error("Error: Instruction limit exceeded.")]
    InstructionLimit {
        /// The instruction that was about to run.
        pc: usize,
    },
    /// base + offset wrapped above 2^64.
    #[error("uBPF error: address overflow in {access} at PC {pc}")]
    AddressOverflow {
        /// Slot index.
        pc: usize,
        /// Load or store.
        access: Access,
    },
    /// base + offset went below 0.
    #[error("uBPF error: address underflow in {access} at PC {pc}")]
    AddressUnderflow {
        /// Slot index.
        pc: usize,
        /// Load or store.
        access: Access,
    },
    /// addr + size wrapped above 2^64.
    #[error("uBPF error: integer overflow in {access} at PC {pc}, addr {}, size {size}", CPointer(*.addr))]
    IntegerOverflow {
        /// Slot index.
        pc: usize,
        /// Load or store.
        access: Access,
        /// Effective address.
        addr: u64,
        /// Access width in bytes.
        size: usize,
    },
    /// The access lies in no permitted region.
    #[error(
        "uBPF error: out of bounds memory {access} at PC {pc}, addr {}, size {size}\nmem {}/{mem_len} stack {}/{stack_len}",
        CPointer(*.addr), CPointer(*.mem), CPointer(*.stack)
    )]
    OutOfBounds {
        /// Slot index.
        pc: usize,
        /// Load or store.
        access: Access,
        /// Effective address.
        addr: u64,
        /// Access width in bytes.
        size: usize,
        /// Start of the input memory.
        mem: u64,
        /// Length of the input memory.
        mem_len: usize,
        /// Start of the stack.
        stack: u64,
        /// Stack size printed (uBPF always prints 4096).
        stack_len: usize,
    },
    /// Local calls nested deeper than `MAX_CALL_DEPTH`.
    #[error(
        "uBPF error: number of nested functions calls ({depth}) exceeds max ({max}) at PC {pc}"
    )]
    CallDepthExceeded {
        /// Slot index of the call.
        pc: usize,
        /// The depth the call would reach.
        depth: usize,
        /// The limit.
        max: usize,
    },
    /// A helper call (`call imm` or `callx`) to an index with nothing registered at run time.
    #[error("uBPF error: call to nonexistent function {index} at PC {pc}")]
    NonexistentFunction {
        /// Slot index.
        pc: usize,
        /// The helper index.
        index: u64,
    },
    /// Undefined-behaviour check: a register read before it was written. `role` is
    /// `Source`, `Destination` or `Return value`.
    #[error(
        "Error: {pc}: {role} register r{reg} is not initialized.\nError: Invalid register state at pc {pc}."
    )]
    UninitializedRegister {
        /// Slot index.
        pc: usize,
        /// Which operand: "Source", "Destination" or "Return value".
        role: &'static str,
        /// The register number.
        reg: u8,
    },
    /// The safe execution profile refused an access, pointer operation or helper result.
    #[error("uBPF safe mode error: {what} at PC {pc}")]
    SafeMode {
        /// Slot index.
        pc: usize,
        /// What was refused (uBPF's wording).
        what: String,
    },
    /// A caller-provided buffer (`mem`, or the stack of `ubpf_exec_ex`/extended-mode code)
    /// is longer than `isize::MAX` or ends past the end of the address space: no bounds
    /// check can hold over it, so the run is refused before its first instruction
    /// (docs/sandbox.md, "Caller buffers").
    #[error("uBPF error: {buffer} buffer of {len} bytes passes the end of the address space")]
    InvalidBuffer {
        /// `mem`, `stack`, or `data` (the packet data of `rbpf_exec_mbuff`).
        buffer: &'static str,
        /// The length the caller gave.
        len: usize,
    },
    /// The run would nest more runs of helper-calling programs on this thread than
    /// [`crate::isa::MAX_NESTED_RUNS`] (a helper that runs a program that calls a helper
    /// that runs a program ...): refused before its first instruction instead of
    /// overflowing the native stack.
    #[error("uBPF error: more than {max} program runs nested on this thread (through helpers)")]
    NestingTooDeep {
        /// The limit.
        max: usize,
    },
    /// An opcode the interpreter does not know (validation makes this unreachable).
    #[error("Error: unknown opcode {opcode} at PC {pc}")]
    UnknownOpcode {
        /// Slot index.
        pc: usize,
        /// The opcode byte.
        opcode: u8,
    },
}

impl ExecError {
    /// Whether uBPF reports this failure through the error printer (some fail silently).
    pub fn is_printed(&self) -> bool {
        !matches!(self, ExecError::NotLoaded | ExecError::FellOffEnd { .. })
    }
}

/// Why the JIT could not produce code. Texts follow uBPF's where uBPF has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JitError {
    /// Nothing is loaded.
    #[error("code has not been loaded into this VM")]
    NotLoaded,
    /// The VM runs the safe profile, which only the interpreter implements.
    #[error("safe execution profile is interpreter-only")]
    SafeProfile,
    /// The code does not fit the configured JIT buffer size or the caller's buffer.
    #[error("Target buffer too small")]
    TargetBufferTooSmall,
    /// `ubpf_copy_jit` was called before a successful compile.
    #[error("Cannot copy JIT'd code before compilation")]
    CopyBeforeCompile,
    /// `ubpf_copy_jit` was given a buffer smaller than the code.
    #[error("Buffer not big enough for copy")]
    BufferNotBigEnough,
    /// An instruction the translator does not handle (validation normally prevents this).
    #[error("Unknown instruction at PC {pc}: opcode {opcode:02x}")]
    Unsupported {
        /// Slot index.
        pc: usize,
        /// The opcode byte.
        opcode: u8,
    },
    /// Compiling in the other mode would free the current image while a helper called from
    /// it is running on this thread (docs/sandbox.md, "Re-entrancy").
    #[error(
        "compiled code is running (this call comes from one of its helpers); it cannot be replaced now"
    )]
    CodeRunning,
    /// Cranelift or the code allocator failed.
    #[error("internal uBPF error: {0}")]
    Internal(String),
}

/// Why `ubpf_load_elf` (or [`crate::Vm::load_elf`]) rejected a file. Texts are uBPF's loader's;
/// the variants after `Load` are librbpf's own, for what uBPF does not support.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElfError {
    /// Fewer than 64 bytes.
    #[error("not enough data for ELF header")]
    TooShort,
    /// Not `\x7fELF`.
    #[error("wrong magic")]
    WrongMagic,
    /// Not ELFCLASS64.
    #[error("wrong class")]
    WrongClass,
    /// Not little-endian.
    #[error("wrong byte order")]
    WrongByteOrder,
    /// EI_VERSION is not 1.
    #[error("wrong version")]
    WrongVersion,
    /// OS ABI is not SYSV.
    #[error("wrong OS ABI")]
    WrongOsAbi,
    /// Not ET_REL.
    #[error("wrong type, expected relocatable")]
    WrongType,
    /// Machine is neither EM_NONE nor EM_BPF.
    #[error("wrong machine, expected none or BPF, got {0}")]
    WrongMachine(u16),
    /// More than 32 sections.
    #[error("too many sections")]
    TooManySections,
    /// A section header lies outside the file.
    #[error("bad section header offset or size")]
    BadSectionHeader,
    /// A section's contents lie outside the file.
    #[error("bad section offset or size")]
    BadSectionOffset,
    /// No SHT_STRTAB section.
    #[error("could not find the string table in the elf file")]
    NoStringTable,
    /// No SHT_SYMTAB section.
    #[error("could not find the symbol table in the elf file")]
    NoSymbolTable,
    /// A function symbol's name is outside the string table.
    #[error("a function symbol contained a bad name")]
    BadFunctionName,
    /// A function symbol's section index is out of range.
    #[error("a function symbol contained a bad section index")]
    BadFunctionSection,
    /// A function symbol points into a section that is not exactly ALLOC|EXECINSTR PROGBITS.
    #[error("function symbol {0} points to a non-executable section")]
    NonExecutableFunction(String),
    /// The entry function was not found (`(null)` when no name was given).
    #[error("{0} function not found.")]
    MainNotFound(String),
    /// A relocation section names a symbol table out of range.
    #[error("bad symbol table section index")]
    BadSymbolTableIndex,
    /// A relocation names a symbol out of range.
    #[error("a relocation contained a bad symbol index")]
    BadRelocationSymbol,
    /// A relocation's symbol name is outside the string table, or its offset is in no function.
    #[error("a relocation's symbol contained a bad name")]
    BadRelocationName,
    /// R_BPF_64_64 offset outside the section.
    #[error("bad R_BPF_64_64 relocation offset")]
    BadDataRelocationOffset,
    /// R_BPF_64_64 symbol's section index out of range.
    #[error("bad R_BPF_64_64 relocation section index")]
    BadDataRelocationSectionIndex,
    /// R_BPF_64_64 symbol's section is not a data section.
    #[error("bad R_BPF_64_64 relocation section")]
    BadDataRelocationSection,
    /// R_BPF_64_64 symbol extends past its section.
    #[error("bad R_BPF_64_64 size")]
    BadDataRelocationSize,
    /// R_BPF_64_64 does not point at an `lddw`.
    #[error("bad R_BPF_64_64 relocation instruction")]
    BadDataRelocationInstruction,
    /// R_BPF_64_64 against a data section with no callback and no loader-owned copy.
    #[error("R_BPF_64_64 data relocation function not set")]
    NoDataRelocationFunction,
    /// A local-call relocation points at no known function.
    #[error("relocated target of a function call does not point to a known function")]
    UnknownCallTarget,
    /// A helper called by name is not registered.
    #[error("function '{0}' not found")]
    HelperNotFound(String),
    /// The linked program failed validation.
    #[error("{0}")]
    Load(#[from] LoadError),
    /// Anything else malformed in the file that the `object` crate rejects.
    #[error("malformed ELF file: {0}")]
    Malformed(String),
    /// A function symbol's bytes (`st_value`, `st_size`) lie outside its section. uBPF does not
    /// check this and copies whatever memory follows; librbpf refuses the file.
    #[error("function symbol {0} lies outside its section")]
    FunctionOutsideSection(String),
    /// An `R_BPF_64_32` relocation's instruction runs past the end of its function. uBPF does
    /// not check this; librbpf refuses the file.
    #[error("bad R_BPF_64_32 relocation offset")]
    BadCallRelocationOffset,
    /// A map the object declares cannot be created, a relocation names no map, or `bpf_loop`
    /// cannot be linked (`docs/maps.md`).
    #[error("{0}")]
    Map(String),
}

/// Why an ELF object could not be opened, changed or loaded through the object API
/// ([`crate::kernel::object::Object`], `rbpf_object_*`; `docs/kernel-programs.md`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    /// The file could not be read.
    #[error("cannot read {path}: {reason}")]
    Io {
        /// The path given.
        path: String,
        /// The operating system's reason.
        reason: String,
    },
    /// The bytes are not a relocatable 64-bit little-endian eBPF ELF object, or a table in it
    /// lies outside the file.
    #[error("malformed ELF file: {0}")]
    Malformed(String),
    /// A map declaration cannot be read (BTF, `maps` section).
    #[error("{0}")]
    Map(String),
    /// No map of the object has this name.
    #[error("no map named '{0}'")]
    NoSuchMap(String),
    /// No program of the object has this name.
    #[error("no program named '{0}'")]
    NoSuchProgram(String),
    /// The call is allowed only before `load` (sizes, helpers, program types).
    #[error("the object is already loaded")]
    AlreadyLoaded,
    /// A helper number outside 0..256.
    #[error("helper index {0} is out of range (max 255)")]
    HelperIndex(u32),
    /// A new `max_entries` the map type refuses (the map is unchanged).
    #[error("map '{name}': {reason}")]
    BadSize {
        /// The map.
        name: String,
        /// Why its type refuses the size.
        reason: String,
    },
    /// Some programs (or the object's maps) failed to load; one line per failure, each naming
    /// the program or map and why. The programs that loaded are usable.
    #[error("{}", .0.join("\n"))]
    LoadFailed(Vec<String>),
}
