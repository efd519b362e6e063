/* Dominator tree, retained sizes and the class Summary of a heap graph, as
 * DevTools computes them (see dominators.h); our own Lengauer-Tarjan. */
#include "analysis/dominators.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

#define NONE UINT32_MAX

/* ---- essential edges ---------------------------------------------------- */

/* The table id in a WeakMap ephemeron edge name, else 0. */
static uint64_t weakmap_table(const char *s) {
  const char *p = s;
  if (*p < '0' || *p > '9') return 0;
  while (*p >= '0' && *p <= '9') p++;
  if (strncmp(p, " / part of key (", 16) != 0) return 0;
  const char *t = strstr(p, ") pair in WeakMap (table @");
  if (!t) return 0;
  const char *last;
  while ((last = strstr(t + 1, ") pair in WeakMap (table @"))) t = last;
  t += 26;
  uint64_t id = 0;
  if (*t < '0' || *t > '9') return 0;
  while (*t >= '0' && *t <= '9') id = id * 10 + (uint64_t)(*t++ - '0');
  return t[0] == ')' && t[1] == '\0' ? id : 0;
}

/* Bit e of ess (one bit per edge, 64 to a word) set for the retaining
 * edges; *count: how many. */
#define ESS(ess, e) ((ess)[(e) >> 6] >> ((e)&63) & 1)
static int essential_edges(const pl_heap_graph *g, uint64_t *ess, uint32_t *count) {
  uint32_t n = g->node_count;
  int weak = pl_heap_graph_edge_type(g, "weak"), shortcut = pl_heap_graph_edge_type(g, "shortcut");
  int element = pl_heap_graph_edge_type(g, "element");
  int internal = pl_heap_graph_edge_type(g, "internal");
  int synthetic = pl_heap_graph_node_type(g, "synthetic");
  uint8_t *page = calloc(n, 1);
  uint32_t *todo = malloc((size_t)n * sizeof(*todo));
  if (!page || !todo) {
    free(page);
    free(todo);
    return -ENOMEM;
  }
  size_t top = 0;
  for (uint32_t e = g->first_edge[0]; e < g->first_edge[1]; e++) {
    uint32_t to = g->edge_to[e];
    if (g->edge_type[e] == element) {
      if (g->node_type[to] != synthetic ||
          strcmp(g->strings[g->node_name[to]], "(Document DOM trees)") != 0)
        continue;
    } else if (g->edge_type[e] != shortcut) {
      continue;
    }
    if (!page[to]) page[to] = 1, todo[top++] = to;
  }
  while (top) {
    uint32_t v = todo[--top];
    for (uint32_t e = g->first_edge[v]; e < g->first_edge[v + 1]; e++) {
      uint32_t to = g->edge_to[e];
      if (page[to] || g->edge_type[e] == weak) continue;
      page[to] = 1;
      todo[top++] = to;
    }
  }
  memset(ess, 0, ((size_t)g->edge_count + 63) / 64 * sizeof(*ess));
  uint32_t kept = 0;
  for (uint32_t v = 0; v < n; v++) {
    for (uint32_t e = g->first_edge[v]; e < g->first_edge[v + 1]; e++) {
      int t = g->edge_type[e];
      uint32_t to = g->edge_to[e];
      int keep = t != weak && to != v;
      if (keep && t == internal && weakmap_table(g->strings[g->edge_name[e]]) == g->node_id[v] &&
          g->node_id[v] != 0)
        keep = 0;
      if (keep && v != 0 && (t == shortcut || (page[to] && !page[v]))) keep = 0;
      ess[e >> 6] |= (uint64_t)keep << (e & 63);
      kept += (uint32_t)keep;
    }
  }
  *count = kept;
  free(page);
  free(todo);
  return 0;
}

/* ---- shallow sizes ------------------------------------------------------ */

#define UNVISITED UINT32_MAX
#define SHARED (UINT32_MAX - 1)

