# convgen_add_model(<name> SOURCE <model.cpp> [MODEL <registered name>] [OUTPUT_DIR <dir>] [SCHEDULES <db.json>]
#                   [TARGETS <TARGET:SUFFIX>...])
#
# Builds the model's generator from <model.cpp> (a file that defines the model with the DSL and
# registers it with CONVGEN_MODEL), runs it at build time, and makes a static library target
# <name> from what it generates in <dir> (default ${CONVGEN_GENERATED_DIR}/<name>):
#   <name>.h  <name>.hpp  lib<name>.a  <name>.json
# Link <name> into a program; the library needs no Halide, LLVM or convgen at link or run time.

# The CPU targets every library carries, most capable first; the first one the running machine
# supports is used. TARGET:SUFFIX, the suffix naming the target's object files.
set(CONVGEN_CPU_TARGETS
    "x86-64-linux-avx512_skylake-avx2-fma-f16c-avx-sse41:avx512"
    "x86-64-linux-avx2-fma-f16c-avx-sse41:avx2"
    "x86-64-linux:x86_64"
    CACHE STRING "Halide targets (TARGET:SUFFIX) compiled into every generated CPU library")

function(convgen_add_model name)
    cmake_parse_arguments(ARG "" "SOURCE;MODEL;OUTPUT_DIR;SCHEDULES" "TARGETS" ${ARGN})
    if(NOT ARG_TARGETS)
        set(ARG_TARGETS ${CONVGEN_CPU_TARGETS})
    endif()
    if(NOT ARG_SOURCE)
        list(POP_FRONT ARG_UNPARSED_ARGUMENTS ARG_SOURCE)
    endif()
    if(NOT ARG_SOURCE)
        message(FATAL_ERROR "convgen_add_model(${name}): give the model's source file, SOURCE model.cpp")
    endif()
    if(NOT ARG_MODEL)
        set(ARG_MODEL ${name})
    endif()
    if(NOT ARG_OUTPUT_DIR)
        set(ARG_OUTPUT_DIR "${CONVGEN_GENERATED_DIR}/${name}")
    endif()

    add_executable(${name}_generator ${ARG_SOURCE})
    target_link_libraries(${name}_generator PRIVATE convgen_generator_main convgen::dsl)

    set(suffixes)
    foreach(target_and_suffix IN LISTS ARG_TARGETS)
        string(REGEX REPLACE "^.*:" "" suffix "${target_and_suffix}")
        list(APPEND suffixes ${suffix})
    endforeach()
    list(JOIN ARG_TARGETS "," targets_argument)
    list(LENGTH suffixes target_count)

    set(dir "${ARG_OUTPUT_DIR}")
    set(objects "${dir}/${ARG_MODEL}_runtime.o")
    foreach(function halide_train_step halide_predict)
        if(target_count EQUAL 1)
            list(APPEND objects "${dir}/${ARG_MODEL}_${function}.o")
        else()
            foreach(suffix IN LISTS suffixes)
                list(APPEND objects "${dir}/${ARG_MODEL}_${function}-${suffix}.o")
            endforeach()
            list(APPEND objects "${dir}/${ARG_MODEL}_${function}_wrapper.o")
        endif()
    endforeach()
    set(sources "${dir}/${ARG_MODEL}_library.cpp")
    set(headers "${dir}/${ARG_MODEL}.h" "${dir}/${ARG_MODEL}.hpp" "${dir}/${ARG_MODEL}.json"
                "${dir}/${ARG_MODEL}_halide_train_step.h" "${dir}/${ARG_MODEL}_halide_predict.h")

    set(schedule_arguments)
    set(schedule_dependencies)
    if(ARG_SCHEDULES)
        set(schedule_arguments --schedules "${ARG_SCHEDULES}")
        set(schedule_dependencies "${ARG_SCHEDULES}")
    endif()
    add_custom_command(
        OUTPUT ${objects} ${sources} ${headers}
        COMMAND ${name}_generator --output "${dir}" --model ${ARG_MODEL} --targets "${targets_argument}"
                ${schedule_arguments}
        DEPENDS ${name}_generator ${schedule_dependencies}
        COMMENT "convgen: generating the ${ARG_MODEL} library in ${dir}"
        VERBATIM)

    add_library(${name} STATIC ${sources} ${objects})
    set_source_files_properties(${objects} PROPERTIES EXTERNAL_OBJECT TRUE GENERATED TRUE)
    set_target_properties(${name} PROPERTIES ARCHIVE_OUTPUT_DIRECTORY "${dir}" OUTPUT_NAME ${ARG_MODEL})
    target_include_directories(${name} PUBLIC "${dir}")
    # Only Halide's runtime header is needed, to compile the host-side source; nothing at link time.
    target_include_directories(${name} PRIVATE $<TARGET_PROPERTY:Halide::Runtime,INTERFACE_INCLUDE_DIRECTORIES>)
    target_compile_options(${name} PRIVATE -O2)
    target_link_libraries(${name} PUBLIC Threads::Threads ${CMAKE_DL_LIBS} m)
endfunction()
