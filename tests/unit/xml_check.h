/* A small XML 1.0 well-formedness checker for the unit tests of the SVG
 * writers (libxml2 is not a dependency): valid UTF-8 of XML characters, an
 * optional XML declaration, one root element, matched and nested tags,
 * quoted attributes without '<' or duplicates, references to the five
 * predefined entities or to valid character numbers, CDATA sections,
 * comments and processing instructions. No DTD (a DOCTYPE is refused).
 * Included once per test program. */
#ifndef PL_TEST_XML_CHECK_H
#define PL_TEST_XML_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct xml_doc {
  const unsigned char *d;
  size_t n, i;
  const char *err; /* first error */
  size_t elements; /* elements seen */
  size_t max_depth;
} xml_doc;

/* One code point at i: its length, or 0 when the bytes are not valid UTF-8
 * of an XML Char. */
static size_t xml_cp(const xml_doc *x, size_t i, uint32_t *cp) {
  const unsigned char *s = x->d + i;
  size_t left = x->n - i, len;
  uint32_t v, min;
  if (s[0] < 0x80)
    len = 1, v = s[0], min = 0;
  else if (s[0] >= 0xc2 && s[0] <= 0xdf)
    len = 2, v = s[0] & 0x1f, min = 0x80;
  else if (s[0] >= 0xe0 && s[0] <= 0xef)
    len = 3, v = s[0] & 0x0f, min = 0x800;
  else if (s[0] >= 0xf0 && s[0] <= 0xf4)
    len = 4, v = s[0] & 0x07, min = 0x10000;
  else
    return 0;
  if (len > left) return 0;
  for (size_t k = 1; k < len; k++) {
    if ((s[k] & 0xc0) != 0x80) return 0;
    v = v << 6 | (s[k] & 0x3f);
  }
  if (v < min) return 0;
  int ok = v == 0x9 || v == 0xa || v == 0xd || (v >= 0x20 && v <= 0xd7ff) ||
           (v >= 0xe000 && v <= 0xfffd) || (v >= 0x10000 && v <= 0x10ffff);
  if (!ok) return 0;
  *cp = v;
  return len;
}

static int xml_fail(xml_doc *x, const char *msg) {
  if (!x->err) x->err = msg;
  return -1;
}

static int xml_at(const xml_doc *x, const char *lit) {
  size_t l = strlen(lit);
  return x->n - x->i >= l && memcmp(x->d + x->i, lit, l) == 0;
}

static void xml_space(xml_doc *x) {
  while (x->i < x->n && strchr(" \t\r\n", x->d[x->i]) && x->d[x->i]) x->i++;
}

static int xml_name_start(uint32_t c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == ':' || c >= 0xc0;
}

static int xml_name_char(uint32_t c) {
  return xml_name_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == 0xb7;
}

/* A Name at i: its length (0 when none). */
static size_t xml_name(xml_doc *x) {
  size_t start = x->i;
  uint32_t c;
  size_t l = x->i < x->n ? xml_cp(x, x->i, &c) : 0;
  if (!l || !xml_name_start(c)) return 0;
  x->i += l;
  while (x->i < x->n && (l = xml_cp(x, x->i, &c)) && xml_name_char(c)) x->i += l;
  return x->i - start;
}

/* A reference after '&'. */
static int xml_ref(xml_doc *x) {
  x->i++; /* & */
  if (xml_at(x, "#x") || xml_at(x, "#")) {
    int hex = xml_at(x, "#x");
    x->i += hex ? 2 : 1;
    uint64_t v = 0;
    size_t digits = 0;
    for (; x->i < x->n && x->d[x->i] != ';'; x->i++, digits++) {
      int c = x->d[x->i], dv;
      if (c >= '0' && c <= '9')
        dv = c - '0';
      else if (hex && c >= 'a' && c <= 'f')
        dv = c - 'a' + 10;
      else if (hex && c >= 'A' && c <= 'F')
        dv = c - 'A' + 10;
      else
        return xml_fail(x, "bad character reference");
      v = v * (hex ? 16 : 10) + (uint64_t)dv;
      if (v > 0x10ffff) return xml_fail(x, "character reference out of range");
    }
    if (!digits || x->i >= x->n) return xml_fail(x, "unterminated character reference");
    int ok = v == 0x9 || v == 0xa || v == 0xd || (v >= 0x20 && v <= 0xd7ff) ||
             (v >= 0xe000 && v <= 0xfffd) || v >= 0x10000;
    if (!ok) return xml_fail(x, "character reference to a character XML forbids");
    x->i++;
    return 0;
  }
  static const char *const ents[] = {"amp;", "lt;", "gt;", "quot;", "apos;"};
  for (size_t k = 0; k < 5; k++) {
    if (xml_at(x, ents[k])) {
      x->i += strlen(ents[k]);
      return 0;
    }
  }
  return xml_fail(x, "reference to an undefined entity");
}

/* Characters up to (not including) `stop`, which must come; '<' refused
 * when no_lt, references checked when refs. */
static int xml_chars_until(xml_doc *x, const char *stop, int refs, int no_lt) {
  while (x->i < x->n) {
    if (xml_at(x, stop)) return 0;
    uint32_t c;
    if (refs && x->d[x->i] == '&') {
      if (xml_ref(x)) return -1;
      continue;
    }
    if (no_lt && x->d[x->i] == '<') return xml_fail(x, "'<' where it is not allowed");
    size_t l = xml_cp(x, x->i, &c);
    if (!l) return xml_fail(x, "invalid UTF-8 or a character XML forbids");
    x->i += l;
  }
  return xml_fail(x, "unexpected end of the document");
}

