/* stopped.c - the parent stops itself after its children exited. */
#include "common.h"

int main(void)
{
    plant_zombies(NCHILDREN);
    ready(getpid());
    raise(SIGSTOP);
    sleep_forever();
}
