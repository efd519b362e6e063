/* The one capture path (see capture.h): slots, take → symbolize → write,
 * and the thread-pool job that writes an artifact. */
#include "capture/capture.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture/heap_tracker.h"
#include "common/util.h"
#include "format/cpu_writers.h"
#include "format/heap_writers.h"
#include "proflab/symbolize.h"
#include "symbol/symbolizer.h"

enum { OUTCOME_NONE, OUTCOME_WRITTEN, OUTCOME_FAILED };

struct pl__capture {
  pl__capture_kind kind;
  int format;
  int cpu_running;
  int prepared;
  int outcome;
  pl_cpu_profile *cpu;
  pl_heap_snapshot *heap;
  pl__capture_holder holder;
  const char *failed_step;
  pl__capture_times times;
  uint64_t heap_since_ns;
  /* the artifact job */
  uv_work_t work;
  pl__artifact_store *store;
  pl__artifact art;
  int job_rc;
  pl__capture_done_fn done;
  void *done_arg;
};

/* The slots and counters, one per kind. */
static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;
static pl__capture *slots[2];
static uint64_t written[2], failed[2];

int pl__capture_new(pl__capture **out, pl__capture_kind kind, int format, const char *who,
                    pl__capture_holder *busy) {
  *out = NULL;
  if (kind != PL__CAPTURE_CPU && kind != PL__CAPTURE_HEAP) return -EINVAL;
  if (kind == PL__CAPTURE_CPU ? !pl_cpu_format_ext((pl_cpu_format)format)
                              : !pl_heap_format_ext((pl_heap_format)format))
    return -EINVAL;
  if (kind == PL__CAPTURE_HEAP) {
    pl__heap_figures f;
    int rc = pl__heap_tracker_figures(&f);
    if (rc) return rc;
  }
  pl__capture *c = calloc(1, sizeof(*c));
  if (!c) return -ENOMEM;
  c->kind = kind;
  c->format = format;
  snprintf(c->holder.who, sizeof(c->holder.who), "%s", who ? who : "unknown");
  c->holder.format = format;
  c->holder.since_wall_ns = pl__wall_ns();
  pthread_mutex_lock(&slots_lock);
  if (slots[kind]) {
    if (busy) *busy = slots[kind]->holder;
    pthread_mutex_unlock(&slots_lock);
    free(c);
    return -EBUSY;
  }
  slots[kind] = c;
  pthread_mutex_unlock(&slots_lock);
  *out = c;
  return 0;
}

void pl__capture_free(pl__capture *c) {
  if (!c) return;
  if (c->cpu_running) {
    pl_cpu_profile *p = NULL;
    if (pl_cpu_profiler_stop(&p) == 0) pl_cpu_profile_free(p);
  }
  pthread_mutex_lock(&slots_lock);
  if (slots[c->kind] == c) slots[c->kind] = NULL;
  if (c->outcome == OUTCOME_WRITTEN)
    written[c->kind]++;
  else if (c->outcome == OUTCOME_FAILED)
    failed[c->kind]++;
  pthread_mutex_unlock(&slots_lock);
  pl_cpu_profile_free(c->cpu);
  if (c->heap) {
    pl__heap_tracker_untracked_begin(); /* it was made untracked */
    pl_heap_snapshot_free(c->heap);
    pl__heap_tracker_untracked_end();
  }
  free(c);
}

int pl__capture_holder_of(pl__capture_kind kind, pl__capture_holder *out) {
  int held = 0;
  pthread_mutex_lock(&slots_lock);
  if ((kind == PL__CAPTURE_CPU || kind == PL__CAPTURE_HEAP) && slots[kind]) {
    *out = slots[kind]->holder;
    held = 1;
  }
  pthread_mutex_unlock(&slots_lock);
  return held;
}

void pl__capture_set_until(pl__capture *c, uint64_t until_wall_ns) {
  pthread_mutex_lock(&slots_lock);
  c->holder.until_wall_ns = until_wall_ns;
  pthread_mutex_unlock(&slots_lock);
}

void pl__capture_forget_after_fork(void) {
  pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
  memcpy(&slots_lock, &fresh, sizeof(fresh));
  slots[PL__CAPTURE_CPU] = slots[PL__CAPTURE_HEAP] = NULL;
}

