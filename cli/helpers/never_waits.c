/* never_waits.c - the parent never waits and has no SIGCHLD handler. */
#include "common.h"

int main(void)
{
    plant_zombies(NCHILDREN);
    ready(getpid());
    sleep_forever();
}
