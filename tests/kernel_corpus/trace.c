/* Tracing programs over plain contexts: uprobe/kprobe over struct pt_regs (x86-64) read
 * with libbpf's PT_REGS_* macros and bpf_probe_read_user*, and a tracepoint over its
 * format's fields. Build with -D__TARGET_ARCH_x86. */
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} opens SEC(".maps");

struct open_event {
	__u32 pid;
	__s32 flags;
	__u64 mode;
	__s32 path_len;
	__u32 first_word;
	char path[32];
};

/* A uprobe on open(path, flags, mode): one ring-buffer record with the arguments, the path
 * read from the traced process with bpf_probe_read_user_str and a header word with
 * bpf_probe_read_user. */
SEC("uprobe")
int uprobe_open(struct pt_regs *ctx)
{
	const char *path = (const char *)PT_REGS_PARM1(ctx);
	struct open_event *e;

	e = bpf_ringbuf_reserve(&opens, sizeof(*e), 0);
	if (!e)
		return 0;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->flags = (int)PT_REGS_PARM2(ctx);
	e->mode = PT_REGS_PARM3(ctx);
	e->path_len = bpf_probe_read_user_str(e->path, sizeof(e->path), path);
	if (bpf_probe_read_user(&e->first_word, sizeof(e->first_word), path))
		e->first_word = 0;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 128);
	__type(key, __u32);
	__type(value, __u64);
} calls SEC(".maps");

/* A kprobe counting calls per thread id, summing the second argument (a size) into the
 * same map under key 0; returns 0 as kprobes do. */
SEC("kprobe/vfs_write")
int kprobe_write(struct pt_regs *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u32 total = 0;
	__u64 one = 1, size = PT_REGS_PARM3(ctx);
	__u64 *v;

	v = bpf_map_lookup_elem(&calls, &tid);
	if (v)
		__sync_fetch_and_add(v, 1);
	else
		bpf_map_update_elem(&calls, &tid, &one, BPF_NOEXIST);
	v = bpf_map_lookup_elem(&calls, &total);
	if (v)
		__sync_fetch_and_add(v, size);
	else
		bpf_map_update_elem(&calls, &total, &size, BPF_NOEXIST);
	return 0;
}

/* The fields of /sys/kernel/tracing/events/sched/sched_switch/format. */
struct sched_switch_args {
	unsigned short common_type;
	unsigned char common_flags;
	unsigned char common_preempt_count;
	int common_pid;
	char prev_comm[16];
	int prev_pid;
	int prev_prio;
	long prev_state;
	char next_comm[16];
	int next_pid;
	int next_prio;
};

/* Switches per next_pid; prev_state histogram (running, sleeping, other) in .bss. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 128);
	__type(key, int);
	__type(value, __u64);
} switches SEC(".maps");

__u64 prev_states[3];

SEC("tracepoint/sched/sched_switch")
int tp_sched_switch(struct sched_switch_args *ctx)
{
	int pid = ctx->next_pid;
	__u64 one = 1, *v;
	long state = ctx->prev_state;

	v = bpf_map_lookup_elem(&switches, &pid);
	if (v)
		*v += 1;
	else
		bpf_map_update_elem(&switches, &pid, &one, BPF_ANY);
	prev_states[state == 0 ? 0 : state == 1 ? 1 : 2]++;
	return ctx->next_comm[0] == 's';
}
