//! Debian's compiled libxdp programs (package libxdp1, `/usr/lib/<arch>-linux-gnu/bpf/*.o`),
//! loaded unchanged with the object API, configured through their maps as their own
//! user-space tools configure them, and run packet by packet through test runs in the
//! interpreter and in the JIT, with hand-built Ethernet/IPv4/IPv6/TCP/UDP frames:
//!
//! - xdp-filter (`xdpfilt_{alw,dny}_{all,eth,ip,tcp,udp}.o`): rules in `filter_ports`,
//!   `filter_ipv4`, `filter_ipv6`, `filter_ethernet` (per-CPU values: the `MAP_FLAG_*` bits,
//!   hit counter from bit 6, as `xdp-filter port/ip/ether` write them), verdicts of the
//!   allow and deny policies, hit counters and `xdp_stats_map`;
//! - the dispatcher (`xdp-dispatcher.o`), configured through its `.rodata`
//!   (`struct xdp_dispatcher_config`) as libxdp does before load, with its empty slots;
//! - xdpdump's XDP program (`xdpdump_xdp.o`): `trace_cfg` in `.data`, records with the
//!   captured frame in `xdpdump_perf_map`;
//! - the AF_XDP default programs (`xsk_def_xdp_prog*.o`): redirect to the socket of the
//!   receive queue through `xsks_map`, else pass.
//!
//! When the objects are missing the tests are skipped (failed under `CI`,
//! `common::skip`).

mod common;

use std::path::PathBuf;

use rbpf::Vm;
use rbpf::jit::JitMode;
use rbpf::kernel::object::Object;
use rbpf::kernel::packet::Redirect;
use rbpf::kernel::test_run::TestRunOptions;
use rbpf::maps::{Map, current_cpu, possible_cpus};

const XDP_ABORTED: u32 = 0;
const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_REDIRECT: u32 = 4;

/// The directory of libxdp1's objects, or `None` (reported as a skip).
fn objects() -> Option<PathBuf> {
    let dir = PathBuf::from(format!("/usr/lib/{}-linux-gnu/bpf", std::env::consts::ARCH));
    if dir.join("xdp-dispatcher.o").is_file() {
        Some(dir)
    } else {
        common::skip(
            "libxdp1 (apt-get install libxdp1)",
            &format!("the libxdp objects of {}", dir.display()),
        );
        None
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Engine {
    Interpreter,
    Jit,
}

const ENGINES: [Engine; 2] = [Engine::Interpreter, Engine::Jit];

/// Opens and loads `file` of `dir` after `configure` (global data, before load); compiles
/// every program for the JIT.
fn load(
    dir: &std::path::Path,
    file: &str,
    engine: Engine,
    configure: impl FnOnce(&Object),
) -> Object {
    let path = dir.join(file);
    let mut object = Object::<Vm>::open(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
    configure(&object);
    object
        .load()
        .unwrap_or_else(|e| panic!("{file} does not load: {e}"));
    if engine == Engine::Jit {
        let failed = object.compile_programs(JitMode::Basic);
        assert!(failed.is_empty(), "{file}: {failed:?}");
    }
    object
}

/// The outcome of one test run.
#[derive(Debug)]
struct Outcome {
    verdict: u32,
    redirect: Option<Redirect>,
    frame: Vec<u8>,
}

/// Runs `program` of `object` over `frame` with the given `xdp_md` (ingress ifindex, rx
/// queue), through a test run in `engine`.
fn run(
    object: &mut Object,
    program: &str,
    frame: &[u8],
    ingress: Option<(u32, u32)>,
    engine: Engine,
) -> Outcome {
    let mut md = [0u8; 24];
    if let Some((ifindex, queue)) = ingress {
        md[4..8].copy_from_slice(&u32::try_from(frame.len()).unwrap().to_le_bytes());
        md[12..16].copy_from_slice(&ifindex.to_le_bytes());
        md[16..20].copy_from_slice(&queue.to_le_bytes());
    }
    let mut out = vec![0u8; 4096];
    let mut opts = TestRunOptions {
        data_in: frame,
        data_out: Some(&mut out),
        ctx_in: ingress.map(|_| &md[..]),
        jit: engine == Engine::Jit,
        ..TestRunOptions::default()
    };
    let prog = object
        .program_mut(program)
        .unwrap_or_else(|| panic!("no program {program}"));
    prog.test_run(&mut opts)
        .unwrap_or_else(|e| panic!("{program}: test run failed with {e}"));
    let (verdict, redirect, size) = (opts.retval, opts.redirect, opts.data_size_out);
    out.truncate(size as usize);
    Outcome {
        verdict,
        redirect,
        frame: out,
    }
}

// Frames.

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
const IP4_A: [u8; 4] = [10, 0, 0, 1];
const IP4_B: [u8; 4] = [10, 0, 0, 2];
const IP6_A: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const IP6_B: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
const TCP: u8 = 6;
const UDP: u8 = 17;

fn ethernet(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A TCP (20 bytes, data offset 5) or UDP (8 bytes, length 8 + 4) header and 4 bytes of data.
fn l4(proto: u8, sport: u16, dport: u16) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    if proto == TCP {
        h.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    } else {
        h.extend_from_slice(&12u16.to_be_bytes());
        h.extend_from_slice(&[0, 0]);
    }
    h.extend_from_slice(b"data");
    h
}

fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
    let total = u16::try_from(20 + payload.len()).unwrap();
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h.extend_from_slice(payload);
    h
}

fn ipv6(src: [u8; 16], dst: [u8; 16], next: u8, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len()).unwrap();
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&len.to_be_bytes());
    h.extend_from_slice(&[next, 64]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h.extend_from_slice(payload);
    h
}

fn tcp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    ethernet(
        MAC_A,
        MAC_B,
        0x0800,
        &ipv4(src, dst, TCP, &l4(TCP, sport, dport)),
    )
}

