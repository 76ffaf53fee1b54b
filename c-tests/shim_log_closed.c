/* shim_log_closed.c: a daemon-style program that closes every fd above 2
 * (close_range), opens its own data file, which gets the number the shim's
 * ZREAP_LOG fd had, then starts two children and leaves the second to the
 * shim (ZREAP_REAP=all reaps it and would log that). The shim must stop
 * logging rather than write into the program's file: the file must hold
 * only what the program wrote. Usage: shim_log_closed DATA_FILE */
#include "ctest.h"
#include <sys/syscall.h>

int main(int argc, char **argv) {
    ctest_start();
    if (argc != 2) return 2;
    CHECK(syscall(SYS_close_range, 3, ~0U, 0) == 0);
    int fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    CHECK(write(fd, "DATA\n", 5) == 5);
    pid_t waited = fork();
    if (waited == 0) _exit(3);
    int st;
    CHECK(waitpid(waited, &st, 0) == waited);
    pid_t left = fork();
    if (left == 0) _exit(4);
    /* Until it is gone (reaped by the shim, or a zombie without it). */
    CHECK(ctest_exited_within(left, 5000));
    ctest_sleep_ms(50);
    char buf[4096] = {0};
    CHECK(pread(fd, buf, sizeof buf - 1, 0) >= 0);
    if (strcmp(buf, "DATA\n") != 0) fprintf(stderr, "the data file holds:\n%s", buf);
    CHECK(strcmp(buf, "DATA\n") == 0);
    waitpid(left, NULL, WNOHANG);
    return ctest_finish("shim_log_closed");
}
