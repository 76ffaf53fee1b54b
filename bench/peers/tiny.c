/* The child the scaling, latency and syscall rows start: no libc, no dynamic
 * loader, two system calls. Built with -DBLOCK it first reads one byte from
 * fd 0 (blocking until the write end of that pipe is closed); without, it
 * exits at once. Compiled at bench time: cc -nostdlib -static -O2. */
#if defined(__x86_64__)
static long sys3(long nr, long a, long b, long c) {
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return ret;
}
#define SYS_READ 0
#define SYS_EXIT 60
#elif defined(__aarch64__)
static long sys3(long nr, long a, long b, long c) {
    register long x8 __asm__("x8") = nr;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    __asm__ volatile("svc #0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
    return x0;
}
#define SYS_READ 63
#define SYS_EXIT 93
#else
#error "tiny.c: only x86_64 and aarch64"
#endif

void _start(void) {
#ifdef BLOCK
    char b;
    sys3(SYS_READ, 0, (long)&b, 1);
#endif
    sys3(SYS_EXIT, 0, 0, 0);
    for (;;) {
    }
}
