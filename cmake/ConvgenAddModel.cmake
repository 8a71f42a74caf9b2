# convgen_add_model(<name> SOURCE <model.cpp> | GENERATOR <executable target>
#                   [MODEL <registered name>] [OUTPUT_DIR <dir>] [SCHEDULES <db.json>] [TARGETS <TARGET:SUFFIX>...])
#                   [CUDA]
#
# SCHEDULES defaults to CONVGEN_SCHEDULES (schedules/tuned.json).
#
# Builds the model's generator from <model.cpp> (a file that defines the model with the DSL and
# registers it with CONVGEN_MODEL), runs it at build time, and makes a static library target
# <name> from what it generates in <dir> (default ${CONVGEN_GENERATED_DIR}/<name>):
#   <name>.h  <name>.hpp  lib<name>.a  <name>.json
# Link <name> into a program; the library needs no Halide, LLVM or convgen at link or run time.
# <name> prefixes the files and the C symbols, so one program can link a model's CPU library
# ("lenet5") and its GPU one ("lenet5_cuda", MODEL lenet5, CUDA: generated for CONVGEN_CUDA_TARGET).
# GENERATOR reuses a generator executable already defined (linked with convgen_generator_main and
# holding several registered models, such as convgen_zoo_generator) instead of building one per
# model from SOURCE.

# The schedule database every library is generated with, unless convgen_add_model names another:
# the autotuner's winners (scripts/tune), keyed by target, so a machine with other instruction sets
# finds no entries and gets the heuristics. Empty: the heuristics everywhere.
get_filename_component(default_schedules "${CMAKE_CURRENT_LIST_DIR}/../schedules/tuned.json" ABSOLUTE)
set(CONVGEN_SCHEDULES "${default_schedules}"
    CACHE FILEPATH "Schedule database the generated libraries use (empty: default heuristics only)")
if(CONVGEN_SCHEDULES AND NOT EXISTS "${CONVGEN_SCHEDULES}")
    message(FATAL_ERROR "CONVGEN_SCHEDULES: ${CONVGEN_SCHEDULES} does not exist (scripts/tune writes one; "
                        "-DCONVGEN_SCHEDULES= uses the default heuristics)")
endif()

# The CPU targets every library carries, most capable first; the first one the running machine
# supports is used. TARGET:SUFFIX, the suffix naming the target's object files.
set(CONVGEN_CPU_TARGETS
    "x86-64-linux-avx512_skylake-avx2-fma-f16c-avx-sse41:avx512"
    "x86-64-linux-avx2-fma-f16c-avx-sse41:avx2"
    "x86-64-linux:x86_64"
    CACHE STRING "Halide targets (TARGET:SUFFIX) compiled into every generated CPU library")

# The GPU target of CUDA libraries: PTX for compute capability 8.0, which the driver compiles for
# the GPU it finds (an H100 is 9.0) when the first model is created.
set(CONVGEN_CUDA_TARGET "x86-64-linux-cuda-cuda_capability_80:cuda"
    CACHE STRING "Halide target (TARGET:SUFFIX) of the CUDA libraries")

