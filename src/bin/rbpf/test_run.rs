//! `rbpf test-run`: every packet of a pcap capture through one program of an ELF object, as
//! the kernel's `BPF_PROG_TEST_RUN` runs it (`ObjectProgram::test_run`, tail calls
//! included), with the verdicts and redirects counted, the frames after the program written
//! to another capture, and the object's maps printed afterwards.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;

use rbpf::Vm;
use rbpf::jit::JitMode;
use rbpf::kernel::object::Object;
use rbpf::kernel::packet::Redirect;
use rbpf::kernel::program_type::ProgramType;
use rbpf::kernel::test_run::TestRunOptions;
use rbpf::maps::{Map, MapType, possible_cpus};

use super::{CliResult, Failure, parse_hex_bytes, usage, value};

pub(crate) const USAGE: &str = "\
    rbpf test-run OBJECT.o --program NAME [--pcap IN.pcap] [--out OUT.pcap] [--jit]
                  [--map NAME:KEYHEX=VALHEX ...] [--repeat N] [--json]
                                  run every packet of IN.pcap through program NAME of
                                  the object (a kernel test run, tail calls included),
                                  count the verdicts (XDP_*, TC_ACT_* for tc programs,
                                  numbers otherwise) and redirects, write the frames after
                                  the program to OUT.pcap, print the maps afterwards (hex,
                                  or JSON with --json). --map sets an entry before load
                                  (global data too: .rodata:00000000=...); without --pcap
                                  the program runs once without a packet; exit
                                  status 1 when a run faulted
";

/// The command line of `test-run`.
struct Args {
    object: String,
    program: String,
    pcap: Option<String>,
    out: Option<String>,
    jit: bool,
    maps: Vec<(String, Vec<u8>, Vec<u8>)>,
    repeat: u32,
    json: bool,
}

fn parse(args: &[String]) -> CliResult<Args> {
    let mut object = None;
    let mut program = None;
    let mut parsed = Args {
        object: String::new(),
        program: String::new(),
        pcap: None,
        out: None,
        jit: false,
        maps: Vec::new(),
        repeat: 1,
        json: false,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--program" => program = Some(value(arg, &mut it)?.to_owned()),
            "--pcap" => parsed.pcap = Some(value(arg, &mut it)?.to_owned()),
            "--out" => parsed.out = Some(value(arg, &mut it)?.to_owned()),
            "--jit" | "-j" => parsed.jit = true,
            "--json" => parsed.json = true,
            "--repeat" => {
                let text = value(arg, &mut it)?;
                parsed.repeat = match text.parse() {
                    Ok(n) if n > 0 => n,
                    _ => return usage(format!("--repeat needs a positive number, not `{text}`")),
                };
            }
            "--map" => {
                let text = value(arg, &mut it)?;
                let entry = text.split_once(':').and_then(|(name, kv)| {
                    let (k, v) = kv.split_once('=')?;
                    Some((name.to_owned(), parse_hex_bytes(k)?, parse_hex_bytes(v)?))
                });
                match entry {
                    Some(e) => parsed.maps.push(e),
                    None => return usage(format!("--map needs NAME:KEYHEX=VALHEX, not `{text}`")),
                }
            }
            a if a.starts_with('-') && a.len() > 1 => {
                return usage(format!("test-run: unknown option `{a}`"));
            }
            _ if object.is_none() => object = Some(arg.clone()),
            _ => return usage(format!("test-run: unexpected argument `{arg}`")),
        }
    }
    let Some(object) = object else {
        return usage("test-run needs an object file");
    };
    let Some(program) = program else {
        return usage("test-run needs --program NAME");
    };
    parsed.object = object;
    parsed.program = program;
    Ok(parsed)
}

/// A pcap capture: its link type, timestamp resolution and records.
struct Capture {
    /// The file's global header as read (written back unchanged, in the same byte order).
    header: [u8; 24],
    big_endian: bool,
    records: Vec<Record>,
}

struct Record {
    ts: [u32; 2],
    orig_len: u32,
    data: Vec<u8>,
}

