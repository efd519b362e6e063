/* Shared includes for cmocka unit tests. */
#ifndef PL_TEST_H
#define PL_TEST_H
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#endif
