#include <convgen/codegen/lower.h>
#include <convgen/schedules/tuner.h>

#include "cpu/heuristics.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

namespace convgen::schedules {

namespace {

using codegen::KernelCall;
using codegen::LoweredPipeline;
using codegen::Program;
using codegen::Slot;
using codegen::SlotKind;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

// The target the JIT runs: the library target's instruction sets, with the runtime included and
// no user-context argument.
Halide::Target jit_target(const Halide::Target& target) {
    return target.without_feature(Halide::Target::NoRuntime).without_feature(Halide::Target::UserContext);
}

// Buffers for one call of a kernel, filled with random values of the right kind, bound to the
// kernel's parameters; outputs allocated.
class CallBuffers {
  public:
    CallBuffers(const Model& model, const Program& program, const KernelCall& call, int batch, std::mt19937& random)
        : layouts_(codegen::parameter_layouts(model)) {
        const Shape& input = model.graph().node(model.input_node()).shape;
        const int inputs = static_cast<int>(call.slots.size()) - call.outputs;
        for (int i = 0; i < static_cast<int>(call.slots.size()); i++) {
            const Slot& slot = call.slots[static_cast<size_t>(i)];
            Halide::Buffer<> buffer;
            switch (slot.kind) {
                case SlotKind::images:
                case SlotKind::augmented_images:
                    // [C, H, W] images are (c, x, y, n) buffers; [F] features (f, n).
                    buffer = make(Halide::Float(32), input.rank() == 3
                                                         ? std::vector<int64_t>{input[0], input[2], input[1], batch}
                                                         : std::vector<int64_t>{input[0], batch});
                    break;
                case SlotKind::labels:
                    buffer = make(Halide::Int(32), {batch});
                    break;
                case SlotKind::tensor: {
                    const codegen::ProgramTensor& t = program.tensors[static_cast<size_t>(slot.index)];
                    std::vector<int64_t> extents = t.extents;
                    if (t.batched) extents.push_back(batch);
                    // A view: its channels of a buffer laid out as its storage, at mins 0.
                    if (t.storage >= 0) extents[0] = program.tensors[static_cast<size_t>(t.storage)].extents[0];
                    // As in the library's workspace, memory past the end: a kernel may read a
                    // vector of channels past the last (codegen's Kernel::tensor).
                    const int last = static_cast<int>(extents.size()) - 1;
                    if (last >= 0) extents[static_cast<size_t>(last)] += 1;
                    buffer = make(t.is_uint8 ? Halide::UInt(8) : Halide::Float(32), extents);
                    if (last >= 0) buffer.crop(last, 0, static_cast<int>(extents[static_cast<size_t>(last)] - 1));
                    if (t.storage >= 0) {
                        const int offset = static_cast<int>(t.channel_offset),
                                  channels = static_cast<int>(t.extents[0]);
                        buffer.crop(0, offset, channels);
                        buffer.translate(0, -offset);
                    }
                    break;
                }
                case SlotKind::value:
                case SlotKind::velocity:
                case SlotKind::new_value:
                case SlotKind::new_velocity:
                    buffer = make(Halide::Float(32), layouts_[static_cast<size_t>(slot.index)].internal_extents);
                    break;
                case SlotKind::loss:
                    buffer = make(Halide::Float(32), {});
                    break;
                case SlotKind::correct:
                    buffer = make(Halide::Int(32), {});
                    break;
                case SlotKind::probabilities:
                    buffer = make(Halide::Float(32), {model.classes(), batch});
                    break;
                case SlotKind::prepared:
                    if (i >= inputs) {
                        // Room for the layout of any candidate.
                        buffer = make(Halide::Float(32), {program.prepared[static_cast<size_t>(slot.index)].bound});
                    } else {
                        // Written by its preparation call (from random parameters of its own), as
                        // the candidate being measured lays it out: see prepare().
                        preparations_.push_back({preparation_of(program, slot), nullptr});
                        const KernelCall& writer = program.preparation_calls[preparations_.back().first];
                        preparations_.back().second = std::make_unique<CallBuffers>(model, program, writer, 1, random);
                        buffer = preparations_.back().second->outputs().front();
                    }
                    break;
                default:
                    break;  // a scalar
            }
            if (i >= inputs) {
                outputs_.push_back(buffer);
            } else {
                if (buffer.defined() && slot.kind != SlotKind::prepared) fill(buffer, slot.kind, model.classes(), random);
                inputs_.push_back({slot.kind, buffer});
            }
        }
    }

    // The kernels of the preparation calls of the call's prepared inputs, built now: as the schedule
    // database stands, so that they lay the weights out as the candidate built with them reads them.
    std::vector<LoweredPipeline> build_preparations(const Program& program, const Halide::Target& target) const {
        std::vector<LoweredPipeline> kernels;
        for (const auto& preparation : preparations_) {
            kernels.push_back(program.build(program.preparation_calls[preparation.first].kernel, target));
        }
        return kernels;
    }

    // Runs them (build_preparations' kernels, in its order) into the prepared inputs.
    void prepare(std::vector<LoweredPipeline>& kernels, const Halide::Target& target) {
        for (size_t p = 0; p < kernels.size(); p++) {
            CallBuffers& buffers = *preparations_[p].second;
            buffers.bind(kernels[p]);
            kernels[p].pipeline.compile_jit(target);
            Halide::Realization outputs(buffers.outputs());
            kernels[p].pipeline.realize(outputs, target);
        }
    }

