//! The kernel-program corpus (`tests/kernel_corpus/`, README.md there): XDP, TC, socket
//! filter, uprobe/kprobe and tracepoint programs written as libbpf programs are, built by
//! clang, loaded through the object API and run by the kernel's test run
//! (`rbpf::kernel::test_run`) in both engines. Every program has hand-built input frames
//! (with valid checksums) and its expected verdict, output frame, context, map contents,
//! ring-buffer and perf records and redirect; checksums of rewritten frames are verified
//! independently of the expected bytes.
//!
//! Programs that fail because librbpf lacks something are listed in `KNOWN_FAILURES` with
//! the reason; the test fails when a listed program passes, so the list stays accurate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rbpf::Vm;
use rbpf::kernel::object::Object;
use rbpf::kernel::packet::Redirect;
use rbpf::kernel::test_run::TestRunOptions;

/// (program, engine, why): programs expected to fail in that engine ("interpreter", "jit").
const KNOWN_FAILURES: &[(&str, &str, &str)] = &[];

const XDP_ABORTED: u32 = 0;
const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;
const XDP_REDIRECT: u32 = 4;
const TC_ACT_UNSPEC: u32 = u32::MAX;
const TC_ACT_OK: u32 = 0;
const TC_ACT_SHOT: u32 = 2;

const _: u32 = XDP_ABORTED;

// ---------------------------------------------------------------------------------------
// Frames, built by hand with correct checksums.

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0xaa];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0xbb];
const IP_A: [u8; 4] = [10, 0, 0, 1];
const IP_B: [u8; 4] = [10, 0, 0, 2];
const IP6_A: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const IP6_B: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_ARP: u16 = 0x0806;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;

const TCP_SYN: u8 = 0x02;
const TCP_ACK: u8 = 0x10;

/// The one's-complement sum of `data` as 16-bit big-endian words, plus `initial`, unfolded.
fn sum16(data: &[u8], initial: u32) -> u32 {
    let mut sum = u64::from(initial);
    for pair in data.chunks(2) {
        let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
        sum += u64::from(word);
    }
    while sum >> 32 != 0 {
        sum = (sum & 0xffff_ffff) + (sum >> 32);
    }
    sum as u32
}

fn fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn eth(dst: [u8; 6], src: [u8; 6], ethertype: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(64);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

fn vlan(tci: u16, ethertype: u16) -> Vec<u8> {
    [tci.to_be_bytes(), ethertype.to_be_bytes()].concat()
}

/// An IPv4 header's settings; `packet` builds header + payload with its checksum.
#[derive(Clone)]
struct Ip4 {
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    tos: u8,
    ttl: u8,
    frag_off: u16,
    options: Vec<u8>,
}

fn ip4(src: [u8; 4], dst: [u8; 4], proto: u8) -> Ip4 {
    Ip4 {
        src,
        dst,
        proto,
        tos: 0,
        ttl: 64,
        frag_off: 0x4000, // DF
        options: Vec::new(),
    }
}

impl Ip4 {
    fn packet(&self, payload: &[u8]) -> Vec<u8> {
        assert_eq!(self.options.len() % 4, 0);
        let hlen = 20 + self.options.len();
        let total = (hlen + payload.len()) as u16;
        let mut h = vec![0x40 | (hlen / 4) as u8, self.tos];
        h.extend_from_slice(&total.to_be_bytes());
        h.extend_from_slice(&0x1234u16.to_be_bytes());
        h.extend_from_slice(&self.frag_off.to_be_bytes());
        h.extend_from_slice(&[self.ttl, self.proto, 0, 0]);
        h.extend_from_slice(&self.src);
        h.extend_from_slice(&self.dst);
        h.extend_from_slice(&self.options);
        let check = fold(sum16(&h, 0));
        h[10..12].copy_from_slice(&check.to_be_bytes());
        h.extend_from_slice(payload);
        h
    }

    fn pseudo(&self, len: usize) -> u32 {
        let mut p = Vec::new();
        p.extend_from_slice(&self.src);
        p.extend_from_slice(&self.dst);
        p.extend_from_slice(&[0, self.proto]);
        p.extend_from_slice(&(len as u16).to_be_bytes());
        sum16(&p, 0)
    }
}

fn ip6_pseudo(src: [u8; 16], dst: [u8; 16], proto: u8, len: usize) -> u32 {
    let mut p = Vec::new();
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(&(len as u32).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, proto]);
    sum16(&p, 0)
}

/// A UDP datagram with its checksum over `pseudo` (the pseudo-header's sum).
fn udp(sport: u16, dport: u16, payload: &[u8], pseudo: u32) -> Vec<u8> {
    let len = (8 + payload.len()) as u16;
    let mut d = Vec::new();
    d.extend_from_slice(&sport.to_be_bytes());
    d.extend_from_slice(&dport.to_be_bytes());
    d.extend_from_slice(&len.to_be_bytes());
    d.extend_from_slice(&[0, 0]);
    d.extend_from_slice(payload);
    let mut check = fold(sum16(&d, pseudo));
    if check == 0 {
        check = 0xffff;
    }
    d[6..8].copy_from_slice(&check.to_be_bytes());
    d
}

fn tcp(sport: u16, dport: u16, flags: u8, seq: u32, payload: &[u8], pseudo: u32) -> Vec<u8> {
    let mut s = Vec::new();
    s.extend_from_slice(&sport.to_be_bytes());
    s.extend_from_slice(&dport.to_be_bytes());
    s.extend_from_slice(&seq.to_be_bytes());
    s.extend_from_slice(&0u32.to_be_bytes());
    s.extend_from_slice(&[0x50, flags]);
    s.extend_from_slice(&0xffffu16.to_be_bytes());
    s.extend_from_slice(&[0, 0, 0, 0]);
    s.extend_from_slice(payload);
    let check = fold(sum16(&s, pseudo));
    s[16..18].copy_from_slice(&check.to_be_bytes());
    s
}

fn icmp_echo(ty: u8, id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut m = vec![ty, 0, 0, 0];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(payload);
    let check = fold(sum16(&m, 0));
    m[2..4].copy_from_slice(&check.to_be_bytes());
    m
}

/// Ethernet + IPv4 (`ip`) + UDP.
fn udp4(ip: &Ip4, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let ip = Ip4 {
        proto: 17,
        ..ip.clone()
    };
    let l4 = udp(sport, dport, payload, ip.pseudo(8 + payload.len()));
    [eth(MAC_B, MAC_A, ETH_P_IP), ip.packet(&l4)].concat()
}

/// Ethernet + IPv4 (`ip`) + TCP.
fn tcp4(ip: &Ip4, sport: u16, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let ip = Ip4 {
        proto: 6,
        ..ip.clone()
    };
    let l4 = tcp(
        sport,
        dport,
        flags,
        1000,
        payload,
        ip.pseudo(20 + payload.len()),
    );
    [eth(MAC_B, MAC_A, ETH_P_IP), ip.packet(&l4)].concat()
}

/// An IPv6 header with `ext` (extension headers, `first` the first's type) before an
/// upper-layer `l4` of protocol `proto` (its checksum filled for TCP/UDP/ICMPv6).
fn ip6(first: u8, ext: &[u8], proto: u8, hop_limit: u8, l4: &[u8]) -> Vec<u8> {
    let mut l4 = l4.to_vec();
    let at = match proto {
        6 => Some(16),
        17 => Some(6),
        58 => Some(2),
        _ => None,
    };
    if let Some(at) = at {
        l4[at..at + 2].fill(0);
        let check = fold(sum16(&l4, ip6_pseudo(IP6_A, IP6_B, proto, l4.len())));
        l4[at..at + 2].copy_from_slice(&check.to_be_bytes());
    }
    let payload_len = (ext.len() + l4.len()) as u16;
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&payload_len.to_be_bytes());
    h.extend_from_slice(&[first, hop_limit]);
    h.extend_from_slice(&IP6_A);
    h.extend_from_slice(&IP6_B);
    [h, ext.to_vec(), l4].concat()
}

fn eth6(ip: Vec<u8>) -> Vec<u8> {
    [eth(MAC_B, MAC_A, ETH_P_IPV6), ip].concat()
}

fn arp() -> Vec<u8> {
    let mut f = eth([0xff; 6], MAC_A, ETH_P_ARP);
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&MAC_A);
    f.extend_from_slice(&IP_A);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&IP_B);
    f
}

