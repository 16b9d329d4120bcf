/*
 * Unit tests of proto/msg: exact Locust byte forms, round trips of every message type, a lossless
 * stats round trip (merge of the decoded delta equals the original), a stats frame produced by
 * Python's msgpack exactly as a stock Locust 2.12 worker sends it, Locust's error key (Python
 * repr quoting) against hashes computed by CPython, and a table of malformed frames that must be
 * rejected with a precise reason and without leaks.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "proto/msg.h"
#include "proto/msg_internal.h"

#include <errno.h>
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Generated with /usr/bin/python3 msgpack.dumps(("stats", data, node_id)): a report as a Locust
 * 2.12 worker sends it (proto/PROTOCOL.md, `stats`; int and float response_times keys, an entry
 * with a nil min_response_time, a nil stats_total method, no acrida_* keys). */
static const char locust_stats_frame[] =
    "\x93\xa5\x73\x74\x61\x74\x73\x85\xa5\x73\x74\x61\x74\x73\x93\x8e\xa4\x6e\x61\x6d\x65\xab\x2f"
    "\x69\x6e\x64\x65\x78\x2e\x68\x74\x6d\x6c\xa6\x6d\x65\x74\x68\x6f\x64\xa3\x47\x45\x54\xb6\x6c"
    "\x61\x73"
    "\x74\x5f\x72\x65\x71\x75\x65\x73\x74\x5f\x74\x69\x6d\x65\x73\x74\x61\x6d\x70\xcb\x41\xda\xc0"
    "\x93\x33\x12\x83\x42\xaa\x73\x74\x61\x72\x74\x5f\x74\x69\x6d\x65\xcb\x41\xda\xc0\x93\x32\xf8"
    "\x50\x84"
    "\xac\x6e\x75\x6d\x5f\x72\x65\x71\x75\x65\x73\x74\x73\x04\xb1\x6e\x75\x6d\x5f\x6e\x6f\x6e\x65"
    "\x5f\x72\x65\x71\x75\x65\x73\x74\x73\x00\xac\x6e\x75\x6d\x5f\x66\x61\x69\x6c\x75\x72\x65\x73"
    "\x00\xb3"
    "\x74\x6f\x74\x61\x6c\x5f\x72\x65\x73\x70\x6f\x6e\x73\x65\x5f\x74\x69\x6d\x65\xcb\x40\x34\xf1"
    "\x78\x4e\xc5\xab\x80\xb1\x6d\x61\x78\x5f\x72\x65\x73\x70\x6f\x6e\x73\x65\x5f\x74\x69\x6d\x65"
    "\xcb\x40"
    "\x25\x80\x60\xbb\x2b\x5a\x00\xb1\x6d\x69\x6e\x5f\x72\x65\x73\x70\x6f\x6e\x73\x65\x5f\x74\x69"
    "\x6d\x65\xcb\x40\x09\x87\x33\xeb\xbe\x18\x00\xb4\x74\x6f\x74\x61\x6c\x5f\x63\x6f\x6e\x74\x65"
    "\x6e\x74"
    "\x5f\x6c\x65\x6e\x67\x74\x68\x18\xae\x72\x65\x73\x70\x6f\x6e\x73\x65\x5f\x74\x69\x6d\x65\x73"
    "\x83\x0b\x01\x04\x01\x03\x02\xb0\x6e\x75\x6d\x5f\x72\x65\x71\x73\x5f\x70\x65\x72\x5f\x73\x65"
    "\x63\x82"
    "\xce\x6b\x02\x4c\xcb\x01\xce\x6b\x02\x4c\xcc\x03\xb0\x6e\x75\x6d\x5f\x66\x61\x69\x6c\x5f\x70"
    "\x65\x72\x5f\x73\x65\x63\x80\x8e\xa4\x6e\x61\x6d\x65\xa5\x66\x69\x78\x65\x64\xa6\x6d\x65\x74"
    "\x68\x6f"
    "\x64\xa6\x43\x55\x53\x54\x4f\x4d\xb6\x6c\x61\x73\x74\x5f\x72\x65\x71\x75\x65\x73\x74\x5f\x74"
    "\x69\x6d\x65\x73\x74\x61\x6d\x70\xcb\x41\xda\xc0\x93\x33\x20\x00\x00\xaa\x73\x74\x61\x72\x74"
    "\x5f\x74"
    "\x69\x6d\x65\xcb\x41\xda\xc0\x93\x32\xf8\x50\x84\xac\x6e\x75\x6d\x5f\x72\x65\x71\x75\x65\x73"
    "\x74\x73\x02\xb1\x6e\x75\x6d\x5f\x6e\x6f\x6e\x65\x5f\x72\x65\x71\x75\x65\x73\x74\x73\x00\xac"
    "\x6e\x75"
    "\x6d\x5f\x66\x61\x69\x6c\x75\x72\x65\x73\x01\xb3\x74\x6f\x74\x61\x6c\x5f\x72\x65\x73\x70\x6f"
    "\x6e\x73\x65\x5f\x74\x69\x6d\x65\xcb\x40\xa3\x4a\x00\x00\x00\x00\x00\xb1\x6d\x61\x78\x5f\x72"
    "\x65\x73"
    "\x70\x6f\x6e\x73\x65\x5f\x74\x69\x6d\x65\xcb\x40\x93\x4a\x00\x00\x00\x00\x00\xb1\x6d\x69\x6e"
    "\x5f\x72\x65\x73\x70\x6f\x6e\x73\x65\x5f\x74\x69\x6d\x65\xcb\x40\x93\x4a\x00\x00\x00\x00\x00"
    "\xb4\x74"
    "\x6f\x74\x61\x6c\x5f\x63\x6f\x6e\x74\x65\x6e\x74\x5f\x6c\x65\x6e\x67\x74\x68\x00\xae\x72\x65"
    "\x73\x70\x6f\x6e\x73\x65\x5f\x74\x69\x6d\x65\x73\x81\xcb\x40\x92\xc0\x00\x00\x00\x00\x00\x02"
    "\xb0\x6e"
    "\x75\x6d\x5f\x72\x65\x71\x73\x5f\x70\x65\x72\x5f\x73\x65\x63\x81\xce\x6b\x02\x4c\xcc\x02\xb0"
    "\x6e\x75\x6d\x5f\x66\x61\x69\x6c\x5f\x70\x65\x72\x5f\x73\x65\x63\x81\xce\x6b\x02\x4c\xcc\x01"
    "\x8e\xa4"
    "\x6e\x61\x6d\x65\xa9\x6e\x6f\x6e\x65\x2d\x6f\x6e\x6c\x79\xa6\x6d\x65\x74\x68\x6f\x64\xa6\x43"
    "\x55\x53\x54\x4f\x4d\xb6\x6c\x61\x73\x74\x5f\x72\x65\x71\x75\x65\x73\x74\x5f\x74\x69\x6d\x65"
    "\x73\x74"
    "\x61\x6d\x70\xcb\x41\xda\xc0\x93\x33\x2c\xcc\xcd\xaa\x73\x74\x61\x72\x74\x5f\x74\x69\x6d\x65"
    "\xcb\x41\xda\xc0\x93\x32\xf8\x50\x84\xac\x6e\x75\x6d\x5f\x72\x65\x71\x75\x65\x73\x74\x73\x02"
    "\xb1\x6e"
    "\x75\x6d\x5f\x6e\x6f\x6e\x65\x5f\x72\x65\x71\x75\x65\x73\x74\x73\x02\xac\x6e\x75\x6d\x5f\x66"
    "\x61\x69\x6c\x75\x72\x65\x73\x00\xb3\x74\x6f\x74\x61\x6c\x5f\x72\x65\x73\x70\x6f\x6e\x73\x65"
    "\x5f\x74"
    "\x69\x6d\x65\x00\xb1\x6d\x61\x78\x5f\x72\x65\x73\x70\x6f\x6e\x73\x65\x5f\x74\x69\x6d\x65\x00"
    "\xb1\x6d\x69\x6e\x5f\x72\x65\x73\x70\x6f\x6e\x73\x65\x5f\x74\x69\x6d\x65\xc0\xb4\x74\x6f\x74"
    "\x61\x6c"
    "\x5f\x63\x6f\x6e\x74\x65\x6e\x74\x5f\x6c\x65\x6e\x67\x74\x68\x00\xae\x72\x65\x73\x70\x6f\x6e"
    "\x73\x65\x5f\x74\x69\x6d\x65\x73\x80\xb0\x6e\x75\x6d\x5f\x72\x65\x71\x73\x5f\x70\x65\x72\x5f"
    "\x73\x65"
    "\x63\x81\xce\x6b\x02\x4c\xcc\x02\xb0\x6e\x75\x6d\x5f\x66\x61\x69\x6c\x5f\x70\x65\x72\x5f\x73"
    "\x65\x63\x80\xab\x73\x74\x61\x74\x73\x5f\x74\x6f\x74\x61\x6c\x8e\xa4\x6e\x61\x6d\x65\xaa\x41"
    "\x67\x67"
    "\x72\x65\x67\x61\x74\x65\x64\xa6\x6d\x65\x74\x68\x6f\x64\xc0\xb6\x6c\x61\x73\x74\x5f\x72\x65"
    "\x71\x75\x65\x73\x74\x5f\x74\x69\x6d\x65\x73\x74\x61\x6d\x70\xcb\x41\xda\xc0\x93\x33\x2c\xcc"
    "\xcd\xaa"
    "\x73\x74\x61\x72\x74\x5f\x74\x69\x6d\x65\xcb\x41\xda\xc0\x93\x32\xf8\x50\x84\xac\x6e\x75\x6d"
    "\x5f\x72\x65\x71\x75\x65\x73\x74\x73\x08\xb1\x6e\x75\x6d\x5f\x6e\x6f\x6e\x65\x5f\x72\x65\x71"
    "\x75\x65"
    "\x73\x74\x73\x02\xac\x6e\x75\x6d\x5f\x66\x61\x69\x6c\x75\x72\x65\x73\x01\xb3\x74\x6f\x74\x61"
    "\x6c\x5f\x72\x65\x73\x70\x6f\x6e\x73\x65\x5f\x74\x69\x6d\x65\xcb\x40\xa3\x73\xe2\xf0\x9d\x8b"
    "\x57\xb1"
    "\x6d\x61\x78\x5f\x72\x65\x73\x70\x6f\x6e\x73\x65\x5f\x74\x69\x6d\x65\xcb\x40\x93\x4a\x00\x00"
    "\x00\x00\x00\xb1\x6d\x69\x6e\x5f\x72\x65\x73\x70\x6f\x6e\x73\x65\x5f\x74\x69\x6d\x65\xcb\x40"
    "\x09\x87"
    "\x33\xeb\xbe\x18\x00\xb4\x74\x6f\x74\x61\x6c\x5f\x63\x6f\x6e\x74\x65\x6e\x74\x5f\x6c\x65\x6e"
    "\x67\x74\x68\x18\xae\x72\x65\x73\x70\x6f\x6e\x73\x65\x5f\x74\x69\x6d\x65\x73\x84\x0b\x01\x04"
    "\x01\x03"
    "\x02\xcb\x40\x92\xc0\x00\x00\x00\x00\x00\x02\xb0\x6e\x75\x6d\x5f\x72\x65\x71\x73\x5f\x70\x65"
    "\x72\x5f\x73\x65\x63\x82\xce\x6b\x02\x4c\xcb\x01\xce\x6b\x02\x4c\xcc\x07\xb0\x6e\x75\x6d\x5f"
    "\x66\x61"
    "\x69\x6c\x5f\x70\x65\x72\x5f\x73\x65\x63\x81\xce\x6b\x02\x4c\xcc\x01\xa6\x65\x72\x72\x6f\x72"
    "\x73\x81\xd9\x40\x65\x63\x64\x37\x64\x39\x61\x66\x64\x62\x36\x39\x32\x38\x63\x36\x64\x66\x35"
    "\x65\x61"
    "\x35\x35\x64\x34\x65\x63\x63\x37\x33\x35\x33\x65\x33\x66\x30\x36\x36\x66\x64\x62\x34\x64\x65"
    "\x35\x32\x39\x64\x34\x65\x34\x61\x33\x39\x33\x64\x64\x38\x37\x30\x37\x66\x65\x61\x84\xa4\x6e"
    "\x61\x6d"
    "\x65\xab\x2f\x6e\x6f\x70\x65\x2d\x6e\x61\x6d\x65\x64\xa6\x6d\x65\x74\x68\x6f\x64\xa3\x47\x45"
    "\x54\xa5\x65\x72\x72\x6f\x72\xd9\x42\x48\x54\x54\x50\x45\x72\x72\x6f\x72\x28\x27\x34\x30\x34"
    "\x20\x43"
    "\x6c\x69\x65\x6e\x74\x20\x45\x72\x72\x6f\x72\x3a\x20\x46\x69\x6c\x65\x20\x6e\x6f\x74\x20\x66"
    "\x6f\x75\x6e\x64\x20\x66\x6f\x72\x20\x75\x72\x6c\x3a\x20\x2f\x6e\x6f\x70\x65\x2d\x6e\x61\x6d"
    "\x65\x64"
    "\x27\x29\xab\x6f\x63\x63\x75\x72\x72\x65\x6e\x63\x65\x73\x02\xb2\x75\x73\x65\x72\x5f\x63\x6c"
    "\x61\x73\x73\x65\x73\x5f\x63\x6f\x75\x6e\x74\x82\xa7\x57\x65\x62\x55\x73\x65\x72\x02\xa9\x46"
    "\x69\x78"
    "\x65\x64\x55\x73\x65\x72\x01\xaa\x75\x73\x65\x72\x5f\x63\x6f\x75\x6e\x74\x03\xd9\x23\x76\x6d"
    "\x5f\x31\x66\x61\x35\x62\x38\x35\x32\x61\x31\x63\x62\x34\x37\x66\x63\x39\x37\x62\x65\x38\x61"
    "\x38\x34"
    "\x62\x63\x61\x34\x35\x33\x36\x64";

