/* The lab's security gate and the shape of its answers, shared by every
 * endpoint file of src/lab/. Loop thread only. */
#ifndef PL_LAB_ANSWER_H
#define PL_LAB_ANSWER_H

#include "lab/lab_internal.h"

/* Token check with per-address failure limiting. Answers the request (401,
 * 429) and returns -EACCES when it may not go on; 0 otherwise. */
int pl__lab_guard(pl_lab *lab, pl_request *r);

/* A JSON answer object opened with the task; the caller closes it. */
void pl__lab_answer_open(pl_lab *lab, pl_buf *b, pl_json *j);
/* An artifact's fields: file, path, bytes, sha256, format. */
void pl__lab_answer_artifact(pl_json *j, const pl__artifact *a, const char *format);
/* A failed artifact write: 507 no_space for a full disk, else 500 `code`
 * with "<what> <step> failed: <reason>; nothing was kept". */
void pl__lab_answer_write_failed(pl_lab *lab, pl_request *r, int rc, const char *code,
                                 const char *what, const char *step);

#endif
