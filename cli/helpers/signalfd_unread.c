/* signalfd_unread.c - the parent blocks SIGCHLD and has a signalfd for it,
   but its "loop" sleeps and never reads it. */
#include "common.h"
#include <sys/signalfd.h>

int main(void)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        die("sigprocmask");
    if (signalfd(-1, &set, SFD_CLOEXEC) < 0)
        die("signalfd");
    plant_zombies(NCHILDREN);
    ready(getpid());
    sleep_forever();
}