    // Binds the inputs to a freshly built kernel's parameters.
    void bind(const LoweredPipeline& kernel) const {
        if (kernel.parameters.size() != inputs_.size()) {
            throw std::logic_error("a kernel's parameters do not match its call's arguments");
        }
        for (size_t i = 0; i < inputs_.size(); i++) {
            Halide::Internal::Parameter parameter = kernel.parameters[i];
            const auto& [kind, buffer] = inputs_[i];
            if (buffer.defined()) {
                parameter.set_buffer(buffer);
            } else if (kind == SlotKind::step_seed) {
                parameter.set_scalar<uint32_t>(12345u);
            } else if (kind == SlotKind::dropout_enabled || kind == SlotKind::augmentation_enabled) {
                parameter.set_scalar<bool>(true);
            } else if (kind == SlotKind::learning_rate) {
                parameter.set_scalar<float>(0.01f);
            } else if (kind == SlotKind::momentum) {
                parameter.set_scalar<float>(0.9f);
            } else {
                parameter.set_scalar<float>(5e-4f);  // weight decay
            }
        }
    }

    std::vector<Halide::Buffer<>>& outputs() { return outputs_; }

    // Reads the call's images and intermediate tensors into the caches, as the calls before it
    // leave them in a network: written just before, where its weights were read a network ago.
    void touch_activations() const {
        unsigned char sum = 0;
        for (const auto& [kind, buffer] : inputs_) {
            if (!buffer.defined() || (kind != SlotKind::images && kind != SlotKind::tensor)) continue;
            const auto* first = static_cast<const unsigned char*>(buffer.begin());
            const auto* last = static_cast<const unsigned char*>(buffer.end());
            for (const unsigned char* byte = first; byte < last; byte += 64) sum ^= *byte;
        }
        touched_ = sum;
    }

  private:
    // The preparation call that writes a prepared tensor.
    static size_t preparation_of(const Program& program, const Slot& slot) {
        for (size_t c = 0; c < program.preparation_calls.size(); c++) {
            const KernelCall& call = program.preparation_calls[c];
            const Slot& written = call.slots.back();
            if (written.kind == SlotKind::prepared && written.index == slot.index) return c;
        }
        throw std::logic_error("a prepared tensor that no preparation call writes");
    }

    static Halide::Buffer<> make(Halide::Type type, const std::vector<int64_t>& extents) {
        std::vector<int> sizes;
        for (int64_t e : extents) sizes.push_back(static_cast<int>(e));
        return Halide::Buffer<>(type, sizes);
    }

    static void fill(Halide::Buffer<>& buffer, SlotKind kind, int64_t classes, std::mt19937& random) {
        if (buffer.type() == Halide::Float(32)) {
            std::uniform_real_distribution<float> value(-1.0f, 1.0f);
            Halide::Buffer<float>(buffer).for_each_value([&](float& v) { v = value(random); });
        } else if (buffer.type() == Halide::Int(32)) {
            std::uniform_int_distribution<int> label(0, static_cast<int>(classes) - 1);
            Halide::Buffer<int32_t>(buffer).for_each_value(
                [&](int32_t& v) { v = kind == SlotKind::labels ? label(random) : 0; });
        } else {
            Halide::Buffer<uint8_t>(buffer).fill(0);  // a max pool's argmax: window position 0
        }
    }