void pl__capture_count(pl__capture_kind kind, uint64_t *w, uint64_t *f) {
  pthread_mutex_lock(&slots_lock);
  *w = kind <= PL__CAPTURE_HEAP ? written[kind] : 0;
  *f = kind <= PL__CAPTURE_HEAP ? failed[kind] : 0;
  pthread_mutex_unlock(&slots_lock);
}

static int fail(pl__capture *c, const char *step, int rc) {
  c->failed_step = step;
  c->outcome = OUTCOME_FAILED;
  return rc;
}

int pl__capture_cpu_start(pl__capture *c, const pl_cpu_options *o) {
  if (c->kind != PL__CAPTURE_CPU || c->cpu_running || c->cpu) return -EINVAL;
  int rc = pl_cpu_profiler_start(o);
  if (rc) {
    c->failed_step = "start"; /* not counted: nothing was captured */
    return rc;
  }
  c->cpu_running = 1;
  return 0;
}

int pl__capture_cpu_stop(pl__capture *c) {
  if (!c->cpu_running) return -EINVAL;
  c->cpu_running = 0;
  int rc = pl_cpu_profiler_stop(&c->cpu);
  return rc ? fail(c, "stop", rc) : 0;
}

int pl__capture_cpu_running(const pl__capture *c) { return c->cpu_running; }

void pl__capture_heap_since(pl__capture *c, uint64_t since_ns) { c->heap_since_ns = since_ns; }

static int heap_warm(unsigned flags) {
  pl__heap_tracker_untracked_begin(); /* the tool's allocations */
  uintptr_t *pcs;
  size_t n;
  int rc = pl__heap_tracker_stack_pcs(&pcs, &n);
  if (rc == 0) {
    if (n) rc = pl__symbolizer_warm(pcs, n, flags);
    free(pcs);
  }
  pl__heap_tracker_untracked_end();
  return rc;
}

int pl__capture_heap_warm(void) {
  int rc = pl__heap_tracker_prepare(); /* first: it is the quicker */
  if (rc == -ENOSYS || rc == -ENOENT) return rc;
  int wrc = heap_warm(PL__SYMBOLIZE_NAMES);
  return rc ? rc : wrc;
}

void pl__capture_drop_idle(void) {
  const uint64_t idle_ns = 60 * 1000000000ull;
  int dropped = pl__symbolizer_drop_idle(idle_ns);
  if (pl__heap_tracker_release_idle(idle_ns) | dropped) malloc_trim(0);
}

/* A heap snapshot's stacks symbolized on a thread of their own while the
 * snapshot is taken: a first snapshot's lookups read symbol tables (and
 * DWARF, for lines) for milliseconds, the copy of the samples takes
 * milliseconds too, and neither needs the other. The snapshot's own
 * symbolization then finds its answers kept, but for stacks recorded in
 * between. */
typedef struct ahead {
  pthread_t thread;
  unsigned flags;
} ahead;

static void *symbolize_ahead(void *arg) {
  const ahead *a = arg;
  (void)heap_warm(a->flags); /* a failure is the snapshot's to meet */
  return NULL;
}

int pl__capture_prepare(pl__capture *c) {
  if (c->prepared) return 0;
  int rc;
  uint64_t t0 = pl__now_ns();
  if (c->kind == PL__CAPTURE_CPU) {
    if (!c->cpu) return fail(c, "stop", -EINVAL); /* never started, or still running */
    rc = pl_cpu_profile_symbolize(c->cpu);
    c->times.symbolize_ms = (double)(pl__now_ns() - t0) / 1e6;
    if (rc) return fail(c, "symbolize", rc);
  } else {
    ahead a = {.flags = c->format == PL_HEAP_FORMAT_HEAPSNAPSHOT ? PL__SYMBOLIZE_NAMES : 0};
    int ahead_runs =
        pl__heap_tracker_linked() && pthread_create(&a.thread, NULL, symbolize_ahead, &a) == 0;
    rc = pl__heap_tracker_take(&c->heap);
    uint64_t t1 = pl__now_ns();
    c->times.take_ms = (double)(t1 - t0) / 1e6;
    if (ahead_runs) pthread_join(a.thread, NULL); /* symbolize_ms counts the wait */
    if (rc) return fail(c, "copy", rc);
    if (c->heap_since_ns) pl_heap_snapshot_keep_since(c->heap, c->heap_since_ns);
    /* The symbolizer's allocations are the tool's, not the program's. A
     * .heapsnapshot shows function names only: no DWARF to read. */
    pl__heap_tracker_untracked_begin();
    rc = c->format == PL_HEAP_FORMAT_HEAPSNAPSHOT ? pl_heap_snapshot_symbolize_names(c->heap)
                                                  : pl_heap_snapshot_symbolize(c->heap);
    pl__heap_tracker_untracked_end();
    c->times.symbolize_ms = (double)(pl__now_ns() - t1) / 1e6;
    if (rc) return fail(c, "symbolize", rc);
  }
  c->prepared = 1;
  return 0;
}

