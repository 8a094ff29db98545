//! The Linux kernel's ABI for eBPF programs: ELF objects as clang and libbpf lay them out
//! (maps declared in `.maps`/`maps`, BTF, relocations), and the kernel's helpers at their
//! kernel numbers. This layer sits above the VM: it loads into a [`crate::vm::Vm`] and
//! registers helpers on it, and reaches the running program only through [`crate::exec`].

pub(crate) mod btf;
pub mod context;
pub mod elf;
pub mod helpers;
pub mod object;
pub(crate) mod object_maps;
pub mod packet;
pub mod program_type;
pub mod test_run;
