# The C++ constant name of a camelCase JSON name: formatVersion -> kFormatVersion. Shared by the
# generators of model/model_keys.h and runtime/limits.h.
include_guard(GLOBAL)
function(jsd_constant_name out name)
  string(SUBSTRING "${name}" 0 1 first)
  string(SUBSTRING "${name}" 1 -1 rest)
  string(TOUPPER "${first}" first)
  set(${out} "k${first}${rest}" PARENT_SCOPE)
endfunction()
