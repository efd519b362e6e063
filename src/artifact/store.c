/* The artifact store (see store.h). */
#include "artifact/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/util.h"

static const char *const kinds[] = {"cpu", "heapdump", "heap"};
static const char *const exts[] = {"cpuprofile", "pb.gz", "folded", "heapsnapshot", "heapprofile"};

static int is_digits(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] < '0' || s[i] > '9') return 0;
  return 1;
}

int pl__artifact_name_valid(const char *name) {
  size_t len = strnlen(name, 256);
  if (len == 0 || len >= 256) return 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '_' || c == '.'))
      return 0;
  }
  const char *p = name;
  size_t k;
  for (k = 0; k < PL__ARRAY_SIZE(kinds); k++) {
    size_t kl = strlen(kinds[k]);
    if (strncmp(p, kinds[k], kl) == 0 && p[kl] == '-') {
      p += kl + 1;
      break;
    }
  }
  if (k == PL__ARRAY_SIZE(kinds)) return 0;
  /* YYYYMMDDTHHMMSS.mmmZ- */
  if (strlen(p) < 21 || !is_digits(p, 8) || p[8] != 'T' || !is_digits(p + 9, 6) || p[15] != '.' ||
      !is_digits(p + 16, 3) || p[19] != 'Z' || p[20] != '-')
    return 0;
  p += 21;
  const char *ext = NULL;
  for (size_t e = 0; e < PL__ARRAY_SIZE(exts); e++) {
    size_t el = strlen(exts[e]), pl = strlen(p);
    if (pl > el + 1 && p[pl - el - 1] == '.' && strcmp(p + pl - el, exts[e]) == 0) {
      ext = p + pl - el - 1;
      break;
    }
  }
  if (!ext || ext == p) return 0;
  /* the task part: no dots (so ".." can never appear), at least one char */
  for (const char *q = p; q < ext; q++)
    if (*q == '.') return 0;
  return 1;
}

const char *pl__artifact_kind(const char *name) {
  if (strncmp(name, "cpu-", 4) == 0) return "cpu";
  if (strncmp(name, "heap", 4) == 0) return "heap";
  return NULL;
}

static int mkdir_p(const char *dir) {
  char tmp[4096];
  snprintf(tmp, sizeof(tmp), "%s", dir);
  for (char *p = tmp + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST) return -errno;
    *p = '/';
  }
  if (mkdir(tmp, 0700) != 0 && errno != EEXIST) return -errno;
  return 0;
}

static int ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

int pl__artifact_store_init(pl__artifact_store *s, const char *dir, const char *task,
                            unsigned max_count, uint64_t max_bytes) {
  memset(s, 0, sizeof(*s));
  if (!dir || !*dir || strlen(dir) >= sizeof(s->dir)) return -ENAMETOOLONG;
  snprintf(s->dir, sizeof(s->dir), "%s", dir);
  snprintf(s->task, sizeof(s->task), "%s", task && *task ? task : "unknown");
  s->max_count = max_count ? max_count : 20;
  s->max_bytes = max_bytes ? max_bytes : (1ull << 30);
  int rc = mkdir_p(s->dir);
  if (rc) return rc;
  if (access(s->dir, W_OK | X_OK) != 0) return -errno;
  struct stat lst, st;
  if (lstat(s->dir, &lst) != 0 || stat(s->dir, &st) != 0) return -errno;
  if (!S_ISDIR(st.st_mode)) return -ENOTDIR;
  s->dir_was_link = S_ISLNK(lst.st_mode);
  s->dir_dev = st.st_dev;
  s->dir_ino = st.st_ino;
  pthread_mutex_init(&s->lock, NULL);
  /* A killed writer leaves "<valid name>.partial": remove those only. */
  int dfd = pl__artifact_dir_open(s);
  DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
  if (!d && dfd >= 0) close(dfd);
  if (d) {
    struct dirent *e;
    while ((e = readdir(d))) {
      char base[256];
      size_t n = strlen(e->d_name);
      if (!ends_with(e->d_name, ".partial") || n - 8 >= sizeof(base)) continue;
      memcpy(base, e->d_name, n - 8);
      base[n - 8] = '\0';
      if (pl__artifact_name_valid(base)) unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
  }
  return 0;
}

void pl__artifact_store_close(pl__artifact_store *s) { pthread_mutex_destroy(&s->lock); }

int pl__artifact_dir_open(pl__artifact_store *s) {
  /* O_NOFOLLOW: a directory the path named at start that is now a
   * symbolic link (to anywhere) is refused, not followed. */
  int fd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | (s->dir_was_link ? 0 : O_NOFOLLOW));
  if (fd < 0) return errno == ENOTDIR && !s->dir_was_link ? -ELOOP : -errno;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = -errno;
    close(fd);
    return e;
  }
  if (st.st_dev != s->dir_dev || st.st_ino != s->dir_ino) {
    if (s->dir_was_link) { /* the link now leads to another directory */
      close(fd);
      return -ESTALE;
    }
    /* a real directory recreated under the path (not a link: O_NOFOLLOW) */
    s->dir_dev = st.st_dev;
    s->dir_ino = st.st_ino;
  }
  return fd;
}

