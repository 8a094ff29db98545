//! Program types: the kernel's `enum bpf_prog_type`, and how libbpf infers one from the
//! ELF section a program lives in (`docs/kernel-programs.md`, "Program types").
//!
//! The table follows libbpf's section definitions. A definition written `name` matches the
//! section `name` exactly; `name+` matches `name` or `name/anything`; `name/` matches
//! `name/anything`. Sections that match none of them are tried once more by prefix against
//! the definitions libbpf before 1.0 accepted as prefixes ("sloppy" mode), so that published
//! programs with sections such as `xdp1`, `xdp_vlan01` or `socket1` keep their type. What
//! matches nothing is [`ProgramType::Unspecified`].

/// The kernel's `enum bpf_prog_type` (`include/uapi/linux/bpf.h`), with its numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u32)]
#[non_exhaustive]
pub enum ProgramType {
    /// `BPF_PROG_TYPE_UNSPEC`: no type; the context is plain memory given by the host.
    #[default]
    Unspecified = 0,
    /// `BPF_PROG_TYPE_SOCKET_FILTER`: a socket filter over a `struct __sk_buff`.
    SocketFilter = 1,
    /// `BPF_PROG_TYPE_KPROBE`: kprobes and uprobes over a `struct pt_regs`.
    Kprobe = 2,
    /// `BPF_PROG_TYPE_SCHED_CLS`: a TC classifier over a `struct __sk_buff`.
    SchedCls = 3,
    /// `BPF_PROG_TYPE_SCHED_ACT`: a TC action over a `struct __sk_buff`.
    SchedAct = 4,
    /// `BPF_PROG_TYPE_TRACEPOINT`: a tracepoint over its record.
    Tracepoint = 5,
    /// `BPF_PROG_TYPE_XDP`: an XDP program over a `struct xdp_md`.
    Xdp = 6,
    /// `BPF_PROG_TYPE_PERF_EVENT`.
    PerfEvent = 7,
    /// `BPF_PROG_TYPE_CGROUP_SKB`: cgroup ingress/egress over a `struct __sk_buff`.
    CgroupSkb = 8,
    /// `BPF_PROG_TYPE_CGROUP_SOCK`.
    CgroupSock = 9,
    /// `BPF_PROG_TYPE_LWT_IN`.
    LwtIn = 10,
    /// `BPF_PROG_TYPE_LWT_OUT`.
    LwtOut = 11,
    /// `BPF_PROG_TYPE_LWT_XMIT`.
    LwtXmit = 12,
    /// `BPF_PROG_TYPE_SOCK_OPS`.
    SockOps = 13,
    /// `BPF_PROG_TYPE_SK_SKB`.
    SkSkb = 14,
    /// `BPF_PROG_TYPE_CGROUP_DEVICE`.
    CgroupDevice = 15,
    /// `BPF_PROG_TYPE_SK_MSG`.
    SkMsg = 16,
    /// `BPF_PROG_TYPE_RAW_TRACEPOINT`: raw tracepoints over their argument array.
    RawTracepoint = 17,
    /// `BPF_PROG_TYPE_CGROUP_SOCK_ADDR`.
    CgroupSockAddr = 18,
    /// `BPF_PROG_TYPE_LWT_SEG6LOCAL`.
    LwtSeg6local = 19,
    /// `BPF_PROG_TYPE_LIRC_MODE2`.
    LircMode2 = 20,
    /// `BPF_PROG_TYPE_SK_REUSEPORT`.
    SkReuseport = 21,
    /// `BPF_PROG_TYPE_FLOW_DISSECTOR`.
    FlowDissector = 22,
    /// `BPF_PROG_TYPE_CGROUP_SYSCTL`.
    CgroupSysctl = 23,
    /// `BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE`.
    RawTracepointWritable = 24,
    /// `BPF_PROG_TYPE_CGROUP_SOCKOPT`.
    CgroupSockopt = 25,
    /// `BPF_PROG_TYPE_TRACING`: fentry/fexit/tp_btf/iter.
    Tracing = 26,
    /// `BPF_PROG_TYPE_STRUCT_OPS`.
    StructOps = 27,
    /// `BPF_PROG_TYPE_EXT`.
    Ext = 28,
    /// `BPF_PROG_TYPE_LSM`.
    Lsm = 29,
    /// `BPF_PROG_TYPE_SK_LOOKUP`.
    SkLookup = 30,
    /// `BPF_PROG_TYPE_SYSCALL`.
    Syscall = 31,
    /// `BPF_PROG_TYPE_NETFILTER`.
    Netfilter = 32,
}