int pl__heap_shallow_sizes(const pl_heap_graph *g, uint64_t *self) {
  uint32_t n = g->node_count;
  memcpy(self, g->node_self, (size_t)n * sizeof(*self));
  int synthetic = pl_heap_graph_node_type(g, "synthetic");
  int hidden = pl_heap_graph_node_type(g, "hidden"), array = pl_heap_graph_node_type(g, "array");
  int native = pl_heap_graph_node_type(g, "native"), weak = pl_heap_graph_edge_type(g, "weak");
  int user_roots = 0;
  for (uint32_t e = g->first_edge[0]; e < g->first_edge[1] && !user_roots; e++) {
    uint32_t to = g->edge_to[e];
    user_roots = g->node_type[to] != synthetic ||
                 strcmp(g->strings[g->node_name[to]], "(Document DOM trees)") == 0;
  }
  if (!user_roots || n >= SHARED) return 0;
  uint32_t *owner = malloc((size_t)n * sizeof(*owner));
  /* each node enters the work list at most twice */
  uint32_t *work = malloc((size_t)n * 2 * sizeof(*work));
  if (!owner || !work) {
    free(owner);
    free(work);
    return -ENOMEM;
  }
  size_t top = 0;
  for (uint32_t v = 0; v < n; v++) {
    int t = g->node_type[v];
    if (t == hidden || t == array ||
        (t == native && strcmp(g->strings[g->node_name[v]], "system / ExternalStringData") == 0)) {
      owner[v] = UNVISITED;
    } else {
      owner[v] = v;
      work[top++] = v;
    }
  }
  while (top) {
    uint32_t v = work[--top], o = owner[v];
    for (uint32_t e = g->first_edge[v]; e < g->first_edge[v + 1]; e++) {
      if (g->edge_type[e] == weak) continue;
      uint32_t to = g->edge_to[e], cur = owner[to];
      if (cur == UNVISITED) {
        owner[to] = o;
        work[top++] = to;
      } else if (cur != to && cur != o && cur != SHARED) {
        owner[to] = SHARED;
        work[top++] = to;
      }
    }
  }
  for (uint32_t v = 0; v < n; v++) {
    uint32_t o = owner[v];
    if (o == UNVISITED || o == SHARED || o == v) continue;
    if (o == 0 || g->node_type[o] == synthetic) continue;
    self[o] += self[v];
    self[v] = 0;
  }
  free(owner);
  free(work);
  return 0;
}

/* ---- Lengauer-Tarjan ----------------------------------------------------- */

/* Vertices are numbered 1..n (ordinal + 1); 0 means none. next_edge is
 * used by the depth-first search only and stack by compress() only: one
 * array holds both. */
typedef struct lt {
  const pl_heap_graph *g;
  const uint64_t *ess;
  uint32_t *parent, *ancestor, *vertex, *label, *semi, *next_edge, *stack;
  uint32_t n;
} lt;

static void dfs(lt *s, uint32_t root) {
  const pl_heap_graph *g = s->g;
  s->next_edge[root - 1] = g->first_edge[root - 1];
  uint32_t v = root;
  while (v) {
    if (!s->semi[v]) {
      s->semi[v] = ++s->n;
      s->vertex[s->n] = s->label[v] = v;
    }
    uint32_t next = s->parent[v], o = v - 1;
    for (; s->next_edge[o] < g->first_edge[o + 1]; s->next_edge[o]++) {
      uint32_t e = s->next_edge[o];
      if (!ESS(s->ess, e)) continue;
      uint32_t w = g->edge_to[e] + 1;
      if (!s->semi[w]) {
        s->parent[w] = v;
        s->next_edge[w - 1] = g->first_edge[w - 1];
        next = w;
        break;
      }
    }
    v = next;
  }
}

static void compress(lt *s, uint32_t v) {
  size_t sp = 0;
  while (s->ancestor[s->ancestor[v]]) {
    s->stack[sp++] = v;
    v = s->ancestor[v];
  }
  while (sp) {
    uint32_t w = s->stack[--sp];
    if (s->semi[s->label[s->ancestor[w]]] < s->semi[s->label[w]])
      s->label[w] = s->label[s->ancestor[w]];
    s->ancestor[w] = s->ancestor[s->ancestor[w]];
  }
}

static uint32_t eval(lt *s, uint32_t v) {
  if (!s->ancestor[v]) return v;
  compress(s, v);
  return s->label[v];
}

/* Memory (n nodes, E edges): besides the caller's idom and retained, 7
 * arrays of n + 1 words, one bit per edge and a word per retaining edge.
 * The outputs are the scratch space of the steps before them: idom holds
 * the retainer lists' fill pointers, then the dominators (1-based, shifted
 * by one: vertex v's in idom[v - 1]); retained holds the buckets (two
 * arrays of n words) until the retained sizes are summed. The arrays only
 * the search needs are freed before that sum. */
