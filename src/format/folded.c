/* FlameGraph folded-stacks writer (see cpu_writers.h).
 *
 * One line per distinct stack of function names: "main;work;leaf 42\n",
 * root first, then the summed sample weight. Model stacks that differ only
 * by program counters fold into one line. Lines are sorted bytewise so the
 * output is deterministic. Inside names ';' becomes ':' and CR/LF become
 * ' ', which would otherwise split frames or lines.
 */
#include "format/cpu_writers.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/cpu_common.h"

typedef struct fl_line {
  size_t off; /* of the NUL-terminated line text in the text buffer */
  uint64_t weight;
} fl_line;

static uint64_t sat_add(uint64_t a, uint64_t b) { return a + b < a ? UINT64_MAX : a + b; }

static void put_name(pl_buf *b, const char *name) {
  const char *s = pl__str(name), *start = s;
  for (; *s; s++) {
    if (*s != ';' && *s != '\n' && *s != '\r') continue;
    pl_buf_append(b, start, (size_t)(s - start));
    pl_buf_putc(b, *s == ';' ? ':' : ' ');
    start = s + 1;
  }
  pl_buf_append(b, start, (size_t)(s - start));
}

static int line_cmp(const void *a, const void *b, void *text) {
  const fl_line *x = a, *y = b;
  return strcmp((const char *)text + x->off, (const char *)text + y->off);
}

int pl__folded_write(const pl_cpu_profile *p, pl__sink *out) {
  if (!out) return -EINVAL;
  int rc = pl__cpu_profile_check(p);
  if (rc) return rc;

  uint64_t idle = 0, program = 0;
  uint64_t *weights = calloc(p->nstacks ? p->nstacks : 1, sizeof(*weights));
  fl_line *lines = malloc((p->nstacks + 2) * sizeof(*lines));
  pl_buf text;
  pl_buf_init(&text);
  if (!weights || !lines) {
    rc = -ENOMEM;
    goto out;
  }
  for (size_t i = 0; i < p->nsamples; i++) {
    const pl_cpu_sample *s = &p->samples[i];
    uint32_t st = pl__sample_stack(p, s);
    uint64_t *w = st == PL_STACK_IDLE ? &idle : st == PL_STACK_PROGRAM ? &program : &weights[st];
    *w = sat_add(*w, s->weight);
  }

  size_t n = 0;
  for (size_t st = 0; st < p->nstacks; st++) {
    if (!weights[st]) continue;
    const pl_cpu_stack *stack = &p->stacks[st];
    lines[n] = (fl_line){text.len, weights[st]};
    for (uint32_t d = stack->depth; d-- > 0;) {
      put_name(&text, p->frames[stack->frames[d]].function);
      if (d) pl_buf_putc(&text, ';');
    }
    pl_buf_putc(&text, '\0');
    n++;
  }
  if (idle) {
    lines[n++] = (fl_line){text.len, idle};
    pl_buf_append(&text, "(idle)", sizeof("(idle)"));
  }
  if (program) {
    lines[n++] = (fl_line){text.len, program};
    pl_buf_append(&text, "(program)", sizeof("(program)"));
  }
  if (pl_buf_failed(&text)) {
    rc = -ENOMEM;
    goto out;
  }
  qsort_r(lines, n, sizeof(*lines), line_cmp, text.data);

  for (size_t i = 0; i < n && !out->error;) {
    const char *s = text.data + lines[i].off;
    uint64_t w = lines[i].weight;
    size_t k = i + 1;
    for (; k < n && strcmp(s, text.data + lines[k].off) == 0; k++) w = sat_add(w, lines[k].weight);
    char num[32];
    int len = snprintf(num, sizeof(num), " %llu\n", (unsigned long long)w);
    pl__sink_write(out, s, strlen(s));
    pl__sink_write(out, num, (size_t)len);
    pl__sink_maybe_flush(out);
    i = k;
  }

out:
  free(weights);
  free(lines);
  pl_buf_free(&text);
  if (rc) return rc;
  return pl__sink_finish(out);
}