/* Generated with /usr/bin/python3 msgpack; reasons are substrings of the expected error. */
static const struct bad_frame {
    const char *name;
    const char *bytes;
    size_t len;
    const char *reason;
} bad_frames[] = {
    {"empty", "", 0, "empty frame"},
    {"truncated",
     "\x93\xa9\x68\x65\x61\x72\x74\x62\x65\x61\x74\x83\xa5\x73\x74\x61\x74\x65\xa5\x72\x65\x61\x64"
     "\x79\xb1\x63\x75\x72\x72\x65\x6e\x74\x5f\x63\x70\x75\x5f\x75\x73\x61\x67\x65\xcb\x00\x00\x00"
     "\x00\x00\x00\x00\x00\xb4\x63\x75\x72\x72\x65\x6e\x74\x5f\x6d\x65\x6d\x6f\x72\x79\x5f\x75\x73"
     "\x61\x67",
     71, "truncated"},
    {"reserved 0xc1", "\x93\xc1\xc0\xc0", 4, "0xc1"},
    {"array32 claims 16M", "\xdd\x00\xff\xff\xff", 5, "array count"},
    {"map32 claims 16M", "\x93\xa1\x78\xdf\x00\xff\xff\xff", 8, "map count"},
    {"deep nesting", "\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\xc0", 18,
     "nesting"},
    {"not an array", "\xa9\x68\x65\x61\x72\x74\x62\x65\x61\x74", 10, "3-element array"},
    {"2 elements", "\x92\xa9\x68\x65\x61\x72\x74\x62\x65\x61\x74\xc0", 12, "3-element array"},
    {"4 elements", "\x94\xa9\x68\x65\x61\x72\x74\x62\x65\x61\x74\xc0\xa1\x6e\xa1\x78", 16,
     "3-element array"},
    {"type not str", "\x93\x01\xc0\xa1\x6e", 5, "type is not a string"},
    {"type is bin", "\x93\xc4\x09\x68\x65\x61\x72\x74\x62\x65\x61\x74\xc0\xa1\x6e", 15,
     "type is not a string"},
    {"node_id int", "\x93\xa4\x73\x74\x6f\x70\xc0\x05", 8, "node_id is not a string"},
    {"heartbeat missing state",
     "\x93\xa9\x68\x65\x61\x72\x74\x62\x65\x61\x74\x81\xb1\x63\x75\x72\x72\x65\x6e\x74\x5f\x63\x70"
     "\x75\x5f\x75\x73\x61\x67\x65\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00\xa1\x6e",
     41, "heartbeat: 'state' missing or not a string"},
    {"heartbeat state int",
     "\x93\xa9\x68\x65\x61\x72\x74\x62\x65\x61\x74\x82\xa5\x73\x74\x61\x74\x65\x03\xb1\x63\x75\x72"
     "\x72\x65\x6e\x74\x5f\x63\x70\x75\x5f\x75\x73\x61\x67\x65\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00"
     "\xa1\x6e",
     48, "heartbeat: 'state' missing or not a string"},
    {"heartbeat cpu str",
     "\x93\xa9\x68\x65\x61\x72\x74\x62\x65\x61\x74\x82\xa5\x73\x74\x61\x74\x65\xa5\x72\x65\x61\x64"
     "\x79\xb1\x63\x75\x72\x72\x65\x6e\x74\x5f\x63\x70\x75\x5f\x75\x73\x61\x67\x65\xa1\x31\xa1\x6e",
     46, "heartbeat: 'current_cpu_usage' is not a number"},
    {"heartbeat data list", "\x93\xa9\x68\x65\x61\x72\x74\x62\x65\x61\x74\x91\x01\xa1\x6e", 15,
     "heartbeat: data is not a map"},
    {"trailing bytes",
     "\x93\xa9\x68\x65\x61\x72\x74\x62\x65\x61\x74\x83\xa5\x73\x74\x61\x74\x65\xa5\x72\x65\x61\x64"
     "\x79\xb1\x63\x75\x72\x72\x65\x6e\x74\x5f\x63\x70\x75\x5f\x75\x73\x61\x67\x65\xcb\x00\x00\x00"
     "\x00\x00\x00\x00\x00\xb4\x63\x75\x72\x72\x65\x6e\x74\x5f\x6d\x65\x6d\x6f\x72\x79\x5f\x75\x73"
     "\x61\x67\x65\x05\xa2\x6e\x31\xc0",
     77, "trailing"},
    {"ext type", "\x93\xa1\x78\xd5\x01\x61\x62\xa1\x6e", 9, "ext"},
    {"invalid utf-8", "\x93\xa4\x73\x74\x6f\x70\xc0\xa2\xff\xfe", 10, "UTF-8"},
    {"NUL in node_id", "\x93\xa4\x73\x74\x6f\x70\xc0\xa3\x61\x00\x62", 11, "NUL"},
    {"str8 longer than frame", "\x93\xd9\xc8\x61\x62\x63", 6, "longer than the frame"},
    {"spawn missing classes",
     "\x93\xa5\x73\x70\x61\x77\x6e\x82\xa9\x74\x69\x6d\x65\x73\x74\x61\x6d\x70\xcb\x3f\xf0\x00\x00"
     "\x00\x00\x00\x00\xa4\x68\x6f\x73\x74\xc0\xa1\x6e",
     35, "spawn: 'user_classes_count' missing"},
    {"spawn negative class count",
     "\x93\xa5\x73\x70\x61\x77\x6e\x82\xa9\x74\x69\x6d\x65\x73\x74\x61\x6d\x70\xcb\x3f\xf0\x00\x00"
     "\x00\x00\x00\x00\xb2\x75\x73\x65\x72\x5f\x63\x6c\x61\x73\x73\x65\x73\x5f\x63\x6f\x75\x6e\x74"
     "\x81\xa1\x55\xff\xa1\x6e",
     52, "not a non-negative integer"},
    {"exception count 0",
     "\x93\xa9\x65\x78\x63\x65\x70\x74\x69\x6f\x6e\x83\xa3\x6d\x73\x67\xa1\x6d\xa9\x74\x72\x61\x63"
     "\x65\x62\x61\x63\x6b\xa1\x74\xa5\x63\x6f\x75\x6e\x74\x00\xa1\x6e",
     39, "'count' is 0"},
    {"exception missing traceback",
     "\x93\xa9\x65\x78\x63\x65\x70\x74\x69\x6f\x6e\x81\xa3\x6d\x73\x67\xa1\x6d\xa1\x6e", 20,
     "'traceback' missing"},
    {"scenario sha mismatch",
     "\x93\xa8\x73\x63\x65\x6e\x61\x72\x69\x6f\x83\xa4\x6e\x61\x6d\x65\xa5\x73\x2e\x6c\x75\x61\xa6"
     "\x73\x6f\x75\x72\x63\x65\xa8\x70\x72\x69\x6e\x74\x28\x31\x29\xa6\x73\x68\x61\x32\x35\x36\xd9"
     "\x40\x30\x30\x30\x30\x30\x30\x30\x30\x30\x30\x30\x30\x30\x30\x30\x30\x30\x30\x30\x30\x30\x30"
     "\x30\x30\x30\x30\x30\x30\x30\x30\x30\x30\x30\x30\x30\x30\x30\x30\x30\x30\x30\x30\x30\x30\x30"
     "\x30\x30\x30\x30\x30\x30\x30\x30\x30\x30\x30\x30\x30\x30\x30\x30\x30\x30\x30\xa1\x6e",
     113, "does not match"},
    {"client_ready version map",
     "\x93\xac\x63\x6c\x69\x65\x6e\x74\x5f\x72\x65\x61\x64\x79\x80\xa1\x6e", 17,
     "version is not a string"},
    {"ack index str", "\x93\xa3\x61\x63\x6b\x81\xa5\x69\x6e\x64\x65\x78\xa1\x30\xa1\x6e", 16,
     "ack: 'index' is not an integer"},
};