function(convgen_add_model name)
    cmake_parse_arguments(ARG "CUDA" "SOURCE;GENERATOR;MODEL;OUTPUT_DIR;SCHEDULES" "TARGETS" ${ARGN})
    if(ARG_CUDA)
        set(ARG_TARGETS ${CONVGEN_CUDA_TARGET})
    endif()
    if(NOT ARG_TARGETS)
        set(ARG_TARGETS ${CONVGEN_CPU_TARGETS})
    endif()
    if(NOT ARG_SOURCE AND NOT ARG_GENERATOR)
        list(POP_FRONT ARG_UNPARSED_ARGUMENTS ARG_SOURCE)
    endif()
    if(ARG_SOURCE AND ARG_GENERATOR)
        message(FATAL_ERROR "convgen_add_model(${name}): give SOURCE or GENERATOR, not both")
    endif()
    if(NOT ARG_SOURCE AND NOT ARG_GENERATOR)
        message(FATAL_ERROR "convgen_add_model(${name}): give the model's source file, SOURCE model.cpp, "
                            "or a generator executable target, GENERATOR <target>")
    endif()
    if(ARG_GENERATOR AND NOT TARGET ${ARG_GENERATOR})
        message(FATAL_ERROR "convgen_add_model(${name}): GENERATOR ${ARG_GENERATOR} is not an executable target")
    endif()
    if(NOT ARG_MODEL)
        set(ARG_MODEL ${name})
    endif()
    if(NOT ARG_SCHEDULES AND CONVGEN_SCHEDULES)
        set(ARG_SCHEDULES "${CONVGEN_SCHEDULES}")
    endif()
    # In a sanitizer build: reuse another build's kernels (CONVGEN_PREGENERATED_DIR), except for
    # the models named in CONVGEN_HALIDE_ASAN_MODELS, generated here with Halide's own asan feature.
    set(pregenerated "${CONVGEN_PREGENERATED_DIR}")
    if(name IN_LIST CONVGEN_HALIDE_ASAN_MODELS)
        set(pregenerated "")
        list(TRANSFORM ARG_TARGETS REPLACE "^([^:]+):" "\\1-asan:")
    endif()
    if(NOT ARG_OUTPUT_DIR)
        set(ARG_OUTPUT_DIR "${CONVGEN_GENERATED_DIR}/${name}")
    endif()

    if(ARG_GENERATOR)
        set(generator ${ARG_GENERATOR})
    else()
        set(generator ${name}_generator)
        add_executable(${generator} ${ARG_SOURCE})
        target_link_libraries(${generator} PRIVATE convgen_generator_main convgen::dsl)
        if(pregenerated)
            set_target_properties(${generator} PROPERTIES EXCLUDE_FROM_ALL TRUE)
        endif()
    endif()

    list(JOIN ARG_TARGETS "," targets_argument)
    # What scripts/tune runs for this model: its generator's target and file, and its registered name.
    # (GPU schedules are not tuned on this machine, which has no GPU.)
    if(NOT ARG_CUDA)
        file(GENERATE OUTPUT "${CMAKE_BINARY_DIR}/tune/${name}.txt"
             CONTENT "${generator}\n$<TARGET_FILE:${generator}>\n${ARG_MODEL}\n${targets_argument}\n")
    endif()

    set(dir "${ARG_OUTPUT_DIR}")
    if(pregenerated)
        # Another build generated this model: only its host code is compiled here, and the
        # archive lands in this build's own folder.
        set(dir "${pregenerated}/${name}")
    endif()
    # Every kernel of the model for every target, joined into one object, and Halide's runtime.
    set(objects "${dir}/${name}_runtime.o" "${dir}/${name}_kernels.o")
    set(sources "${dir}/${name}_library.cpp")
    set(headers "${dir}/${name}.h" "${dir}/${name}.hpp" "${dir}/${name}.json")

    set(schedule_arguments)
    set(schedule_dependencies)
    if(ARG_SCHEDULES)
        set(schedule_arguments --schedules "${ARG_SCHEDULES}")
        set(schedule_dependencies "${ARG_SCHEDULES}")
    endif()
    if(pregenerated)
        foreach(file IN LISTS objects sources headers)
            if(NOT EXISTS "${file}")
                message(FATAL_ERROR "convgen_add_model(${name}): ${file} is missing; build ${name} in the build "
                                    "CONVGEN_PREGENERATED_DIR comes from first")
            endif()
        endforeach()
    else()
        add_custom_command(
            OUTPUT ${objects} ${sources} ${headers}
            COMMAND ${generator} --output "${dir}" --model ${ARG_MODEL} --name ${name} --targets "${targets_argument}"
                    ${schedule_arguments}
            DEPENDS ${generator} ${schedule_dependencies}
            COMMENT "convgen: generating the ${ARG_MODEL} library in ${dir}"
            VERBATIM)
        set_source_files_properties(${objects} PROPERTIES GENERATED TRUE)
    endif()

    add_library(${name} STATIC ${sources} ${objects})
    # Which generator makes it, for another library of the same model (its CUDA twin).
    set_target_properties(${name} PROPERTIES CONVGEN_GENERATOR ${generator})
    set_source_files_properties(${objects} PROPERTIES EXTERNAL_OBJECT TRUE)
    set_target_properties(${name} PROPERTIES ARCHIVE_OUTPUT_DIRECTORY "${ARG_OUTPUT_DIR}" OUTPUT_NAME ${name})
    target_include_directories(${name} PUBLIC "${dir}")
    # Only Halide's runtime header is needed, to compile the host-side source; nothing at link time.
    target_include_directories(${name} PRIVATE $<TARGET_PROPERTY:Halide::Runtime,INTERFACE_INCLUDE_DIRECTORIES>)
    # The host code is optimised whatever the build type, except under the sanitizers: there the
    # build type's level applies (-O0 in their Debug builds), as -O2 made each instrumented library
    # take three times as long to compile.
    if(NOT CONVGEN_SANITIZE)
        target_compile_options(${name} PRIVATE -O2)
    endif()
    target_link_libraries(${name} PUBLIC Threads::Threads ${CMAKE_DL_LIBS} m)
endfunction()
