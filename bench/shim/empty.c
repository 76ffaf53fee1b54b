/* The shim benchmark's baseline preload: a shared object with nothing in it,
 * so that what any LD_PRELOAD costs is told apart from what the shim costs. */
int zreap_bench_empty_preload;
