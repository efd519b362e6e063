/* The streaming JSON tokenizer (src/format/json_reader.h) and the byte
 * source under it (read_source.h): tokens, string escapes and surrogates,
 * numbers, errors with their offsets, tokens across buffer refills, input
 * from a pipe and through gunzip, skipping, and every truncation of a
 * document ending in an error, never a crash. */
#include "test.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zlib.h>

#include "format/json_reader.h"
#include "format/read_source.h"

/* A reader over memory (one per test; freed by done()). */
typedef struct jr_fixture {
  pl__rsrc src;
  pl__jreader r;
  pl__read_err err;
} jr_fixture;

static void open_mem(jr_fixture *f, const void *data, size_t len) {
  memset(f, 0, sizeof(*f));
  pl__rsrc_init_mem(&f->src, data, len, &f->err);
  assert_int_equal(pl__jr_init(&f->r, &f->src, &f->err), 0);
}

static void done(jr_fixture *f) {
  pl__jr_free(&f->r);
  pl__rsrc_free(&f->src);
}

/* All tokens of text, or the error: "O{ K:a S:b N:1 ... }" style. */
static void tokens(const char *text, char *out, size_t n) {
  jr_fixture f;
  open_mem(&f, text, strlen(text));
  size_t used = 0;
  out[0] = '\0';
  for (;;) {
    int t = pl__jr_next(&f.r);
    char one[400];
    if (t < 0) {
      snprintf(one, sizeof(one), "ERR(%s)", f.err.msg);
    } else {
      switch (t) {
        case PL__JT_OBJ:
          snprintf(one, sizeof(one), "{");
          break;
        case PL__JT_OBJ_END:
          snprintf(one, sizeof(one), "}");
          break;
        case PL__JT_ARR:
          snprintf(one, sizeof(one), "[");
          break;
        case PL__JT_ARR_END:
          snprintf(one, sizeof(one), "]");
          break;
        case PL__JT_KEY:
          snprintf(one, sizeof(one), "K:%s", f.r.str.data);
          break;
        case PL__JT_STR:
          snprintf(one, sizeof(one), "S:%s", f.r.str.data);
          break;
        case PL__JT_NUM:
          if (f.r.num_int)
            snprintf(one, sizeof(one), "I:%lld", (long long)f.r.num_i);
          else
            snprintf(one, sizeof(one), "D:%.17g", f.r.num_d);
          break;
        case PL__JT_TRUE:
          snprintf(one, sizeof(one), "true");
          break;
        case PL__JT_FALSE:
          snprintf(one, sizeof(one), "false");
          break;
        case PL__JT_NULL:
          snprintf(one, sizeof(one), "null");
          break;
        default:
          snprintf(one, sizeof(one), "END");
      }
    }
    used += (size_t)snprintf(out + used, n - used, "%s%s", used ? " " : "", one);
    if (t <= 0 || used >= n) break;
  }
  done(&f);
}

static void check_tokens(const char *text, const char *want) {
  char got[4096];
  tokens(text, got, sizeof(got));
  if (strcmp(got, want) != 0) fail_msg("%s\n  got:  %s\n  want: %s", text, got, want);
}

static void test_tokens(void **state) {
  (void)state;
  check_tokens("{\"a\": [1, -2, 3.5, true, false, null, \"x\"], \"b\": {}}",
               "{ K:a [ I:1 I:-2 D:3.5 true false null S:x ] K:b { } } END");
  check_tokens(" \n\t[ ]\r\n", "[ ] END");
  check_tokens("\xef\xbb\xbf{}", "{ } END"); /* a UTF-8 BOM */
  check_tokens("\"top\"", "S:top END");
  check_tokens("0", "I:0 END");
  check_tokens("[-0, 0.5e3, 1E-2, 12e+1]", "[ I:0 D:500 D:0.01 D:120 ] END");
  check_tokens("[9223372036854775807, -9223372036854775808, 9223372036854775808]",
               "[ I:9223372036854775807 I:-9223372036854775808 D:9.2233720368547758e+18 ] END");
  check_tokens("[123456789012345678901234567890]", "[ D:1.2345678901234568e+29 ] END");
}

