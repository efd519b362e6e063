/* Profile readers, bytes -> model (internal to src/format/; the CLI's top and
 * convert use them): Chrome/Node/proflab `.cpuprofile`, pprof CPU and heap
 * (gzip or raw protobuf), FlameGraph folded stacks and the CDP sampling heap
 * profile (`.heapprofile`). pl__read_profile() tells the format from the
 * content (first bytes, JSON keys), never from the file name, and runs the
 * one reader for it.
 *
 * Common contract: a reader builds a new model object (pl_cpu_profile_new,
 * pl_heap_snapshot_new) whose frames carry names, files and lines as the
 * file has them, ready for the writers (cpu_writers.h, heap_writers.h) and
 * the analysis. It returns 0, or a negative errno with a one-line message in
 * err ("offset 1234: expected ',' or ']', found the end of the file
 * (truncated?)"; the caller prefixes the file name): -EINVAL for input that
 * is not what the format allows (syntax, types, a node or sample pointing
 * nowhere, a cycle), -ENOMEM, -EFBIG past a size bound, an I/O error. On
 * error nothing is left to free. Large JSON inputs are streamed
 * (json_reader.h): memory is the model plus a few words per node and
 * sample, not the file.
 *
 * What each format becomes:
 * - `.cpuprofile`: frames from the nodes' callFrames (functionName "" reads
 *   as "(anonymous)"; url "file:///p" as the file /p; lineNumber + 1 as the
 *   function's first line), one stack per sampled node (its path from the
 *   root, without "(root)"), one sample per `samples` entry (weight 1) at
 *   startTime + the sum of timeDeltas so far, sorted by time as DevTools
 *   does; a leaf's line comes from the node's positionTicks (each line gets
 *   as many of the node's samples as it has ticks), else the function's
 *   first line. The root's children "(idle)" and "(program)" become
 *   PL_STACK_IDLE and PL_STACK_PROGRAM (as do samples of a "(root)" node
 *   itself); "(garbage collector)" stays a frame.
 *   Without `samples`, each node's hitCount becomes one sample of that
 *   weight. period_ns = (endTime - startTime) / samples (DevTools' sample
 *   time); mode "wall". Nodes may list `children` or (older files) a
 *   `parent`; keys may come in any order.
 * - pprof CPU (sample types samples/count and/or cpu|wall/nanoseconds):
 *   one frame per Line of each Location (inlined frames expanded, the
 *   innermost first), "0x<address>" for a Location without lines; weight =
 *   the count value (or the time value / period; at most 2^32 - 1); a
 *   sample whose only frame
 *   is "(idle)" or "(program)" is PL_STACK_IDLE / PL_STACK_PROGRAM; label
 *   "thread" -> tid. No times in pprof: mode "cpu" (writers synthesize the
 *   timeline), start at time_nanos.
 * - folded: "a;b;c N" lines (root first, the count after the last space),
 *   frames by name only; one sample per line of weight N (at most
 *   2^32 - 1); "(idle)"/"(program)" alone are idle/program. No times: 1
 *   ms per sample is assumed (period_ns 1000000, mode "cpu").
 * - `.heapprofile`: frames from callFrames as above, one stack per node with
 *   samples, one live sample per `samples` entry (size and weight_bytes =
 *   its size, weight_objects 1, ids from the ordinals: kept when odd and
 *   increasing, else 2 x rank + 1); without samples, one per node with a
 *   selfSize. alloc_* = inuse_* (the format has only live data).
 * - pprof heap (alloc_objects/alloc_space/inuse_objects/inuse_space, any
 *   subset, or objects/space): one stack per distinct stack with the four
 *   estimates summed, and one live sample per stack with live objects or
 *   bytes (weight_* = its inuse_*); "(unknown)" alone is a stack without
 *   frames, a trailing "(truncated)" sets PL_HEAP_STACK_TRUNCATED.
 *   sample_bytes = period when the period type is space/bytes.
 */
#ifndef PL_FORMAT_READERS_H
#define PL_FORMAT_READERS_H

#include <stddef.h>

#include "format/read_source.h"
#include "proflab/cpu_profile.h"
#include "proflab/heap_graph.h"
#include "proflab/heap_snapshot.h"

