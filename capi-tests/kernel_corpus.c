/* The kernel-program corpus (tests/kernel_corpus/, see README.md there) through the C API
 * only, as a C host would drive it: each checked-in object is opened with rbpf_object_open,
 * configured through its maps and global data (.rodata before load, as a skeleton does),
 * loaded, and each program runs with rbpf_prog_test_run_opts in the interpreter (jit = 0)
 * and the JIT (jit = 1) on frames built here byte by byte with correct checksums. Checked:
 * verdicts, output frames (IPv4 and TCP/UDP/ICMP checksums of rewritten frames verified on
 * their own), ctx_out fields, map contents, global variables, ring-buffer and perf records
 * and redirects. The expectations are those of tests/kernel_corpus.rs.
 *
 * Every failure names the program, the engine and the packet, and dumps the input frame. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "capi_test.h"
#include <rbpf.h>

#define XDP_ABORTED 0
#define XDP_DROP 1
#define XDP_PASS 2
#define XDP_TX 3
#define XDP_REDIRECT 4
#define TC_ACT_UNSPEC 0xffffffffu
#define TC_ACT_OK 0
#define TC_ACT_SHOT 2

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86dd
#define ETH_P_ARP 0x0806
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88a8

#define TCP_SYN 0x02
#define TCP_ACK 0x10

/* struct __sk_buff offsets and size. */
#define SKB_MARK 8
#define SKB_PRIORITY 32
#define SKB_INGRESS_IFINDEX 36
#define SKB_IFINDEX 40
#define SKB_CB 48
#define SKB_SIZE 192

/* x86-64 struct pt_regs: its size and the argument registers. */
#define PT_REGS_SIZE 168
#define PT_RDX 96
#define PT_RSI 104
#define PT_RDI 112

static const uint8_t MAC_A[6] = {0x02, 0, 0, 0, 0, 0xaa};
static const uint8_t MAC_B[6] = {0x02, 0, 0, 0, 0, 0xbb};
static const uint8_t IP_A[4] = {10, 0, 0, 1};
static const uint8_t IP_B[4] = {10, 0, 0, 2};
static const uint8_t IP6_A[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
static const uint8_t IP6_B[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};

/* A string literal's bytes and length, without the NUL, as a (payload, length) pair. */
#define STR(s) (const uint8_t*)(s), (sizeof(s) - 1)

/* ------------------------------------------------------------------------------------- */
/* Frames, built by hand with correct checksums. */

#define FRAME_MAX 2048

struct frame
{
    size_t len;
    uint8_t b[FRAME_MAX];
};

static void
put_bytes(struct frame* f, const void* bytes, size_t n)
{
    if (f->len + n > FRAME_MAX) {
        fprintf(stderr, "frame builder: %zu bytes do not fit\n", f->len + n);
        abort();
    }
    if (n > 0) {
        memcpy(f->b + f->len, bytes, n);
    }
    f->len += n;
}

static void
put_u8(struct frame* f, uint8_t v)
{
    put_bytes(f, &v, 1);
}

static void
put_be16(struct frame* f, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    put_bytes(f, b, 2);
}

static void
put_be32(struct frame* f, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    put_bytes(f, b, 4);
}

static void
store_be16(uint8_t* at, uint16_t v)
{
    at[0] = (uint8_t)(v >> 8);
    at[1] = (uint8_t)v;
}

static uint16_t
load_be16(const uint8_t* at)
{
    return (uint16_t)(at[0] << 8 | at[1]);
}

static uint16_t
le16(const uint8_t* at)
{
    return (uint16_t)(at[0] | at[1] << 8);
}

static uint32_t
le32(const uint8_t* at)
{
    return (uint32_t)at[0] | (uint32_t)at[1] << 8 | (uint32_t)at[2] << 16 | (uint32_t)at[3] << 24;
}

static uint64_t
le64(const uint8_t* at)
{
    return (uint64_t)le32(at) | (uint64_t)le32(at + 4) << 32;
}

static void
store_le32(uint8_t* at, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        at[i] = (uint8_t)(v >> (8 * i));
    }
}

static void
store_le64(uint8_t* at, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        at[i] = (uint8_t)(v >> (8 * i));
    }
}

/* The one's-complement sum of `data` as big-endian 16-bit words plus `initial`, unfolded. */
static uint32_t
sum16(const uint8_t* data, size_t len, uint32_t initial)
{
    uint64_t sum = initial;
    for (size_t i = 0; i < len; i += 2) {
        sum += (uint64_t)data[i] << 8 | (i + 1 < len ? data[i + 1] : 0);
    }
    while (sum >> 32) {
        sum = (sum & 0xffffffffu) + (sum >> 32);
    }
    return (uint32_t)sum;
}

/* Folds a sum to 16 bits and complements it: the checksum field's value. */
static uint16_t
fold(uint32_t sum)
{
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return (uint16_t)~sum;
}

static void
put_eth(struct frame* f, const uint8_t dst[6], const uint8_t src[6], uint16_t ethertype)
{
    put_bytes(f, dst, 6);
    put_bytes(f, src, 6);
    put_be16(f, ethertype);
}

static void
put_vlan(struct frame* f, uint16_t tci, uint16_t ethertype)
{
    put_be16(f, tci);
    put_be16(f, ethertype);
}

/* An IPv4 header's settings. */
struct ip4
{
    uint8_t src[4];
    uint8_t dst[4];
    uint8_t proto;
    uint8_t tos;
    uint8_t ttl;
    uint16_t frag_off;
    size_t options_len; /* a multiple of 4 */
    uint8_t options[40];
};

static struct ip4
ip4(const uint8_t src[4], const uint8_t dst[4], uint8_t proto)
{
    struct ip4 ip;
    memset(&ip, 0, sizeof(ip));
    memcpy(ip.src, src, 4);
    memcpy(ip.dst, dst, 4);
    ip.proto = proto;
    ip.ttl = 64;
    ip.frag_off = 0x4000; /* DF */
    return ip;
}

static void
ip4_options(struct ip4* ip, const uint8_t* options, size_t len)
{
    memcpy(ip->options, options, len);
    ip->options_len = len;
}

/* Appends the IPv4 header (checksum filled) and `payload`. */
static void
put_ip4(struct frame* f, const struct ip4* ip, const uint8_t* payload, size_t len)
{
    size_t at = f->len;
    size_t hlen = 20 + ip->options_len;
    put_u8(f, (uint8_t)(0x40 | hlen / 4));
    put_u8(f, ip->tos);
    put_be16(f, (uint16_t)(hlen + len));
    put_be16(f, 0x1234);
    put_be16(f, ip->frag_off);
    put_u8(f, ip->ttl);
    put_u8(f, ip->proto);
    put_be16(f, 0);
    put_bytes(f, ip->src, 4);
    put_bytes(f, ip->dst, 4);
    put_bytes(f, ip->options, ip->options_len);
    store_be16(f->b + at + 10, fold(sum16(f->b + at, hlen, 0)));
    put_bytes(f, payload, len);
}

/* The sum of the IPv4 pseudo-header for an upper-layer length `len`. */
static uint32_t
ip4_pseudo(const struct ip4* ip, size_t len)
{
    uint8_t p[12];
    memcpy(p, ip->src, 4);
    memcpy(p + 4, ip->dst, 4);
    p[8] = 0;
    p[9] = ip->proto;
    store_be16(p + 10, (uint16_t)len);
    return sum16(p, sizeof(p), 0);
}

static uint32_t
ip6_pseudo(uint8_t proto, size_t len)
{
    uint8_t p[40];
    memcpy(p, IP6_A, 16);
    memcpy(p + 16, IP6_B, 16);
    p[32] = (uint8_t)(len >> 24);
    p[33] = (uint8_t)(len >> 16);
    p[34] = (uint8_t)(len >> 8);
    p[35] = (uint8_t)len;
    p[36] = p[37] = p[38] = 0;
    p[39] = proto;
    return sum16(p, sizeof(p), 0);
}

/* Appends a UDP datagram with its checksum over `pseudo` (0 becomes 0xffff). */
static void
put_udp(
    struct frame* f,
    uint16_t sport,
    uint16_t dport,
    const uint8_t* payload,
    size_t len,
    uint32_t pseudo)
{
    size_t at = f->len;
    put_be16(f, sport);
    put_be16(f, dport);
    put_be16(f, (uint16_t)(8 + len));
    put_be16(f, 0);
    put_bytes(f, payload, len);
    uint16_t check = fold(sum16(f->b + at, f->len - at, pseudo));
    store_be16(f->b + at + 6, check == 0 ? 0xffff : check);
}

/* Appends a 20-byte TCP header and `payload` with the checksum over `pseudo`. */
static void
put_tcp(
    struct frame* f,
    uint16_t sport,
    uint16_t dport,
    uint8_t flags,
    uint32_t seq,
    const uint8_t* payload,
    size_t len,
    uint32_t pseudo)
{
    size_t at = f->len;
    put_be16(f, sport);
    put_be16(f, dport);
    put_be32(f, seq);
    put_be32(f, 0);
    put_u8(f, 0x50);
    put_u8(f, flags);
    put_be16(f, 0xffff);
    put_be32(f, 0); /* checksum, urgent pointer */
    put_bytes(f, payload, len);
    store_be16(f->b + at + 16, fold(sum16(f->b + at, f->len - at, pseudo)));
}

static void
put_icmp_echo(
    struct frame* f,
    uint8_t type,
    uint16_t id,
    uint16_t seq,
    const uint8_t* payload,
    size_t len)
{
    size_t at = f->len;
    put_u8(f, type);
    put_u8(f, 0);
    put_be16(f, 0);
    put_be16(f, id);
    put_be16(f, seq);
    put_bytes(f, payload, len);
    store_be16(f->b + at + 2, fold(sum16(f->b + at, f->len - at, 0)));
}

/* A whole frame: Ethernet (B <- A) + IPv4 `ip` (protocol set to UDP) + UDP. */
static void
udp4(
    struct frame* f,
    struct ip4 ip,
    uint16_t sport,
    uint16_t dport,
    const uint8_t* payload,
    size_t len)
{
    struct frame l4 = {0};
    ip.proto = 17;
    put_udp(&l4, sport, dport, payload, len, ip4_pseudo(&ip, 8 + len));
    f->len = 0;
    put_eth(f, MAC_B, MAC_A, ETH_P_IP);
    put_ip4(f, &ip, l4.b, l4.len);
}

/* A whole frame: Ethernet (B <- A) + IPv4 `ip` (protocol set to TCP) + TCP, seq 1000. */
static void
tcp4(
    struct frame* f,
    struct ip4 ip,
    uint16_t sport,
    uint16_t dport,
    uint8_t flags,
    const uint8_t* payload,
    size_t len)
{
    struct frame l4 = {0};
    ip.proto = 6;
    put_tcp(&l4, sport, dport, flags, 1000, payload, len, ip4_pseudo(&ip, 20 + len));
    f->len = 0;
    put_eth(f, MAC_B, MAC_A, ETH_P_IP);
    put_ip4(f, &ip, l4.b, l4.len);
}

/* Appends an IPv6 header (A -> B) with extension headers `ext` (`first` the first's type)
 * before the upper-layer `l4` of protocol `proto`, whose TCP/UDP/ICMPv6 checksum is filled. */
