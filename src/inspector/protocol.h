/* The protocol description served at /json/protocol: the domains, commands
 * and events this inspector implements, in the shape of Chrome's
 * protocol.json (chrome-remote-interface builds its client from it). */
#ifndef PL_INSPECTOR_PROTOCOL_H
#define PL_INSPECTOR_PROTOCOL_H

#include <stddef.h>

/* The JSON text (static, NUL-terminated); *len gets its length. Any thread. */
const char *pl__cdp_protocol_json(size_t *len);

#endif
