/* shim_stand_down_keeps_disposition.c: with the core loaded but inactive
 * (ZREAP_REAP=off beside ZREAP_LOG, or a bad ZREAP_* value), the program's
 * SIGCHLD disposition, a handler or SIG_IGN ("ign"), survives the shim's
 * stand-down at the library's first use. */
#include "ctest.h"

static volatile sig_atomic_t calls;

static void count_calls(int sig) {
    (void)sig;
    calls++;
}

/* SIGCHLD's disposition in the kernel, from /proc/self/status. */
static const char *kernel_disposition(void) {
    FILE *status = fopen("/proc/self/status", "re");
    char line[256];
    unsigned long long caught = 0, ignored = 0;
    while (status && fgets(line, sizeof line, status)) {
        if (!strncmp(line, "SigCgt:", 7)) caught = strtoull(line + 7, NULL, 16);
        if (!strncmp(line, "SigIgn:", 7)) ignored = strtoull(line + 7, NULL, 16);
    }
    if (status) fclose(status);
    unsigned long long bit = 1ULL << (SIGCHLD - 1);
    return caught & bit ? "handler" : ignored & bit ? "SIG_IGN" : "SIG_DFL";
}

int main(int argc, char **argv) {
    ctest_start();
    int ignore = argc > 1 && !strcmp(argv[1], "ign");
    CHECK(signal(SIGCHLD, ignore ? SIG_IGN : count_calls) != SIG_ERR);
    const char *before = kernel_disposition();
    char *argv_true[] = {"true", NULL};
    pid_t pid = zspawn("/bin/true", argv_true, NULL, NULL); /* the library's first use */
    CHECK(pid > 0);
    int status;
    pid_t got = zwait(pid, &status, 0);
    /* Under SIG_IGN the kernel may have taken the exit: ECHILD, once. */
    CHECK(got == pid || (ignore && got == -1 && errno == ECHILD));
    const char *after = kernel_disposition();
    printf("SIGCHLD in the kernel: before the library %s, after %s\n", before, after);
    CHECK(!strcmp(before, ignore ? "SIG_IGN" : "handler"));
    CHECK(!strcmp(before, after));
    return ctest_finish("shim_stand_down_keeps_disposition");
}
