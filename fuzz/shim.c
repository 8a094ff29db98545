/* libFuzzer's entry points for one target of the Rust harness (src/lib.rs). build.sh compiles
 * this file once per target with -DRBPF_FUZZ_TARGET="\"name\"". */
#include <stddef.h>
#include <stdint.h>

int rbpf_fuzz_init(const char *target);
int rbpf_fuzz_one(const uint8_t *data, size_t len);

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return rbpf_fuzz_init(RBPF_FUZZ_TARGET);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return rbpf_fuzz_one(data, size);
}

/* The C API leg of the `diff` target silences the error printer with this (Rust cannot define
 * a variadic function on the stable toolchain). */
#include <stdio.h>
int rbpf_fuzz_quiet_printer(FILE *stream, const char *format, ...);
int rbpf_fuzz_quiet_printer(FILE *stream, const char *format, ...)
{
    (void)stream;
    (void)format;
    return 0;
}