static void test_strings(void **state) {
  (void)state;
  check_tokens("[\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\te\"]", "[ S:a\"b\\c/d\b\f\n\r\te ] END");
  check_tokens("[\"\\u0041\\u00e9\\u20ac\"]", "[ S:A\xc3\xa9\xe2\x82\xac ] END");
  /* a surrogate pair: U+1F600 */
  check_tokens("[\"\\ud83d\\ude00\"]", "[ S:\xf0\x9f\x98\x80 ] END");
  /* lone surrogates become U+FFFD; what follows a lone high one is read on its own */
  check_tokens("[\"\\ud83dx\"]", "[ S:\xef\xbf\xbdx ] END");
  check_tokens("[\"\\ude00\"]", "[ S:\xef\xbf\xbd ] END");
  check_tokens("[\"\\ud83d\\u0041\"]",
               "[ S:\xef\xbf\xbd"
               "A ] END");
  /* raw UTF-8 passes through */
  check_tokens("[\"h\xc3\xa9llo\"]", "[ S:h\xc3\xa9llo ] END");
  /* \u0000 is kept in the length */
  jr_fixture f;
  open_mem(&f, "\"a\\u0000b\"", 10);
  assert_int_equal(pl__jr_next(&f.r), PL__JT_STR);
  assert_int_equal(f.r.str.len, 3);
  assert_memory_equal(f.r.str.data, "a\0b", 3);
  done(&f);
}

