/*
 * Scenario bundles: the scenario file, the Lua modules it requires from its directory and the
 * data files it declares (acrida.files), or every file under --scenario-dir, as one hashed unit
 * that the master ships to its workers (proto/PROTOCOL.md, "scenario" and "acrida_bundle_part").
 *
 * The canonical encoding ("blob") of a bundle is, with big-endian integers:
 *
 *     "acrida-bundle-1\n" | u32 file count | per file, sorted by path (bytewise, no duplicates):
 *     u32 path length | path | u64 content length | content
 *
 * and the bundle's hash is the sha256 of the blob, so one set of (path, content) pairs has
 * exactly one hash. Paths are relative ("lib/util.lua"): 1 to ACR_BUNDLE_PATH_MAX bytes of
 * UTF-8, '/'-separated components that are neither empty, "." nor "..", no NUL, no control
 * character, no backslash. The decoder checks all of it again (the blob comes from the network).
 *
 * A worker reassembles a shipped blob from parts (acr_bundle_rx_t), told the total size and the
 * hash up front; it refuses parts out of order, bytes beyond the size and a blob whose hash
 * differs, before anything of it is used, and extracts the verified files into a fresh private
 * directory (acr_bundle_extract).
 *
 * Error convention: 0 or a negative errno; -EINVAL (bad input) with a reason naming the file in
 * the caller's buffer, -EFBIG (over a size limit), -ENOMEM, or the errno of a failed file call.
 */
#ifndef ACR_BUNDLE_H
#define ACR_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ACR_BUNDLE_PATH_MAX 1024        /**< bytes of a path in a bundle */
#define ACR_BUNDLE_FILES_MAX 100000     /**< files in a bundle */
#define ACR_BUNDLE_PART_SIZE (4u << 20) /**< bytes of blob per acrida_bundle_part */
/** The largest blob a worker accepts (the master's --max-bundle-size is at most this too). */
#define ACR_BUNDLE_SIZE_MAX ((size_t)INT32_MAX)

typedef struct acr_bundle_file {
    char *path; /**< relative, checked (see above) */
    char *data; /**< the content (malloc'ed; NUL-terminated for convenience) */
    size_t len;
} acr_bundle_file_t;

typedef struct acr_bundle {
    acr_bundle_file_t *files; /**< sorted by path once finished or decoded */
    size_t nfiles, cap;
    size_t content_bytes; /**< sum of the files' lengths */
    char *blob;           /**< the canonical encoding (after acr_bundle_finish) */
    size_t blob_len;
    char sha256[65]; /**< lowercase hex of sha256(blob); "" before finish */
} acr_bundle_t;

/** Whether @path (@len bytes) may name a file in a bundle; the reason in @err otherwise. */
bool acr_bundle_path_ok(const char *path, size_t len, char *err, size_t errlen);

/**
 * Adds the file @rel (a bundle path, checked) read from @root/@rel. The file must be a regular
 * file whose real path (symlinks resolved) lies under @root's real path. Adding a path twice
 * keeps one copy. @max bounds the bundle's content bytes: -EFBIG beyond it.
 */
int acr_bundle_add_file(acr_bundle_t *b, const char *root, const char *rel, size_t max, char *err,
                        size_t errlen);
/** Adds every regular file under @root (recursively; hidden files included; symlinks whose
 *  target escapes @root are an error, other symlinks to files are followed). */
int acr_bundle_add_dir(acr_bundle_t *b, const char *root, size_t max, char *err, size_t errlen);
/** Whether @rel was added. */
bool acr_bundle_has(const acr_bundle_t *b, const char *rel);
/** The file @rel, or NULL. */
const acr_bundle_file_t *acr_bundle_get(const acr_bundle_t *b, const char *rel);

/** Sorts the files and builds the blob and its hash. */
int acr_bundle_finish(acr_bundle_t *b, char *err, size_t errlen);