/// Every type, in the kernel's order (index = number).
const ALL: [ProgramType; 33] = {
    use ProgramType::*;
    [
        Unspecified,
        SocketFilter,
        Kprobe,
        SchedCls,
        SchedAct,
        Tracepoint,
        Xdp,
        PerfEvent,
        CgroupSkb,
        CgroupSock,
        LwtIn,
        LwtOut,
        LwtXmit,
        SockOps,
        SkSkb,
        CgroupDevice,
        SkMsg,
        RawTracepoint,
        CgroupSockAddr,
        LwtSeg6local,
        LircMode2,
        SkReuseport,
        FlowDissector,
        CgroupSysctl,
        RawTracepointWritable,
        CgroupSockopt,
        Tracing,
        StructOps,
        Ext,
        Lsm,
        SkLookup,
        Syscall,
        Netfilter,
    ]
};

impl TryFrom<u32> for ProgramType {
    type Error = u32;

    /// The type with the kernel's number `value`; the number back when there is none.
    fn try_from(value: u32) -> Result<Self, u32> {
        usize::try_from(value)
            .ok()
            .and_then(|i| ALL.get(i))
            .copied()
            .ok_or(value)
    }
}

impl ProgramType {
    /// The kernel's number (`enum bpf_prog_type`).
    pub fn number(self) -> u32 {
        self as u32
    }

    /// The type libbpf gives a program in section `section` (see the module docs), or
    /// [`ProgramType::Unspecified`].
    pub fn from_section(section: &str) -> ProgramType {
        SECTION_DEFS
            .iter()
            .find(|def| def.matches(section))
            .or_else(|| {
                SECTION_DEFS
                    .iter()
                    .find(|def| def.sloppy && section.starts_with(def.name))
            })
            .map_or(ProgramType::Unspecified, |def| def.kind)
    }

    /// Whether the context is a `struct __sk_buff` (socket filters, TC, cgroup skb and the
    /// other skb-based types).
    pub fn has_skb_context(self) -> bool {
        matches!(
            self,
            ProgramType::SocketFilter
                | ProgramType::SchedCls
                | ProgramType::SchedAct
                | ProgramType::CgroupSkb
                | ProgramType::LwtIn
                | ProgramType::LwtOut
                | ProgramType::LwtXmit
                | ProgramType::LwtSeg6local
                | ProgramType::SkSkb
        )
    }
}

/// One of libbpf's section definitions.
struct SectionDef {
    /// The pattern: `name`, `name+` or `name/` (see the module docs).
    name: &'static str,
    /// The type it gives.
    kind: ProgramType,
    /// Whether libbpf before 1.0 also accepted it as a bare prefix (only plain names were).
    sloppy: bool,
}

impl SectionDef {
    fn matches(&self, section: &str) -> bool {
        if let Some(prefix) = self.name.strip_suffix('+') {
            section
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        } else if self.name.ends_with('/') {
            section.starts_with(self.name)
        } else {
            section == self.name
        }
    }
}

/// Shorthand for the table below.
const fn def(name: &'static str, kind: ProgramType, sloppy: bool) -> SectionDef {
    SectionDef { name, kind, sloppy }
}

