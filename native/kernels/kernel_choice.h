// How the CPU kernels choose among their instruction-set tables (q8_gemm.cpp, cpu_conv.cpp,
// cpu_attention.cpp): the best table this CPU runs, unless an environment variable names one (a
// switch for same-run comparisons). Each table has a `name`; each candidate is a getter that
// returns null where this build or this CPU lacks the table's instructions.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <cstring>

namespace jsd {

// The value of the environment variable when it names something (set and not empty), else null.
inline const char* forced_name(const char* variable) {
  const char* name = std::getenv(variable);
  return name != nullptr && *name != 0 ? name : nullptr;
}

// The first of the candidates (best first) this CPU runs, or where name is not null the one
// called name; null when none is.
template <class Table, std::size_t N>
const Table* first_table(const Table* (*const (&candidates)[N])(), const char* name) {
  for (auto get : candidates) {
    const Table* t = get();
    if (t != nullptr && (name == nullptr || std::strcmp(name, t->name) == 0)) return t;
  }
  return nullptr;
}

}  // namespace jsd
