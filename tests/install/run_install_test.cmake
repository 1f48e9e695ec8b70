# The install_consumer test: `cmake --install` pynn's build tree into a scratch prefix, then
# configure, build and run tests/install/consumer against that prefix alone, failing on any error.
# Registered in tests/CMakeLists.txt; by hand:
#   cmake -DPYNN_SOURCE_DIR=<src> -DPYNN_BINARY_DIR=<build> -DWORK_DIR=<scratch dir>
#         [-DCONFIG=Release] [-DGENERATOR=Ninja] [-DMAKE_PROGRAM=...] [-DCXX_COMPILER=...]
#         [-DPYNN_NATIVE=ON] -P tests/install/run_install_test.cmake
# WORK_DIR is deleted and recreated on every run, so leftovers of an earlier run cannot help.
cmake_minimum_required(VERSION 3.25)

foreach(required PYNN_SOURCE_DIR PYNN_BINARY_DIR WORK_DIR)
    if(NOT ${required})
        message(FATAL_ERROR "run_install_test.cmake: -D${required}=... is required")
    endif()
endforeach()
if(NOT CONFIG)
    set(CONFIG Release)
endif()

set(prefix "${WORK_DIR}/prefix")
set(consumer_source "${PYNN_SOURCE_DIR}/tests/install/consumer")
set(consumer_build "${WORK_DIR}/consumer-build")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

# Runs a command with its output passed through (ctest --output-on-failure shows it).
function(run_step name)
    message(STATUS "install_consumer: ${name}")
    execute_process(COMMAND ${ARGN} RESULT_VARIABLE result)
    if(NOT result STREQUAL "0")
        string(REPLACE ";" " " command "${ARGN}")
        message(FATAL_ERROR "install_consumer: ${name} failed (${result}): ${command}")
    endif()
endfunction()

# Fails unless `file` contains a match of `regex`.
function(require_match file regex what)
    file(READ "${file}" text)
    if(NOT text MATCHES "${regex}")
        message(FATAL_ERROR "install_consumer: ${what} (no match for '${regex}' in ${file})")
    endif()
endfunction()

# 1. Install.
run_step("install into ${prefix}"
    "${CMAKE_COMMAND}" --install "${PYNN_BINARY_DIR}" --prefix "${prefix}" --config "${CONFIG}")
foreach(pattern include/pynn/pynn.hpp */libpynn.a */cmake/pynn/pynnConfig.cmake
                */cmake/pynn/pynnConfigVersion.cmake */cmake/pynn/pynnTargets.cmake)
    file(GLOB_RECURSE found RELATIVE "${prefix}" "${prefix}/${pattern}")
    if(NOT found)
        message(FATAL_ERROR "install_consumer: nothing matching ${pattern} was installed")
    endif()
endforeach()
# The installed package must be relocatable: no path into the source or build tree.
file(GLOB_RECURSE package_files "${prefix}/*/cmake/pynn/*.cmake")
foreach(package_file ${package_files})
    file(READ "${package_file}" text)
    foreach(tree "${PYNN_SOURCE_DIR}" "${PYNN_BINARY_DIR}")
        string(FIND "${text}" "${tree}" position)
        if(NOT position EQUAL -1)
            message(FATAL_ERROR "install_consumer: ${package_file} refers to ${tree}")
        endif()
    endforeach()
endforeach()

# 2. Configure the consumer against the prefix only, with the same toolchain.
set(configure_args -S "${consumer_source}" -B "${consumer_build}"
    "-DCMAKE_PREFIX_PATH=${prefix}" "-DCMAKE_BUILD_TYPE=${CONFIG}"
    -DCMAKE_EXPORT_COMPILE_COMMANDS=ON -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
if(GENERATOR)
    list(APPEND configure_args -G "${GENERATOR}")
endif()
if(MAKE_PROGRAM)
    list(APPEND configure_args "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()
if(CXX_COMPILER)
    list(APPEND configure_args "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
endif()
run_step("configure the consumer" "${CMAKE_COMMAND}" ${configure_args})
file(STRINGS "${consumer_build}/CMakeCache.txt" pynn_dir REGEX "^pynn_DIR:")
string(FIND "${pynn_dir}" "${prefix}/" position)
if(NOT position GREATER -1)
    message(FATAL_ERROR "install_consumer: the consumer found pynn outside ${prefix}: ${pynn_dir}")
endif()

# 3. Build it, and check the usage requirements reached its compile line.
run_step("build the consumer" "${CMAKE_COMMAND}" --build "${consumer_build}" --config "${CONFIG}")
set(compile_commands "${consumer_build}/compile_commands.json")
if(EXISTS "${compile_commands}") # Makefile and Ninja generators only
    require_match("${compile_commands}" "-DXTENSOR_USE_XSIMD"
                  "pynn's PUBLIC XTENSOR_USE_XSIMD did not reach the consumer")
    require_match("${compile_commands}" "-std=(c|gnu)\\+\\+(20|2a)"
                  "pynn's C++20 requirement did not reach the consumer")
    if(PYNN_NATIVE)
        require_match("${compile_commands}" "-march=native"
                      "pynn's PUBLIC -march=native did not reach the consumer")
    endif()
endif()

# 4. Run it.
set(program "${consumer_build}/${CONFIG}/pynn_consumer") # multi-config generators
if(NOT EXISTS "${program}")
    set(program "${consumer_build}/pynn_consumer")
endif()
run_step("run the consumer" "${program}")