#define NODE "vm_1fa5b852a1cb47fc97be8a84bca4536d"
#define T0 1795312843.0

static void expect_bytes(const acr_buf_t *b, const char *want, size_t wlen)
{
    if (b->len == wlen && memcmp(b->data, want, wlen) == 0) return;
    char got[1024] = "", exp[1024] = "";
    for (size_t i = 0; i < b->len && i < 300; i++)
        snprintf(got + strlen(got), sizeof(got) - strlen(got), "%02x", (unsigned char)b->data[i]);
    for (size_t i = 0; i < wlen && i < 300; i++)
        snprintf(exp + strlen(exp), sizeof(exp) - strlen(exp), "%02x", (unsigned char)want[i]);
    fail_msg("bytes differ:\n got  %s (%zu)\n want %s (%zu)", got, b->len, exp, wlen);
}

static void decode_ok(const acr_buf_t *b, acr_msg_t *m)
{
    char err[256];
    int r = acr_msg_decode(b->data, b->len, m, err, sizeof(err));
    if (r) fail_msg("decode failed: %d (%s)", r, err);
}

/* ---- exact byte forms (as Locust 2.12 sends them: proto/PROTOCOL.md, envelope) ---- */

static void test_heartbeat_bytes(void **state)
{
    (void)state;
    static const char want[] = "\x93\xa9heartbeat\x83\xa5state\xa5ready\xb1"
                               "current_cpu_usage\xcb\x00\x00\x00\x00\x00\x00\x00\x00\xb4"
                               "current_memory_usage\xce\x03\x5e\xa0\x00\xd9\x23" NODE;
    acr_buf_t b = {0};
    assert_int_equal(acr_msg_encode_heartbeat(&b, "ready", 0.0, 56532992, 0, NODE), 0);
    expect_bytes(&b, want, sizeof(want) - 1);
    acr_buf_free(&b);
}

static void test_nil_and_ack_bytes(void **state)
{
    (void)state;
    static const char spawning[] = "\x93\xa8spawning\xc0\xd9\x23" NODE;
    static const char ack[] = "\x93\xa3"
                              "ack\x81\xa5index\x00\xa2n1";
    static const char ready[] = "\x93\xac"
                                "client_ready\xa0\xa2n1";
    acr_buf_t b = {0};
    assert_int_equal(acr_msg_encode_nil(&b, "spawning", NODE), 0);
    expect_bytes(&b, spawning, sizeof(spawning) - 1);
    acr_buf_reset(&b);
    assert_int_equal(acr_msg_encode_ack(&b, 0, false, "n1"), 0);
    expect_bytes(&b, ack, sizeof(ack) - 1);
    acr_buf_reset(&b);
    assert_int_equal(acr_msg_encode_client_ready(&b, "", "n1"), 0);
    expect_bytes(&b, ready, sizeof(ready) - 1);
    acr_buf_free(&b);
}

/* ---- round trips ---- */

static void test_client_ready_ack_roundtrip(void **state)
{
    (void)state;
    acr_buf_t b = {0};
    acr_msg_t m;

    assert_int_equal(acr_msg_encode_client_ready(&b, "acrida/1.2", NODE), 0);
    decode_ok(&b, &m);
    assert_int_equal(m.type, ACR_MSG_CLIENT_READY);
    assert_string_equal(m.type_name, "client_ready");
    assert_string_equal(m.node_id, NODE);
    assert_string_equal(m.version, "acrida/1.2");
    assert_true(m.acrida);
    acr_msg_free(&m);

    acr_buf_reset(&b);
    assert_int_equal(acr_msg_encode_client_ready(&b, "", NODE), 0);
    decode_ok(&b, &m);
    assert_string_equal(m.version, "");
    assert_false(m.acrida);
    acr_msg_free(&m);

    acr_buf_reset(&b);
    assert_int_equal(acr_msg_encode_ack(&b, 7, false, NODE), 0);
    decode_ok(&b, &m);
    assert_int_equal(m.type, ACR_MSG_ACK);
    assert_int_equal(m.index, 7);
    assert_false(m.acrida);
    assert_null(m.version);
    acr_msg_free(&m);

    acr_buf_reset(&b);
    assert_int_equal(acr_msg_encode_ack(&b, 3, true, NODE), 0);
    decode_ok(&b, &m);
    assert_int_equal(m.index, 3);
    assert_true(m.acrida);
    assert_string_equal(m.version, ACR_VERSION);
    acr_msg_free(&m);

    /* ack with nil data (Locust <= 2.10.2) */
    acr_buf_reset(&b);
    assert_int_equal(acr_msg_encode_nil(&b, "ack", NODE), 0);
    decode_ok(&b, &m);
    assert_int_equal(m.type, ACR_MSG_ACK);
    assert_int_equal(m.index, -1);
    acr_msg_free(&m);
    acr_buf_free(&b);
}

static void test_heartbeat_roundtrip(void **state)
{
    (void)state;
    acr_buf_t b = {0};
    acr_msg_t m;
    assert_int_equal(acr_msg_encode_heartbeat(&b, "running", 12.5, 56532992, 20000, NODE), 0);
    decode_ok(&b, &m);
    assert_int_equal(m.type, ACR_MSG_HEARTBEAT);
    assert_string_equal(m.state, "running");
    assert_true(m.cpu_usage == 12.5);
    assert_int_equal(m.memory_usage, 56532992);
    assert_int_equal(m.nofile, 20000); /* acrida_nofile */
    acr_msg_free(&m);

    /* the acrida master's bare heartbeat */
    acr_buf_reset(&b);
    assert_int_equal(acr_msg_encode_nil(&b, "heartbeat", NODE), 0);
    decode_ok(&b, &m);
    assert_int_equal(m.type, ACR_MSG_HEARTBEAT);
    assert_null(m.state);
    acr_msg_free(&m);
    acr_buf_free(&b);
}

static void test_spawn_roundtrip(void **state)
{
    (void)state;
    acr_class_count_t cls[] = {{"WebUser", 2}, {"FixedUser", 0}};
    acr_buf_t b = {0};
    acr_msg_t m;

    assert_int_equal(acr_msg_encode_spawn(&b, 1795312955.1957464, cls, 2, "http://xyz", 2.5, NODE),
                     0);
    decode_ok(&b, &m);
    assert_int_equal(m.type, ACR_MSG_SPAWN);
    assert_true(m.timestamp == 1795312955.1957464);
    assert_int_equal(m.nclasses, 2);
    assert_string_equal(m.classes[0].name, "WebUser");
    assert_int_equal(m.classes[0].count, 2);
    assert_string_equal(m.classes[1].name, "FixedUser");
    assert_int_equal(m.classes[1].count, 0);
    assert_string_equal(m.host, "http://xyz");
    assert_true(m.stop_timeout == 2.5);
    acr_msg_free(&m);

    acr_buf_reset(&b);
    assert_int_equal(acr_msg_encode_spawn(&b, 5.0, cls, 1, NULL, -1, NODE), 0);
    decode_ok(&b, &m);
    assert_null(m.host);
    assert_true(m.stop_timeout < 0);
    assert_int_equal(m.nclasses, 1);
    acr_msg_free(&m);
    acr_buf_free(&b);
}

