// How each stage kind runs on a target: one function per stage kind, which applies the CPU
// schedules (cpu.h) or, for a target with a GPU feature, the CUDA ones (gpu.h). The algorithms
// (codegen/) hand their stages to these and never to a target's set directly.
#pragma once

#include <convgen/schedules/database.h>
#include <convgen/schedules/stages.h>

namespace convgen::schedules {

struct Context {
    Halide::Target target;
    bool training = false;
    const ScheduleDatabase* database = nullptr;  // may be null: heuristics only
    // When set, every parameterised stage scheduled is appended here (the autotuner's work list).
    std::vector<TunableStage>* tunable_stages = nullptr;
    // Leave every stage unscheduled, for one of Halide's autoschedulers to schedule (the
    // comparison with them): each schedule function then does nothing.
    bool unscheduled = false;

    bool gpu() const { return target.has_gpu_feature(); }
    int vector_width() const { return target.natural_vector_size<float>(); }
};

#include <convgen/schedules/stage_schedules.inc>

}  // namespace convgen::schedules
