/* Failed-token rate limiting per client address.
 *
 * After `limit` failures inside `window_s` seconds an address is refused
 * (429) until the window has passed since the last failure. A bounded table:
 * when full, the entry seen least recently is reused, so memory never grows
 * with the number of addresses. Loop thread only.
 */
#ifndef PL_LAB_RATELIMIT_H
#define PL_LAB_RATELIMIT_H

#include <stdint.h>

#define PL__RL_ENTRIES 256
#define PL__RL_ADDR 48

typedef struct pl__rl_entry {
  char addr[PL__RL_ADDR];
  unsigned failures;
  uint64_t last_ns;
} pl__rl_entry;

typedef struct pl__ratelimit {
  unsigned limit;
  uint64_t window_ns;
  pl__rl_entry e[PL__RL_ENTRIES];
} pl__ratelimit;

void pl__rl_init(pl__ratelimit *rl, unsigned limit, unsigned window_s);
/* Seconds until addr may try again, 0 if it may now. */
unsigned pl__rl_blocked(pl__ratelimit *rl, const char *addr, uint64_t now_ns);
void pl__rl_fail(pl__ratelimit *rl, const char *addr, uint64_t now_ns);
void pl__rl_success(pl__ratelimit *rl, const char *addr);

#endif
