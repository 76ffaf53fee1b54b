/* GLib peer worker: g_spawn_async_with_fds with G_SPAWN_DO_NOT_REAP_CHILD
 * and a g_child_watch_add, the exit delivered to the watch callback while the
 * default main context iterates. See peer.h for the modes and output. */
#include "peer.h"
#include <glib.h>

struct proc {
    GPid pid;
    int done;
};

static void peer_init(void) {
}

static void on_child(GPid pid, gint status, gpointer data) {
    struct proc *p = data;
    GError *err = NULL;
    if (!g_spawn_check_wait_status(status, &err)) {
        fprintf(stderr, "glib peer: child %d: %s\n", pid, err->message);
        exit(1);
    }
    g_spawn_close_pid(pid);
    p->done = 1;
}


static struct proc *peer_spawn(const char *prog, int stdin_fd) {
    struct proc *p = calloc(1, sizeof *p);
    if (!p) die("calloc");
    gchar *argv[] = {(gchar *)prog, NULL};
    GError *err = NULL;
    if (!g_spawn_async_with_fds(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL, &p->pid, stdin_fd, -1, -1,
                                &err))
        die("g_spawn_async_with_fds: %s", err->message);
    g_child_watch_add(p->pid, on_child, p);
    return p;
}

static int peer_pid(struct proc *p) {
    return p->pid;
}

static void peer_wait(struct proc *p) {
    while (!p->done) g_main_context_iteration(NULL, TRUE);
}