    std::vector<codegen::ParameterLayout> layouts_;
    std::vector<std::pair<SlotKind, Halide::Buffer<>>> inputs_;
    std::vector<Halide::Buffer<>> outputs_;
    std::vector<std::pair<size_t, std::unique_ptr<CallBuffers>>> preparations_;
    mutable volatile unsigned char touched_ = 0;  // keeps touch_activations' reads
};

// Whether two runs' outputs agree: equal integers, floats within a small fraction of the
// output's largest magnitude (a schedule may sum in another order).
bool same_outputs(const std::vector<Halide::Buffer<>>& expected, const std::vector<Halide::Buffer<>>& got) {
    for (size_t o = 0; o < expected.size(); o++) {
        const Halide::Buffer<>& a = expected[o];
        const Halide::Buffer<>& b = got[o];
        if (a.type() == Halide::Float(32)) {
            double largest = 0, difference = 0;
            bool finite = true;
            const Halide::Buffer<const float> want(a), have(b);
            want.for_each_element([&](const int* position) {
                const double x = want(position), y = have(position);
                if (std::isfinite(x) != std::isfinite(y)) finite = false;
                if (std::isfinite(x) && std::isfinite(y)) {
                    largest = std::max(largest, std::abs(x));
                    difference = std::max(difference, std::abs(x - y));
                }
            });
            if (!finite || difference > 2e-3 * largest + 1e-6) return false;
        } else {
            if (a.size_in_bytes() != b.size_in_bytes() || std::memcmp(a.data(), b.data(), a.size_in_bytes()) != 0) {
                return false;
            }
        }
    }
    return true;
}

std::vector<Halide::Buffer<>> copies(const std::vector<Halide::Buffer<>>& buffers) {
    std::vector<Halide::Buffer<>> result;
    for (const Halide::Buffer<>& b : buffers) {
        // Outputs are allocated dense: copied whole, since Buffer::copy's per-element walk steps a
        // pointer far past the end of some shapes (undefined behaviour that UBSan reports).
        std::vector<int> extents, mins;
        bool dense = true;
        int64_t stride = 1;
        for (int d = 0; d < b.dimensions(); d++) {
            dense = dense && b.dim(d).stride() == stride;
            stride *= b.dim(d).extent();
            extents.push_back(b.dim(d).extent());
            mins.push_back(b.dim(d).min());
        }
        if (dense) {
            Halide::Buffer<> copy(b.type(), extents);
            copy.set_min(mins);
            std::memcpy(copy.data(), b.data(), b.size_in_bytes());
            result.push_back(copy);
        } else {
            result.push_back(b.copy());
        }
    }
    return result;
}

// The size of this machine's largest cache (Linux's sysfs), or 32 MB where it cannot be read.
int64_t read_last_level_cache_bytes() {
    int64_t largest = 0;
    for (int index = 0; index < 8; index++) {
        std::ifstream file(fmt::format("/sys/devices/system/cpu/cpu0/cache/index{}/size", index));
        std::string text;
        if (!(file >> text) || text.empty()) continue;
        int64_t scale = 1;
        if (text.back() == 'K') scale = int64_t(1) << 10;
        if (text.back() == 'M') scale = int64_t(1) << 20;
        try {
            largest = std::max<int64_t>(largest, std::stoll(text) * scale);
        } catch (const std::exception&) {
        }
    }
    return largest > 0 ? largest : int64_t(32) << 20;
}

// The same, read once per process (the tuner asks for each model it tunes and for its flush buffer).
int64_t last_level_cache_bytes() {
    static const int64_t bytes = read_last_level_cache_bytes();
    return bytes;
}

int64_t element_count(const std::vector<int64_t>& extents) {
    int64_t elements = 1;
    for (int64_t e : extents) elements *= e;
    return elements;
}

// Bytes a pass of `program` touches at `batch`, over-counted (tensors that share memory by
// lifetime are counted apart): its tensors, and the parameters with their velocities.
int64_t working_set_bytes(const Model& model, const Program& program, int batch, bool training) {
    int64_t bytes = 0;
    for (const codegen::ProgramTensor& t : program.tensors) {
        if (t.storage >= 0) continue;  // a view into another tensor
        bytes += (t.batched ? batch : 1) * element_count(t.extents) * (t.is_uint8 ? 1 : 4);
    }
    for (const codegen::ParameterLayout& layout : codegen::parameter_layouts(model)) {
        bytes += element_count(layout.internal_extents) * 4 * (training ? 2 : 1);
    }
    return bytes;
}

// Evicts the caches: in a network that outgrows them, a kernel's weights and inputs were last
// touched a whole network ago, so a kernel timed again and again with warm caches looks faster
// than it runs (ResNet-18's deep convs read megabytes of weights each). Writes twice the
// last-level cache.
void flush_caches() {
    static std::vector<char> junk(static_cast<size_t>(std::max<int64_t>(64 << 20, 2 * last_level_cache_bytes())));
    static char round = 0;
    round++;
    for (size_t i = 0; i < junk.size(); i += 64) junk[i] = round;
}

double median(std::vector<double> values) {
    std::nth_element(values.begin(), values.begin() + static_cast<long>(values.size() / 2), values.end());
    return values[values.size() / 2];
}

// JIT-compiles a built kernel, binds the call's buffers, runs it once to warm up, then `repeats`
// times, each from cold caches unless `warm` (its images and intermediate tensors read back in
// first, as a network's previous calls leave them); returns the median time in ms. The outputs
// hold the last run's values.
double run_timed(LoweredPipeline& kernel, CallBuffers& buffers, const Halide::Target& target, int repeats,
                 bool warm = false) {
    buffers.bind(kernel);
    kernel.pipeline.compile_jit(target);
    Halide::Realization outputs(buffers.outputs());
    kernel.pipeline.realize(outputs, target);
    std::vector<double> times;
    for (int r = 0; r < std::max(1, repeats); r++) {
        if (!warm) {
            flush_caches();
            buffers.touch_activations();
        }
        const Clock::time_point start = Clock::now();
        kernel.pipeline.realize(outputs, target);
        times.push_back(seconds_since(start) * 1e3);
    }
    return median(times);
}

// `text` with the names Halide made unique renamed: each identifier (a Func's "conv$12" or
// "closure_arg", as the first of its name is called, a loop's "conv$12.s0.c.c", a temporary's
// "t1874") becomes its letters and a number counted from its first appearance, so that builds of
// one schedule read alike however many Funcs were named before them. Type names (float32, x16)
// stay. The renaming is one to one within a text, and keeps the letters: two texts that read alike
// after it differ only in the digits of names.
std::string with_canonical_names(const std::string& text) {
    auto is_start = [](char ch) { return std::isalpha(static_cast<unsigned char>(ch)) || ch == '_' || ch == '$'; };
    auto is_part = [&](char ch) { return is_start(ch) || std::isdigit(static_cast<unsigned char>(ch)) || ch == '.'; };
    static const std::regex type_name("x[0-9]+|u?int[0-9]+|b?float[0-9]+");
    std::map<std::string, size_t> numbers;
    std::string out;
    out.reserve(text.size());
    size_t i = 0;
    while (i < text.size()) {
        if (!is_start(text[i]) || (i > 0 && is_part(text[i - 1]))) {
            out += text[i++];
            continue;
        }
        size_t end = i;
        while (end < text.size() && is_part(text[end])) end++;
        const std::string name = text.substr(i, end - i);
        i = end;
        if (std::regex_match(name, type_name)) {
            out += name;
            continue;
        }
        // The letters of each part between dots, '$' read as '_', with no '_' doubled or at an end.
        std::string letters;
        size_t part_start = 0;
        auto end_part = [&] {
            while (letters.size() > part_start && letters.back() == '_') letters.pop_back();
        };
        for (char ch : name) {
            if (std::isdigit(static_cast<unsigned char>(ch))) continue;
            if (ch == '.') {
                end_part();
                letters += '.';
                part_start = letters.size();
                continue;
            }
            if (ch == '$') ch = '_';
            if (ch == '_' && (letters.size() == part_start || letters.back() == '_')) continue;
            letters += ch;
        }
        end_part();
        out += letters + '#' + std::to_string(numbers.emplace(name, numbers.size()).first->second);
    }
    return out;
}

// A printed Halide module with its functions (a parallel loop's body is one of its own) sorted by
// their text with canonical names: a module lists them in the order of their names, which a build
// after more names were taken changes.
std::string in_canonical_order(const std::string& module) {
    auto starts_function = [](const std::string& line) {  // "external func f (...) {", "internal func ..."
        const size_t space = line.find(' ');
        return !line.empty() && std::islower(static_cast<unsigned char>(line[0])) && space != std::string::npos &&
               line.compare(space, 6, " func ") == 0;
    };
    std::string header;
    std::vector<std::string> functions;
    std::istringstream stream(module);
    for (std::string line; std::getline(stream, line);) {
        if (starts_function(line)) functions.emplace_back();
        (functions.empty() ? header : functions.back()) += line + '\n';
    }
    std::vector<std::pair<std::string, std::string>> keyed;
    for (std::string& function : functions) keyed.emplace_back(with_canonical_names(function), std::move(function));
    std::sort(keyed.begin(), keyed.end());
    for (auto& [key, function] : keyed) header += function;
    return header;
}

// Every parameter of `point` drawn at random from its list.
ScheduleParameters random_point(ScheduleParameters point, const TunableStage& stage, std::mt19937& random) {
    for (const auto& [name, values] : stage.space) {
        point[name] = values[std::uniform_int_distribution<size_t>(0, values.size() - 1)(random)];
    }
    return point;
}

// One parameter moved to the next or previous value of its list.
ScheduleParameters neighbour_point(ScheduleParameters point, const TunableStage& stage, std::mt19937& random) {
    std::vector<const std::pair<const std::string, std::vector<int>>*> movable;
    for (const auto& entry : stage.space) {
        if (entry.second.size() > 1) movable.push_back(&entry);
    }
    if (movable.empty()) return point;
    const auto& [name, values] = *movable[std::uniform_int_distribution<size_t>(0, movable.size() - 1)(random)];
    const auto at = std::find(values.begin(), values.end(), point[name]);
    const long index = at == values.end() ? 0 : at - values.begin();
    const long step = std::uniform_int_distribution<int>(0, 1)(random) ? 1 : -1;
    point[name] = values[static_cast<size_t>(std::clamp<long>(index + step, 0, static_cast<long>(values.size()) - 1))];
    return point;
}

// The parameterised stages each kernel of `program` holds, as building it for `target` records
// them into `recorded` (the lowering options' tunable_stages).
std::vector<std::vector<TunableStage>> stages_per_kernel(const Program& program, const Halide::Target& target,
                                                         std::vector<TunableStage>& recorded) {
    std::vector<std::vector<TunableStage>> stages(program.kernels.size());
    for (size_t k = 0; k < program.kernels.size(); k++) {
        recorded.clear();
        program.build(static_cast<int>(k), target);
        stages[k] = recorded;
    }
    recorded.clear();
    return stages;
}

// A stage's starting point: the database's parameters where they are valid, else the heuristics'.
ScheduleParameters starting_point(const TunableStage& stage, const ScheduleDatabase& database, const std::string& key) {
    const auto stored = database.find(key, stage.signature);
    return stored ? cpu::override_within(stage.defaults, *stored, stage.space) : stage.defaults;
}

// One stage to tune: where it is measured and what it may be.
struct Job {
    const Program* program = nullptr;
    int kernel = -1;
    int call = -1;
    std::string where;
    TunableStage stage;
};

class Tuner {
  public:
    Tuner(const Model& model, const Halide::Target& target, ScheduleDatabase& database, const TuneOptions& options)
        : model_(model),
          target_(jit_target(target)),
          key_(database_target(target)),
          database_(database),
          working_(database),
          options_(options),
          random_(options.seed) {
        lowering_.database = &working_;
        lowering_.tunable_stages = &recorded_;
    }

