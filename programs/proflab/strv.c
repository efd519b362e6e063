/* proflab: the growable string vector (see strv.h). */
#include "strv.h"

#include <stdlib.h>
#include <string.h>

int cli_strv_push(cli_strv *s, const char *str) {
  if (s->n + 2 > s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 8;
    char **v = realloc(s->v, cap * sizeof(*v));
    if (!v) return -1;
    s->v = v;
    s->cap = cap;
  }
  char *d = strdup(str);
  if (!d) return -1;
  s->v[s->n++] = d;
  s->v[s->n] = NULL;
  return 0;
}

void cli_strv_free(cli_strv *s) {
  for (size_t i = 0; i < s->n; i++) free(s->v[i]);
  free(s->v);
  memset(s, 0, sizeof(*s));
}
