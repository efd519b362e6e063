/* Heap profile writers: a pl_heap_snapshot (proflab/heap_snapshot.h) to the bytes of
 * Chrome's .heapsnapshot, the CDP sampling heap profile (.heapprofile) and
 * pprof's heap profile (profile.proto, gzip).
 *
 * Common contract (as cpu_writers.h): the writers stream into `out`
 * (pl__sink), only read the snapshot (never free or change it; its strings
 * must stay valid during the call), end with pl__sink_finish(), and return
 * 0 or a negative errno: the sink's error, -ENOMEM, or -EINVAL for a model
 * that breaks heap_snapshot.h (a stack or frame index out of range, sample ids that
 * are not odd and strictly increasing, a negative or non-finite estimate,
 * a stack with frames but no pcs/frame indices). On error the bytes
 * already handed to the sink are partial; the caller discards them. The
 * sink stays the caller's. Output is deterministic for a given model.
 *
 * Symbolized or not: after symbolization (proflab/symbolize.h) frames carry
 * function, file and line; before it (s->frames == NULL) every distinct pc
 * becomes a frame named "0x<address of the call>" (pc − 1).
 *
 * The allocating function. A stack's frames[0] is the function that called
 * malloc & co., which may itself be an allocation helper (strdup, asprintf,
 * C++ operator new, g_malloc, xmalloc, ...). All three writers drop such
 * helper frames from the top of a stack, so the function that asked for the
 * memory is the leaf (the snapshot's grouping, the profile's self size,
 * pprof's flat column). The helpers are recognized by exact function name
 * (list in heap_common.c); a stack made only of helpers keeps its frames.
 * A stack without frames (the tracker's "unknown" stack 0, or an unwinder
 * that found nothing) is written as one pseudo-frame "(unknown)"; a stack
 * cut at PL_HEAP_MAX_FRAMES (PL_HEAP_STACK_TRUNCATED) gets a pseudo-frame
 * "(truncated)" as its outermost caller in the .heapprofile and pprof.
 *
 * Estimates become integers by rounding each sample's weight_bytes (and in
 * pprof each stack's four estimates) to the nearest integer.
 */
#ifndef PL_FORMAT_HEAP_WRITERS_H
#define PL_FORMAT_HEAP_WRITERS_H

#include <stddef.h>
#include <stdint.h>

#include "common/sink.h"
#include "proflab/formats.h"
#include "proflab/heap_snapshot.h"

/* The writer format f names (formats.c): the one heap writer switch.
 * -EINVAL for a value outside pl_heap_format. */
int pl__heap_write(const pl_heap_snapshot *s, pl_heap_format f, pl__sink *out);

/* Chrome DevTools `.heapsnapshot` (what v8.writeHeapSnapshot() writes; the
 * Memory panel's "Load profile" reads it).
 *
 * Graph. Node 0 is the synthetic root (name "", id 1). For every allocating
 * function with live samples, in order of its first (oldest) live sample,
 * the root has a `shortcut` edge named after it to a grouping node: type
 * `native`, named after the function, self_size 0, an `element` edge [i]
 * to each of the function's allocations. Each live sampled allocation is a
 * `native` node named after its allocating function, self_size =
 * round(weight_bytes) (clamped to 2^32 − 1: DevTools keeps node fields in
 * Uint32Arrays), no edges. Nodes: root, grouping nodes, allocations (in
 * sample order, i.e. by id). DevTools' Summary groups native nodes by name
 * and leaves out size-0 nodes, so each function is one row whose count is
 * its live samples and whose shallow and retained sizes are its estimated
 * live bytes (the grouping node dominates its allocations and is itself
 * dominated by the root; "(GC roots)" is not needed for this).
 *
 * Ids (32-bit, as DevTools reads them):
 * - root: 1; odd ids 3..PL__HEAPSNAPSHOT_ID_OFFSET-1 are reserved for other
 *   synthetic nodes;
 * - an allocation: its tracker id + PL__HEAPSNAPSHOT_ID_OFFSET, modulo 2^32.
 *   The tracker's ids are odd, unique and the same in every snapshot while
 *   the block lives, so these are too: the Comparison view matches objects
 *   across snapshots by id, and "Objects allocated between snapshots"
 *   selects ids in (max odd id of the earlier snapshot, max odd id of the
 *   later]. (They wrap after ~2^31 sampled allocations; V8's own ids are
 *   32-bit as well.)
 * - a grouping node: an even id derived from a hash of its function name
 *   (2 + 2 × (FNV-1a(name) mod (2^31 − 1)); on a collision within a
 *   snapshot the later group takes the next free even id). Even ids never
 *   meet the odd ones and are ignored where DevTools computes "the last
 *   object id" of a snapshot (it takes the largest odd id, as V8 gives
 *   its embedder/native objects even ids).
 * Meta: Node 20's node_fields/node_types/edge_fields/edge_types and the
 * trace/sample/location field lists; trace_function_count 0; the arrays
 * trace_function_infos, trace_tree, samples and locations empty; strings
 * last. One node, edge or string per line. Besides the common errors,
 * -EOVERFLOW when the graph would not fit DevTools' 32-bit node indexes
 * (more than ~613 million nodes). */