static void test_errors(void **state) {
  (void)state;
  static const struct {
    const char *text, *want;
  } cases[] = {
      {"", "ERR(offset 0: expected a value, found the end of the file (truncated?))"},
      /* a number the file ends in may have lost digits: not handed on */
      {"{\"a\":[1,2",
       "{ K:a [ I:1 ERR(offset 9: expected the rest of the number, then ',' or a closing "
       "bracket, found the end of the file (truncated?))"},
      {"{\"a\":[1,2 ",
       "{ K:a [ I:1 I:2 ERR(offset 10: expected ',' or ']', found the end of the "
       "file (truncated?))"},
      {"[1,]", "[ I:1 ERR(offset 3: expected a value, found ']')"},
      {"{\"a\" 1}", "{ ERR(offset 5: expected ':' after the key, found '1')"},
      {"{\"a\":1,}", "{ K:a I:1 ERR(offset 7: expected a key (a string), found '}')"},
      {"{1:2}", "{ ERR(offset 1: expected a key (a string) or '}', found '1')"},
      {"[01]", "[ I:0 ERR(offset 2: expected ',' or ']', found '1')"},
      {"[1.]", "[ ERR(offset 3: expected a digit after '.', found ']')"},
      {"[1e]", "[ ERR(offset 3: expected a digit in the exponent, found ']')"},
      {"[-]", "[ ERR(offset 2: expected a digit, found ']')"},
      {"[\"a\\x\"]",
       "[ ERR(offset 4: expected an escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t "
       "\\uXXXX), found 'x')"},
      {"[\"a\\u12g4\"]", "[ ERR(offset 7: expected four hex digits after \\u, found 'g')"},
      {"[\"a\nb\"]",
       "[ ERR(offset 3: expected a string character (control bytes must be "
       "escaped), found byte 0x0a)"},
      {"[\"abc",
       "[ ERR(offset 5: expected '\"' to end the string, found the end of the file "
       "(truncated?))"},
      {"[tru]", "[ ERR(offset 1: expected a value, found 't')"},
      {"{} x",
       "{ } ERR(offset 3: expected the end of the file after the top-level value, found "
       "'x')"},
      {"[}", "[ ERR(offset 1: expected a value or ']', found '}')"},
      {"{]", "{ ERR(offset 1: expected a key (a string) or '}', found ']')"},
      {"[1 2]", "[ I:1 ERR(offset 3: expected ',' or ']', found '2')"},
      {"\x01", "ERR(offset 0: expected a value, found byte 0x01)"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++)
    check_tokens(cases[i].text, cases[i].want);
}

static void test_typed_helpers(void **state) {
  (void)state;
  const char *doc =
      "{\"id\": 7, \"f\": 2.5, \"s\": \"name\", \"big\": 1e30, \"neg\": -3, "
      "\"skip\": {\"a\": [1, {\"b\": [[]]}], \"c\": \"d\"}, \"end\": true}";
  jr_fixture f;
  open_mem(&f, doc, strlen(doc));
  assert_int_equal(pl__jr_expect(&f.r, PL__JT_OBJ, "an object"), 0);
  int64_t v;
  double d;
  assert_int_equal(pl__jr_key(&f.r), 1);
  assert_true(pl__jr_is(&f.r, "id"));
  assert_int_equal(pl__jr_next(&f.r), PL__JT_NUM);
  assert_int_equal(pl__jr_int(&f.r, 0, 10, &v, "an id"), 0);
  assert_int_equal(v, 7);
  assert_int_equal(pl__jr_key(&f.r), 1);
  assert_int_equal(pl__jr_next(&f.r), PL__JT_NUM);
  assert_int_equal(pl__jr_num(&f.r, &d, "a number"), 0);
  assert_true(d == 2.5);
  assert_int_equal(pl__jr_key(&f.r), 1);
  assert_int_equal(pl__jr_skip_value(&f.r), 0); /* "s" */
  assert_int_equal(pl__jr_key(&f.r), 1);
  assert_true(pl__jr_is(&f.r, "big"));
  assert_int_equal(pl__jr_skip_value(&f.r), 0);
  assert_int_equal(pl__jr_key(&f.r), 1);
  assert_int_equal(pl__jr_next(&f.r), PL__JT_NUM);
  assert_int_equal(pl__jr_int(&f.r, -5, 5, &v, "a small number"), 0);
  assert_int_equal(v, -3);
  assert_int_equal(pl__jr_key(&f.r), 1);
  assert_true(pl__jr_is(&f.r, "skip"));
  assert_int_equal(pl__jr_skip_value(&f.r), 0); /* a nested object */
  assert_int_equal(pl__jr_key(&f.r), 1);
  assert_true(pl__jr_is(&f.r, "end"));
  assert_int_equal(pl__jr_next(&f.r), PL__JT_TRUE);
  assert_int_equal(pl__jr_key(&f.r), 0);
  assert_int_equal(pl__jr_next(&f.r), PL__JT_END);
  done(&f);

  /* type errors name what was found */
  open_mem(&f, "[\"seven\"]", 9);
  assert_int_equal(pl__jr_next(&f.r), PL__JT_ARR);
  assert_int_equal(pl__jr_elem(&f.r), 1);
  assert_int_equal(pl__jr_int(&f.r, 0, 10, &v, "a node id"), -EINVAL);
  assert_string_equal(f.err.msg, "offset 1: expected a node id, found the string \"seven\"");
  /* the reader stays failed */
  assert_int_equal(pl__jr_next(&f.r), -EINVAL);
  done(&f);
  open_mem(&f, "[2.5, 11, 1e300]", 16);
  assert_int_equal(pl__jr_next(&f.r), PL__JT_ARR);
  assert_int_equal(pl__jr_elem(&f.r), 1);
  assert_int_equal(pl__jr_int(&f.r, 0, 10, &v, "a whole number"), -EINVAL);
  assert_string_equal(f.err.msg, "offset 1: expected a whole number, found the number 2.5");
  done(&f);
  open_mem(&f, "[11]", 4);
  assert_int_equal(pl__jr_next(&f.r), PL__JT_ARR);
  assert_int_equal(pl__jr_elem(&f.r), 1);
  assert_int_equal(pl__jr_int(&f.r, 0, 10, &v, "a number up to 10"), -EINVAL);
  assert_string_equal(f.err.msg, "offset 1: expected a number up to 10, found the number 11");
  done(&f);
  open_mem(&f, "[1e400]", 7); /* overflows to infinity: not a finite number */
  assert_int_equal(pl__jr_next(&f.r), PL__JT_ARR);
  assert_int_equal(pl__jr_elem(&f.r), 1);
  assert_int_equal(pl__jr_num(&f.r, &d, "a finite number"), -EINVAL);
  done(&f);
}

static void test_limits(void **state) {
  (void)state;
  jr_fixture f;
  char deep[64];
  memset(deep, '[', sizeof(deep));
  open_mem(&f, deep, sizeof(deep));
  f.r.max_depth = 10;
  int t = 0;
  for (int i = 0; i < 11 && t >= 0; i++) t = pl__jr_next(&f.r);
  assert_int_equal(t, -EINVAL);
  assert_string_equal(f.err.msg, "offset 10: nested deeper than 10 levels: not read");
  done(&f);

  char longstr[300];
  memset(longstr, 'x', sizeof(longstr));
  longstr[0] = '"';
  longstr[sizeof(longstr) - 1] = '"';
  open_mem(&f, longstr, sizeof(longstr));
  f.r.max_string = 100;
  assert_int_equal(pl__jr_next(&f.r), -EINVAL);
  assert_non_null(strstr(f.err.msg, "a string longer than"));
  done(&f);
}

/* A document larger than the reader's buffer, so tokens straddle refills. */
static char *big_doc(size_t *len) {
  size_t cap = 3 << 20, n = 0;
  char *d = malloc(cap);
  assert_non_null(d);
  n += (size_t)snprintf(d + n, cap - n, "[");
  for (int i = 0; n < cap - 4096; i++) {
    if (i % 1000 == 999)
      n += (size_t)snprintf(d + n, cap - n, "\"%0*d\\u00e9\\ud83d\\ude00\",", 300 + i % 7, i);
    else
      n += (size_t)snprintf(d + n, cap - n, "%d,%d.25,", i * 7919, -i);
  }
  n += (size_t)snprintf(d + n, cap - n, "\"end\"]");
  *len = n;
  return d;
}

/* Checks the tokens of big_doc from any source; returns how many. */
static size_t walk_big(pl__jreader *r) {
  assert_int_equal(pl__jr_next(r), PL__JT_ARR);
  size_t count = 0;
  int e;
  for (int i = 0; (e = pl__jr_elem(r)) > 0; i++) {
    count++;
    if (i % 1000 == 999 && r->tok == PL__JT_STR) {
      size_t width = 300 + (size_t)(i % 7);
      assert_int_equal(r->str.len, width + 2 + 4);
      assert_int_equal(strtol(r->str.data, NULL, 10), i);
      assert_memory_equal(r->str.data + width, "\xc3\xa9\xf0\x9f\x98\x80", 6);
      continue;
    }
    if (r->tok == PL__JT_STR && pl__jr_is(r, "end")) break; /* the last */
    assert_int_equal(r->tok, PL__JT_NUM);
    assert_int_equal(r->num_i, (int64_t)i * 7919);
    assert_int_equal(pl__jr_elem(r), 1);
    count++;
    assert_true(r->num_d == (i ? -((double)i + 0.25) : 0.25)); /* "-i.25" */
  }
  if (e < 0) fail_msg("%s (after %zu tokens)", r->err->msg, count);
  assert_int_equal(pl__jr_elem(r), 0);
  assert_int_equal(pl__jr_next(r), PL__JT_END);
  return count;
}

static void test_refills_and_sources(void **state) {
  (void)state;
  size_t len;
  char *doc = big_doc(&len);

  jr_fixture f;
  open_mem(&f, doc, len);
  size_t n_mem = walk_big(&f.r);
  done(&f);
  assert_true(n_mem > 100000);

  /* short reads: every token and escape meets the end of what was read */
  static const size_t shorts[] = {1, 2, 3, 5, 7, 4093};
  for (size_t k = 0; k < sizeof(shorts) / sizeof(*shorts); k++) {
    open_mem(&f, doc, len);
    f.src.max_read = shorts[k];
    assert_int_equal(walk_big(&f.r), n_mem);
    done(&f);
  }

  /* through a pipe, written by a child in small pieces */
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    for (size_t off = 0; off < len;) {
      size_t chunk = 777 + off % 3000;
      if (chunk > len - off) chunk = len - off;
      ssize_t w = write(fds[1], doc + off, chunk);
      if (w <= 0) _exit(1);
      off += (size_t)w;
    }
    _exit(0);
  }
  close(fds[1]);
  pl__read_err err = {{0}};
  pl__rsrc src;
  pl__jreader r;
  pl__rsrc_init_fd(&src, fds[0], &err);
  assert_int_equal(pl__rsrc_gunzip(&src), 0); /* not gzip: nothing changes */
  assert_int_equal(pl__jr_init(&r, &src, &err), 0);
  assert_int_equal(walk_big(&r), n_mem);
  pl__jr_free(&r);
  pl__rsrc_free(&src);
  close(fds[0]);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);

  /* through gunzip, two gzip members back to back (as `cat a.gz b.gz`) */
  uLongf zcap = compressBound((uLong)len) + 64;
  unsigned char *gz = malloc(2 * zcap);
  assert_non_null(gz);
  size_t gzlen = 0;
  size_t half = len / 2;
  for (int part = 0; part < 2; part++) {
    z_stream z;
    memset(&z, 0, sizeof(z));
    assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = (unsigned char *)doc + (part ? half : 0);
    z.avail_in = (uInt)(part ? len - half : half);
    z.next_out = gz + gzlen;
    z.avail_out = (uInt)(2 * zcap - gzlen);
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    gzlen = 2 * zcap - z.avail_out;
    deflateEnd(&z);
  }
  pl__rsrc_init_mem(&src, gz, gzlen, &err);
  assert_int_equal(pl__rsrc_gunzip(&src), 1);
  assert_int_equal(pl__jr_init(&r, &src, &err), 0);
  assert_int_equal(walk_big(&r), n_mem);
  pl__jr_free(&r);
  pl__rsrc_free(&src);

  /* truncated gzip data: an error, not a short document */
  pl__rsrc_init_mem(&src, gz, gzlen / 3, &err);
  assert_int_equal(pl__rsrc_gunzip(&src), 1);
  assert_int_equal(pl__jr_init(&r, &src, &err), 0);
  int t = 0;
  while ((t = pl__jr_next(&r)) > 0) {
  }
  assert_int_equal(t, -EINVAL);
  assert_non_null(strstr(err.msg, "gzip data ends early"));
  pl__jr_free(&r);
  pl__rsrc_free(&src);

  /* garbage after the gzip data */
  memcpy(gz + gzlen, "junk", 4);
  pl__rsrc_init_mem(&src, gz, gzlen + 4, &err);
  assert_int_equal(pl__rsrc_gunzip(&src), 1);
  unsigned char *all;
  size_t alllen;
  assert_int_equal(pl__rsrc_read_all(&src, 64 << 20, &all, &alllen), -EINVAL);
  assert_non_null(strstr(err.msg, "expected the end of the gzip data"));
  pl__rsrc_free(&src);

  /* a size bound */
  err.msg[0] = '\0';
  pl__rsrc_init_mem(&src, doc, len, &err);
  assert_int_equal(pl__rsrc_read_all(&src, 1 << 20, &all, &alllen), -EFBIG);
  assert_non_null(strstr(err.msg, "larger than 1 MiB"));
  pl__rsrc_free(&src);
  free(gz);
  free(doc);
}

