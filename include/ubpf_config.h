/*
 * ubpf_config.h: build configuration of librbpf, included by ubpf.h (as uBPF's generated
 * ubpf_config.h is). librbpf always provides the ELF loader, so ubpf_load_elf and
 * ubpf_load_elf_ex are declared.
 */
#ifndef UBPF_CONFIG_H
#define UBPF_CONFIG_H

#define UBPF_HAS_ELF_H 1

#endif /* UBPF_CONFIG_H */
