#include <convgen/codegen/emit.h>
#include <convgen/codegen/lower.h>

#include "templates.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

namespace convgen::codegen {

namespace {

const char* convgen_version = CONVGEN_VERSION;

std::string upper(std::string text) {
    for (char& ch : text) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    return text;
}

std::string substitute(std::string text, const std::vector<std::pair<std::string, std::string>>& values) {
    for (const auto& [key, value] : values) {
        const std::string marker = "@" + key + "@";
        for (size_t at = text.find(marker); at != std::string::npos; at = text.find(marker, at + value.size())) {
            text.replace(at, marker.size(), value);
        }
    }
    return text;
}

void write_file(const std::filesystem::path& path, const std::string& contents) {
    const std::filesystem::path temporary = path.string() + ".tmp";
    {
        std::ofstream file(temporary, std::ios::binary | std::ios::trunc);
        file << contents;
        if (!file) throw std::runtime_error(fmt::format("{}: cannot write", temporary.string()));
    }
    std::filesystem::rename(temporary, path);
}

std::string initializer_name(Initializer initializer) {
    switch (initializer) {
        case Initializer::he_normal:
            return "he_normal";
        case Initializer::glorot_uniform:
            return "glorot_uniform";
        case Initializer::zeros:
            return "zeros";
        case Initializer::ones:
            return "ones";
    }
    return "zeros";
}

std::string array4(const std::vector<int64_t>& values) {
    std::vector<int64_t> padded = values;
    padded.resize(4, 0);
    return fmt::format("{{{}}}", fmt::join(padded, ", "));
}

std::string parameter_table(const std::vector<ParameterLayout>& layouts, const std::vector<bool>& updated) {
    std::string table;
    for (size_t i = 0; i < layouts.size(); i++) {
        const ParameterLayout& p = layouts[i];
        table += fmt::format("    {{\"{}\", {}, {}, {}, {}, {}, Initializer::{}, {}, {}, {}, {}, {}}},\n", p.spec.name,
                             p.spec.shape.rank(), array4(p.spec.shape.dims), p.internal_extents.size(),
                             array4(p.internal_extents), array4(p.public_strides), initializer_name(p.spec.initializer),
                             p.spec.fan_in, p.spec.fan_out, p.spec.shape.elements(), p.spec.trainable,
                             static_cast<bool>(updated.at(i)));
    }
    return table;
}

// The layers whose outputs the prediction keeps, and where: (name, predict tensor).
std::string layer_output_table(const Program& predict) {
    std::string table;
    for (const auto& [layer, tensor] : predict.layer_outputs) table += fmt::format("    {{\"{}\", {}}},\n", layer, tensor);
    if (table.empty()) table = "    {\"\", -1},\n";
    return table + fmt::format("}};\nconstexpr int layer_output_count = {};\n", predict.layer_outputs.size());
}

nlohmann::json augmentation_json(const Augmentation& augmentation) {
    nlohmann::json steps = nlohmann::json::array();
    for (const AugmentationStep& step : augmentation.steps) steps.push_back(describe(step));
    return {{"steps", steps}, {"pixel_mean", augmentation.pixel_mean}, {"pixel_std", augmentation.pixel_std}};
}

// The C expression a generated program passes for a slot (see ProgramCall in the template).
std::string slot_expression(const Slot& slot) {
    switch (slot.kind) {
        case SlotKind::images:
            return "c.images->get()";
        case SlotKind::labels:
            return "c.labels->get()";
        case SlotKind::tensor:
            return fmt::format("c.workspace->buffers[{}].get()", slot.index);
        case SlotKind::value:
            return fmt::format("(*c.values)[{}].get()", slot.index);
        case SlotKind::velocity:
            return fmt::format("(*c.velocities)[{}].get()", slot.index);
        case SlotKind::new_value:
            return fmt::format("(*c.new_values)[{}].get()", slot.index);
        case SlotKind::new_velocity:
            return fmt::format("(*c.new_velocities)[{}].get()", slot.index);
        case SlotKind::loss:
            return "c.loss->get()";
        case SlotKind::correct:
            return "c.correct->get()";
        case SlotKind::probabilities:
            return "c.probabilities->get()";
        case SlotKind::learning_rate:
            return "c.model->learning_rate";
        case SlotKind::momentum:
            return "c.model->momentum";
        case SlotKind::weight_decay:
            return "c.model->weight_decay";
        case SlotKind::step_seed:
            return "c.step_seed";
        case SlotKind::dropout_enabled:
            return "c.model->dropout";
        case SlotKind::augmentation_enabled:
            return "c.model->augmentation";
        case SlotKind::augmented_images:
            return "c.augmented->get()";
        case SlotKind::prepared:
            return fmt::format("(*c.prepared)[{}].get()", slot.index);
    }
    return "";
}

std::string c_type(const Halide::Type& type) {
    if (type.is_bool()) return "bool";
    if (type.is_float()) return "float";
    if (type.is_uint() && type.bits() == 32) return "uint32_t";
    throw std::runtime_error("convgen: a kernel takes a scalar of an unexpected type");
}

// What emit needs of one program: its name ("train" / "predict"), the plan, and each distinct
// kernel's C parameter list.
struct EmittedProgram {
    std::string name;
    Program program;
    std::vector<std::string> signatures;  // "void*, halide_buffer_t*, float, ..."
};

std::string kernel_symbol(const std::string& model, const EmittedProgram& p, size_t kernel, const std::string& suffix) {
    return fmt::format("{}_{}_k{}_{}", model, p.name, kernel, suffix);
}

// Declarations, per-target function tables and the program functions of the generated source.
std::string program_source(const std::string& model, const std::vector<EmittedProgram>& programs,
                           const std::vector<TargetChoice>& targets) {
    std::string out;
    for (const EmittedProgram& p : programs) {
        for (size_t k = 0; k < p.signatures.size(); k++) {
            for (const TargetChoice& t : targets) {
                out += fmt::format("extern \"C\" int {}({});\n", kernel_symbol(model, p, k, t.suffix), p.signatures[k]);
            }
        }
        out += fmt::format("\nstruct {}Kernels {{\n", p.name);
        for (size_t k = 0; k < p.signatures.size(); k++)
            out += fmt::format("    int (*k{})({});\n", k, p.signatures[k]);
        out += "};\n";
        out += fmt::format("const {0}Kernels {0}_kernels[] = {{\n", p.name);
        for (const TargetChoice& t : targets) {
            std::vector<std::string> symbols;
            for (size_t k = 0; k < p.signatures.size(); k++) symbols.push_back(kernel_symbol(model, p, k, t.suffix));
            out += fmt::format("    {{{}}},\n", fmt::join(symbols, ", "));
        }
        out += "};\n";
        std::vector<std::string> names;
        for (const KernelCall& call : p.program.calls) names.push_back(fmt::format("\"{}\"", call.what));
        out += fmt::format("const char* const {}_call_names[] = {{{}}};\n", p.name, fmt::join(names, ", "));
        out += fmt::format("constexpr int {}_call_count = {};\n", p.name, names.size());
        // The float tensors each call writes, for finding where a value first went non-finite.
        std::vector<int> written, begin = {0};
        for (const KernelCall& call : p.program.calls) {
            for (size_t s = call.slots.size() - static_cast<size_t>(call.outputs); s < call.slots.size(); s++) {
                const Slot& slot = call.slots[s];
                if (slot.kind == SlotKind::tensor && !p.program.tensors[static_cast<size_t>(slot.index)].is_uint8) {
                    written.push_back(slot.index);
                }
            }
            begin.push_back(static_cast<int>(written.size()));
        }
        if (written.empty()) written.push_back(-1);
        out += fmt::format("const int {}_written_tensors[] = {{{}}};\n", p.name, fmt::join(written, ", "));
        out += fmt::format("const int {}_written_begin[] = {{{}}};\n", p.name, fmt::join(begin, ", "));
        // Each tensor's lifetime: the first and the last call that touch it (or one of its views).
        // A layer output the prediction keeps for reading afterwards lives to the end.
        const int call_count = static_cast<int>(p.program.calls.size());
        std::vector<int> first_call(p.program.tensors.size(), -1), last_call(p.program.tensors.size(), -1);
        auto memory_of = [&](int tensor) {
            const int storage = p.program.tensors[static_cast<size_t>(tensor)].storage;
            return static_cast<size_t>(storage >= 0 ? storage : tensor);
        };
        for (int c = 0; c < call_count; c++) {
            for (const Slot& slot : p.program.calls[static_cast<size_t>(c)].slots) {
                if (slot.kind != SlotKind::tensor) continue;
                const size_t t = memory_of(slot.index);
                if (first_call[t] < 0) first_call[t] = c;
                last_call[t] = c;
            }
        }
        for (const auto& [layer, tensor] : p.program.layer_outputs) last_call[memory_of(tensor)] = call_count;
        out += fmt::format("const TensorDescriptor {}_tensors[] = {{\n", p.name);
        for (size_t i = 0; i < p.program.tensors.size(); i++) {
            const ProgramTensor& t = p.program.tensors[i];
            std::vector<int64_t> extents = t.extents;
            if (t.extents.size() + (t.batched ? 1 : 0) > 4) {
                throw std::logic_error(fmt::format("tensor '{}' has more than 4 dimensions", t.name));
            }
            extents.resize(4, 0);
            // A tensor no call touches (none should be) is kept for the whole program.
            const int first = first_call[i] < 0 ? 0 : first_call[i], last = first_call[i] < 0 ? call_count : last_call[i];
            out +=
                fmt::format("    {{\"{}\", {}, {{{}}}, {}, {}, {}, {}, {}, {}}},\n", t.name, t.extents.size(),
                            fmt::join(extents, ", "), t.batched, t.is_uint8, first, last, t.storage, t.channel_offset);
        }
        if (p.program.tensors.empty()) out += "    {\"\", 0, {0, 0, 0}, false, false, 0, 0, -1, 0},\n";
        out += "};\n";
        out += fmt::format("constexpr int {}_tensor_count = {};\n", p.name, p.program.tensors.size());
        // The prepared tensors (inference), each a flat float array, and the calls that write them.
        // (C++ has no empty arrays: an unused element where there are none.)
        std::vector<std::string> prepared, preparation_names;
        for (const PreparedTensor& t : p.program.prepared) prepared.push_back(std::to_string(t.elements));
        for (const KernelCall& call : p.program.preparation_calls) preparation_names.push_back(fmt::format("\"{}\"", call.what));
        if (prepared.empty()) prepared.push_back("0");
        if (preparation_names.empty()) preparation_names.push_back("\"\"");
        out += fmt::format("const int64_t {}_prepared_elements[] = {{{}}};\n", p.name, fmt::join(prepared, ", "));
        out += fmt::format("constexpr int {}_prepared_count = {};\n", p.name, p.program.prepared.size());
        out += fmt::format("const char* const {}_preparation_call_names[] = {{{}}};\n", p.name,
                           fmt::join(preparation_names, ", "));
        out += fmt::format("constexpr int {}_preparation_call_count = {};\n", p.name, p.program.preparation_calls.size());
        auto calls_function = [&](const std::string& function, const std::vector<KernelCall>& calls) {
            out += fmt::format(
                "[[maybe_unused]] int {}(const {}Kernels& k, void* context, ProgramCall& c) {{\n", function, p.name);
            out += calls.empty() ? "    (void)k;\n    (void)context;\n    (void)c;\n" : "    int r = 0;\n";
            for (size_t i = 0; i < calls.size(); i++) {
                const KernelCall& call = calls[i];
                std::vector<std::string> arguments = {"context"};
                for (const Slot& slot : call.slots) arguments.push_back(slot_expression(slot));
                out += fmt::format(
                    "    c.failed_call = {0};\n    c.size_next(context, {3}, {4});\n    c.start();\n"
                    "    if ((r = k.k{1}({2})) != 0) return r;\n    c.stop({0});\n",
                    i, call.kernel, fmt::join(arguments, ", "), call.work_per_sample, call.work_per_call);
            }
            out += calls.empty() ? "    return 0;\n}\n\n" : "    c.failed_call = -1;\n    return 0;\n}\n\n";
        };
        calls_function(fmt::format("run_{}_program", p.name), p.program.calls);
        calls_function(fmt::format("run_{}_preparation", p.name), p.program.preparation_calls);
    }
    // The first target whose features the running CPU has is used; the last is plain x86-64.
    out += "const int target_features[][64] = {\n";
    for (const TargetChoice& t : targets) {
        std::vector<int> features;
        for (int f = 0; f < Halide::Target::FeatureEnd; f++) {
            if (t.target.has_feature(static_cast<Halide::Target::Feature>(f))) features.push_back(f);
        }
        features.push_back(-1);
        out += fmt::format("    {{{}}},\n", fmt::join(features, ", "));
    }
    out += "};\n";
    out += fmt::format("constexpr int target_count = {};\n", targets.size());
    std::vector<std::string> names;
    for (const TargetChoice& t : targets) names.push_back(fmt::format("\"{}\"", t.suffix));
    out += fmt::format("const char* const target_names[] = {{{}}};\n", fmt::join(names, ", "));
    return out;
}

// Compiles every (kernel, target) of the programs on all cores into objects, then joins them
// into one relocatable object with `ld -r`, so a build system sees a fixed set of files.
void compile_kernels(const std::string& model, std::vector<EmittedProgram>& programs,
                     const std::vector<TargetChoice>& targets, const std::filesystem::path& dir) {
    namespace fs = std::filesystem;
    struct Job {
        EmittedProgram* program;
        size_t kernel;
        size_t target;
    };
    std::vector<Job> jobs;
    for (EmittedProgram& p : programs) {
        p.signatures.resize(p.program.kernels.size());
        for (size_t k = 0; k < p.program.kernels.size(); k++) {
            for (size_t t = 0; t < targets.size(); t++) jobs.push_back({&p, k, t});
        }
    }
    const fs::path scratch = dir / (model + "_kernels.d");
    fs::create_directories(scratch);
    std::vector<std::string> objects(jobs.size());
    // CONVGEN_STMT_DIR=DIR also writes each kernel's lowered loop nest there, as DIR/<symbol>.stmt.
    const char* stmt_env = std::getenv("CONVGEN_STMT_DIR");
    const std::string stmt_dir = stmt_env != nullptr ? stmt_env : "";
    if (!stmt_dir.empty()) fs::create_directories(stmt_dir);
    std::atomic<size_t> next{0};
    std::mutex mutex;
    std::string first_error;
    auto work = [&]() {
        for (size_t j = next++; j < jobs.size(); j = next++) {
            const Job& job = jobs[j];
            try {
                const Halide::Target target = targets[job.target]
                                                  .target.with_feature(Halide::Target::UserContext)
                                                  .with_feature(Halide::Target::NoRuntime);
                LoweredPipeline lowered = job.program->program.build(static_cast<int>(job.kernel), target);
                const std::string symbol = kernel_symbol(model, *job.program, job.kernel, targets[job.target].suffix);
                objects[j] = (scratch / (symbol + ".o")).string();
                lowered.pipeline.compile_to_object(objects[j], lowered.arguments, symbol, target);
                if (!stmt_dir.empty()) {
                    lowered.pipeline.compile_to_lowered_stmt((fs::path(stmt_dir) / (symbol + ".stmt")).string(),
                                                             lowered.arguments, Halide::Text, target);
                }
                if (job.target == 0) {
                    std::vector<std::string> parameters = {"void*"};
                    for (const Halide::Argument& a : lowered.arguments) {
                        parameters.push_back(a.is_buffer() ? "halide_buffer_t*" : c_type(a.type));
                    }
                    for (const Halide::Func& f : lowered.pipeline.outputs()) {
                        for (int v = 0; v < f.outputs(); v++) parameters.push_back("halide_buffer_t*");
                    }
                    job.program->signatures[job.kernel] = fmt::format("{}", fmt::join(parameters, ", "));
                }
            } catch (const std::exception& e) {
                std::lock_guard<std::mutex> lock(mutex);
                if (first_error.empty()) {
                    first_error = fmt::format("{} kernel {} ({}): {}", job.program->name, job.kernel,
                                              job.program->program.kernels[job.kernel], e.what());
                }
                next = jobs.size();
            }
        }
    };
    unsigned threads = std::max(1u, std::thread::hardware_concurrency());
    if (const char* jobs_env = std::getenv("CONVGEN_JOBS")) threads = std::max(1, std::atoi(jobs_env));
    std::vector<std::thread> pool;
    for (unsigned t = 1; t < threads; t++) pool.emplace_back(work);
    work();
    for (std::thread& t : pool) t.join();
    if (!first_error.empty()) throw Halide::CompileError(first_error);

    const fs::path joined = dir / (model + "_kernels.o");
    const fs::path list = scratch / "objects.txt";
    {
        std::ofstream file(list);
        for (const std::string& o : objects) file << o << "\n";
    }
    const std::string command = fmt::format("ld -r -o '{}.tmp' @'{}'", joined.string(), list.string());
    if (std::system(command.c_str()) != 0) {
        throw std::runtime_error(
            fmt::format("convgen: '{}' failed; the kernels need binutils' ld to be joined", command));
    }
    fs::rename(joined.string() + ".tmp", joined);
    fs::remove_all(scratch);
}

nlohmann::json manifest(const Model& model, const std::string& library, const std::vector<ParameterLayout>& layouts,
                        const std::vector<TargetChoice>& targets, const std::vector<EmittedProgram>& programs) {
    nlohmann::json layers = nlohmann::json::array();
    for (const Node& node : model.graph().nodes()) {
        nlohmann::json layer = {{"name", node.name}, {"kind", to_string(node.kind)}, {"output_shape", node.shape.dims}};
        nlohmann::json inputs = nlohmann::json::array();
        for (int input : node.inputs) inputs.push_back(model.graph().node(input).name);
        layer["inputs"] = inputs;
        if (model.is_frozen(node.name)) layer["frozen"] = true;
        if (model.learning_rate_scale(node.name) != 1) layer["learning_rate_scale"] = model.learning_rate_scale(node.name);
        std::visit(
            [&](const auto& a) {
                using A = std::decay_t<decltype(a)>;
                if constexpr (std::is_same_v<A, Conv2dAttributes>) {
                    layer["attributes"] = {{"out_channels", a.out_channels},
                                           {"kernel", a.kernel},
                                           {"stride", a.stride},
                                           {"padding", a.padding},
                                           {"dilation", a.dilation},
                                           {"groups", a.groups},
                                           {"bias", a.bias}};
                } else if constexpr (std::is_same_v<A, PoolAttributes>) {
                    layer["attributes"] = {{"kernel", a.kernel},
                                           {"stride", a.stride},
                                           {"padding", a.padding},
                                           {"ceil_mode", a.ceil_mode}};
                    if (node.kind == LayerKind::avg_pool) layer["attributes"]["count_include_pad"] = a.count_include_pad;
                } else if constexpr (std::is_same_v<A, DenseAttributes>) {
                    layer["attributes"] = {{"out_features", a.out_features}, {"bias", a.bias}};
                } else if constexpr (std::is_same_v<A, BatchNormAttributes>) {
                    layer["attributes"] = {{"epsilon", a.epsilon}, {"momentum", a.momentum}};
                } else if constexpr (std::is_same_v<A, ActivationAttributes>) {
                    layer["attributes"] = {{"function", to_string(a.function)}};
                    if (a.function == Activation::leaky_relu) layer["attributes"]["negative_slope"] = a.negative_slope;
                } else if constexpr (std::is_same_v<A, DropoutAttributes>) {
                    layer["attributes"] = {{"rate", a.rate}, {"per_sample", a.per_sample}};
                }
            },
            node.attributes);
        layers.push_back(layer);
    }
    nlohmann::json parameters = nlohmann::json::array();
    int64_t total = 0;
    const std::vector<bool>& updated = programs.at(0).program.parameter_updated;
    for (size_t i = 0; i < layouts.size(); i++) {
        const ParameterLayout& p = layouts[i];
        parameters.push_back({{"name", p.spec.name},
                              {"shape", p.spec.shape.dims},
                              {"size", p.spec.shape.elements()},
                              {"dtype", "F32"},
                              {"trainable", p.spec.trainable},
                              {"updated_by_training", static_cast<bool>(updated.at(i))},
                              {"layer", model.graph().node(p.spec.node).name},
                              {"initializer", initializer_name(p.spec.initializer)}});
        total += p.spec.shape.elements();
    }
    // Each program's kernel calls in order ("forward conv1+relu1", "backward fc"...): what a
    // training step computes, and what it leaves out (no backward call below a frozen backbone).
    nlohmann::json program_calls = nlohmann::json::object();
    for (const EmittedProgram& p : programs) {
        nlohmann::json calls = nlohmann::json::array();
        for (const KernelCall& call : p.program.calls) calls.push_back(call.what);
        program_calls[p.name] = calls;
    }
    nlohmann::json layer_outputs = nlohmann::json::array();
    for (const EmittedProgram& p : programs) {
        if (p.name != "predict") continue;
        for (const auto& [layer, tensor] : p.program.layer_outputs) layer_outputs.push_back(layer);
    }
    nlohmann::json target_names = nlohmann::json::array();
    for (const TargetChoice& t : targets) target_names.push_back(t.target.to_string());
    const Shape& input = model.graph().node(model.input_node()).shape;
    return {
        {"format", "convgen-manifest"},
        {"format_version", 1},
        {"convgen_version", convgen_version},
        {"model", model.name()},
        {"input",
         {{"name", model.graph().node(model.input_node()).name}, {"shape", input.dims}, {"layout", "NHWC float32"}}},
        {"classes", model.classes()},
        {"loss", "softmax_cross_entropy"},
        {"optimizer", "sgd_momentum"},
        {"augmentation", augmentation_json(model.augmentation())},
        {"layers", layers},
        {"parameters", parameters},
        {"parameter_count", total},
        {"programs", program_calls},
        {"layer_outputs", layer_outputs},
        {"targets", target_names},
        {"library", library},
        {"functions", {library + "_train_step", library + "_predict", library + "_augment"}}};
}

}  // namespace

std::vector<TargetChoice> default_x86_targets() {
    using Halide::Target;
    const Target base = Target("x86-64-linux").with_feature(Target::UserContext).with_feature(Target::NoRuntime);
    // The features of cmake/ConvgenAddModel.cmake's targets, which key the schedule database: a
    // generator run by hand finds the entries a build's tuning stored.
    return {
        {base.with_feature(Target::AVX512_Skylake)
             .with_feature(Target::AVX2)
             .with_feature(Target::FMA)
             .with_feature(Target::F16C)
             .with_feature(Target::AVX)
             .with_feature(Target::SSE41),
         "avx512"},
        {base.with_feature(Target::AVX2)
             .with_feature(Target::FMA)
             .with_feature(Target::F16C)
             .with_feature(Target::AVX)
             .with_feature(Target::SSE41),
         "avx2"},
        {base, "x86_64"},
    };
}

std::vector<std::string> emitted_objects(const std::string& model) {
    return {model + "_runtime.o", model + "_kernels.o"};
}

void emit_library(const Model& model, const EmitOptions& options) {
    namespace fs = std::filesystem;
    const fs::path dir = options.output_dir;
    fs::create_directories(dir);
    const std::string name = options.library_name.empty() ? model.name() : options.library_name;
    const bool on_gpu = options.targets.front().target.has_gpu_feature();
    for (const TargetChoice& t : options.targets) {
        if (options.targets.size() > 1 && t.target.has_gpu_feature()) {
            throw std::invalid_argument("a GPU target (" + t.target.to_string() +
                                        ") must be a library's only target: its CPU twin is a library of its own");
        }
    }
    const std::vector<ParameterLayout> layouts = parameter_layouts(model);

    std::vector<Halide::Target> targets;
    for (const TargetChoice& t : options.targets) targets.push_back(t.target);
    const LoweringOptions lowering = LoweringOptions::for_library(targets, options.database);
    std::vector<EmittedProgram> programs = {{"train", plan_training_step(model, lowering), {}},
                                            {"predict", plan_inference(model, lowering), {}}};
    const Shape& input = model.graph().node(model.input_node()).shape;
    const bool image_input = input.rank() == 3;
    if (image_input) programs.push_back({"augment", plan_augmentation(model), {}});
    compile_kernels(name, programs, options.targets, dir);
    Halide::compile_standalone_runtime((dir / (name + "_runtime.o")).string(),
                                       options.targets.back().target.with_feature(Halide::Target::UserContext));

    std::string programs_source = program_source(name, programs, options.targets);
    programs_source += image_input ? "int run_augment(int target, void* context, ProgramCall& c) {\n"
                                     "    return run_augment_program(augment_kernels[target], context, c);\n}\n"
                                   : "// The input is not an image: there is nothing to augment.\n"
                                     "int run_augment(int, void*, ProgramCall&) { return -1; }\n";
    const std::vector<std::pair<std::string, std::string>> values = {
        {"MODEL", name},
        {"MODEL_UPPER", upper(name)},
        {"MODEL_NAME", model.name()},
        {"VERSION", convgen_version},
        {"INPUT_C", std::to_string(input[0])},
        {"INPUT_H", std::to_string(image_input ? input[1] : 1)},
        {"INPUT_W", std::to_string(image_input ? input[2] : 1)},
        {"INPUT_RANK", std::to_string(input.rank())},
        {"CLASSES", std::to_string(model.classes())},
        {"PARAMETER_COUNT", std::to_string(layouts.size())},
        {"PARAMETER_TABLE", parameter_table(layouts, programs[0].program.parameter_updated)},
        {"LAYER_OUTPUT_TABLE", layer_output_table(programs[1].program)},
        {"PROGRAMS", programs_source},
        {"IMAGE_INPUT", image_input ? "true" : "false"},
        {"ON_GPU", on_gpu ? "true" : "false"},
        {"DEVICE_INCLUDE", on_gpu ? "#include <HalideRuntimeCuda.h>" : ""},
        {"DEVICE_INTERFACE", on_gpu ? "halide_cuda_device_interface()" : "nullptr"},
        {"AUGMENTED", model.augmentation().empty() ? "0" : "1"},
        {"SAFETENSORS", templates::safetensors},
    };
    write_file(dir / (name + ".h"), substitute(templates::model_h, values));
    write_file(dir / (name + ".hpp"), substitute(templates::model_hpp, values));
    write_file(dir / (name + "_library.cpp"), substitute(templates::model_library_cpp, values));
    write_file(dir / (name + ".json"), manifest(model, name, layouts, options.targets, programs).dump(2) + "\n");
}

}  // namespace convgen::codegen