typedef struct hashing_fd {
  int fd;
  EVP_MD_CTX *md;
} hashing_fd;

static int hashing_backend(void *ctx, const void *p, size_t n) {
  hashing_fd *h = ctx;
  if (EVP_DigestUpdate(h->md, p, n) != 1) return -EIO;
  return pl__write_all(h->fd, p, n);
}

static int by_created_desc(const void *a, const void *b) {
  const pl__artifact *x = a, *y = b;
  if (x->created_wall_ns != y->created_wall_ns)
    return x->created_wall_ns < y->created_wall_ns ? 1 : -1;
  return strcmp(y->name, x->name);
}

static int list_locked(pl__artifact_store *s, pl__artifact *out, size_t max) {
  int dfd = pl__artifact_dir_open(s);
  if (dfd < 0) return dfd;
  DIR *d = fdopendir(dfd);
  if (!d) {
    int e = -errno;
    close(dfd);
    return e;
  }
  size_t n = 0;
  struct dirent *e;
  while ((e = readdir(d)) && n < max) {
    if (!pl__artifact_name_valid(e->d_name)) continue;
    struct stat st;
    if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
      continue;
    pl__artifact *a = &out[n++];
    memset(a, 0, sizeof(*a));
    snprintf(a->name, sizeof(a->name), "%s", e->d_name);
    snprintf(a->path, sizeof(a->path), "%s/%s", s->dir, e->d_name);
    a->bytes = (uint64_t)st.st_size;
    a->created_wall_ns = (uint64_t)st.st_mtim.tv_sec * 1000000000u + (uint64_t)st.st_mtim.tv_nsec;
  }
  closedir(d);
  qsort(out, n, sizeof(*out), by_created_desc);
  return (int)n;
}

int pl__artifact_list(pl__artifact_store *s, pl__artifact *out, size_t max) {
  pthread_mutex_lock(&s->lock);
  int rc = list_locked(s, out, max);
  pthread_mutex_unlock(&s->lock);
  return rc;
}

/* Remove the oldest artifacts beyond the bounds, never `keep`. */
static void prune_locked(pl__artifact_store *s, int dfd, const char *keep) {
  enum { MAX_SCAN = 4096 };
  pl__artifact *all = malloc(MAX_SCAN * sizeof(*all));
  if (!all) return;
  int n = list_locked(s, all, MAX_SCAN);
  uint64_t bytes = 0;
  unsigned count = 0;
  for (int i = 0; i < n; i++) {
    int is_keep = strcmp(all[i].name, keep) == 0;
    if (!is_keep && (count + 1 > s->max_count || bytes + all[i].bytes > s->max_bytes)) {
      if (unlinkat(dfd, all[i].name, 0) == 0) continue;
    }
    count++;
    bytes += all[i].bytes;
  }
  free(all);
}

static int write_unguarded(pl__artifact_store *s, const char *kind, const char *ext,
                           uint64_t wall_ns, pl__artifact_fill_fn fill, void *arg,
                           pl__artifact *out);

/* A write past the process's file size limit (RLIMIT_FSIZE) raises SIGXFSZ,
 * whose default action kills the process, leaving the .partial behind. The
 * signal is blocked in this thread for the write, so write() fails with
 * EFBIG instead, and a SIGXFSZ the write left pending is consumed: the
 * process's dispositions are not touched (the agent runs inside someone
 * else's program). */
int pl__artifact_write(pl__artifact_store *s, const char *kind, const char *ext, uint64_t wall_ns,
                       pl__artifact_fill_fn fill, void *arg, pl__artifact *out) {
  sigset_t xfsz, old;
  sigemptyset(&xfsz);
  sigaddset(&xfsz, SIGXFSZ);
  int was_blocked = 0;
  if (pthread_sigmask(SIG_BLOCK, &xfsz, &old) == 0) was_blocked = sigismember(&old, SIGXFSZ);
  int rc = write_unguarded(s, kind, ext, wall_ns, fill, arg, out);
  if (!was_blocked) {
    sigset_t pending;
    const struct timespec zero = {0, 0};
    if (sigpending(&pending) == 0 && sigismember(&pending, SIGXFSZ))
      sigtimedwait(&xfsz, NULL, &zero);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
  }
  return rc;
}

