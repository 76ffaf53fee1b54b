/* blocked_nosfd.c - the parent blocks SIGCHLD and has no signalfd. */
#include "common.h"

int main(void)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        die("sigprocmask");
    plant_zombies(NCHILDREN);
    ready(getpid());
    sleep_forever();
}
