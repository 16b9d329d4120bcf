/*
 * Lua values <-> msgpack, for the data of the scenario's messages between master and workers and
 * for the fields report_to_master listeners add to a stats report; and the messages' Lua API on
 * acrida.runner (register_message, send_message) for both roles, over a sender each daemon
 * provides.
 *
 * What can be sent: nil, booleans, numbers (an integral value in the int64 range goes as an
 * integer, anything else as a float64), strings (valid UTF-8 as str, other bytes as bin so that
 * a stock Locust peer can still decode the frame) and tables: one whose keys are exactly 1..n is
 * an array, any other (the empty table included) a map with string, number or boolean keys. A
 * function, userdata, thread, a table that contains itself, nesting deeper than
 * ACR_LUA_VALUE_MAX_DEPTH tables or more than ACR_LUA_VALUE_MAX_BYTES encoded bytes is refused
 * with a message naming the place, such as "data.users[3].cb is a function, which cannot be
 * sent". Received: str and bin become strings, arrays tables 1..n (a nil element leaves a hole),
 * maps tables (a nil or NaN key is refused); ext types are refused.
 *
 * Error convention: 0 or a negative errno with the reason in a caller buffer.
 */
#ifndef ACR_LUA_VALUE_H
#define ACR_LUA_VALUE_H

#include "common/events.h"
#include "common/util.h"

#include <stddef.h>
#include <stdint.h>

struct lua_State;

/** Nested tables in one value. A frame may nest ACR_MSG_MAX_DEPTH (16) containers, two of which
 *  are the envelope and a stats report's data map. */
#define ACR_LUA_VALUE_MAX_DEPTH 14
/** Encoded bytes of one value (a frame may hold 64 MiB). */
#define ACR_LUA_VALUE_MAX_BYTES (8u << 20)

/** Appends the msgpack form of the value at @idx to @b. @what names the value in errors
 *  ("data"). Returns 0, -EINVAL (a value that cannot be sent; nothing appended), -EFBIG or
 *  -ENOMEM. */
int acr_lua_value_encode(struct lua_State *L, int idx, const char *what, acr_buf_t *b, char *err,
                         size_t errlen);

/** Appends the key/value pairs of the table at @idx as the body of a msgpack map (no header),
 *  leaving out the string keys listed in @skip (NULL-terminated, may be NULL); *@npairs is the
 *  number of pairs written. Same rules and errors as acr_lua_value_encode. */
int acr_lua_value_encode_pairs(struct lua_State *L, int idx, const char *what,
                               const char *const *skip, acr_buf_t *b, uint32_t *npairs, char *err,
                               size_t errlen);

/** Decodes the one msgpack value of @len bytes at @p and pushes it. Returns 0, or -EPROTO with
 *  the reason (nothing pushed). Any input is safe: truncation, trailing bytes, depth and counts
 *  larger than the input are checked. */
int acr_lua_value_push(struct lua_State *L, const void *p, size_t len, char *err, size_t errlen);

/**
 * Sends one custom message: @data (@len bytes of msgpack) of @type to the master (worker) or to
 * @node_id, or every worker when @node_id is NULL (master). Returns the number of recipients, or
 * a negative errno with the reason in @err: -EINVAL raises a Lua error in send_message, others
 * make it return false and the reason.
 */
typedef int (*acr_messages_send_fn)(const char *type, const void *data, size_t len,
                                    const char *node_id, void *ud, char *err, size_t errlen);

/** Installs acrida.runner:register_message(type, fn(msg)) and
 *  acrida.runner:send_message(type, data[, node_id]) in @L (after acr_scenario_open); @send
 *  delivers, @ud is passed to it. A second call replaces the sender. Returns 0 or -EINVAL when
 *  there is no acrida module. */
int acr_messages_open(struct lua_State *L, acr_messages_send_fn send, void *ud);

/**
 * Calls the handler registered for @type with msg = {type, data, node_id} (@data: @len bytes of
 * msgpack, NULL for nil), protected: an error goes to @on_error (NULL: the state's handler). A
 * type without a handler is logged once per type ("Unknown message type received from ...").
 * Returns 1 when a handler ran (even if it raised), 0 for no handler, -EPROTO when the data
 * cannot be decoded (reason in @err).
 */
int acr_messages_dispatch(struct lua_State *L, const char *type, const void *data, size_t len,
                          const char *node_id, acr_events_error_fn on_error, void *ud, char *err,
                          size_t errlen);

#endif
