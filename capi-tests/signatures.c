/*
 * ABI conformance with uBPF's ubpf.h: every public function is assigned to a pointer declared
 * with uBPF's exact prototype, every typedef is assigned from a pointer of uBPF's exact type,
 * and the structs, enums and macros are checked against uBPF's values. Any drift is a
 * compile error under -Werror; the run itself only checks the values.
 */
#include <stddef.h>

#include "capi_test.h"
#include <rbpf.h>

/* uBPF's internal symbol used by its ubpf_test tool: exported, not declared in ubpf.h. */
void
ubpf_set_register_offset(int x);

/* uBPF's typedefs, spelled out exactly as in uBPF's header. */
typedef uint64_t (*ref_jit_fn)(void* mem, size_t mem_len);
typedef uint64_t (*ref_jit_ex_fn)(void* mem, size_t mem_len, uint8_t* stack, size_t stack_len);
typedef uint64_t (*ref_external_function_t)(uint64_t p0, uint64_t p1, uint64_t p2, uint64_t p3, uint64_t p4);
typedef uint64_t (*ref_dispatcher_t)(
    uint64_t p0, uint64_t p1, uint64_t p2, uint64_t p3, uint64_t p4, unsigned int index, void* cookie);
typedef bool (*ref_validate_t)(unsigned int index, const struct ubpf_vm* vm);
typedef int (*ref_stack_usage_calculator_t)(const struct ubpf_vm* vm, uint16_t pc, void* cookie);
typedef uint64_t (*ref_data_relocation)(
    void* user_context,
    const uint8_t* data,
    uint64_t data_size,
    const char* symbol_name,
    uint64_t symbol_offset,
    uint64_t symbol_size);
typedef bool (*ref_bounds_check)(void* context, uint64_t addr, uint64_t size);
typedef void (*ref_debug_fn)(
    void* context,
    int program_counter,
    const uint64_t registers[16],
    const uint8_t* stack_start,
    size_t stack_length,
    uint64_t register_mask,
    const uint8_t* stack_mask_start);

/* Each typedef of ours must accept a pointer of uBPF's type without a cast. */
static ref_jit_fn ref_jit;
static ref_jit_ex_fn ref_jit_ex;
static ref_external_function_t ref_helper;
static ref_dispatcher_t ref_dispatcher;
static ref_validate_t ref_validate;
static ref_stack_usage_calculator_t ref_calculator;
static ref_data_relocation ref_relocation;
static ref_bounds_check ref_bounds;
static ref_debug_fn ref_debug;

