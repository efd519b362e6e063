/* The artifact store: where profiles and snapshots are written.
 *
 * Files are written off the event loop to "<name>.partial" (O_EXCL, mode
 * 0600), fsynced, renamed to their final name and the directory fsynced, so
 * an interrupted write never leaves a file under a final name. A SHA-256 is
 * computed while writing. After each write the oldest artifacts beyond the
 * count and byte bounds are removed. Names follow one pattern,
 *   <kind>-<YYYYMMDDTHHMMSS.mmmZ>-<task>[-N].<ext>
 * and pl__artifact_name_valid() is the only gate for names that come from
 * outside (downloads).
 *
 * Thread rules: pl__artifact_write() runs on any thread (the thread pool);
 * the store's mutex guards the directory scan and pruning.
 */
#ifndef PL_ARTIFACT_STORE_H
#define PL_ARTIFACT_STORE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "common/sink.h"

typedef struct pl__artifact_store {
  char dir[4096];
  char task[80];
  unsigned max_count;
  uint64_t max_bytes;
  pthread_mutex_t lock;
  /* The directory's identity at start (and after a real directory was
   * recreated under the path): an operation refuses a directory that was
   * replaced by a symbolic link (-ELOOP) or, when the configured path was
   * itself a link, a different directory behind it (-ESTALE). */
  int dir_was_link;
  dev_t dir_dev;
  ino_t dir_ino;
} pl__artifact_store;

typedef struct pl__artifact {
  char name[256];
  char path[4096 + 256];
  uint64_t bytes;
  char sha256[65];
  uint64_t created_wall_ns;
} pl__artifact;

/* Content producer: writes the artifact into the sink; returns 0 or -errno. */
typedef int (*pl__artifact_fill_fn)(pl__sink *out, void *arg);

/* Set up a store on dir (created if missing, mode 0700). Removes stale
 * "*.partial" files a killed process left. 0 or -errno. */
int pl__artifact_store_init(pl__artifact_store *s, const char *dir, const char *task,
                            unsigned max_count, uint64_t max_bytes);
void pl__artifact_store_close(pl__artifact_store *s);

/* Write a new artifact "<kind>-<time>-<task>.<ext>" for time wall_ns.
 * On success fills *out. On failure nothing is left under any name;
 * -ENOSPC/-EDQUOT mean the disk is full. */
int pl__artifact_write(pl__artifact_store *s, const char *kind, const char *ext, uint64_t wall_ns,
                       pl__artifact_fill_fn fill, void *arg, pl__artifact *out);

/* Open the store's directory (O_DIRECTORY), checked against its identity
 * (see above): the fd (the caller closes it) or -errno. Any thread. */
int pl__artifact_dir_open(pl__artifact_store *s);

/* Is name an artifact name (no path, no tricks)? */
int pl__artifact_name_valid(const char *name);
/* "cpu", "heap" or NULL, from a valid name. */
const char *pl__artifact_kind(const char *name);

/* The artifacts in the directory, newest first (at most max). Returns the
 * count or -errno. sha256 is left empty (computing it reads the file). */
int pl__artifact_list(pl__artifact_store *s, pl__artifact *out, size_t max);

/* Open artifact `name` for reading, for downloads: the name must pass
 * pl__artifact_name_valid(); the file is opened relative to the directory
 * with O_NOFOLLOW and O_NONBLOCK (a planted FIFO cannot block) and must be
 * a regular file with one link. Fills *st. Returns the fd (the caller
 * closes it) or -EINVAL (bad name), -ENOENT (missing, a symlink, not a
 * regular file, or hard-linked), another -errno. Any thread. */
int pl__artifact_open(pl__artifact_store *s, const char *name, struct stat *st);

/* SHA-256 of everything read from fd (from its current offset) as 64 hex
 * characters plus NUL in hex; *bytes (may be NULL) gets the length read.
 * Reads the whole file: call it off the event loop. 0 or -errno. */
int pl__artifact_sha256_fd(int fd, char hex[65], uint64_t *bytes);

#endif
