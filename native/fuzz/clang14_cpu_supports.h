// Force-included into native/runtime/system_info.cpp in sanitizer builds with clang < 15, which rejects
// __builtin_cpu_supports("f16c"): the run-time CPU feature probe then reports no features.
#pragma once
#define __builtin_cpu_supports(feature) 0
