/* zombie_dthread.c - a zombie whose main thread exited while another of its
   threads is stuck in D state. The helper forks X; in X a second thread calls
   vfork() and the vfork child sleeps before it would exec, so that thread
   waits (D state) for it; X's main thread then calls pthread_exit(). X shows
   as a zombie (Zl) of the helper, which is not reapable until the thread
   returns. */
#include "common.h"
#include <pthread.h>

static volatile int in_vfork;

static void *vforker(void *arg)
{
    pid_t pid;

    (void)arg;
    in_vfork = 1;
    pid = vfork();
    if (pid == 0) {
        sleep(600); /* before exec: the parent thread stays in vfork */
        _exit(0);
    }
    return NULL;
}

int main(void)
{
    pid_t x = fork();

    if (x < 0)
        die("fork");
    if (x == 0) {
        pthread_t t;
        if (pthread_create(&t, NULL, vforker, NULL) != 0)
            _exit(1);
        while (!in_vfork)
            usleep(1000);
        usleep(100 * 1000);
        pthread_exit(NULL);
    }
    ready(getpid());
    sleep_forever();
}
