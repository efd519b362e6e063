/* A flame-graph tree written as a self-contained interactive SVG document
 * (see flame.h): frames, tooltips, controls and the embedded script. */
#include "analysis/flame.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "proflab/buf.h"

#define NONE PL__FLAME_NONE

/* Layout, in px. */
#define DEFAULT_WIDTH 1200u
#define MIN_WIDTH 200u
#define MAX_WIDTH 100000u
#define XPAD 10.0
#define FRAME_H 16
#define TOP 56    /* title, subtitle, controls */
#define BOTTOM 30 /* the details line */
#define FONT_PX 12
#define CHAR_W (0.6 * FONT_PX) /* monospace advance */
#define SEARCH_W 240.0
#define TITLE_CHAR_W (0.6 * 17) /* the title's monospace advance */

/* ---- text --------------------------------------------------------------- */

/* One code point at s (n > 0 bytes left) into *cp: its length in bytes.
 * Invalid or overlong sequences, surrogates and code points XML forbids
 * (controls, U+FFFE, U+FFFF) read as U+FFFD, one byte consumed. */
static size_t next_cp(const unsigned char *s, size_t n, uint32_t *cp) {
  unsigned c = s[0];
  size_t len;
  uint32_t v, min;
  if (c < 0x80) {
    *cp = c < 0x20 || c == 0x7f ? 0xfffd : c;
    return 1;
  }
  if (c >= 0xc2 && c <= 0xdf)
    len = 2, v = c & 0x1f, min = 0x80;
  else if (c >= 0xe0 && c <= 0xef)
    len = 3, v = c & 0x0f, min = 0x800;
  else if (c >= 0xf0 && c <= 0xf4)
    len = 4, v = c & 0x07, min = 0x10000;
  else
    goto bad;
  if (len > n) goto bad;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80) goto bad;
    v = v << 6 | (s[i] & 0x3f);
  }
  if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) goto bad;
  if (v == 0xfffe || v == 0xffff || (v >= 0x80 && v <= 0x9f)) v = 0xfffd;
  *cp = v;
  return len;
bad:
  *cp = 0xfffd;
  return 1;
}

