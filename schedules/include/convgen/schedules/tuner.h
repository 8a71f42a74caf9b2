// The autotuner: measures schedule candidates for a model's parameterised stages on this machine,
// with Halide's JIT, and keeps the fastest in the schedule database that codegen reads.
//
// Each stage (a conv's forward, weight gradient or input gradient at one geometry) is timed
// through the whole kernel that holds it, as the generated library calls it: the candidate is
// written into a working copy of the database, the kernel is built and JIT-compiled, run once to
// warm up, then `repeats` times, and the median counts. The search starts from the stored or
// default parameters, then alternates random points of the stage's parameter space with
// neighbours of the best so far (one parameter moved to the next value of its list). Every
// candidate's outputs are compared with the starting schedule's; one that differs is rejected.
#pragma once

#include <convgen/model.h>
#include <convgen/schedules/database.h>

#include <Halide.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace convgen::schedules {

struct TuneOptions {
    double budget_seconds = 60;  // wall time for the whole model, shared among its stages
    int batch = 32;              // images per kernel call while timing
    int repeats = 5;             // timed runs per candidate; the median counts
    uint32_t seed = 1;
    bool training = true;   // tune the stages of the training step
    bool inference = true;  // ... and those only inference has (the same stage is tuned once)
    std::function<void(const std::string&)> progress;  // a line per stage tuned
};

struct TunedStage {
    std::string signature;
    std::string kernel;  // where it was measured: "backward conv3 (training)"
    ScheduleParameters chosen;
    double default_ms = 0;  // the kernel's median time with the stage's starting parameters
    double best_ms = 0;     // ... with the chosen ones
    int candidates = 0;     // measured, the starting point included
    int rejected = 0;       // failed to compile or computed other numbers
};

// Whether this machine runs code for `target` (its arch, OS and instruction sets).
bool runs_on_this_machine(const Halide::Target& target);

// The database key of a target (its arch, OS and instruction-set features).
std::string database_target(const Halide::Target& target);

// Tunes every parameterised stage of `model` for `target` (which this machine must run) and
// stores the winners in `database` under database_target(target); `database` is read first,
// so stored parameters are the starting points. Throws std::runtime_error when the target does
// not run here.
std::vector<TunedStage> tune_model(const Model& model, const Halide::Target& target, ScheduleDatabase& database,
                                   const TuneOptions& options);

}  // namespace convgen::schedules