/// The magic of microsecond captures; `0xa1b23c4d` marks nanosecond ones.
const PCAP_MAGIC_US: u32 = 0xa1b2_c3d4;
const PCAP_MAGIC_NS: u32 = 0xa1b2_3c4d;

fn read_pcap(path: &str) -> CliResult<Capture> {
    let bytes = std::fs::read(path).or_else(|e| usage(format!("cannot read {path}: {e}")))?;
    let bad = |why: &str| Failure::Usage(format!("{path}: not a pcap file ({why})"));
    let header: [u8; 24] = bytes
        .get(..24)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| bad("shorter than its header"))?;
    let magic = [header[0], header[1], header[2], header[3]];
    let big_endian = if [PCAP_MAGIC_US, PCAP_MAGIC_NS].contains(&u32::from_le_bytes(magic)) {
        false
    } else if [PCAP_MAGIC_US, PCAP_MAGIC_NS].contains(&u32::from_be_bytes(magic)) {
        true
    } else {
        return Err(bad("unknown magic"));
    };
    let word = |b: &[u8]| {
        let b: [u8; 4] = b.try_into().unwrap_or_default();
        if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    let mut records = Vec::new();
    let mut at = 24;
    while at < bytes.len() {
        let head = bytes
            .get(at..at + 16)
            .ok_or_else(|| bad("a record header is cut"))?;
        let incl = word(&head[8..12]) as usize;
        let data = bytes
            .get(at + 16..at + 16 + incl)
            .ok_or_else(|| bad("a record is cut"))?;
        records.push(Record {
            ts: [word(&head[0..4]), word(&head[4..8])],
            orig_len: word(&head[12..16]),
            data: data.to_vec(),
        });
        at += 16 + incl;
    }
    Ok(Capture {
        header,
        big_endian,
        records,
    })
}

