/* The driver the C peer workers (uv.c, glib.c) share with zreap-bench's own
 * `live` worker (bench/src/live.rs): the same modes, arguments and key=value
 * output. A peer includes this file first, then defines struct proc,
 * peer_init, peer_spawn, peer_pid and peer_wait.
 *
 *   PEER MODE N ITERS WARMUP TINY TINY_BLOCK
 *
 * N live children (TINY_BLOCK, blocked reading a pipe on fd 0) are started
 * first, then WARMUP + ITERS rounds of MODE:
 *   start     time one start of TINY_BLOCK on a pipe of its own, then close
 *             the pipe and wait for the exit, untimed (so no exit of the
 *             measured child lands in the timed start)
 *   cycle     time one start of TINY and the wait for its status
 *   latency   start TINY_BLOCK on a pipe of its own, wait until it sleeps in
 *             read(), then time from closing the pipe to the status delivered
 *   syscalls  as latency, the timed part (after the warm-up rounds) between
 *             access() markers for strace
 * Prints make_ns=, samples= (ns, ITERS of them) and tids= (this process's
 * threads), exits 0; on failure prints why on stderr and exits 1. With
 * ZREAP_BENCH_DRIVEN set, each line read from stdin runs one more block of
 * WARMUP + ITERS rounds and prints its samples=, until end of file. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

struct proc;
static struct proc *peer_spawn(const char *prog, int stdin_fd);
static int peer_pid(struct proc *p);
static void peer_wait(struct proc *p);
static void peer_init(void);

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void cloexec_pipe(int fds[2]) {
    if (pipe2(fds, O_CLOEXEC) == -1) die("pipe2: %s", strerror(errno));
}

/* Waits until the child sleeps (state S: blocked in its read()). */
static void wait_sleeping(int pid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    long long deadline = now_ns() + 10000000000LL;
    for (;;) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd == -1) die("open %s: %s", path, strerror(errno));
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n > 0) {
            buf[n] = 0;
            char *p = strrchr(buf, ')');
            if (p && p[1] == ' ' && p[2] == 'S') return;
        }
        if (now_ns() > deadline) die("child %d never blocked in read()", pid);
        sched_yield();
    }
}

static void print_tids(void) {
    DIR *d = opendir("/proc/self/task");
    if (!d) die("opendir /proc/self/task: %s", strerror(errno));
    struct dirent *e;
    const char *sep = "";
    printf("tids=");
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        printf("%s%s", sep, e->d_name);
        sep = ",";
    }
    printf("\n");
    closedir(d);
}

/* Runs WARMUP + ITERS rounds of MODE and prints the timed ones as samples=. */
static void run_block(const char *mode, long warmup, long iters, const char *tiny, const char *tiny_block,
                      long long *samples) {
    int cycle = !strcmp(mode, "cycle"), start = !strcmp(mode, "start"), syscalls = !strcmp(mode, "syscalls");
    for (long i = 0; i < warmup + iters; i++) {
        long long t0, t;
        if (cycle) {
            t0 = now_ns();
            peer_wait(peer_spawn(tiny, -1));
            t = now_ns() - t0;
        } else if (start) {
            int b[2];
            cloexec_pipe(b);
            t0 = now_ns();
            struct proc *p = peer_spawn(tiny_block, b[0]);
            t = now_ns() - t0;
            close(b[0]);
            close(b[1]);
            peer_wait(p);
        } else {
            int b[2];
            cloexec_pipe(b);
            struct proc *p = peer_spawn(tiny_block, b[0]);
            close(b[0]);
            wait_sleeping(peer_pid(p));
            int marked = syscalls && i >= warmup;
            if (marked) access("/zreap-bench-mark-begin", F_OK);
            t0 = now_ns();
            close(b[1]);
            peer_wait(p);
            t = now_ns() - t0;
            if (marked) access("/zreap-bench-mark-end", F_OK);
        }
        if (i >= warmup) samples[i - warmup] = t;
    }
    printf("samples=");
    for (long i = 0; i < iters; i++) printf("%s%lld", i ? "," : "", samples[i]);
    printf("\n");
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc != 7) die("usage: %s MODE N ITERS WARMUP TINY TINY_BLOCK", argv[0]);
    const char *mode = argv[1];
    long n = atol(argv[2]), iters = atol(argv[3]), warmup = atol(argv[4]);
    const char *tiny = argv[5], *tiny_block = argv[6];
    int start = !strcmp(mode, "start"), cycle = !strcmp(mode, "cycle");
    int latency = !strcmp(mode, "latency"), syscalls = !strcmp(mode, "syscalls");
    if (!(start || cycle || latency || syscalls)) die("unknown mode %s", mode);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    peer_init();
    int a[2];
    cloexec_pipe(a);
    struct proc **live = calloc(n ? n : 1, sizeof *live);
    if (!live) die("calloc");
    long long t0 = now_ns();
    for (long i = 0; i < n; i++) live[i] = peer_spawn(tiny_block, a[0]);
    printf("make_ns=%lld\n", now_ns() - t0);
    long long *samples = calloc(iters ? iters : 1, sizeof *samples);
    if (!samples) die("calloc");
    if (getenv("ZREAP_BENCH_DRIVEN")) {
        char line[64];
        while (fgets(line, sizeof line, stdin)) run_block(mode, warmup, iters, tiny, tiny_block, samples);
    } else {
        run_block(mode, warmup, iters, tiny, tiny_block, samples);
    }
    close(a[1]);
    for (long i = 0; i < n; i++) peer_wait(live[i]);
    close(a[0]);
    print_tids();
    return 0;
}