int pl__heapsnapshot_write(const pl_heap_snapshot *s, pl__sink *out);

#define PL__HEAPSNAPSHOT_ID_OFFSET 100u

/* CDP HeapProfiler.SamplingHeapProfile (`.heapprofile`, DevTools' "Allocation
 * sampling" view, speedscope): {"head": nested nodes {callFrame
 * {functionName, scriptId, url, lineNumber, columnNumber}, selfSize, id,
 * children}, "samples": [{size, nodeId, ordinal}]}. The tree is built from
 * the live samples' stacks: "(root)" (id 1) → outermost caller → ... →
 * allocating function; a node is one function (name, file, first line)
 * under one parent; ids follow first use in sample order. selfSize = the
 * sum of the sizes of the samples whose stack ends there; one sample per
 * live sampled allocation: size = round(weight_bytes), nodeId its leaf,
 * ordinal = its tracker id (so a range of ordinals is a range of
 * allocation order). callFrames as in the .cpuprofile writer: 0-based
 * function line (-1 unknown), column 0 (-1 unknown), absolute files as
 * file:// URLs, scriptId "1000000" and up per distinct file ("0" for none
 * and for "(root)", "(unknown)", "(truncated)"). */
int pl__heapprofile_write(const pl_heap_snapshot *s, pl__sink *out);

/* pprof heap profile, gzip-compressed perftools.profiles.Profile: sample
 * types alloc_objects/count, alloc_space/bytes, inuse_objects/count,
 * inuse_space/bytes; period_type space/bytes, period = T (sample_bytes);
 * default_sample_type inuse_space; time_nanos = wall_ns. One Sample per
 * stack whose rounded estimates are not all 0: location_id leaf first,
 * value [alloc_objects, alloc_space, inuse_objects, inuse_space] (the
 * stack's cumulative alloc_* and this snapshot's inuse_*), numeric label
 * "bytes" = average allocation size (alloc_bytes / alloc_objects), as Go
 * writes. Locations, functions and mappings as the CPU pprof writer
 * (cpu_writers.h): one Location per frame (id = frame index + 1). Comments
 * carry sample_bytes, samples, live_samples, dropped_samples,
 * unknown_stacks. */
int pl__pprof_heap_write(const pl_heap_snapshot *s, pl__sink *out);

/* The same Profile, uncompressed protobuf bytes (goldens, tools that gzip later). */
int pl__pprof_heap_write_raw(const pl_heap_snapshot *s, pl__sink *out);

/* Depth (0 = innermost) of the allocating frame of stacks[si]: the first
 * frame that is not a known allocation helper (see above), 0 when all are;
 * -1 for a stack without frames; -EINVAL for a bad index or a stack
 * without frame indices. Needs a symbolized snapshot for helper names (an
 * unsymbolized one gives 0). */
int pl__heap_alloc_frame(const pl_heap_snapshot *s, size_t si);

#endif
