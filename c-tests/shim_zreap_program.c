/* shim_zreap_program.c: a program that uses zreap's library itself, run under
 * the preload shim (a script run by `zreap run` may start one). The library
 * reaps its children through pidfds and answers zwait from its own records;
 * the shim, which would reap them too (its handler wrapper, or its thread
 * under ZREAP_REAP=all), leaves them to it from the library's first use on.
 *
 * Usage: shim_zreap_program FLAGS
 *   FLAGS: zreap_install's flags, or -1 for no zreap_install.
 * First a plain fork() child that exits 3 and is waited for only at the end
 * (under ZREAP_REAP=all the shim's thread has stored it by then); then 100
 * children from zspawn and zfork, alternately, each exiting 5: three in four
 * waited for at once (a blocking zwait, which lost the status now and then to
 * a shim that reaped beside the library) and one in four after it exited.
 * Last, the threads the process had before the library's first use (under
 * ZREAP_REAP=all, the shim's reaper thread, started by the plain child) stay
 * asleep once the shim stood down: they woke once a second before. */
#include "ctest.h"

#define MAX_THREADS 8

/* The threads of this process other than the calling one; returns how many. */
static int other_threads(pid_t tids[MAX_THREADS]) {
    int n = 0;
    DIR *dir = opendir("/proc/self/task");
    if (dir == NULL) return 0;
    for (struct dirent *e; (e = readdir(dir)) != NULL && n < MAX_THREADS;) {
        pid_t tid = (pid_t)atoi(e->d_name);
        if (tid > 0 && tid != (pid_t)syscall(SYS_gettid)) tids[n++] = tid;
    }
    closedir(dir);
    return n;
}

/* A thread's voluntary context switches so far; -1 if unreadable. */
static long wakeups(pid_t tid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/self/task/%d/status", (int)tid);
    FILE *status = fopen(path, "re");
    if (status == NULL) return -1;
    long n = -1;
    while (fgets(line, sizeof line, status))
        if (sscanf(line, "voluntary_ctxt_switches: %ld", &n) == 1) break;
    fclose(status);
    return n;
}

static pid_t make(int i) {
    if (i % 2) {
        pid_t pid = zfork(NULL);
        if (pid == 0) _exit(5);
        return pid;
    }
    char *argv[] = {"sh", "-c", "exit 5", NULL};
    return zspawn("/bin/sh", argv, NULL, NULL);
}

int main(int argc, char **argv) {
    ctest_start();
    int flags = ctest_flags_arg(argc, argv);
    pid_t plain = fork();
    if (plain == 0) _exit(3);
    CHECK(plain > 0);
    ctest_sleep_ms(50);
    pid_t before[MAX_THREADS];
    int threads_before = other_threads(before);
    if (flags >= 0) CHECK(zreap_install((unsigned)flags) == 0);
    for (int i = 0; i < 100; i++) {
        pid_t pid = make(i);
        CHECK(pid > 0);
        if (i % 4 == 3) ctest_sleep_ms(20);
        int st = -1;
        pid_t got = zwait(pid, &st, 0);
        if (got != pid) fprintf(stderr, "child %d (pid %d): zwait returned %d\n", i, (int)pid, (int)got);
        CHECK(got == pid);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 5);
    }
    /* The plain child: the shim's store or the kernel has its status (zreap's
     * all-children scope may have reaped it too: then zwait has it). */
    int st = -1;
    pid_t got = waitpid(plain, &st, 0);
    if (got != plain && flags >= 0 && (flags & ZREAP_OWN) == 0) got = zwait(plain, &st, WNOHANG);
    CHECK(got == plain);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 3);
    CHECK(ctest_zombies() == 0);
    long woke[MAX_THREADS];
    for (int i = 0; i < threads_before; i++) woke[i] = wakeups(before[i]);
    if (threads_before > 0) ctest_sleep_ms(2100);
    for (int i = 0; i < threads_before; i++) {
        long later = wakeups(before[i]);
        if (later - woke[i] > 1) fprintf(stderr, "thread %d woke %ld times in 2.1 s\n", (int)before[i], later - woke[i]);
        CHECK(later - woke[i] <= 1);
    }
    return ctest_finish("shim_zreap_program");
}
