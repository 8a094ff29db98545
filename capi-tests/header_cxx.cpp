// The headers must compile as C++ (-Wall -Wextra -Werror) and declare the functions with C
// linkage, as uBPF's do. C++ code registers helpers of other types through
// as_external_function_t.
#include <ubpf.h>
#include <rbpf.h>

#include <cstdint>

static uint32_t
square(uint32_t x)
{
    return x * x;
}

int
main()
{
    struct ubpf_vm* vm = ubpf_create();
    if (vm == nullptr) {
        return 1;
    }
    int rc = ubpf_register(vm, 0, "square", as_external_function_t(reinterpret_cast<void*>(&square)));
    ubpf_destroy(vm);
    return rc == 0 && rbpf_version() != nullptr ? 0 : 1;
}
