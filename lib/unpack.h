/* unpack.h - decompress an update file in a thread of its own (docs/payloads.md,
 * "One read"): the thread reads the file once, hashes every byte of it
 * (sha256) and decompresses it into a small ring of buffers; the caller
 * parses the tar stream out of the ring and writes the files. On two cores
 * decompression and hashing of the file overlap the member hashing and the
 * file writes, as in `zstd -dc | tar -x`. With one CPU (affinity) there is no
 * thread: each piece is produced when asked for (a thread only costs there).
 * Memory: SI_UNPACK_SLOTS buffers of SI_UNPACK_SLOT bytes. */
#ifndef SI_UNPACK_H
#define SI_UNPACK_H

#include <stddef.h>
#include <stdint.h>

#include "result.h"

#define SI_UNPACK_SLOTS 4
#define SI_UNPACK_SLOT (256 * 1024)

typedef struct si_unpack si_unpack;

/* Start on fd (read from its current offset; the caller keeps it open until
 * si_unpack_end). what names the file in errors. */
si_result si_unpack_start(int fd, const char *what, si_unpack **out, si_err *err);
/* The next piece of the decompressed stream (*len 0 at its end), valid until
 * the next call; *in_done: bytes of the file read so far. */
si_result si_unpack_next(si_unpack *u, const void **buf, size_t *len, uint64_t *in_done,
                         si_err *err);
/* Stop the thread (reading what is left of the file when it reached the end
 * of the stream) and free u; sha and size (may be NULL) of the whole file
 * when the stream was read to its end. */
si_result si_unpack_end(si_unpack *u, uint8_t sha[32], uint64_t *size, si_err *err);

#endif