int pl__heap_dominators(const pl_heap_graph *g, const uint64_t *self, uint32_t *idom,
                        uint64_t *retained, uint32_t *unreachable) {
  if (!self) self = g->node_self;
  uint32_t nodes = g->node_count;
  if (!nodes) return -EINVAL;
  size_t len = (size_t)nodes + 1, words = len * sizeof(uint32_t);
  uint64_t *ess = malloc(((size_t)g->edge_count + 63) / 64 * sizeof(*ess) + sizeof(*ess));
  uint32_t *preds = NULL, kept = 0;
  lt s = {.g = g};
  s.parent = malloc(words);
  s.ancestor = calloc(len, sizeof(uint32_t));
  s.vertex = malloc(words);
  s.label = malloc(words);
  s.semi = calloc(len, sizeof(uint32_t));
  s.next_edge = malloc(words);
  s.stack = s.next_edge;
  uint32_t *first_pred = calloc(len, sizeof(uint32_t));
  int rc = -ENOMEM;
  if (!ess || !s.parent || !s.ancestor || !s.vertex || !s.label || !s.semi || !s.next_edge ||
      !first_pred)
    goto out;
  if ((rc = essential_edges(g, ess, &kept)) < 0) goto out;
  rc = -ENOMEM;
  if (!(preds = malloc((kept ? kept : 1) * sizeof(uint32_t)))) goto out;
  s.ess = ess;
  /* retainers over retaining edges: first_pred[ordinal..+1) in preds */
  for (uint32_t e = 0; e < g->edge_count; e++)
    if (ESS(ess, e)) first_pred[g->edge_to[e] + 1]++;
  for (uint32_t i = 0; i < nodes; i++) first_pred[i + 1] += first_pred[i];
  uint32_t *fill = idom; /* by ordinal */
  memcpy(fill, first_pred, (size_t)nodes * sizeof(*fill));
  for (uint32_t v = 0; v < nodes; v++)
    for (uint32_t e = g->first_edge[v]; e < g->first_edge[v + 1]; e++)
      if (ESS(ess, e)) preds[fill[g->edge_to[e]]++] = v;

  const uint32_t r = 1;
  s.parent[r] = 0;
  dfs(&s, r);
  uint32_t reached = s.n;
  for (uint32_t v = 1; v <= nodes && s.n < nodes; v++)
    if (!s.semi[v] && first_pred[v] == first_pred[v - 1]) {
      s.parent[v] = r;
      dfs(&s, v);
    }
  for (uint32_t v = 1; v <= nodes && s.n < nodes; v++)
    if (!s.semi[v]) {
      s.parent[v] = r;
      s.semi[v] = ++s.n;
      s.vertex[s.n] = s.label[v] = v;
    }
  if (unreachable) *unreachable = nodes - reached;
  free(ess);
  ess = NULL;
  s.ess = NULL;
#define DOM(v) idom[(v)-1]
  /* vertex v's bucket and its next in a bucket, in retained's words */
  uint32_t *bucket = (uint32_t *)retained, *bnext = bucket + nodes;
#define BUCKET(v) bucket[(v)-1]
#define BNEXT(v) bnext[(v)-1]
  memset(bucket, 0, (size_t)nodes * 2 * sizeof(*bucket));
  /* a vertex no bucket sets (one with no retainer from an earlier vertex
   * in the search's order) ends dominated by the root */
  for (uint32_t v = 0; v < nodes; v++) idom[v] = r;

  for (uint32_t i = s.n; i >= 2; i--) {
    uint32_t w = s.vertex[i];
    uint32_t from = first_pred[w - 1], to = first_pred[w];
    if (from == to) {
      s.semi[w] = s.semi[r];
    } else {
      for (uint32_t p = from; p < to; p++) {
        uint32_t u = eval(&s, preds[p] + 1);
        if (s.semi[u] < s.semi[w]) s.semi[w] = s.semi[u];
      }
    }
    uint32_t sv = s.vertex[s.semi[w]];
    BNEXT(w) = BUCKET(sv);
    BUCKET(sv) = w;
    s.ancestor[w] = s.parent[w]; /* link */
    uint32_t pw = s.parent[w];
    for (uint32_t v = BUCKET(pw); v; v = BNEXT(v)) {
      uint32_t u = eval(&s, v);
      DOM(v) = s.semi[u] < s.semi[v] ? u : pw;
    }
    BUCKET(pw) = 0;
  }
#undef BUCKET
#undef BNEXT
  /* what the sum below does not need */
  free(preds);
  free(first_pred);
  free(s.parent);
  free(s.ancestor);
  free(s.label);
  free(s.next_edge);
  preds = first_pred = s.parent = s.ancestor = s.label = s.next_edge = NULL;
  DOM(r) = r;
  for (uint32_t i = 2; i <= s.n; i++) {
    uint32_t w = s.vertex[i];
    if (DOM(w) != s.vertex[s.semi[w]]) DOM(w) = DOM(DOM(w));
  }
#undef DOM
  for (uint32_t v = 0; v < nodes; v++) {
    idom[v] -= 1; /* 1-based to ordinals */
    retained[v] = self[v];
  }
  for (uint32_t i = s.n; i > 1; i--) {
    uint32_t v = s.vertex[i] - 1;
    retained[idom[v]] += retained[v];
  }
  rc = 0;
out:
  free(ess);
  free(preds);
  free(first_pred);
  free(s.parent);
  free(s.ancestor);
  free(s.vertex);
  free(s.label);
  free(s.semi);
  free(s.next_edge);
  return rc;
}

