#ifndef LIFEBOAT_CZLIB_SHIM_H
#define LIFEBOAT_CZLIB_SHIM_H
#include <zlib.h>

// zlib's init functions are macros that pass ZLIB_VERSION and sizeof(z_stream); Swift cannot call
// macros, so these inline wrappers do it.
static inline int lifeboat_inflateInit2(z_streamp strm, int windowBits) {
    return inflateInit2(strm, windowBits);
}

static inline int lifeboat_deflateInit2(z_streamp strm, int level, int windowBits, int memLevel) {
    return deflateInit2(strm, level, Z_DEFLATED, windowBits, memLevel, Z_DEFAULT_STRATEGY);
}
#endif
