/* proflab: a growable vector of owned strings (argv building for the CLI). */
#ifndef PROFLAB_CLI_STRV_H
#define PROFLAB_CLI_STRV_H

#include <stddef.h>

/* A vector of n malloc'd strings. Zero-initialize ({0}) for an empty
 * vector. After the first successful push, v[n] is NULL, so v can be
 * passed as an argv (execvp). cap is the allocated length of v. */
typedef struct cli_strv {
  char **v;
  size_t n, cap;
} cli_strv;

/* Appends a copy of str (which must not be NULL) and keeps v
 * NULL-terminated. Returns 0, or -1 when out of memory; then s still holds
 * its previous strings and must still be freed with cli_strv_free. */
int cli_strv_push(cli_strv *s, const char *str);

/* Frees every string and the array, and leaves s empty ({0}) and ready for
 * reuse. Safe on an empty vector. */
void cli_strv_free(cli_strv *s);

#endif
