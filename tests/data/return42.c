/* Source of return42.bpf.o, built with: clang -O2 -target bpf -c return42.c -o return42.bpf.o */
int entry(void *mem)
{
    (void)mem;
    return 42;
}

int other(void *mem)
{
    (void)mem;
    return 7;
}
