#ifndef LIFEBOAT_CISAL_H
#define LIFEBOAT_CISAL_H
#include <stdint.h>

// ISA-L's gzip inflate (libisal.so.2), loaded at run time with dlopen so that Lifeboat builds,
// links and runs where ISA-L is absent; callers fall back to zlib then.

/// One gzip inflate stream; opaque.
typedef struct lifeboat_isal lifeboat_isal;

/// 1 when libisal.so.2 loaded and passed the self-test; 0 otherwise. No ISA-L header is needed
/// at build time. Loads the library on the first call; thread-safe.
int lifeboat_isal_available(void);

/// Why ISA-L is unavailable (a static string), or NULL when it is available.
const char *lifeboat_isal_unavailable_reason(void);

/// A new stream ready for a gzip member, or NULL (unavailable, or out of memory).
lifeboat_isal *lifeboat_isal_new(void);
void lifeboat_isal_free(lifeboat_isal *stream);

/// Prepares for the next gzip member.
void lifeboat_isal_reset(lifeboat_isal *stream);

/// Inflates from `in` into `out`, parsing the gzip header and checking the member's CRC-32 and
/// ISIZE. Sets `consumed`, `produced` and `finished` (1 once the member's trailer was checked;
/// input after it is left unconsumed). Returns ISA-L's code: 0 (ISAL_DECOMP_OK) or negative on
/// corrupt data.
int lifeboat_isal_inflate(lifeboat_isal *stream, const uint8_t *in, uint32_t in_len, uint8_t *out, uint32_t out_len,
                          uint32_t *consumed, uint32_t *produced, int *finished);

/// A short description of an ISA-L return code.
const char *lifeboat_isal_describe(int code);
#endif
