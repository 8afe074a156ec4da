#include "cisal.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

// ISA-L's inflate ABI for soname 2 (libisal.so.2), declared here rather than taken from
// <isa-l/igzip_lib.h>: a binary built where libisal-dev is absent must still use ISA-L on a
// host that has libisal2 (packagers build once and deploy everywhere). The layout below is
// igzip_lib.h's `struct inflate_state` of ISA-L 2.x, which ISA-L changes only with its soname;
// when the header is present at build time the layout is checked against it at compile time,
// and at load the library must pass a self-test (known gzip member in, known bytes out, nothing
// written past the declared struct) before it is used.

enum { LB_DECODE_LONG_BITS = 12, LB_DECODE_SHORT_BITS = 10 };
enum { LB_L_REM = 21 - LB_DECODE_LONG_BITS, LB_S_REM = 15 - LB_DECODE_SHORT_BITS };
enum {
    LB_L_DUP = (1 << LB_L_REM) - (LB_L_REM + 1),
    LB_S_DUP = (1 << LB_S_REM) - (LB_S_REM + 1),
    LB_L_UNUSED = (1 << LB_L_REM) - (1 << (LB_L_REM / 2)) - (1 << ((LB_L_REM + 1) / 2)) + 1,
    LB_S_UNUSED = (1 << LB_S_REM) - (1 << (LB_S_REM / 2)) - (1 << ((LB_S_REM + 1) / 2)) + 1,
    LB_L_SIZE = 257 + 29 + LB_L_DUP + LB_L_UNUSED,
    LB_S_SIZE = 30 + LB_S_DUP + LB_S_UNUSED,
    LB_L_ALIGNED = LB_L_SIZE + (-LB_L_SIZE & 0xf),
    LB_S_ALIGNED = LB_S_SIZE + (-LB_S_SIZE & 0xf),
    LB_MAX_HDR_SIZE = 328,
    LB_HIST_SIZE = 32 * 1024,
    LB_LOOK_AHEAD = (258 + 31) & ~31,
    LB_GZIP = 1,
    LB_BLOCK_NEW_HDR = 0,
    LB_BLOCK_FINISH = 5,
};

struct lb_huff_code_large {
    uint32_t short_code_lookup[1 << LB_DECODE_LONG_BITS];
    uint16_t long_code_lookup[LB_L_ALIGNED];
};

struct lb_huff_code_small {
    uint16_t short_code_lookup[1 << LB_DECODE_SHORT_BITS];
    uint16_t long_code_lookup[LB_S_ALIGNED];
};

struct lb_inflate_state {
    uint8_t *next_out;
    uint32_t avail_out;
    uint32_t total_out;
    uint8_t *next_in;
    uint64_t read_in;
    uint32_t avail_in;
    int32_t read_in_length;
    struct lb_huff_code_large lit_huff_code;
    struct lb_huff_code_small dist_huff_code;
    int block_state; // enum isal_block_state
    uint32_t dict_length;
    uint32_t bfinal;
    uint32_t crc_flag;
    uint32_t crc;
    uint32_t hist_bits;
    union {
        int32_t type0_block_len;
        int32_t count;
        uint32_t dict_id;
    };
    int32_t write_overflow_lits;
    int32_t write_overflow_len;
    int32_t copy_overflow_length;
    int32_t copy_overflow_distance;
    int16_t wrapper_flag;
    int16_t tmp_in_size;
    int32_t tmp_out_valid;
    int32_t tmp_out_processed;
    uint8_t tmp_in_buffer[LB_MAX_HDR_SIZE];
    uint8_t tmp_out_buffer[2 * LB_HIST_SIZE + LB_LOOK_AHEAD];
};

#if defined(__has_include) && !defined(LIFEBOAT_IGNORE_ISAL_HEADERS)
#if __has_include(<isa-l/igzip_lib.h>)
#include <isa-l/igzip_lib.h>
// The declaration above is ISA-L's, field for field.
#define LB_SAME(field) _Static_assert(offsetof(struct lb_inflate_state, field) == offsetof(struct inflate_state, field), \
                                      "ISA-L inflate_state." #field " moved: update cisal.c")
_Static_assert(sizeof(struct lb_inflate_state) == sizeof(struct inflate_state), "ISA-L inflate_state changed size: update cisal.c");
LB_SAME(next_out); LB_SAME(avail_out); LB_SAME(next_in); LB_SAME(avail_in); LB_SAME(block_state);
LB_SAME(crc_flag); LB_SAME(crc); LB_SAME(tmp_in_buffer); LB_SAME(tmp_out_buffer);
_Static_assert(LB_GZIP == ISAL_GZIP && LB_BLOCK_FINISH == ISAL_BLOCK_FINISH && LB_BLOCK_NEW_HDR == ISAL_BLOCK_NEW_HDR, "ISA-L constants changed");
#endif
#endif

static void (*p_inflate_init)(struct lb_inflate_state *);
static void (*p_inflate_reset)(struct lb_inflate_state *);
static int (*p_inflate)(struct lb_inflate_state *);
static const char *unavailable = "ISA-L was not loaded";
static pthread_once_t once = PTHREAD_ONCE_INIT;

