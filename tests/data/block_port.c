// A tc-style classifier for the rbpf-compatibility test (tests/rbpf_compat.rs): reads the
// packet bounds from its context, as kernel programs read skb->data / skb->data_end, and
// returns 0 (drop) for IPv4/TCP packets to port 9999, -1 (keep) otherwise.
//
// Rebuild: clang -target bpf -O2 -c block_port.c -o block_port.o
// (`EbpfVmFixedMbuff::new(prog, 0x40, 0x50)` writes the packet bounds at those offsets.)

struct context {
    unsigned long long reserved[8];
    unsigned long long data;     // offset 0x40
    unsigned long long pad;
    unsigned long long data_end; // offset 0x50
};

__attribute__((section(".classifier"), used)) int classifier(struct context *ctx)
{
    unsigned char *data = (unsigned char *)(unsigned long)ctx->data;
    unsigned char *end = (unsigned char *)(unsigned long)ctx->data_end;
    // Ethernet (14) + IPv4 without options (20) + TCP ports (4).
    if (data + 14 + 20 + 4 > end)
        return -1;
    if (data[12] != 0x08 || data[13] != 0x00 || data[23] != 6)
        return -1;
    unsigned int port = ((unsigned int)data[36] << 8) | data[37];
    return port == 9999 ? 0 : -1;
}