/// Checks the IPv4 header checksum at `ip` and the TCP/UDP/ICMP checksum after it.
fn checksums_valid(frame: &[u8], ip: usize) -> Result<(), String> {
    let hlen = usize::from(frame[ip] & 0xf) * 4;
    let total = usize::from(u16::from_be_bytes([frame[ip + 2], frame[ip + 3]]));
    if fold(sum16(&frame[ip..ip + hlen], 0)) != 0 {
        return Err("IPv4 header checksum is wrong".into());
    }
    let proto = frame[ip + 9];
    let l4 = &frame[ip + hlen..ip + total];
    let ok = match proto {
        1 => fold(sum16(l4, 0)) == 0,
        6 | 17 => {
            if proto == 17 && l4[6..8] == [0, 0] {
                true // no checksum
            } else {
                let mut p = Vec::new();
                p.extend_from_slice(&frame[ip + 12..ip + 20]);
                p.extend_from_slice(&[0, proto]);
                p.extend_from_slice(&(l4.len() as u16).to_be_bytes());
                fold(sum16(l4, sum16(&p, 0))) == 0
            }
        }
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("L4 (protocol {proto}) checksum is wrong"))
    }
}

// ---------------------------------------------------------------------------------------
// Objects, global data, runs.

/// Where the objects come from (checked in, or rebuilt) and which engine runs them.
struct Corpus {
    dir: PathBuf,
    jit: bool,
}

/// An opened object, its file's bytes (for global variables' offsets) and the engine.
struct Obj {
    object: Object,
    bytes: Vec<u8>,
    jit: bool,
}

/// The outcome of one test run.
struct Run {
    retval: u32,
    data: Vec<u8>,
    ctx: Vec<u8>,
    redirect: Option<Redirect>,
}

fn le16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes(b[off..off + 2].try_into().unwrap())
}

fn le32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

fn le64(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

/// The section and offset of the global variable `name`, from the ELF symbol table.
fn symbol(elf: &[u8], name: &str) -> Option<(String, usize)> {
    let shoff = le64(elf, 0x28) as usize;
    let shentsize = usize::from(le16(elf, 0x3a));
    let shnum = usize::from(le16(elf, 0x3c));
    let shstrndx = usize::from(le16(elf, 0x3e));
    let sh = |i: usize| &elf[shoff + i * shentsize..shoff + (i + 1) * shentsize];
    let cstr = |at: usize| {
        let end = elf[at..].iter().position(|&b| b == 0).unwrap();
        std::str::from_utf8(&elf[at..at + end]).unwrap()
    };
    let shstr = le64(sh(shstrndx), 0x18) as usize;
    let section_name = |i: usize| cstr(shstr + le32(sh(i), 0) as usize);
    let symtab = (0..shnum).find(|&i| le32(sh(i), 4) == 2)?;
    let strtab = le64(sh(le32(sh(symtab), 0x28) as usize), 0x18) as usize;
    let (off, size) = (
        le64(sh(symtab), 0x18) as usize,
        le64(sh(symtab), 0x20) as usize,
    );
    for sym in elf[off..off + size].chunks(24) {
        if cstr(strtab + le32(sym, 0) as usize) == name {
            let shndx = usize::from(le16(sym, 6));
            return Some((section_name(shndx).to_owned(), le64(sym, 8) as usize));
        }
    }
    None
}

/// Runs `f` once for every case: `check(condition, message)`.
fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok { Ok(()) } else { Err(what()) }
}

fn eq<T: std::fmt::Debug + PartialEq>(what: &str, got: T, want: T) -> Result<(), String> {
    check(got == want, || {
        format!("{what}: got {got:?}, expected {want:?}")
    })
}