static void test_spawning_complete_exception_roundtrip(void **state)
{
    (void)state;
    acr_class_count_t cls[] = {{"A", 5}};
    acr_buf_t b = {0};
    acr_msg_t m;

    assert_int_equal(acr_msg_encode_spawning_complete(&b, cls, 1, 5, NODE), 0);
    decode_ok(&b, &m);
    assert_int_equal(m.type, ACR_MSG_SPAWNING_COMPLETE);
    assert_int_equal(m.nclasses, 1);
    assert_string_equal(m.classes[0].name, "A");
    assert_int_equal(m.classes[0].count, 5);
    assert_int_equal(m.user_count, 5);
    acr_msg_free(&m);

    acr_buf_reset(&b);
    assert_int_equal(acr_msg_encode_exception(&b, "boom", "  File \"x.lua\", line 3\n", 1, NODE),
                     0);
    decode_ok(&b, &m);
    assert_int_equal(m.type, ACR_MSG_EXCEPTION);
    assert_string_equal(m.exc_msg, "boom");
    assert_string_equal(m.exc_traceback, "  File \"x.lua\", line 3\n");
    assert_int_equal(m.exc_count, 1);
    acr_msg_free(&m);

    acr_buf_reset(&b);
    assert_int_equal(acr_msg_encode_exception(&b, "boom", "tb", 17, NODE), 0);
    decode_ok(&b, &m);
    assert_int_equal(m.exc_count, 17);
    acr_msg_free(&m);
    acr_buf_free(&b);
}

static void test_nil_types_and_legacy(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        acr_msg_type_t type;
    } t[] = {{"spawning", ACR_MSG_SPAWNING},
             {"stop", ACR_MSG_STOP},
             {"client_stopped", ACR_MSG_CLIENT_STOPPED},
             {"quit", ACR_MSG_QUIT},
             {"reconnect", ACR_MSG_RECONNECT}};
    acr_buf_t b = {0};
    acr_msg_t m;
    for (size_t i = 0; i < ACR_ARRAY_SIZE(t); i++) {
        acr_buf_reset(&b);
        assert_int_equal(acr_msg_encode_nil(&b, t[i].name, NODE), 0);
        decode_ok(&b, &m);
        assert_int_equal(m.type, t[i].type);
        assert_string_equal(m.type_name, t[i].name);
        assert_string_equal(acr_msg_type_name(m.type), t[i].name);
        acr_msg_free(&m);
    }
    /* legacy names */
    acr_class_count_t cls[] = {{"A", 1}};
    acr_buf_reset(&b);
    assert_int_equal(acr_msg_encode_spawning_complete(&b, cls, 1, 1, NODE), 0);
    /* rewrite the type: "spawning_complete" (17) -> "hatching_complete" (17) */
    assert_memory_equal(b.data + 2, "spawning_complete", 17);
    memcpy(b.data + 2, "hatching_complete", 17);
    decode_ok(&b, &m);
    assert_int_equal(m.type, ACR_MSG_SPAWNING_COMPLETE);
    assert_string_equal(m.type_name, "hatching_complete");
    acr_msg_free(&m);
    acr_buf_free(&b);
}

static void test_scenario_and_custom(void **state)
{
    (void)state;
    static const char src[] = "local x = 1\0binary\xff tail";
    acr_buf_t b = {0};
    acr_msg_t m;
    assert_int_equal(acr_msg_encode_scenario(&b, "demo.lua", src, sizeof(src) - 1, NODE), 0);
    decode_ok(&b, &m);
    assert_int_equal(m.type, ACR_MSG_SCENARIO);
    assert_string_equal(m.scenario_name, "demo.lua");
    assert_int_equal(m.scenario_len, sizeof(src) - 1);
    assert_memory_equal(m.scenario_source, src, sizeof(src) - 1);
    acr_msg_free(&m);

    /* custom: an unknown type is kept by name, its data (any well-formed value) ignored */
    acr_buf_reset(&b);
    assert_int_equal(acr_msg_encode_nil(&b, "my_message", NODE), 0);
    decode_ok(&b, &m);
    assert_int_equal(m.type, ACR_MSG_CUSTOM);
    assert_string_equal(m.type_name, "my_message");
    acr_msg_free(&m);

    static const char custom[] = "\x93\xa8pool_req\x82\xa1"
                                 "a\x01\xa1"
                                 "b\x92\xc3\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00\xa1n";
    acr_buf_t c = {.data = (char *)custom, .len = sizeof(custom) - 1};
    decode_ok(&c, &m);
    assert_int_equal(m.type, ACR_MSG_CUSTOM);
    assert_string_equal(m.type_name, "pool_req");
    assert_string_equal(m.node_id, "n");
    acr_msg_free(&m);
    acr_buf_free(&b);
}

/* ---- stats ---- */

static void test_locust_bucket_rounding(void **state)
{
    (void)state;
    static const struct {
        uint64_t us;
        int64_t ms;
    } t[] = {
        {0, 0},           {499, 0},          {500, 0},          {1500, 2},        {2500, 2},
        {3500, 4},        {99499, 99},       {99500, 100},      {100000, 100},    {145000, 140},
        {155000, 160},    {999999, 1000},    {1234500, 1200},   {1450000, 1400},  {1550000, 1600},
        {9950000, 10000}, {12345678, 12000}, {12500000, 12000}, {13500000, 14000}};
    for (size_t i = 0; i < ACR_ARRAY_SIZE(t); i++) {
        int64_t got = acr__locust_bucket_ms(t[i].us);
        if (got != t[i].ms)
            fail_msg("bucket(%llu us) = %lld, want %lld", (unsigned long long)t[i].us,
                     (long long)got, (long long)t[i].ms);
    }
}

static void assert_entries_equal(const acr_stats_entry_t *a, const acr_stats_entry_t *b)
{
    assert_string_equal(a->name, b->name);
    assert_int_equal(a->num_requests, b->num_requests);
    assert_int_equal(a->num_none_requests, b->num_none_requests);
    assert_int_equal(a->num_failures, b->num_failures);
    assert_int_equal(a->num_aborted, b->num_aborted);
    assert_int_equal(a->total_rt_us, b->total_rt_us);
    assert_int_equal(a->total_content_length, b->total_content_length);
    assert_true(a->last_request_ts == b->last_request_ts);
    assert_int_equal(a->hist.count, b->hist.count);
    assert_int_equal(a->hist.min_us, b->hist.min_us);
    assert_int_equal(a->hist.max_us, b->hist.max_us);
    for (unsigned i = 0; i < ACR_HIST_BUCKETS; i++)
        if (a->hist.counts[i] != b->hist.counts[i])
            fail_msg("%s: bucket %u: %llu != %llu", a->name, i,
                     (unsigned long long)a->hist.counts[i], (unsigned long long)b->hist.counts[i]);
    for (unsigned i = 0; i < ACR_PERSEC_SLOTS; i++) {
        if (a->persec.sec[i] == INT64_MIN) continue;
        uint32_t r = 0, f = 0;
        assert_true(acr_persec_get(&b->persec, a->persec.sec[i], &r, &f));
        assert_int_equal(r, a->persec.reqs[i]);
        assert_int_equal(f, a->persec.fails[i]);
    }
    assert_true(acr_stats_percentile_ms(a, 0.99) == acr_stats_percentile_ms(b, 0.99));
}

