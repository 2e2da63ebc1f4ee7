// Default sanitizer options of the harnesses, so that running a harness binary by hand behaves
// like scripts/fuzz.mjs: stack traces for UBSan reports, halt on the first report except the
// known upstream ones listed in ubsan.supp. UBSAN_OPTIONS in the environment still wins.
#pragma once

#ifndef JSD_FUZZ_UBSAN_SUPP
#error "JSD_FUZZ_UBSAN_SUPP (native/fuzz/ubsan.supp) must be defined"
#endif

extern "C" const char* __ubsan_default_options() {
  return "print_stacktrace=1:halt_on_error=1:suppressions=" JSD_FUZZ_UBSAN_SUPP;
}