    std::vector<TunedStage> run() {
        const Clock::time_point started = Clock::now();
        std::vector<Program> programs;
        std::vector<std::string> names;
        if (options_.training) {
            programs.push_back(codegen::plan_training_step(model_, lowering_));
            names.push_back("training");
        }
        if (options_.inference) {
            programs.push_back(codegen::plan_inference(model_, lowering_));
            names.push_back("inference");
        }
        std::vector<Job> jobs;
        std::set<std::string> seen;
        for (size_t p = 0; p < programs.size(); p++) {
            const Program& program = programs[p];
            const std::vector<std::vector<TunableStage>> stages = stages_per_kernel(program, target_, recorded_);
            std::vector<bool> listed(program.kernels.size(), false);
            for (int c = 0; c < static_cast<int>(program.calls.size()); c++) {
                const int k = program.calls[static_cast<size_t>(c)].kernel;
                if (listed[static_cast<size_t>(k)]) continue;
                listed[static_cast<size_t>(k)] = true;
                for (const TunableStage& stage : stages[static_cast<size_t>(k)]) {
                    if (!seen.insert(stage.signature).second) continue;
                    jobs.push_back({&program, k, c,
                                    fmt::format("{} ({})", program.calls[static_cast<size_t>(c)].what, names[p]),
                                    stage});
                }
            }
        }
        recorded_.clear();
        lowering_.tunable_stages = nullptr;
        int64_t working_set = 0;
        for (size_t p = 0; p < programs.size(); p++) {
            working_set = std::max(working_set,
                                   working_set_bytes(model_, programs[p], options_.batch, names[p] == "training"));
        }
        const int64_t cache = last_level_cache_bytes();
        warm_ = options_.caches == TuneOptions::Caches::warm ||
                (options_.caches == TuneOptions::Caches::automatic && 2 * working_set <= cache);
        report(fmt::format("{}: {} parameterised stages to tune for {} in {:.0f} s, batch {}, caches {} ({} MB "
                           "of tensors and parameters, {} MB of last-level cache)",
                           model_.name(), jobs.size(), key_, options_.budget_seconds, options_.batch,
                           warm_ ? "warm" : "cold", working_set >> 20, cache >> 20));

        std::vector<TunedStage> results;
        for (size_t j = 0; j < jobs.size(); j++) {
            const double left = options_.budget_seconds - seconds_since(started);
            const double share = std::max(0.0, left / static_cast<double>(jobs.size() - j));
            results.push_back(tune(jobs[j], share, fmt::format("[{}/{}]", j + 1, jobs.size())));
        }
        return results;
    }

