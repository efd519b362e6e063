/* The pthread_create wrapper's link with the CPU profiler (thread_start.c). */
#ifndef PL_PROFILE_THREAD_START_H
#define PL_PROFILE_THREAD_START_H

/* Turn the wrapper's work on (a cpu-mode profile starts) or off (it
 * stops). While on, each new thread calls pl__cpu_profiler_thread_started()
 * before its start routine. Any thread. */
void pl__thread_start_watch(int on);

/* Defined by the profiler (cpu_profiler.c): arm the calling thread's CPU
 * timer if a cpu-mode profile runs and the thread has none. */
void pl__cpu_profiler_thread_started(void);

#endif