static void
put_ip6(
    struct frame* f,
    uint8_t first,
    const uint8_t* ext,
    size_t ext_len,
    uint8_t proto,
    uint8_t hop_limit,
    const uint8_t* l4,
    size_t l4_len)
{
    struct frame upper = {0};
    put_bytes(&upper, l4, l4_len);
    int at = proto == 6 ? 16 : proto == 17 ? 6 : proto == 58 ? 2 : -1;
    if (at >= 0) {
        store_be16(upper.b + at, 0);
        store_be16(upper.b + at, fold(sum16(upper.b, upper.len, ip6_pseudo(proto, upper.len))));
    }
    put_be32(f, 0x60000000);
    put_be16(f, (uint16_t)(ext_len + upper.len));
    put_u8(f, first);
    put_u8(f, hop_limit);
    put_bytes(f, IP6_A, 16);
    put_bytes(f, IP6_B, 16);
    put_bytes(f, ext, ext_len);
    put_bytes(f, upper.b, upper.len);
}

/* A whole frame: Ethernet (B <- A, IPv6) + put_ip6. */
static void
eth6(
    struct frame* f,
    uint8_t first,
    const uint8_t* ext,
    size_t ext_len,
    uint8_t proto,
    uint8_t hop_limit,
    const struct frame* l4)
{
    f->len = 0;
    put_eth(f, MAC_B, MAC_A, ETH_P_IPV6);
    put_ip6(f, first, ext, ext_len, proto, hop_limit, l4->b, l4->len);
}

/* A bare UDP datagram (checksum over no pseudo-header; put_ip6 redoes it). */
static struct frame
udp_only(uint16_t sport, uint16_t dport, const uint8_t* payload, size_t len)
{
    struct frame l4 = {0};
    put_udp(&l4, sport, dport, payload, len, 0);
    return l4;
}

static struct frame
tcp_only(uint16_t sport, uint16_t dport, uint8_t flags, uint32_t seq)
{
    struct frame l4 = {0};
    put_tcp(&l4, sport, dport, flags, seq, NULL, 0, 0);
    return l4;
}

/* An ARP request from A (10.0.0.1) for 10.0.0.2, broadcast. */
static void
arp(struct frame* f)
{
    static const uint8_t broadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t head[8] = {0, 1, 8, 0, 6, 4, 0, 1};
    static const uint8_t zero[6] = {0};
    f->len = 0;
    put_eth(f, broadcast, MAC_A, ETH_P_ARP);
    put_bytes(f, head, 8);
    put_bytes(f, MAC_A, 6);
    put_bytes(f, IP_A, 4);
    put_bytes(f, zero, 6);
    put_bytes(f, IP_B, 4);
}

/* Checks the IPv4 header checksum at `ip` and the TCP/UDP/ICMP checksum after it, from the
 * frame alone. Returns NULL, or what is wrong. */
static const char*
checksums_error(const uint8_t* frame, size_t len, size_t ip)
{
    if (len < ip + 20) {
        return "frame too short for IPv4";
    }
    size_t hlen = (size_t)(frame[ip] & 0xf) * 4;
    size_t total = load_be16(frame + ip + 2);
    if (hlen < 20 || total < hlen || ip + total > len) {
        return "IPv4 lengths do not fit the frame";
    }
    if (fold(sum16(frame + ip, hlen, 0)) != 0) {
        return "IPv4 header checksum is wrong";
    }
    uint8_t proto = frame[ip + 9];
    const uint8_t* l4 = frame + ip + hlen;
    size_t l4_len = total - hlen;
    if (proto == 1 && fold(sum16(l4, l4_len, 0)) != 0) {
        return "ICMP checksum is wrong";
    }
    if (proto == 6 || proto == 17) {
        if (proto == 17 && l4_len >= 8 && l4[6] == 0 && l4[7] == 0) {
            return NULL; /* UDP without a checksum */
        }
        uint8_t pseudo[12];
        memcpy(pseudo, frame + ip + 12, 8);
        pseudo[8] = 0;
        pseudo[9] = proto;
        store_be16(pseudo + 10, (uint16_t)l4_len);
        if (fold(sum16(l4, l4_len, sum16(pseudo, sizeof(pseudo), 0))) != 0) {
            return proto == 6 ? "TCP checksum is wrong" : "UDP checksum is wrong";
        }
    }
    return NULL;
}

/* The builders and the checksum check against a known value and on damaged frames, so that
 * a passing corpus is not a passing builder checking itself. */
static void
check_builders(void)
{
    /* The IPv4 header of RFC 1071 fame (examples-c/hello.c): checksum 0xb861. */
    static const uint8_t header[20] = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                                       0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
    CHECK_EQ(fold(sum16(header, sizeof(header), 0)), 0xb861);
    struct frame f, ping, l4 = {0};
    struct ip4 ip = ip4(IP_A, IP_B, 1);
    put_icmp_echo(&l4, 8, 1, 2, STR("abc"));
    ping.len = 0;
    put_eth(&ping, MAC_B, MAC_A, ETH_P_IP);
    put_ip4(&ping, &ip, l4.b, l4.len);
    CHECK(checksums_error(ping.b, ping.len, 14) == NULL);
    ping.b[ping.len - 1] ^= 1;
    CHECK_STR(checksums_error(ping.b, ping.len, 14), "ICMP checksum is wrong");
    tcp4(&f, ip, 1, 2, TCP_SYN, STR("payload"));
    CHECK(checksums_error(f.b, f.len, 14) == NULL);
    CHECK_EQ(f.len, 14 + 20 + 20 + 7);
    f.b[29] = 5; /* another source address, with a right IPv4 header checksum */
    store_be16(f.b + 24, 0);
    store_be16(f.b + 24, fold(sum16(f.b + 14, 20, 0)));
    CHECK_STR(checksums_error(f.b, f.len, 14), "TCP checksum is wrong");
    udp4(&f, ip, 1, 2, STR("odd"));
    CHECK(checksums_error(f.b, f.len, 14) == NULL);
    f.b[22] -= 1; /* TTL */
    CHECK_STR(checksums_error(f.b, f.len, 14), "IPv4 header checksum is wrong");
    udp4(&f, ip, 1, 2, STR("odd"));
    f.b[f.len - 1] ^= 0x80;
    CHECK_STR(checksums_error(f.b, f.len, 14), "UDP checksum is wrong");
    f.b[40] = f.b[41] = 0;
    CHECK(checksums_error(f.b, f.len, 14) == NULL);
}

/* ------------------------------------------------------------------------------------- */
/* Reporting: every failure names the program, the engine and the packet. */

static const char* cur_program = "?";
static const char* cur_engine = "?";
static const char* cur_packet = "-";
static const uint8_t* cur_frame;
static size_t cur_frame_len;

static void
hexdump(const char* label, const uint8_t* bytes, size_t len)
{
    fprintf(stderr, "    %s (%zu bytes):", label, len);
    for (size_t i = 0; i < len; i++) {
        fprintf(stderr, "%s%02x", i % 32 == 0 ? "\n      " : " ", bytes[i]);
    }
    fprintf(stderr, "\n");
}

static void
fail_begin(int line)
{
    fprintf(
        stderr,
        "kernel_corpus.c:%d: %s (%s), packet \"%s\": ",
        line,
        cur_program,
        cur_engine,
        cur_packet);
}

static void
fail_end(void)
{
    if (cur_frame != NULL && cur_frame_len > 0) {
        hexdump("input frame", cur_frame, cur_frame_len);
    }
    test_failures++;
}

/* Sets the packet (name and input frame) later failures refer to. */
static void
packet(const char* name, const struct frame* f)
{
    cur_packet = name;
    cur_frame = f ? f->b : NULL;
    cur_frame_len = f ? f->len : 0;
}

#define EXPECT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fail_begin(__LINE__);                                                                  \
            fprintf(stderr, "expected %s\n", #cond);                                               \
            fail_end();                                                                            \
        }                                                                                          \
    } while (0)

#define EXPECT_EQ(actual, expected)                                                                \
    do {                                                                                           \
        long long expect_a_ = (long long)(actual);                                                 \
        long long expect_e_ = (long long)(expected);                                               \
        if (expect_a_ != expect_e_) {                                                              \
            fail_begin(__LINE__);                                                                  \
            fprintf(                                                                               \
                stderr,                                                                            \
                "%s is %lld (0x%llx), expected %lld (0x%llx)\n",                                   \
                #actual,                                                                           \
                expect_a_,                                                                         \
                (unsigned long long)expect_a_,                                                     \
                expect_e_,                                                                         \
                (unsigned long long)expect_e_);                                                    \
            fail_end();                                                                            \
        }                                                                                          \
    } while (0)

/* Checks that `got` holds exactly the `want_len` bytes at `want`. */
#define EXPECT_BYTES(what, got, got_len, want, want_len)                                           \
    expect_bytes(__LINE__, what, got, got_len, want, want_len)

static void
expect_bytes(
    int line,
    const char* what,
    const uint8_t* got,
    size_t got_len,
    const uint8_t* want,
    size_t want_len)
{
    if (got_len == want_len && (want_len == 0 || memcmp(got, want, want_len) == 0)) {
        return;
    }
    size_t at = 0;
    while (at < got_len && at < want_len && got[at] == want[at]) {
        at++;
    }
    fail_begin(line);
    fprintf(
        stderr,
        "%s differs (%zu bytes, expected %zu; first difference at byte %zu)\n",
        what,
        got_len,
        want_len,
        at);
    hexdump("got", got, got_len);
    hexdump("expected", want, want_len);
    fail_end();
}

/* ------------------------------------------------------------------------------------- */
/* Objects, global data, runs. */

struct obj
{
    struct rbpf_object* obj;
    struct rbpf_program* prog;
    uint8_t* elf; /* the file, for the offsets of global variables */
    size_t elf_len;
    int jit;
};

/* Opens tests/kernel_corpus/<file>.o for a case of `program` in the engine `jit` selects. */
static int
open_obj(struct obj* o, const char* file, const char* program, int jit)
{
    char path[128];
    char* errmsg = NULL;
    memset(o, 0, sizeof(*o));
    o->jit = jit;
    cur_program = program;
    cur_engine = jit ? "jit" : "interpreter";
    packet("-", NULL);
    snprintf(path, sizeof(path), "tests/kernel_corpus/%s.o", file);
    o->obj = rbpf_object_open(path, &errmsg);
    o->elf = read_file(path, &o->elf_len);
    if (o->obj == NULL || o->elf == NULL) {
        fail_begin(__LINE__);
        fprintf(stderr, "cannot open %s: %s\n", path, errmsg ? errmsg : "(no message)");
        fail_end();
        free(errmsg);
        return -1;
    }
    return 0;
}

/* Loads the object; fails when the program under test did not load (a sibling's failure is
 * only noted). */
static int
load_obj(struct obj* o)
{
    char* errmsg = NULL;
    if (o->obj == NULL) {
        return -1;
    }
    int rc = rbpf_object_load(o->obj, &errmsg);
    o->prog = rbpf_object_find_program(o->obj, cur_program);
    if (o->prog == NULL || rbpf_program_load_error(o->prog) != NULL) {
        fail_begin(__LINE__);
        fprintf(
            stderr,
            "load failed: %s\n",
            o->prog ? rbpf_program_load_error(o->prog) : "no such program");
        fail_end();
        free(errmsg);
        return -1;
    }
    if (rc != 0) {
        fprintf(stderr, "note (%s): %s\n", cur_program, errmsg ? errmsg : "");
    }
    free(errmsg);
    return 0;
}