static void test_stats_roundtrip_lossless(void **state)
{
    (void)state;
    acr_stats_t *s = acr_stats_new(T0);
    assert_non_null(s);
    acr_stats_entry_t *a = acr_stats_get(s, "GET", "/a");
    acr_stats_entry_t *p = acr_stats_get(s, "POST", "/b");
    assert_non_null(acr_stats_get(s, "GET", "/idle")); /* no requests: not sent */
    for (unsigned i = 0; i < 3000; i++) {
        uint64_t rt = (i * 7919u) % 2500000u + 1; /* 1 us .. 2.5 s */
        const char *err = i % 17 == 0 ? "HTTPError('500 Server Error')" : NULL;
        acr_stats_log(s, a, true, rt, i % 100, err, T0 + i * 0.003);
    }
    acr_stats_log(s, p, true, 1234500, 10, NULL, T0 + 1.1);
    acr_stats_log(s, p, false, 0, 0, NULL, T0 + 1.2);
    acr_stats_log(s, p, true, 42, 0, "ConnectionError(\"refused\")", T0 + 2.5);
    /* aborted at stop (acrida_aborted): an entry with nothing else is sent all the same */
    acr_stats_entry_t *g = acr_stats_get(s, "GET", "/gone");
    acr_stats_log_aborted(s, g, T0 + 3);
    acr_stats_log_aborted(s, g, T0 + 3);
    acr_stats_log_aborted(s, a, T0 + 3);
    assert_int_equal(acr_stats_total(s)->num_aborted, 3);

    acr_class_count_t cls[] = {{"WebUser", 3}};
    acr_buf_t b = {0};
    assert_int_equal(acr_msg_encode_stats(&b, s, cls, 1, 3, 42, true, NODE), 0);
    acr_msg_t m;
    decode_ok(&b, &m);
    assert_int_equal(m.type, ACR_MSG_STATS);
    assert_int_equal(m.seq, 42);
    assert_true(m.final);
    assert_int_equal(m.user_count, 3);
    assert_int_equal(m.nclasses, 1);
    assert_string_equal(m.classes[0].name, "WebUser");
    assert_int_equal(m.classes[0].count, 3);
    assert_non_null(m.stats);
    assert_int_equal(acr_stats_count(m.stats), 3);
    assert_null(acr_stats_find(m.stats, "GET", "/idle"));

    acr_stats_t *merged = acr_stats_new(T0);
    assert_int_equal(acr_stats_merge(merged, m.stats), 0);
    assert_entries_equal(a, acr_stats_find(merged, "GET", "/a"));
    assert_entries_equal(p, acr_stats_find(merged, "POST", "/b"));
    assert_entries_equal(g, acr_stats_find(merged, "GET", "/gone"));
    assert_int_equal(acr_stats_find(merged, "GET", "/gone")->num_aborted, 2);
    assert_entries_equal(acr_stats_total(s), acr_stats_total(merged));

    size_t n1 = 0, n2 = 0;
    acr_stats_error_t *const *e1 = acr_stats_errors(s, &n1);
    acr_stats_error_t *const *e2 = acr_stats_errors(merged, &n2);
    assert_int_equal(n1, 2);
    assert_int_equal(n1, n2);
    for (size_t i = 0; i < n1; i++) {
        assert_string_equal(e1[i]->method, e2[i]->method);
        assert_string_equal(e1[i]->name, e2[i]->name);
        assert_string_equal(e1[i]->error, e2[i]->error);
        assert_int_equal(e1[i]->occurrences, e2[i]->occurrences);
    }
    acr_msg_free(&m);

    /* The Locust view of the same frame: rounded buckets and exact ms values. */
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    assert_int_equal(msgpack_unpack_next(&up, b.data, b.len, NULL), MSGPACK_UNPACK_SUCCESS);
    const msgpack_object *data = &up.data.via.array.ptr[1];
    const msgpack_object *list = acr__map_get(data, "stats");
    assert_non_null(list);
    const msgpack_object *eb = NULL;
    for (uint32_t i = 0; i < list->via.array.size; i++) {
        const msgpack_object *nm = acr__map_get(&list->via.array.ptr[i], "name");
        if (nm->via.str.size == 2 && memcmp(nm->via.str.ptr, "/b", 2) == 0)
            eb = &list->via.array.ptr[i];
    }
    assert_non_null(eb);
    assert_int_equal(eb->via.map.size, 17);
    const msgpack_object *rts = acr__map_get(eb, "response_times");
    assert_int_equal(rts->via.map.size, 2); /* 42 us -> 0 ms, 1234.5 ms -> 1200 */
    assert_int_equal(rts->via.map.ptr[0].key.via.u64, 0);
    assert_int_equal(rts->via.map.ptr[1].key.via.u64, 1200);
    assert_int_equal(rts->via.map.ptr[1].val.via.u64, 1);
    const msgpack_object *mn = acr__map_get(eb, "min_response_time");
    assert_int_equal(mn->type, MSGPACK_OBJECT_FLOAT64);
    assert_true(mn->via.f64 == 0.042);
    const msgpack_object *mx = acr__map_get(eb, "max_response_time");
    assert_true(mx->via.f64 == 1234.5);
    const msgpack_object *errs = acr__map_get(data, "errors");
    assert_int_equal(errs->via.map.size, 2);
    msgpack_unpacked_destroy(&up);

    /* Every truncation of a valid frame is rejected (CONTINUE is malformed), without leaks. */
    for (size_t len = 0; len < b.len; len++) {
        char err[256];
        int r = acr_msg_decode(b.data, len, &m, err, sizeof(err));
        if (r != -EPROTO) fail_msg("truncated to %zu of %zu: rc %d (%s)", len, b.len, r, err);
    }
    acr_buf_free(&b);
    acr_stats_free(merged);
    acr_stats_free(s);
}

/* acr_msg_decode_reuse: a report decoded into the previous report's emptied table holds exactly
 * what the second frame carries, and the table is the same one (its nodes reused). */
static void test_stats_decode_reuse(void **state)
{
    (void)state;
    acr_stats_t *a = acr_stats_new(T0), *b = acr_stats_new(T0);
    assert_non_null(a);
    assert_non_null(b);
    acr_stats_entry_t *ea = acr_stats_get(a, "GET", "/first");
    for (unsigned i = 0; i < 500; i++)
        acr_stats_log(a, ea, true, 100 + i * 997, 10, i % 5 ? NULL : "E", T0 + 1);
    acr_stats_entry_t *eb = acr_stats_get(b, "POST", "/second");
    acr_stats_log(b, eb, true, 5000000, 3, "F", T0 + 2);
    acr_buf_t fa = {0}, fb = {0};
    assert_int_equal(acr_msg_encode_stats(&fa, a, NULL, 0, 1, 1, false, NODE), 0);
    assert_int_equal(acr_msg_encode_stats(&fb, b, NULL, 0, 1, 2, false, NODE), 0);

    acr_stats_t *spare = NULL;
    acr_msg_t m;
    char err[256];
    assert_int_equal(acr_msg_decode_reuse(fa.data, fa.len, &m, &spare, err, sizeof err), 0);
    acr_stats_t *table = m.stats;
    acr_stats_clear(m.stats, 0);
    spare = m.stats;
    m.stats = NULL;
    acr_msg_free(&m);

    assert_int_equal(acr_msg_decode_reuse(fb.data, fb.len, &m, &spare, err, sizeof err), 0);
    assert_null(spare);
    assert_ptr_equal(m.stats, table);
    assert_int_equal(acr_stats_count(m.stats), 1);
    assert_null(acr_stats_find(m.stats, "GET", "/first"));
    acr_stats_t *merged = acr_stats_new(T0);
    assert_int_equal(acr_stats_merge(merged, m.stats), 0);
    assert_entries_equal(eb, acr_stats_find(merged, "POST", "/second"));
    assert_entries_equal(acr_stats_total(b), acr_stats_total(merged));
    size_t n = 0;
    acr_stats_error_t *const *errs = acr_stats_errors(merged, &n);
    assert_int_equal(n, 1);
    assert_string_equal(errs[0]->error, "F");
    acr_msg_free(&m);

    /* a frame that fails to decode takes the spare with it: nothing leaks, nothing is left */
    acr_stats_t *again = acr_stats_new(0);
    spare = again;
    assert_int_equal(acr_msg_decode_reuse(fb.data, fb.len - 1, &m, &spare, err, sizeof err),
                     -EPROTO);
    acr_stats_free(spare);
    acr_stats_free(merged);
    acr_buf_free(&fa);
    acr_buf_free(&fb);
    acr_stats_free(a);
    acr_stats_free(b);
}

static void test_locust_worker_stats_frame(void **state)
{
    (void)state;
    acr_buf_t b = {.data = (char *)locust_stats_frame, .len = sizeof(locust_stats_frame) - 1};
    acr_msg_t m;
    decode_ok(&b, &m);
    assert_int_equal(m.type, ACR_MSG_STATS);
    assert_string_equal(m.node_id, NODE);
    assert_int_equal(m.seq, -1);
    assert_false(m.final);
    assert_int_equal(m.user_count, 3);
    assert_int_equal(m.nclasses, 2);
    assert_string_equal(m.classes[1].name, "FixedUser");
    assert_int_equal(m.classes[1].count, 1);
    assert_int_equal(acr_stats_count(m.stats), 3);

    const acr_stats_entry_t *e = acr_stats_find(m.stats, "GET", "/index.html");
    assert_non_null(e);
    assert_int_equal(e->num_requests, 4);
    assert_int_equal(e->num_failures, 0);
    assert_int_equal(e->total_rt_us, 20943);
    assert_int_equal(e->total_content_length, 24);
    assert_true(e->start_time == 1795312843.8799143);
    assert_true(e->last_request_ts == 1795312844.2892613);
    assert_int_equal(e->hist.count, 4);
    assert_int_equal(e->hist.min_us, 3191);
    assert_int_equal(e->hist.max_us, 10751);
    assert_int_equal(e->hist.counts[acr_hist_index(3000)], 2);
    assert_int_equal(e->hist.counts[acr_hist_index(4000)], 1);
    assert_int_equal(e->hist.counts[acr_hist_index(11000)], 1);
    uint32_t r = 0, f = 0;
    assert_true(acr_persec_get(&e->persec, 1795312844, &r, &f));
    assert_int_equal(r, 3);
    assert_int_equal(f, 0);
    assert_true(acr_persec_get(&e->persec, 1795312843, &r, &f));
    assert_int_equal(r, 1);

    e = acr_stats_find(m.stats, "CUSTOM", "fixed"); /* float key 1200.0 */
    assert_non_null(e);
    assert_int_equal(e->hist.count, 2);
    assert_int_equal(e->hist.counts[acr_hist_index(1200000)], 2);
    assert_int_equal(e->hist.min_us, 1234500);
    assert_int_equal(e->hist.max_us, 1234500);
    assert_int_equal(e->num_failures, 1);
    assert_true(acr_persec_get(&e->persec, 1795312844, &r, &f));
    assert_int_equal(r, 2);
    assert_int_equal(f, 1);

    e = acr_stats_find(m.stats, "CUSTOM", "none-only"); /* nil min_response_time */
    assert_non_null(e);
    assert_int_equal(e->num_requests, 2);
    assert_int_equal(e->num_none_requests, 2);
    assert_int_equal(e->hist.count, 0);

    acr_stats_entry_t *t = acr_stats_total(m.stats); /* method nil on the wire */
    assert_string_equal(t->name, "Aggregated");
    assert_int_equal(t->num_requests, 8);
    assert_int_equal(t->hist.count, 6);
    assert_int_equal(t->hist.max_us, 1234500);

    size_t n = 0;
    acr_stats_error_t *const *errs = acr_stats_errors(m.stats, &n);
    assert_int_equal(n, 1);
    assert_string_equal(errs[0]->method, "GET");
    assert_string_equal(errs[0]->name, "/nope-named");
    assert_int_equal(errs[0]->occurrences, 2);
    char key[65];
    acr_msg_error_key(errs[0]->method, errs[0]->name, errs[0]->error, key);
    assert_string_equal(key, "ecd7d9afdb6928c6df5ea55d4ecc7353e3f066fdb4de529d4e4a393dd8707fea");
    acr_msg_free(&m);
}