  private:
    struct Measurement {
        bool ok = false;
        double ms = 0;
        std::string error;
    };

    TunedStage tune(const Job& job, double seconds, const std::string& counter) {
        const Clock::time_point started = Clock::now();
        const TunableStage& stage = job.stage;
        TunedStage result;
        result.signature = stage.signature;
        result.kernel = job.where;

        const ScheduleParameters start = starting_point(stage, database_, key_);
        CallBuffers buffers(model_, *job.program, job.program->calls[static_cast<size_t>(job.call)], options_.batch,
                            random_);
        std::vector<Halide::Buffer<>> reference;
        std::set<ScheduleParameters> tried;
        std::map<size_t, Measurement> by_code;  // each distinct code's measurement, by canonical_lowered_code's hash

        auto measure = [&](const ScheduleParameters& candidate) {
            tried.insert(candidate);
            result.candidates++;
            working_.insert(key_, stage.signature, candidate);
            Measurement m;
            try {
                LoweredPipeline kernel = job.program->build(job.kernel, target_);
                std::vector<LoweredPipeline> preparations = buffers.build_preparations(*job.program, target_);
                const size_t code = std::hash<std::string>{}(canonical_lowered_code(kernel, preparations, target_));
                if (const auto same = by_code.find(code); same != by_code.end()) {
                    result.equivalent++;
                    return same->second;
                }
                buffers.prepare(preparations, target_);
                const double ms = run_timed(kernel, buffers, target_, options_.repeats, warm_);
                if (reference.empty()) reference = copies(buffers.outputs());
                if (same_outputs(reference, buffers.outputs())) {
                    m.ok = true;
                    m.ms = ms;
                } else {
                    m.error = "computed other numbers than the starting schedule";
                    result.rejected++;
                }
                by_code[code] = m;
            } catch (const Halide::Error& e) {
                m.error = e.what();
                result.rejected++;
            }
            return m;
        };

        const Measurement first = measure(start);
        if (!first.ok) {
            // The starting schedule itself fails: leave the stage to the heuristics.
            working_.insert(key_, stage.signature, stage.defaults);
            report(fmt::format("{} {} ({}): the starting schedule failed: {}", counter, stage.signature, job.where,
                               first.error));
            result.chosen = stage.defaults;
            return result;
        }
        ScheduleParameters best = start;
        result.default_ms = result.best_ms = first.ms;
        // The heuristics' own choice is always a candidate, so that a stored winner found under other
        // conditions (another program, batch or cache state) cannot keep a stage slower than them.
        std::string heuristics_text;
        if (start != stage.defaults) {
            const Measurement heuristics = measure(stage.defaults);
            heuristics_text = heuristics.ok ? fmt::format(" (the heuristics: {:.3f} ms)", heuristics.ms)
                                            : " (the heuristics failed)";
            if (heuristics.ok && heuristics.ms < result.best_ms) {
                result.best_ms = heuristics.ms;
                best = stage.defaults;
            }
        }

        size_t space_size = 1;
        for (const auto& [name, values] : stage.space)
            space_size = std::min<size_t>(space_size * values.size(), 1u << 30);
        int attempts = 0, misses = 0;
        while (seconds_since(started) < seconds && tried.size() < space_size && misses < 10000) {
            const ScheduleParameters candidate =
                ++attempts % 2 == 0 ? neighbour_point(best, stage, random_) : random_point(start, stage, random_);
            if (tried.count(candidate)) {
                misses++;
                continue;
            }
            misses = 0;
            const Measurement m = measure(candidate);
            if (m.ok && m.ms < result.best_ms) {
                result.best_ms = m.ms;
                best = candidate;
            }
        }
        std::string confirmation;
        if (best != start) {
            const double searched_ms = result.best_ms;
            const auto [start_ms, best_ms] = timed_alternately(job, start, best, buffers);
            result.default_ms = start_ms;
            if (best_ms < start_ms) {
                confirmation = fmt::format("; it held timed alternately with the start ({:.3f} ms in the search)",
                                           searched_ms);
                result.best_ms = best_ms;
            } else {
                confirmation = fmt::format("; its {:.3f} ms did not hold timed alternately with the start ({:.3f} "
                                           "against {:.3f} ms): the start is kept",
                                           searched_ms, best_ms, start_ms);
                result.best_ms = start_ms;
                best = start;
            }
        }
        working_.insert(key_, stage.signature, best);
        database_.insert(key_, stage.signature, best);
        result.chosen = best;
        report(fmt::format("{} {} ({}): {:.3f} ms{} -> {:.3f} ms ({:.2f}x), {} in {} candidates{}{}{}", counter,
                           stage.signature, job.where, result.default_ms, heuristics_text, result.best_ms,
                           result.default_ms / result.best_ms, parameters_text(best), result.candidates,
                           result.equivalent ? fmt::format(" ({} of them the code of another)", result.equivalent) : "",
                           result.rejected ? fmt::format(", {} rejected", result.rejected) : "", confirmation));
        return result;
    }

