/* The heap graph model (include/proflab/heap_graph.h): new, free, lookups
 * and the consistency check every builder's result must pass. */
#include "proflab/heap_graph.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

pl_heap_graph *pl_heap_graph_new(void) { return calloc(1, sizeof(pl_heap_graph)); }

void pl_heap_graph_free(pl_heap_graph *g) {
  if (!g) return;
  free(g->node_type);
  free(g->node_name);
  free(g->node_id);
  free(g->node_self);
  free(g->first_edge);
  free(g->node_detachedness);
  free(g->locations);
  free(g->edge_type);
  free(g->edge_name);
  free(g->edge_to);
  free(g->strings);
  free(g->string_data);
  for (uint32_t i = 0; i < g->n_node_types && i < PL_HEAP_GRAPH_MAX_TYPES; i++)
    free(g->node_type_names[i]);
  for (uint32_t i = 0; i < g->n_edge_types && i < PL_HEAP_GRAPH_MAX_TYPES; i++)
    free(g->edge_type_names[i]);
  free(g);
}

static int find_name(char *const *names, uint32_t n, const char *name) {
  for (uint32_t i = 0; i < n && i < PL_HEAP_GRAPH_MAX_TYPES; i++)
    if (names[i] && strcmp(names[i], name) == 0) return (int)i;
  return -1;
}

int pl_heap_graph_node_type(const pl_heap_graph *g, const char *name) {
  return find_name(g->node_type_names, g->n_node_types, name);
}

int pl_heap_graph_edge_type(const pl_heap_graph *g, const char *name) {
  return find_name(g->edge_type_names, g->n_edge_types, name);
}

__attribute__((format(printf, 3, 4))) static int fail(char *msg, size_t n, const char *fmt, ...) {
  if (msg && n) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, n, fmt, ap);
    va_end(ap);
  }
  return -EINVAL;
}

int pl_heap_graph_check(const pl_heap_graph *g, char *msg, size_t msg_len) {
  if (g->n_node_types > PL_HEAP_GRAPH_MAX_TYPES || g->n_edge_types > PL_HEAP_GRAPH_MAX_TYPES)
    return fail(msg, msg_len, "too many types");
  if (g->node_count == 0) return fail(msg, msg_len, "no nodes (a snapshot has a root)");
  if (!g->first_edge || g->first_edge[0] != 0 || g->first_edge[g->node_count] != g->edge_count)
    return fail(msg, msg_len, "the nodes' edge counts do not add up to edge_count");
  int elem = pl_heap_graph_edge_type(g, "element"), hidden = pl_heap_graph_edge_type(g, "hidden");
  for (uint32_t i = 0; i < g->node_count; i++) {
    if (g->first_edge[i + 1] < g->first_edge[i])
      return fail(msg, msg_len, "node %" PRIu32 ": edge range decreasing", i);
    if (g->node_type[i] >= g->n_node_types)
      return fail(msg, msg_len, "node %" PRIu32 ": type %u out of range", i, g->node_type[i]);
    if (g->node_name[i] >= g->nstrings)
      return fail(msg, msg_len, "node %" PRIu32 ": name %" PRIu32 " not in strings (%" PRIu32 ")",
                  i, g->node_name[i], g->nstrings);
  }
  for (uint32_t e = 0; e < g->edge_count; e++) {
    if (g->edge_type[e] >= g->n_edge_types)
      return fail(msg, msg_len, "edge %" PRIu32 ": type %u out of range", e, g->edge_type[e]);
    if (g->edge_to[e] >= g->node_count)
      return fail(msg, msg_len, "edge %" PRIu32 ": to_node out of range", e);
    int t = g->edge_type[e];
    if (t != elem && t != hidden && g->edge_name[e] >= g->nstrings)
      return fail(msg, msg_len, "edge %" PRIu32 ": name %" PRIu32 " not in strings (%" PRIu32 ")",
                  e, g->edge_name[e], g->nstrings);
  }
  for (uint32_t i = 0; i < g->nlocations; i++)
    if (g->locations[4 * (size_t)i] >= g->node_count)
      return fail(msg, msg_len, "location %" PRIu32 ": node out of range", i);
  for (uint32_t i = 0; i < g->nstrings; i++)
    if (!g->strings[i]) return fail(msg, msg_len, "string %" PRIu32 " missing", i);
  return 0;
}

uint64_t pl_heap_graph_total_self(const pl_heap_graph *g) {
  uint64_t t = 0;
  for (uint32_t i = 0; i < g->node_count; i++) t += g->node_self[i];
  return t;
}