fn udp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    ethernet(
        MAC_A,
        MAC_B,
        0x0800,
        &ipv4(src, dst, UDP, &l4(UDP, sport, dport)),
    )
}

fn tcp6(src: [u8; 16], dst: [u8; 16], sport: u16, dport: u16) -> Vec<u8> {
    ethernet(
        MAC_A,
        MAC_B,
        0x86dd,
        &ipv6(src, dst, TCP, &l4(TCP, sport, dport)),
    )
}

// xdp-filter.

/// `MAP_FLAG_*` of xdp-filter's `common_kern_user.h`.
const MAP_FLAG_SRC: u64 = 1;
const MAP_FLAG_DST: u64 = 2;
const MAP_FLAG_TCP: u64 = 4;
const MAP_FLAG_UDP: u64 = 8;
/// The hit counter lives above the flags.
const COUNTER_SHIFT: u32 = 6;

/// `map_set_flags` of xdp-filter.c: the flags in every CPU's value, counters reset.
fn set_flags(map: &Map, key: &[u8], flags: u64) {
    let stride = map.host_value_size() / possible_cpus();
    let mut values = vec![0u8; map.host_value_size()];
    for cpu in 0..possible_cpus() {
        values[cpu * stride..cpu * stride + 8].copy_from_slice(&flags.to_ne_bytes());
    }
    map.update(key, &values, 0)
        .unwrap_or_else(|e| panic!("{}: {e}", map.name()));
}

/// `map_get_counter_flags` of xdp-filter.c: the hits summed over CPUs.
fn hits(map: &Map, key: &[u8]) -> u64 {
    let stride = map.host_value_size() / possible_cpus();
    let mut values = vec![0u8; map.host_value_size()];
    map.lookup(key, &mut values)
        .unwrap_or_else(|e| panic!("{}: {e}", map.name()));
    values
        .chunks(stride)
        .map(|c| u64::from_ne_bytes(c[..8].try_into().unwrap()) >> COUNTER_SHIFT)
        .sum()
}

