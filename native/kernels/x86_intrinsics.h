// <immintrin.h> for the kernels' x86 code (GNU-compatible compilers on x86-64), without gcc 12's
// false uninitialized-variable warnings from its AVX-512 headers (gcc bug 105593).
#pragma once

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#if defined(__clang__)
#include <immintrin.h>
#else
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif
#endif
