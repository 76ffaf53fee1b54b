/* A process made by a raw clone() (no CLONE_VM: no fork handlers run) while
 * another thread holds zreap's gate inherits the gate held, by a thread it
 * does not have. Its own fork() must not wait for that gate forever. Under
 * zreap_install(0), a thread takes the gate over and over (zwait for pid 1,
 * which is not its child: ECHILD) while the main thread makes 200 raw clone
 * children, each of which forks a child that exits 3 and waits for it. Each
 * clone child must end, with 0, within 10 s; one that does not is killed and
 * the test fails. */
#include "ctest.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/mman.h>

#define STACK_SIZE (256 * 1024)
#define CLONES 200

static atomic_int stop;

static void *take_the_gate(void *arg) {
    (void)arg;
    int status;
    while (!atomic_load(&stop))
        zwait(1, &status, WNOHANG);
    return NULL;
}

static int clone_child(void *arg) {
    (void)arg;
    pid_t pid = fork();
    if (pid == 0)
        _exit(3);
    if (pid < 0)
        return 10;
    int status = 0;
    if (waitpid(pid, &status, 0) != pid)
        return 11;
    return WIFEXITED(status) && WEXITSTATUS(status) == 3 ? 0 : 12;
}

int main(void) {
    ctest_start();
    CHECK(zreap_install(0) == 0);
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, take_the_gate, NULL) == 0);
    char *stack = mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(stack != MAP_FAILED);

    int hung = 0, failed = 0;
    for (int i = 0; i < CLONES && !hung; i++) {
        pid_t child = clone(clone_child, stack + STACK_SIZE, SIGCHLD, NULL);
        CHECK(child > 0);
        if (child <= 0)
            break;
        int status = 0;
        pid_t got = 0;
        for (int tick = 0; tick < 1000 && got != child; tick++) {
            got = zwait(child, &status, WNOHANG);
            if (got != child)
                ctest_sleep_ms(10);
        }
        if (got != child) {
            fprintf(stderr, "clone child %d of %d still running after 10 s\n", i + 1, CLONES);
            hung = 1;
            kill(child, SIGKILL);
            zwait(child, &status, 0);
        } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            failed++;
        }
    }
    CHECK(!hung);
    CHECK(failed == 0);
    atomic_store(&stop, 1);
    CHECK(pthread_join(thread, NULL) == 0);
    CHECK(ctest_zombies() == 0);
    return ctest_finish("reaper_raw_clone_gate");
}
