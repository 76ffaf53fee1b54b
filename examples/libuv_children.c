/*
 * libuv_children.c - zreap's fd in a libuv loop, children started with zspawn.
 *
 * libuv's own process handles install a SIGCHLD handler of their own; here
 * the loop watches zreap_fd() with a uv_poll_t instead, and zreap_all()
 * delivers each exit once, in the loop's ordinary context.
 *
 * Build: cc libuv_children.c $(pkg-config --cflags --libs zreap libuv)
 * Usage: libuv_children [N]    (N children: sh -c 'exit K'; default 4)
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <uv.h>

#include <zreap.h>

static int left;
static int failed;
static uv_poll_t reap_watcher;

static void on_exit_cb(pid_t pid, int wstatus, void *ctx)
{
    (void)ctx;
    if (!WIFEXITED(wstatus))
        failed = 1;
    printf("child %d exited %d\n", (int)pid, WEXITSTATUS(wstatus));
    left--;
}

static void on_readable(uv_poll_t *handle, int status, int events)
{
    (void)events;
    if (status < 0 || zreap_all(on_exit_cb, NULL) == -1) {
        failed = 1;
        uv_poll_stop(handle);
        return;
    }
    if (left == 0)
        uv_poll_stop(handle);   /* nothing else keeps the loop alive */
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 4;
    uv_loop_t *loop = uv_default_loop();

    if (zreap_install(ZREAP_OWN | ZREAP_NO_HANDLER) == -1) {
        perror("zreap_install");
        return 1;
    }
    int fd = zreap_fd();
    if (fd == -1) {
        perror("zreap_fd");
        return 1;
    }
    uv_poll_init(loop, &reap_watcher, fd);
    uv_poll_start(&reap_watcher, UV_READABLE, on_readable);

    for (int i = 0; i < n; i++) {
        char code[16];
        snprintf(code, sizeof code, "exit %d", i);
        char *argv_child[] = {"sh", "-c", code, NULL};
        zspawn_options opts;
        zspawn_options_init(&opts);
        opts.flags = ZSPAWN_SEARCH_PATH;
        if (zspawn("sh", argv_child, NULL, &opts) == -1) {
            perror("zspawn");
            return 1;
        }
        left++;
    }
    uv_run(loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&reap_watcher, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    if (failed || left != 0)
        return 1;
    printf("all %d children reaped\n", n);
    return 0;
}
