/* Starting a tracked child does not wake the keeper (the internal thread that
 * holds tracked children's pidfds): the pidfd joins the keeper's epoll set at
 * once and waits on a socket the keeper reads only when it needs a pidfd or
 * is rung. The keeper wakes when a child exits.
 *
 * Checked on the keeper's own counters in /proc: its voluntary context
 * switches grow by far less than one per start while 20 tracked children
 * start and stay alive (they grew by at least one per start when each
 * pidfd woke it), and its fd table stays small over 2,000 zfork + zwait
 * rounds, whose pidfds it takes in batches, after their children are gone.
 * The keeper runs 10 steps nicer than the program (at most 19).
 * Along the way: every exit keeps its status, whether a blocking zwait reaps
 * the child itself or the keeper does; no zombie is left. */
#include "ctest.h"

#define LIVE 20
#define ROUNDS 2000
#define BATCH 50

/* A thread's nice value (field 19 of /proc/self/task/TID/stat); 99 if
 * unreadable. */
static int nice_of(pid_t tid) {
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
    FILE *stat = fopen(path, "r");
    if (stat == NULL) return 99;
    char *fields = fgets(line, sizeof line, stat) ? strrchr(line, ')') : NULL;
    fclose(stat);
    int nice = 99;
    /* After the command name: state (3) ... nice (19). */
    if (fields == NULL || sscanf(fields + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %d", &nice) != 1)
        return 99;
    return nice;
}

/* The number of fds in the keeper's private table. */
static int keeper_fds(pid_t tid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/fd", (int)tid);
    DIR *dir = opendir(path);
    if (dir == NULL) return -1;
    int n = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) n += entry->d_name[0] != '.';
    closedir(dir);
    return n;
}

int main(void) {
    ctest_start();
    CHECK(zreap_install(ZREAP_OWN) == 0);
    int st = -1;
    pid_t first = zfork(NULL);
    if (first == 0) _exit(7);
    CHECK(first > 0 && zwait(first, &st, 0) == first && WIFEXITED(st) && WEXITSTATUS(st) == 7);
    CHECK(ctest_tasks() == 2);
    pid_t keeper = ctest_other_thread();
    CHECK(keeper > 0);
    int own_fds = keeper_fds(keeper);
    CHECK(own_fds > 0);
    /* Below the program's threads, so that a waiter woken by the same exit
     * runs first on a busy CPU. */
    int main_nice = nice_of(getpid()), keeper_nice = nice_of(keeper);
    printf("nice: main %d, keeper %d\n", main_nice, keeper_nice);
    CHECK(main_nice <= 19 && keeper_nice == (main_nice + 10 < 19 ? main_nice + 10 : 19));

    /* Starts that do not wake it. */
    int gate[2];
    CHECK(pipe2(gate, O_CLOEXEC) == 0);
    ctest_sleep_ms(50); /* the keeper is back asleep after the first exit */
    long before = ctest_thread_sleeps(keeper);
    pid_t kids[LIVE];
    for (int i = 0; i < LIVE; i++) {
        kids[i] = zfork(NULL);
        if (kids[i] == 0) {
            char c;
            close(gate[1]);
            (void)!read(gate[0], &c, 1);
            _exit(i);
        }
        CHECK(kids[i] > 0);
    }
    ctest_sleep_ms(50);
    long woken = ctest_thread_sleeps(keeper) - before;
    printf("keeper woken %ld times by %d starts\n", woken, LIVE);
    CHECK(before >= 0 && woken <= 3);
    close(gate[1]);
    for (int i = 0; i < LIVE; i++) CHECK(zwait(kids[i], &st, 0) == kids[i] && WIFEXITED(st) && WEXITSTATUS(st) == i);
    close(gate[0]);

    /* Blocking waits reap their children themselves; the keeper closes their
     * pidfds when it takes them off the socket. */
    CHECK(ctest_zfork_zwait_rounds(ROUNDS, 200));
    int held = keeper_fds(keeper);
    printf("keeper fds: %d of its own, %d after %d rounds\n", own_fds, held, ROUNDS);
    CHECK(held >= own_fds && held <= own_fds + 40);

    /* Children the keeper reaps: waits for any child take them from the table. */
    int seen[BATCH] = {0};
    for (int i = 0; i < BATCH; i++) {
        pid_t pid = zfork(NULL);
        if (pid == 0) _exit(100 + i);
        CHECK(pid > 0);
    }
    for (int i = 0; i < BATCH; i++) {
        pid_t pid = zwait(-1, &st, 0);
        CHECK(pid > 0 && WIFEXITED(st) && WEXITSTATUS(st) >= 100 && WEXITSTATUS(st) < 100 + BATCH);
        if (pid > 0 && WIFEXITED(st)) seen[WEXITSTATUS(st) - 100]++;
    }
    for (int i = 0; i < BATCH; i++) CHECK(seen[i] == 1);
    CHECK_ERR(zwait(-1, &st, WNOHANG), ECHILD);
    CHECK(ctest_zombies() == 0);
    return ctest_finish("reaper_keeper_quiet");
}