    // The search times each candidate once, in its own moment: a winner found while the machine
    // was quiet can be one that only met a quieter minute than the start did. So the winner and the
    // start are timed again in alternation, and each one's median of those rounds is returned.
    std::pair<double, double> timed_alternately(const Job& job, const ScheduleParameters& start,
                                                const ScheduleParameters& winner, CallBuffers& buffers) {
        constexpr int rounds = 5;
        struct Built {
            LoweredPipeline kernel;
            std::vector<LoweredPipeline> preparations;  // of its prepared inputs, laid out as it reads them
        };
        auto build = [&](const ScheduleParameters& parameters) {
            working_.insert(key_, job.stage.signature, parameters);
            return Built{job.program->build(job.kernel, target_), buffers.build_preparations(*job.program, target_)};
        };
        Built start_built = build(start), winner_built = build(winner);
        auto timed = [&](Built& built) {
            buffers.prepare(built.preparations, target_);
            return run_timed(built.kernel, buffers, target_, options_.repeats, warm_);
        };
        std::vector<double> start_ms, winner_ms;
        for (int r = 0; r < rounds; r++) {
            start_ms.push_back(timed(start_built));
            winner_ms.push_back(timed(winner_built));
        }
        return {median(start_ms), median(winner_ms)};
    }

    void report(const std::string& line) const {
        if (options_.progress) options_.progress(line);
    }

    const Model& model_;
    Halide::Target target_;
    std::string key_;
    ScheduleDatabase& database_;
    ScheduleDatabase working_;  // the database with the candidate being measured
    TuneOptions options_;
    std::mt19937 random_;
    bool warm_ = false;  // time candidates from the caches the previous run left
    std::vector<TunableStage> recorded_;
    codegen::LoweringOptions lowering_;
};

}  // namespace

std::string canonical_lowered_code(const LoweredPipeline& kernel, const std::vector<LoweredPipeline>& preparations,
                                   const Halide::Target& target) {
    std::string text;
    auto lower = [&](const LoweredPipeline& built) {
        Halide::Pipeline pipeline = built.pipeline;  // a handle: lowering leaves it as it is
        std::ostringstream module;
        module << pipeline.compile_to_module(built.arguments, "candidate", target);
        text += in_canonical_order(module.str());
    };
    lower(kernel);
    for (const LoweredPipeline& preparation : preparations) lower(preparation);
    return with_canonical_names(text);
}

std::string parameters_text(const ScheduleParameters& p) {
    std::string text;
    for (const auto& [name, value] : p) text += fmt::format("{}{}={}", text.empty() ? "" : " ", name, value);
    return text;
}

bool runs_on_this_machine(const Halide::Target& target) {
    using F = Halide::Target::Feature;
    const Halide::Target host = Halide::get_host_target();
    if (target.arch != host.arch || target.bits != host.bits || target.os != host.os) return false;
    for (F isa : {F::SSE41, F::AVX, F::AVX2, F::FMA, F::FMA4, F::F16C, F::AVX512, F::AVX512_KNL, F::AVX512_Skylake,
                  F::AVX512_Cannonlake, F::AVX512_SapphireRapids}) {
        if (target.has_feature(isa) && !host.has_feature(isa)) return false;
    }
    return true;
}

std::string database_target(const Halide::Target& target) {
    return cpu::target_key(target);
}

std::vector<TunedStage> tune_model(const Model& model, const Halide::Target& target, ScheduleDatabase& database,
                                   const TuneOptions& options) {
    if (!runs_on_this_machine(target)) {
        throw std::runtime_error(fmt::format("cannot tune for {}: this machine ({}) does not run it",
                                             target.to_string(), Halide::get_host_target().to_string()));
    }
    return Tuner(model, target, database, options).run();
}

namespace {

// Loads an autoscheduler's plugin once ("Mullapudi2016" -> libautoschedule_mullapudi2016.so).
void load_autoscheduler(const std::string& name, const std::string& plugin_dir) {
    static std::set<std::string> loaded;
    if (loaded.count(name)) return;
    std::string file = name;
    std::transform(file.begin(), file.end(), file.begin(), [](unsigned char c) { return std::tolower(c); });
    Halide::load_plugin(plugin_dir + "/libautoschedule_" + file + ".so");
    loaded.insert(name);
}

// The estimates an autoscheduler plans with: the call's buffer extents and scalar values.
void set_estimates(LoweredPipeline& kernel, CallBuffers& buffers) {
    buffers.bind(kernel);  // scalars first get their values, so they can be estimated from them
    for (size_t i = 0; i < kernel.parameters.size(); i++) {
        Halide::Internal::Parameter& parameter = kernel.parameters[i];
        if (parameter.is_buffer()) {
            const Halide::Buffer<> bound = parameter.buffer();
            for (int d = 0; d < bound.dimensions(); d++) {
                parameter.set_min_constraint_estimate(d, bound.dim(d).min());
                parameter.set_extent_constraint_estimate(d, bound.dim(d).extent());
            }
        } else {
            parameter.set_estimate(parameter.scalar_expr());
        }
    }
    size_t next = 0;
    for (Halide::Func output : kernel.pipeline.outputs()) {
        const Halide::Buffer<>& buffer = buffers.outputs()[next];
        Halide::Region region;
        for (int d = 0; d < buffer.dimensions(); d++) region.push_back({buffer.dim(d).min(), buffer.dim(d).extent()});
        output.set_estimates(region);
        next += static_cast<size_t>(output.outputs());
    }
}

}  // namespace

std::vector<KernelComparison> compare_with_autoschedulers(const Model& model, const Halide::Target& target,
                                                          const ScheduleDatabase& database,
                                                          const AutoschedulerOptions& options) {
    if (!runs_on_this_machine(target)) {
        throw std::runtime_error(fmt::format("cannot measure {} on this machine ({})", target.to_string(),
                                             Halide::get_host_target().to_string()));
    }
    const Halide::Target jit = jit_target(target);
    codegen::LoweringOptions scheduled, unscheduled;
    scheduled.database = &database;
    // Kernel against kernel, each laying out its own weights: an autoscheduled kernel reads none prepared.
    scheduled.prepare_weights = false;
    unscheduled.unscheduled = true;
    const Program ours =
        options.training ? codegen::plan_training_step(model, scheduled) : codegen::plan_inference(model, scheduled);
    const Program theirs = options.training ? codegen::plan_training_step(model, unscheduled)
                                            : codegen::plan_inference(model, unscheduled);
    for (const std::string& name : options.autoschedulers) load_autoscheduler(name, options.plugin_dir);
    // What the autoschedulers are told of the machine: its cores, a 16 MB last-level cache and
    // Halide's default balance (the values of Halide's own apps).
    const Halide::MachineParams machine(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())),
                                        16 * 1024 * 1024, 40);
    std::mt19937 random(1);

    std::vector<KernelComparison> results;
    std::vector<int> first_call(ours.kernels.size(), -1), calls(ours.kernels.size(), 0);
    for (int c = 0; c < static_cast<int>(ours.calls.size()); c++) {
        const int k = ours.calls[static_cast<size_t>(c)].kernel;
        if (first_call[static_cast<size_t>(k)] < 0) first_call[static_cast<size_t>(k)] = c;
        calls[static_cast<size_t>(k)]++;
    }
    for (size_t k = 0; k < ours.kernels.size(); k++) {
        const int c = first_call[k];
        if (c < 0) continue;
        KernelComparison row;
        row.kernel = ours.calls[static_cast<size_t>(c)].what;
        row.calls = calls[k];
        CallBuffers buffers(model, ours, ours.calls[static_cast<size_t>(c)], options.batch, random);
        LoweredPipeline kernel = ours.build(static_cast<int>(k), jit);
        row.convgen_ms = run_timed(kernel, buffers, jit, options.repeats);
        const std::vector<Halide::Buffer<>> reference = copies(buffers.outputs());
        std::string line = fmt::format("{} (x{}): convgen {:.3f} ms", row.kernel, row.calls, row.convgen_ms);
        for (const std::string& name : options.autoschedulers) {
            try {
                LoweredPipeline bare = theirs.build(static_cast<int>(k), jit);
                set_estimates(bare, buffers);
                const Halide::AutoSchedulerResults chosen = bare.pipeline.auto_schedule(name, jit, machine);
                if (options.print_schedules && options.progress) {
                    options.progress(fmt::format("{}'s schedule of {}:\n{}", name, row.kernel, chosen.schedule_source));
                }
                const double ms = run_timed(bare, buffers, jit, options.repeats);
                if (!same_outputs(reference, buffers.outputs())) throw std::runtime_error("computed other numbers");
                row.autoscheduled_ms[name] = ms;
                line += fmt::format(", {} {:.3f} ms", name, ms);
            } catch (const std::exception& e) {
                std::string why = e.what();
                if (const size_t end = why.find('\n'); end != std::string::npos) why.resize(end);
                row.errors[name] = why;
                line += fmt::format(", {} failed ({})", name, why);
            }
        }
        if (options.progress) options.progress(line);
        results.push_back(std::move(row));
    }
    return results;
}