/* ---- error key ---- */

static void test_error_key(void **state)
{
    (void)state;
    /* Expected keys computed by CPython: sha256(f"{method}.{name}.{repr(error)}"). */
    static const struct {
        const char *method, *name, *error, *key;
    } t[] = {
        {"GET", "/nope-named", "HTTPError('404 Client Error: File not found for url: /nope-named')",
         "ecd7d9afdb6928c6df5ea55d4ecc7353e3f066fdb4de529d4e4a393dd8707fea"},
        {"POST", "/x", "both ' and \" quotes",
         "7b6aa3194606c1134887ccce4d9fa360921b4769d49200d67cc5df629b24851e"},
        {"GET", "/y", "ConnectionError(\"refused\")",
         "a485b616344101d957fb0fb7fae9a3228349e188182253d39b83ffde1d45435d"},
        {"GET", "/z", "line\nnext\ttab\rcr\\back\x01\x7f",
         "4c8bbae8e6fd6b95cb8cf7b56614e8a5a426b09c293d7da92cf1bdbf51231889"},
        {"GET", "/\xc3\xbc", "na\xc3\xafve\xc2\xa0nbsp\xe2\x80\xa8sep \xf0\x9f\x98\x80 \xc2\xad",
         "df07c2a8c41cb8c375eb8c8988c6c976c03b33182701b0087d86106e3dbec1b1"},
        {"", "Aggregated", "", "b6964289638868c09672fe2cb83942e99f8cb5a43e6827f94c53e6921e15d652"},
    };
    for (size_t i = 0; i < ACR_ARRAY_SIZE(t); i++) {
        char key[65];
        acr_msg_error_key(t[i].method, t[i].name, t[i].error, key);
        if (strcmp(key, t[i].key) != 0) fail_msg("case %zu: key %s, want %s", i, key, t[i].key);
    }
}

/* ---- hostile input ---- */

/*
 * Malformed stats frames are built, not spelled out: build_stats() packs a valid Locust-style
 * ["stats", data, "n1"] frame with one mutation applied, so each case below differs from the
 * valid frame (checked to decode) in exactly the field it names.
 */
enum where { AT_NONE, AT_DATA, AT_ENTRY, AT_TOTAL, AT_ERROR };

struct kv {
    const char *key, *val; /* val: pack_text() shorthand; NULL in data_kv: pack_data_value() */
};

struct mutation {
    enum where at;
    const char *key;  /* replaced, or appended when the map lacks it */
    const char *val;  /* NULL: the key is omitted */
    unsigned entries; /* entries in "stats" (each with the mutation if AT_ENTRY); 0 means 1 */
};

static const struct kv entry_kv[] = {
    {"name", "'/a'"},
    {"method", "'GET'"},
    {"last_request_timestamp", "10.5"},
    {"start_time", "10.0"},
    {"num_requests", "1"},
    {"num_none_requests", "0"},
    {"num_failures", "0"},
    {"total_response_time", "5.0"},
    {"max_response_time", "5.0"},
    {"min_response_time", "5.0"},
    {"total_content_length", "3"},
    {"response_times", "{5:1}"},
    {"num_reqs_per_sec", "{10:1}"},
    {"num_fail_per_sec", "{}"},
};
static const struct kv total_fix[] = {{"name", "'Aggregated'"}, {"method", "''"}};
static const struct kv error_kv[] = {
    {"name", "'/a'"}, {"method", "'GET'"}, {"error", "'e'"}, {"occurrences", "2"}};
static const struct kv data_kv[] = {{"stats", NULL},
                                    {"stats_total", NULL},
                                    {"errors", NULL},
                                    {"user_classes_count", "{'U':1}"},
                                    {"user_count", "1"}};

/* Packs one value written in a JSON-like shorthand: 1, -5, 5.0 (a '.' makes a float64), 'str',
 * nil, [v,...], {k:v,...}. Returns the text after the value; with @pk NULL it only skips it. */
static const char *pack_text(msgpack_packer *pk, const char *s)
{
    if (*s == '[' || *s == '{') {
        bool map = *s == '{';
        char close = map ? '}' : ']';
        uint32_t n = 0;
        for (int pass = 0; pass < 2; pass++) {
            const char *p = s + 1;
            while (*p != close) {
                p = pack_text(pass ? pk : NULL, p);
                if (map) {
                    if (*p != ':') fail_msg("pack_text: ':' expected at '%s'", p);
                    p = pack_text(pass ? pk : NULL, p + 1);
                }
                if (*p == ',') p++;
                if (!pass) n++;
            }
            if (!pass && pk) {
                if (map)
                    msgpack_pack_map(pk, n);
                else
                    msgpack_pack_array(pk, n);
            }
            if (pass) return p + 1;
        }
    }
    if (*s == '\'') {
        const char *e = strchr(s + 1, '\'');
        if (!e) fail_msg("pack_text: unterminated string '%s'", s);
        if (pk) msgpack_pack_str_with_body(pk, s + 1, (size_t)(e - s - 1));
        return e + 1;
    }
    if (strncmp(s, "nil", 3) == 0) {
        if (pk) msgpack_pack_nil(pk);
        return s + 3;
    }
    size_t len = strspn(s, "-0123456789.");
    if (len == 0) fail_msg("pack_text: bad value at '%s'", s);
    if (pk && memchr(s, '.', len))
        msgpack_pack_double(pk, strtod(s, NULL));
    else if (pk)
        msgpack_pack_int64(pk, strtoll(s, NULL, 10));
    return s + len;
}

static void pack_data_value(msgpack_packer *pk, const char *key, const struct mutation *mut);

static void pack_key(msgpack_packer *pk, const char *key)
{
    msgpack_pack_str_with_body(pk, key, strlen(key));
}

/* Packs the map @kv as the object @at: @fix overrides some values, then @mut applies if it
 * targets @at. */
static void pack_map(msgpack_packer *pk, enum where at, const struct kv *kv, size_t n,
                     const struct kv *fix, size_t nfix, const struct mutation *mut)
{
    bool mutate = mut->at == at, found = false;
    uint32_t count = 0;
    for (size_t i = 0; i < n; i++) {
        bool hit = mutate && strcmp(kv[i].key, mut->key) == 0;
        found |= hit;
        count += !hit || mut->val;
    }
    if (mutate && !found && mut->val) count++;
    msgpack_pack_map(pk, count);
    for (size_t i = 0; i < n; i++) {
        const char *val = kv[i].val;
        for (size_t j = 0; j < nfix; j++)
            if (strcmp(kv[i].key, fix[j].key) == 0) val = fix[j].val;
        if (mutate && strcmp(kv[i].key, mut->key) == 0) {
            if (!mut->val) continue;
            val = mut->val;
        }
        pack_key(pk, kv[i].key);
        if (val)
            pack_text(pk, val);
        else
            pack_data_value(pk, kv[i].key, mut);
    }
    if (mutate && !found && mut->val) {
        pack_key(pk, mut->key);
        pack_text(pk, mut->val);
    }
}

static void pack_data_value(msgpack_packer *pk, const char *key, const struct mutation *mut)
{
    if (strcmp(key, "stats") == 0) {
        unsigned n = mut->entries ? mut->entries : 1;
        msgpack_pack_array(pk, n);
        for (unsigned i = 0; i < n; i++)
            pack_map(pk, AT_ENTRY, entry_kv, ACR_ARRAY_SIZE(entry_kv), NULL, 0, mut);
    } else if (strcmp(key, "stats_total") == 0) {
        pack_map(pk, AT_TOTAL, entry_kv, ACR_ARRAY_SIZE(entry_kv), total_fix,
                 ACR_ARRAY_SIZE(total_fix), mut);
    } else { /* errors: one error, keyed "k" */
        msgpack_pack_map(pk, 1);
        pack_key(pk, "k");
        pack_map(pk, AT_ERROR, error_kv, ACR_ARRAY_SIZE(error_kv), NULL, 0, mut);
    }
}

/* Packs ["stats", data, "n1"] with @mut applied into @sb (which the caller destroys). */
static void build_stats(msgpack_sbuffer *sb, const struct mutation *mut)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    pack_text(&pk, "'stats'");
    pack_map(&pk, AT_DATA, data_kv, ACR_ARRAY_SIZE(data_kv), NULL, 0, mut);
    pack_text(&pk, "'n1'");
}

