/* The CLI's progress line on a terminal's stderr (see progress.h). */
#include "progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "common/util.h"

#define REDRAW_NS 100000000ull /* at most 10 redraws a second */
#define BAR_CELLS 20

static cli_progress *current; /* the progress begun, for cli_progress_clear_current */

/* Copies s into out (n bytes), control bytes (a file name's line break or
 * escape) replaced so the terminal only ever sees text. */
static void copy_clean(char *out, size_t n, const char *s) {
  size_t i = 0;
  for (; s && s[i] && i + 1 < n; i++) {
    unsigned char c = (unsigned char)s[i];
    out[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
  }
  out[i] = '\0';
}

static int wanted(void) {
  const char *v = getenv("PROFLAB_PROGRESS");
  if (v && strcmp(v, "0") == 0) return 0;
  const char *term = getenv("TERM");
  if (term && strcmp(term, "dumb") == 0) return 0;
  return isatty(STDERR_FILENO) == 1;
}

static unsigned term_width(void) {
  struct winsize ws;
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) != 0 || ws.ws_col == 0) return 80;
  return ws.ws_col < 20 ? 20 : ws.ws_col;
}

/* Writes to the terminal; on failure progress stops for good (it is only a
 * courtesy: the command's own output decides the exit status). */
static void put(cli_progress *p, const char *s, size_t n) {
  if (pl__write_all(STDERR_FILENO, s, n) != 0) {
    p->enabled = 0;
    p->shown = 0;
  }
}

/* Appends s to line (at *len, cap bytes) up to *cols columns left, never
 * cutting a UTF-8 sequence. */
static void append_cols(char *line, size_t cap, size_t *len, unsigned *cols, const char *s) {
  for (size_t i = 0; s[i]; i++) {
    unsigned char c = (unsigned char)s[i];
    int starts = (c & 0xc0) != 0x80;
    if (starts) {
      size_t seq = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
      if (*cols == 0 || *len + seq >= cap) return;
      (*cols)--;
    }
    if (*len + 1 >= cap) return;
    line[(*len)++] = (char)c;
  }
}

/* Columns s takes (one per UTF-8 sequence). */
static unsigned cols_of(const char *s) {
  unsigned n = 0;
  for (; *s; s++) n += ((unsigned char)*s & 0xc0) != 0x80;
  return n;
}

/* "\r" CMD ": " WHAT "  " DETAIL, erase to the end of the line; within the
 * width, the label is cut first ("...") so the numbers stay visible. */
static void draw(cli_progress *p, uint64_t now) {
  if (!p->active || !p->enabled) return;
  char line[512];
  const size_t cap = sizeof(line) - 4; /* room for the erase sequence */
  size_t len = 0;
  unsigned cols = p->width - 1; /* the last column would wrap on some terminals */
  unsigned fixed = cols_of(p->cmd) + 2 + (p->detail[0] ? 2 + cols_of(p->detail) : 0);
  unsigned what_cols = cols_of(p->what);
  line[len++] = '\r';
  append_cols(line, cap, &len, &cols, p->cmd);
  append_cols(line, cap, &len, &cols, ": ");
  if (fixed + what_cols > p->width - 1 && fixed + 4 <= p->width - 1) {
    unsigned keep = p->width - 1 - fixed - 3;
    append_cols(line, cap, &len, &keep, p->what);
    cols -= p->width - 1 - fixed - 3;
    append_cols(line, cap, &len, &cols, "...");
  } else {
    append_cols(line, cap, &len, &cols, p->what);
  }
  if (p->detail[0]) {
    append_cols(line, cap, &len, &cols, "  ");
    append_cols(line, cap, &len, &cols, p->detail);
  }
  memcpy(line + len, "\033[K", 3); /* erase what a longer text left */
  len += 3;
  put(p, line, len);
  p->shown = p->enabled;
  p->detail_shown |= p->detail[0] != '\0';
  p->drawn_ns = now;
}

/* Draws unless the last redraw was less than REDRAW_NS ago. */
static void maybe_draw(cli_progress *p) {
  uint64_t now = pl__now_ns();
  if (p->shown && p->detail_shown && now - p->drawn_ns < REDRAW_NS) return;
  draw(p, now);
}

static int due(const cli_progress *p) {
  return p->active && p->enabled &&
         (!p->shown || !p->detail_shown || pl__now_ns() - p->drawn_ns >= REDRAW_NS);
}

