/* Linked into the service fuzz targets' archive (run-service.sh): the
 * profiler's pthread_create wrapper (src/profile/thread_start.c) stays out
 * of fuzz builds — with clang's static sanitizer runtime it would hide
 * thread creation from ASan (see fuzz-cdp.c) — so its switch is a no-op. */
void pl__thread_start_watch(int on);
void pl__thread_start_watch(int on) { (void)on; }
