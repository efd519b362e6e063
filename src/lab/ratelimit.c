/* Failed-token rate limiting (see ratelimit.h). */
#include "lab/ratelimit.h"

#include <stdio.h>
#include <string.h>

void pl__rl_init(pl__ratelimit *rl, unsigned limit, unsigned window_s) {
  memset(rl, 0, sizeof(*rl));
  rl->limit = limit ? limit : 10;
  rl->window_ns = (uint64_t)(window_s ? window_s : 60) * 1000000000u;
}

static pl__rl_entry *find(pl__ratelimit *rl, const char *addr) {
  for (unsigned i = 0; i < PL__RL_ENTRIES; i++)
    if (rl->e[i].addr[0] && strcmp(rl->e[i].addr, addr) == 0) return &rl->e[i];
  return NULL;
}

unsigned pl__rl_blocked(pl__ratelimit *rl, const char *addr, uint64_t now_ns) {
  pl__rl_entry *e = find(rl, addr);
  if (!e || e->failures < rl->limit) return 0;
  if (now_ns - e->last_ns >= rl->window_ns) {
    e->failures = 0;
    return 0;
  }
  uint64_t left = rl->window_ns - (now_ns - e->last_ns);
  return (unsigned)((left + 999999999u) / 1000000000u);
}

void pl__rl_fail(pl__ratelimit *rl, const char *addr, uint64_t now_ns) {
  pl__rl_entry *e = find(rl, addr);
  if (!e) {
    pl__rl_entry *victim = &rl->e[0];
    for (unsigned i = 0; i < PL__RL_ENTRIES; i++) {
      if (!rl->e[i].addr[0]) {
        victim = &rl->e[i];
        break;
      }
      if (rl->e[i].last_ns < victim->last_ns) victim = &rl->e[i];
    }
    e = victim;
    snprintf(e->addr, sizeof(e->addr), "%s", addr);
    e->failures = 0;
  } else if (now_ns - e->last_ns >= rl->window_ns) {
    e->failures = 0; /* old failures have expired */
  }
  e->failures++;
  e->last_ns = now_ns;
}

void pl__rl_success(pl__ratelimit *rl, const char *addr) {
  pl__rl_entry *e = find(rl, addr);
  if (e) memset(e, 0, sizeof(*e));
}
