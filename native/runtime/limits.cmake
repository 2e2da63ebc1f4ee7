# Turns native/runtime/limits.json (the limits on what a caller may ask of the engine, the one
# definition TypeScript reads too) into a C++ header at configure time:
#   jsd_generate_limits(<json> <header>)
# declares, in namespace jsd::limits, `inline constexpr int64_t k<Name> = <value>;` for each
# entry (imageSideMax -> kImageSideMax). Entries must be positive integers. The header is rewritten
# only when its text changes. string(JSON) needs CMake 3.19.
include("${CMAKE_CURRENT_LIST_DIR}/../constant_name.cmake")
function(jsd_generate_limits json header)
  file(READ "${json}" text)
  set(out "// The limits on what a caller may ask of the engine (lib/limits.ts reads the same numbers).\n")
  string(APPEND out "// Generated from native/runtime/limits.json by CMakeLists.txt (native/runtime/limits.cmake); do not edit.\n")
  string(APPEND out "#pragma once\n\n#include <cstdint>\n\nnamespace jsd::limits {\n\n")
  string(JSON count LENGTH "${text}")
  math(EXPR last "${count} - 1")
  foreach(i RANGE ${last})
    string(JSON name MEMBER "${text}" ${i})
    if(name STREQUAL "$comment")
      continue()
    endif()
    string(JSON value GET "${text}" "${name}")
    if(NOT name MATCHES "^[a-z][A-Za-z0-9]*$" OR NOT value MATCHES "^[1-9][0-9]*$")
      message(FATAL_ERROR "${json}: '${name}' must be a camelCase name with a positive integer, not '${value}'")
    endif()
    jsd_constant_name(constant "${name}")
    string(APPEND out "inline constexpr int64_t ${constant} = ${value};\n")
  endforeach()
  string(APPEND out "\n}  // namespace jsd::limits\n")
  file(CONFIGURE OUTPUT "${header}" CONTENT "${out}" @ONLY)
endfunction()
