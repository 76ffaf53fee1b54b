/* libuv peer worker: uv_spawn, exit delivered to the exit callback while
 * uv_run runs. See peer.h for the modes and output. */
#include "peer.h"
#include <uv.h>

struct proc {
    uv_process_t handle;
    int done;
};

static uv_loop_t *loop;

static void peer_init(void) {
    loop = uv_default_loop();
}

static void on_uv_exit(uv_process_t *h, int64_t status, int signal) {
    struct proc *p = (struct proc *)h;
    (void)signal;
    if (status != 0) {
        fprintf(stderr, "uv peer: child %d exited with %lld\n", h->pid, (long long)status);
        exit(1);
    }
    p->done = 1;
    uv_close((uv_handle_t *)h, NULL);
}


static struct proc *peer_spawn(const char *prog, int stdin_fd) {
    struct proc *p = calloc(1, sizeof *p);
    if (!p) die("calloc");
    char *args[] = {(char *)prog, NULL};
    uv_stdio_container_t io[1];
    uv_process_options_t o;
    memset(&o, 0, sizeof o);
    o.file = prog;
    o.args = args;
    o.exit_cb = on_uv_exit;
    if (stdin_fd >= 0) {
        io[0].flags = UV_INHERIT_FD;
        io[0].data.fd = stdin_fd;
        o.stdio = io;
        o.stdio_count = 1;
    }
    int r = uv_spawn(loop, &p->handle, &o);
    if (r) die("uv_spawn: %s", uv_strerror(r));
    return p;
}

static int peer_pid(struct proc *p) {
    return p->handle.pid;
}

static void peer_wait(struct proc *p) {
    while (!p->done) uv_run(loop, UV_RUN_ONCE);
}