/// libbpf's section definitions, in libbpf's order (the first match wins), with the ones
/// libbpf before 1.0 matched by prefix marked `sloppy`.
#[rustfmt::skip]
const SECTION_DEFS: &[SectionDef] = {
    use ProgramType::*;
    &[
        def("socket",                   SocketFilter,          true),
        def("sk_reuseport/migrate",     SkReuseport,           true),
        def("sk_reuseport",             SkReuseport,           true),
        def("kprobe+",                  Kprobe,                false),
        def("uprobe+",                  Kprobe,                false),
        def("uprobe.s+",                Kprobe,                false),
        def("kretprobe+",               Kprobe,                false),
        def("uretprobe+",               Kprobe,                false),
        def("uretprobe.s+",             Kprobe,                false),
        def("kprobe.multi+",            Kprobe,                false),
        def("kretprobe.multi+",         Kprobe,                false),
        def("uprobe.multi+",            Kprobe,                false),
        def("uretprobe.multi+",         Kprobe,                false),
        def("uprobe.multi.s+",          Kprobe,                false),
        def("uretprobe.multi.s+",       Kprobe,                false),
        def("ksyscall+",                Kprobe,                false),
        def("kretsyscall+",             Kprobe,                false),
        def("usdt+",                    Kprobe,                false),
        def("usdt.s+",                  Kprobe,                false),
        def("tc/ingress",               SchedCls,              false),
        def("tc/egress",                SchedCls,              false),
        def("tcx/ingress",              SchedCls,              false),
        def("tcx/egress",               SchedCls,              false),
        def("tc",                       SchedCls,              true),
        def("classifier",               SchedCls,              true),
        def("action",                   SchedAct,              true),
        def("netkit/primary",           SchedCls,              false),
        def("netkit/peer",              SchedCls,              false),
        def("tracepoint+",              Tracepoint,            false),
        def("tp+",                      Tracepoint,            false),
        def("raw_tracepoint+",          RawTracepoint,         false),
        def("raw_tp+",                  RawTracepoint,         false),
        def("raw_tracepoint.w+",        RawTracepointWritable, false),
        def("raw_tp.w+",                RawTracepointWritable, false),
        def("tp_btf+",                  Tracing,               false),
        def("fentry+",                  Tracing,               false),
        def("fmod_ret+",                Tracing,               false),
        def("fexit+",                   Tracing,               false),
        def("fentry.s+",                Tracing,               false),
        def("fmod_ret.s+",              Tracing,               false),
        def("fexit.s+",                 Tracing,               false),
        def("freplace+",                Ext,                   false),
        def("lsm+",                     Lsm,                   false),
        def("lsm.s+",                   Lsm,                   false),
        def("lsm_cgroup+",              Lsm,                   false),
        def("iter+",                    Tracing,               false),
        def("iter.s+",                  Tracing,               false),
        def("syscall",                  Syscall,               false),
        def("xdp.frags/devmap",         Xdp,                   false),
        def("xdp/devmap",               Xdp,                   false),
        def("xdp.frags/cpumap",         Xdp,                   false),
        def("xdp/cpumap",               Xdp,                   false),
        def("xdp.frags",                Xdp,                   false),
        def("xdp",                      Xdp,                   true),
        def("perf_event",               PerfEvent,             true),
        def("lwt_in",                   LwtIn,                 true),
        def("lwt_out",                  LwtOut,                true),
        def("lwt_xmit",                 LwtXmit,               true),
        def("lwt_seg6local",            LwtSeg6local,          true),
        def("sockops",                  SockOps,               true),
        def("sk_skb/stream_parser",     SkSkb,                 true),
        def("sk_skb/stream_verdict",    SkSkb,                 true),
        def("sk_skb/verdict",           SkSkb,                 false),
        def("sk_skb",                   SkSkb,                 true),
        def("sk_msg",                   SkMsg,                 true),
        def("lirc_mode2",               LircMode2,             true),
        def("flow_dissector",           FlowDissector,         true),
        def("cgroup_skb/ingress",       CgroupSkb,             true),
        def("cgroup_skb/egress",        CgroupSkb,             true),
        def("cgroup/skb",               CgroupSkb,             true),
        def("cgroup/sock_create",       CgroupSock,            true),
        def("cgroup/sock_release",      CgroupSock,            true),
        def("cgroup/sock",              CgroupSock,            true),
        def("cgroup/post_bind4",        CgroupSock,            true),
        def("cgroup/post_bind6",        CgroupSock,            true),
        def("cgroup/bind4",             CgroupSockAddr,        true),
        def("cgroup/bind6",             CgroupSockAddr,        true),
        def("cgroup/connect4",          CgroupSockAddr,        true),
        def("cgroup/connect6",          CgroupSockAddr,        true),
        def("cgroup/connect_unix",      CgroupSockAddr,        false),
        def("cgroup/sendmsg4",          CgroupSockAddr,        true),
        def("cgroup/sendmsg6",          CgroupSockAddr,        true),
        def("cgroup/sendmsg_unix",      CgroupSockAddr,        false),
        def("cgroup/recvmsg4",          CgroupSockAddr,        true),
        def("cgroup/recvmsg6",          CgroupSockAddr,        true),
        def("cgroup/recvmsg_unix",      CgroupSockAddr,        false),
        def("cgroup/getpeername4",      CgroupSockAddr,        true),
        def("cgroup/getpeername6",      CgroupSockAddr,        true),
        def("cgroup/getpeername_unix",  CgroupSockAddr,        false),
        def("cgroup/getsockname4",      CgroupSockAddr,        true),
        def("cgroup/getsockname6",      CgroupSockAddr,        true),
        def("cgroup/getsockname_unix",  CgroupSockAddr,        false),
        def("cgroup/sysctl",            CgroupSysctl,          true),
        def("cgroup/getsockopt",        CgroupSockopt,         true),
        def("cgroup/setsockopt",        CgroupSockopt,         true),
        def("cgroup/dev",               CgroupDevice,          true),
        def("struct_ops+",              StructOps,             false),
        def("struct_ops.s+",            StructOps,             false),
        def("sk_lookup",                SkLookup,              true),
        def("netfilter",                Netfilter,             false),
    ]
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_get_libbpf_types() {
        use ProgramType::*;
        let cases = [
            ("xdp", Xdp),
            ("xdp.frags", Xdp),
            ("xdp/devmap", Xdp),
            ("tc", SchedCls),
            ("tc/ingress", SchedCls),
            ("classifier", SchedCls),
            ("action", SchedAct),
            ("socket", SocketFilter),
            ("cgroup_skb/ingress", CgroupSkb),
            ("kprobe/do_sys_open", Kprobe),
            ("kprobe", Kprobe),
            ("uprobe//usr/lib/libc.so.6:malloc", Kprobe),
            ("uretprobe/x", Kprobe),
            ("tracepoint/syscalls/sys_enter_openat", Tracepoint),
            ("tp/sched/sched_switch", Tracepoint),
            ("raw_tp/sched_switch", RawTracepoint),
            ("raw_tracepoint/x", RawTracepoint),
            ("fentry/tcp_v4_connect", Tracing),
            ("lsm/file_open", Lsm),
            ("syscall", Syscall),
            ("sk_skb/stream_parser", SkSkb),
            ("perf_event", PerfEvent),
        ];
        for (section, kind) in cases {
            assert_eq!(ProgramType::from_section(section), kind, "{section}");
        }
    }

    #[test]
    fn pre_1_0_prefixes_still_type_programs() {
        use ProgramType::*;
        for (section, kind) in [
            ("xdp1", Xdp),
            ("xdp_vlan01", Xdp),
            ("xdp_prog", Xdp),
            ("socket1", SocketFilter),
            ("classifier_ingress", SchedCls),
            ("tc_egress", SchedCls),
        ] {
            assert_eq!(ProgramType::from_section(section), kind, "{section}");
        }
    }

    #[test]
    fn unknown_sections_are_unspecified() {
        for section in [
            ".text",
            "license",
            "maps",
            ".maps",
            "prog",
            "foo/bar",
            "",
            "kprobe__sys_open",
        ] {
            assert_eq!(
                ProgramType::from_section(section),
                ProgramType::Unspecified,
                "{section:?}"
            );
        }
        // Exact-only definitions do not match longer names.
        assert_eq!(
            ProgramType::from_section("syscalls"),
            ProgramType::Unspecified
        );
        assert_eq!(
            ProgramType::from_section("netfilter2"),
            ProgramType::Unspecified
        );
    }

    #[test]
    fn numbers_round_trip() {
        for n in 0..33 {
            assert_eq!(ProgramType::try_from(n).map(ProgramType::number), Ok(n));
        }
        assert_eq!(ProgramType::try_from(33), Err(33));
        assert_eq!(ProgramType::Xdp.number(), 6);
        assert_eq!(ProgramType::SchedCls.number(), 3);
    }
}