// ---- tuning over RPC: plan here, measure on the target's machine, choose here ----

ScheduleDatabase RemoteTuningPlan::database(size_t k, ScheduleDatabase base) const {
    for (size_t s = 0; s < stages.size(); s++) base.insert(target, stages[s].stage.signature, candidates.at(k)[s]);
    return base;
}

std::string RemoteTuningPlan::to_json() const {
    nlohmann::json document = {{"format", "convgen-remote-tuning"}, {"target", target}, {"program", program}};
    document["stages"] = nlohmann::json::array();
    for (size_t s = 0; s < stages.size(); s++) {
        const RemoteStage& stage = stages[s];
        nlohmann::json candidates_of_stage = nlohmann::json::array();
        for (const auto& candidate : candidates) candidates_of_stage.push_back(candidate[s]);
        document["stages"].push_back({{"signature", stage.stage.signature},
                                      {"calls", stage.calls},
                                      {"call_names", stage.call_names},
                                      {"defaults", stage.stage.defaults},
                                      {"space", stage.stage.space},
                                      {"candidates", candidates_of_stage}});
    }
    return document.dump(2);
}

RemoteTuningPlan RemoteTuningPlan::from_json(const std::string& text) {
    try {
        const nlohmann::json document = nlohmann::json::parse(text);
        if (document.value("format", "") != "convgen-remote-tuning") {
            throw std::runtime_error("not a convgen remote-tuning plan");
        }
        RemoteTuningPlan plan;
        plan.target = document.at("target").get<std::string>();
        plan.program = document.at("program").get<std::string>();
        for (const nlohmann::json& stage : document.at("stages")) {
            RemoteStage remote;
            remote.stage.signature = stage.at("signature").get<std::string>();
            remote.stage.defaults = stage.at("defaults").get<ScheduleParameters>();
            remote.stage.space = stage.at("space").get<ParameterSpace>();
            remote.calls = stage.at("calls").get<std::vector<int>>();
            remote.call_names = stage.at("call_names").get<std::vector<std::string>>();
            const auto candidates = stage.at("candidates").get<std::vector<ScheduleParameters>>();
            if (plan.candidates.empty()) plan.candidates.resize(candidates.size());
            if (candidates.size() != plan.candidates.size()) {
                throw std::runtime_error("stage " + remote.stage.signature + " has another number of candidates");
            }
            for (size_t k = 0; k < candidates.size(); k++) plan.candidates[k].push_back(candidates[k]);
            plan.stages.push_back(std::move(remote));
        }
        return plan;
    } catch (const nlohmann::json::exception& e) {
        throw std::runtime_error(std::string("remote-tuning plan: ") + e.what());
    }
}

