# The layering of docs/design.md, checked on every #include of src/ (run by ctest: test
# `layering`). Usage: cmake -DSRC=<dir holding the layer directories> -P check_layering.cmake
#
# Dependencies point down: cli -> agent, lab -> dataplane -> polprog -> calc -> model;
# dataplane -> maps -> bpf; datastore -> model. `weir/` is bpf/include/weir (the types shared
# with the BPF C side); `util/` is usable everywhere. A layer may include its own headers, the
# layers listed for it below, and nothing else; each exception names the file, the header and why.
# model/, calc/, datastore/ and util/ stay pure: no libbpf or kernel BPF headers either.
cmake_minimum_required(VERSION 3.20)

set(allowed_util "")
set(allowed_bpf util weir)
set(allowed_maps bpf util weir)
set(allowed_model util)
set(allowed_calc model util)
set(allowed_datastore model util)
set(allowed_polprog calc model util weir)
set(allowed_dataplane polprog calc model maps bpf util weir)
set(allowed_agent dataplane datastore polprog calc model maps bpf util weir)
set(allowed_lab dataplane datastore polprog calc model maps bpf util weir)
set(allowed_cli agent lab dataplane datastore polprog calc model maps bpf util weir)
set(allowed_main cli util)   # src/main.cpp
set(layers util bpf maps model calc datastore polprog dataplane agent lab cli)
set(pure_layers util model calc datastore)

# "<file relative to SRC> -> <header>": known exceptions, each with its reason.
set(exceptions
  # Conntrack decisions (expiry, NAT pairs) read the map's own entries and share the TCP state
  # machine weir_ct_tcp_state() with the datapath: one definition of the states (docs/design.md).
  "calc/conntrack.h -> weir/conntrack.h"
)

if(NOT SRC)
  message(FATAL_ERROR "check_layering: -DSRC=<source dir> is required")
endif()
get_filename_component(SRC "${SRC}" ABSOLUTE)
file(GLOB_RECURSE files RELATIVE ${SRC} ${SRC}/*.h ${SRC}/*.cpp ${SRC}/*.c)
list(SORT files)
set(violations "")
foreach(f ${files})
  if(f MATCHES "^([a-z_]+)/")
    set(layer ${CMAKE_MATCH_1})
  elseif(f STREQUAL "main.cpp")
    set(layer main)
  else()
    list(APPEND violations "${f}: not in a layer directory of docs/design.md")
    continue()
  endif()
  if(NOT layer STREQUAL "main" AND NOT layer IN_LIST layers)
    list(APPEND violations "${f}: ${layer}/ is not a layer of docs/design.md (add it to cmake/check_layering.cmake)")
    continue()
  endif()
  file(STRINGS ${SRC}/${f} lines REGEX "^[ \t]*#[ \t]*include[ \t]*[\"<]")
  foreach(line ${lines})
    if(line MATCHES "#[ \t]*include[ \t]*\"([a-z_]+)/([^\"]*)\"")
      set(dep ${CMAKE_MATCH_1})
      set(header "${CMAKE_MATCH_1}/${CMAKE_MATCH_2}")
      if(dep STREQUAL layer OR dep IN_LIST allowed_${layer})
        continue()
      endif()
      if(NOT dep IN_LIST layers AND NOT dep STREQUAL "weir")
        continue()  # a generated header (tc.skel.h is included without a directory) or a test's
      endif()
      if("${f} -> ${header}" IN_LIST exceptions)
        continue()
      endif()
      list(APPEND violations "${f}: includes \"${header}\": ${layer}/ may not depend on ${dep}/")
    elseif(line MATCHES "#[ \t]*include[ \t]*<((bpf|linux)/[^>]*)>" AND layer IN_LIST pure_layers)
      list(APPEND violations "${f}: includes <${CMAKE_MATCH_1}>: ${layer}/ is pure (no libbpf, no kernel BPF headers)")
    endif()
  endforeach()
endforeach()

list(LENGTH files n)
if(violations)
  list(LENGTH violations nv)
  list(JOIN violations "\n  " text)
  message(FATAL_ERROR "layering: ${nv} violation(s) of docs/design.md's layers in ${SRC}:\n  ${text}")
endif()
message(STATUS "layering: ${n} files under ${SRC} follow docs/design.md's layers")