// A gzip member of "lifeboat isal self-test: the quick brown fox jumps over the lazy dog
// 0123456789" three times (234 bytes), made by Python's gzip with mtime 0.
static const uint8_t self_test_gz[] = {
    0x1f,0x8b,0x08,0x00,0x00,0x00,0x00,0x00,0x02,0x03,0xcd,0xcc,0x69,0x0e,0x40,0x30,0x10,0x06,0xd0,0xab,0x7c,0x17,0x90,0xd8,
    0xb7,0xdb,0x14,0x53,0xca,0x30,0x68,0x6b,0x3b,0xbd,0xc4,0x29,0xfc,0x7e,0xc9,0x63,0xa3,0xa9,0x11,0xe5,0x60,0xac,0x62,0x58,
    0x62,0x1d,0x38,0xb2,0xae,0x86,0x1b,0x08,0x9b,0x37,0xed,0x84,0x66,0x97,0x73,0x81,0x96,0x0b,0xa3,0x9f,0x57,0x0b,0x39,0x68,
    0xff,0x98,0xd5,0x73,0xa3,0x93,0x1e,0x61,0x14,0x27,0x69,0x96,0x17,0x65,0xc5,0xbf,0xee,0x5e,0x92,0xae,0x87,0x1f,0xed,0x00,
    0x00,0x00,
};
static const char self_test_text[] = "lifeboat isal self-test: the quick brown fox jumps over the lazy dog 0123456789";

// The library's inflate, run on the known member inside a state followed by a guard zone: the
// declared layout is right when the output is right, the member is recognised as finished with
// its CRC checked, and nothing was written past the struct.
static int self_test(void) {
    enum { guard = 4096 };
    size_t size = sizeof(struct lb_inflate_state) + guard;
    uint8_t *memory = malloc(size);
    if (!memory) return 0;
    memset(memory, 0xA5, size);
    struct lb_inflate_state *s = (struct lb_inflate_state *)memory;
    p_inflate_init(s);
    s->crc_flag = LB_GZIP;
    uint8_t out[512];
    s->next_in = (uint8_t *)self_test_gz;
    s->avail_in = sizeof self_test_gz;
    s->next_out = out;
    s->avail_out = sizeof out;
    int rc = p_inflate(s);
    size_t text = strlen(self_test_text);
    int ok = rc == 0 && s->block_state == LB_BLOCK_FINISH && s->avail_in == 0 && sizeof out - s->avail_out == 3 * text;
    for (int i = 0; ok && i < 3; i++) ok = memcmp(out + i * text, self_test_text, text) == 0;
    for (size_t i = sizeof(struct lb_inflate_state); ok && i < size; i++) ok = memory[i] == 0xA5;
    free(memory);
    return ok;
}

static void load(void) {
    // LIFEBOAT_ISAL_LIBRARY lets tests point at a missing library to exercise the fallback.
    const char *name = getenv("LIFEBOAT_ISAL_LIBRARY");
    void *handle = dlopen(name && *name ? name : "libisal.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        unavailable = "libisal.so.2 could not be loaded (install libisal2)";
        return;
    }
    p_inflate_init = (void (*)(struct lb_inflate_state *))dlsym(handle, "isal_inflate_init");
    p_inflate_reset = (void (*)(struct lb_inflate_state *))dlsym(handle, "isal_inflate_reset");
    p_inflate = (int (*)(struct lb_inflate_state *))dlsym(handle, "isal_inflate");
    if (!p_inflate_init || !p_inflate_reset || !p_inflate) {
        p_inflate = NULL;
        unavailable = "libisal.so.2 lacks isal_inflate";
        return;
    }
    if (!self_test()) {
        p_inflate = NULL;
        unavailable = "libisal.so.2 failed Lifeboat's self-test (an ISA-L ABI this build does not know)";
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
    struct lb_inflate_state state;
};

lifeboat_isal *lifeboat_isal_new(void) {
    if (!lifeboat_isal_available()) return NULL;
    lifeboat_isal *stream = malloc(sizeof *stream);
    if (!stream) return NULL;
    p_inflate_init(&stream->state);
    stream->state.crc_flag = LB_GZIP;
    return stream;
}

void lifeboat_isal_free(lifeboat_isal *stream) { free(stream); }

void lifeboat_isal_reset(lifeboat_isal *stream) {
    p_inflate_reset(&stream->state);
    stream->state.crc_flag = LB_GZIP;
}

int lifeboat_isal_inflate(lifeboat_isal *stream, const uint8_t *in, uint32_t in_len, uint8_t *out, uint32_t out_len,
                          uint32_t *consumed, uint32_t *produced, int *finished) {
    struct lb_inflate_state *s = &stream->state;
    s->next_in = (uint8_t *)in;
    s->avail_in = in_len;
    s->next_out = out;
    s->avail_out = out_len;
    int rc = p_inflate(s);
    *consumed = in_len - s->avail_in;
    *produced = out_len - s->avail_out;
    *finished = s->block_state == LB_BLOCK_FINISH;
    s->next_in = NULL;
    s->next_out = NULL;
    return rc;
}

const char *lifeboat_isal_describe(int code) {
    // ISA-L's return codes (igzip_lib.h).
    switch (code) {
    case -1: return "invalid deflate block";
    case -2: return "invalid deflate symbol";
    case -3: return "invalid distance too far back";
    case -4: return "invalid gzip header";
    case -5: return "unknown compression method";
    case -6: return "incorrect data check (CRC-32 or length)";
    case 6: return "a preset dictionary is needed";
    default: return "ISA-L inflate error";
    }
}
