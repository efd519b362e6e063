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

#define PL_RL_ENTRIES 256
#define PL_RL_ADDR 48

typedef struct pl_rl_entry {
  char addr[PL_RL_ADDR];
  unsigned failures;
  uint64_t last_ns;
} pl_rl_entry;

typedef struct pl_ratelimit {
  unsigned limit;
  uint64_t window_ns;
  pl_rl_entry e[PL_RL_ENTRIES];
} pl_ratelimit;

void pl_rl_init(pl_ratelimit *rl, unsigned limit, unsigned window_s);
/* Seconds until addr may try again, 0 if it may now. */
unsigned pl_rl_blocked(pl_ratelimit *rl, const char *addr, uint64_t now_ns);
void pl_rl_fail(pl_ratelimit *rl, const char *addr, uint64_t now_ns);
void pl_rl_success(pl_ratelimit *rl, const char *addr);

#endif