/* ---- Summary ------------------------------------------------------------- */

/* Class names interned by content: open addressing over name pointers. */
typedef struct classes {
  const char **names; /* by class */
  char **owned;       /* names made here, freed with the summary */
  size_t n, cap, nowned;
  uint32_t *slots; /* class + 1, 0 empty */
  size_t nslots;
} classes;

static int64_t class_of_name(classes *c, const char *name, int copy) {
  if (c->n * 2 >= c->nslots) {
    size_t ns = c->nslots ? c->nslots * 2 : 1024;
    uint32_t *sl = calloc(ns, sizeof(*sl));
    if (!sl) return -ENOMEM;
    for (size_t i = 0; i < c->n; i++) {
      size_t h = pl__fnv1a(c->names[i]) & (ns - 1);
      while (sl[h]) h = (h + 1) & (ns - 1);
      sl[h] = (uint32_t)i + 1;
    }
    free(c->slots);
    c->slots = sl;
    c->nslots = ns;
  }
  size_t h = pl__fnv1a(name) & (c->nslots - 1);
  while (c->slots[h]) {
    if (strcmp(c->names[c->slots[h] - 1], name) == 0) return c->slots[h] - 1;
    h = (h + 1) & (c->nslots - 1);
  }
  if (c->n == c->cap) {
    size_t nc = c->cap ? c->cap * 2 : 256;
    const char **nn = realloc(c->names, nc * sizeof(*nn));
    if (!nn) return -ENOMEM;
    c->names = nn;
    char **no = realloc(c->owned, nc * sizeof(*no));
    if (!no) return -ENOMEM;
    c->owned = no;
    c->cap = nc;
  }
  const char *keep = name;
  if (copy) {
    char *d = strdup(name);
    if (!d) return -ENOMEM;
    c->owned[c->nowned++] = d;
    keep = d;
  }
  c->names[c->n] = keep;
  c->slots[h] = (uint32_t)c->n + 1;
  return (int64_t)c->n++;
}

/* Which native nodes DevTools calls detached: those the file says are, and
 * native nodes reached from them through native nodes (edges other than
 * hidden, invisible and weak) that no attached native node reaches so. */
static int detached_nodes(const pl_heap_graph *g, uint8_t *det) {
  uint32_t n = g->node_count;
  memset(det, 0, n);
  if (!g->node_detachedness) return 0;
  int native = pl_heap_graph_node_type(g, "native");
  int hidden = pl_heap_graph_edge_type(g, "hidden"), weak = pl_heap_graph_edge_type(g, "weak");
  int invisible = pl_heap_graph_edge_type(g, "invisible");
  uint8_t *state = calloc(n, 1); /* 0 unvisited, else 1 attached / 2 detached / 3 other */
  uint32_t *work = malloc((size_t)n * sizeof(*work));
  if (!state || !work) {
    free(state);
    free(work);
    return -ENOMEM;
  }
  for (int pass = 0; pass <= 2; pass++) {
    size_t top = 0;
    for (uint32_t v = 0; v < n; v++) {
      int st = g->node_detachedness[v] & 3;
      if (pass == 0) {
        if (st && !state[v]) state[v] = g->node_type[v] == native ? (uint8_t)st : 3;
      } else if (state[v] == pass && g->node_detachedness[v] & 3) {
        work[top++] = v; /* the file's own states seed each pass */
      }
    }
    if (pass == 0) continue;
    while (top) {
      uint32_t v = work[--top];
      for (uint32_t e = g->first_edge[v]; e < g->first_edge[v + 1]; e++) {
        int t = g->edge_type[e];
        uint32_t to = g->edge_to[e];
        if (t == hidden || t == weak || t == invisible || state[to]) continue;
        if (g->node_type[to] != native) {
          state[to] = 3;
          continue;
        }
        state[to] = (uint8_t)pass;
        work[top++] = to;
      }
    }
  }
  for (uint32_t v = 0; v < n; v++) det[v] = state[v] == 2;
  free(state);
  free(work);
  return 0;
}

/* ---- inferred interfaces (plain objects named after their properties) --- */

#define IFACE_MAX_NAME 120    /* UTF-16 units, as DevTools counts */
#define IFACE_MIN_OBJECTS 2   /* an interface matches at least this many objects */
#define IFACE_PROPORTION 1000 /* ... and 1 in this many plain objects */

/* UTF-16 length of UTF-8 s[0..n). */
static size_t len16(const char *s, size_t n) {
  size_t l = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if ((c & 0xc0) != 0x80) l += c >= 0xf0 ? 2 : 1;
  }
  return l;
}