/// `xdp_stats_map[action]`: (packets, bytes) summed over CPUs.
fn stats(object: &Object, action: u32) -> (u64, u64) {
    let map = object.map("xdp_stats_map").expect("xdp_stats_map");
    let values = map.get_per_cpu::<u32, [u64; 2]>(&action).unwrap();
    values.iter().fold((0, 0), |(p, b), v| (p + v[0], b + v[1]))
}

/// The port key `xdp-filter port` writes: `htons(port)` in a u32.
fn port_key(port: u16) -> [u8; 4] {
    u32::from(port.to_be()).to_ne_bytes()
}

/// A check of one xdp-filter variant: a frame and whether it matches the rules set below.
struct Case {
    what: &'static str,
    frame: Vec<u8>,
    hit: bool,
}

#[test]
fn xdp_filter_variants_follow_their_rules() {
    let Some(dir) = objects() else { return };
    let mut checked = 0;
    for policy in ["alw", "dny"] {
        for feature in ["all", "eth", "ip", "tcp", "udp"] {
            let file = format!("xdpfilt_{policy}_{feature}.o");
            for engine in ENGINES {
                check_filter(&dir, &file, policy, feature, engine);
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 20);
}

fn check_filter(dir: &std::path::Path, file: &str, policy: &str, feature: &str, engine: Engine) {
    let mut object = load(dir, file, engine, |_| {});
    let program = object.programs()[0].name().to_owned();
    let has = |name: &str| object.map(name).is_some();
    let (tcp, udp) = (
        matches!(feature, "all" | "tcp"),
        matches!(feature, "all" | "udp"),
    );
    let ip = matches!(feature, "all" | "ip");
    let eth = matches!(feature, "all" | "eth");
    assert_eq!(has("filter_ports"), tcp || udp, "{file}");
    assert_eq!(has("filter_ipv4"), ip, "{file}");
    assert_eq!(has("filter_ipv6"), ip, "{file}");
    assert_eq!(has("filter_ethernet"), eth, "{file}");
    // "allow" policy: rules drop; "deny" policy: rules pass, the rest drops.
    let (on_hit, on_miss) = if policy == "alw" {
        (XDP_DROP, XDP_PASS)
    } else {
        (XDP_PASS, XDP_DROP)
    };

    // With no rules, nothing matches.
    let plain = tcp4(IP4_B, IP4_A, 1000, 80);
    let o = run(&mut object, &program, &plain, None, engine);
    assert_eq!(o.verdict, on_miss, "{file} {engine:?}: no rules");
    assert_eq!(o.frame, plain);
    assert_eq!(stats(&object, on_miss), (1, plain.len() as u64), "{file}");

    // The rules, as `xdp-filter port 80` (dst, tcp+udp), `port -m src -p udp 5353`,
    // `ip 10.0.0.1` (dst), `ip -m src 2001:db8::1`, `ether 02:00:00:00:00:0a` (dst).
    let mut cases = Vec::new();
    if tcp || udp {
        let ports = object.map("filter_ports").unwrap();
        set_flags(
            ports,
            &port_key(80),
            MAP_FLAG_DST | MAP_FLAG_TCP | MAP_FLAG_UDP,
        );
        set_flags(ports, &port_key(5353), MAP_FLAG_SRC | MAP_FLAG_UDP);
        cases.extend([
            Case {
                what: "tcp dport 80",
                frame: tcp4(IP4_B, IP4_B, 1000, 80),
                hit: tcp,
            },
            Case {
                what: "udp dport 80",
                frame: udp4(IP4_B, IP4_B, 1000, 80),
                hit: udp,
            },
            Case {
                what: "tcp sport 80 (dst rule)",
                frame: tcp4(IP4_B, IP4_B, 80, 1000),
                hit: false,
            },
            Case {
                what: "udp sport 5353",
                frame: udp4(IP4_B, IP4_B, 5353, 1000),
                hit: udp,
            },
            Case {
                what: "tcp sport 5353 (udp rule)",
                frame: tcp4(IP4_B, IP4_B, 5353, 1000),
                hit: false,
            },
            Case {
                what: "tcp6 dport 80",
                frame: tcp6(IP6_B, IP6_B, 1000, 80),
                hit: tcp,
            },
        ]);
    }
    if ip {
        set_flags(object.map("filter_ipv4").unwrap(), &IP4_A, MAP_FLAG_DST);
        set_flags(object.map("filter_ipv6").unwrap(), &IP6_A, MAP_FLAG_SRC);
        cases.extend([
            Case {
                what: "ipv4 to 10.0.0.1",
                frame: udp4(IP4_B, IP4_A, 1, 2),
                hit: true,
            },
            Case {
                what: "ipv4 from 10.0.0.1 (dst rule)",
                frame: udp4(IP4_A, IP4_B, 1, 2),
                hit: false,
            },
            Case {
                what: "ipv6 from 2001:db8::1",
                frame: tcp6(IP6_A, IP6_B, 1, 2),
                hit: true,
            },
            Case {
                what: "ipv6 to 2001:db8::1 (src rule)",
                frame: tcp6(IP6_B, IP6_A, 1, 2),
                hit: false,
            },
        ]);
    }
    if eth {
        set_flags(object.map("filter_ethernet").unwrap(), &MAC_A, MAP_FLAG_DST);
        cases.extend([
            Case {
                what: "ether to 02:..:0a",
                frame: ethernet(
                    MAC_A,
                    MAC_B,
                    0x0800,
                    &ipv4(IP4_B, IP4_B, UDP, &l4(UDP, 1, 2)),
                ),
                hit: true,
            },
            Case {
                what: "ether from 02:..:0a (dst rule)",
                frame: ethernet(
                    MAC_B,
                    MAC_A,
                    0x0800,
                    &ipv4(IP4_B, IP4_B, UDP, &l4(UDP, 1, 2)),
                ),
                hit: false,
            },
        ]);
    }
    cases.push(Case {
        what: "no rule matches",
        frame: udp4(IP4_B, IP4_B, 1, 2),
        hit: false,
    });
    // The ether cases send to MAC_A, which every other frame also does: only the eth
    // variants match on it, so the other cases use the ether rule's other side.
    if eth {
        for case in &mut cases {
            if !case.what.starts_with("ether") {
                case.frame[..6].copy_from_slice(&MAC_B);
            }
        }
    }
    for case in &cases {
        let o = run(&mut object, &program, &case.frame, None, engine);
        let want = if case.hit { on_hit } else { on_miss };
        assert_eq!(o.verdict, want, "{file} {engine:?}: {}", case.what);
    }
    if tcp || udp {
        let ports = object.map("filter_ports").unwrap();
        let dport_hits = u64::from(tcp) * 2 + u64::from(udp);
        assert_eq!(hits(ports, &port_key(80)), dport_hits, "{file} port 80");
        assert_eq!(
            hits(ports, &port_key(5353)),
            u64::from(udp),
            "{file} port 5353"
        );
    }
    if ip {
        assert_eq!(
            hits(object.map("filter_ipv4").unwrap(), &IP4_A),
            1,
            "{file}"
        );
        assert_eq!(
            hits(object.map("filter_ipv6").unwrap(), &IP6_A),
            1,
            "{file}"
        );
    }
    if eth {
        assert_eq!(
            hits(object.map("filter_ethernet").unwrap(), &MAC_A),
            1,
            "{file}"
        );
    }
    let matched = cases.iter().filter(|c| c.hit).count() as u64;
    let missed = cases.len() as u64 - matched + 1;
    assert_eq!(stats(&object, on_hit).0, matched, "{file} {engine:?} stats");
    assert_eq!(stats(&object, on_miss).0, missed, "{file} {engine:?} stats");

    // A frame cut inside the IP header: variants that parse IP abort, the others see only
    // the Ethernet header.
    // (Sent to MAC_B, which no ether rule names: the Ethernet check comes first.)
    let mut cut = tcp4(IP4_B, IP4_B, 1, 2);
    cut.truncate(20);
    cut[..6].copy_from_slice(&MAC_B);
    let o = run(&mut object, &program, &cut, None, engine);
    let parses_ip = feature != "eth";
    let want = if parses_ip { XDP_ABORTED } else { on_miss };
    assert_eq!(o.verdict, want, "{file} {engine:?}: truncated IPv4");
}

// The dispatcher.

/// `struct xdp_dispatcher_config` (version 2, 124 bytes): magic, version, the number of
/// enabled slots, frags flag, then `chain_call_actions[10]`, `run_prios[10]`,
/// `program_flags[10]`.
fn dispatcher_config(enabled: u8, chain: &[u32]) -> Vec<u8> {
    let mut conf = vec![0u8; 124];
    conf[0] = 0x58; // XDP_DISPATCHER_MAGIC ('X')
    conf[1] = 2;
    conf[2] = enabled;
    for (i, actions) in chain.iter().enumerate() {
        conf[4 + 4 * i..8 + 4 * i].copy_from_slice(&actions.to_ne_bytes());
    }
    conf
}

#[test]
fn the_dispatcher_chains_its_slots_as_configured() {
    let Some(dir) = objects() else { return };
    // An empty slot returns XDP_DISPATCHER_RETVAL (31) until libxdp replaces it.
    const RETVAL: u32 = 31;
    let cont = 1u32 << RETVAL;
    let frame = udp4(IP4_A, IP4_B, 1, 2);
    for engine in ENGINES {
        for (enabled, chain, want) in [
            (0u8, vec![], XDP_PASS),
            (1, vec![1 << XDP_PASS], RETVAL),
            (1, vec![cont], XDP_PASS),
            (3, vec![cont, cont, 1 << XDP_DROP], RETVAL),
            (10, vec![cont; 10], XDP_PASS),
            (11, vec![cont; 10], XDP_PASS),
        ] {
            let conf = dispatcher_config(enabled, &chain);
            let mut object = load(&dir, "xdp-dispatcher.o", engine, |o| {
                let rodata = o.map(".rodata").expect("the dispatcher's .rodata");
                rodata.update(&0u32.to_ne_bytes(), &conf, 0).unwrap();
            });
            let o = run(&mut object, "xdp_dispatcher", &frame, None, engine);
            assert_eq!(o.verdict, want, "{engine:?}: {enabled} slots, {chain:x?}");
            assert_eq!(o.frame, frame);
            let o = run(&mut object, "xdp_pass", &frame, None, engine);
            assert_eq!(o.verdict, XDP_PASS);
        }
    }
}

// xdpdump.

#[test]
fn xdpdump_captures_frames_of_its_interface() {
    let Some(dir) = objects() else { return };
    let frame = tcp4(IP4_A, IP4_B, 1234, 80);
    for engine in ENGINES {
        // `struct trace_configuration`: capture_if_ifindex, max_pkt_size, capture_prog_index.
        let mut trace_cfg = Vec::new();
        for v in [3u32, 32, 5] {
            trace_cfg.extend_from_slice(&v.to_ne_bytes());
        }
        let mut object = load(&dir, "xdpdump_xdp.o", engine, |o| {
            let data = o.map(".data").expect("xdpdump's .data");
            data.update(&0u32.to_ne_bytes(), &trace_cfg, 0).unwrap();
        });
        let perf = object.map("xdpdump_perf_map").unwrap().clone();
        let events = perf.perf_events().expect("a perf event array");
        // xdpdump opens one perf buffer per CPU.
        for cpu in 0..events.len() as u32 {
            events.set(cpu, 100 + cpu).unwrap();
        }
        let o = run(&mut object, "xdpdump", &frame, Some((3, 1)), engine);
        assert_eq!(o.verdict, XDP_PASS);
        let o = run(&mut object, "xdpdump", &frame, Some((4, 1)), engine);
        assert_eq!(o.verdict, XDP_PASS);
        let mut records = Vec::new();
        let n = events.consume(
            |slot, record| {
                records.push((slot, record.to_vec()));
                0
            },
            |_, lost| panic!("{lost} records lost"),
        );
        assert_eq!(n, 1, "{engine:?}: one frame came from ifindex 3");
        let (slot, record) = &records[0];
        assert_eq!(*slot as usize, current_cpu());
        // `struct pkt_trace_metadata` (20 bytes) then the first max_pkt_size bytes.
        let u32_at = |at: usize| u32::from_ne_bytes(record[at..at + 4].try_into().unwrap());
        let u16_at = |at: usize| u16::from_ne_bytes(record[at..at + 2].try_into().unwrap());
        assert_eq!(record.len(), 20 + 32);
        assert_eq!(u32_at(0), 3, "ifindex");
        assert_eq!(u32_at(4), 1, "rx_queue");
        assert_eq!(usize::from(u16_at(8)), frame.len(), "pkt_len");
        assert_eq!(u16_at(10), 32, "cap_len");
        assert_eq!(u16_at(14), 5, "prog_index");
        assert_eq!(&record[20..], &frame[..32]);
    }
}

/// xdpdump's fentry/fexit programs use `bpf_xdp_output` (121), which librbpf does not
/// have: they fail to load, each saying so.
#[test]
fn xdpdump_tracing_programs_say_why_they_do_not_load() {
    let Some(dir) = objects() else { return };
    let mut object = Object::<Vm>::open(dir.join("xdpdump_bpf.o")).unwrap();
    assert!(object.load().is_err());
    for program in object.programs() {
        let reason = program.load_error().expect("fails to load");
        assert!(
            reason.contains("function 121"),
            "{}: {reason}",
            program.name()
        );
    }
}

// The AF_XDP default programs.

#[test]
fn xsk_default_programs_redirect_to_the_queue_socket() {
    let Some(dir) = objects() else { return };
    let frame = udp4(IP4_A, IP4_B, 1, 2);
    for file in ["xsk_def_xdp_prog.o", "xsk_def_xdp_prog_5.3.o"] {
        for engine in ENGINES {
            // `refcnt` (.data) counts the sockets using the program; libxdp sets it.
            for refcnt in [1u32, 0] {
                let mut object = load(&dir, file, engine, |o| {
                    let data = o.map(".data").expect(".data");
                    data.update(&0u32.to_ne_bytes(), &refcnt.to_ne_bytes(), 0)
                        .unwrap();
                });
                // A socket bound to queue 1 (xsk_socket__create stores its fd at the queue).
                let xsks = object.map("xsks_map").unwrap();
                xsks.update(&1u32.to_ne_bytes(), &42u32.to_ne_bytes(), 0)
                    .unwrap();
                let o = run(&mut object, "xsk_def_prog", &frame, Some((2, 1)), engine);
                if refcnt == 0 {
                    assert_eq!(o.verdict, XDP_PASS, "{file} {engine:?}: no sockets");
                    assert_eq!(o.redirect, None);
                    continue;
                }
                assert_eq!(o.verdict, XDP_REDIRECT, "{file} {engine:?}");
                assert_eq!(o.redirect, Some(Redirect::Queue { queue: 1 }));
                let o = run(&mut object, "xsk_def_prog", &frame, Some((2, 3)), engine);
                assert_eq!(o.verdict, XDP_PASS, "{file} {engine:?}: queue 3");
                assert_eq!(o.redirect, None);
            }
        }
    }
}
