/* Leak verdicts from a series of heap snapshots of one process (internal;
 * layer 5): per class (allocation site for proflab's snapshots, constructor
 * for Node's), live bytes over time, which objects stay and which are
 * freed, and a verdict: likely leak, possible leak, grew once, churn,
 * shrinking or stable. Pure computation over compact per-snapshot arrays,
 * for `proflab leaks`.
 *
 * Objects are matched across snapshots by id (proflab's tracker and V8 both
 * keep an object's id while it lives), classes by key. With n snapshots
 * (m = n - 1 intervals), per class:
 * - B[k]: live bytes at snapshot k; the rate is B's least-squares slope.
 * - K[k]: bytes at k of the objects still alive, in the same class, at the
 *   last snapshot. The kept series L is K[0..n-2] and, for the last point
 *   (where nothing had time to be freed), L[n-1] = K[n-2]'s objects at
 *   their last size plus the last interval's new bytes times the keep
 *   ratio (the share of the bytes new in the earlier intervals still alive
 *   at the end; 0 when there were none). L is what a leak adds and never
 *   gives back; churn (objects freed again) does not raise it.
 * - evidence: objects new in an interval and alive at the end, plus
 *   growths of a kept object's size (the last interval's new objects
 *   counted times the keep ratio).
 * The verdict, with growth = L[n-1] - L[0], leak rate = L's least-squares
 * slope over time, grew = intervals where L rose:
 * - likely leak: growth >= min_growth, leak rate > 0, grew >= ceil(3m/4),
 *   R^2 of L >= 0.8, evidence >= 3;
 * - possible leak: growth >= min_growth, leak rate > 0, grew >= 2, not
 *   the above (the reason names the first rule missed);
 * - grew once: growth >= min_growth and L rose in one interval only;
 * - churn: objects both new and freed, and B rose in one interval and fell
 *   in another by at least min_growth overall (max - min);
 * - shrinking: B[n-1] <= B[0] - min_growth; stable: anything else. */
#ifndef PL_ANALYSIS_LEAKS_H
#define PL_ANALYSIS_LEAKS_H

#include <stddef.h>
#include <stdint.h>

/* One live object of a snapshot: its id, its class (an index into the
 * snapshot's class keys) and its size in bytes (clamped to 2^32 - 1, as
 * DevTools keeps sizes). */
typedef struct pl__leaks_obj {
  uint64_t id;
  uint32_t cls;
  uint32_t bytes;
} pl__leaks_obj;

/* Series of snapshots being gathered (opaque). */
typedef struct pl__leaks pl__leaks;

/* A new, empty series, or NULL when out of memory. */
pl__leaks *pl__leaks_new(void);

/* Frees L and everything it holds. NULL is fine. */
void pl__leaks_free(pl__leaks *L);

/* Adds the snapshot taken at t_s (seconds, any origin; snapshots must be
 * added in time order, t strictly increasing). keys[c] / names[c], c <
 * nclasses, are its classes' keys (matched across snapshots) and the names
 * shown (both copied). objs[0..n-1] is taken over: L frees it (also on
 * error; it may be NULL when n is 0), sorts it by id and maps its classes.
 * An object whose class is >= nclasses or whose id repeats is -EINVAL.
 * 0, -ENOMEM, -EINVAL (also t not after the previous snapshot's). */
int pl__leaks_add(pl__leaks *L, double t_s, const char *const *keys, const char *const *names,
                  size_t nclasses, pl__leaks_obj *objs, size_t n);

/* Snapshots added so far. */
size_t pl__leaks_count(const pl__leaks *L);

typedef enum pl__leak_verdict {
  PL__LEAK_LIKELY = 0,
  PL__LEAK_POSSIBLE,
  PL__LEAK_GREW_ONCE,
  PL__LEAK_CHURN,
  PL__LEAK_SHRINKING,
  PL__LEAK_STABLE,
} pl__leak_verdict;

/* "likely leak", "possible leak", "grew once", "churn", "shrinking",
 * "stable". */
const char *pl__leak_verdict_name(pl__leak_verdict v);

/* One class across the snapshots. Arrays are the result's. */
typedef struct pl__leak_site {
  const char *key, *name; /* the class (the result's copies) */
  pl__leak_verdict verdict;
  const char *reason;                  /* static; for possible leak: the rule missed
                                          ("grew in 2 of 5 intervals"); else "" */
  char reason_buf[96];                 /* reason's text when it has numbers */
  const uint64_t *bytes;               /* B: live bytes per snapshot (n entries) */
  const uint64_t *count;               /* live objects per snapshot (n entries) */
  const double *kept;                  /* L: the kept series (n entries) */
  double rate;                         /* B's least-squares slope, bytes/s */
  double r2;                           /* of B's fit (0 when B is flat) */
  double leak_rate;                    /* L's least-squares slope, bytes/s */
  double leak_r2;                      /* of L's fit (0 when L is flat) */
  double growth;                       /* L[n-1] - L[0], bytes */
  unsigned grew;                       /* intervals where L rose */
  unsigned b_grew, b_shrank;           /* intervals where B rose / fell */
  double keep_ratio;                   /* share of bytes new in the intervals before
                                          the last still alive at the end (-1: none new) */
  uint64_t evidence;                   /* kept new objects + growths of kept objects */
  uint64_t new_objects, freed_objects; /* over all intervals */
  uint64_t new_bytes, freed_bytes;
  int never_shrinks; /* B fell in no interval */
} pl__leak_site;

/* What pl__leaks_analyze() may be told; a zeroed struct takes the
 * defaults. */
typedef struct pl__leaks_opts {
  double min_growth; /* bytes; <= 0: 65536 */
} pl__leaks_opts;

typedef struct pl__leaks_result {
  pl__leak_site *sites; /* every class seen, ranked (see pl__leaks_analyze) */
  size_t nsites;
  size_t nsnapshots;
  const double *t; /* seconds, per snapshot, as added */
  /* implementation */
  uint64_t *u64;
  double *dbl;
} pl__leaks_result;

/* Classifies every class of L's snapshots (at least 3) into out (zeroed
 * first). Sites are ranked: likely and possible leaks by leak rate, then
 * grew once by growth, then churn by B's range, then shrinking and stable
 * by last bytes; ties by name. out borrows nothing from L's objects but its
 * keys and names live in L: free out before L. 0, -ENOMEM, -EINVAL (fewer
 * than 3 snapshots). */
int pl__leaks_analyze(const pl__leaks *L, const pl__leaks_opts *o, pl__leaks_result *out);

/* Releases what pl__leaks_analyze() made; r is zeroed. */
void pl__leaks_result_free(pl__leaks_result *r);

/* A time in a snapshot's file name: proflab's artifact name
 * "heapdump-YYYYMMDDTHHMMSS.mmmZ-<task>[-N].heapsnapshot" (UTC) or Node's
 * default "Heap.YYYYMMDD.HHMMSS.<pid>.<thread>.<seq>.heapsnapshot" (local
 * time). name is a base name (no directory). */
typedef struct pl__leaks_name_time {
  int year, month, day, hour, min, sec, msec; /* as written, checked ranges */
  int utc;                                    /* 1: proflab (UTC), 0: Node (local) */
  uint64_t seq;                               /* Node's sequence number, else 0 */
} pl__leaks_name_time;

/* 0 with *out filled, or -EINVAL when name has neither form. Reads at
 * most len bytes of name (it needs no NUL). */
int pl__leaks_parse_name_time(const char *name, size_t len, pl__leaks_name_time *out);

#endif