static void put_utf8(pl_buf *b, uint32_t cp) {
  char u[4];
  size_t n;
  if (cp < 0x80) {
    u[0] = (char)cp, n = 1;
  } else if (cp < 0x800) {
    u[0] = (char)(0xc0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
  } else if (cp < 0x10000) {
    u[0] = (char)(0xe0 | cp >> 12), u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
    u[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
  } else {
    u[0] = (char)(0xf0 | cp >> 18), u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    u[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), u[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
  }
  pl_buf_append(b, u, n);
}

static void put_xml_cp(pl_buf *b, uint32_t cp) {
  switch (cp) {
    case '&':
      pl_buf_puts(b, "&amp;");
      break;
    case '<':
      pl_buf_puts(b, "&lt;");
      break;
    case '>':
      pl_buf_puts(b, "&gt;");
      break;
    case '"':
      pl_buf_puts(b, "&quot;");
      break;
    case '\'':
      pl_buf_puts(b, "&apos;");
      break;
    default:
      put_utf8(b, cp);
  }
}

/* s (NULL: "") as XML character data, at most max_cp code points: when
 * longer, its first max_cp - 1 and an ellipsis. */
static void put_xml(pl_buf *b, const char *s, size_t max_cp) {
  const unsigned char *p = (const unsigned char *)(s ? s : "");
  size_t n = strlen((const char *)p), count = 0;
  uint32_t cp;
  for (size_t i = 0; i < n; count++) i += next_cp(p + i, n - i, &cp);
  size_t keep = count <= max_cp ? count : max_cp ? max_cp - 1 : 0;
  for (size_t i = 0, k = 0; i < n && k < keep; k++) {
    i += next_cp(p + i, n - i, &cp);
    put_xml_cp(b, cp);
  }
  if (keep < count) put_utf8(b, 0x2026);
}

/* s as a JavaScript string literal in ASCII ("<", ">" and "&" escaped too,
 * so it cannot end a CDATA section or a script), the same code points the
 * XML text shows. */
static void put_js_string(pl_buf *b, const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  size_t n = strlen(s);
  pl_buf_putc(b, '"');
  for (size_t i = 0; i < n;) {
    uint32_t cp;
    i += next_cp(p + i, n - i, &cp);
    if (cp == '"' || cp == '\\') {
      pl_buf_putc(b, '\\');
      pl_buf_putc(b, (char)cp);
    } else if (cp >= 0x20 && cp < 0x7f && cp != '<' && cp != '>' && cp != '&') {
      pl_buf_putc(b, (char)cp);
    } else if (cp < 0x10000) {
      pl_buf_printf(b, "\\u%04x", (unsigned)cp);
    } else {
      uint32_t v = cp - 0x10000;
      pl_buf_printf(b, "\\u%04x\\u%04x", (unsigned)(0xd800 | v >> 10),
                    (unsigned)(0xdc00 | (v & 0x3ff)));
    }
  }
  pl_buf_putc(b, '"');
}

static const char *base_name(const char *path) {
  const char *s = strrchr(path, '/');
  return s ? s + 1 : path;
}

/* "name (file:line)", "name (file)", "name (module)" or "name", escaped. */
static void put_fn_title(pl_buf *b, const pl__flame_fn *f) {
  put_xml(b, f->name, SIZE_MAX);
  if (f->file[0]) {
    pl_buf_puts(b, " (");
    put_xml(b, f->file, SIZE_MAX);
    if (f->line) pl_buf_printf(b, ":%u", f->line);
    pl_buf_putc(b, ')');
  } else if (f->module[0]) {
    pl_buf_puts(b, " (");
    put_xml(b, base_name(f->module), SIZE_MAX);
    pl_buf_putc(b, ')');
  }
}

/* ---- values ------------------------------------------------------------- */

static void put_duration(pl_buf *b, double ns) {
  if (ns >= 1e9)
    pl_buf_printf(b, "%.3f s", ns / 1e9);
  else if (ns >= 1e6)
    pl_buf_printf(b, "%.2f ms", ns / 1e6);
  else if (ns >= 1e3)
    pl_buf_printf(b, "%.1f \xc2\xb5s", ns / 1e3);
  else
    pl_buf_printf(b, "%.0f ns", ns);
}

static void put_bytes(pl_buf *b, double v) {
  static const char *const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (v >= 1024 && u < 4) v /= 1024, u++;
  if (u == 0)
    pl_buf_printf(b, "%.0f bytes", v);
  else
    pl_buf_printf(b, "%.1f %s", v, units[u]);
}

/* A value of side `side` for people: "1.234 s (1234 samples)", "12 samples",
 * "3.4 MiB". */
static void put_value(pl_buf *b, const pl__flame_tree *t, int side, uint64_t v) {
  if (t->unit == PL__FLAME_BYTES) {
    put_bytes(b, (double)v);
  } else if (t->period_ns[side]) {
    put_duration(b, (double)v * (double)t->period_ns[side]);
    pl_buf_printf(b, " (%llu sample%s)", (unsigned long long)v, v == 1 ? "" : "s");
  } else {
    pl_buf_printf(b, "%llu sample%s", (unsigned long long)v, v == 1 ? "" : "s");
  }
}

static double share(uint64_t part, uint64_t whole) {
  return whole ? (double)part / (double)whole : 0.0;
}

/* ---- colors ------------------------------------------------------------- */

static uint64_t fnv1a(const char *s) {
  uint64_t h = pl__fnv1a(s);
  h ^= h >> 29; /* spread the last bytes into the high bits */
  h *= 0xbf58476d1ce4e5b9ull;
  return h ^ (h >> 32);
}

void pl__flame_color(pl__flame_palette p, const char *name, unsigned char rgb[3]) {
  uint64_t h = fnv1a(name ? name : "");
  double v1 = (double)(h & 0xffff) / 65535.0, v2 = (double)((h >> 16) & 0xffff) / 65535.0,
         v3 = (double)((h >> 32) & 0xffff) / 65535.0;
  if (p == PL__FLAME_MEM) { /* greens to blues */
    rgb[0] = (unsigned char)(20 * v3);
    rgb[1] = (unsigned char)(150 + 80 * v1);
    rgb[2] = (unsigned char)(110 + 140 * v2);
  } else { /* reds, oranges, yellows */
    rgb[0] = (unsigned char)(205 + 50 * v3);
    rgb[1] = (unsigned char)(230 * v1);
    rgb[2] = (unsigned char)(55 * v2);
  }
}

/* Per node of the diff palette: the change of its self share, B - A, and
 * whether that is within the noise band. */
typedef struct diff_info {
  double pa, pb, band;
} diff_info;

static diff_info node_diff(const pl__flame_tree *t, const pl__flame_node *n, int noise) {
  const pl__flame_node *r = &t->nodes[0];
  uint64_t na = r->total[PL__FLAME_BASE], nb = r->total[PL__FLAME_MAIN];
  diff_info d = {share(n->self[PL__FLAME_BASE], na), share(n->self[PL__FLAME_MAIN], nb), 0};
  if (noise) {
    double va = na ? d.pa * (1 - d.pa) / (double)na : 0,
           vb = nb ? d.pb * (1 - d.pb) / (double)nb : 0;
    d.band = 2 * sqrt(va + vb);
  }
  return d;
}

static int within_noise(diff_info d) {
  double delta = d.pb - d.pa;
  return delta == 0 || fabs(delta) < d.band;
}

static void node_color(const pl__flame_tree *t, const pl__flame_svg_opts *o,
                       const pl__flame_node *n, double max_delta, unsigned char rgb[3]) {
  const pl__flame_fn *f = &t->fns[n->fn];
  if (o->palette == PL__FLAME_DIFF) {
    diff_info d = node_diff(t, n, o->noise);
    if (within_noise(d) || !(max_delta > 0)) {
      rgb[0] = rgb[1] = rgb[2] = 222;
      return;
    }
    double delta = d.pb - d.pa, k = fabs(delta) / max_delta;
    if (k > 1) k = 1;
    unsigned char v = (unsigned char)(205 * (1 - k));
    if (delta > 0)
      rgb[0] = 255, rgb[1] = v, rgb[2] = v;
    else
      rgb[0] = v, rgb[1] = v, rgb[2] = 255;
    return;
  }
  if (f->meta) { /* the root, (idle), (program), ...: not code */
    rgb[0] = rgb[1] = rgb[2] = n->fn == 0 ? 210 : 190;
    return;
  }
  pl__flame_color(o->palette, f->name, rgb);
}

/* ---- frames ------------------------------------------------------------- */

typedef struct writer {
  const pl__flame_tree *t;
  const pl__flame_svg_opts *o;
  pl__sink *out;
  double scale; /* px per unit of value */
  double full;  /* px of the root */
  unsigned height;
  double max_delta; /* diff: the largest significant |self share change| drawn */
} writer;

static int drawn(const writer *w, const pl__flame_node *n) {
  if (n == &w->t->nodes[0]) return 1;
  return n->total[PL__FLAME_MAIN] && (double)n->total[PL__FLAME_MAIN] * w->scale >= w->o->minwidth;
}

static void put_tooltip(writer *w, const pl__flame_node *n) {
  const pl__flame_tree *t = w->t;
  pl_buf *b = &w->out->buf;
  const pl__flame_node *r = &t->nodes[0];
  int m = PL__FLAME_MAIN, a = PL__FLAME_BASE;
  pl_buf_puts(b, "<title>");
  put_fn_title(b, &t->fns[n->fn]);
  if (w->o->palette == PL__FLAME_DIFF) {
    diff_info d = node_diff(t, n, w->o->noise);
    pl_buf_puts(b, "\nB: ");
    put_value(b, t, m, n->total[m]);
    pl_buf_printf(b, ", %.2f%% (self %.2f%%)", 100 * share(n->total[m], r->total[m]), 100 * d.pb);
    pl_buf_printf(b, "\nA: %.2f%% (self %.2f%%)", 100 * share(n->total[a], r->total[a]),
                  100 * d.pa);
    pl_buf_printf(b, "\nself share %+.2f points", 100 * (d.pb - d.pa));
    if (w->o->noise) {
      if (within_noise(d))
        pl_buf_printf(b, ": within noise (\xc2\xb1%.2f)", 100 * d.band);
      else
        pl_buf_printf(b, ": %s (noise \xc2\xb1%.2f)", d.pb > d.pa ? "grew" : "shrank",
                      100 * d.band);
    }
  } else {
    pl_buf_putc(b, '\n');
    put_value(b, t, m, n->total[m]);
    pl_buf_printf(b, ", %.2f%%", 100 * share(n->total[m], r->total[m]));
    if (n->self[m] && n != r) {
      pl_buf_puts(b, "\nself: ");
      put_value(b, t, m, n->self[m]);
      pl_buf_printf(b, ", %.2f%%", 100 * share(n->self[m], r->total[m]));
    }
  }
  pl_buf_puts(b, "</title>");
}

static void put_frame(writer *w, uint32_t ni, uint64_t start) {
  const pl__flame_tree *t = w->t;
  const pl__flame_node *n = &t->nodes[ni];
  pl_buf *b = &w->out->buf;
  double x = XPAD + (double)start * w->scale;
  double width = ni == 0 ? w->full : (double)n->total[PL__FLAME_MAIN] * w->scale;
  double y = w->o->icicle ? TOP + (double)n->depth * FRAME_H
                          : (double)w->height - BOTTOM - (double)(n->depth + 1) * FRAME_H;
  unsigned char rgb[3];
  node_color(t, w->o, n, w->max_delta, rgb);
  pl_buf_printf(b, "<g data-f=\"%u\" data-s=\"%llu\" data-v=\"%llu\" data-d=\"%u\">", n->fn,
                (unsigned long long)start, (unsigned long long)n->total[PL__FLAME_MAIN], n->depth);
  put_tooltip(w, n);
  pl_buf_printf(b,
                "<rect x=\"%.2f\" y=\"%.0f\" width=\"%.2f\" height=\"%d\" rx=\"2\" ry=\"2\" "
                "fill=\"rgb(%u,%u,%u)\"/>",
                x, y, width, FRAME_H - 1, rgb[0], rgb[1], rgb[2]);
  /* dark fills (the diff's strong reds and blues) get white labels */
  int dark = 299 * rgb[0] + 587 * rgb[1] + 114 * rgb[2] < 110000;
  pl_buf_printf(b, "<text x=\"%.2f\" y=\"%.1f\"%s>", x + 3, y + 11.5,
                dark ? " class=\"pl-w\"" : "");
  double fit = floor((width - 6) / CHAR_W);
  if (fit >= 3) put_xml(b, t->fns[n->fn].name, (size_t)fit);
  pl_buf_puts(b, "</text></g>\n");
}

/* Preorder, children left to right, each placed after its older siblings. */
static int put_frames(writer *w, pl__flame_svg_stats *st) {
  const pl__flame_tree *t = w->t;
  typedef struct item {
    uint32_t node;
    uint64_t start;
  } item;
  /* each node is pushed once at most: the pending siblings along a path
   * never outnumber the nodes */
  item *stack = malloc((t->nnodes + 1) * sizeof(*stack));
  if (!stack) return -ENOMEM;
  size_t top = 0;
  stack[top++] = (item){0, 0};
  while (top) {
    item it = stack[--top];
    const pl__flame_node *n = &t->nodes[it.node];
    put_frame(w, it.node, it.start);
    st->frames++;
    if (n->depth > st->depth) st->depth = n->depth;
    pl__sink_maybe_flush(w->out);
    /* push the drawn children right to left, so the leftmost comes next; a
     * child's start is its parent's plus its older siblings' totals */
    uint64_t start = it.start;
    size_t first = top;
    for (uint32_t c = n->first_child; c != NONE; c = t->nodes[c].next_sibling) {
      const pl__flame_node *cn = &t->nodes[c];
      if (drawn(w, cn)) stack[top++] = (item){c, start};
      start += cn->total[PL__FLAME_MAIN];
    }
    for (size_t i = first, j = top; i + 1 < j; i++, j--) { /* reverse the pushed run */
      item tmp = stack[i];
      stack[i] = stack[j - 1];
      stack[j - 1] = tmp;
    }
  }
  free(stack);
  return 0;
}

/* ---- the document ------------------------------------------------------- */

static const char style[] =
    "<style type=\"text/css\"><![CDATA[\n"
    "text { font-family: monospace; font-size: 12px; fill: #000; }\n"
    "#pl-title { font-size: 17px; text-anchor: middle; }\n"
    "#pl-subtitle { text-anchor: middle; fill: #555; }\n"
    "#pl-matched { text-anchor: end; }\n"
    "#pl-frames > g { cursor: pointer; }\n"
    "#pl-frames text { pointer-events: none; }\n"
    "#pl-frames text.pl-w { fill: #fff; }\n"
    "#pl-frames > g:hover > rect { stroke: #000; stroke-width: 0.7; }\n"
    "#pl-frames > g.pl-parent { opacity: 0.55; }\n"
    ".pl-btn { cursor: pointer; }\n"
    ".pl-btn rect { fill: #eee; stroke: #999; }\n"
    ".pl-btn:hover rect, #pl-search.pl-active rect { fill: #fff; stroke: #333; }\n"
    "]]></style>\n";

int pl__flame_write_svg(const pl__flame_tree *t, const pl__flame_svg_opts *o, pl__sink *out,
                        pl__flame_svg_stats *stats) {
  pl__flame_svg_stats st;
  memset(&st, 0, sizeof(st));
  unsigned width = o->width ? o->width : DEFAULT_WIDTH;
  if (!t->finished || !t->nnodes || width < MIN_WIDTH || width > MAX_WIDTH || !(o->minwidth >= 0) ||
      o->minwidth > width)
    return -EINVAL;
  writer w = {.t = t, .o = o, .out = out};
  w.full = width - 2 * XPAD;
  uint64_t total = t->nodes[0].total[PL__FLAME_MAIN];
  w.scale = total ? w.full / (double)total : 0;
  /* what is drawn: how deep, how many left out, the largest change */
  size_t nonzero = 0, ndrawn = 0;
  for (size_t i = 1; i < t->nnodes; i++) {
    const pl__flame_node *n = &t->nodes[i];
    if (n->total[PL__FLAME_MAIN]) nonzero++;
    if (!drawn(&w, n)) continue;
    ndrawn++;
    if (n->depth > st.depth) st.depth = n->depth;
    if (o->palette == PL__FLAME_DIFF) {
      diff_info d = node_diff(t, n, o->noise);
      if (!within_noise(d) && fabs(d.pb - d.pa) > w.max_delta) w.max_delta = fabs(d.pb - d.pa);
    }
  }
  w.height = TOP + (st.depth + 1) * FRAME_H + BOTTOM;
  const char *title = o->title ? o->title : o->icicle ? "Icicle Graph" : "Flame Graph";

  pl_buf *b = &out->buf;
  pl_buf_puts(b, "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n");
  pl_buf_printf(b,
                "<svg version=\"1.1\" xmlns=\"http://www.w3.org/2000/svg\" id=\"pl-flame\" "
                "width=\"%u\" height=\"%u\" viewBox=\"0 0 %u %u\" data-width=\"%u\" "
                "data-xpad=\"%.0f\" data-cw=\"%.2f\" data-minwidth=\"%g\" data-kind=\"%s\">\n",
                width, w.height, width, w.height, width, XPAD, CHAR_W, o->minwidth,
                o->palette == PL__FLAME_DIFF ? "diff"
                : t->unit == PL__FLAME_BYTES ? "memory"
                                             : "cpu");
  pl_buf_puts(b, "<title>");
  put_xml(b, title, SIZE_MAX);
  pl_buf_puts(b, "</title>\n");
  pl_buf_puts(b, style);
  pl_buf_printf(b, "<rect x=\"0\" y=\"0\" width=\"%u\" height=\"%u\" fill=\"#fafafa\"/>\n", width,
                w.height);
  /* the title between the buttons, the subtitle across: cut to fit */
  double title_room = width - 2 * (SEARCH_W + XPAD + 8);
  size_t title_max = title_room > 10 * TITLE_CHAR_W ? (size_t)(title_room / TITLE_CHAR_W) : 10;
  pl_buf_printf(b, "<text id=\"pl-title\" x=\"%.1f\" y=\"24\">", width / 2.0);
  put_xml(b, title, title_max);
  pl_buf_puts(b, "</text>\n");
  pl_buf sub;
  pl_buf_init(&sub);
  if (o->subtitle) pl_buf_puts(&sub, o->subtitle);
  if (nonzero > ndrawn)
    pl_buf_printf(&sub, "%s%zu frame%s narrower than %g px not drawn", o->subtitle ? "; " : "",
                  nonzero - ndrawn, nonzero - ndrawn == 1 ? "" : "s", o->minwidth);
  if (pl_buf_failed(&sub)) {
    pl_buf_free(&sub);
    return -ENOMEM;
  }
  pl_buf_printf(b, "<text id=\"pl-subtitle\" x=\"%.1f\" y=\"44\">", width / 2.0);
  put_xml(b, sub.data, (size_t)((width - 2 * XPAD) / CHAR_W));
  pl_buf_puts(b, "</text>\n");
  pl_buf_free(&sub);
  pl_buf_printf(b,
                "<g id=\"pl-reset\" class=\"pl-btn\" display=\"none\"><rect x=\"%.0f\" y=\"10\" "
                "width=\"84\" height=\"19\" rx=\"3\" ry=\"3\"/><text x=\"%.0f\" y=\"24\">Reset "
                "zoom</text></g>\n",
                XPAD, XPAD + 6);
  pl_buf_printf(b,
                "<g id=\"pl-search\" class=\"pl-btn\"><rect x=\"%.1f\" y=\"10\" width=\"%.0f\" "
                "height=\"19\" rx=\"3\" ry=\"3\"/><text id=\"pl-search-text\" x=\"%.1f\" "
                "y=\"24\">Search</text></g>\n",
                width - XPAD - SEARCH_W, SEARCH_W, width - XPAD - SEARCH_W + 6);
  pl_buf_printf(b, "<text id=\"pl-details\" x=\"%.0f\" y=\"%u\"> </text>\n", XPAD, w.height - 10);
  pl_buf_printf(b, "<text id=\"pl-matched\" x=\"%.0f\" y=\"%u\"></text>\n", width - XPAD,
                w.height - 10);
  pl_buf_puts(b, "<g id=\"pl-frames\">\n");
  int rc = put_frames(&w, &st);
  if (rc) return rc;
  pl_buf_puts(b, "</g>\n");

  /* the names the script needs (search, labels after a zoom); 0 for none drawn */
  unsigned char *used = calloc(t->nfns ? t->nfns : 1, 1);
  if (!used) return -ENOMEM;
  for (size_t i = 0; i < t->nnodes; i++)
    if (drawn(&w, &t->nodes[i])) used[t->nodes[i].fn] = 1;
  pl_buf_puts(b, "<script type=\"text/ecmascript\"><![CDATA[\nvar plFlameNames = [");
  for (size_t i = 0; i < t->nfns; i++) {
    if (i) pl_buf_putc(b, ',');
    if (used[i])
      put_js_string(b, t->fns[i].name);
    else
      pl_buf_putc(b, '0');
    if (i % 64 == 63) {
      pl_buf_putc(b, '\n');
      pl__sink_maybe_flush(out);
    }
  }
  free(used);
  pl_buf_puts(b, "];\n");
  pl_buf_puts(b, pl__flame_script);
  pl_buf_puts(b, "]]></script>\n</svg>\n");
  pl__sink_maybe_flush(out);

  st.omitted = nonzero - ndrawn;
  st.height = w.height;
  if (stats) *stats = st;
  if (pl_buf_failed(b)) return -ENOMEM;
  return out->error;
}