static void
close_obj(struct obj* o)
{
    rbpf_object_close(o->obj);
    free(o->elf);
    memset(o, 0, sizeof(*o));
}

static struct rbpf_map*
map(struct obj* o, const char* name)
{
    struct rbpf_map* m = rbpf_object_find_map(o->obj, name);
    if (m == NULL) {
        fail_begin(__LINE__);
        fprintf(stderr, "no map %s\n", name);
        fail_end();
    }
    return m;
}

static uint16_t
elf16(const struct obj* o, size_t off)
{
    return off + 2 <= o->elf_len ? le16(o->elf + off) : 0;
}

static uint32_t
elf32(const struct obj* o, size_t off)
{
    return off + 4 <= o->elf_len ? le32(o->elf + off) : 0;
}

static uint64_t
elf64(const struct obj* o, size_t off)
{
    return off + 8 <= o->elf_len ? le64(o->elf + off) : 0;
}

static const char*
elf_str(const struct obj* o, size_t off)
{
    if (off >= o->elf_len || memchr(o->elf + off, 0, o->elf_len - off) == NULL) {
        return "";
    }
    return (const char*)o->elf + off;
}

/* The section name and offset of the global variable `name`, from the ELF symbol table. */
static int
symbol(const struct obj* o, const char* name, const char** section, size_t* offset)
{
    size_t shoff = (size_t)elf64(o, 0x28);
    size_t shentsize = elf16(o, 0x3a);
    size_t shnum = elf16(o, 0x3c);
    size_t shstrndx = elf16(o, 0x3e);
    size_t shstr = (size_t)elf64(o, shoff + shstrndx * shentsize + 0x18);
    for (size_t i = 0; i < shnum; i++) {
        size_t sh = shoff + i * shentsize;
        if (elf32(o, sh + 4) != 2) { /* SHT_SYMTAB */
            continue;
        }
        size_t strtab = (size_t)elf64(o, shoff + elf32(o, sh + 0x28) * shentsize + 0x18);
        size_t off = (size_t)elf64(o, sh + 0x18);
        size_t size = (size_t)elf64(o, sh + 0x20);
        for (size_t sym = off; sym + 24 <= off + size; sym += 24) {
            if (strcmp(elf_str(o, strtab + elf32(o, sym)), name) == 0) {
                size_t shndx = elf16(o, sym + 6);
                *section = elf_str(o, shstr + elf32(o, shoff + shndx * shentsize));
                *offset = (size_t)elf64(o, sym + 8);
                return 0;
            }
        }
    }
    fail_begin(__LINE__);
    fprintf(stderr, "no symbol %s\n", name);
    fail_end();
    return -1;
}

/* Reads (out != NULL) or writes (in != NULL) `len` bytes of the global variable `name`
 * through its section's map, as a skeleton's skel->rodata/bss/data would. */
static void
global_access(struct obj* o, const char* name, void* out, const void* in, size_t len)
{
    const char* section;
    size_t offset;
    uint32_t value_size = 0;
    uint32_t zero = 0;
    if (symbol(o, name, &section, &offset) != 0) {
        if (out) {
            memset(out, 0, len);
        }
        return;
    }
    struct rbpf_map* m = map(o, section);
    uint8_t* value = NULL;
    if (m == NULL || rbpf_map_info(m, NULL, NULL, &value_size, NULL) != 0 ||
        offset + len > value_size || (value = calloc(1, value_size)) == NULL ||
        rbpf_map_lookup_elem(m, &zero, value) != 0) {
        fail_begin(__LINE__);
        fprintf(stderr, "cannot access %s in %s\n", name, section);
        fail_end();
        if (out) {
            memset(out, 0, len);
        }
        free(value);
        return;
    }
    if (out) {
        memcpy(out, value + offset, len);
    } else {
        memcpy(value + offset, in, len);
        EXPECT_EQ(rbpf_map_update_elem(m, &zero, value, 0), 0);
    }
    free(value);
}

static void
set_global(struct obj* o, const char* name, const void* bytes, size_t len)
{
    global_access(o, name, NULL, bytes, len);
}

static uint64_t
global_u64(struct obj* o, const char* name, size_t index)
{
    uint8_t v[64];
    global_access(o, name, v, NULL, (index + 1) * 8);
    return le64(v + index * 8);
}

static uint32_t
global_u32(struct obj* o, const char* name)
{
    uint8_t v[4];
    global_access(o, name, v, NULL, 4);
    return le32(v);
}

static uint16_t
global_u16(struct obj* o, const char* name)
{
    uint8_t v[2];
    global_access(o, name, v, NULL, 2);
    return le16(v);
}

static uint8_t
global_u8(struct obj* o, const char* name)
{
    uint8_t v = 0;
    global_access(o, name, &v, NULL, 1);
    return v;
}

/* The outcome of one test run. */
struct run
{
    uint32_t retval;
    uint32_t data_len;
    uint32_t ctx_len;
    int has_redirect;
    struct rbpf_redirect redirect;
    uint8_t data[4096];
    uint8_t ctx[256];
};

static struct run R; /* the last run */

/* Runs the program under test over `f` (NULL: no packet) with `ctx_in` (NULL: for XDP an
 * xdp_md with data_end set, else none) into R. Returns 0, or -1 after reporting. */
static int
run_ctx(struct obj* o, const char* name, const struct frame* f, const void* ctx_in, size_t ctx_len)
{
    uint8_t xdp_md[24];
    packet(name, f);
    memset(&R, 0, sizeof(R));
    if (o->prog == NULL) {
        return -1;
    }
    if (ctx_in == NULL && f != NULL && rbpf_program_type(o->prog) == 6) { /* BPF_PROG_TYPE_XDP */
        memset(xdp_md, 0, sizeof(xdp_md));
        store_le32(xdp_md + 4, (uint32_t)f->len);
        ctx_in = xdp_md;
        ctx_len = sizeof(xdp_md);
    }
    struct rbpf_test_run_opts opts;
    memset(&opts, 0, sizeof(opts));
    opts.sz = sizeof(opts);
    if (f != NULL) {
        opts.data_in = f->b;
        opts.data_size_in = (uint32_t)f->len;
        opts.data_out = R.data;
        opts.data_size_out = sizeof(R.data);
    }
    opts.ctx_in = ctx_in;
    opts.ctx_size_in = (uint32_t)ctx_len;
    opts.ctx_out = R.ctx;
    opts.ctx_size_out = sizeof(R.ctx);
    opts.jit = o->jit;
    int err = rbpf_prog_test_run_opts(o->prog, &opts);
    if (err != 0) {
        fail_begin(__LINE__);
        fprintf(stderr, "test run failed: %d\n", err);
        fail_end();
        return -1;
    }
    R.retval = opts.retval;
    R.data_len = opts.data_size_out;
    R.ctx_len = opts.ctx_size_out;
    R.has_redirect = rbpf_program_last_redirect(o->prog, &R.redirect);
    return 0;
}

/* Runs `f` and checks the verdict. Returns 0 when the run went through (R holds it). */
static int
verdict(struct obj* o, const char* name, const struct frame* f, uint32_t want)
{
    if (run_ctx(o, name, f, NULL, 0) != 0) {
        return -1;
    }
    EXPECT_EQ(R.retval, want);
    return 0;
}

/* Runs `f` and checks the verdict and that the frame came back unchanged. */
static int
verdict_unchanged(struct obj* o, const char* name, const struct frame* f, uint32_t want)
{
    if (verdict(o, name, f, want) != 0) {
        return -1;
    }
    EXPECT_BYTES("output frame", R.data, R.data_len, f->b, f->len);
    return 0;
}

/* Checks that the output frame of R is `want` and that its checksums hold on their own. */
static void
expect_rewritten(const struct frame* want)
{
    const char* error = checksums_error(R.data, R.data_len, 14);
    if (error != NULL) {
        fail_begin(__LINE__);
        fprintf(stderr, "output frame: %s\n", error);
        hexdump("output frame", R.data, R.data_len);
        fail_end();
    }
    EXPECT_BYTES("output frame", R.data, R.data_len, want->b, want->len);
}

/* Ring-buffer records, collected by rbpf_ringbuf_consume. */
struct records
{
    int count;
    size_t len[8];
    uint8_t data[8][128];
};

static int
collect_record(void* ctx, const void* data, size_t size)
{
    struct records* r = ctx;
    if (r->count < 8 && size <= sizeof(r->data[0])) {
        memcpy(r->data[r->count], data, size);
        r->len[r->count] = size;
    }
    r->count++;
    return 0;
}

static void
ring_records(struct obj* o, const char* name, struct records* r)
{
    memset(r, 0, sizeof(*r));
    struct rbpf_map* m = map(o, name);
    if (m != NULL) {
        EXPECT_EQ(rbpf_ringbuf_consume(m, collect_record, r), r->count);
    }
}

/* The number of keys in a map, by iteration. */
static int
count_keys(struct rbpf_map* m, size_t key_size)
{
    uint8_t key[64], next[64];
    int n = 0;
    if (m == NULL || key_size > sizeof(key)) {
        return -1;
    }
    for (const void* prev = NULL; rbpf_map_get_next_key(m, prev, next) == 0 && n < 1000;
         prev = key, n++) {
        memcpy(key, next, key_size);
    }
    return n;
}

/* The flow_key (struct flow_key of corpus.h) of an Ethernet + IPv4 frame. */
static void
flow_key(const struct frame* f, uint8_t key[16])
{
    size_t l4 = 14 + (size_t)(f->b[14] & 0xf) * 4;
    memcpy(key, f->b + 26, 8);
    memcpy(key + 8, f->b + l4, 4);
    key[12] = f->b[23];
    key[13] = key[14] = key[15] = 0;
}

static void
skb_ctx(uint8_t ctx[SKB_SIZE])
{
    memset(ctx, 0, SKB_SIZE);
}

/* ------------------------------------------------------------------------------------- */
/* Parsers. */

static void
xdp_vlan_filter(int jit)
{
    struct obj o;
    if (open_obj(&o, "parse", "xdp_vlan_filter", jit) == 0 && load_obj(&o) == 0) {
        struct frame untagged, one, qinq, triple, cut, a;
        udp4(&untagged, ip4(IP_A, IP_B, 17), 1000, 53, STR("query"));
        struct frame l4 = udp_only(1, 2, STR("x"));
        one.len = 0;
        put_eth(&one, MAC_B, MAC_A, ETH_P_8021Q);
        put_vlan(&one, 0x2000 | 42, ETH_P_IPV6);
        put_ip6(&one, 17, NULL, 0, 17, 64, l4.b, l4.len);
        qinq.len = 0;
        put_eth(&qinq, MAC_B, MAC_A, ETH_P_8021AD);
        put_vlan(&qinq, 7, ETH_P_8021Q);
        put_vlan(&qinq, 300, ETH_P_IP);
        put_bytes(&qinq, untagged.b + 14, untagged.len - 14);
        triple.len = 0;
        put_eth(&triple, MAC_B, MAC_A, ETH_P_8021AD);
        put_vlan(&triple, 7, ETH_P_8021Q);
        put_vlan(&triple, 8, ETH_P_8021Q);
        put_vlan(&triple, 9, ETH_P_IP);
        put_bytes(&triple, untagged.b + 14, untagged.len - 14);
        cut.len = 0;
        put_eth(&cut, MAC_B, MAC_A, ETH_P_8021Q);
        put_be16(&cut, 5);
        arp(&a);

        verdict_unchanged(&o, "untagged IPv4", &untagged, XDP_PASS);
        verdict_unchanged(&o, "802.1Q IPv6", &one, XDP_PASS);
        EXPECT_EQ(global_u16(&o, "inner_vid"), 42);
        verdict_unchanged(&o, "QinQ IPv4", &qinq, XDP_PASS);
        EXPECT_EQ(global_u16(&o, "inner_vid"), 300);
        verdict_unchanged(&o, "three tags", &triple, XDP_DROP);
        verdict_unchanged(&o, "ARP", &a, XDP_DROP);
        verdict_unchanged(&o, "truncated tag", &cut, XDP_DROP);
        packet("(after all)", NULL);
        EXPECT_EQ(global_u64(&o, "vlan_depth_seen", 0), 2);
        EXPECT_EQ(global_u64(&o, "vlan_depth_seen", 1), 1);
        EXPECT_EQ(global_u64(&o, "vlan_depth_seen", 2), 2);
    }
    close_obj(&o);
}

