/*
 * Constants of the master <-> worker protocol (proto/PROTOCOL.md) that both daemons, their option
 * checks and the socket layer share, so each is defined once.
 */
#ifndef ACR_PROTO_PROTO_H
#define ACR_PROTO_PROTO_H

#include <stdbool.h>
#include <stddef.h>

/** The master's ZeroMQ port when none is given (Locust's --master-bind-port default). */
#define ACR_PROTO_DEFAULT_PORT 5557

/** A node id is the worker's ZeroMQ routing id (ZMQ_ROUTING_ID): 1 to 255 bytes. The master also
 *  requires valid UTF-8 (every string on the wire is) without control characters. A buffer for one
 * needs ACR_PROTO_NODE_ID_MAX + 1 bytes. */
#define ACR_PROTO_NODE_ID_MAX 255

/** Is @s (@n bytes) valid UTF-8 (no overlong forms, surrogates or code points past U+10FFFF)?
 *  The rule the message decoder applies to every string (proto/msg_scan.c). */
bool acr_proto_utf8_valid(const char *s, size_t n);

#endif
