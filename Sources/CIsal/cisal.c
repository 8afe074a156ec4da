#include "cisal.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>

#if defined(__has_include)
#if __has_include(<isa-l/igzip_lib.h>)
#include <isa-l/igzip_lib.h>
#define LIFEBOAT_HAVE_ISAL_HEADERS 1
#endif
#endif

#ifdef LIFEBOAT_HAVE_ISAL_HEADERS

// Resolved from libisal.so.2 once; the struct layout comes from the headers of the same ABI
// (soname 2).
static void (*p_inflate_init)(struct inflate_state *);
static void (*p_inflate_reset)(struct inflate_state *);
static int (*p_inflate)(struct inflate_state *);
static const char *unavailable = "ISA-L was not loaded";
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void) {
    // LIFEBOAT_ISAL_LIBRARY lets tests point at a missing library to exercise the fallback.
    const char *name = getenv("LIFEBOAT_ISAL_LIBRARY");
    void *handle = dlopen(name && *name ? name : "libisal.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        unavailable = "libisal.so.2 could not be loaded (install libisal2)";
        return;
    }
    p_inflate_init = (void (*)(struct inflate_state *))dlsym(handle, "isal_inflate_init");
    p_inflate_reset = (void (*)(struct inflate_state *))dlsym(handle, "isal_inflate_reset");
    p_inflate = (int (*)(struct inflate_state *))dlsym(handle, "isal_inflate");
    if (!p_inflate_init || !p_inflate_reset || !p_inflate) {
        p_inflate = NULL;
        unavailable = "libisal.so.2 lacks isal_inflate";
        return;
    }
    unavailable = NULL;
}

int lifeboat_isal_available(void) {
    pthread_once(&once, load);
    return unavailable == NULL;
}

const char *lifeboat_isal_unavailable_reason(void) {
    pthread_once(&once, load);
    return unavailable;
}

struct lifeboat_isal {
    struct inflate_state state;
};

lifeboat_isal *lifeboat_isal_new(void) {
    if (!lifeboat_isal_available()) return NULL;
    lifeboat_isal *stream = malloc(sizeof *stream);
    if (!stream) return NULL;
    p_inflate_init(&stream->state);
    stream->state.crc_flag = ISAL_GZIP;
    return stream;
}

void lifeboat_isal_free(lifeboat_isal *stream) { free(stream); }

void lifeboat_isal_reset(lifeboat_isal *stream) {
    p_inflate_reset(&stream->state);
    stream->state.crc_flag = ISAL_GZIP;
}

int lifeboat_isal_inflate(lifeboat_isal *stream, const uint8_t *in, uint32_t in_len, uint8_t *out, uint32_t out_len,
                          uint32_t *consumed, uint32_t *produced, int *finished) {
    struct inflate_state *s = &stream->state;
    s->next_in = (uint8_t *)in;
    s->avail_in = in_len;
    s->next_out = out;
    s->avail_out = out_len;
    int rc = p_inflate(s);
    *consumed = in_len - s->avail_in;
    *produced = out_len - s->avail_out;
    *finished = s->block_state == ISAL_BLOCK_FINISH;
    s->next_in = NULL;
    s->next_out = NULL;
    return rc;
}

const char *lifeboat_isal_describe(int code) {
    switch (code) {
    case ISAL_INVALID_BLOCK: return "invalid deflate block";
    case ISAL_INVALID_SYMBOL: return "invalid deflate symbol";
    case ISAL_INVALID_LOOKBACK: return "invalid distance too far back";
    case ISAL_INVALID_WRAPPER: return "invalid gzip header";
    case ISAL_UNSUPPORTED_METHOD: return "unknown compression method";
    case ISAL_INCORRECT_CHECKSUM: return "incorrect data check (CRC-32 or length)";
    case ISAL_NEED_DICT: return "a preset dictionary is needed";
    default: return "ISA-L inflate error";
    }
}

#else  // built without ISA-L's headers: always unavailable, zlib is used.

int lifeboat_isal_available(void) { return 0; }
const char *lifeboat_isal_unavailable_reason(void) {
    return "built without ISA-L (install libisal-dev and rebuild)";
}
lifeboat_isal *lifeboat_isal_new(void) { return NULL; }
void lifeboat_isal_free(lifeboat_isal *stream) { (void)stream; }
void lifeboat_isal_reset(lifeboat_isal *stream) { (void)stream; }
int lifeboat_isal_inflate(lifeboat_isal *stream, const uint8_t *in, uint32_t in_len, uint8_t *out, uint32_t out_len,
                          uint32_t *consumed, uint32_t *produced, int *finished) {
    (void)stream; (void)in; (void)in_len; (void)out; (void)out_len;
    *consumed = 0;
    *produced = 0;
    *finished = 0;
    return -1;
}
const char *lifeboat_isal_describe(int code) { (void)code; return "ISA-L is not available"; }

#endif
