/*
 * libFuzzer driver for the message decoder: any byte string must decode or be rejected with a
 * reason, without crashes, leaks, huge allocations or undefined behaviour. A decoded stats
 * report, a decoded acrida_rejoin and the bundle messages (a scenario's acrida_bundle manifest,
 * acrida_bundle_part, acrida_scenario_loaded) are also re-encoded and decoded again (the encoder
 * must accept whatever the decoder produced, and the result must decode).
 */
#include "proto/msg.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    acr_msg_t m;
    char err[256];
    if (acr_msg_decode(data, size, &m, err, sizeof(err)) != 0) {
        if (err[0] == '\0') abort(); /* every rejection carries a reason */
        return 0;
    }
    if (m.type == ACR_MSG_STATS && m.stats) {
        acr_buf_t b = {0};
        if (acr_msg_encode_stats(&b, m.stats, m.classes, m.nclasses, m.user_count, m.seq, m.final,
                                 m.node_id) == 0) {
            acr_msg_t again;
            if (acr_msg_decode(b.data, b.len, &again, err, sizeof(err)) != 0) abort();
            acr_msg_free(&again);
        }
        acr_buf_free(&b);
    }
    if (m.type == ACR_MSG_REJOIN) {
        acr_msg_rejoin_t r = {.test_id = m.test_id,
                              .state = m.state,
                              .classes = m.classes,
                              .nclasses = m.nclasses,
                              .user_count = m.user_count,
                              .scenario_sha256 = m.scenario_sha256,
                              .host = m.host,
                              .stop_timeout = m.stop_timeout,
                              .tags = (const char *const *)m.tags,
                              .exclude_tags = (const char *const *)m.exclude_tags,
                              .last_seq = m.seq,
                              .started_at = m.started_at};
        acr_buf_t b = {0};
        if (acr_msg_encode_rejoin(&b, &r, m.node_id) != 0) abort();
        acr_msg_t again;
        if (acr_msg_decode(b.data, b.len, &again, err, sizeof(err)) != 0) abort();
        if (again.started_at != m.started_at) abort();
        acr_msg_free(&again);
        acr_buf_free(&b);
    }
    if (m.type == ACR_MSG_STALL) { /* what was accepted re-encodes to the same fields */
        acr_buf_t b = {0};
        if (acr_msg_encode_stall(&b, m.stall_class, m.stall_task, m.stall_seconds, m.node_id))
            abort();
        acr_msg_t again;
        if (acr_msg_decode(b.data, b.len, &again, err, sizeof(err)) != 0) abort();
        if (again.type != m.type || strcmp(again.stall_class, m.stall_class) ||
            strcmp(again.stall_task, m.stall_task) || again.stall_seconds != m.stall_seconds)
            abort();
        acr_msg_free(&again);
        acr_buf_free(&b);
    }
    if (m.type == ACR_MSG_BUNDLE_PART || m.type == ACR_MSG_SCENARIO_LOADED ||
        (m.type == ACR_MSG_SCENARIO && m.bundle.present)) {
        acr_buf_t b = {0};
        int rc =
            m.type == ACR_MSG_BUNDLE_PART
                ? acr_msg_encode_bundle_part(&b, m.bundle.sha256, m.bundle.index, m.data,
                                             m.data_len, m.node_id)
            : m.type == ACR_MSG_SCENARIO_LOADED
                ? acr_msg_encode_scenario_loaded(&b, m.bundle.sha256, m.bundle.error, m.node_id)
                : acr_msg_encode_scenario_bundle(&b, m.scenario_name, m.scenario_source,
                                                 m.scenario_len, &m.bundle, m.node_id);
        if (rc != 0) abort();
        acr_msg_t again;
        if (acr_msg_decode(b.data, b.len, &again, err, sizeof(err)) != 0) abort();
        if (again.type != m.type) abort();
        acr_msg_free(&again);
        acr_buf_free(&b);
    }
    acr_msg_free(&m);
    return 0;
}
