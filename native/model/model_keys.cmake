# Turns native/model/model_keys.json (the model file's key names and format version, the one
# definition TypeScript reads too) into a C++ header at configure time:
#   jsd_generate_model_keys(<json> <header>)
# declares, in namespace jsd, kModelFormatVersion, kModelArchitecture (the value of the key
# keys::kArchitecture), keys::k<Name> for each entry of "keys" (formatVersion -> keys::kFormatVersion),
# keys::<section>::<field> for each section field ("jsd.<section>.<field>") and keys::<section>::kFields
# (all of them). The header is rewritten only when its text changes, so a reconfigure alone recompiles nothing.
# string(JSON) needs CMake 3.19.
include("${CMAKE_CURRENT_LIST_DIR}/../constant_name.cmake")

function(_jsd_model_keys_check value pattern what json)
  if(NOT value MATCHES "${pattern}")
    message(FATAL_ERROR "${json}: ${what} '${value}' must match ${pattern}")
  endif()
endfunction()

# Sets <out> to the last index of the array or object at the JSON path ARGN; it must not be empty.
function(_jsd_model_keys_last out text json)
  string(JSON count LENGTH "${text}" ${ARGN})
  if(count LESS 1)
    string(JOIN "." path ${ARGN})
    message(FATAL_ERROR "${json}: ${path} is empty")
  endif()
  math(EXPR last "${count} - 1")
  set(${out} ${last} PARENT_SCOPE)
endfunction()

function(jsd_generate_model_keys json header)
  file(READ "${json}" text)
  set(identifier "^[A-Za-z][A-Za-z0-9_]*$")
  set(key_name "^[a-z0-9_.]+$")

  string(JSON version GET "${text}" formatVersion)
  _jsd_model_keys_check("${version}" "^[1-9][0-9]*$" "formatVersion" "${json}")
  string(JSON architecture GET "${text}" architecture)
  _jsd_model_keys_check("${architecture}" "^[a-z0-9_]+$" "architecture" "${json}")

  set(out "// The JSD model file's metadata key names and format version (docs/model-format.md).\n")
  string(APPEND out "// Generated from native/model/model_keys.json by CMakeLists.txt (native/model/model_keys.cmake); do not edit.\n")
  string(APPEND out "#pragma once\n\n#include <cstdint>\n\nnamespace jsd {\n\n")
  string(APPEND out "// The model format version the converter writes and this runtime reads (keys::kFormatVersion).\n")
  string(APPEND out "inline constexpr uint32_t kModelFormatVersion = ${version};\n")
  string(APPEND out "// The value of keys::kArchitecture in a JSD model file.\n")
  string(APPEND out "inline constexpr const char* kModelArchitecture = \"${architecture}\";\n\nnamespace keys {\n\n")

  _jsd_model_keys_last(last "${text}" "${json}" keys)
  foreach(i RANGE ${last})
    string(JSON name MEMBER "${text}" keys ${i})
    string(JSON key GET "${text}" keys "${name}")
    _jsd_model_keys_check("${name}" "${identifier}" "key name" "${json}")
    _jsd_model_keys_check("${key}" "${key_name}" "key" "${json}")
    jsd_constant_name(constant "${name}")
    string(APPEND out "inline constexpr const char* ${constant} = \"${key}\";\n")
  endforeach()

  _jsd_model_keys_last(last "${text}" "${json}" sections)
  foreach(i RANGE ${last})
    string(JSON section MEMBER "${text}" sections ${i})
    _jsd_model_keys_check("${section}" "${identifier}" "section" "${json}")
    string(APPEND out "\nnamespace ${section} {\n")
    _jsd_model_keys_last(last_field "${text}" "${json}" sections "${section}")
    set(all "")
    foreach(j RANGE ${last_field})
      string(JSON field GET "${text}" sections "${section}" ${j})
      _jsd_model_keys_check("${field}" "${identifier}" "field of ${section}" "${json}")
      string(APPEND out "inline constexpr const char* ${field} = \"${architecture}.${section}.${field}\";\n")
      string(APPEND all "${field}, ")
    endforeach()
    string(APPEND out "// Every field of the section (an optional section is all there or not at all).\n")
    string(APPEND out "inline constexpr const char* kFields[] = {${all}};\n")
    string(APPEND out "}  // namespace ${section}\n")
  endforeach()

  string(APPEND out "\n}  // namespace keys\n\n}  // namespace jsd\n")
  file(CONFIGURE OUTPUT "${header}" CONTENT "${out}" @ONLY)
endfunction()