/* What a file holds, as pl__read_profile() found it. */
typedef enum pl__profile_kind {
  PL__KIND_UNKNOWN = 0,
  PL__KIND_CPUPROFILE,   /* Chrome/Node/proflab .cpuprofile (JSON) */
  PL__KIND_PPROF_CPU,    /* pprof CPU profile */
  PL__KIND_FOLDED,       /* FlameGraph folded stacks */
  PL__KIND_HEAPPROFILE,  /* CDP sampling heap profile (JSON) */
  PL__KIND_PPROF_HEAP,   /* pprof heap profile */
  PL__KIND_HEAPSNAPSHOT, /* Chrome/Node/proflab .heapsnapshot (JSON): a heap graph */
} pl__profile_kind;

/* A profile read from a file: cpu for the CPU kinds, heap for the heap
 * profiles, graph for a .heapsnapshot. */
typedef struct pl__profile {
  pl__profile_kind kind;
  int gzipped; /* the bytes were gzip-compressed */
  pl_cpu_profile *cpu;
  pl_heap_snapshot *heap;
  pl_heap_graph *graph;
} pl__profile;

/* Reads the profile in fd (path only names it; fd >= 0, the caller keeps
 * it) or, with fd < 0, in the file at path. Detects the kind from the
 * content, gunzips gzip data first, and runs that kind's reader: 0 with
 * out->cpu, out->heap or out->graph set, or a negative errno with the reason in err and
 * out->kind set when the kind was recognised (nothing to free). A
 * .heapsnapshot sets out->graph. */
int pl__read_profile(const char *path, int fd, pl__profile *out, pl__read_err *err);

/* What a caller of pl__read_profile_ex may add; a zeroed struct (or NULL)
 * is pl__read_profile. */
typedef struct pl__read_opts {
  /* told as the file's bytes are read (read_source.h): at most every MiB
   * and at the end; NULL: not told */
  pl__rsrc_progress_fn progress;
  void *progress_ctx;
} pl__read_opts;

/* pl__read_profile with options (opts may be NULL). */
int pl__read_profile_ex(const char *path, int fd, const pl__read_opts *opts, pl__profile *out,
                        pl__read_err *err);

/* The same over bytes in memory (tests, fuzzing). */
int pl__read_profile_mem(const void *data, size_t len, pl__profile *out, pl__read_err *err);

/* Frees what a successful pl__read_profile() put in p. */
void pl__profile_free(pl__profile *p);

/* "cpuprofile", "pprof", "folded", "heapprofile", "pprof-heap",
 * "heapsnapshot", "unknown". */
const char *pl__profile_kind_name(pl__profile_kind k);

/* 1 for the CPU kinds, 0 for the others. */
int pl__profile_kind_is_cpu(pl__profile_kind k);

/* The readers themselves, each on a source positioned at the start of its
 * data (gunzipped already). See the contract above. */
int pl__cpuprofile_read(pl__rsrc *src, pl_cpu_profile **out, pl__read_err *err);
int pl__heapprofile_read(pl__rsrc *src, pl_heap_snapshot **out, pl__read_err *err);
int pl__folded_read(pl__rsrc *src, pl_cpu_profile **out, pl__read_err *err);
/* .heapsnapshot: the whole graph (heap_graph.h), streamed: the nodes and
 * edges arrays are read as integers straight into compact arrays grown up
 * to node_count/edge_count; node_fields/edge_fields come from the meta
 * (any order, extra fields ignored: Node's 7, proflab's, a 5-field list);
 * locations are kept; trace_function_infos, trace_tree, samples and other
 * keys are skipped; "snapshot" must come before "nodes" and "edges". Checked: the
 * counts, the edge counts' sum, to_node (a multiple of the node field
 * count, inside the array), types and string indexes in range. */
int pl__heapsnapshot_read(pl__rsrc *src, pl_heap_graph **out, pl__read_err *err);
/* pprof: sets *kind to PL__KIND_PPROF_CPU (*cpu) or PL__KIND_PPROF_HEAP
 * (*heap) by the sample types. */
int pl__pprof_read(pl__rsrc *src, pl__profile_kind *kind, pl_cpu_profile **cpu,
                   pl_heap_snapshot **heap, pl__read_err *err);

#endif