static void
xdp_ipv4_options(int jit)
{
    struct obj o;
    if (open_obj(&o, "parse", "xdp_ipv4_options", jit) == 0 && load_obj(&o) == 0) {
        static const uint8_t alert_opts[] = {
            1, 1, 0x94, 4, 0, 0, 0, 0}; /* NOP NOP router alert, EOL */
        static const uint8_t lsrr_opts[] = {0x83, 7, 4, 192, 168, 0, 1, 0};
        static const uint8_t ssrr_opts[] = {1, 0x89, 6, 4, 1, 2, 3, 0};
        static const uint8_t bad_opts[] = {0x44, 1, 0, 0};
        struct frame f, plain;
        struct ip4 ip;

        udp4(&plain, ip4(IP_A, IP_B, 17), 999, 53, STR("dns"));
        verdict_unchanged(&o, "UDP without options", &plain, XDP_PASS);
        EXPECT_EQ(global_u16(&o, "last_udp_dport"), 53);

        ip = ip4(IP_A, IP_B, 17);
        ip4_options(&ip, alert_opts, sizeof(alert_opts));
        udp4(&f, ip, 9, 5000, STR("x"));
        verdict_unchanged(&o, "UDP with router alert", &f, XDP_PASS);
        EXPECT_EQ(global_u16(&o, "last_udp_dport"), 5000);

        ip4_options(&ip, lsrr_opts, sizeof(lsrr_opts));
        udp4(&f, ip, 9, 6000, STR("x"));
        verdict_unchanged(&o, "LSRR", &f, XDP_DROP);

        ip4_options(&ip, ssrr_opts, sizeof(ssrr_opts));
        tcp4(&f, ip, 9, 80, TCP_SYN, NULL, 0);
        verdict_unchanged(&o, "SSRR after NOP", &f, XDP_DROP);

        ip4_options(&ip, bad_opts, sizeof(bad_opts));
        udp4(&f, ip, 9, 7000, STR("x"));
        verdict_unchanged(&o, "option length 1", &f, XDP_DROP);

        f = plain;
        f.b[14] = 0x44;
        verdict_unchanged(&o, "IHL 4", &f, XDP_DROP);
        arp(&f);
        verdict_unchanged(&o, "ARP", &f, XDP_PASS);
        EXPECT_EQ(global_u16(&o, "last_udp_dport"), 5000);
    }
    close_obj(&o);
}