fn write_pcap(path: &str, capture: &Capture, frames: &[Vec<u8>]) -> CliResult<()> {
    let word = |v: u32| {
        if capture.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut out = capture.header.to_vec();
    for (record, frame) in capture.records.iter().zip(frames) {
        let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        // A frame the program grew or shrank keeps its untruncated relation to orig_len.
        let orig = if record.orig_len as usize == record.data.len() {
            len
        } else {
            record.orig_len.max(len)
        };
        for v in [record.ts[0], record.ts[1], len, orig] {
            out.extend_from_slice(&word(v));
        }
        out.extend_from_slice(frame);
    }
    std::fs::write(path, out).or_else(|e| usage(format!("cannot write {path}: {e}")))
}

/// The name of a verdict for programs of type `ty`.
fn verdict_name(ty: ProgramType, retval: u32) -> String {
    const XDP: [&str; 5] = [
        "XDP_ABORTED",
        "XDP_DROP",
        "XDP_PASS",
        "XDP_TX",
        "XDP_REDIRECT",
    ];
    const TC: [&str; 9] = [
        "TC_ACT_OK",
        "TC_ACT_RECLASSIFY",
        "TC_ACT_SHOT",
        "TC_ACT_PIPE",
        "TC_ACT_STOLEN",
        "TC_ACT_QUEUED",
        "TC_ACT_REPEAT",
        "TC_ACT_REDIRECT",
        "TC_ACT_TRAP",
    ];
    let named = match ty {
        ProgramType::Xdp => XDP.get(retval as usize),
        ProgramType::SchedCls | ProgramType::SchedAct if retval == u32::MAX => {
            Some(&"TC_ACT_UNSPEC")
        }
        ProgramType::SchedCls | ProgramType::SchedAct => TC.get(retval as usize),
        _ => None,
    };
    named.map_or_else(|| retval.to_string(), |n| (*n).to_owned())
}

fn redirect_name(redirect: Redirect) -> String {
    match redirect {
        Redirect::Ifindex { ifindex, flags: 0 } => format!("ifindex {ifindex}"),
        Redirect::Ifindex { ifindex, flags } => format!("ifindex {ifindex} flags {flags:#x}"),
        Redirect::Cpu { cpu } => format!("cpu {cpu}"),
        Redirect::Queue { queue } => format!("queue {queue}"),
    }
}

fn errno_name(err: i32) -> String {
    let name = match -err {
        libc::EINVAL => "EINVAL",
        libc::EFAULT => "EFAULT",
        libc::ENOSPC => "ENOSPC",
        libc::E2BIG => "E2BIG",
        _ => return err.to_string(),
    };
    format!("-{name}")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A map's entries: (key, value) pairs.
type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Every entry of `map` (key, value as the host reads it: one slot per CPU for per-CPU
/// maps), or `None` for types without keys to walk (program arrays, perf and ring buffers).
fn entries(map: &Map) -> Option<Entries> {
    let key_size = map.def().key_size as usize;
    if key_size == 0
        || matches!(
            map.map_type(),
            MapType::ProgArray | MapType::PerfEventArray | MapType::Ringbuf
        )
    {
        return None;
    }
    let mut out = Vec::new();
    let mut key: Option<Vec<u8>> = None;
    let mut next = vec![0u8; key_size];
    while map.next_key(key.as_deref(), &mut next).is_ok() {
        let mut value = vec![0u8; map.host_value_size()];
        if map.lookup(&next, &mut value).is_ok() {
            out.push((next.clone(), value));
        }
        key = Some(next.clone());
        if out.len() > 1 << 20 {
            break;
        }
    }
    Some(out)
}

/// A JSON string (the names here are identifiers and hex, but quote properly anyway).
fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_counts(counts: &BTreeMap<String, u64>) -> String {
    let items: Vec<String> = counts
        .iter()
        .map(|(k, v)| format!("{}: {v}", json_str(k)))
        .collect();
    format!("{{{}}}", items.join(", "))
}

/// A progress bar on standard error, shown only when it is a terminal.
struct Progress {
    total: usize,
    shown: Option<usize>,
}

impl Progress {
    fn new(total: usize) -> Self {
        // SAFETY: isatty only inspects the descriptor number.
        let tty = unsafe { libc::isatty(2) } == 1;
        Progress {
            total,
            shown: (tty && total >= 1000).then_some(usize::MAX),
        }
    }

    fn step(&mut self, done: usize) {
        let Some(last) = self.shown else { return };
        let percent = done * 100 / self.total.max(1);
        if percent == last {
            return;
        }
        self.shown = Some(percent);
        let bar = "#".repeat(percent / 2) + &" ".repeat(50 - percent / 2);
        eprint!("\r[{bar}] {done}/{}", self.total);
        if done == self.total {
            eprintln!();
        }
    }
}

pub(crate) fn cmd(args: &[String]) -> CliResult<ExitCode> {
    if super::wants_help(args) {
        print!("USAGE:\n{USAGE}");
        return Ok(ExitCode::SUCCESS);
    }
    let args = parse(args)?;
    let mut object = Object::<Vm>::open(&args.object)
        .map_err(|e| Failure::Usage(format!("{}: {e}", args.object)))?;
    for (name, key, val) in &args.maps {
        let map = object
            .map(name)
            .ok_or_else(|| Failure::Usage(format!("no map named `{name}`")))?;
        // A per-CPU value given once is every CPU's.
        let val = if map.map_type().is_per_cpu() && val.len() == map.def().value_size as usize {
            let stride = map.host_value_size() / possible_cpus();
            let mut all = vec![0u8; map.host_value_size()];
            for slot in all.chunks_mut(stride) {
                slot[..val.len()].copy_from_slice(val);
            }
            all
        } else {
            val.clone()
        };
        map.update(key, &val, 0)
            .map_err(|e| Failure::Usage(format!("--map {name}: {e}")))?;
    }
    let _ = object.load();
    if args.jit {
        for (name, e) in object.compile_programs(JitMode::Basic) {
            if name == args.program {
                return Err(Failure::Program(format!("{name} does not compile: {e}")));
            }
        }
    }
    let Some(program) = object.program_mut(&args.program) else {
        return Err(Failure::Usage(format!(
            "{} has no program `{}`",
            args.object, args.program
        )));
    };
    if let Some(why) = program.load_error() {
        return Err(Failure::Program(format!(
            "{} did not load: {why}",
            args.program
        )));
    }
    let ty = program.program_type();
    let capture = match &args.pcap {
        Some(path) => Some(read_pcap(path)?),
        None => None,
    };
    let inputs: Vec<&[u8]> = match &capture {
        Some(c) => c.records.iter().map(|r| &r.data[..]).collect(),
        None => vec![&[][..]],
    };
    let mut verdicts = BTreeMap::new();
    let mut redirects = BTreeMap::new();
    let mut errors = BTreeMap::new();
    let mut frames = Vec::with_capacity(inputs.len());
    let mut progress = Progress::new(inputs.len());
    let mut out = vec![0u8; 2 * rbpf::kernel::test_run::PAGE_SIZE];
    for (n, input) in inputs.iter().enumerate() {
        let mut opts = TestRunOptions {
            data_in: input,
            data_out: capture.is_some().then_some(&mut out[..]),
            repeat: args.repeat,
            jit: args.jit,
            ..TestRunOptions::default()
        };
        match program.test_run(&mut opts) {
            Ok(()) => {
                *verdicts
                    .entry(verdict_name(ty, opts.retval))
                    .or_insert(0u64) += 1;
                if let Some(r) = opts.redirect {
                    *redirects.entry(redirect_name(r)).or_insert(0u64) += 1;
                }
                let size = opts.data_size_out as usize;
                frames.push(out[..size.min(out.len())].to_vec());
            }
            Err(e) => {
                *errors.entry(errno_name(e)).or_insert(0u64) += 1;
                frames.push(input.to_vec());
            }
        }
        progress.step(n + 1);
    }
    if let (Some(path), Some(c)) = (&args.out, &capture) {
        write_pcap(path, c, &frames)?;
    }
    let maps: Vec<(String, Option<Entries>)> = object
        .maps()
        .iter()
        .filter_map(|m| Some((m.name().to_owned(), entries(m.map()?))))
        .collect();
    let mut text = String::new();
    if args.json {
        let map_items: Vec<String> = maps
            .iter()
            .filter_map(|(name, entries)| {
                let entries: Vec<String> = entries
                    .as_ref()?
                    .iter()
                    .map(|(k, v)| format!("{{\"key\": \"{}\", \"value\": \"{}\"}}", hex(k), hex(v)))
                    .collect();
                Some(format!("{}: [{}]", json_str(name), entries.join(", ")))
            })
            .collect();
        let _ = writeln!(
            text,
            "{{\"program\": {}, \"packets\": {}, \"verdicts\": {}, \"redirects\": {}, \"errors\": {}, \"maps\": {{{}}}}}",
            json_str(&args.program),
            inputs.len(),
            json_counts(&verdicts),
            json_counts(&redirects),
            json_counts(&errors),
            map_items.join(", ")
        );
    } else {
        let _ = writeln!(text, "packets: {}", inputs.len());
        for (title, counts) in [
            ("verdicts", &verdicts),
            ("redirects", &redirects),
            ("errors", &errors),
        ] {
            if !counts.is_empty() {
                let _ = writeln!(text, "{title}:");
                for (name, count) in counts {
                    let _ = writeln!(text, "  {name}: {count}");
                }
            }
        }
        let _ = writeln!(text, "maps:");
        for (name, entries) in &maps {
            match entries {
                None => {
                    let _ = writeln!(text, "  {name}: (not listed)");
                }
                Some(entries) => {
                    let _ = writeln!(text, "  {name}: {} entries", entries.len());
                    for (k, v) in entries {
                        let _ = writeln!(text, "    {} = {}", hex(k), hex(v));
                    }
                }
            }
        }
    }
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    // Frames the kernel would refuse (too short, too long) are counted, not failures; a
    // program that faulted is.
    Ok(if errors.contains_key(&errno_name(-libc::EFAULT)) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