int pl__capture_write(pl__sink *out, void *arg) {
  pl__capture *c = arg;
  if (!c->prepared) return fail(c, "write", -EINVAL);
  uint64_t t0 = pl__now_ns();
  /* The writer's tables and buffers (and, over the DevTools protocol, the
   * messages it posts) are the tool's allocations, not the program's. */
  pl__heap_tracker_untracked_begin();
  int rc = c->kind == PL__CAPTURE_CPU ? pl__cpu_write(c->cpu, (pl_cpu_format)c->format, out)
                                      : pl__heap_write(c->heap, (pl_heap_format)c->format, out);
  pl__heap_tracker_untracked_end();
  c->times.write_ms = (double)(pl__now_ns() - t0) / 1e6;
  if (rc) return fail(c, "write", rc);
  c->outcome = OUTCOME_WRITTEN;
  return 0;
}

int pl__capture_run(pl__capture *c, pl__sink *out) {
  int rc = pl__capture_prepare(c);
  return rc ? rc : pl__capture_write(out, c);
}

/* ---- the artifact job ------------------------------------------------- */

static void work_artifact(uv_work_t *w) {
  pl__capture *c = w->data;
  c->job_rc = pl__capture_prepare(c);
  if (c->job_rc) return;
  uint64_t wall_ns = c->kind == PL__CAPTURE_CPU ? c->cpu->start_wall_ns : c->heap->wall_ns;
  const char *ext = c->kind == PL__CAPTURE_CPU ? pl_cpu_format_ext((pl_cpu_format)c->format)
                                               : pl_heap_format_ext((pl_heap_format)c->format);
  c->job_rc = pl__artifact_write(c->store, c->kind == PL__CAPTURE_CPU ? "cpu" : "heapdump", ext,
                                 wall_ns, pl__capture_write, c, &c->art);
  /* a failure to open, sync or rename the file is the write step too */
  if (c->job_rc) fail(c, "write", c->job_rc);
}

static void after_artifact(uv_work_t *w, int status) {
  pl__capture *c = w->data;
  if (status == UV_ECANCELED && !c->job_rc) c->job_rc = fail(c, "queue", -ECANCELED);
  c->done(c, c->job_rc, c->job_rc ? NULL : &c->art, c->done_arg);
}

int pl__capture_queue_artifact(pl__capture *c, uv_loop_t *loop, pl__artifact_store *store,
                               pl__capture_done_fn done, void *arg) {
  c->store = store;
  c->done = done;
  c->done_arg = arg;
  c->work.data = c;
  int rc = uv_queue_work(loop, &c->work, work_artifact, after_artifact);
  return rc ? fail(c, "queue", rc) : 0;
}

pl__capture_kind pl__capture_kind_of(const pl__capture *c) { return c->kind; }
int pl__capture_format(const pl__capture *c) { return c->format; }
const char *pl__capture_format_name(const pl__capture *c) {
  return c->kind == PL__CAPTURE_CPU ? pl_cpu_format_names[c->format]
                                    : pl_heap_format_names[c->format];
}
const pl_cpu_profile *pl__capture_cpu_profile(const pl__capture *c) { return c->cpu; }
const pl_heap_snapshot *pl__capture_heap_snapshot(const pl__capture *c) { return c->heap; }
const pl__capture_holder *pl__capture_holder_info(const pl__capture *c) { return &c->holder; }
const char *pl__capture_failed_step(const pl__capture *c) { return c->failed_step; }
void pl__capture_get_times(const pl__capture *c, pl__capture_times *out) { *out = c->times; }