static void
xdp_ipv6_exthdr(int jit)
{
    struct obj o;
    if (open_obj(&o, "parse", "xdp_ipv6_exthdr", jit) == 0 && load_obj(&o) == 0) {
        static const uint8_t hbh_dst[] = {60, 0, 1, 4,  0, 0, 0, 0, /* hop-by-hop, PadN */
                                          6,  1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
        static const uint8_t frag[] = {17, 0, 0, 0, 0, 0, 0, 9};
        static const uint8_t routing[] = {6, 0, 0, 0, 0, 0, 0, 0};
        static const uint8_t ah[] = {6, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1,
                                     0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
        struct frame telnet = tcp_only(5000, 23, TCP_SYN, 1);
        struct frame web = tcp_only(5000, 80, TCP_SYN, 1);
        struct frame f, l4, none = {0};

        eth6(&f, 6, NULL, 0, 6, 64, &telnet);
        verdict_unchanged(&o, "TCP to 23", &f, XDP_DROP);
        EXPECT_EQ(global_u8(&o, "ipv6_l4_proto"), 6);
        EXPECT_EQ(global_u16(&o, "ipv6_l4_off"), 54);

        eth6(&f, 0, hbh_dst, sizeof(hbh_dst), 6, 64, &web);
        verdict_unchanged(&o, "HBH+DSTOPTS TCP to 80", &f, XDP_PASS);
        EXPECT_EQ(global_u8(&o, "ipv6_l4_proto"), 6);
        EXPECT_EQ(global_u16(&o, "ipv6_l4_off"), 78);

        l4 = udp_only(1, 2, STR("frag"));
        eth6(&f, 44, frag, sizeof(frag), 17, 64, &l4);
        verdict_unchanged(&o, "fragment UDP", &f, XDP_PASS);
        EXPECT_EQ(global_u8(&o, "ipv6_l4_proto"), 17);
        EXPECT_EQ(global_u16(&o, "ipv6_l4_off"), 62);

        eth6(&f, 43, routing, sizeof(routing), 6, 64, &telnet);
        verdict_unchanged(&o, "routing TCP to 23", &f, XDP_DROP);
        EXPECT_EQ(global_u16(&o, "ipv6_l4_off"), 62);

        eth6(&f, 51, ah, sizeof(ah), 6, 64, &web);
        verdict_unchanged(&o, "AH TCP to 80", &f, XDP_PASS);
        EXPECT_EQ(global_u8(&o, "ipv6_l4_proto"), 6);
        EXPECT_EQ(global_u16(&o, "ipv6_l4_off"), 78);

        eth6(&f, 59, NULL, 0, 59, 64, &none);
        verdict_unchanged(&o, "no next header", &f, XDP_DROP);
        tcp4(&f, ip4(IP_A, IP_B, 6), 1, 23, TCP_SYN, NULL, 0);
        verdict_unchanged(&o, "IPv4", &f, XDP_PASS);
    }
    close_obj(&o);
}

static void
xdp_loop_payload(int jit)
{
    struct obj o;
    if (open_obj(&o, "parse", "xdp_loop_payload", jit) == 0 && load_obj(&o) == 0) {
        uint8_t payload[300];
        uint32_t want = 0;
        struct frame f;
        for (int i = 0; i < 20; i++) {
            payload[i] = (uint8_t)(i + 1);
        }
        udp4(&f, ip4(IP_A, IP_B, 17), 1, 2, payload, 20);
        verdict_unchanged(&o, "UDP 20 bytes", &f, XDP_PASS);
        EXPECT_EQ(global_u32(&o, "payload_sum"), 210);
        EXPECT_EQ(global_u32(&o, "payload_len"), 20);

        for (int i = 0; i < 300; i++) {
            payload[i] = (uint8_t)(i * 7);
            want += payload[i];
        }
        udp4(&f, ip4(IP_A, IP_B, 17), 1, 2, payload, 300);
        verdict_unchanged(&o, "UDP 300 bytes", &f, XDP_PASS);
        EXPECT_EQ(global_u32(&o, "payload_sum"), want);
        EXPECT_EQ(global_u32(&o, "payload_len"), 300);

        udp4(&f, ip4(IP_A, IP_B, 17), 1, 2, STR("abc"));
        store_be16(f.b + 38, 4);
        verdict_unchanged(&o, "UDP length 4", &f, XDP_DROP);
    }
    close_obj(&o);
}

static void
xdp_subprogs(int jit)
{
    struct obj o;
    if (open_obj(&o, "parse", "xdp_subprogs", jit) == 0 && load_obj(&o) == 0) {
        static const uint8_t nops[] = {1, 1, 1, 0};
        struct ip4 ip = ip4(IP_A, IP_B, 6);
        struct ip4 with_options = ip;
        struct frame f;
        ip4_options(&with_options, nops, sizeof(nops));
        tcp4(&f, ip, 40000, 22, TCP_SYN, NULL, 0);
        verdict_unchanged(&o, "SYN to 22", &f, XDP_DROP);
        tcp4(&f, ip, 40000, 8080, TCP_SYN, NULL, 0);
        verdict_unchanged(&o, "SYN to 8080", &f, XDP_PASS);
        tcp4(&f, ip, 40000, 22, TCP_SYN | TCP_ACK, NULL, 0);
        verdict_unchanged(&o, "SYN-ACK to 22", &f, XDP_PASS);
        tcp4(&f, with_options, 1, 25, TCP_SYN, NULL, 0);
        verdict_unchanged(&o, "SYN to 25 past options", &f, XDP_DROP);
        udp4(&f, ip, 1, 22, NULL, 0);
        verdict_unchanged(&o, "UDP", &f, XDP_PASS);
        arp(&f);
        verdict_unchanged(&o, "ARP", &f, XDP_PASS);
    }
    close_obj(&o);
}

/* ------------------------------------------------------------------------------------- */
/* Rewrites with checksums. */

/* Ethernet (dst <- src, IPv4) + IPv4 (src -> dst, ICMP) + an echo of `type`. */
static void
icmp4(
    struct frame* f,
    const uint8_t* mac_dst,
    const uint8_t* mac_src,
    const uint8_t* src,
    const uint8_t* dst,
    uint8_t type)
{
    struct frame l4 = {0};
    struct ip4 ip = ip4(src, dst, 1);
    put_icmp_echo(&l4, type, 0x77, 3, STR("abcdefgh"));
    f->len = 0;
    put_eth(f, mac_dst, mac_src, ETH_P_IP);
    put_ip4(f, &ip, l4.b, l4.len);
}

static void
xdp_icmp_echo(int jit)
{
    struct obj o;
    if (open_obj(&o, "rewrite", "xdp_icmp_echo", jit) == 0 && load_obj(&o) == 0) {
        struct frame ping, pong, f;
        icmp4(&ping, MAC_B, MAC_A, IP_A, IP_B, 8);
        icmp4(&pong, MAC_A, MAC_B, IP_B, IP_A, 0);
        if (verdict(&o, "echo request", &ping, XDP_TX) == 0) {
            expect_rewritten(&pong);
        }
        verdict_unchanged(&o, "echo reply", &pong, XDP_PASS);
        udp4(&f, ip4(IP_A, IP_B, 17), 1, 2, NULL, 0);
        verdict_unchanged(&o, "UDP", &f, XDP_PASS);
    }
    close_obj(&o);
}

static void
xdp_udp_reflect(int jit)
{
    struct obj o;
    if (open_obj(&o, "rewrite", "xdp_udp_reflect", jit) == 0 && load_obj(&o) == 0) {
        struct frame echo, back, f;
        udp4(&echo, ip4(IP_A, IP_B, 17), 40000, 7, STR("hello, echo"));
        udp4(&back, ip4(IP_B, IP_A, 17), 7, 40000, STR("hello, echo"));
        memcpy(back.b, MAC_A, 6);
        memcpy(back.b + 6, MAC_B, 6);
        if (verdict(&o, "UDP to 7", &echo, XDP_TX) == 0) {
            expect_rewritten(&back);
        }
        udp4(&f, ip4(IP_A, IP_B, 17), 1, 8, STR("x"));
        verdict_unchanged(&o, "UDP to 8", &f, XDP_PASS);
    }
    close_obj(&o);
}

static void
tc_ttl_decrement(int jit)
{
    struct obj o;
    if (open_obj(&o, "rewrite", "tc_ttl_decrement", jit) == 0 && load_obj(&o) == 0) {
        struct ip4 ip = ip4(IP_A, IP_B, 17);
        struct frame f, want, l4;
        udp4(&f, ip, 1, 2, STR("ttl"));
        ip.ttl = 63;
        udp4(&want, ip, 1, 2, STR("ttl"));
        if (verdict(&o, "TTL 64", &f, TC_ACT_OK) == 0) {
            expect_rewritten(&want);
        }
        ip.ttl = 1;
        udp4(&f, ip, 1, 2, STR("ttl"));
        verdict_unchanged(&o, "TTL 1", &f, TC_ACT_SHOT);
        l4 = udp_only(1, 2, NULL, 0);
        eth6(&f, 17, NULL, 0, 17, 1, &l4);
        verdict_unchanged(&o, "IPv6 hop limit 1", &f, TC_ACT_OK);
    }
    close_obj(&o);
}

static void
tc_dnat(int jit)
{
    static const uint8_t to[4] = {192, 168, 1, 10};
    struct obj o;
    if (open_obj(&o, "rewrite", "tc_dnat", jit) == 0) {
        set_global(&o, "dnat_from", IP_B, 4);
        set_global(&o, "dnat_to", to, 4);
    }
    if (o.obj != NULL && load_obj(&o) == 0) {
        struct frame f, want;
        tcp4(&f, ip4(IP_A, IP_B, 6), 40000, 80, TCP_ACK, STR("GET / HTTP/1.0\r\n\r\n"));
        tcp4(&want, ip4(IP_A, to, 6), 40000, 80, TCP_ACK, STR("GET / HTTP/1.0\r\n\r\n"));
        if (verdict(&o, "TCP to 10.0.0.2", &f, TC_ACT_OK) == 0) {
            expect_rewritten(&want);
        }
        tcp4(&f, ip4(IP_B, IP_A, 6), 1, 2, 0, NULL, 0);
        verdict_unchanged(&o, "TCP to 10.0.0.1", &f, TC_ACT_OK);
        udp4(&f, ip4(IP_A, IP_B, 17), 1, 2, NULL, 0);
        verdict_unchanged(&o, "UDP to 10.0.0.2", &f, TC_ACT_OK);
    }
    close_obj(&o);
}

static void
tc_set_dscp(int jit)
{
    struct obj o;
    if (open_obj(&o, "rewrite", "tc_set_dscp", jit) == 0 && load_obj(&o) == 0) {
        static const uint8_t cases[3][2] = {{0x00, 0xb8}, {0x03, 0xbb}, {0x28, 0xb8}};
        static const char* names[3] = {"TOS 0x0", "TOS 0x3", "TOS 0x28"};
        struct frame f, want;
        for (int i = 0; i < 3; i++) {
            struct ip4 ip = ip4(IP_A, IP_B, 6);
            ip.tos = cases[i][0];
            tcp4(&f, ip, 1, 2, TCP_SYN, NULL, 0);
            ip.tos = cases[i][1];
            tcp4(&want, ip, 1, 2, TCP_SYN, NULL, 0);
            if (verdict(&o, names[i], &f, TC_ACT_OK) == 0) {
                expect_rewritten(&want);
                EXPECT_EQ(le32(R.ctx + SKB_PRIORITY), 6);
            }
        }
        arp(&f);
        if (verdict_unchanged(&o, "ARP", &f, TC_ACT_OK) == 0) {
            EXPECT_EQ(le32(R.ctx + SKB_PRIORITY), 0);
        }
    }
    close_obj(&o);
}

static void
tc_udp_port(int jit)
{
    struct obj o;
    if (open_obj(&o, "rewrite", "tc_udp_port", jit) == 0 && load_obj(&o) == 0) {
        static const uint8_t nops[] = {1, 1, 1, 0};
        struct ip4 ip = ip4(IP_A, IP_B, 17);
        struct frame f, want;
        udp4(&f, ip, 5353, 5353, STR("mdns"));
        udp4(&want, ip, 5353, 53, STR("mdns"));
        if (verdict(&o, "UDP to 5353", &f, TC_ACT_OK) == 0) {
            expect_rewritten(&want);
        }
        udp4(&f, ip, 1, 5353, STR("mdns"));
        f.b[40] = f.b[41] = 0;
        udp4(&want, ip, 1, 53, STR("mdns"));
        want.b[40] = want.b[41] = 0;
        if (verdict(&o, "UDP to 5353 without checksum", &f, TC_ACT_OK) == 0) {
            EXPECT_BYTES("output frame (checksum stays 0)", R.data, R.data_len, want.b, want.len);
        }
        udp4(&f, ip, 1, 80, NULL, 0);
        verdict_unchanged(&o, "UDP to 80", &f, TC_ACT_OK);
        ip4_options(&ip, nops, sizeof(nops));
        udp4(&f, ip, 1, 5353, NULL, 0);
        verdict_unchanged(&o, "UDP with options", &f, TC_ACT_OK);
    }
    close_obj(&o);
}

/* ------------------------------------------------------------------------------------- */
/* Maps and state. */

static void
xdp_flow_count(int jit)
{
    struct obj o;
    if (open_obj(&o, "state", "xdp_flow_count", jit) == 0 && load_obj(&o) == 0) {
        static const char* names[3] = {"flow A #0", "flow A #1", "flow A #2"};
        uint8_t payload[20];
        uint8_t key[16], stats[16];
        uint64_t bytes_a = 0;
        struct frame a, b, f;
        memset(payload, 0x55, sizeof(payload));
        for (int i = 0; i < 3; i++) {
            tcp4(&a, ip4(IP_A, IP_B, 6), 40000, 443, TCP_ACK, payload, (size_t)i * 10);
            verdict_unchanged(&o, names[i], &a, XDP_PASS);
            bytes_a += a.len;
        }
        udp4(&b, ip4(IP_B, IP_A, 17), 53, 40000, STR("answer"));
        verdict_unchanged(&o, "flow B", &b, XDP_PASS);
        arp(&f);
        verdict_unchanged(&o, "ARP", &f, XDP_PASS);

        packet("(after all)", NULL);
        struct rbpf_map* flows = map(&o, "flows");
        flow_key(&a, key);
        EXPECT_EQ(rbpf_map_lookup_elem(flows, key, stats), 0);
        EXPECT_EQ(le64(stats), 3);
        EXPECT_EQ(le64(stats + 8), bytes_a);
        flow_key(&b, key);
        EXPECT_EQ(rbpf_map_lookup_elem(flows, key, stats), 0);
        EXPECT_EQ(le64(stats), 1);
        EXPECT_EQ(le64(stats + 8), b.len);
        EXPECT_EQ(count_keys(flows, 16), 2);
    }
    close_obj(&o);
}

static void
xdp_percpu_proto(int jit)
{
    struct obj o;
    if (open_obj(&o, "state", "xdp_percpu_proto", jit) == 0 && load_obj(&o) == 0) {
        struct ip4 ip = ip4(IP_A, IP_B, 6);
        struct frame f, l4 = {0};
        tcp4(&f, ip, 1, 2, TCP_SYN, NULL, 0);
        verdict_unchanged(&o, "TCP 1->2", &f, XDP_PASS);
        tcp4(&f, ip, 3, 4, TCP_SYN, NULL, 0);
        verdict_unchanged(&o, "TCP 3->4", &f, XDP_PASS);
        l4 = udp_only(1, 2, NULL, 0);
        eth6(&f, 17, NULL, 0, 17, 9, &l4);
        verdict_unchanged(&o, "IPv6 UDP", &f, XDP_PASS);
        l4.len = 0;
        put_icmp_echo(&l4, 8, 1, 1, NULL, 0);
        ip.proto = 1;
        f.len = 0;
        put_eth(&f, MAC_B, MAC_A, ETH_P_IP);
        put_ip4(&f, &ip, l4.b, l4.len);
        verdict_unchanged(&o, "ICMP", &f, XDP_PASS);
        arp(&f);
        verdict_unchanged(&o, "ARP", &f, XDP_PASS);

        packet("(after all)", NULL);
        struct rbpf_map* counts = map(&o, "proto_count");
        int slots = rbpf_map_value_slots(counts);
        EXPECT(slots >= 1 && slots <= 1024);
        if (slots >= 1 && slots <= 1024) {
            static const uint32_t protos[4] = {1, 6, 17, 0};
            static const uint64_t want[4] = {1, 2, 1, 0};
            uint64_t* values = calloc((size_t)slots, sizeof(uint64_t));
            for (int i = 0; i < 4 && values != NULL; i++) {
                uint64_t total = 0;
                EXPECT_EQ(rbpf_map_lookup_elem(counts, &protos[i], values), 0);
                for (int s = 0; s < slots; s++) {
                    total += values[s];
                }
                if (total != want[i]) {
                    fail_begin(__LINE__);
                    fprintf(
                        stderr,
                        "protocol %u counted %llu times over the CPU slots, expected %llu\n",
                        protos[i],
                        (unsigned long long)total,
                        (unsigned long long)want[i]);
                    fail_end();
                }
            }
            free(values);
        }
    }
    close_obj(&o);
}

static void
xdp_lru_flows(int jit)
{
    struct obj o;
    if (open_obj(&o, "state", "xdp_lru_flows", jit) == 0 && load_obj(&o) == 0) {
        struct frame a, b, c;
        uint8_t key[16], value[64];
        udp4(&a, ip4(IP_A, IP_B, 17), 1, 53, STR("q"));
        udp4(&b, ip4(IP_A, IP_B, 17), 2, 53, STR("q"));
        udp4(&c, ip4(IP_A, IP_B, 17), 3, 53, STR("q"));
        verdict_unchanged(&o, "A (new)", &a, XDP_DROP);
        verdict_unchanged(&o, "A (known)", &a, XDP_PASS);
        verdict_unchanged(&o, "B (new)", &b, XDP_DROP);
        verdict_unchanged(&o, "A (known, most recent)", &a, XDP_PASS);
        verdict_unchanged(&o, "C (new, evicts B)", &c, XDP_DROP);
        verdict_unchanged(&o, "A (still known)", &a, XDP_PASS);
        verdict_unchanged(&o, "B (evicted: new again)", &b, XDP_DROP);

        packet("(after all)", NULL);
        struct rbpf_map* recent = map(&o, "recent");
        uint32_t value_size = 0;
        EXPECT_EQ(rbpf_map_info(recent, NULL, NULL, &value_size, NULL), 0);
        EXPECT(value_size <= sizeof(value));
        EXPECT_EQ(count_keys(recent, 16), 2);
        flow_key(&a, key);
        EXPECT_EQ(rbpf_map_lookup_elem(recent, key, value), 0);
        flow_key(&b, key);
        EXPECT_EQ(rbpf_map_lookup_elem(recent, key, value), 0);
        flow_key(&c, key);
        EXPECT_EQ(rbpf_map_lookup_elem(recent, key, value), -ENOENT);
    }
    close_obj(&o);
}

static void
xdp_rate_limit(int jit)
{
    struct obj o;
    if (open_obj(&o, "state", "xdp_rate_limit", jit) == 0) {
        uint32_t burst = 2;
        uint64_t window_ns = 60000000000ull;
        set_global(&o, "burst", &burst, sizeof(burst));
        set_global(&o, "window_ns", &window_ns, sizeof(window_ns));
    }
    if (o.obj != NULL && load_obj(&o) == 0) {
        static const uint32_t want[4] = {XDP_PASS, XDP_PASS, XDP_DROP, XDP_DROP};
        static const char* names[4] = {"10.0.0.1 #0", "10.0.0.1 #1", "10.0.0.1 #2", "10.0.0.1 #3"};
        static const uint8_t ip_c[4] = {10, 0, 0, 3};
        struct frame f;
        uint8_t bucket[16];
        udp4(&f, ip4(IP_A, IP_B, 17), 1, 2, NULL, 0);
        for (int i = 0; i < 4; i++) {
            verdict_unchanged(&o, names[i], &f, want[i]);
        }
        udp4(&f, ip4(ip_c, IP_B, 17), 1, 2, NULL, 0);
        verdict_unchanged(&o, "10.0.0.3", &f, XDP_PASS);

        packet("(after all)", NULL);
        EXPECT_EQ(global_u64(&o, "rate_dropped", 0), 2);
        memset(bucket, 0, sizeof(bucket));
        EXPECT_EQ(rbpf_map_lookup_elem(map(&o, "buckets"), IP_A, bucket), 0);
        EXPECT_EQ(le32(bucket + 8), 2);
    }
    close_obj(&o);
}

static void
xdp_port_blocklist(int jit)
{
    struct obj o;
    if (open_obj(&o, "state", "xdp_port_blocklist", jit) == 0) {
        uint16_t ports[4] = {22, 23, 0, 0};
        uint32_t count = 2, version = 9;
        set_global(&o, "blocked_ports", ports, sizeof(ports));
        set_global(&o, "blocked_count", &count, sizeof(count));
        set_global(&o, "config_version", &version, sizeof(version)); /* .data */
    }
    if (o.obj != NULL && load_obj(&o) == 0) {
        struct ip4 ip = ip4(IP_A, IP_B, 6);
        struct frame f;
        tcp4(&f, ip, 1, 23, TCP_SYN, NULL, 0);
        verdict_unchanged(&o, "TCP to 23", &f, XDP_DROP);
        udp4(&f, ip, 1, 22, NULL, 0);
        verdict_unchanged(&o, "UDP to 22", &f, XDP_DROP);
        tcp4(&f, ip, 2, 23, TCP_SYN, NULL, 0);
        verdict_unchanged(&o, "TCP to 23 again", &f, XDP_DROP);
        tcp4(&f, ip, 1, 80, TCP_SYN, NULL, 0);
        verdict_unchanged(&o, "TCP to 80", &f, XDP_PASS);
        tcp4(&f, ip, 1, 0, TCP_SYN, NULL, 0);
        verdict_unchanged(&o, "TCP to 0 (beyond blocked_count)", &f, XDP_PASS);

        packet("(after all)", NULL);
        EXPECT_EQ(global_u64(&o, "blocked_hits", 0), 1);
        EXPECT_EQ(global_u64(&o, "blocked_hits", 1), 2);
        EXPECT_EQ(global_u64(&o, "blocked_hits", 2), 0);
        EXPECT_EQ(global_u64(&o, "blocked_hits", 3), 0);
        EXPECT_EQ(global_u32(&o, "seen_version"), 9);
    }
    close_obj(&o);
}

/* ------------------------------------------------------------------------------------- */
/* Events, tail calls and redirects. */

static void
xdp_ringbuf_syn(int jit)
{
    struct obj o;
    if (open_obj(&o, "events", "xdp_ringbuf_syn", jit) == 0 && load_obj(&o) == 0) {
        static const uint8_t want[16] = {
            10, 0, 0, 1, 10, 0, 0, 2, 0x9c, 0x40, 0x01, 0xbb, 0xe8, 0x03, 0, 0};
        struct ip4 ip = ip4(IP_A, IP_B, 6);
        struct frame f;
        struct records records;
        tcp4(&f, ip, 40000, 443, TCP_SYN, NULL, 0);
        verdict_unchanged(&o, "SYN", &f, XDP_PASS);
        tcp4(&f, ip, 40000, 443, TCP_ACK, NULL, 0);
        verdict_unchanged(&o, "ACK", &f, XDP_PASS);
        tcp4(&f, ip, 443, 40000, TCP_SYN | TCP_ACK, NULL, 0);
        verdict_unchanged(&o, "SYN-ACK", &f, XDP_PASS);
        udp4(&f, ip, 1, 2, NULL, 0);
        verdict_unchanged(&o, "UDP", &f, XDP_PASS);

        packet("(after all)", NULL);
        ring_records(&o, "syn_events", &records);
        EXPECT_EQ(records.count, 1);
        if (records.count >= 1) {
            EXPECT_BYTES("syn_events record", records.data[0], records.len[0], want, sizeof(want));
        }
    }
    close_obj(&o);
}

static void
xdp_ringbuf_drop(int jit)
{
    struct obj o;
    if (open_obj(&o, "events", "xdp_ringbuf_drop", jit) == 0 && load_obj(&o) == 0) {
        struct frame a, f;
        struct records records;
        uint8_t want[16];
        arp(&a);
        verdict_unchanged(&o, "ARP", &a, XDP_DROP);
        udp4(&f, ip4(IP_A, IP_B, 17), 1, 2, NULL, 0);
        verdict_unchanged(&o, "IPv4", &f, XDP_PASS);

        packet("(after all)", NULL);
        store_le32(want, (uint32_t)a.len);
        want[4] = ETH_P_ARP & 0xff;
        want[5] = ETH_P_ARP >> 8;
        memcpy(want + 6, a.b, 10);
        ring_records(&o, "drops", &records);
        EXPECT_EQ(records.count, 1);
        if (records.count >= 1) {
            EXPECT_BYTES("drops record", records.data[0], records.len[0], want, sizeof(want));
        }
    }
    close_obj(&o);
}

/* Perf records, collected by rbpf_perf_buffer_consume with their slots. */
struct samples
{
    int count;
    uint64_t lost;
    uint32_t slot[8];
    size_t len[8];
    uint8_t data[8][64];
};

static int
collect_sample(void* ctx, uint32_t slot, const void* data, size_t size)
{
    struct samples* s = ctx;
    if (s->count < 8 && size <= sizeof(s->data[0])) {
        s->slot[s->count] = slot;
        memcpy(s->data[s->count], data, size);
        s->len[s->count] = size;
    }
    s->count++;
    return 0;
}

static void
count_lost(void* ctx, uint32_t slot, uint64_t count)
{
    (void)slot;
    ((struct samples*)ctx)->lost += count;
}

static void
xdp_perf_sample(int jit)
{
    struct obj o;
    if (open_obj(&o, "events", "xdp_perf_sample", jit) == 0 && load_obj(&o) == 0) {
        struct frame f1, f2;
        struct samples samples;
        udp4(&f1, ip4(IP_A, IP_B, 17), 1, 2, NULL, 0);
        arp(&f2);
        verdict_unchanged(&o, "UDP", &f1, XDP_PASS);
        verdict_unchanged(&o, "ARP", &f2, XDP_PASS);

        packet("(after all)", NULL);
        memset(&samples, 0, sizeof(samples));
        EXPECT_EQ(
            rbpf_perf_buffer_consume(map(&o, "samples"), collect_sample, count_lost, &samples), 2);
        EXPECT_EQ(samples.count, 2);
        EXPECT_EQ(samples.lost, 0);
        const struct frame* frames[2] = {&f1, &f2};
        static const uint16_t types[2] = {ETH_P_IP, ETH_P_ARP};
        for (int i = 0; i < 2 && i < samples.count; i++) {
            /* struct { __u16 ethertype, len; __u32 cpu; }, the CPU being the slot written. */
            uint8_t want[8];
            want[0] = (uint8_t)types[i];
            want[1] = (uint8_t)(types[i] >> 8);
            want[2] = (uint8_t)frames[i]->len;
            want[3] = (uint8_t)(frames[i]->len >> 8);
            store_le32(want + 4, samples.slot[0]);
            EXPECT_EQ(samples.slot[i], samples.slot[0]);
            EXPECT_BYTES("perf record", samples.data[i], samples.len[i], want, sizeof(want));
        }
    }
    close_obj(&o);
}

static void
xdp_tail_dispatch(int jit)
{
    struct obj o;
    if (open_obj(&o, "events", "xdp_tail_dispatch", jit) == 0 && load_obj(&o) == 0) {
        static const char* stages[2] = {"xdp_stage_ipv4", "xdp_stage_ipv6"};
        struct ip4 frag = ip4(IP_A, IP_B, 17);
        struct frame f, l4;
        for (uint32_t slot = 0; slot < 2; slot++) {
            int fd = rbpf_program_fd(rbpf_object_find_program(o.obj, stages[slot]));
            EXPECT(fd >= 0);
            EXPECT_EQ(rbpf_map_update_elem(map(&o, "dispatch"), &slot, &fd, 0), 0);
        }
        frag.frag_off = 0x2000; /* MF */
        udp4(&f, frag, 1, 2, NULL, 0);
        verdict_unchanged(&o, "IPv4 fragment", &f, XDP_DROP);
        EXPECT_EQ(global_u32(&o, "handled_by"), 4);
        udp4(&f, ip4(IP_A, IP_B, 17), 1, 2, NULL, 0);
        verdict_unchanged(&o, "IPv4", &f, XDP_PASS);
        l4 = udp_only(1, 2, NULL, 0);
        eth6(&f, 17, NULL, 0, 17, 1, &l4);
        verdict_unchanged(&o, "IPv6 hop limit 1", &f, XDP_DROP);
        EXPECT_EQ(global_u32(&o, "handled_by"), 6);
        arp(&f);
        verdict_unchanged(&o, "ARP", &f, XDP_PASS);
        EXPECT_EQ(global_u32(&o, "handled_by"), 99);
    }
    close_obj(&o);
}

static void
xdp_stage_ipv4(int jit)
{
    struct obj o;
    if (open_obj(&o, "events", "xdp_stage_ipv4", jit) == 0 && load_obj(&o) == 0) {
        struct ip4 frag = ip4(IP_A, IP_B, 17);
        struct frame f;
        frag.frag_off = 0x0010; /* offset 128 bytes */
        udp4(&f, frag, 1, 2, NULL, 0);
        verdict_unchanged(&o, "later fragment", &f, XDP_DROP);
        udp4(&f, ip4(IP_A, IP_B, 17), 1, 2, NULL, 0);
        verdict_unchanged(&o, "DF datagram", &f, XDP_PASS);
        EXPECT_EQ(global_u32(&o, "handled_by"), 4);
    }
    close_obj(&o);
}

static void
xdp_stage_ipv6(int jit)
{
    struct obj o;
    if (open_obj(&o, "events", "xdp_stage_ipv6", jit) == 0 && load_obj(&o) == 0) {
        struct frame f, l4 = udp_only(1, 2, NULL, 0);
        eth6(&f, 17, NULL, 0, 17, 0, &l4);
        verdict_unchanged(&o, "hop limit 0", &f, XDP_DROP);
        eth6(&f, 17, NULL, 0, 17, 2, &l4);
        verdict_unchanged(&o, "hop limit 2", &f, XDP_PASS);
        EXPECT_EQ(global_u32(&o, "handled_by"), 6);
    }
    close_obj(&o);
}

static void
xdp_redirect_devmap(int jit)
{
    struct obj o;
    if (open_obj(&o, "events", "xdp_redirect_devmap", jit) == 0 && load_obj(&o) == 0) {
        uint32_t slot = 3, ifindex = 7;
        struct frame f;
        EXPECT_EQ(rbpf_map_update_elem(map(&o, "ports"), &slot, &ifindex, 0), 0);
        udp4(&f, ip4(IP_A, IP_B, 17), 1, 2, NULL, 0);
        f.b[5] = 0x0b; /* destination ...:0b: slot 3 */
        if (verdict_unchanged(&o, "to slot 3", &f, XDP_REDIRECT) == 0) {
            EXPECT_EQ(R.has_redirect, 1);
            EXPECT_EQ(R.redirect.kind, RBPF_REDIRECT_IFINDEX);
            EXPECT_EQ(R.redirect.target, 7);
            EXPECT_EQ(R.redirect.flags, 0);
        }
        f.b[5] = 0x05;
        if (verdict_unchanged(&o, "to empty slot 5", &f, XDP_DROP) == 0) {
            EXPECT_EQ(R.has_redirect, 0);
            EXPECT_EQ(R.redirect.kind, RBPF_REDIRECT_NONE);
        }
    }
    close_obj(&o);
}

static void
xdp_redirect_ifindex(int jit)
{
    struct obj o;
    if (open_obj(&o, "events", "xdp_redirect_ifindex", jit) == 0) {
        uint32_t ifindex = 5;
        set_global(&o, "mirror_ifindex", &ifindex, sizeof(ifindex));
    }
    if (o.obj != NULL && load_obj(&o) == 0) {
        struct frame f, l4 = udp_only(1, 2, NULL, 0);
        eth6(&f, 17, NULL, 0, 17, 9, &l4);
        if (verdict_unchanged(&o, "IPv6", &f, XDP_REDIRECT) == 0) {
            EXPECT_EQ(R.has_redirect, 1);
            EXPECT_EQ(R.redirect.kind, RBPF_REDIRECT_IFINDEX);
            EXPECT_EQ(R.redirect.target, 5);
            EXPECT_EQ(R.redirect.flags, 0);
        }
        udp4(&f, ip4(IP_A, IP_B, 17), 1, 2, NULL, 0);
        if (verdict_unchanged(&o, "IPv4", &f, XDP_PASS) == 0) {
            EXPECT_EQ(R.has_redirect, 0);
        }
    }
    close_obj(&o);
}

/* ------------------------------------------------------------------------------------- */
/* Head, tail and metadata adjustments. */

static void
xdp_decap_ipip(int jit)
{
    struct obj o;
    if (open_obj(&o, "adjust", "xdp_decap_ipip", jit) == 0 && load_obj(&o) == 0) {
        static const uint8_t inner_src[4] = {172, 16, 0, 1};
        static const uint8_t inner_dst[4] = {172, 16, 0, 2};
        struct ip4 outer_ip = ip4(IP_A, IP_B, 4);
        struct frame inner, outer;
        udp4(&inner, ip4(inner_src, inner_dst, 17), 1, 2, STR("inner"));
        outer.len = 0;
        put_eth(&outer, MAC_B, MAC_A, ETH_P_IP);
        put_ip4(&outer, &outer_ip, inner.b + 14, inner.len - 14);
        if (verdict(&o, "IPIP", &outer, XDP_PASS) == 0) {
            expect_rewritten(&inner);
        }
        verdict_unchanged(&o, "plain UDP", &inner, XDP_PASS);
    }
    close_obj(&o);
}

static void
xdp_push_vlan(int jit)
{
    struct obj o;
    if (open_obj(&o, "adjust", "xdp_push_vlan", jit) == 0) {
        uint16_t vid = 300;
        set_global(&o, "push_vid", &vid, sizeof(vid));
    }
    if (o.obj != NULL && load_obj(&o) == 0) {
        struct frame f, want;
        udp4(&f, ip4(IP_A, IP_B, 17), 1, 2, STR("tag me"));
        want.len = 0;
        put_eth(&want, MAC_B, MAC_A, ETH_P_8021Q);
        put_vlan(&want, 300, ETH_P_IP);
        put_bytes(&want, f.b + 14, f.len - 14);
        if (verdict(&o, "untagged", &f, XDP_PASS) == 0) {
            EXPECT_BYTES("tagged frame", R.data, R.data_len, want.b, want.len);
        }
        verdict_unchanged(&o, "already tagged", &want, XDP_PASS);
    }
    close_obj(&o);
}

static void
xdp_truncate(int jit)
{
    struct obj o;
    if (open_obj(&o, "adjust", "xdp_truncate", jit) == 0 && load_obj(&o) == 0) {
        uint8_t payload[100];
        struct frame f;
        memset(payload, 0x42, sizeof(payload));
        udp4(&f, ip4(IP_A, IP_B, 17), 1, 2, payload, 100);
        if (verdict(&o, "142 bytes", &f, XDP_PASS) == 0) {
            EXPECT_BYTES("truncated frame", R.data, R.data_len, f.b, 64);
            EXPECT_EQ(R.ctx_len, 24);
            EXPECT_EQ(le32(R.ctx + 4), 64); /* xdp_md.data_end */
        }
        memset(payload, 1, 18);
        udp4(&f, ip4(IP_A, IP_B, 17), 1, 2, payload, 18);
        verdict_unchanged(&o, "60 bytes", &f, XDP_PASS);
    }
    close_obj(&o);
}

static void
xdp_meta_mark(int jit)
{
    struct obj o;
    if (open_obj(&o, "adjust", "xdp_meta_mark", jit) == 0 && load_obj(&o) == 0) {
        struct ip4 ip = ip4(IP_A, IP_B, 17);
        struct frame f, want;
        uint32_t mark = 0xab00000a; /* host order, as the program stores it */
        ip.tos = 0x28;              /* DSCP 10 */
        udp4(&f, ip, 1, 2, NULL, 0);
        want.len = 0;
        put_bytes(&want, &mark, 4);
        put_bytes(&want, f.b, f.len);
        if (verdict(&o, "DSCP 10", &f, XDP_PASS) == 0) {
            EXPECT_BYTES("metadata + frame", R.data, R.data_len, want.b, want.len);
            EXPECT_EQ(le32(R.ctx), 4); /* xdp_md.data: the metadata's length */
            EXPECT_EQ(le32(R.ctx + 4), 4 + f.len);
        }
    }
    close_obj(&o);
}

static void
tc_meta_read(int jit)
{
    struct obj o;
    if (open_obj(&o, "adjust", "tc_meta_read", jit) == 0 && load_obj(&o) == 0) {
        struct frame f;
        udp4(&f, ip4(IP_A, IP_B, 17), 1, 2, NULL, 0);
        if (verdict_unchanged(&o, "no metadata", &f, TC_ACT_OK) == 0) {
            EXPECT_EQ(le32(R.ctx + SKB_MARK), 1);
        }
    }
    close_obj(&o);
}

/* ------------------------------------------------------------------------------------- */
/* skb programs: TC classifiers and socket filters. */

static void
tc_classify(int jit)
{
    struct obj o;
    if (open_obj(&o, "skb", "tc_classify", jit) == 0 && load_obj(&o) == 0) {
        uint8_t payload[1100], ctx[SKB_SIZE];
        struct frame big6, small4, l4;
        memset(payload, 7, sizeof(payload));
        l4 = udp_only(1, 2, payload, sizeof(payload));
        eth6(&big6, 17, NULL, 0, 17, 9, &l4);
        udp4(&small4, ip4(IP_A, IP_B, 17), 1, 2, NULL, 0);
        EXPECT_EQ(big6.len, 1162);

        skb_ctx(ctx);
        store_le32(ctx + SKB_IFINDEX, 4);
        if (run_ctx(&o, "big IPv6", &big6, ctx, sizeof(ctx)) == 0) {
            EXPECT_EQ(R.retval, TC_ACT_OK);
            EXPECT_EQ(R.ctx_len, SKB_SIZE);
            EXPECT_EQ(le32(R.ctx + SKB_PRIORITY), 3);
            EXPECT_EQ(le32(R.ctx + SKB_MARK), 0x200);
            EXPECT_EQ(le32(R.ctx + SKB_CB), 2);
            EXPECT_BYTES("output frame", R.data, R.data_len, big6.b, big6.len);
        }
        skb_ctx(ctx);
        store_le32(ctx + SKB_MARK, 0xdead);
        if (run_ctx(&o, "small IPv4 marked 0xdead", &small4, ctx, sizeof(ctx)) == 0) {
            EXPECT_EQ(R.retval, TC_ACT_SHOT);
        }
        skb_ctx(ctx);
        store_le32(ctx + SKB_IFINDEX, 4);
        if (run_ctx(&o, "small IPv4", &small4, ctx, sizeof(ctx)) == 0) {
            EXPECT_EQ(R.retval, TC_ACT_OK);
            EXPECT_EQ(le32(R.ctx + SKB_PRIORITY), 0);
            EXPECT_EQ(le32(R.ctx + SKB_MARK), 0);
            EXPECT_EQ(le32(R.ctx + SKB_CB), 0);
        }
    }
    close_obj(&o);
}

static void
tc_cb_accumulate(int jit)
{
    struct obj o;
    if (open_obj(&o, "skb", "tc_cb_accumulate", jit) == 0 && load_obj(&o) == 0) {
        uint8_t payload[18] = {0}, ctx[SKB_SIZE];
        struct frame f;
        udp4(&f, ip4(IP_A, IP_B, 17), 1, 2, payload, sizeof(payload));
        skb_ctx(ctx);
        store_le32(ctx + SKB_CB, 3);
        store_le32(ctx + SKB_CB + 4, 1);
        store_le32(ctx + SKB_INGRESS_IFINDEX, 9);
        if (run_ctx(&o, "60 bytes", &f, ctx, sizeof(ctx)) == 0) {
            EXPECT_EQ(R.retval, 181);
            EXPECT_EQ(le32(R.ctx + SKB_CB + 4), 181);
            EXPECT_EQ(le32(R.ctx + SKB_CB + 16), 9);
        }
        skb_ctx(ctx);
        store_le32(ctx + SKB_CB + 4, 0x100);
        if (run_ctx(&o, "60 bytes, cb[1] 0x100", &f, ctx, sizeof(ctx)) == 0) {
            EXPECT_EQ(R.retval, TC_ACT_UNSPEC);
        }
    }
    close_obj(&o);
}

static void
sock_http(int jit)
{
    struct obj o;
    if (open_obj(&o, "skb", "sock_http", jit) == 0 && load_obj(&o) == 0) {
        static const uint8_t nops[] = {1, 1, 1, 0};
        struct ip4 ip = ip4(IP_A, IP_B, 6);
        struct ip4 with_options = ip, frag = ip;
        struct frame f, l4;
        ip4_options(&with_options, nops, sizeof(nops));
        frag.frag_off = 0x0001;
        tcp4(&f, ip, 40000, 443, TCP_SYN, NULL, 0);
        verdict_unchanged(&o, "TCP to 443", &f, (uint32_t)f.len);
        tcp4(&f, ip, 40000, 22, TCP_SYN, NULL, 0);
        verdict_unchanged(&o, "TCP to 22", &f, 0);
        udp4(&f, ip, 40000, 443, NULL, 0);
        verdict_unchanged(&o, "UDP to 443", &f, 0);
        tcp4(&f, with_options, 1, 80, TCP_ACK, STR("GET"));
        verdict_unchanged(&o, "TCP to 80 past options", &f, (uint32_t)f.len);
        tcp4(&f, frag, 1, 80, 0, NULL, 0);
        verdict_unchanged(&o, "later fragment", &f, 0);
        l4 = tcp_only(1, 80, 0, 0);
        eth6(&f, 6, NULL, 0, 6, 9, &l4);
        verdict_unchanged(&o, "IPv6", &f, 0);
    }
    close_obj(&o);
}

static void
sock_dns(int jit)
{
    struct obj o;
    if (open_obj(&o, "skb", "sock_dns", jit) == 0 && load_obj(&o) == 0) {
        static const uint8_t other[4] = {192, 168, 0, 1};
        static const uint8_t ten[4] = {10, 9, 9, 9};
        static const uint8_t nops[] = {1, 1, 1, 0, 1, 1, 1, 0};
        struct ip4 with_options = ip4(ten, IP_B, 17);
        struct frame f;
        ip4_options(&with_options, nops, sizeof(nops));
        udp4(&f, ip4(IP_A, IP_B, 17), 53, 999, STR("a"));
        verdict_unchanged(&o, "DNS from 10.0.0.1", &f, 128);
        udp4(&f, ip4(other, IP_B, 17), 53, 999, STR("a"));
        verdict_unchanged(&o, "DNS from 192.168.0.1", &f, 0);
        udp4(&f, with_options, 53, 999, STR("a"));
        verdict_unchanged(&o, "DNS past options", &f, 128);
        udp4(&f, ip4(IP_A, IP_B, 17), 54, 53, STR("a"));
        verdict_unchanged(&o, "UDP from 54", &f, 0);
        tcp4(&f, ip4(IP_A, IP_B, 6), 53, 999, 0, NULL, 0);
        verdict_unchanged(&o, "TCP from 53", &f, 0);
    }
    close_obj(&o);
}

static void
sock_ipv6(int jit)
{
    struct obj o;
    if (open_obj(&o, "skb", "sock_ipv6", jit) == 0 && load_obj(&o) == 0) {
        static const uint8_t ping[8] = {128, 0, 0, 0, 0, 1, 0, 1};
        uint8_t zeros[12] = {0};
        struct frame f, l4;
        l4 = udp_only(1, 2, zeros, sizeof(zeros));
        eth6(&f, 17, NULL, 0, 17, 9, &l4);
        if (verdict_unchanged(&o, "IPv6 UDP", &f, 0xffffffffu) == 0) {
            EXPECT_EQ(le32(R.ctx + SKB_CB), 20);
        }
        l4.len = 0;
        put_bytes(&l4, ping, sizeof(ping));
        eth6(&f, 58, NULL, 0, 58, 9, &l4);
        if (verdict_unchanged(&o, "ICMPv6", &f, 0xffffffffu) == 0) {
            EXPECT_EQ(le32(R.ctx + SKB_CB), 8);
        }
        l4 = tcp_only(1, 2, 0, 0);
        eth6(&f, 6, NULL, 0, 6, 9, &l4);
        verdict_unchanged(&o, "IPv6 TCP", &f, 0);
        udp4(&f, ip4(IP_A, IP_B, 17), 1, 2, NULL, 0);
        verdict_unchanged(&o, "IPv4 UDP", &f, 0);
    }
    close_obj(&o);
}

/* ------------------------------------------------------------------------------------- */
/* Tracing over plain contexts. */

static void
pt_regs(uint8_t regs[PT_REGS_SIZE], uint64_t rdi, uint64_t rsi, uint64_t rdx)
{
    memset(regs, 0, PT_REGS_SIZE);
    store_le64(regs + PT_RDI, rdi);
    store_le64(regs + PT_RSI, rsi);
    store_le64(regs + PT_RDX, rdx);
}

/* The traced process's memory the uprobe may read. */
struct readable
{
    uint64_t base;
    uint64_t len;
};

static bool
allow_readable(void* ctx, uint64_t addr, uint64_t len)
{
    const struct readable* r = ctx;
    return addr >= r->base && addr <= r->base + r->len && len <= r->base + r->len - addr;
}

/* struct open_event of trace.c: 56 bytes. */
static void
open_event(
    uint8_t out[56],
    int32_t flags,
    uint64_t mode,
    int32_t path_len,
    uint32_t word,
    const char* path)
{
    memset(out, 0, 56);
    store_le32(out, (uint32_t)getpid());
    store_le32(out + 4, (uint32_t)flags);
    store_le64(out + 8, mode);
    store_le32(out + 16, (uint32_t)path_len);
    store_le32(out + 20, word);
    memcpy(out + 24, path, strlen(path));
}

static void
uprobe_open(int jit)
{
    struct obj o;
    if (open_obj(&o, "trace", "uprobe_open", jit) == 0 && load_obj(&o) == 0) {
        static char traced[] = "/etc/hosts";
        static char secret[] = "/root/key";
        struct readable readable = {(uint64_t)(uintptr_t)traced, sizeof(traced)};
        uint8_t regs[PT_REGS_SIZE], want[2][56];
        struct records records;
        EXPECT_EQ(rbpf_set_probe_read(rbpf_program_vm(o.prog), allow_readable, &readable), 0);

        pt_regs(regs, (uint64_t)(uintptr_t)traced, 0x241, 0644);
        if (run_ctx(&o, "open(/etc/hosts, 0x241, 0644)", NULL, regs, sizeof(regs)) == 0) {
            EXPECT_EQ(R.retval, 0);
            EXPECT_BYTES("ctx_out", R.ctx, R.ctx_len, regs, sizeof(regs));
        }
        pt_regs(regs, (uint64_t)(uintptr_t)secret, 0, 0);
        if (run_ctx(&o, "open(secret)", NULL, regs, sizeof(regs)) == 0) {
            EXPECT_EQ(R.retval, 0);
        }

        packet("(after all)", NULL);
        open_event(want[0], 0x241, 0644, 11, le32((const uint8_t*)"/etc"), "/etc/hosts");
        open_event(want[1], 0, 0, -EFAULT, 0, "");
        ring_records(&o, "opens", &records);
        EXPECT_EQ(records.count, 2);
        for (int i = 0; i < 2 && i < records.count; i++) {
            EXPECT_BYTES("opens record", records.data[i], records.len[i], want[i], 56);
        }
    }
    close_obj(&o);
}

static void
kprobe_write(int jit)
{
    struct obj o;
    if (open_obj(&o, "trace", "kprobe_write", jit) == 0 && load_obj(&o) == 0) {
        uint8_t regs[PT_REGS_SIZE];
        uint32_t tid = (uint32_t)syscall(SYS_gettid), zero = 0;
        uint64_t value = 0;
        pt_regs(regs, 3, 0x1000, 100);
        if (run_ctx(&o, "write(3, buf, 100)", NULL, regs, sizeof(regs)) == 0) {
            EXPECT_EQ(R.retval, 0);
        }
        pt_regs(regs, 3, 0x1000, 23);
        if (run_ctx(&o, "write(3, buf, 23)", NULL, regs, sizeof(regs)) == 0) {
            EXPECT_EQ(R.retval, 0);
        }
        packet("(after all)", NULL);
        struct rbpf_map* calls = map(&o, "calls");
        EXPECT_EQ(rbpf_map_lookup_elem(calls, &tid, &value), 0);
        EXPECT_EQ(value, 2);
        EXPECT_EQ(rbpf_map_lookup_elem(calls, &zero, &value), 0);
        EXPECT_EQ(value, 123);
    }
    close_obj(&o);
}

/* The sched_switch tracepoint's record: prev_pid 1 in state `state`, next `comm`/`next_pid`. */
static void
sched_switch_args(uint8_t args[64], int32_t next_pid, const char* comm, int64_t state)
{
    memset(args, 0, 64);
    args[0] = 314 & 0xff; /* common_type */
    args[1] = 314 >> 8;
    store_le32(args + 24, 1);
    store_le64(args + 32, (uint64_t)state);
    memcpy(args + 40, comm, strlen(comm));
    store_le32(args + 56, (uint32_t)next_pid);
}

static void
tp_sched_switch(int jit)
{
    struct obj o;
    if (open_obj(&o, "trace", "tp_sched_switch", jit) == 0 && load_obj(&o) == 0) {
        static const struct
        {
            int32_t pid;
            const char* comm;
            int64_t state;
            uint32_t want;
            const char* name;
        } cases[3] = {
            {100, "sshd", 0, 1, "switch to 100 (sshd), prev state 0"},
            {100, "sshd", 1, 1, "switch to 100 (sshd), prev state 1"},
            {200, "bash", 2, 0, "switch to 200 (bash), prev state 2"},
        };
        uint8_t args[64];
        int32_t pid;
        uint64_t count = 0;
        for (int i = 0; i < 3; i++) {
            sched_switch_args(args, cases[i].pid, cases[i].comm, cases[i].state);
            if (run_ctx(&o, cases[i].name, NULL, args, sizeof(args)) == 0) {
                EXPECT_EQ(R.retval, cases[i].want);
            }
        }
        packet("(after all)", NULL);
        struct rbpf_map* switches = map(&o, "switches");
        pid = 100;
        EXPECT_EQ(rbpf_map_lookup_elem(switches, &pid, &count), 0);
        EXPECT_EQ(count, 2);
        pid = 200;
        EXPECT_EQ(rbpf_map_lookup_elem(switches, &pid, &count), 0);
        EXPECT_EQ(count, 1);
        for (size_t i = 0; i < 3; i++) {
            EXPECT_EQ(global_u64(&o, "prev_states", i), 1);
        }
    }
    close_obj(&o);
}

/* ------------------------------------------------------------------------------------- */

static void (*const cases[])(int jit) = {
    xdp_vlan_filter,  xdp_ipv4_options, xdp_ipv6_exthdr,     xdp_loop_payload,
    xdp_subprogs,     xdp_icmp_echo,    xdp_udp_reflect,     tc_ttl_decrement,
    tc_dnat,          tc_set_dscp,      tc_udp_port,         xdp_flow_count,
    xdp_percpu_proto, xdp_lru_flows,    xdp_rate_limit,      xdp_port_blocklist,
    xdp_ringbuf_syn,  xdp_ringbuf_drop, xdp_perf_sample,     xdp_tail_dispatch,
    xdp_stage_ipv4,   xdp_stage_ipv6,   xdp_redirect_devmap, xdp_redirect_ifindex,
    xdp_decap_ipip,   xdp_push_vlan,    xdp_truncate,        xdp_meta_mark,
    tc_meta_read,     tc_classify,      tc_cb_accumulate,    sock_http,
    sock_dns,         sock_ipv6,        uprobe_open,         kprobe_write,
    tp_sched_switch,
};

int
main(void)
{
    size_t count = sizeof(cases) / sizeof(cases[0]);
    check_builders();
    for (int jit = 0; jit < 2; jit++) {
        for (size_t i = 0; i < count; i++) {
            cases[i](jit);
        }
    }
    printf("%zu corpus programs in both engines: %d failures\n", count, test_failures);
    return TEST_RESULT();
}