/* Every function of uBPF's ubpf.h, through a pointer with uBPF's exact prototype. */
struct api
{
    struct ubpf_vm* (*create)(void);
    void (*destroy)(struct ubpf_vm* vm);
    bool (*toggle_bounds_check)(struct ubpf_vm* vm, bool enable);
    bool (*toggle_constant_blinding)(struct ubpf_vm* vm, bool enable);
    int (*set_execution_profile)(struct ubpf_vm* vm, enum ubpf_execution_profile profile);
    void (*set_error_print)(struct ubpf_vm* vm, int (*error_printf)(FILE* stream, const char* format, ...));
    external_function_t (*as_external)(void* f);
    int (*reg)(struct ubpf_vm* vm, unsigned int index, const char* name, external_function_t fn);
    int (*register_safe_helper)(struct ubpf_vm* vm, const struct ubpf_safe_helper_descriptor* descriptor);
    int (*register_external_dispatcher)(
        struct ubpf_vm* vm, external_function_dispatcher_t dispatcher, external_function_validate_t validater);
    int (*register_stack_usage_calculator)(struct ubpf_vm* vm, stack_usage_calculator_t calculator, void* cookie);
    int (*load)(struct ubpf_vm* vm, const void* code, uint32_t code_len, char** errmsg);
    void (*unload_code)(struct ubpf_vm* vm);
#if defined(UBPF_HAS_ELF_H)
    int (*load_elf)(struct ubpf_vm* vm, const void* elf, size_t elf_len, char** errmsg);
    int (*load_elf_ex)(
        struct ubpf_vm* vm, const void* elf, size_t elf_len, const char* main_section_name, char** errmsg);
#endif
    int (*exec)(const struct ubpf_vm* vm, void* mem, size_t mem_len, uint64_t* bpf_return_value);
    int (*exec_ex)(
        const struct ubpf_vm* vm,
        void* mem,
        size_t mem_len,
        uint64_t* bpf_return_value,
        uint8_t* stack,
        size_t stack_len);
    ubpf_jit_fn (*compile)(struct ubpf_vm* vm, char** errmsg);
    ubpf_jit_ex_fn (*compile_ex)(struct ubpf_vm* vm, char** errmsg, enum JitMode jit_mode);
    ubpf_jit_fn (*copy_jit)(struct ubpf_vm* vm, void* buffer, size_t size, char** errmsg);
    int (*translate)(struct ubpf_vm* vm, uint8_t* buffer, size_t* size, char** errmsg);
    int (*translate_ex)(struct ubpf_vm* vm, uint8_t* buffer, size_t* size, char** errmsg, enum JitMode jit_mode);
    int (*set_unwind_function_index)(struct ubpf_vm* vm, unsigned int idx);
    void (*set_registers)(struct ubpf_vm* vm, uint64_t* regs);
    uint64_t* (*get_registers)(const struct ubpf_vm* vm);
    int (*set_pointer_secret)(struct ubpf_vm* vm, uint64_t secret);
    int (*register_data_relocation)(struct ubpf_vm* vm, void* user_context, ubpf_data_relocation relocation);
    int (*register_data_bounds_check)(struct ubpf_vm* vm, void* user_context, ubpf_bounds_check bounds_check);
    int (*register_safe_region)(struct ubpf_vm* vm, const struct ubpf_safe_region* region);
    int (*set_jit_code_size)(struct ubpf_vm* vm, size_t code_size);
    int (*set_instruction_limit)(struct ubpf_vm* vm, uint32_t limit, uint32_t* previous_limit);
    bool (*toggle_undefined_behavior_check)(struct ubpf_vm* vm, bool enable);
    bool (*toggle_readonly_bytecode)(struct ubpf_vm* vm, bool enable);
    int (*register_debug_fn)(struct ubpf_vm* vm, void* context, ubpf_debug_fn debug_function);
    /* Not in ubpf.h; declared above as uBPF's ubpf_test declares it. */
    void (*set_register_offset)(int x);
    /* librbpf extensions (rbpf.h). */
    const char* (*version)(void);
};

static const struct api api = {
    .create = ubpf_create,
    .destroy = ubpf_destroy,
    .toggle_bounds_check = ubpf_toggle_bounds_check,
    .toggle_constant_blinding = ubpf_toggle_constant_blinding,
    .set_execution_profile = ubpf_set_execution_profile,
    .set_error_print = ubpf_set_error_print,
    .as_external = as_external_function_t,
    .reg = ubpf_register,
    .register_safe_helper = ubpf_register_safe_helper,
    .register_external_dispatcher = ubpf_register_external_dispatcher,
    .register_stack_usage_calculator = ubpf_register_stack_usage_calculator,
    .load = ubpf_load,
    .unload_code = ubpf_unload_code,
#if defined(UBPF_HAS_ELF_H)
    .load_elf = ubpf_load_elf,
    .load_elf_ex = ubpf_load_elf_ex,
#endif
    .exec = ubpf_exec,
    .exec_ex = ubpf_exec_ex,
    .compile = ubpf_compile,
    .compile_ex = ubpf_compile_ex,
    .copy_jit = ubpf_copy_jit,
    .translate = ubpf_translate,
    .translate_ex = ubpf_translate_ex,
    .set_unwind_function_index = ubpf_set_unwind_function_index,
    .set_registers = ubpf_set_registers,
    .get_registers = ubpf_get_registers,
    .set_pointer_secret = ubpf_set_pointer_secret,
    .register_data_relocation = ubpf_register_data_relocation,
    .register_data_bounds_check = ubpf_register_data_bounds_check,
    .register_safe_region = ubpf_register_safe_region,
    .set_jit_code_size = ubpf_set_jit_code_size,
    .set_instruction_limit = ubpf_set_instruction_limit,
    .toggle_undefined_behavior_check = ubpf_toggle_undefined_behavior_check,
    .toggle_readonly_bytecode = ubpf_toggle_readonly_bytecode,
    .register_debug_fn = ubpf_register_debug_fn,
    .set_register_offset = ubpf_set_register_offset,
    .version = rbpf_version,
};

