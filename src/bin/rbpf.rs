//! `rbpf`: run, assemble, disassemble and test eBPF programs with librbpf.
//!
//! Run `rbpf --help` for usage. Exit status: 0 success, 1 the program or a test failed
//! (assembly, load or runtime error, wrong result), 2 usage error or unreadable input.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::process::ExitCode;

use rbpf::data_file::{DataFile, Expected};
use rbpf::isa::{self, Insn};
use rbpf::{asm, disasm};

// In a folder of its own, so that cargo does not take it for another binary.
#[path = "rbpf/test_run.rs"]
mod test_run;

const USAGE_TEMPLATE: &str = "\
rbpf: run, assemble, disassemble and test eBPF programs (librbpf)

USAGE:
    rbpf run [OPTIONS] PROG       run PROG and print r0 as 0x...
    rbpf asm [--hex] [-o OUT] [FILE|-]
                                  assemble text to bytecode (stdout unless -o)
    rbpf disasm [--hex] [FILE|-]  disassemble bytecode (raw, or ELF) to text; with --hex the
                                  input is hex text such as \"b7 00 00 00 01 00 00 00\"
    rbpf test [--safe] FILE.data|DIR...
                                  run .data test files (a directory: its *.data files)
                                  in the interpreter and the JIT (--safe: also the safe
                                  profile's interpreter); one PASS/FAIL line each
{TEST_RUN_USAGE}    rbpf help                     show this help (also -h, --help)
    rbpf --version                show the version

PROG and FILE may be `-` for standard input. PROG is, tried in this order:
  - an ELF object (detected by its magic); without --entry the entry function is the one
    at offset 0 of section .text, else (if there is a .text) the first function starting
    a section;
  - hex bytecode as `rbpf asm --hex` prints it (detected: nothing but two-digit hex bytes
    separated by white space, such as \"b7 00 00 00 01 00 00 00\");
  - assembly text (detected: any other UTF-8 without NUL bytes);
  - raw little-endian bytecode (anything else).
Assembly is the bpf_conformance syntax (`mov %r0, 1`, `ldxdw %r0, [%r1+2]`, `ja label`)
or rbpf's (`mov64 r0, 1`); a runtime error is printed and exits with status 1.

RUN OPTIONS:
    -m, --mem FILE       input memory read from FILE (r1 points to it, r2 is its length)
    --mem-hex HEX        input memory as hex bytes, e.g. \"01 02 ff\" or 0102ff
    -j, --jit            run with the Cranelift JIT instead of the interpreter
    --limit N            stop with an error after N instructions (0: no limit)
    --no-bounds-check    do not check memory accesses
    -p, --profile legacy|safe
                         execution profile (default legacy); safe is uBPF's pointer-tracking
                         interpreter profile (not with --jit)
    --entry NAME         ELF only: the function to start at
    --linux-helpers      register the Linux kernel's helpers at the kernel's numbers (maps,
                         ring buffers, bpf_loop, ...) instead of the conformance helpers, for
                         programs written for the kernel with libbpf (not with -p safe)
    --asm | --raw | --elf | --hex
                         force the input format instead of detecting it (--hex also takes
                         0x prefixes, commas and unspaced digits, as disasm --hex does)

ASM OPTIONS:
    --hex                write hex text (one instruction of 8 bytes per line) instead of
                         bytes; `rbpf run` and `rbpf disasm --hex` read it back
    -o, --output OUT     write to OUT instead of standard output
An input that assembles to no instruction (empty, or only comments) is an error (status 1).

Helpers 0-5 of the bpf_conformance suite are registered for `run` and `test`
(gather_bytes, memfrob, no_op, sqrti, strcmp_ext, unwind; 5 is the unwind helper).

ENVIRONMENT:
    UBPF_ENABLE_CONSTANT_BLINDING=1|true   JIT with constant blinding (as ubpf_test)

EXIT STATUS:
    0  success (for `test`: every file passed)
    1  the program failed to assemble, load or run, or a test failed
    2  usage error, or an input file could not be read or written
";

/// The help text: the template with the commands defined in other files.
fn usage_text() -> String {
    USAGE_TEMPLATE.replace("{TEST_RUN_USAGE}", test_run::USAGE)
}

/// How a command failed.
#[derive(Debug)]
enum Failure {
    /// Bad command line, or unreadable/unwritable files (exit 2).
    Usage(String),
    /// The program or a test failed (exit 1); the message is already specific.
    Program(String),
}

type CliResult<T> = Result<T, Failure>;

fn usage<T>(msg: impl Into<String>) -> CliResult<T> {
    Err(Failure::Usage(msg.into()))
}

fn main() -> ExitCode {
    let mut args = Vec::new();
    for arg in std::env::args_os().skip(1) {
        match arg.into_string() {
            Ok(a) => args.push(a),
            Err(bad) => {
                eprintln!(
                    "rbpf: argument is not valid UTF-8: {}",
                    bad.to_string_lossy()
                );
                return ExitCode::from(2);
            }
        }
    }
    match dispatch(&args) {
        Ok(code) => code,
        Err(Failure::Usage(msg)) => {
            eprintln!("rbpf: {msg}");
            eprintln!("Try `rbpf --help` for usage.");
            ExitCode::from(2)
        }
        Err(Failure::Program(msg)) => {
            eprintln!("rbpf: {msg}");
            ExitCode::from(1)
        }
    }
}

fn dispatch(args: &[String]) -> CliResult<ExitCode> {
    let Some((command, rest)) = args.split_first() else {
        eprint!("{}", usage_text());
        return usage("missing command");
    };
    match command.as_str() {
        "-h" | "--help" | "help" => {
            print!("{}", usage_text());
            Ok(ExitCode::SUCCESS)
        }
        "-V" | "--version" => {
            println!("rbpf {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        "run" => cmd_run(rest),
        "asm" => cmd_asm(rest),
        "disasm" => cmd_disasm(rest),
        "test" => cmd_test(rest),
        "test-run" => test_run::cmd(rest),
        other => usage(format!("unknown command `{other}`")),
    }
}

/// Reads a file, or standard input for `-`.
fn read_input(path: &str) -> CliResult<Vec<u8>> {
    let mut buf = Vec::new();
    let result = if path == "-" {
        io::stdin().lock().read_to_end(&mut buf).map(|_| ())
    } else {
        std::fs::read(path).map(|b| buf = b)
    };
    match result {
        Ok(()) => Ok(buf),
        Err(e) => usage(format!("cannot read {path}: {e}")),
    }
}

/// How error messages name an input (`-` is standard input).
fn display_name(path: &str) -> &str {
    if path == "-" { "<stdin>" } else { path }
}

fn wants_help(args: &[String]) -> bool {
    args.iter().any(|a| a == "-h" || a == "--help")
}

/// Takes the value of an option (`--mem FILE`) from the argument iterator.
fn value<'a>(opt: &str, it: &mut impl Iterator<Item = &'a String>) -> CliResult<&'a str> {
    match it.next() {
        Some(v) => Ok(v),
        None => usage(format!("{opt} needs a value")),
    }
}

fn parse_hex_bytes(text: &str) -> Option<Vec<u8>> {
    let digits: String = text
        .split(|c: char| c.is_whitespace() || c == ',')
        .map(|tok| tok.strip_prefix("0x").unwrap_or(tok))
        .collect();
    if !digits.len().is_multiple_of(2) || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    digits
        .as_bytes()
        .chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|p| u8::from_str_radix(p, 16).ok())
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Elf,
    Raw,
    Asm,
    Hex,
}

/// ELF by magic; text made only of two-digit hex bytes is hex bytecode (`rbpf asm --hex`'s
/// output); other text (UTF-8 without NULs) is assembly; anything else is raw bytecode.
fn sniff(bytes: &[u8]) -> Format {
    if bytes.starts_with(b"\x7fELF") {
        return Format::Elf;
    }
    match std::str::from_utf8(bytes) {
        Ok(text) if !bytes.contains(&0) => {
            if looks_like_hex(text) {
                Format::Hex
            } else {
                Format::Asm
            }
        }
        _ => Format::Raw,
    }
}

/// Whether `text` is one or more two-digit hex bytes separated by white space, as `rbpf asm
/// --hex` prints. No assembly line has this shape: every mnemonic has a letter past `f` or
/// more than two letters, so detection never takes a program's text for bytes.
fn looks_like_hex(text: &str) -> bool {
    let mut tokens = text.split_whitespace().peekable();
    tokens.peek().is_some()
        && tokens.all(|tok| tok.len() == 2 && tok.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The bytes of hex bytecode text, or an error naming the input.
fn hex_bytecode(bytes: &[u8], name: &str) -> CliResult<Vec<u8>> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(parse_hex_bytes)
        .ok_or_else(|| Failure::Program(format!("{}: not hex bytes", display_name(name))))
}

fn assemble_text(bytes: &[u8], name: &str) -> CliResult<Vec<u8>> {
    let name = display_name(name);
    let text = std::str::from_utf8(bytes)
        .map_err(|e| Failure::Program(format!("{name} is not UTF-8 text: {e}")))?;
    asm::assemble_bytes(text).map_err(|e| Failure::Program(format!("{name}: {e}")))
}

struct RunOptions {
    prog: String,
    mem: Vec<u8>,
    jit: bool,
    limit: Option<u32>,
    bounds_check: bool,
    entry: Option<String>,
    format: Option<Format>,
    safe: bool,
    linux_helpers: bool,
}

fn parse_run_args(args: &[String]) -> CliResult<RunOptions> {
    let mut prog = None;
    let mut mem_file = None;
    let mut mem_hex = None;
    let mut opts = RunOptions {
        prog: String::new(),
        mem: Vec::new(),
        jit: false,
        limit: None,
        bounds_check: true,
        entry: None,
        format: None,
        safe: false,
        linux_helpers: false,
    };
    let set_format = |f: Format, current: &mut Option<Format>| match current {
        Some(old) if *old != f => usage("--asm, --raw, --elf and --hex are mutually exclusive"),
        _ => {
            *current = Some(f);
            Ok(())
        }
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--mem" | "-m" => mem_file = Some(value(arg, &mut it)?),
            "--mem-hex" => mem_hex = Some(value(arg, &mut it)?),
            "--jit" | "-j" => opts.jit = true,
            "--limit" => {
                let v = value(arg, &mut it)?;
                opts.limit = Some(v.parse().map_err(|_| {
                    Failure::Usage(format!("--limit needs a number from 0 to {}", u32::MAX))
                })?);
            }
            "--no-bounds-check" => opts.bounds_check = false,
            "--profile" | "-p" => {
                opts.safe = match value(arg, &mut it)? {
                    "legacy" => false,
                    "safe" => true,
                    other => return usage(format!("Unknown execution profile: {other}")),
                }
            }
            "--entry" => opts.entry = Some(value(arg, &mut it)?.to_owned()),
            "--linux-helpers" => opts.linux_helpers = true,
            "--asm" => set_format(Format::Asm, &mut opts.format)?,
            "--raw" => set_format(Format::Raw, &mut opts.format)?,
            "--elf" => set_format(Format::Elf, &mut opts.format)?,
            "--hex" => set_format(Format::Hex, &mut opts.format)?,
            a if a.starts_with('-') && a != "-" => return usage(format!("unknown option `{a}`")),
            a => {
                if prog.replace(a).is_some() {
                    return usage("`run` takes exactly one program");
                }
            }
        }
    }
    opts.prog = match prog {
        Some(p) => p.to_owned(),
        None => return usage("`run` needs a program file (or - for standard input)"),
    };
    opts.mem = match (mem_file, mem_hex) {
        (Some(_), Some(_)) => return usage("use either --mem or --mem-hex, not both"),
        (Some(path), None) => {
            if path == "-" && opts.prog == "-" {
                return usage("the program and the memory cannot both come from standard input");
            }
            read_input(path)?
        }
        (None, Some(hex)) => parse_hex_bytes(hex)
            .ok_or_else(|| Failure::Usage(format!("--mem-hex: not hex bytes: {hex}")))?,
        (None, None) => Vec::new(),
    };
    Ok(opts)
}

fn cmd_run(args: &[String]) -> CliResult<ExitCode> {
    if wants_help(args) {
        print!("{}", usage_text());
        return Ok(ExitCode::SUCCESS);
    }
    let mut opts = parse_run_args(args)?;
    let input = read_input(&opts.prog)?;
    let format = opts.format.unwrap_or_else(|| sniff(&input));
    if opts.entry.is_some() && format != Format::Elf {
        return usage("--entry applies only to ELF programs");
    }
    if opts.safe && opts.linux_helpers {
        return usage("--linux-helpers does not apply to the safe profile");
    }
    let mut vm = if opts.linux_helpers {
        engine::new_linux_vm().map_err(Failure::Program)?
    } else if opts.safe {
        engine::new_safe_vm().map_err(Failure::Program)?
    } else {
        engine::new_vm()
    };
    vm.config_mut().bounds_check = opts.bounds_check;
    if let Some(limit) = opts.limit {
        vm.config_mut().instruction_limit = limit;
    }
    match format {
        Format::Elf => engine::load_elf(&mut vm, &input, opts.entry.as_deref())
            .map_err(|e| Failure::Program(format!("Failed to load code: {}", e.explain())))?,
        Format::Raw | Format::Asm | Format::Hex => {
            let code = match format {
                Format::Asm => assemble_text(&input, &opts.prog)?,
                Format::Hex => hex_bytecode(&input, &opts.prog)?,
                _ => input,
            };
            // The library answers an empty program with uBPF's "out of memory"; say what it is.
            if code.is_empty() {
                return Err(Failure::Program(format!(
                    "Failed to load code: {} holds no instructions",
                    display_name(&opts.prog)
                )));
            }
            vm.load(&code)
                .map_err(|e| Failure::Program(format!("Failed to load code: {e}")))?;
        }
    }
    let result = if opts.jit {
        engine::run_jit(&mut vm, &mut opts.mem)
    } else {
        engine::interpret(&vm, &mut opts.mem)
    };
    match result {
        Ok(r0) => {
            println!("{r0:#x}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(Failure::Program(e)),
    }
}

fn cmd_asm(args: &[String]) -> CliResult<ExitCode> {
    if wants_help(args) {
        print!("{}", usage_text());
        return Ok(ExitCode::SUCCESS);
    }
    let mut hex = false;
    let mut output = None;
    let mut input = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--hex" => hex = true,
            "-o" | "--output" => output = Some(value(arg, &mut it)?),
            a if a.starts_with('-') && a != "-" => return usage(format!("unknown option `{a}`")),
            a => {
                if input.replace(a).is_some() {
                    return usage("`asm` takes at most one input file");
                }
            }
        }
    }
    let input = input.unwrap_or("-");
    let text = read_input(input)?;
    let code = assemble_text(&text, input)?;
    // Writing nothing and succeeding would hide a wrong or empty file; `run` refuses it too.
    if code.is_empty() {
        return Err(Failure::Program(format!(
            "{} holds no instructions",
            display_name(input)
        )));
    }
    let out = if hex {
        let mut s = String::new();
        for slot in code.chunks(isa::INSN_SIZE) {
            let line: Vec<String> = slot.iter().map(|b| format!("{b:02x}")).collect();
            let _ = writeln!(s, "{}", line.join(" "));
        }
        s.into_bytes()
    } else {
        code
    };
    write_output(output, &out)?;
    Ok(ExitCode::SUCCESS)
}

fn write_output(path: Option<&str>, bytes: &[u8]) -> CliResult<()> {
    let result = match path {
        Some(p) if p != "-" => std::fs::write(p, bytes),
        _ => {
            let mut out = io::stdout().lock();
            out.write_all(bytes).and_then(|()| out.flush())
        }
    };
    result.map_err(|e| Failure::Usage(format!("cannot write {}: {e}", path.unwrap_or("-"))))
}

fn cmd_disasm(args: &[String]) -> CliResult<ExitCode> {
    if wants_help(args) {
        print!("{}", usage_text());
        return Ok(ExitCode::SUCCESS);
    }
    let mut input = None;
    let mut hex = false;
    for arg in args {
        match arg.as_str() {
            "--hex" => hex = true,
            a if a.starts_with('-') && a != "-" => return usage(format!("unknown option `{a}`")),
            a => {
                if input.replace(a).is_some() {
                    return usage("`disasm` takes at most one input file");
                }
            }
        }
    }
    let input = input.unwrap_or("-");
    let mut bytes = read_input(input)?;
    if hex {
        bytes = hex_bytecode(&bytes, input)?;
    }
    let insns: Vec<Insn> = if sniff(&bytes) == Format::Elf {
        let mut vm = engine::new_vm();
        engine::load_elf(&mut vm, &bytes, None)
            .map_err(|e| Failure::Program(format!("{}: {}", display_name(input), e.explain())))?;
        vm.program().map(|p| p.insns.clone()).unwrap_or_default()
    } else {
        isa::decode_slots(&bytes).ok_or_else(|| {
            Failure::Program(format!(
                "{}: length {} is not a multiple of 8 bytes",
                display_name(input),
                bytes.len()
            ))
        })?
    };
    write_output(None, disasm::disassemble(&insns).as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// Judges one stage's outcome against the file's expectation.
fn check(expected: &Expected, outcome: Result<u64, String>) -> Result<(), String> {
    expected.judge(outcome.as_ref().copied().map_err(String::as_str))
}

/// The engines `rbpf test` runs a program in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Engine {
    Interpreter,
    Jit,
    SafeInterpreter,
}

impl Engine {
    fn name(self) -> &'static str {
        match self {
            Engine::Interpreter => "interpreter",
            Engine::Jit => "jit",
            Engine::SafeInterpreter => "safe-interpreter",
        }
    }

    /// Loads `code` into a fresh VM and runs it on a copy of `mem`.
    fn run(self, code: &[u8], mem: &[u8]) -> Result<u64, String> {
        let mut vm = match self {
            Engine::SafeInterpreter => engine::new_safe_vm()?,
            _ => engine::new_vm(),
        };
        let mut mem = mem.to_vec();
        vm.load(code)
            .map_err(|e| format!("Failed to load code: {e}"))?;
        match self {
            Engine::Jit => engine::run_jit(&mut vm, &mut mem),
            _ => engine::interpret(&vm, &mut mem),
        }
    }
}

/// Runs one `.data` file; `Ok` with a note (e.g. "interpreter only"), or the failure reason.
fn run_data_file(path: &str, safe: bool) -> Result<String, String> {
    let file = if path == "-" {
        let mut text = String::new();
        io::stdin()
            .lock()
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        DataFile::parse(&text)
    } else {
        DataFile::read(std::path::Path::new(path))
    }
    .map_err(|e| e.to_string())?;
    let expected = file.expected().map_err(|e| e.to_string())?;
    let code = match file.program() {
        Ok(insns) => isa::encode_slots(&insns),
        Err(e) => return check(&expected, Err(e.to_string())).map(|()| String::new()),
    };
    let mut engines = vec![Engine::Interpreter];
    let mut note = String::new();
    if file.no_jit.is_some() {
        note = " (no jit: the file says so)".to_owned();
    } else {
        engines.push(Engine::Jit);
    }
    if safe {
        engines.push(Engine::SafeInterpreter);
    }
    let mem = file.mem_bytes();
    for engine in engines {
        check(&expected, engine.run(&code, &mem)).map_err(|e| format!("{}: {e}", engine.name()))?;
    }
    Ok(note)
}

fn cmd_test(args: &[String]) -> CliResult<ExitCode> {
    if wants_help(args) {
        print!("{}", usage_text());
        return Ok(ExitCode::SUCCESS);
    }
    let safe = args.iter().any(|a| a == "--safe");
    let args: Vec<String> = args.iter().filter(|a| *a != "--safe").cloned().collect();
    if let Some(opt) = args.iter().find(|a| a.starts_with('-') && *a != "-") {
        return usage(format!("unknown option `{opt}`"));
    }
    if args.is_empty() {
        return usage("`test` needs at least one .data file or directory");
    }
    let mut files = Vec::new();
    for arg in &args {
        let path = std::path::Path::new(arg);
        if arg == "-" {
            files.push(arg.clone());
            continue;
        }
        let metadata = std::fs::metadata(path)
            .map_err(|e| Failure::Usage(format!("cannot read {arg}: {e}")))?;
        if !metadata.is_dir() {
            files.push(arg.clone());
            continue;
        }
        let entries = std::fs::read_dir(path)
            .map_err(|e| Failure::Usage(format!("cannot read directory {arg}: {e}")))?;
        let mut found: Vec<String> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "data"))
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        found.sort();
        files.extend(found);
    }
    let (mut passed, mut failed) = (0usize, 0usize);
    for path in &files {
        match run_data_file(path, safe) {
            Ok(note) => {
                passed += 1;
                println!("PASS {path}{note}");
            }
            Err(reason) => {
                failed += 1;
                println!("FAIL {path}: {reason}");
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The engine entry points the CLI uses, in one place.
mod engine {
    use object::{Object as _, ObjectSymbol as _, SymbolKind};
    use rbpf::interpreter::SafeHelperResult;
    use rbpf::jit::JitMode;
    use rbpf::vm::ExecutionProfile;
    use rbpf::{ElfError, Vm};

    /// A VM with the conformance helpers registered and runtime errors kept for the caller.
    pub fn new_vm() -> Vm {
        let mut vm = Vm::new();
        // As ubpf_test does, for JIT runs with randomised immediates.
        if std::env::var("UBPF_ENABLE_CONSTANT_BLINDING").is_ok_and(|v| v == "1" || v == "true") {
            vm.config_mut().constant_blinding = true;
        }
        rbpf::conformance::register_helpers(&mut vm);
        // Errors are returned and printed by the CLI itself, once.
        vm.set_error_printer(Some(Box::new(|_| {})));
        vm
    }

    /// A VM with the Linux kernel's helpers (and none of the conformance suite's), for
    /// programs written for the kernel; runtime errors kept for the caller.
    pub fn new_linux_vm() -> Result<Vm, String> {
        let mut vm = Vm::new();
        if std::env::var("UBPF_ENABLE_CONSTANT_BLINDING").is_ok_and(|v| v == "1" || v == "true") {
            vm.config_mut().constant_blinding = true;
        }
        vm.register_linux_helpers()
            .map_err(|e| format!("Failed to register the kernel's helpers: {e}"))?;
        vm.set_error_printer(Some(Box::new(|_| {})));
        Ok(vm)
    }

    /// As [`new_vm`], in uBPF's safe execution profile: the helpers are registered as safe
    /// helpers returning scalars, as uBPF's test tools do.
    pub fn new_safe_vm() -> Result<Vm, String> {
        let mut vm = new_vm();
        vm.config_mut().profile = ExecutionProfile::Safe;
        for (index, name, f) in rbpf::conformance::HELPERS {
            vm.register_safe_helper(index, Some(name), f, SafeHelperResult::Scalar)
                .map_err(|e| format!("Failed to register safe helper {name}: {e}"))?;
        }
        Ok(vm)
    }

    /// Runs the loaded program in the interpreter.
    pub fn interpret(vm: &Vm, mem: &mut [u8]) -> Result<u64, String> {
        vm.execute(mem).map_err(|e| e.to_string())
    }

    /// Compiles the loaded program and runs it.
    pub fn run_jit(vm: &mut Vm, mem: &mut [u8]) -> Result<u64, String> {
        vm.compile(JitMode::Basic)
            .map_err(|e| format!("Failed to compile: {e}"))?;
        vm.execute_jit(mem).map_err(|e| e.to_string())
    }

    /// Loads an ELF object.
    pub fn load_elf(vm: &mut Vm, bytes: &[u8], entry: Option<&str>) -> Result<(), ElfLoadError> {
        vm.load_elf(bytes, entry).map_err(|error| ElfLoadError {
            error,
            entry: entry.map(str::to_owned),
            functions: function_names(bytes),
        })
    }

    /// Why an ELF object did not load, with what the CLI needs to say more than the C API.
    pub struct ElfLoadError {
        error: ElfError,
        /// The entry function asked for with --entry.
        entry: Option<String>,
        /// The object's function symbols (empty when the file is too damaged to list them).
        functions: Vec<String>,
    }

    impl ElfLoadError {
        /// The message: the library's (uBPF's) text, except for a missing entry function,
        /// where uBPF's "(null) function not found." says neither what was looked for nor
        /// what there is.
        pub fn explain(&self) -> String {
            if !matches!(self.error, ElfError::MainNotFound(_)) {
                return self.error.to_string();
            }
            let mut text = match &self.entry {
                Some(entry) => format!("function '{entry}' not found"),
                None => "no entry function: looked for a function at offset 0 of section \
                         .text, then (if there is a .text section) for the first function \
                         starting a section"
                    .to_owned(),
            };
            if self.functions.is_empty() {
                text.push_str("; the object has no function symbols");
            } else {
                text.push_str("; its functions: ");
                text.push_str(&self.functions.join(", "));
                text.push_str(" (choose one with --entry NAME)");
            }
            text
        }
    }

    /// The names of the function symbols of an ELF object, in symbol-table order; empty when
    /// the file cannot be read as ELF.
    fn function_names(bytes: &[u8]) -> Vec<String> {
        let Ok(file) = object::File::parse(bytes) else {
            return Vec::new();
        };
        file.symbols()
            .filter(|sym| sym.kind() == SymbolKind::Text)
            .filter_map(|sym| sym.name().ok().map(str::to_owned))
            .filter(|name| !name.is_empty())
            .collect()
    }
}