RemoteTuningPlan plan_remote_tuning(const Model& model, const Halide::Target& target, const ScheduleDatabase& start,
                                    int candidates, bool training, uint32_t seed) {
    if (candidates < 1) throw std::invalid_argument("remote tuning needs at least one candidate");
    std::vector<TunableStage> recorded;
    codegen::LoweringOptions lowering = codegen::LoweringOptions::for_library({target}, &start);
    lowering.tunable_stages = &recorded;
    const Program program = training ? codegen::plan_training_step(model, lowering) : codegen::plan_inference(model, lowering);
    const std::vector<std::vector<TunableStage>> stages = stages_per_kernel(program, target, recorded);

    RemoteTuningPlan plan;
    plan.target = database_target(target);
    plan.program = training ? "train_step" : "predict";
    std::map<std::string, size_t> index;  // signature -> stage
    for (int c = 0; c < static_cast<int>(program.calls.size()); c++) {
        const KernelCall& call = program.calls[static_cast<size_t>(c)];
        std::set<std::string> in_this_call;
        for (const TunableStage& stage : stages[static_cast<size_t>(call.kernel)]) {
            if (!in_this_call.insert(stage.signature).second) continue;
            auto [at, added] = index.emplace(stage.signature, plan.stages.size());
            if (added) plan.stages.push_back({stage, {}, {}});
            plan.stages[at->second].calls.push_back(c);
            plan.stages[at->second].call_names.push_back(call.what);
        }
    }
    std::vector<ScheduleParameters> first;
    for (const RemoteStage& stage : plan.stages) first.push_back(starting_point(stage.stage, start, plan.target));
    std::mt19937 random(seed);
    plan.candidates.resize(static_cast<size_t>(candidates));
    // Each stage's points drawn so far: a point drawn again is drawn anew (a few times), so that the
    // GPU's time goes to points not yet timed while the space has them.
    std::vector<std::set<ScheduleParameters>> drawn(plan.stages.size());
    for (size_t k = 0; k < plan.candidates.size(); k++) {
        for (size_t s = 0; s < plan.stages.size(); s++) {
            const TunableStage& stage = plan.stages[s].stage;
            ScheduleParameters point = first[s];
            for (int attempt = 0; k > 0 && attempt < 20; attempt++) {
                point = k % 2 == 1 ? random_point(first[s], stage, random) : neighbour_point(first[s], stage, random);
                if (!drawn[s].count(point)) break;
            }
            drawn[s].insert(point);
            plan.candidates[k].push_back(std::move(point));
        }
    }
    return plan;
}

namespace {

// Each call's mean time per run in `program`'s section of a CONVGEN_PROFILE text, by call index;
// empty when the section is missing.
std::vector<double> profiled_call_ms(const std::string& profile, const std::string& program) {
    std::vector<double> ms;
    std::istringstream lines(profile);
    std::string line;
    bool inside = false;
    while (std::getline(lines, line)) {
        if (!line.empty() && line[0] != ' ') {
            // A section header: "<library> <program>: N runs, X ms per run".
            inside = line.find(" " + program + ": ") != std::string::npos;
            continue;
        }
        if (!inside) continue;
        std::istringstream fields(line);
        double value = 0;
        std::string unit;
        if (fields >> value >> unit && unit == "ms") ms.push_back(value);
    }
    return ms;
}

}  // namespace

std::vector<TunedStage> choose_remote_winners(const RemoteTuningPlan& plan, const std::vector<std::string>& profiles,
                                              ScheduleDatabase& database) {
    std::vector<std::vector<double>> call_ms;
    for (const std::string& profile : profiles) call_ms.push_back(profiled_call_ms(profile, plan.program));
    std::vector<TunedStage> results;
    for (size_t s = 0; s < plan.stages.size(); s++) {
        const RemoteStage& stage = plan.stages[s];
        TunedStage result;
        result.signature = stage.stage.signature;
        result.kernel = stage.call_names.empty() ? "" : stage.call_names.front();
        double best = 0;
        for (size_t k = 0; k < plan.candidates.size() && k < call_ms.size(); k++) {
            double total = 0;
            bool timed = true;
            for (int c : stage.calls) {
                if (static_cast<size_t>(c) >= call_ms[k].size()) timed = false;
                else total += call_ms[k][static_cast<size_t>(c)];
            }
            if (!timed) {
                result.rejected++;
                continue;
            }
            result.candidates++;
            if (k == 0) result.default_ms = total;
            if (result.candidates == 1 || total < best) {
                best = total;
                result.chosen = plan.candidates[k][s];
            }
        }
        if (result.candidates == 0) continue;
        result.best_ms = best;
        database.insert(plan.target, stage.stage.signature, result.chosen);
        results.push_back(result);
    }
    return results;
}

}  // namespace convgen::schedules