/* uBPF's LP64 struct layouts. */
#if UINTPTR_MAX == 0xffffffffffffffffu
_Static_assert(sizeof(struct ubpf_safe_region) == 32, "ubpf_safe_region size");
_Static_assert(offsetof(struct ubpf_safe_region, id) == 0, "id");
_Static_assert(offsetof(struct ubpf_safe_region, base) == 8, "base");
_Static_assert(offsetof(struct ubpf_safe_region, size) == 16, "size");
_Static_assert(offsetof(struct ubpf_safe_region, kind) == 24, "kind");
_Static_assert(offsetof(struct ubpf_safe_region, permissions) == 28, "permissions");
_Static_assert(sizeof(struct ubpf_safe_helper_descriptor) == 40, "descriptor size");
_Static_assert(offsetof(struct ubpf_safe_helper_descriptor, index) == 0, "index");
_Static_assert(offsetof(struct ubpf_safe_helper_descriptor, name) == 8, "name");
_Static_assert(offsetof(struct ubpf_safe_helper_descriptor, fn) == 16, "fn");
_Static_assert(offsetof(struct ubpf_safe_helper_descriptor, result_kind) == 24, "result_kind");
_Static_assert(offsetof(struct ubpf_safe_helper_descriptor, region_id) == 28, "region_id");
_Static_assert(offsetof(struct ubpf_safe_helper_descriptor, region_size) == 32, "region_size");
#endif
_Static_assert(sizeof(enum JitMode) == sizeof(int), "enum JitMode is int-sized");

/* uBPF's enum values and limit macros. */
_Static_assert(ExtendedJitMode == 0 && BasicJitMode == 1, "JitMode");
_Static_assert(UBPF_EXECUTION_PROFILE_LEGACY == 0 && UBPF_EXECUTION_PROFILE_SAFE == 1, "profile");
_Static_assert(UBPF_SAFE_REGION_POINTER == 0 && UBPF_SAFE_REGION_HANDLE == 1, "region kind");
_Static_assert(
    UBPF_SAFE_REGION_READ == 1 && UBPF_SAFE_REGION_WRITE == 2 && UBPF_SAFE_REGION_ATOMIC == 4, "permissions");
_Static_assert(
    UBPF_SAFE_HELPER_RESULT_SCALAR == 0 && UBPF_SAFE_HELPER_RESULT_POINTER == 1 &&
        UBPF_SAFE_HELPER_RESULT_HANDLE == 2,
    "result kind");
_Static_assert(UBPF_MAX_INSTS == 65536, "UBPF_MAX_INSTS");
_Static_assert(UBPF_MAX_CALL_DEPTH == 8, "UBPF_MAX_CALL_DEPTH");
_Static_assert(UBPF_EBPF_STACK_SIZE == 4096, "UBPF_EBPF_STACK_SIZE");
_Static_assert(UBPF_EBPF_STACK_SIZE % 16 == 0, "stack divisible by 16");
_Static_assert(UBPF_EBPF_LOCAL_FUNCTION_STACK_SIZE == 256, "UBPF_EBPF_LOCAL_FUNCTION_STACK_SIZE");
_Static_assert(UBPF_MAX_EXT_FUNCS == 64, "UBPF_MAX_EXT_FUNCS");
_Static_assert(UBPF_EBPF_NONVOLATILE_SIZE == 40, "UBPF_EBPF_NONVOLATILE_SIZE");

int
main(void)
{
    ubpf_jit_fn jit = ref_jit;
    ubpf_jit_ex_fn jit_ex = ref_jit_ex;
    external_function_t helper = ref_helper;
    external_function_dispatcher_t dispatcher = ref_dispatcher;
    external_function_validate_t validate = ref_validate;
    stack_usage_calculator_t calculator = ref_calculator;
    ubpf_data_relocation relocation = ref_relocation;
    ubpf_bounds_check bounds = ref_bounds;
    ubpf_debug_fn debug = ref_debug;
    CHECK(jit == NULL && jit_ex == NULL && helper == NULL && dispatcher == NULL);
    CHECK(validate == NULL && calculator == NULL && relocation == NULL && bounds == NULL);
    CHECK(debug == NULL);

    /* Every pointer resolved to a real definition in librbpf. */
    const void* const* entries = (const void* const*)&api;
    for (size_t i = 0; i < sizeof(api) / sizeof(void*); i++) {
        CHECK(entries[i] != NULL);
    }

    /* The extension header works and reports the version. */
    const char* version = api.version();
    CHECK(version != NULL && version[0] != '\0');

    struct ubpf_vm* vm = api.create();
    CHECK(vm != NULL);
    api.set_register_offset(0);
    api.destroy(vm);
    return TEST_RESULT();
}
