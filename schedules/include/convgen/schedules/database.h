// The schedule database: a JSON file of tuned schedule parameters, keyed by target and layer
// signature (stage kind, shapes, strides, fusion). Codegen reads it when present; every lookup
// that misses falls back to the heuristics.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace convgen::schedules {

// Parameters of one stage's schedule, by name ("tile_x": 4, "vectorize_channels": 1, ...).
using ScheduleParameters = std::map<std::string, int>;

// The values each parameter of a stage may take. Every combination is a valid schedule that
// computes the same numbers; only the speed differs. A database value outside it is ignored.
using ParameterSpace = std::map<std::string, std::vector<int>>;

// A stage whose schedule is parameterised, as the schedules met it while a kernel was built: what
// the autotuner searches.
struct TunableStage {
    std::string signature;
    ScheduleParameters defaults;  // the heuristics' choice
    ParameterSpace space;
};

class ScheduleDatabase {
  public:
    // Reads `path`; throws std::runtime_error naming the file and the problem when it is malformed.
    static ScheduleDatabase load(const std::string& path);

    std::optional<ScheduleParameters> find(const std::string& target, const std::string& signature) const;
    void insert(const std::string& target, const std::string& signature, ScheduleParameters parameters);
    // Atomic write (temp file, then rename).
    void save(const std::string& path) const;

    size_t size() const;

  private:
    std::map<std::string, std::map<std::string, ScheduleParameters>> entries_;  // target -> signature -> parameters
};

}  // namespace convgen::schedules