typedef struct sbuf {
  char *p;
  size_t len, cap;
  int failed;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
  if (b->failed) return;
  if (b->cap - b->len < n + 1) {
    size_t c = b->cap ? b->cap : 256;
    while (c - b->len < n + 1) c *= 2;
    char *q = realloc(b->p, c);
    if (!q) {
      b->failed = 1;
      return;
    }
    b->p = q;
    b->cap = c;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

/* A property name as DevTools shows it in an interface: JSON-quoted when it
 * holds a comma, a quote or a brace. */
static void format_prop(sbuf *b, const char *name) {
  if (!strpbrk(name, ",'\"{}")) {
    sb_put(b, name, strlen(name));
    return;
  }
  sb_put(b, "\"", 1);
  for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
    char esc[8];
    const char *e = NULL;
    switch (*p) {
      case '"':
        e = "\\\"";
        break;
      case '\\':
        e = "\\\\";
        break;
      case '\b':
        e = "\\b";
        break;
      case '\f':
        e = "\\f";
        break;
      case '\n':
        e = "\\n";
        break;
      case '\r':
        e = "\\r";
        break;
      case '\t':
        e = "\\t";
        break;
      default:
        if (*p < 0x20) {
          snprintf(esc, sizeof(esc), "\\u%04x", *p);
          e = esc;
        }
    }
    if (e)
      sb_put(b, e, strlen(e));
    else
      sb_put(b, (const char *)p, 1);
  }
  sb_put(b, "\"", 1);
}

typedef struct iface {
  uint32_t *props; /* sorted string indexes */
  uint32_t nprops;
  uint64_t count;
} iface;

static int u32_cmp(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static const iface *sort_ifaces;
static int iface_order(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  if (sort_ifaces[x].count != sort_ifaces[y].count)
    return sort_ifaces[x].count > sort_ifaces[y].count ? -1 : 1;
  return x < y ? -1 : 1; /* stable: first seen first */
}

/* Whether sorted multiset a[0..na) is inside sorted b[0..nb). */
static int included(const uint32_t *a, uint32_t na, const uint32_t *b, uint32_t nb) {
  uint32_t j = 0;
  for (uint32_t i = 0; i < na; i++) {
    while (j < nb && b[j] < a[i]) j++;
    if (j == nb || b[j] != a[i]) return 0;
    j++;
  }
  return 1;
}

/* The class of name in c, or -1. */
static int64_t class_find(const classes *c, const char *name) {
  if (!c->nslots) return -1;
  size_t h = pl__fnv1a(name) & (c->nslots - 1);
  for (; c->slots[h]; h = (h + 1) & (c->nslots - 1))
    if (strcmp(c->names[c->slots[h] - 1], name) == 0) return c->slots[h] - 1;
  return -1;
}

/* Plain object v of graph x (types: its object type and property edge type). */
#define PLAIN(x, ot, v) \
  ((x)->node_type[v] == (ot) && strcmp((x)->strings[(x)->node_name[v]], "Object") == 0)

/* name[v]: the interface name DevTools gives plain object v of g ("{a, b}")
 * after the interfaces inferred from the plain objects of src (g itself, or
 * the other snapshot of a comparison, as DevTools' aggregatesForDiff), or
 * NULL (keeps its name). Names are kept in *names (freed by the caller
 * with classes_free). */
static int infer_interfaces(const pl_heap_graph *g, const pl_heap_graph *src, const char **name,
                            classes *names) {
  uint32_t n = g->node_count;
  int object = pl_heap_graph_node_type(g, "object");
  int property = pl_heap_graph_edge_type(g, "property");
  int sobject = pl_heap_graph_node_type(src, "object");
  int sproperty = pl_heap_graph_edge_type(src, "property");
  for (uint32_t v = 0; v < n; v++) name[v] = NULL;
  if (object < 0 || property < 0 || sobject < 0 || sproperty < 0) return 0;
  iface *ifs = NULL;
  size_t cap = 0;
  uint32_t *props = NULL, *order = NULL, *tr = NULL;
  size_t pcap = 0;
  sbuf b = {0};
  uint64_t plain = 0;
  classes pnames = {0}; /* src: the definitions' property names, by content */
  int rc = -ENOMEM;
  for (uint32_t v = 0; v < src->node_count; v++) {
    if (!PLAIN(src, sobject, v)) continue;
    plain++;
    uint32_t np = 0, deg = src->first_edge[v + 1] - src->first_edge[v];
    if (deg > pcap) {
      uint32_t *q = realloc(props, deg * sizeof(*q));
      if (!q) goto out;
      props = q;
      pcap = deg;
    }
    b.len = 0;
    sb_put(&b, "{", 1);
    for (uint32_t e = src->first_edge[v]; e < src->first_edge[v + 1]; e++) {
      if (src->edge_type[e] != sproperty) continue;
      const char *pn = src->strings[src->edge_name[e]];
      if (strcmp(pn, "__proto__") == 0) continue;
      size_t before = b.len;
      size_t l16 = len16(b.p, b.len);
      format_prop(&b, pn);
      if (b.failed) goto out;
      size_t f16 = len16(b.p + before, b.len - before);
      b.len = before;
      b.p[b.len] = '\0';
      if (l16 > 1 && l16 + f16 > IFACE_MAX_NAME) break;
      if (l16 != 1) sb_put(&b, ", ", 2);
      format_prop(&b, pn);
      props[np++] = src->edge_name[e];
    }
    if (!np) continue;
    sb_put(&b, "}", 1);
    if (b.failed) goto out;
    size_t before = names->n;
    int64_t k = class_of_name(names, b.p, 1);
    if (k < 0) goto out;
    if (names->n > before) {
      if ((size_t)k >= cap) {
        size_t c = cap ? cap * 2 : 64;
        iface *q = realloc(ifs, c * sizeof(*q));
        if (!q) goto out;
        ifs = q;
        cap = c;
      }
      ifs[k].props = malloc(np * sizeof(uint32_t));
      if (!ifs[k].props) {
        names->n--; /* not recorded: keep the table consistent for cleanup */
        goto out;
      }
      memcpy(ifs[k].props, props, np * sizeof(uint32_t));
      qsort(ifs[k].props, np, sizeof(uint32_t), u32_cmp);
      ifs[k].nprops = np;
      ifs[k].count = 0;
    }
    ifs[k].count++;
  }
  size_t ncand = names->n, ndefs = 0;
  order = malloc((ncand ? ncand : 1) * sizeof(*order));
  if (!order) goto out;
  for (size_t i = 0; i < ncand; i++) order[i] = (uint32_t)i;
  sort_ifaces = ifs;
  qsort(order, ncand, sizeof(*order), iface_order);
  double min = (double)plain / IFACE_PROPORTION;
  if (min < IFACE_MIN_OBJECTS) min = IFACE_MIN_OBJECTS;
  while (ndefs < ncand && (double)ifs[order[ndefs]].count >= min) ndefs++;
  if (src != g && ndefs) {
    /* another graph's strings: property names become ids by content, the
     * same in both graphs (UINT32_MAX: a name no definition has) */
    for (size_t d = 0; d < ndefs; d++) {
      iface *f = &ifs[order[d]];
      for (uint32_t i = 0; i < f->nprops; i++) {
        int64_t k = class_of_name(&pnames, src->strings[f->props[i]], 0);
        if (k < 0) goto out;
        f->props[i] = (uint32_t)k;
      }
      qsort(f->props, f->nprops, sizeof(uint32_t), u32_cmp);
    }
    tr = malloc((g->nstrings ? g->nstrings : 1) * sizeof(*tr));
    if (!tr) goto out;
    for (uint32_t s = 0; s < g->nstrings; s++) {
      int64_t k = class_find(&pnames, g->strings[s]);
      tr[s] = k < 0 ? UINT32_MAX : (uint32_t)k;
    }
  }
  for (uint32_t v = 0; v < n && ndefs; v++) {
    if (!PLAIN(g, object, v)) continue;
    uint32_t np = 0, deg = g->first_edge[v + 1] - g->first_edge[v];
    if (deg > pcap) {
      uint32_t *q = realloc(props, deg * sizeof(*q));
      if (!q) goto out;
      props = q;
      pcap = deg;
    }
    for (uint32_t e = g->first_edge[v]; e < g->first_edge[v + 1]; e++)
      if (g->edge_type[e] == property) props[np++] = tr ? tr[g->edge_name[e]] : g->edge_name[e];
    qsort(props, np, sizeof(uint32_t), u32_cmp);
    uint32_t best_n = 0;
    const char *best = NULL;
    for (size_t d = 0; d < ndefs; d++) {
      const iface *f = &ifs[order[d]];
      if (f->nprops > best_n && f->nprops <= np && included(f->props, f->nprops, props, np)) {
        best_n = f->nprops;
        best = names->names[order[d]];
      }
    }
    name[v] = best;
  }
  rc = 0;
out:
  for (size_t i = 0; i < names->n && ifs; i++) free(ifs[i].props);
  free(ifs);
  free(props);
  free(order);
  free(tr);
  free(pnames.names);
  free(pnames.owned);
  free(pnames.slots);
  free(b.p);
  return rc;
}

/* The node's class key as DevTools makes it into buf: its class name (hidden
 * "(system)", object/native the name, "<div id=x>" -> "<div>", code
 * "(compiled code)", closure "Function", regexp "RegExp", else "(type)"),
 * for an object with a location prefixed by "\001script,line,col\001". */
static void class_key(const pl_heap_graph *g, uint32_t v, const int *types, int detached,
                      const char *iface_name, const uint32_t *loc, char *buf, size_t n) {
  int t = g->node_type[v];
  if (t == types[0]) {
    snprintf(buf, n, "(system)");
  } else if (t == types[2]) {
    snprintf(buf, n, "(compiled code)");
  } else if (t == types[3]) {
    snprintf(buf, n, "Function");
  } else if (t == types[4]) {
    snprintf(buf, n, "RegExp");
  } else if (t == types[1] || t == types[5]) {
    char name[1024];
    snprintf(name, sizeof(name), "%s%s", detached ? "Detached " : "",
             iface_name ? iface_name : g->strings[g->node_name[v]]);
    const char *cut = NULL;
    if (name[0] == '<')
      cut = strchr(name, ' ');
    else if (strncmp(name, "Detached <", 10) == 0)
      cut = strchr(name + 10, ' ');
    if (cut) memcpy((char *)cut, ">", 2);
    if (t == types[1] && loc)
      snprintf(buf, n, "\001%u,%u,%u\001%s", loc[1], loc[2], loc[3], name);
    else
      snprintf(buf, n, "%s", name);
  } else {
    snprintf(buf, n, "(%s)", g->node_type_names[t]);
  }
}

/* The shown name of a class key. */
static const char *key_name(const char *key) {
  if (key[0] != '\001') return key;
  const char *p = strchr(key + 1, '\001');
  return p ? p + 1 : key;
}

static int row_cmp(const void *a, const void *b) {
  const pl__heap_class *x = a, *y = b;
  if (x->retained != y->retained) return x->retained > y->retained ? -1 : 1;
  if (x->self != y->self) return x->self > y->self ? -1 : 1;
  return strcmp(x->name, y->name);
}

int pl__heap_classify(const pl_heap_graph *g, pl__heap_classes *out) {
  return pl__heap_classify_with(g, g, out);
}

int pl__heap_classify_with(const pl_heap_graph *g, const pl_heap_graph *ifaces,
                           pl__heap_classes *out) {
  memset(out, 0, sizeof(*out));
  uint32_t n = g->node_count;
  if (!n) return -EINVAL;
  int types[6] = {pl_heap_graph_node_type(g, "hidden"), pl_heap_graph_node_type(g, "object"),
                  pl_heap_graph_node_type(g, "code"),   pl_heap_graph_node_type(g, "closure"),
                  pl_heap_graph_node_type(g, "regexp"), pl_heap_graph_node_type(g, "native")};
  uint64_t *self = malloc((size_t)n * sizeof(*self));
  uint32_t *cls = malloc((size_t)n * sizeof(*cls));
  uint8_t *det = malloc(n);
  const char **iname = malloc((size_t)n * sizeof(*iname));
  uint32_t *loc_of = calloc(n, sizeof(*loc_of)); /* location + 1, the last one given */
  classes ic = {0};
  classes c = {0};
  const char **shown = NULL;
  int rc = -ENOMEM;
  if (!self || !cls || !det || !loc_of || !iname) goto out;
  if ((rc = infer_interfaces(g, ifaces ? ifaces : g, iname, &ic)) < 0) goto out;
  if ((rc = detached_nodes(g, det)) < 0) goto out;
  for (uint32_t i = 0; i < g->nlocations; i++) loc_of[g->locations[4 * (size_t)i]] = i + 1;
  if ((rc = pl__heap_shallow_sizes(g, self)) < 0) goto out;
  rc = -ENOMEM;
  for (uint32_t v = 0; v < n; v++) {
    char buf[1100];
    class_key(g, v, types, det[v], iname[v],
              loc_of[v] ? g->locations + 4 * (size_t)(loc_of[v] - 1) : NULL, buf, sizeof(buf));
    int64_t k = class_of_name(&c, buf, 1);
    if (k < 0) goto out;
    cls[v] = (uint32_t)k;
  }
  shown = malloc((c.n ? c.n : 1) * sizeof(*shown));
  if (!shown) goto out;
  for (size_t k = 0; k < c.n; k++) shown[k] = key_name(c.names[k]);
  out->of = cls;
  out->self = self;
  out->key = c.names;
  out->name = shown;
  out->n = c.n;
  out->owned = c.owned;
  out->nowned = c.nowned;
  cls = NULL;
  self = NULL;
  c.names = NULL;
  c.owned = NULL;
  c.nowned = 0;
  rc = 0;
out:
  for (size_t i = 0; i < c.nowned; i++) free(c.owned[i]);
  free(c.owned);
  free(c.names);
  free(c.slots);
  free(self);
  free(cls);
  free(det);
  free(loc_of);
  free(iname);
  for (size_t i = 0; i < ic.nowned; i++) free(ic.owned[i]);
  free(ic.owned);
  free(ic.names);
  free(ic.slots);
  return rc;
}

void pl__heap_classes_free(pl__heap_classes *c) {
  for (size_t i = 0; i < c->nowned; i++) free(c->owned[i]);
  free(c->owned);
  free(c->key);
  free(c->name);
  free(c->of);
  free(c->self);
  memset(c, 0, sizeof(*c));
}

int pl__heap_summary_build(const pl_heap_graph *g, pl__heap_summary *out) {
  memset(out, 0, sizeof(*out));
  uint32_t n = g->node_count;
  if (!n) return -EINVAL;
  pl__heap_classes hc;
  int rc = pl__heap_classify(g, &hc);
  if (rc < 0) return rc;
  uint32_t *idom = malloc((size_t)n * sizeof(*idom));
  uint64_t *ret = malloc((size_t)n * sizeof(*ret));
  uint32_t *kids = calloc((size_t)n + 1, sizeof(*kids)); /* first child index */
  uint32_t *kid = malloc((size_t)n * sizeof(*kid));
  uint32_t *stack = malloc((size_t)n * 2 * sizeof(*stack));
  uint32_t *seen = NULL;
  pl__heap_class *rows = NULL;
  const uint32_t *cls = hc.of;
  const uint64_t *self = hc.self;
  rc = -ENOMEM;
  if (!idom || !ret || !kids || !kid || !stack) goto out;
  if ((rc = pl__heap_dominators(g, self, idom, ret, &out->unreachable)) < 0) goto out;
  rc = -ENOMEM;
  seen = calloc(hc.n ? hc.n : 1, sizeof(*seen));
  rows = calloc(hc.n ? hc.n : 1, sizeof(*rows));
  if (!seen || !rows) goto out;
  for (size_t k = 0; k < hc.n; k++) rows[k].name = hc.name[k];
  for (uint32_t v = 0; v < n; v++) {
    if (!self[v]) continue;
    rows[cls[v]].count++;
    rows[cls[v]].self += self[v];
  }
  /* dominator tree children, then a walk keeping per class how many
   * counted ancestors of that class are on the path */
  for (uint32_t v = 1; v < n; v++) kids[idom[v] + 1]++;
  for (uint32_t v = 0; v < n; v++) kids[v + 1] += kids[v];
  {
    uint32_t *pos = malloc((size_t)n * sizeof(*pos));
    if (!pos) goto out;
    memcpy(pos, kids, (size_t)n * sizeof(*pos));
    for (uint32_t v = 1; v < n; v++) kid[pos[idom[v]]++] = v;
    free(pos);
  }
  /* iterative: enter pushes an exit marker when it marked its class */
  size_t sp = 0;
  uint32_t *st_node = stack, *st_state = stack + n;
  st_node[sp] = 0, st_state[sp] = 0, sp++;
  while (sp) {
    uint32_t v = st_node[sp - 1];
    if (st_state[sp - 1] == 0) {
      st_state[sp - 1] = 1;
      uint32_t k = cls[v];
      if (!seen[k] && self[v]) {
        rows[k].retained += ret[v];
        if (kids[v] != kids[v + 1]) {
          seen[k]++;
          st_state[sp - 1] = 2;
        }
      }
      sp--;
      /* re-push as an exit marker if needed, then the children */
      if (st_state[sp] == 2) {
        st_node[sp] = v;
        st_state[sp] = 3;
        sp++;
      }
      for (uint32_t i = kids[v]; i < kids[v + 1]; i++) {
        st_node[sp] = kid[i];
        st_state[sp] = 0;
        sp++;
      }
    } else {
      seen[cls[v]]--; /* state 3: leaving a counted node's subtree */
      sp--;
    }
  }
  size_t nr = 0;
  for (size_t k = 0; k < hc.n; k++)
    if (rows[k].count) rows[nr++] = rows[k];
  qsort(rows, nr, sizeof(*rows), row_cmp);
  out->rows = rows;
  out->nrows = nr;
  out->total = ret[0];
  out->nodes = n;
  out->owned = hc.owned; /* the rows' names */
  out->nowned = hc.nowned;
  hc.owned = NULL;
  hc.nowned = 0;
  rows = NULL;
  rc = 0;
out:
  pl__heap_classes_free(&hc);
  free(seen);
  free(rows);
  free(idom);
  free(ret);
  free(kids);
  free(kid);
  free(stack);
  return rc;
}

void pl__heap_summary_free(pl__heap_summary *out) {
  for (size_t i = 0; i < out->nowned; i++) free(out->owned[i]);
  free(out->owned);
  free(out->rows);
  memset(out, 0, sizeof(*out));
}
