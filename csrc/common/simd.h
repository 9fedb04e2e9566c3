// IVOS_AVX2_CLONES compiles a hot function twice, for AVX2 and for the x86-64 baseline (SSE2),
// and the loader picks one by the CPU (GCC's target_clones: an ifunc resolver), so the module
// still runs on any x86-64 while the vectorised loops use 8 lanes where they can. FMA is NOT
// enabled ("avx2" alone does not imply it): both clones do the same float operations in the
// same order, so results do not depend on the CPU.
#pragma once

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define IVOS_AVX2_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define IVOS_AVX2_CLONES
#endif
