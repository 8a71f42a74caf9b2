// The autotuner: measures schedule candidates for a model's parameterised stages on this machine,
// with Halide's JIT, and keeps the fastest in the schedule database that codegen reads.
//
// Each stage (a conv's forward, weight gradient or input gradient at one geometry) is timed
// through the whole kernel that holds it, as the generated library calls it: the candidate is
// written into a working copy of the database, the kernel is built and JIT-compiled, run once to
// warm up, then `repeats` times, and the median counts. Each timed run starts from cold caches
// (as in a network whose weights and activations outgrow the last-level cache, so that a layer's
// data was evicted by the layers between), or from the caches as the previous run left them where
// the network fits in half of that cache (TuneOptions::caches). The search starts from the stored or
// default parameters, then alternates random points of the stage's parameter space with
// neighbours of the best so far (one parameter moved to the next value of its list). Every
// candidate's outputs are compared with the starting schedule's; one that differs is rejected.
// A candidate that lowers to the same code as one tried before (a parameter that its other choices
// leave unused) takes that one's time without being compiled or timed.
// Before it is stored, a winner other than the start is timed again with the start, alternately
// for a few rounds; it is kept only if its median stays below the start's.
#pragma once

#include <convgen/codegen/lower.h>
#include <convgen/model.h>
#include <convgen/schedules/database.h>

#include <Halide.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace convgen::schedules {

struct TuneOptions {
    double budget_seconds = 60;  // wall time for the whole model, shared among its stages
    int batch = 32;              // images per kernel call while timing
    int repeats = 5;             // timed runs per candidate; the median counts
    uint32_t seed = 1;
    // How the caches stand when a candidate's timed run starts. `automatic`: warm where the model's
    // tensors and parameters at this batch fit in half of this machine's last-level cache (so in a
    // loop of steps they stay there), cold otherwise. Tuned cold, a model that stays in the cache
    // gets other winners, slower in its real loop: ResNet-18 at batch 1 (47 MB of weights) on a
    // machine with 260 MB of L3.
    enum class Caches { automatic, cold, warm };
    Caches caches = Caches::automatic;
    bool training = true;   // tune the stages of the training step
    bool inference = true;  // ... and those of inference (a forward stage is keyed per program)
    std::function<void(const std::string&)> progress;  // a line per stage tuned
};

struct TunedStage {
    std::string signature;
    std::string kernel;  // where it was measured: "backward conv3 (training)"
    ScheduleParameters chosen;
    double default_ms = 0;  // the kernel's median time with the stage's starting parameters
    double best_ms = 0;     // ... with the chosen ones
    int candidates = 0;     // tried, the starting point included
    int equivalent = 0;     // ... of which lowered to the same code as one tried before: not timed again
    int rejected = 0;       // failed to compile or computed other numbers
};

// A stage's parameters as the tuner reports them: "channel_block=2 tile_x=4".
std::string parameters_text(const ScheduleParameters& parameters);

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

// What a built kernel and the kernels that prepare its weights lower to, before any machine code,
// as text, with each name Halide made unique ("conv$12", "t1874") numbered from its first
// appearance instead: builds of one schedule read alike, and two schedules that read alike
// compute alike (the tuner compiles and times one of them).
std::string canonical_lowered_code(const codegen::LoweredPipeline& kernel,
                                   const std::vector<codegen::LoweredPipeline>& preparations,
                                   const Halide::Target& target);

// Halide's own autoschedulers on the same kernels: each kernel of the model's training step (or
// inference) built without convgen's schedules, scheduled by each named autoscheduler (plugins
// loaded from plugin_dir), JIT-compiled and timed as the tuner times candidates, next to the
// kernel under convgen's schedules (with `database`).
struct AutoschedulerOptions {
    int batch = 32;
    int repeats = 5;
    bool training = true;  // the training step's kernels; false: inference's
    std::vector<std::string> autoschedulers = {"Mullapudi2016", "Adams2019", "Li2018"};
    std::string plugin_dir = "/usr/lib/x86_64-linux-gnu/halide14";
    std::function<void(const std::string&)> progress;  // a line per kernel
    bool print_schedules = false;  // progress also gets each autoscheduler's schedule, as C++ source
};

struct KernelComparison {
    std::string kernel;  // what it computes: "backward conv2+maxpool2"
    int calls = 0;       // how many times one step or inference calls it
    double convgen_ms = 0;
    std::map<std::string, double> autoscheduled_ms;  // per autoscheduler; absent where it failed
    std::map<std::string, std::string> errors;       // why it failed
};

std::vector<KernelComparison> compare_with_autoschedulers(const Model& model, const Halide::Target& target,
                                                          const ScheduleDatabase& database,
                                                          const AutoschedulerOptions& options);

// Tuning for a target this machine does not run (a CUDA GPU), the way TVM tunes over RPC.
// Here, plan_remote_tuning lists the model's parameterised stages for the target, each with the
// calls whose kernels hold it, and draws candidate schedule databases: the first is the starting
// database (tuned values, else the defaults); each other one gives every stage either a random
// point of its space or a neighbour of its starting point (one parameter moved to the next value
// of its list), drawn again where the stage had it already (while its space has others). A library is generated from each candidate and one program links them all
// (bench/gpu_tune.cpp, built by scripts/tune-gpu); it runs on the target's machine with
// CONVGEN_PROFILE set, and each candidate's profile comes back. choose_remote_winners then keeps,
// for each stage, the candidate whose calls holding it took least time in total.
struct RemoteStage {
    TunableStage stage;
    std::vector<int> calls;  // indices into the program's calls, in the order the profile lists them
    std::vector<std::string> call_names;
};

struct RemoteTuningPlan {
    std::string target;   // the database key
    std::string program;  // "predict" or "train_step": the profile section the times are read from
    std::vector<RemoteStage> stages;
    // candidates[k][s]: stage s's parameters in candidate k.
    std::vector<std::vector<ScheduleParameters>> candidates;

    // Candidate k as a database: `base` with the candidate's parameters written over it.
    ScheduleDatabase database(size_t k, ScheduleDatabase base) const;
    std::string to_json() const;
    static RemoteTuningPlan from_json(const std::string& text);  // throws std::runtime_error
};

RemoteTuningPlan plan_remote_tuning(const Model& model, const Halide::Target& target, const ScheduleDatabase& start,
                                    int candidates, bool training, uint32_t seed);

// profiles[k]: the CONVGEN_PROFILE text candidate k's library printed (empty where it failed).
// Stores each stage's winner in `database` under plan.target; a stage no candidate was timed
// for is left out. TunedStage::default_ms is candidate 0's time.
std::vector<TunedStage> choose_remote_winners(const RemoteTuningPlan& plan, const std::vector<std::string>& profiles,
                                              ScheduleDatabase& database);

}  // namespace convgen::schedules