static int xml_misc(xml_doc *x) { /* comment or PI at '<' */
  if (xml_at(x, "<!--")) {
    x->i += 4;
    if (xml_chars_until(x, "--", 0, 0)) return -1;
    if (!xml_at(x, "-->")) return xml_fail(x, "'--' inside a comment");
    x->i += 3;
    return 0;
  }
  if (xml_at(x, "<?")) {
    x->i += 2;
    size_t l = xml_name(x);
    if (!l) return xml_fail(x, "processing instruction without a target");
    if (xml_chars_until(x, "?>", 0, 0)) return -1;
    x->i += 2;
    return 0;
  }
  return xml_fail(x, "expected a comment or a processing instruction");
}

static int xml_element(xml_doc *x, size_t depth) {
  if (depth > 10000) return xml_fail(x, "nesting too deep");
  if (depth > x->max_depth) x->max_depth = depth;
  x->i++; /* < */
  size_t name_at = x->i, name_len = xml_name(x);
  if (!name_len) return xml_fail(x, "expected an element name");
  x->elements++;
  struct {
    size_t at, len;
  } attrs[64];
  size_t nattrs = 0;
  for (;;) {
    size_t before = x->i;
    xml_space(x);
    if (xml_at(x, "/>")) {
      x->i += 2;
      return 0;
    }
    if (xml_at(x, ">")) {
      x->i++;
      break;
    }
    if (x->i == before) return xml_fail(x, "expected space before an attribute");
    size_t at = x->i, len = xml_name(x);
    if (!len) return xml_fail(x, "expected an attribute name, '>' or '/>'");
    for (size_t k = 0; k < nattrs; k++)
      if (attrs[k].len == len && memcmp(x->d + attrs[k].at, x->d + at, len) == 0)
        return xml_fail(x, "an attribute given twice");
    if (nattrs < 64) attrs[nattrs].at = at, attrs[nattrs++].len = len;
    xml_space(x);
    if (!xml_at(x, "=")) return xml_fail(x, "expected '=' after an attribute name");
    x->i++;
    xml_space(x);
    if (x->i >= x->n || (x->d[x->i] != '"' && x->d[x->i] != '\''))
      return xml_fail(x, "expected a quoted attribute value");
    char q[2] = {(char)x->d[x->i], 0};
    x->i++;
    if (xml_chars_until(x, q, 1, 1)) return -1;
    x->i++;
  }
  /* content */
  for (;;) {
    if (x->i >= x->n) return xml_fail(x, "unexpected end of the document inside an element");
    if (xml_at(x, "</")) {
      x->i += 2;
      size_t at = x->i, len = xml_name(x);
      if (len != name_len || memcmp(x->d + at, x->d + name_at, len) != 0)
        return xml_fail(x, "an end tag that does not match the start tag");
      xml_space(x);
      if (!xml_at(x, ">")) return xml_fail(x, "expected '>' after an end tag's name");
      x->i++;
      return 0;
    }
    if (xml_at(x, "<![CDATA[")) {
      x->i += 9;
      if (xml_chars_until(x, "]]>", 0, 0)) return -1;
      x->i += 3;
    } else if (xml_at(x, "<!--") || xml_at(x, "<?")) {
      if (xml_misc(x)) return -1;
    } else if (xml_at(x, "<!")) {
      return xml_fail(x, "a declaration inside an element");
    } else if (xml_at(x, "<")) {
      if (xml_element(x, depth + 1)) return -1;
    } else if (xml_at(x, "]]>")) {
      return xml_fail(x, "']]>' in character data");
    } else if (x->d[x->i] == '&') {
      if (xml_ref(x)) return -1;
    } else {
      uint32_t c;
      size_t l = xml_cp(x, x->i, &c);
      if (!l) return xml_fail(x, "invalid UTF-8 or a character XML forbids");
      x->i += l;
    }
  }
}

/* NULL when d[0..n) is a well-formed XML document, else what is wrong, with
 * its offset in *at. *elements (if not NULL) receives the element count. */
static const char *xml_check(const char *d, size_t n, size_t *at, size_t *elements) {
  xml_doc x = {(const unsigned char *)d, n, 0, NULL, 0, 0};
  if (xml_at(&x, "<?xml")) {
    if (xml_misc(&x)) goto out;
  }
  int root = 0;
  for (;;) {
    xml_space(&x);
    if (x.i >= x.n) break;
    if (xml_at(&x, "<!--") || xml_at(&x, "<?")) {
      if (xml_misc(&x)) goto out;
    } else if (xml_at(&x, "<!")) {
      xml_fail(&x, "a DOCTYPE or other declaration (not expected)");
      goto out;
    } else if (xml_at(&x, "<")) {
      if (root) {
        xml_fail(&x, "a second root element");
        goto out;
      }
      root = 1;
      if (xml_element(&x, 0)) goto out;
    } else {
      xml_fail(&x, "text outside the root element");
      goto out;
    }
  }
  if (!root) xml_fail(&x, "no root element");
out:
  if (at) *at = x.i;
  if (elements) *elements = x.elements;
  return x.err;
}

#endif