static int write_unguarded(pl__artifact_store *s, const char *kind, const char *ext,
                           uint64_t wall_ns, pl__artifact_fill_fn fill, void *arg,
                           pl__artifact *out) {
  char stamp[32];
  pl__format_compact_utc(wall_ns, stamp, sizeof(stamp)); /* YYYYMMDDTHHMMSSZ */
  char when[40];
  snprintf(when, sizeof(when), "%.15s.%03uZ", stamp, (unsigned)((wall_ns / 1000000u) % 1000u));
  memset(out, 0, sizeof(*out));
  char partial[300];
  int fd = -1, rc = 0;
  pthread_mutex_lock(&s->lock);
  int dfd = pl__artifact_dir_open(s);
  if (dfd < 0) {
    pthread_mutex_unlock(&s->lock);
    return dfd;
  }
  /* pick a free name: a suffix when two artifacts share a millisecond */
  for (unsigned i = 1; i < 100; i++) {
    if (i == 1)
      snprintf(out->name, sizeof(out->name), "%s-%s-%s.%s", kind, when, s->task, ext);
    else
      snprintf(out->name, sizeof(out->name), "%s-%s-%s-%u.%s", kind, when, s->task, i, ext);
    snprintf(out->path, sizeof(out->path), "%s/%s", s->dir, out->name);
    snprintf(partial, sizeof(partial), "%s.partial", out->name);
    if (faccessat(dfd, out->name, F_OK, AT_SYMLINK_NOFOLLOW) == 0) continue;
    fd = openat(dfd, partial, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0 || errno != EEXIST) break;
  }
  int open_errno = errno;
  pthread_mutex_unlock(&s->lock);
  if (fd < 0) {
    close(dfd);
    return open_errno ? -open_errno : -EEXIST;
  }
  if (!pl__artifact_name_valid(out->name)) {
    rc = -EINVAL;
    goto fail;
  }

  hashing_fd h = {.fd = fd, .md = EVP_MD_CTX_new()};
  if (!h.md || EVP_DigestInit_ex(h.md, EVP_sha256(), NULL) != 1) {
    EVP_MD_CTX_free(h.md);
    rc = -ENOMEM;
    goto fail;
  }
  pl__sink sink;
  pl__sink_init_fd(&sink, &fd);
  sink.backend = hashing_backend;
  sink.ctx = &h;
  rc = fill(&sink, arg);
  int frc = pl__sink_finish(&sink);
  if (!rc) rc = frc;
  out->bytes = sink.total;
  pl__sink_free(&sink);
  unsigned char digest[32];
  unsigned dlen = 0;
  if (!rc && EVP_DigestFinal_ex(h.md, digest, &dlen) != 1) rc = -EIO;
  EVP_MD_CTX_free(h.md);
  if (rc) goto fail;
  pl__hex(digest, 32, out->sha256);
  if (fsync(fd) != 0) {
    rc = -errno;
    goto fail;
  }
  if (close(fd) != 0) {
    fd = -1;
    rc = -errno;
    goto fail;
  }
  fd = -1;
  pthread_mutex_lock(&s->lock);
  if (renameat(dfd, partial, dfd, out->name) != 0) {
    rc = -errno;
    pthread_mutex_unlock(&s->lock);
    goto fail;
  }
  fsync(dfd); /* make the rename durable */
  out->created_wall_ns = pl__wall_ns();
  prune_locked(s, dfd, out->name);
  pthread_mutex_unlock(&s->lock);
  close(dfd);
  return 0;
fail:
  if (fd >= 0) close(fd);
  unlinkat(dfd, partial, 0);
  close(dfd);
  out->name[0] = '\0';
  out->path[0] = '\0';
  return rc;
}

int pl__artifact_open(pl__artifact_store *s, const char *name, struct stat *st) {
  if (!pl__artifact_name_valid(name)) return -EINVAL;
  pthread_mutex_lock(&s->lock);
  int dfd = pl__artifact_dir_open(s);
  pthread_mutex_unlock(&s->lock);
  if (dfd < 0) return dfd;
  int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  int rc = fd < 0 ? -errno : 0;
  close(dfd);
  if (rc) return rc == -ELOOP ? -ENOENT : rc; /* a symlink is not an artifact */
  if (fstat(fd, st) != 0) {
    rc = -errno;
  } else if (!S_ISREG(st->st_mode) || st->st_nlink != 1) {
    rc = -ENOENT; /* FIFOs, devices, directories, hard links planted in the directory */
  } else {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) rc = -errno;
  }
  if (rc) {
    close(fd);
    return rc;
  }
  return fd;
}

int pl__artifact_sha256_fd(int fd, char hex[65], uint64_t *bytes) {
  enum { CHUNK = 1 << 17 };
  unsigned char *buf = malloc(CHUNK);
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  int rc = 0;
  uint64_t total = 0;
  if (!buf || !md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
    rc = -ENOMEM;
    goto out;
  }
  for (;;) {
    ssize_t n = read(fd, buf, CHUNK);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      rc = -errno;
      goto out;
    }
    if (n == 0) break;
    if (EVP_DigestUpdate(md, buf, (size_t)n) != 1) {
      rc = -EIO;
      goto out;
    }
    total += (uint64_t)n;
  }
  unsigned char digest[32];
  unsigned dlen = 0;
  if (EVP_DigestFinal_ex(md, digest, &dlen) != 1 || dlen != 32) {
    rc = -EIO;
    goto out;
  }
  pl__hex(digest, 32, hex);
  if (bytes) *bytes = total;
out:
  EVP_MD_CTX_free(md);
  free(buf);
  return rc;
}
