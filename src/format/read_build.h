/* Building a model's frames and stacks while reading a file (internal to
 * src/format/): strings interned once and copied into the model object,
 * frames interned by (function, file, module, line, function_line), and
 * stacks interned through a trie of (caller node, frame), so a stack seen
 * many times (pprof writes one per sample, .cpuprofile nodes repeat
 * functions) is stored once. A reader walks each stack from its outermost
 * caller to its leaf with pl__rb_push(), asks for the leaf's stack index
 * with pl__rb_stack(), and at the end hands frames and stacks to the model
 * (pl__rb_finish_cpu / _heap), leaf first as the models want.
 *
 * Errors: -ENOMEM; after one the builder may only be freed. A builder
 * holds at most UINT32_MAX - 1 frames, trie nodes and stacks, and
 * PL__RB_MAX_FRAMES frames in all its stacks together (-E2BIG: a chain of
 * 100 000 nodes each sampled once would otherwise ask for 5 x 10^9).
 */
#ifndef PL_FORMAT_READ_BUILD_H
#define PL_FORMAT_READ_BUILD_H

#include <stddef.h>
#include <stdint.h>

#include "format/hashtab.h"
#include "proflab/cpu_profile.h"
#include "proflab/heap_snapshot.h"

#define PL__RB_ROOT UINT32_MAX /* the parent of an outermost caller's node */
#define PL__RB_MAX_FRAMES (1ull << 30)

typedef struct pl__rb {
  /* copies a string into the model (pl_cpu_profile_strdup, ...) */
  char *(*dup)(void *model, const char *s);
  void *model;
  pl__strtab strs;       /* borrowed: the copies in the model */
  pl__keytab line_keys;  /* (line, function_line, module) -> id */
  pl__keytab frame_keys; /* (function, file, line key) -> frame index */
  pl_frame *frames;
  size_t frames_cap;
  pl__keytab node_keys; /* (parent node + 1, frame, 0) -> trie node */
  uint32_t *node_parent, *node_frame, *node_stack, *node_depth;
  size_t nodes_cap;
  uint32_t *stack_node; /* by stack: its leaf trie node (PL__RB_ROOT: no frames) */
  uint32_t root_stack;  /* the stack without frames, UINT32_MAX until used */
  size_t nstacks, stacks_cap;
  uint64_t total_depth; /* frames in all stacks */
} pl__rb;

/* A builder copying its strings into model with dup. Never fails. */
void pl__rb_init(pl__rb *b, char *(*dup)(void *model, const char *s), void *model);
/* Releases the builder's tables (not what it handed to the model). */
void pl__rb_free(pl__rb *b);

/* Id of the string s[0..n) (up to its first NUL; s[n] must be readable, as
 * in a NUL-terminated buffer), copied into the model when new; -ENOMEM. */
int64_t pl__rb_str(pl__rb *b, const char *s, size_t n);

/* Id of the file a DevTools callFrame url names: "file:///a%20b" -> "/a b"
 * (percent-decoded, as the .cpuprofile writer encodes paths); any other url
 * ("node:internal/x", "https://...") as it is. -ENOMEM. */
int64_t pl__rb_url_file(pl__rb *b, const char *url, size_t len);

/* Id of a function name: "" (an anonymous JavaScript function) becomes
 * "(anonymous)", as DevTools shows it. -ENOMEM. */
int64_t pl__rb_name(pl__rb *b, const char *s, size_t len);

/* Index of the frame (function, file, module: string ids; lines 1-based or
 * 0); address is kept from the frame's first appearance. -ENOMEM, -E2BIG. */
int64_t pl__rb_frame(pl__rb *b, uint32_t function, uint32_t file, uint32_t module, uint32_t line,
                     uint32_t function_line, uint64_t address);

/* The trie node of frame under parent (a node, or PL__RB_ROOT): its id, or
 * -ENOMEM / -E2BIG. */
int64_t pl__rb_push(pl__rb *b, uint32_t parent, uint32_t frame);

/* The stack index of the path root..node (node a pl__rb_push() result, or
 * PL__RB_ROOT for the stack without frames), assigned on first use: >= 0,
 * or -ENOMEM / -E2BIG. */
int64_t pl__rb_stack(pl__rb *b, uint32_t node);

/* Number of frames and stacks so far. */
static inline size_t pl__rb_nframes(const pl__rb *b) { return b->frame_keys.n; }
static inline size_t pl__rb_nstacks(const pl__rb *b) { return b->nstacks; }

/* Hands the frames and stacks to p (frames, nframes, stacks, nstacks; the
 * arrays are owned by p from then on). 0 or -ENOMEM. */
int pl__rb_finish_cpu(pl__rb *b, pl_cpu_profile *p);

/* Hands the frames and stacks to s (frames, stacks with frames/depth, pcs
 * NULL, estimates 0: the reader fills them; frames_state LINES). 0 or
 * -ENOMEM. */
int pl__rb_finish_heap(pl__rb *b, pl_heap_snapshot *s);

#endif
