/* proflab — GET /metrics in Prometheus text format, for any service built on
 * proflab's server: event-loop lag histogram and utilization, memory (RSS,
 * malloc, the heap tracker's live estimates when it runs), CPU profiles and
 * heap snapshots written and failed, the lab's leak, HTTP connections and
 * requests by route and status. Mounted whether the lab is on or off. */
#ifndef PROFLAB_METRICS_H
#define PROFLAB_METRICS_H

#include "proflab/lab.h"
#include "proflab/loopmon.h"
#include "proflab/server.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Register GET /metrics on server (loop thread, before it serves). mon and
 * lab may be NULL (no lag figures; no lab figures). One per process. 0 or
 * a negative errno. */
int pl_metrics_mount(pl_server *server, pl_loopmon *mon, pl_lab *lab);

#ifdef __cplusplus
}
#endif
#endif