/* Each differs from the valid built frame in one field; reasons are substrings of the error. */
static const struct bad_stats {
    const char *name;
    struct mutation mut;
    const char *reason;
} bad_stats[] = {
    {"stats num_requests str",
     {AT_ENTRY, "num_requests", "'1'", 0},
     "stats: entry 0: 'num_requests' is not an integer"},
    {"stats num_failures negative",
     {AT_ENTRY, "num_failures", "-1", 0},
     "stats: entry 0: 'num_failures' is negative"},
    {"stats response_times str key",
     {AT_ENTRY, "response_times", "{'5':1}", 0},
     "'response_times': key is not a number"},
    {"stats response_times negative key",
     {AT_ENTRY, "response_times", "{-5:1}", 0},
     "out of range"},
    {"stats persec float count",
     {AT_ENTRY, "num_reqs_per_sec", "{10:1.0}", 0},
     "'num_reqs_per_sec': count"},
    {"stats missing stats_total", {AT_DATA, "stats_total", NULL, 0}, "'stats_total' missing"},
    {"stats list not array", {AT_DATA, "stats", "{}", 0}, "'stats' missing or not an array"},
    {"stats acrida_hist bad index", {AT_ENTRY, "acrida_hist", "[99999,1]", 0}, "bad bucket index"},
    {"stats acrida_hist odd", {AT_ENTRY, "acrida_hist", "[1,1,2]", 0}, "pairs"},
    {"stats duplicate entry", {AT_NONE, NULL, NULL, 2}, "stats: entry 1: duplicate entry"},
    {"stats error occurrences str",
     {AT_ERROR, "occurrences", "'2'", 0},
     "stats: error 0: 'occurrences' is not an integer"},
    {"stats min above max", {AT_ENTRY, "min_response_time", "9.0", 0}, "above"},
};

static void expect_rejected(const char *name, const void *buf, size_t len, const char *reason)
{
    acr_msg_t m;
    char err[256] = "";
    memset(&m, 0xab, sizeof(m));
    int r = acr_msg_decode(buf, len, &m, err, sizeof(err));
    if (r != -EPROTO) fail_msg("%s: rc %d, want -EPROTO (reason '%s')", name, r, err);
    if (!strstr(err, reason)) fail_msg("%s: reason '%s' lacks '%s'", name, err, reason);
    assert_null(m.type_name); /* nothing left to free */
    assert_null(m.stats);
    acr_msg_free(&m); /* harmless on a zeroed message */
}

static void test_malformed_frames(void **state)
{
    (void)state;
    assert_true(ACR_ARRAY_SIZE(bad_frames) >= 15);
    for (size_t i = 0; i < ACR_ARRAY_SIZE(bad_frames); i++)
        expect_rejected(bad_frames[i].name, bad_frames[i].bytes, bad_frames[i].len,
                        bad_frames[i].reason);

    /* The unmutated frame is valid, so each rejection below is its mutation's. */
    static const struct mutation none = {AT_NONE, NULL, NULL, 0};
    msgpack_sbuffer sb;
    build_stats(&sb, &none);
    acr_buf_t b = {.data = sb.data, .len = sb.size};
    acr_msg_t m;
    decode_ok(&b, &m);
    assert_int_equal(m.type, ACR_MSG_STATS);
    assert_int_equal(m.user_count, 1);
    assert_int_equal(acr_stats_count(m.stats), 1);
    const acr_stats_entry_t *e = acr_stats_find(m.stats, "GET", "/a");
    assert_non_null(e);
    assert_int_equal(e->num_requests, 1);
    assert_int_equal(e->hist.min_us, 5000);
    assert_string_equal(acr_stats_total(m.stats)->name, "Aggregated");
    size_t nerr = 0;
    acr_stats_error_t *const *errs = acr_stats_errors(m.stats, &nerr);
    assert_int_equal(nerr, 1);
    assert_int_equal(errs[0]->occurrences, 2);
    acr_msg_free(&m);
    msgpack_sbuffer_destroy(&sb);

    assert_int_equal(ACR_ARRAY_SIZE(bad_stats), 12);
    for (size_t i = 0; i < ACR_ARRAY_SIZE(bad_stats); i++) {
        build_stats(&sb, &bad_stats[i].mut);
        expect_rejected(bad_stats[i].name, sb.data, sb.size, bad_stats[i].reason);
        msgpack_sbuffer_destroy(&sb);
    }
}

static void test_huge_frame(void **state)
{
    (void)state;
    size_t len = (size_t)ACR_MSG_MAX_FRAME + 1;
    char *big = calloc(1, len);
    assert_non_null(big);
    acr_msg_t m;
    char err[256] = "";
    assert_int_equal(acr_msg_decode(big, len, &m, err, sizeof(err)), -EPROTO);
    if (!strstr(err, "exceeds")) fail_msg("reason '%s'", err);
    free(big);
}

static void test_too_many_entries(void **state)
{
    (void)state;
    /* ["stats", {"stats": [{} x (ACR_MSG_MAX_ENTRIES + 1)]}, "n"]: rejected on the count, before
     * any entry */
    acr_buf_t b = {0};
    static const char head[] = "\x93\xa5stats\x81\xa5stats\xdc";
    assert_int_equal(acr_buf_append(&b, head, sizeof(head) - 1), 0);
    assert_int_equal(acr_buf_putc(&b, (char)((ACR_MSG_MAX_ENTRIES + 1) >> 8)), 0);
    assert_int_equal(acr_buf_putc(&b, (char)((ACR_MSG_MAX_ENTRIES + 1) & 0xff)), 0);
    for (unsigned i = 0; i < ACR_MSG_MAX_ENTRIES + 1; i++)
        assert_int_equal(acr_buf_putc(&b, (char)0x80), 0);
    assert_int_equal(acr_buf_append(&b, "\xa1n", 2), 0);
    acr_msg_t m;
    char err[256] = "";
    assert_int_equal(acr_msg_decode(b.data, b.len, &m, err, sizeof(err)), -EPROTO);
    if (!strstr(err, "exceed the limit")) fail_msg("reason '%s'", err);
    acr_buf_free(&b);
}

static void test_mutations_do_not_crash(void **state)
{
    (void)state;
    static const uint8_t subst[] = {0x00, 0x7f, 0x80, 0x8f, 0x9f, 0xc0, 0xc1, 0xca,
                                    0xcb, 0xd9, 0xdc, 0xdd, 0xde, 0xdf, 0xff};
    size_t len = sizeof(locust_stats_frame) - 1;
    char *copy = malloc(len);
    assert_non_null(copy);
    unsigned ok = 0, bad = 0;
    for (size_t pos = 0; pos < len; pos++) {
        for (size_t k = 0; k < sizeof(subst); k++) {
            memcpy(copy, locust_stats_frame, len);
            copy[pos] = (char)subst[k];
            acr_msg_t m;
            char err[256];
            int r = acr_msg_decode(copy, len, &m, err, sizeof(err));
            if (r == 0) {
                ok++;
                acr_msg_free(&m);
            } else {
                assert_int_equal(r, -EPROTO);
                assert_true(err[0] != '\0');
                bad++;
            }
        }
    }
    assert_true(bad > 0);
    free(copy);
}

/* ---- the spawn's parsed_options tags / exclude_tags (--tags / --exclude-tags) ---- */

/* How a test fills one of the two keys of parsed_options. */
enum tag_kind {
    TAGS_ABSENT,
    TAGS_NIL,
    TAGS_STRING,  /* "x" instead of an array */
    TAGS_LIST,    /* an array of @n copies of @tag (@len bytes) */
    TAGS_INTEGER, /* [ 7 ] */
};

struct tag_value {
    enum tag_kind kind;
    uint32_t n;
    const char *tag;
    size_t len;
};

static void pack_tags(msgpack_packer *pk, const char *key, const struct tag_value *v)
{
    if (v->kind == TAGS_ABSENT) return;
    msgpack_pack_str_with_body(pk, key, strlen(key));
    switch (v->kind) {
    case TAGS_NIL:
        msgpack_pack_nil(pk);
        break;
    case TAGS_STRING:
        msgpack_pack_str_with_body(pk, "x", 1);
        break;
    case TAGS_INTEGER:
        msgpack_pack_array(pk, 1);
        msgpack_pack_int(pk, 7);
        break;
    default:
        msgpack_pack_array(pk, v->n);
        for (uint32_t i = 0; i < v->n; i++) msgpack_pack_str_with_body(pk, v->tag, v->len);
        break;
    }
}

/* ("spawn", {timestamp, user_classes_count: {U: 1}, host: nil, stop_timeout: nil,
 *  parsed_options: {tags: ..., exclude_tags: ...}}, NODE), as a Locust master sends it. */
static void build_spawn(msgpack_sbuffer *sb, const struct tag_value *tags,
                        const struct tag_value *excl)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_str_with_body(&pk, "spawn", 5);
    msgpack_pack_map(&pk, 5);
    msgpack_pack_str_with_body(&pk, "timestamp", 9);
    msgpack_pack_double(&pk, 1.5);
    msgpack_pack_str_with_body(&pk, "user_classes_count", 18);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "U", 1);
    msgpack_pack_int(&pk, 1);
    msgpack_pack_str_with_body(&pk, "host", 4);
    msgpack_pack_nil(&pk);
    msgpack_pack_str_with_body(&pk, "stop_timeout", 12);
    msgpack_pack_nil(&pk);
    msgpack_pack_str_with_body(&pk, "parsed_options", 14);
    msgpack_pack_map(&pk, (tags->kind != TAGS_ABSENT) + (excl->kind != TAGS_ABSENT));
    pack_tags(&pk, "tags", tags);
    pack_tags(&pk, "exclude_tags", excl);
    msgpack_pack_str_with_body(&pk, NODE, strlen(NODE));
}

