/* A progress line on stderr for the CLI's long work (reading a large file,
 * a lab recording a profile, a download), shown only on a terminal.
 *
 * The line is "proflab top: reading big.heapsnapshot  42% 120.0/300.0 MiB,
 * 85 MiB/s", redrawn in place ("\r", the text, erase to the end of the
 * line) at most 10 times a second, cut to the terminal's width, and erased
 * by cli_progress_end, so what the command prints afterwards is exactly
 * what it prints without a terminal. Nothing at all is written unless
 * stderr is a terminal, PROFLAB_PROGRESS is not "0" and TERM is not
 * "dumb". One progress line at a time per process; single-threaded. */
#ifndef PROFLAB_CLI_PROGRESS_H
#define PROFLAB_CLI_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

/* One progress line. A zeroed cli_progress is inactive: every call other
 * than cli_progress_begin does nothing on it, so callers that begin it only
 * for long work may call the rest unconditionally. Fields are private. */
typedef struct cli_progress {
  int active;          /* begun and not ended (even when not shown) */
  int enabled;         /* stderr is a terminal and progress is not turned off */
  int shown;           /* text is on the terminal's current line */
  int detail_shown;    /* a drawn line carried numbers (the first ones are drawn at once) */
  unsigned width;      /* terminal columns, at least 20 */
  uint64_t start_ns;   /* cli_progress_begin, CLOCK_MONOTONIC */
  uint64_t drawn_ns;   /* last redraw */
  uint64_t last_count; /* last cli_progress_count done, to redraw a change at once */
  char cmd[32];        /* "proflab top" */
  char what[160];      /* the label: "reading big.heapsnapshot" */
  char detail[96];     /* after the label: "42% 120.0/300.0 MiB, 85 MiB/s" */
} cli_progress;

/* Starts a progress line for cmd ("proflab top") doing what ("reading
 * big.heapsnapshot"); both are copied (cut to fit). Decides once whether
 * anything is shown (see above) and, if so, draws the label at once. A
 * progress already begun is ended first. */
void cli_progress_begin(cli_progress *p, const char *cmd, const char *what);

/* Bytes: "42% 120.0/300.0 MiB, 85 MiB/s" (total 0: unknown, no
 * percentage); the rate is the average since cli_progress_begin. Redrawn
 * at most every 100 ms, so callers may call it as often as they like
 * (each call costs a clock read). */
void cli_progress_bytes(cli_progress *p, uint64_t done, uint64_t total);

/* Counted steps: "3/6 snapshots" (unit may be NULL: "3/6"; total 0:
 * "3 snapshots"). A new done is drawn at once (steps are rare). */
void cli_progress_count(cli_progress *p, uint64_t done, uint64_t total, const char *unit);

/* Time: "[#####...............] 12/60 s" with a bar when total > 0 (elapsed
 * beyond total shows a full bar), "12 s" when total <= 0. At most every
 * 100 ms. */
void cli_progress_seconds(cli_progress *p, double elapsed, double total);

/* Changes the label ("computing retained sizes") and clears the detail;
 * drawn at once, since a long call without updates usually follows. */
void cli_progress_phase(cli_progress *p, const char *what);

/* Seconds since cli_progress_begin (0 on an inactive progress). */
double cli_progress_elapsed(const cli_progress *p);

/* Erases the line if it is shown, so a message can be written to stderr
 * or stdout; the next update draws it again. */
void cli_progress_clear(cli_progress *p);

/* Ends the progress: erases its line (the cursor is left at the start of
 * an empty line, as before begin) and makes p inactive. Safe to call
 * twice and on a zeroed cli_progress. */
void cli_progress_end(cli_progress *p);

/* Erases the line of the progress currently begun in this process, if
 * any: for code that prints a note to stderr (a retry, a resume) without
 * holding the cli_progress. */
void cli_progress_clear_current(void);

#endif
