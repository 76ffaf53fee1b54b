/* The shim benchmark's child: a static program that loads nothing (no libc,
 * no dynamic loader, so LD_PRELOAD does not apply) and exits 0 at once, so a
 * fork+execve+waitpid loop of it measures the parent's fork and wait path.
 * Built with cc -nostdlib -static. */
#if defined(__x86_64__)
__asm__(".globl _start\n_start:\n\tmov $60, %eax\n\txor %edi, %edi\n\tsyscall\n");
#elif defined(__aarch64__)
__asm__(".globl _start\n_start:\n\tmov x8, #93\n\tmov x0, #0\n\tsvc #0\n");
#else
#error "tiny.c: no _start for this architecture"
#endif