impl Corpus {
    fn open(&self, name: &str) -> Obj {
        let path = self.dir.join(format!("{name}.o"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let object = Object::<Vm>::from_bytes(bytes.clone(), name)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Obj {
            object,
            bytes,
            jit: self.jit,
        }
    }
}

impl Obj {
    /// Loads the object; `Err` when `program` did not load (its siblings' errors are theirs).
    fn load(&mut self, program: &str) -> Result<(), String> {
        let all = self.object.load();
        let p = self
            .object
            .program(program)
            .ok_or_else(|| format!("no program {program}"))?;
        if let Some(e) = p.load_error() {
            return Err(format!("load failed: {e}"));
        }
        if let Err(e) = all {
            // Another program's failure; noted for the report, not this program's.
            eprintln!("note: {e}");
        }
        Ok(())
    }

    /// The global variable `name`'s bytes (`len` of them) from its section's map.
    fn global(&self, name: &str, len: usize) -> Vec<u8> {
        let (section, off) =
            symbol(&self.bytes, name).unwrap_or_else(|| panic!("no symbol {name}"));
        let map = self.object.map(&section).unwrap();
        let mut value = vec![0u8; map.def().value_size as usize];
        map.lookup(&0u32.to_ne_bytes(), &mut value).unwrap();
        value[off..off + len].to_vec()
    }

    /// Sets the global variable `name` (before load for `.rodata`, as skeletons do).
    fn set_global(&self, name: &str, bytes: &[u8]) {
        let (section, off) =
            symbol(&self.bytes, name).unwrap_or_else(|| panic!("no symbol {name}"));
        let map = self.object.map(&section).unwrap();
        let mut value = vec![0u8; map.def().value_size as usize];
        map.lookup(&0u32.to_ne_bytes(), &mut value).unwrap();
        value[off..off + bytes.len()].copy_from_slice(bytes);
        map.update(&0u32.to_ne_bytes(), &value, 0).unwrap();
    }

    fn global_u64(&self, name: &str, index: usize) -> u64 {
        le64(&self.global(name, (index + 1) * 8), index * 8)
    }

    fn map(&self, name: &str) -> &std::sync::Arc<rbpf::maps::Map> {
        self.object.map(name).unwrap()
    }

    /// A test run of `program` over `data` (a frame, or empty) with `ctx_in`.
    fn run(&mut self, program: &str, data: &[u8], ctx_in: Option<&[u8]>) -> Result<Run, String> {
        self.run_with(program, data, ctx_in, |_| {})
    }

    fn run_with(
        &mut self,
        program: &str,
        data: &[u8],
        ctx_in: Option<&[u8]>,
        configure: impl FnOnce(&mut Vm),
    ) -> Result<Run, String> {
        let jit = self.jit;
        configure(
            self.object
                .program_mut(program)
                .unwrap()
                .vm_mut()
                .ok_or("not loaded")?,
        );
        if jit {
            // Every program a tail call may reach runs compiled too.
            let failed = self.object.compile_programs(rbpf::jit::JitMode::Basic);
            if !failed.is_empty() {
                return Err(format!("compile failed: {failed:?}"));
            }
        }
        let p = self.object.program_mut(program).unwrap();
        let ty = p.program_type();
        let mut out = vec![0u8; 4096];
        let mut ctx = vec![0u8; 256];
        let xdp_md;
        let ctx_in = match ctx_in {
            Some(c) => Some(c),
            None if ty == rbpf::kernel::program_type::ProgramType::Xdp => {
                let mut md = vec![0u8; 24];
                md[4..8].copy_from_slice(&(data.len() as u32).to_le_bytes());
                xdp_md = md;
                Some(&xdp_md[..])
            }
            None => None,
        };
        let mut opts = TestRunOptions {
            data_in: data,
            data_out: (!data.is_empty()).then_some(&mut out[..]),
            ctx_in,
            ctx_out: Some(&mut ctx),
            jit,
            ..Default::default()
        };
        // Through the object program, so tail calls are followed.
        let result = p.test_run(&mut opts);
        let (retval, data_size, ctx_size, redirect) = (
            opts.retval,
            opts.data_size_out as usize,
            opts.ctx_size_out as usize,
            opts.redirect,
        );
        result.map_err(|e| format!("test run failed: {e}"))?;
        out.truncate(data_size);
        ctx.truncate(ctx_size);
        Ok(Run {
            retval,
            data: out,
            ctx,
            redirect,
        })
    }

    /// Runs `frame` and checks the verdict and that the frame came back unchanged.
    fn verdict_unchanged(
        &mut self,
        program: &str,
        packet: &str,
        frame: &[u8],
        want: u32,
    ) -> Result<Run, String> {
        let r = self
            .run(program, frame, None)
            .map_err(|e| format!("{packet}: {e}"))?;
        eq(&format!("{packet}: retval"), r.retval, want)?;
        eq(&format!("{packet}: output frame"), &r.data[..], frame)?;
        Ok(r)
    }

    fn verdict(
        &mut self,
        program: &str,
        packet: &str,
        frame: &[u8],
        want: u32,
    ) -> Result<Run, String> {
        let r = self
            .run(program, frame, None)
            .map_err(|e| format!("{packet}: {e}"))?;
        eq(&format!("{packet}: retval"), r.retval, want)?;
        Ok(r)
    }

    /// Every ring-buffer record of `map` so far.
    fn ring_records(&self, map: &str) -> Vec<Vec<u8>> {
        let mut records = Vec::new();
        self.map(map)
            .ringbuf()
            .unwrap()
            .consume(|r| {
                records.push(r.to_vec());
                0
            })
            .unwrap();
        records
    }
}

// `__sk_buff` offsets.
const SKB_MARK: usize = 8;
const SKB_PRIORITY: usize = 32;
const SKB_INGRESS_IFINDEX: usize = 36;
const SKB_IFINDEX: usize = 40;
const SKB_CB: usize = 48;
const SKB_SIZE: usize = 192;

fn skb_ctx(fields: &[(usize, u32)]) -> Vec<u8> {
    let mut c = vec![0u8; SKB_SIZE];
    for &(off, v) in fields {
        c[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }
    c
}

// ---------------------------------------------------------------------------------------
// The cases: one function per program.

type Case = fn(&Corpus) -> Result<(), String>;

fn xdp_vlan_filter(c: &Corpus) -> Result<(), String> {
    let mut o = c.open("parse");
    o.load("xdp_vlan_filter")?;
    let p = "xdp_vlan_filter";
    let inner = udp4(&ip4(IP_A, IP_B, 17), 1000, 53, b"query");
    let untagged = inner.clone();
    let mut one = eth(MAC_B, MAC_A, ETH_P_8021Q);
    one.extend(vlan(0x2000 | 42, ETH_P_IPV6));
    one.extend(ip6(17, &[], 17, 64, &udp(1, 2, b"x", 0)));
    let qinq = [
        eth(MAC_B, MAC_A, ETH_P_8021AD),
        vlan(7, ETH_P_8021Q),
        vlan(300, ETH_P_IP),
        inner[14..].to_vec(),
    ]
    .concat();
    let triple = [
        eth(MAC_B, MAC_A, ETH_P_8021AD),
        vlan(7, ETH_P_8021Q),
        vlan(8, ETH_P_8021Q),
        vlan(9, ETH_P_IP),
        inner[14..].to_vec(),
    ]
    .concat();
    let cut = [eth(MAC_B, MAC_A, ETH_P_8021Q), vec![0, 5]].concat();
    o.verdict_unchanged(p, "untagged IPv4", &untagged, XDP_PASS)?;
    o.verdict_unchanged(p, "802.1Q IPv6", &one, XDP_PASS)?;
    eq(
        "inner_vid after 802.1Q",
        le16(&o.global("inner_vid", 2), 0),
        42,
    )?;
    o.verdict_unchanged(p, "QinQ IPv4", &qinq, XDP_PASS)?;
    eq(
        "inner_vid after QinQ",
        le16(&o.global("inner_vid", 2), 0),
        300,
    )?;
    o.verdict_unchanged(p, "three tags", &triple, XDP_DROP)?;
    o.verdict_unchanged(p, "ARP", &arp(), XDP_DROP)?;
    o.verdict_unchanged(p, "truncated tag", &cut, XDP_DROP)?;
    let depths: Vec<u64> = (0..3).map(|i| o.global_u64("vlan_depth_seen", i)).collect();
    eq("vlan_depth_seen", depths, vec![2, 1, 2])
}

fn xdp_ipv4_options(c: &Corpus) -> Result<(), String> {
    let mut o = c.open("parse");
    o.load("xdp_ipv4_options")?;
    let p = "xdp_ipv4_options";
    let dport = |o: &Obj| le16(&o.global("last_udp_dport", 2), 0);
    let plain = udp4(&ip4(IP_A, IP_B, 17), 999, 53, b"dns");
    o.verdict_unchanged(p, "UDP without options", &plain, XDP_PASS)?;
    eq("last_udp_dport", dport(&o), 53)?;
    let mut alert = ip4(IP_A, IP_B, 17);
    alert.options = vec![1, 1, 0x94, 4, 0, 0, 0, 0]; // NOP NOP router-alert EOL pad
    o.verdict_unchanged(
        p,
        "UDP with router alert",
        &udp4(&alert, 9, 5000, b"x"),
        XDP_PASS,
    )?;
    eq("last_udp_dport past options", dport(&o), 5000)?;
    let mut lsrr = ip4(IP_A, IP_B, 17);
    lsrr.options = vec![0x83, 7, 4, 192, 168, 0, 1, 0];
    o.verdict_unchanged(p, "LSRR", &udp4(&lsrr, 9, 6000, b"x"), XDP_DROP)?;
    let mut ssrr = ip4(IP_A, IP_B, 6);
    ssrr.options = vec![1, 0x89, 6, 4, 1, 2, 3, 0];
    o.verdict_unchanged(
        p,
        "SSRR after NOP",
        &tcp4(&ssrr, 9, 80, TCP_SYN, b""),
        XDP_DROP,
    )?;
    let mut bad = ip4(IP_A, IP_B, 17);
    bad.options = vec![0x44, 1, 0, 0];
    o.verdict_unchanged(p, "option length 1", &udp4(&bad, 9, 7000, b"x"), XDP_DROP)?;
    let mut short = plain.clone();
    short[14] = 0x44;
    o.verdict_unchanged(p, "IHL 4", &short, XDP_DROP)?;
    o.verdict_unchanged(p, "ARP", &arp(), XDP_PASS)?;
    eq("last_udp_dport unchanged by drops", dport(&o), 5000)
}

fn xdp_ipv6_exthdr(c: &Corpus) -> Result<(), String> {
    let mut o = c.open("parse");
    o.load("xdp_ipv6_exthdr")?;
    let p = "xdp_ipv6_exthdr";
    let end = |o: &Obj| {
        (
            o.global("ipv6_l4_proto", 1)[0],
            le16(&o.global("ipv6_l4_off", 2), 0),
        )
    };
    let telnet = tcp(5000, 23, TCP_SYN, 1, b"", 0);
    let web = tcp(5000, 80, TCP_SYN, 1, b"", 0);
    o.verdict_unchanged(p, "TCP to 23", &eth6(ip6(6, &[], 6, 64, &telnet)), XDP_DROP)?;
    eq("end of walk", end(&o), (6, 54))?;
    // Hop-by-hop (8 bytes, PadN) then destination options (16 bytes), then TCP.
    let hbh = [60, 0, 1, 4, 0, 0, 0, 0];
    let dst = [6, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let frame = eth6(ip6(0, &[&hbh[..], &dst[..]].concat(), 6, 64, &web));
    o.verdict_unchanged(p, "HBH+DSTOPTS TCP to 80", &frame, XDP_PASS)?;
    eq("end of walk", end(&o), (6, 78))?;
    let frag = [17, 0, 0, 0, 0, 0, 0, 9];
    let frame = eth6(ip6(44, &frag, 17, 64, &udp(1, 2, b"frag", 0)));
    o.verdict_unchanged(p, "fragment UDP", &frame, XDP_PASS)?;
    eq("end of walk", end(&o), (17, 62))?;
    let routing = [6, 0, 0, 0, 0, 0, 0, 0];
    let frame = eth6(ip6(43, &routing, 6, 64, &telnet));
    o.verdict_unchanged(p, "routing TCP to 23", &frame, XDP_DROP)?;
    eq("end of walk", end(&o), (6, 62))?;
    let ah = [
        6, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let frame = eth6(ip6(51, &ah, 6, 64, &web));
    o.verdict_unchanged(p, "AH TCP to 80", &frame, XDP_PASS)?;
    eq("end of walk", end(&o), (6, 78))?;
    let frame = eth6(ip6(59, &[], 59, 64, &[]));
    o.verdict_unchanged(p, "no next header", &frame, XDP_DROP)?;
    o.verdict_unchanged(
        p,
        "IPv4",
        &tcp4(&ip4(IP_A, IP_B, 6), 1, 23, TCP_SYN, b""),
        XDP_PASS,
    )?;
    Ok(())
}

fn xdp_loop_payload(c: &Corpus) -> Result<(), String> {
    let mut o = c.open("parse");
    o.load("xdp_loop_payload")?;
    let p = "xdp_loop_payload";
    let payload: Vec<u8> = (1..=20).collect();
    o.verdict_unchanged(
        p,
        "UDP 20 bytes",
        &udp4(&ip4(IP_A, IP_B, 17), 1, 2, &payload),
        XDP_PASS,
    )?;
    eq("payload_sum", le32(&o.global("payload_sum", 4), 0), 210)?;
    eq("payload_len", le32(&o.global("payload_len", 4), 0), 20)?;
    let big: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
    let want: u32 = big.iter().map(|&b| u32::from(b)).sum();
    o.verdict_unchanged(
        p,
        "UDP 300 bytes",
        &udp4(&ip4(IP_A, IP_B, 17), 1, 2, &big),
        XDP_PASS,
    )?;
    eq("payload_sum", le32(&o.global("payload_sum", 4), 0), want)?;
    let mut bad = udp4(&ip4(IP_A, IP_B, 17), 1, 2, b"abc");
    bad[38..40].copy_from_slice(&4u16.to_be_bytes());
    o.verdict_unchanged(p, "UDP length 4", &bad, XDP_DROP)?;
    Ok(())
}

fn xdp_subprogs(c: &Corpus) -> Result<(), String> {
    let mut o = c.open("parse");
    o.load("xdp_subprogs")?;
    let p = "xdp_subprogs";
    let ip = ip4(IP_A, IP_B, 6);
    o.verdict_unchanged(
        p,
        "SYN to 22",
        &tcp4(&ip, 40000, 22, TCP_SYN, b""),
        XDP_DROP,
    )?;
    o.verdict_unchanged(
        p,
        "SYN to 8080",
        &tcp4(&ip, 40000, 8080, TCP_SYN, b""),
        XDP_PASS,
    )?;
    o.verdict_unchanged(
        p,
        "SYN-ACK from 22",
        &tcp4(&ip, 40000, 22, TCP_SYN | TCP_ACK, b""),
        XDP_PASS,
    )?;
    let mut opts = ip.clone();
    opts.options = vec![1, 1, 1, 0];
    o.verdict_unchanged(
        p,
        "SYN to 25 past options",
        &tcp4(&opts, 1, 25, TCP_SYN, b""),
        XDP_DROP,
    )?;
    o.verdict_unchanged(p, "UDP", &udp4(&ip, 1, 22, b""), XDP_PASS)?;
    o.verdict_unchanged(p, "ARP", &arp(), XDP_PASS)?;
    Ok(())
}

fn xdp_icmp_echo(c: &Corpus) -> Result<(), String> {
    let mut o = c.open("rewrite");
    o.load("xdp_icmp_echo")?;
    let p = "xdp_icmp_echo";
    let ping = [
        eth(MAC_B, MAC_A, ETH_P_IP),
        ip4(IP_A, IP_B, 1).packet(&icmp_echo(8, 0x77, 3, b"abcdefgh")),
    ]
    .concat();
    let pong = [
        eth(MAC_A, MAC_B, ETH_P_IP),
        ip4(IP_B, IP_A, 1).packet(&icmp_echo(0, 0x77, 3, b"abcdefgh")),
    ]
    .concat();
    let r = o.verdict(p, "echo request", &ping, XDP_TX)?;
    checksums_valid(&r.data, 14).map_err(|e| format!("echo reply: {e}"))?;
    eq("echo reply frame", r.data, pong.clone())?;
    o.verdict_unchanged(p, "echo reply", &pong, XDP_PASS)?;
    o.verdict_unchanged(p, "UDP", &udp4(&ip4(IP_A, IP_B, 17), 1, 2, b""), XDP_PASS)?;
    Ok(())
}

fn xdp_udp_reflect(c: &Corpus) -> Result<(), String> {
    let mut o = c.open("rewrite");
    o.load("xdp_udp_reflect")?;
    let p = "xdp_udp_reflect";
    let echo = udp4(&ip4(IP_A, IP_B, 17), 40000, 7, b"hello, echo");
    let mut back = udp4(&ip4(IP_B, IP_A, 17), 7, 40000, b"hello, echo");
    back[..12].copy_from_slice(&[MAC_A, MAC_B].concat());
    let r = o.verdict(p, "UDP to 7", &echo, XDP_TX)?;
    checksums_valid(&r.data, 14).map_err(|e| format!("reflected: {e}"))?;
    eq("reflected frame", r.data, back)?;
    o.verdict_unchanged(
        p,
        "UDP to 8",
        &udp4(&ip4(IP_A, IP_B, 17), 1, 8, b"x"),
        XDP_PASS,
    )?;
    Ok(())
}

fn tc_ttl_decrement(c: &Corpus) -> Result<(), String> {
    let mut o = c.open("rewrite");
    o.load("tc_ttl_decrement")?;
    let p = "tc_ttl_decrement";
    let mut ip = ip4(IP_A, IP_B, 17);
    let frame = udp4(&ip, 1, 2, b"ttl");
    ip.ttl = 63;
    let want = udp4(&ip, 1, 2, b"ttl");
    let r = o.verdict(p, "TTL 64", &frame, TC_ACT_OK)?;
    checksums_valid(&r.data, 14).map_err(|e| format!("TTL 64: {e}"))?;
    eq("TTL 64: output frame", r.data, want)?;
    ip.ttl = 1;
    o.verdict_unchanged(p, "TTL 1", &udp4(&ip, 1, 2, b"ttl"), TC_ACT_SHOT)?;
    o.verdict_unchanged(
        p,
        "IPv6",
        &eth6(ip6(17, &[], 17, 1, &udp(1, 2, b"", 0))),
        TC_ACT_OK,
    )?;
    Ok(())
}

fn tc_dnat(c: &Corpus) -> Result<(), String> {
    let mut o = c.open("rewrite");
    o.set_global("dnat_from", &IP_B);
    o.set_global("dnat_to", &[192, 168, 1, 10]);
    o.load("tc_dnat")?;
    let p = "tc_dnat";
    let frame = tcp4(
        &ip4(IP_A, IP_B, 6),
        40000,
        80,
        TCP_ACK,
        b"GET / HTTP/1.0\r\n\r\n",
    );
    let want = tcp4(
        &ip4(IP_A, [192, 168, 1, 10], 6),
        40000,
        80,
        TCP_ACK,
        b"GET / HTTP/1.0\r\n\r\n",
    );
    let r = o.verdict(p, "TCP to 10.0.0.2", &frame, TC_ACT_OK)?;
    checksums_valid(&r.data, 14).map_err(|e| format!("NATed TCP: {e}"))?;
    eq("NATed frame", r.data, want)?;
    o.verdict_unchanged(
        p,
        "TCP to 10.0.0.1",
        &tcp4(&ip4(IP_B, IP_A, 6), 1, 2, 0, b""),
        TC_ACT_OK,
    )?;
    o.verdict_unchanged(
        p,
        "UDP to 10.0.0.2",
        &udp4(&ip4(IP_A, IP_B, 17), 1, 2, b""),
        TC_ACT_OK,
    )?;
    Ok(())
}

fn tc_set_dscp(c: &Corpus) -> Result<(), String> {
    let mut o = c.open("rewrite");
    o.load("tc_set_dscp")?;
    let p = "tc_set_dscp";
    for (tos, want_tos) in [(0u8, 0xb8u8), (0x03, 0xbb), (0x28, 0xb8)] {
        let mut ip = ip4(IP_A, IP_B, 6);
        ip.tos = tos;
        let frame = tcp4(&ip, 1, 2, TCP_SYN, b"");
        ip.tos = want_tos;
        let want = tcp4(&ip, 1, 2, TCP_SYN, b"");
        let packet = format!("TOS {tos:#x}");
        let r = o.verdict(p, &packet, &frame, TC_ACT_OK)?;
        checksums_valid(&r.data, 14).map_err(|e| format!("{packet}: {e}"))?;
        eq(&format!("{packet}: frame"), r.data, want)?;
        eq(
            &format!("{packet}: priority"),
            le32(&r.ctx, SKB_PRIORITY),
            6,
        )?;
    }
    let r = o.verdict_unchanged(p, "ARP", &arp(), TC_ACT_OK)?;
    eq("ARP: priority", le32(&r.ctx, SKB_PRIORITY), 0)
}

fn tc_udp_port(c: &Corpus) -> Result<(), String> {
    let mut o = c.open("rewrite");
    o.load("tc_udp_port")?;
    let p = "tc_udp_port";
    let ip = ip4(IP_A, IP_B, 17);
    let r = o.verdict(p, "UDP to 5353", &udp4(&ip, 5353, 5353, b"mdns"), TC_ACT_OK)?;
    checksums_valid(&r.data, 14).map_err(|e| format!("UDP to 5353: {e}"))?;
    eq("UDP to 5353: frame", r.data, udp4(&ip, 5353, 53, b"mdns"))?;
    let mut nosum = udp4(&ip, 1, 5353, b"mdns");
    nosum[40..42].fill(0);
    let mut want = udp4(&ip, 1, 53, b"mdns");
    want[40..42].fill(0);
    let r = o.verdict(p, "UDP to 5353 without checksum", &nosum, TC_ACT_OK)?;
    eq(
        "UDP without checksum: frame (checksum stays 0)",
        r.data,
        want,
    )?;
    o.verdict_unchanged(p, "UDP to 80", &udp4(&ip, 1, 80, b""), TC_ACT_OK)?;
    let mut opts = ip.clone();
    opts.options = vec![1, 1, 1, 0];
    o.verdict_unchanged(p, "UDP with options", &udp4(&opts, 1, 5353, b""), TC_ACT_OK)?;
    Ok(())
}

fn flow_key(frame: &[u8]) -> Vec<u8> {
    let ip = 14;
    let l4 = ip + usize::from(frame[ip] & 0xf) * 4;
    [
        &frame[ip + 12..ip + 20],
        &frame[l4..l4 + 4],
        &[frame[ip + 9], 0, 0, 0],
    ]
    .concat()
}

fn xdp_flow_count(c: &Corpus) -> Result<(), String> {
    let mut o = c.open("state");
    o.load("xdp_flow_count")?;
    let p = "xdp_flow_count";
    let ip = ip4(IP_A, IP_B, 6);
    let a: Vec<Vec<u8>> = (0..3)
        .map(|n| tcp4(&ip, 40000, 443, TCP_ACK, &vec![0x55; n * 10]))
        .collect();
    let b = udp4(&ip4(IP_B, IP_A, 17), 53, 40000, b"answer");
    for (i, f) in a.iter().enumerate() {
        o.verdict_unchanged(p, &format!("flow A #{i}"), f, XDP_PASS)?;
    }
    o.verdict_unchanged(p, "flow B", &b, XDP_PASS)?;
    o.verdict_unchanged(p, "ARP", &arp(), XDP_PASS)?;
    let flows = o.map("flows");
    let stats = |frame: &[u8]| {
        let mut v = [0u8; 16];
        flows
            .lookup(&flow_key(frame), &mut v)
            .map(|()| (le64(&v, 0), le64(&v, 8)))
            .map_err(|e| format!("flow lookup: {e:?}"))
    };
    let bytes_a: u64 = a.iter().map(|f| f.len() as u64).sum();
    eq("flow A stats", stats(&a[0])?, (3, bytes_a))?;
    eq("flow B stats", stats(&b)?, (1, b.len() as u64))?;
    eq("flows", flows.keys::<[u8; 16]>().unwrap().len(), 2)
}

fn xdp_percpu_proto(c: &Corpus) -> Result<(), String> {
    let mut o = c.open("state");
    o.load("xdp_percpu_proto")?;
    let p = "xdp_percpu_proto";
    let ip = ip4(IP_A, IP_B, 6);
    o.verdict_unchanged(p, "TCP", &tcp4(&ip, 1, 2, TCP_SYN, b""), XDP_PASS)?;
    o.verdict_unchanged(p, "TCP", &tcp4(&ip, 3, 4, TCP_SYN, b""), XDP_PASS)?;
    o.verdict_unchanged(
        p,
        "IPv6 UDP",
        &eth6(ip6(17, &[], 17, 9, &udp(1, 2, b"", 0))),
        XDP_PASS,
    )?;
    let ping = [
        eth(MAC_B, MAC_A, ETH_P_IP),
        ip.clone().packet(&icmp_echo(8, 1, 1, b"")),
    ]
    .concat();
    let mut ping = ping;
    ping[23] = 1;
    o.verdict(p, "ICMP", &ping, XDP_PASS)?;
    o.verdict_unchanged(p, "ARP", &arp(), XDP_PASS)?;
    let map = o.map("proto_count");
    let total = |proto: u32| -> u64 { map.get_per_cpu::<u32, u64>(&proto).unwrap().iter().sum() };
    eq(
        "counts of protocols 1, 6, 17, 0",
        [total(1), total(6), total(17), total(0)],
        [1, 2, 1, 0],
    )
}

fn xdp_lru_flows(c: &Corpus) -> Result<(), String> {
    let mut o = c.open("state");
    o.load("xdp_lru_flows")?;
    let p = "xdp_lru_flows";
    let flow = |port: u16| udp4(&ip4(IP_A, IP_B, 17), port, 53, b"q");
    let (a, b, cc) = (flow(1), flow(2), flow(3));
    o.verdict_unchanged(p, "A (new)", &a, XDP_DROP)?;
    o.verdict_unchanged(p, "A (known)", &a, XDP_PASS)?;
    o.verdict_unchanged(p, "B (new)", &b, XDP_DROP)?;
    o.verdict_unchanged(p, "A (known, most recent)", &a, XDP_PASS)?;
    o.verdict_unchanged(p, "C (new, evicts B)", &cc, XDP_DROP)?;
    o.verdict_unchanged(p, "A (still known)", &a, XDP_PASS)?;
    o.verdict_unchanged(p, "B (evicted: new again)", &b, XDP_DROP)?;
    let mut keys = o.map("recent").keys::<[u8; 16]>().unwrap();
    keys.sort();
    let mut want = vec![flow_key(&a), flow_key(&b)];
    want.sort();
    eq(
        "recent keys",
        keys.iter().map(|k| k.to_vec()).collect::<Vec<_>>(),
        want,
    )
}

fn xdp_rate_limit(c: &Corpus) -> Result<(), String> {
    let mut o = c.open("state");
    o.set_global("burst", &2u32.to_le_bytes());
    o.set_global("window_ns", &60_000_000_000u64.to_le_bytes());
    o.load("xdp_rate_limit")?;
    let p = "xdp_rate_limit";
    let from = |src: [u8; 4]| udp4(&ip4(src, IP_B, 17), 1, 2, b"");
    for (i, want) in [XDP_PASS, XDP_PASS, XDP_DROP, XDP_DROP]
        .into_iter()
        .enumerate()
    {
        o.verdict_unchanged(p, &format!("10.0.0.1 #{i}"), &from(IP_A), want)?;
    }
    o.verdict_unchanged(p, "10.0.0.3", &from([10, 0, 0, 3]), XDP_PASS)?;
    eq("rate_dropped", o.global_u64("rate_dropped", 0), 2)?;
    let mut b = [0u8; 16];
    o.map("buckets")
        .lookup(&IP_A, &mut b)
        .map_err(|e| format!("bucket: {e:?}"))?;
    eq("bucket count", le32(&b, 8), 2)
}

fn xdp_port_blocklist(c: &Corpus) -> Result<(), String> {
    let mut o = c.open("state");
    let ports: Vec<u8> = [22u16, 23, 0, 0]
        .iter()
        .flat_map(|p| p.to_le_bytes())
        .collect();
    o.set_global("blocked_ports", &ports);
    o.set_global("blocked_count", &2u32.to_le_bytes());
    o.set_global("config_version", &9u32.to_le_bytes());
    o.load("xdp_port_blocklist")?;
    let p = "xdp_port_blocklist";
    let ip = ip4(IP_A, IP_B, 6);
    o.verdict_unchanged(p, "TCP to 23", &tcp4(&ip, 1, 23, TCP_SYN, b""), XDP_DROP)?;
    o.verdict_unchanged(p, "UDP to 22", &udp4(&ip, 1, 22, b""), XDP_DROP)?;
    o.verdict_unchanged(
        p,
        "TCP to 23 again",
        &tcp4(&ip, 2, 23, TCP_SYN, b""),
        XDP_DROP,
    )?;
    o.verdict_unchanged(p, "TCP to 80", &tcp4(&ip, 1, 80, TCP_SYN, b""), XDP_PASS)?;
    o.verdict_unchanged(
        p,
        "TCP to 0 (beyond blocked_count)",
        &tcp4(&ip, 1, 0, TCP_SYN, b""),
        XDP_PASS,
    )?;
    let hits: Vec<u64> = (0..4).map(|i| o.global_u64("blocked_hits", i)).collect();
    eq("blocked_hits", hits, vec![1, 2, 0, 0])?;
    eq(
        "seen_version (.data)",
        le32(&o.global("seen_version", 4), 0),
        9,
    )
}

fn xdp_ringbuf_syn(c: &Corpus) -> Result<(), String> {
    let mut o = c.open("events");
    o.load("xdp_ringbuf_syn")?;
    let p = "xdp_ringbuf_syn";
    let ip = ip4(IP_A, IP_B, 6);
    o.verdict_unchanged(p, "SYN", &tcp4(&ip, 40000, 443, TCP_SYN, b""), XDP_PASS)?;
    o.verdict_unchanged(p, "ACK", &tcp4(&ip, 40000, 443, TCP_ACK, b""), XDP_PASS)?;
    o.verdict_unchanged(
        p,
        "SYN-ACK",
        &tcp4(&ip, 443, 40000, TCP_SYN | TCP_ACK, b""),
        XDP_PASS,
    )?;
    o.verdict_unchanged(p, "UDP", &udp4(&ip, 1, 2, b""), XDP_PASS)?;
    let want = [
        &IP_A[..],
        &IP_B[..],
        &40000u16.to_be_bytes(),
        &443u16.to_be_bytes(),
        &1000u32.to_le_bytes(),
    ]
    .concat();
    eq(
        "syn_events records",
        o.ring_records("syn_events"),
        vec![want],
    )
}

fn xdp_ringbuf_drop(c: &Corpus) -> Result<(), String> {
    let mut o = c.open("events");
    o.load("xdp_ringbuf_drop")?;
    let p = "xdp_ringbuf_drop";
    let a = arp();
    o.verdict_unchanged(p, "ARP", &a, XDP_DROP)?;
    o.verdict_unchanged(p, "IPv4", &udp4(&ip4(IP_A, IP_B, 17), 1, 2, b""), XDP_PASS)?;
    let mut want = (a.len() as u32).to_le_bytes().to_vec();
    want.extend_from_slice(&ETH_P_ARP.to_le_bytes());
    want.extend_from_slice(&a[..10]);
    eq("drops records", o.ring_records("drops"), vec![want])
}

fn xdp_perf_sample(c: &Corpus) -> Result<(), String> {
    let mut o = c.open("events");
    o.load("xdp_perf_sample")?;
    let p = "xdp_perf_sample";
    let f1 = udp4(&ip4(IP_A, IP_B, 17), 1, 2, b"");
    let f2 = arp();
    o.verdict_unchanged(p, "UDP", &f1, XDP_PASS)?;
    o.verdict_unchanged(p, "ARP", &f2, XDP_PASS)?;
    let mut records = Vec::new();
    o.map("samples").perf_events().unwrap().consume(
        |slot, r| {
            records.push((slot, r.to_vec()));
            0
        },
        |_, _| {},
    );
    let slot = records.first().map_or(0, |r| r.0);
    let sample = |ty: u16, len: usize| {
        [
            &ty.to_le_bytes()[..],
            &(len as u16).to_le_bytes(),
            &slot.to_le_bytes(),
        ]
        .concat()
    };
    eq(
        "perf records (slot, bytes)",
        records,
        vec![
            (slot, sample(ETH_P_IP, f1.len())),
            (slot, sample(ETH_P_ARP, f2.len())),
        ],
    )
}

fn xdp_tail_dispatch(c: &Corpus) -> Result<(), String> {
    let mut o = c.open("events");
    o.load("xdp_tail_dispatch")?;
    let p = "xdp_tail_dispatch";
    for (slot, target) in [(0u32, "xdp_stage_ipv4"), (1, "xdp_stage_ipv6")] {
        let fd = o
            .object
            .program(target)
            .and_then(|t| t.fd())
            .ok_or("stage not loaded")?;
        o.map("dispatch").set(&slot, &fd, 0).unwrap();
    }
    let handled = |o: &Obj| le32(&o.global("handled_by", 4), 0);
    let mut frag = ip4(IP_A, IP_B, 17);
    frag.frag_off = 0x2000; // MF
    o.verdict_unchanged(p, "IPv4 fragment", &udp4(&frag, 1, 2, b""), XDP_DROP)?;
    eq("handled_by after IPv4", handled(&o), 4)?;
    o.verdict_unchanged(p, "IPv4", &udp4(&ip4(IP_A, IP_B, 17), 1, 2, b""), XDP_PASS)?;
    o.verdict_unchanged(
        p,
        "IPv6 hop limit 1",
        &eth6(ip6(17, &[], 17, 1, &udp(1, 2, b"", 0))),
        XDP_DROP,
    )?;
    eq("handled_by after IPv6", handled(&o), 6)?;
    o.verdict_unchanged(p, "ARP", &arp(), XDP_PASS)?;
    eq("handled_by after ARP", handled(&o), 99)
}

fn xdp_stage_ipv4(c: &Corpus) -> Result<(), String> {
    let mut o = c.open("events");
    o.load("xdp_stage_ipv4")?;
    let p = "xdp_stage_ipv4";
    let mut frag = ip4(IP_A, IP_B, 17);
    frag.frag_off = 0x0010; // offset 128 bytes
    o.verdict_unchanged(p, "later fragment", &udp4(&frag, 1, 2, b""), XDP_DROP)?;
    o.verdict_unchanged(
        p,
        "DF datagram",
        &udp4(&ip4(IP_A, IP_B, 17), 1, 2, b""),
        XDP_PASS,
    )?;
    eq("handled_by", le32(&o.global("handled_by", 4), 0), 4)
}

fn xdp_stage_ipv6(c: &Corpus) -> Result<(), String> {
    let mut o = c.open("events");
    o.load("xdp_stage_ipv6")?;
    let p = "xdp_stage_ipv6";
    o.verdict_unchanged(
        p,
        "hop limit 0",
        &eth6(ip6(17, &[], 17, 0, &udp(1, 2, b"", 0))),
        XDP_DROP,
    )?;
    o.verdict_unchanged(
        p,
        "hop limit 2",
        &eth6(ip6(17, &[], 17, 2, &udp(1, 2, b"", 0))),
        XDP_PASS,
    )?;
    eq("handled_by", le32(&o.global("handled_by", 4), 0), 6)
}

fn xdp_redirect_devmap(c: &Corpus) -> Result<(), String> {
    let mut o = c.open("events");
    o.load("xdp_redirect_devmap")?;
    let p = "xdp_redirect_devmap";
    o.map("ports").set(&3u32, &7u32, 0).unwrap();
    let mut to3 = udp4(&ip4(IP_A, IP_B, 17), 1, 2, b"");
    to3[5] = 0x0b; // ...:0b → slot 3
    let r = o.verdict_unchanged(p, "to slot 3", &to3, XDP_REDIRECT)?;
    eq(
        "redirect of slot 3",
        r.redirect,
        Some(Redirect::Ifindex {
            ifindex: 7,
            flags: 0,
        }),
    )?;
    let mut to5 = to3.clone();
    to5[5] = 0x05;
    let r = o.verdict_unchanged(p, "to empty slot 5", &to5, XDP_DROP)?;
    eq("redirect of slot 5", r.redirect, None)
}

fn xdp_redirect_ifindex(c: &Corpus) -> Result<(), String> {
    let mut o = c.open("events");
    o.set_global("mirror_ifindex", &5u32.to_le_bytes());
    o.load("xdp_redirect_ifindex")?;
    let p = "xdp_redirect_ifindex";
    let r = o.verdict_unchanged(
        p,
        "IPv6",
        &eth6(ip6(17, &[], 17, 9, &udp(1, 2, b"", 0))),
        XDP_REDIRECT,
    )?;
    eq(
        "redirect of IPv6",
        r.redirect,
        Some(Redirect::Ifindex {
            ifindex: 5,
            flags: 0,
        }),
    )?;
    let r = o.verdict_unchanged(p, "IPv4", &udp4(&ip4(IP_A, IP_B, 17), 1, 2, b""), XDP_PASS)?;
    eq("redirect of IPv4", r.redirect, None)
}

fn xdp_decap_ipip(c: &Corpus) -> Result<(), String> {
    let mut o = c.open("adjust");
    o.load("xdp_decap_ipip")?;
    let p = "xdp_decap_ipip";
    let inner = udp4(&ip4([172, 16, 0, 1], [172, 16, 0, 2], 17), 1, 2, b"inner");
    let outer = [
        eth(MAC_B, MAC_A, ETH_P_IP),
        ip4(IP_A, IP_B, 4).packet(&inner[14..]),
    ]
    .concat();
    let r = o.verdict(p, "IPIP", &outer, XDP_PASS)?;
    checksums_valid(&r.data, 14).map_err(|e| format!("decapsulated: {e}"))?;
    eq("decapsulated frame", r.data, inner.clone())?;
    o.verdict_unchanged(p, "plain UDP", &inner, XDP_PASS)?;
    Ok(())
}

fn xdp_push_vlan(c: &Corpus) -> Result<(), String> {
    let mut o = c.open("adjust");
    o.set_global("push_vid", &300u16.to_le_bytes());
    o.load("xdp_push_vlan")?;
    let p = "xdp_push_vlan";
    let frame = udp4(&ip4(IP_A, IP_B, 17), 1, 2, b"tag me");
    let want = [
        eth(MAC_B, MAC_A, ETH_P_8021Q),
        vlan(300, ETH_P_IP),
        frame[14..].to_vec(),
    ]
    .concat();
    let r = o.verdict(p, "untagged", &frame, XDP_PASS)?;
    eq("tagged frame", r.data, want.clone())?;
    o.verdict_unchanged(p, "already tagged", &want, XDP_PASS)?;
    Ok(())
}

fn xdp_truncate(c: &Corpus) -> Result<(), String> {
    let mut o = c.open("adjust");
    o.load("xdp_truncate")?;
    let p = "xdp_truncate";
    let long = udp4(&ip4(IP_A, IP_B, 17), 1, 2, &[0x42; 100]);
    let r = o.verdict(p, "142 bytes", &long, XDP_PASS)?;
    eq("truncated frame", r.data, long[..64].to_vec())?;
    eq("ctx_out data_end", le32(&r.ctx, 4), 64)?;
    o.verdict_unchanged(
        p,
        "60 bytes",
        &udp4(&ip4(IP_A, IP_B, 17), 1, 2, &[1; 18]),
        XDP_PASS,
    )?;
    Ok(())
}

fn xdp_meta_mark(c: &Corpus) -> Result<(), String> {
    let mut o = c.open("adjust");
    o.load("xdp_meta_mark")?;
    let p = "xdp_meta_mark";
    let mut ip = ip4(IP_A, IP_B, 17);
    ip.tos = 0x28;
    let frame = udp4(&ip, 1, 2, b"");
    let r = o.verdict(p, "DSCP 10", &frame, XDP_PASS)?;
    let want = [&0xab00_000au32.to_ne_bytes()[..], &frame].concat();
    eq("metadata + frame", r.data, want)?;
    eq("ctx_out data (metadata length)", le32(&r.ctx, 0), 4)
}

fn tc_meta_read(c: &Corpus) -> Result<(), String> {
    let mut o = c.open("adjust");
    o.load("tc_meta_read")?;
    let p = "tc_meta_read";
    let frame = udp4(&ip4(IP_A, IP_B, 17), 1, 2, b"");
    let r = o.verdict_unchanged(p, "no metadata", &frame, TC_ACT_OK)?;
    eq("mark without metadata", le32(&r.ctx, SKB_MARK), 1)
}

fn tc_classify(c: &Corpus) -> Result<(), String> {
    let mut o = c.open("skb");
    o.load("tc_classify")?;
    let p = "tc_classify";
    let big6 = eth6(ip6(17, &[], 17, 9, &udp(1, 2, &[7; 1100], 0)));
    let small4 = udp4(&ip4(IP_A, IP_B, 17), 1, 2, b"");
    let ctx = skb_ctx(&[(SKB_IFINDEX, 4)]);
    let r = o
        .run(p, &big6, Some(&ctx))
        .map_err(|e| format!("big IPv6: {e}"))?;
    eq("big IPv6: retval", r.retval, TC_ACT_OK)?;
    eq(
        "big IPv6: (priority, mark, cb[0], len)",
        (
            le32(&r.ctx, SKB_PRIORITY),
            le32(&r.ctx, SKB_MARK),
            le32(&r.ctx, SKB_CB),
            big6.len(),
        ),
        (3, 0x200, 2, 1162),
    )?;
    let dead = skb_ctx(&[(SKB_MARK, 0xdead)]);
    let r = o
        .run(p, &small4, Some(&dead))
        .map_err(|e| format!("marked 0xdead: {e}"))?;
    eq("marked 0xdead: retval", r.retval, TC_ACT_SHOT)?;
    let r = o
        .run(p, &small4, Some(&ctx))
        .map_err(|e| format!("small IPv4: {e}"))?;
    eq("small IPv4: retval", r.retval, TC_ACT_OK)?;
    eq(
        "small IPv4: (priority, mark, cb[0])",
        (
            le32(&r.ctx, SKB_PRIORITY),
            le32(&r.ctx, SKB_MARK),
            le32(&r.ctx, SKB_CB),
        ),
        (0, 0, 0),
    )
}

fn tc_cb_accumulate(c: &Corpus) -> Result<(), String> {
    let mut o = c.open("skb");
    o.load("tc_cb_accumulate")?;
    let p = "tc_cb_accumulate";
    let frame = udp4(&ip4(IP_A, IP_B, 17), 1, 2, &[0; 18]);
    let ctx = skb_ctx(&[(SKB_CB, 3), (SKB_CB + 4, 1), (SKB_INGRESS_IFINDEX, 9)]);
    let r = o
        .run(p, &frame, Some(&ctx))
        .map_err(|e| format!("60 bytes: {e}"))?;
    eq("retval", r.retval, 181)?;
    // ctx_out holds the fields the kernel copies back: cb[], not len.
    eq(
        "(cb[1], cb[4])",
        (le32(&r.ctx, SKB_CB + 4), le32(&r.ctx, SKB_CB + 16)),
        (181, 9),
    )?;
    let ctx = skb_ctx(&[(SKB_CB + 4, 0x100)]);
    let r = o
        .run(p, &frame, Some(&ctx))
        .map_err(|e| format!("cb[1] 0x100: {e}"))?;
    eq("cb[1] 0x100: retval", r.retval, TC_ACT_UNSPEC)
}

fn sock_http(c: &Corpus) -> Result<(), String> {
    let mut o = c.open("skb");
    o.load("sock_http")?;
    let p = "sock_http";
    let ip = ip4(IP_A, IP_B, 6);
    let https = tcp4(&ip, 40000, 443, TCP_SYN, b"");
    o.verdict_unchanged(p, "TCP to 443", &https, https.len() as u32)?;
    o.verdict_unchanged(p, "TCP to 22", &tcp4(&ip, 40000, 22, TCP_SYN, b""), 0)?;
    o.verdict_unchanged(p, "UDP to 443", &udp4(&ip, 40000, 443, b""), 0)?;
    let mut opts = ip.clone();
    opts.options = vec![1, 1, 1, 0];
    let f = tcp4(&opts, 1, 80, TCP_ACK, b"GET");
    o.verdict_unchanged(p, "TCP to 80 past options", &f, f.len() as u32)?;
    let mut frag = ip.clone();
    frag.frag_off = 0x0001;
    o.verdict_unchanged(p, "later fragment", &tcp4(&frag, 1, 80, 0, b""), 0)?;
    o.verdict_unchanged(
        p,
        "IPv6",
        &eth6(ip6(6, &[], 6, 9, &tcp(1, 80, 0, 0, b"", 0))),
        0,
    )?;
    Ok(())
}

fn sock_dns(c: &Corpus) -> Result<(), String> {
    let mut o = c.open("skb");
    o.load("sock_dns")?;
    let p = "sock_dns";
    o.verdict_unchanged(
        p,
        "DNS from 10.0.0.1",
        &udp4(&ip4(IP_A, IP_B, 17), 53, 999, b"a"),
        128,
    )?;
    o.verdict_unchanged(
        p,
        "DNS from 192.168.0.1",
        &udp4(&ip4([192, 168, 0, 1], IP_B, 17), 53, 999, b"a"),
        0,
    )?;
    let mut opts = ip4([10, 9, 9, 9], IP_B, 17);
    opts.options = vec![1, 1, 1, 0, 1, 1, 1, 0];
    o.verdict_unchanged(p, "DNS past options", &udp4(&opts, 53, 999, b"a"), 128)?;
    o.verdict_unchanged(
        p,
        "UDP from 54",
        &udp4(&ip4(IP_A, IP_B, 17), 54, 53, b"a"),
        0,
    )?;
    o.verdict_unchanged(
        p,
        "TCP from 53",
        &tcp4(&ip4(IP_A, IP_B, 6), 53, 999, 0, b""),
        0,
    )?;
    Ok(())
}

fn sock_ipv6(c: &Corpus) -> Result<(), String> {
    let mut o = c.open("skb");
    o.load("sock_ipv6")?;
    let p = "sock_ipv6";
    let f = eth6(ip6(17, &[], 17, 9, &udp(1, 2, &[0; 12], 0)));
    let r = o.verdict_unchanged(p, "IPv6 UDP", &f, u32::MAX)?;
    eq("IPv6 UDP: cb[0]", le32(&r.ctx, SKB_CB), 20)?;
    let ping = [128, 0, 0, 0, 0, 1, 0, 1];
    let r = o.verdict_unchanged(p, "ICMPv6", &eth6(ip6(58, &[], 58, 9, &ping)), u32::MAX)?;
    eq("ICMPv6: cb[0]", le32(&r.ctx, SKB_CB), 8)?;
    o.verdict_unchanged(
        p,
        "IPv6 TCP",
        &eth6(ip6(6, &[], 6, 9, &tcp(1, 2, 0, 0, b"", 0))),
        0,
    )?;
    o.verdict_unchanged(p, "IPv4 UDP", &udp4(&ip4(IP_A, IP_B, 17), 1, 2, b""), 0)?;
    Ok(())
}

// x86-64 `struct pt_regs` (168 bytes) offsets of the argument registers.
const PT_REGS_SIZE: usize = 168;
const PT_RDX: usize = 96;
const PT_RSI: usize = 104;
const PT_RDI: usize = 112;

fn pt_regs(args: [u64; 3]) -> Vec<u8> {
    let mut r = vec![0u8; PT_REGS_SIZE];
    for (off, v) in [PT_RDI, PT_RSI, PT_RDX].into_iter().zip(args) {
        r[off..off + 8].copy_from_slice(&v.to_le_bytes());
    }
    r
}

fn uprobe_open(c: &Corpus) -> Result<(), String> {
    let mut o = c.open("trace");
    o.load("uprobe_open")?;
    let p = "uprobe_open";
    // The traced process's memory: a path the probe may read and one it may not.
    let traced: Box<[u8]> = b"/etc/hosts\0".to_vec().into_boxed_slice();
    let secret: Box<[u8]> = b"/root/key\0".to_vec().into_boxed_slice();
    let (base, len) = (traced.as_ptr() as u64, traced.len() as u64);
    let allow = move |vm: &mut Vm| {
        vm.set_probe_read(Some(Box::new(move |addr, n| {
            addr >= base && addr.saturating_add(n) <= base + len
        })));
    };
    let regs = pt_regs([base, 0x241, 0o644]);
    let r = o
        .run_with(p, &[], Some(&regs), allow)
        .map_err(|e| format!("open(/etc/hosts): {e}"))?;
    eq("retval", r.retval, 0)?;
    eq("ctx_out", r.ctx, regs)?;
    let regs = pt_regs([secret.as_ptr() as u64, 0, 0]);
    o.run_with(p, &[], Some(&regs), allow)
        .map_err(|e| format!("open(secret): {e}"))?;
    let records = o.ring_records("opens");
    let record = |flags: i32, mode: u64, path_len: i32, word: u32, path: &[u8]| {
        let mut v = std::process::id().to_le_bytes().to_vec();
        v.extend_from_slice(&flags.to_le_bytes());
        v.extend_from_slice(&mode.to_le_bytes());
        v.extend_from_slice(&path_len.to_le_bytes());
        v.extend_from_slice(&word.to_le_bytes());
        let mut p = path.to_vec();
        p.resize(32, 0);
        v.extend(p);
        v
    };
    eq(
        "open events",
        records,
        vec![
            record(
                0x241,
                0o644,
                11,
                u32::from_le_bytes(*b"/etc"),
                b"/etc/hosts\0",
            ),
            record(0, 0, -14, 0, b""),
        ],
    )?;
    drop((traced, secret));
    Ok(())
}

fn kprobe_write(c: &Corpus) -> Result<(), String> {
    let mut o = c.open("trace");
    o.load("kprobe_write")?;
    let p = "kprobe_write";
    for size in [100u64, 23] {
        let r = o
            .run(p, &[], Some(&pt_regs([3, 0x1000, size])))
            .map_err(|e| format!("write({size}): {e}"))?;
        eq("retval", r.retval, 0)?;
    }
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() } as u32;
    let calls = o.map("calls");
    eq("calls[tid]", calls.get::<u32, u64>(&tid).ok(), Some(2))?;
    eq(
        "calls[0] (bytes)",
        calls.get::<u32, u64>(&0).ok(),
        Some(123),
    )
}

fn tp_sched_switch(c: &Corpus) -> Result<(), String> {
    let mut o = c.open("trace");
    o.load("tp_sched_switch")?;
    let p = "tp_sched_switch";
    let args = |next_pid: i32, comm: &[u8], state: i64| {
        let mut a = vec![0u8; 64];
        a[0..2].copy_from_slice(&314u16.to_le_bytes());
        a[24..28].copy_from_slice(&1i32.to_le_bytes());
        a[32..40].copy_from_slice(&state.to_le_bytes());
        a[40..40 + comm.len()].copy_from_slice(comm);
        a[56..60].copy_from_slice(&next_pid.to_le_bytes());
        a
    };
    for (pid, comm, state, want) in [
        (100, &b"sshd"[..], 0, 1),
        (100, b"sshd", 1, 1),
        (200, b"bash", 2, 0),
    ] {
        let r = o
            .run(p, &[], Some(&args(pid, comm, state)))
            .map_err(|e| format!("switch to {pid}: {e}"))?;
        eq(&format!("switch to {pid}: retval"), r.retval, want)?;
    }
    let switches = o.map("switches");
    eq(
        "switches",
        (
            switches.get::<i32, u64>(&100).ok(),
            switches.get::<i32, u64>(&200).ok(),
        ),
        (Some(2), Some(1)),
    )?;
    let states: Vec<u64> = (0..3).map(|i| o.global_u64("prev_states", i)).collect();
    eq("prev_states", states, vec![1, 1, 1])
}

const CASES: &[(&str, Case)] = &[
    ("xdp_vlan_filter", xdp_vlan_filter),
    ("xdp_ipv4_options", xdp_ipv4_options),
    ("xdp_ipv6_exthdr", xdp_ipv6_exthdr),
    ("xdp_loop_payload", xdp_loop_payload),
    ("xdp_subprogs", xdp_subprogs),
    ("xdp_icmp_echo", xdp_icmp_echo),
    ("xdp_udp_reflect", xdp_udp_reflect),
    ("tc_ttl_decrement", tc_ttl_decrement),
    ("tc_dnat", tc_dnat),
    ("tc_set_dscp", tc_set_dscp),
    ("tc_udp_port", tc_udp_port),
    ("xdp_flow_count", xdp_flow_count),
    ("xdp_percpu_proto", xdp_percpu_proto),
    ("xdp_lru_flows", xdp_lru_flows),
    ("xdp_rate_limit", xdp_rate_limit),
    ("xdp_port_blocklist", xdp_port_blocklist),
    ("xdp_ringbuf_syn", xdp_ringbuf_syn),
    ("xdp_ringbuf_drop", xdp_ringbuf_drop),
    ("xdp_perf_sample", xdp_perf_sample),
    ("xdp_tail_dispatch", xdp_tail_dispatch),
    ("xdp_stage_ipv4", xdp_stage_ipv4),
    ("xdp_stage_ipv6", xdp_stage_ipv6),
    ("xdp_redirect_devmap", xdp_redirect_devmap),
    ("xdp_redirect_ifindex", xdp_redirect_ifindex),
    ("xdp_decap_ipip", xdp_decap_ipip),
    ("xdp_push_vlan", xdp_push_vlan),
    ("xdp_truncate", xdp_truncate),
    ("xdp_meta_mark", xdp_meta_mark),
    ("tc_meta_read", tc_meta_read),
    ("tc_classify", tc_classify),
    ("tc_cb_accumulate", tc_cb_accumulate),
    ("sock_http", sock_http),
    ("sock_dns", sock_dns),
    ("sock_ipv6", sock_ipv6),
    ("uprobe_open", uprobe_open),
    ("kprobe_write", kprobe_write),
    ("tp_sched_switch", tp_sched_switch),
];

// ---------------------------------------------------------------------------------------
// Driving.

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kernel_corpus")
}

/// Runs every case in both engines; returns the failures, keyed by (program, engine).
fn run_all(dir: &Path) -> BTreeMap<(String, &'static str), String> {
    let mut failures = BTreeMap::new();
    for (engine, jit) in [("interpreter", false), ("jit", true)] {
        let corpus = Corpus {
            dir: dir.to_owned(),
            jit,
        };
        for (name, case) in CASES {
            if let Err(e) = case(&corpus) {
                failures.insert((name.to_string(), engine), e);
            }
        }
    }
    failures
}

/// Compares the failures with `KNOWN_FAILURES`, both ways.
fn check_failures(failures: &BTreeMap<(String, &'static str), String>) {
    let mut problems = Vec::new();
    for ((program, engine), error) in failures {
        if !KNOWN_FAILURES
            .iter()
            .any(|&(p, e, _)| p == program && e == *engine)
        {
            problems.push(format!("{program} ({engine}): {error}"));
        }
    }
    for &(program, engine, why) in KNOWN_FAILURES {
        if let Some(error) = failures.get(&(program.to_owned(), engine)) {
            eprintln!("known failure: {program} ({engine}): {error} [{why}]");
        }
        if !failures.contains_key(&(program.to_owned(), engine)) {
            problems.push(format!(
                "{program} ({engine}) is listed in KNOWN_FAILURES ({why}) but passes: remove it"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn corpus_has_at_least_30_programs() {
    assert!(CASES.len() >= 30, "{} programs", CASES.len());
    let mut names: Vec<&str> = CASES.iter().map(|c| c.0).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), CASES.len(), "a program is listed twice");
    // Every program of every object has a case.
    for entry in std::fs::read_dir(corpus_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "o") {
            let object = Object::<Vm>::open(&path).unwrap();
            for p in object.programs() {
                assert!(
                    names.contains(&p.name()),
                    "{}: program {} has no case",
                    path.display(),
                    p.name()
                );
            }
        }
    }
}

#[test]
fn corpus_runs_in_both_engines() {
    check_failures(&run_all(&corpus_dir()));
}

/// Rebuilds the objects with the installed clang and libbpf-dev (the Makefile's flags) and
/// runs the whole corpus on the fresh objects. Skips only where clang or libbpf-dev is
/// missing, never in CI (`CI` set).
#[test]
fn corpus_rebuilt_with_clang_gives_the_same_results() {
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    let have_clang = std::process::Command::new(&clang)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let have_libbpf = Path::new("/usr/include/bpf/bpf_helpers.h").exists();
    if !(have_clang && have_libbpf) {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install clang and libbpf-dev"
        );
        eprintln!("skipping: clang or libbpf-dev is not installed");
        return;
    }
    let triple = std::process::Command::new("gcc")
        .arg("-dumpmachine")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let out = std::env::temp_dir().join(format!("rbpf-corpus-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    for entry in std::fs::read_dir(corpus_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "c") {
            continue;
        }
        let stem = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let status = std::process::Command::new(&clang)
            .args(["-target", "bpf", "-O2", "-g", "-Wall", "-Werror"])
            .arg("-D__TARGET_ARCH_x86")
            .arg(format!("-I/usr/include/{triple}"))
            .arg("-c")
            .arg(&path)
            .arg("-o")
            .arg(out.join(format!("{stem}.o")))
            .status()
            .unwrap();
        assert!(status.success(), "clang failed on {stem}.c");
    }
    check_failures(&run_all(&out));
    std::fs::remove_dir_all(&out).ok();
}
