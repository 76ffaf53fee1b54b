/* handler_noreap.c - the parent catches SIGCHLD with a handler that never
   reaps (the deterministic form of a wait()-once handler losing exits). */
#include "common.h"

static volatile sig_atomic_t seen;

static void on_chld(int sig)
{
    (void)sig;
    seen++;
}

int main(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_chld;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGCHLD, &sa, NULL) < 0)
        die("sigaction");
    plant_zombies(NCHILDREN);
    ready(getpid());
    sleep_forever();
}