/* Every prefix of a document is an error (it is one value, so no prefix is
 * complete), with an offset inside the prefix; nothing crashes. */
static void test_every_truncation(void **state) {
  (void)state;
  const char *doc =
      "{\"nodes\":[{\"id\":1,\"callFrame\":{\"functionName\":\"(root)\",\"url\":\"\\u00e9\\ud83d"
      "\\ude00\",\"lineNumber\":-1},\"children\":[2]},{\"id\":2,\"x\":[true,false,null,-1.5e3]}],"
      "\"samples\":[2,2],\"timeDeltas\":[0,1000]}";
  size_t len = strlen(doc);
  for (size_t cut = 0; cut < len; cut++) {
    jr_fixture f;
    open_mem(&f, doc, cut);
    int t;
    do {
      t = pl__jr_next(&f.r);
    } while (t > 0);
    if (t != -EINVAL) fail_msg("prefix of %zu bytes: %d, not an error", cut, t);
    unsigned long long off;
    assert_int_equal(sscanf(f.err.msg, "offset %llu:", &off), 1);
    assert_true(off <= cut);
    done(&f);
  }
  jr_fixture f;
  open_mem(&f, doc, len);
  int t;
  do {
    t = pl__jr_next(&f.r);
  } while (t > 0);
  assert_int_equal(t, PL__JT_END);
  done(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tokens),           cmocka_unit_test(test_strings),
      cmocka_unit_test(test_errors),           cmocka_unit_test(test_typed_helpers),
      cmocka_unit_test(test_limits),           cmocka_unit_test(test_refills_and_sources),
      cmocka_unit_test(test_every_truncation),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