/** Up to @n of the largest files (for the size error), largest first, into @out. Returns how
 *  many. */
size_t acr_bundle_largest(const acr_bundle_t *b, const acr_bundle_file_t **out, size_t n);

/**
 * Checks that @blob hashes to @sha256 (64 hex) and decodes it into @out (zeroed first; the blob
 * is copied into out->blob): every path checked, sorted and unique, every length within the blob,
 * no trailing byte.
 */
int acr_bundle_decode(const void *blob, size_t len, const char *sha256, acr_bundle_t *out,
                      char *err, size_t errlen);

/** $TMPDIR, or /tmp when it is unset or empty: where bundles are extracted. */
const char *acr_bundle_tmpdir(void);
/**
 * Writes the files of @b into a fresh directory (mkdtemp, mode 0700) under acr_bundle_tmpdir(),
 * named acrida-bundle-<pid>-XXXXXX after the calling process: *@dir_out (malloc'ed) is its path.
 * Nothing is written outside it; on failure it is removed.
 */
int acr_bundle_extract(const acr_bundle_t *b, char **dir_out, char *err, size_t errlen);
/** Removes the directory @dir and everything in it (not following symlinks). */
int acr_bundle_remove_dir(const char *dir);
/**
 * Removes the extraction directories that processes which died without cleaning up left in @tmp:
 * entries named exactly acrida-bundle-<pid>-XXXXXX that are directories (lstat: a symlink is never
 * followed) owned by the effective uid, whose pid is not this process and does not exist
 * (kill(pid, 0) fails with ESRCH). *@removed and *@failed count the directories. Returns 0, or a
 * negative errno when @tmp cannot be read.
 */
int acr_bundle_remove_stale(const char *tmp, size_t *removed, size_t *failed);

void acr_bundle_free(acr_bundle_t *b);

/**
 * Finds the module names of `require "x"`, `require 'x'`, `require("x")`, `require('x')` (and
 * with [[x]]) in Lua source @src and calls @fn for each (comments are not told apart from code:
 * a name found in a comment only ships a file that exists anyway).
 */
void acr_bundle_scan_requires(const char *src, size_t len,
                              void (*fn)(const char *name, size_t n, void *ud), void *ud);

/** The bundle path of module @name ("a.b" -> "a/b.lua", else "a/b/init.lua") if that file exists
 *  under @root, into @out; false when neither does or the name cannot be a bundle path. */
bool acr_bundle_module_path(const char *root, const char *name, char *out, size_t outlen);

/** Reassembly of a blob from parts (proto/PROTOCOL.md, acrida_bundle_part). */
typedef struct acr_bundle_rx {
    char sha256[65];
    size_t total, got;
    uint32_t parts, next;
    char *buf;
} acr_bundle_rx_t;

/** Starts a reassembly of @total bytes in @parts parts hashing to @sha256 (64 hex); drops any
 *  previous one. -EINVAL when the numbers disagree, -EFBIG when @total > ACR_BUNDLE_SIZE_MAX. */
int acr_bundle_rx_begin(acr_bundle_rx_t *rx, const char *sha256, size_t total, uint32_t parts,
                        char *err, size_t errlen);
/** Adds part @index: 0 while more parts are due, 1 when the blob is complete (then decode it
 *  from rx->buf / rx->total), -EINVAL (wrong hash, out of order, beyond the size; the reassembly
 *  is dropped). */
int acr_bundle_rx_part(acr_bundle_rx_t *rx, const char *sha256, uint32_t index, const void *data,
                       size_t len, char *err, size_t errlen);
/** Whether a reassembly is in progress. */
bool acr_bundle_rx_active(const acr_bundle_rx_t *rx);
void acr_bundle_rx_reset(acr_bundle_rx_t *rx);

/** sha256 of @p as lowercase hex into @out ("" if OpenSSL fails). */
void acr_bundle_sha256_hex(const void *p, size_t n, char out[65]);

#endif