static size_t list_len(char **l)
{
    size_t n = 0;
    while (l && l[n]) n++;
    return n;
}

static void test_spawn_tags_roundtrip(void **state)
{
    (void)state;
    acr_class_count_t cls[] = {{"WebUser", 2}};
    const char *tags[] = {"checkout", "caf\xc3\xa9", NULL};
    const char *excl[] = {"slow", NULL};
    acr_buf_t b = {0};
    acr_msg_t m;

    assert_int_equal(acr_msg_encode_spawn_tags(&b, 2.0, cls, 1, "http://h", -1, tags, excl, NODE),
                     0);
    char err[256];
    /* 0, not 1: a spawn with tags is a spawn, not a custom message */
    assert_int_equal(acr_msg_decode(b.data, b.len, &m, err, sizeof(err)), 0);
    assert_int_equal(m.type, ACR_MSG_SPAWN);
    assert_int_equal(list_len(m.tags), 2);
    assert_string_equal(m.tags[0], "checkout");
    assert_string_equal(m.tags[1], "caf\xc3\xa9");
    assert_int_equal(list_len(m.exclude_tags), 1);
    assert_string_equal(m.exclude_tags[0], "slow");
    acr_msg_free(&m);

    /* without either list: both NULL */
    acr_buf_reset(&b);
    assert_int_equal(acr_msg_encode_spawn_tags(&b, 2.0, cls, 1, NULL, -1, NULL, NULL, NODE), 0);
    decode_ok(&b, &m);
    assert_null(m.tags);
    assert_null(m.exclude_tags);
    acr_msg_free(&m);
    acr_buf_free(&b);
}

/* acrida_spawning_complete (master -> acrida workers at the end of a ramp): a builtin type, a
 * round trip, and user_count required and >= 0. */
static void ramp_done_frame(acr_buf_t *b, int kind)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_str_with_body(&pk, "acrida_spawning_complete", 24);
    if (kind == 0) {
        msgpack_pack_map(&pk, 0); /* no user_count */
    } else {
        msgpack_pack_map(&pk, 1);
        msgpack_pack_str_with_body(&pk, "user_count", 10);
        if (kind == 1)
            msgpack_pack_int64(&pk, -3);
        else
            msgpack_pack_str_with_body(&pk, "7", 1);
    }
    msgpack_pack_str_with_body(&pk, NODE, strlen(NODE));
    acr_buf_reset(b);
    assert_int_equal(acr_buf_append(b, sb.data, sb.size), 0);
    msgpack_sbuffer_destroy(&sb);
}

static void test_ramp_done(void **state)
{
    (void)state;
    acr_buf_t b = {0};
    acr_msg_t m;
    char err[256];
    assert_true(acr_msg_type_is_builtin("acrida_spawning_complete"));
    assert_int_equal(acr_msg_encode_ramp_done(&b, 12, NODE), 0);
    decode_ok(&b, &m);
    assert_int_equal(m.type, ACR_MSG_RAMP_DONE);
    assert_int_equal(m.user_count, 12);
    acr_msg_free(&m);
    for (int kind = 0; kind < 3; kind++) {
        ramp_done_frame(&b, kind);
        assert_true(acr_msg_decode(b.data, b.len, &m, err, sizeof(err)) < 0);
        assert_non_null(strstr(err, "user_count"));
    }
    acr_buf_free(&b);
}

/* Absent, nil and empty lists are no filter; the limits themselves are accepted. */
static void test_spawn_tags_accepted(void **state)
{
    (void)state;
    char *longest = malloc(ACR_MSG_TAG_MAX);
    assert_non_null(longest);
    memset(longest, 't', ACR_MSG_TAG_MAX);
    const struct {
        struct tag_value tags, excl;
        size_t ntags, nexcl;
    } cases[] = {
        {{TAGS_ABSENT, 0, NULL, 0}, {TAGS_ABSENT, 0, NULL, 0}, 0, 0},
        {{TAGS_NIL, 0, NULL, 0}, {TAGS_NIL, 0, NULL, 0}, 0, 0},
        {{TAGS_LIST, 0, NULL, 0}, {TAGS_LIST, 0, NULL, 0}, 0, 0},
        {{TAGS_LIST, ACR_MSG_MAX_TAGS, "a", 1}, {TAGS_ABSENT, 0, NULL, 0}, ACR_MSG_MAX_TAGS, 0},
        {{TAGS_ABSENT, 0, NULL, 0}, {TAGS_LIST, 1, longest, ACR_MSG_TAG_MAX}, 0, 1},
    };
    for (size_t i = 0; i < ACR_ARRAY_SIZE(cases); i++) {
        msgpack_sbuffer sb;
        build_spawn(&sb, &cases[i].tags, &cases[i].excl);
        acr_buf_t b = {.data = sb.data, .len = sb.size};
        acr_msg_t m;
        decode_ok(&b, &m);
        assert_int_equal(m.type, ACR_MSG_SPAWN);
        if (list_len(m.tags) != cases[i].ntags || list_len(m.exclude_tags) != cases[i].nexcl)
            fail_msg("case %zu: %zu tags, %zu excluded", i, list_len(m.tags),
                     list_len(m.exclude_tags));
        if (cases[i].nexcl) assert_int_equal(strlen(m.exclude_tags[0]), ACR_MSG_TAG_MAX);
        acr_msg_free(&m);
        msgpack_sbuffer_destroy(&sb);
    }
    free(longest);
}

/* Each refused with the key and the reason, nothing leaked (the sanitizer build checks), also when
 * the good `tags` were already decoded and `exclude_tags` is the bad one. */
static void test_spawn_tags_refused(void **state)
{
    (void)state;
    char *too_long = malloc(ACR_MSG_TAG_MAX + 1);
    assert_non_null(too_long);
    memset(too_long, 't', ACR_MSG_TAG_MAX + 1);
    const struct tag_value good = {TAGS_LIST, 2, "ok", 2};
    const struct {
        const char *name;
        struct tag_value tags, excl;
        const char *reason;
    } cases[] = {
        {"too many tags",
         {TAGS_LIST, ACR_MSG_MAX_TAGS + 1, "a", 1},
         good,
         "'parsed_options.tags' has more than 1000 tags"},
        {"too many excluded",
         good,
         {TAGS_LIST, ACR_MSG_MAX_TAGS + 1, "a", 1},
         "'parsed_options.exclude_tags' has more than 1000 tags"},
        {"tag too long",
         {TAGS_LIST, 1, too_long, ACR_MSG_TAG_MAX + 1},
         good,
         "'parsed_options.tags' has a tag of 1025 bytes (1 to 1024)"},
        {"empty tag",
         good,
         {TAGS_LIST, 1, "", 0},
         "'parsed_options.exclude_tags' has a tag of 0 bytes (1 to 1024)"},
        {"not UTF-8", {TAGS_LIST, 1, "a\xff\xfe", 3}, good, "'tags' is not valid UTF-8"},
        {"overlong UTF-8",
         good,
         {TAGS_LIST, 1, "\xc0\xaf", 2},
         "'exclude_tags' is not valid UTF-8"},
        {"NUL byte", {TAGS_LIST, 1, "a\0b", 3}, good, "'tags' contains a NUL byte"},
        {"a string", {TAGS_STRING, 0, NULL, 0}, good, "'parsed_options.tags' is not an array"},
        {"excluded a string",
         good,
         {TAGS_STRING, 0, NULL, 0},
         "'parsed_options.exclude_tags' is not an array"},
        {"an integer tag", {TAGS_INTEGER, 0, NULL, 0}, good, "'tags' is not a string"},
        {"an integer excluded", good, {TAGS_INTEGER, 0, NULL, 0}, "'exclude_tags' is not a string"},
    };
    for (size_t i = 0; i < ACR_ARRAY_SIZE(cases); i++) {
        msgpack_sbuffer sb;
        build_spawn(&sb, &cases[i].tags, &cases[i].excl);
        expect_rejected(cases[i].name, sb.data, sb.size, cases[i].reason);
        msgpack_sbuffer_destroy(&sb);
    }
    free(too_long);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heartbeat_bytes),
        cmocka_unit_test(test_nil_and_ack_bytes),
        cmocka_unit_test(test_client_ready_ack_roundtrip),
        cmocka_unit_test(test_heartbeat_roundtrip),
        cmocka_unit_test(test_spawn_roundtrip),
        cmocka_unit_test(test_spawn_tags_roundtrip),
        cmocka_unit_test(test_ramp_done),
        cmocka_unit_test(test_spawn_tags_accepted),
        cmocka_unit_test(test_spawn_tags_refused),
        cmocka_unit_test(test_spawning_complete_exception_roundtrip),
        cmocka_unit_test(test_nil_types_and_legacy),
        cmocka_unit_test(test_scenario_and_custom),
        cmocka_unit_test(test_locust_bucket_rounding),
        cmocka_unit_test(test_stats_roundtrip_lossless),
        cmocka_unit_test(test_stats_decode_reuse),
        cmocka_unit_test(test_locust_worker_stats_frame),
        cmocka_unit_test(test_error_key),
        cmocka_unit_test(test_malformed_frames),
        cmocka_unit_test(test_huge_frame),
        cmocka_unit_test(test_too_many_entries),
        cmocka_unit_test(test_mutations_do_not_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
