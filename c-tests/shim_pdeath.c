/* shim_pdeath.c: forks a child that pause()s forever, prints the child's pid
 * ("child PID") and exits without waiting. Under the shim with
 * ZREAP_PDEATHSIG=SIG the child gets SIG when this program dies; the test
 * (a child subreaper) adopts the child and sees how it ends. */
#include "ctest.h"

int main(void) {
    ctest_start();
    pid_t pid = fork();
    if (pid == 0) {
        /* Hold no pipe of the test open. */
        int null = open("/dev/null", O_RDWR);
        dup2(null, 1);
        dup2(null, 2);
        for (;;) pause();
    }
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    printf("child %d\n", (int)pid);
    /* Let the child get to pause(); its parent-death signal is armed in the
     * fork handler before fork() returns in the child either way. */
    ctest_sleep_ms(50);
    return 0;
}