void cli_progress_begin(cli_progress *p, const char *cmd, const char *what) {
  if (p->active) cli_progress_end(p);
  memset(p, 0, sizeof(*p));
  p->active = 1;
  p->enabled = wanted();
  p->width = p->enabled ? term_width() : 80;
  p->start_ns = pl__now_ns();
  copy_clean(p->cmd, sizeof(p->cmd), cmd);
  copy_clean(p->what, sizeof(p->what), what);
  current = p;
  draw(p, p->start_ns);
}

/* n bytes in unit: "120.0 MiB"-style number and the unit's name. */
static double scaled(uint64_t scale_by, double n, const char **unit) {
  static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  size_t u = 0;
  double s = (double)scale_by;
  while (s >= 1024 && u + 1 < PL__ARRAY_SIZE(units)) {
    s /= 1024;
    n /= 1024;
    u++;
  }
  *unit = units[u];
  return n;
}

void cli_progress_bytes(cli_progress *p, uint64_t done, uint64_t total) {
  if (!due(p)) return;
  const char *unit, *runit;
  char rate[32] = "";
  double el = cli_progress_elapsed(p);
  if (el >= 0.2) {
    double r = (double)done / el;
    double rs = scaled((uint64_t)r, r, &runit);
    snprintf(rate, sizeof(rate), ", %.*f %s/s", rs < 10 ? 1 : 0, rs, runit);
  }
  if (total && done <= total) {
    double d = scaled(total, (double)done, &unit), t = scaled(total, (double)total, &unit);
    snprintf(p->detail, sizeof(p->detail), "%d%% %.1f/%.1f %s%s",
             (int)((double)done * 100.0 / (double)total), d, t, unit, rate);
  } else {
    double d = scaled(done, (double)done, &unit);
    snprintf(p->detail, sizeof(p->detail), "%.1f %s%s", d, unit, rate);
  }
  maybe_draw(p);
}

void cli_progress_count(cli_progress *p, uint64_t done, uint64_t total, const char *unit) {
  if (!p->active || !p->enabled) return;
  int changed = done != p->last_count || !p->shown;
  p->last_count = done;
  const char *sp = unit && *unit ? " " : "", *u = unit ? unit : "";
  if (total)
    snprintf(p->detail, sizeof(p->detail), "%llu/%llu%s%.40s", (unsigned long long)done,
             (unsigned long long)total, sp, u);
  else
    snprintf(p->detail, sizeof(p->detail), "%llu%s%.40s", (unsigned long long)done, sp, u);
  if (changed)
    draw(p, pl__now_ns());
  else
    maybe_draw(p);
}

void cli_progress_seconds(cli_progress *p, double elapsed, double total) {
  if (!due(p)) return;
  if (elapsed < 0) elapsed = 0;
  if (total > 0) {
    double frac = elapsed >= total ? 1.0 : elapsed / total;
    char bar[BAR_CELLS + 3];
    int fill = (int)(frac * BAR_CELLS);
    bar[0] = '[';
    for (int i = 0; i < BAR_CELLS; i++) bar[1 + i] = i < fill ? '#' : '.';
    bar[BAR_CELLS + 1] = ']';
    bar[BAR_CELLS + 2] = '\0';
    snprintf(p->detail, sizeof(p->detail), "%s %.0f/%.0f s", bar,
             elapsed >= total ? total : (double)(uint64_t)elapsed, total);
  } else {
    snprintf(p->detail, sizeof(p->detail), "%.0f s", (double)(uint64_t)elapsed);
  }
  maybe_draw(p);
}

void cli_progress_phase(cli_progress *p, const char *what) {
  if (!p->active) return;
  copy_clean(p->what, sizeof(p->what), what);
  p->detail[0] = '\0';
  draw(p, pl__now_ns());
}

double cli_progress_elapsed(const cli_progress *p) {
  if (!p->active) return 0;
  return (double)(pl__now_ns() - p->start_ns) / 1e9;
}

void cli_progress_clear(cli_progress *p) {
  if (!p->active || !p->shown) return;
  put(p, "\r\033[K", 4);
  p->shown = 0;
}

void cli_progress_end(cli_progress *p) {
  if (!p->active) return;
  cli_progress_clear(p);
  p->active = 0;
  p->enabled = 0;
  if (current == p) current = NULL;
}

void cli_progress_clear_current(void) {
  if (current) cli_progress_clear(current);
}
