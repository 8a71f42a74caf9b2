#include <convgen/codegen/emit.h>
#include <convgen/codegen/lower.h>

#include "templates.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <cctype>
#include <filesystem>
#include <fstream>

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
        case Initializer::he_normal: return "he_normal";
        case Initializer::glorot_uniform: return "glorot_uniform";
        case Initializer::zeros: return "zeros";
    }
    return "zeros";
}

std::string array4(const std::vector<int64_t>& values) {
    std::vector<int64_t> padded = values;
    padded.resize(4, 0);
    return fmt::format("{{{}}}", fmt::join(padded, ", "));
}

std::string parameter_table(const std::vector<ParameterLayout>& layouts) {
    std::string table;
    for (const ParameterLayout& p : layouts) {
        table += fmt::format("    {{\"{}\", {}, {}, {}, {}, {}, Initializer::{}, {}, {}, {}}},\n", p.spec.name,
                             p.spec.shape.rank(), array4(p.spec.shape.dims), p.internal_extents.size(),
                             array4(p.internal_extents), array4(p.public_strides),
                             initializer_name(p.spec.initializer), p.spec.fan_in, p.spec.fan_out,
                             p.spec.shape.elements());
    }
    return table;
}

std::string train_call(const std::string& model, size_t parameters) {
    std::string call = fmt::format(
        "{}_halide_train_step(context, call.images->get(), call.labels->get(), model->learning_rate, model->momentum, "
        "model->weight_decay",
        model);
    for (size_t i = 0; i < 2 * parameters; i++) call += fmt::format(", in[{}].get()", i);
    call += ", call.loss->get(), call.correct->get()";
    for (size_t i = 0; i < 2 * parameters; i++) call += fmt::format(", out[{}].get()", i);
    return call + ")";
}

std::string predict_call(const std::string& model, size_t parameters) {
    std::string call = fmt::format("{}_halide_predict(context, call.images->get()", model);
    for (size_t i = 0; i < parameters; i++) call += fmt::format(", in[{}].get()", i);
    return call + ", call.probabilities->get())";
}

nlohmann::json manifest(const Model& model, const std::vector<ParameterLayout>& layouts,
                        const std::vector<TargetChoice>& targets) {
    nlohmann::json layers = nlohmann::json::array();
    for (const Node& node : model.graph().nodes()) {
        nlohmann::json layer = {{"name", node.name}, {"kind", to_string(node.kind)}, {"output_shape", node.shape.dims}};
        nlohmann::json inputs = nlohmann::json::array();
        for (int input : node.inputs) inputs.push_back(model.graph().node(input).name);
        layer["inputs"] = inputs;
        std::visit(
            [&](const auto& a) {
                using A = std::decay_t<decltype(a)>;
                if constexpr (std::is_same_v<A, Conv2dAttributes>) {
                    layer["attributes"] = {{"out_channels", a.out_channels}, {"kernel", a.kernel},
                                           {"stride", a.stride},           {"padding", a.padding},
                                           {"bias", a.bias}};
                } else if constexpr (std::is_same_v<A, PoolAttributes>) {
                    layer["attributes"] = {{"kernel", a.kernel}, {"stride", a.stride}, {"padding", a.padding}};
                } else if constexpr (std::is_same_v<A, DenseAttributes>) {
                    layer["attributes"] = {{"out_features", a.out_features}, {"bias", a.bias}};
                }
            },
            node.attributes);
        layers.push_back(layer);
    }
    nlohmann::json parameters = nlohmann::json::array();
    int64_t total = 0;
    for (const ParameterLayout& p : layouts) {
        parameters.push_back({{"name", p.spec.name},
                              {"shape", p.spec.shape.dims},
                              {"size", p.spec.shape.elements()},
                              {"dtype", "F32"},
                              {"layer", model.graph().node(p.spec.node).name},
                              {"initializer", initializer_name(p.spec.initializer)}});
        total += p.spec.shape.elements();
    }
    nlohmann::json target_names = nlohmann::json::array();
    for (const TargetChoice& t : targets) target_names.push_back(t.target.to_string());
    const Shape& input = model.graph().node(model.input_node()).shape;
    return {{"format", "convgen-manifest"},
            {"format_version", 1},
            {"convgen_version", convgen_version},
            {"model", model.name()},
            {"input", {{"name", model.graph().node(model.input_node()).name}, {"shape", input.dims},
                       {"layout", "NHWC float32"}}},
            {"classes", model.classes()},
            {"loss", "softmax_cross_entropy"},
            {"optimizer", "sgd_momentum"},
            {"layers", layers},
            {"parameters", parameters},
            {"parameter_count", total},
            {"targets", target_names},
            {"functions", {model.name() + "_train_step", model.name() + "_predict"}}};
}

}  // namespace

std::vector<TargetChoice> default_x86_targets() {
    using Halide::Target;
    const Target base = Target("x86-64-linux").with_feature(Target::UserContext).with_feature(Target::NoRuntime);
    return {
        {base.with_feature(Target::AVX512_Skylake).with_feature(Target::AVX512).with_feature(Target::AVX2)
             .with_feature(Target::FMA).with_feature(Target::F16C).with_feature(Target::AVX).with_feature(Target::SSE41),
         "avx512"},
        {base.with_feature(Target::AVX2).with_feature(Target::FMA).with_feature(Target::F16C)
             .with_feature(Target::AVX).with_feature(Target::SSE41),
         "avx2"},
        {base, "x86_64"},
    };
}

std::vector<std::string> emitted_objects(const std::string& model, const std::vector<TargetChoice>& targets) {
    std::vector<std::string> objects = {model + "_runtime.o"};
    for (const char* function : {"_halide_train_step", "_halide_predict"}) {
        if (targets.size() == 1) {
            objects.push_back(model + function + ".o");
            continue;
        }
        for (const TargetChoice& t : targets) objects.push_back(model + function + "-" + t.suffix + ".o");
        objects.push_back(model + function + "_wrapper.o");
    }
    return objects;
}

void emit_library(const Model& model, const EmitOptions& options) {
    namespace fs = std::filesystem;
    const fs::path dir = options.output_dir;
    fs::create_directories(dir);
    const std::string& name = model.name();
    const std::vector<ParameterLayout> layouts = parameter_layouts(model);

    std::vector<Halide::Target> targets;
    std::vector<std::string> suffixes;
    for (const TargetChoice& t : options.targets) {
        targets.push_back(t.target.with_feature(Halide::Target::UserContext).with_feature(Halide::Target::NoRuntime));
        suffixes.push_back(t.suffix);
    }
    using Lower = LoweredPipeline (*)(const Model&, const LoweringOptions&);
    for (const auto& [function, lower] : {std::pair<std::string, Lower>{name + "_halide_train_step", lower_training_step},
                                          std::pair<std::string, Lower>{name + "_halide_predict", lower_inference}}) {
        auto factory = [&, lower = lower](const std::string& fn_name, const Halide::Target& target) {
            LoweredPipeline lowered = lower(model, LoweringOptions{target, options.database});
            return lowered.pipeline.compile_to_module(lowered.arguments, fn_name, target);
        };
        Halide::compile_multitarget(function,
                                    {{Halide::OutputFileType::object, (dir / (function + ".o")).string()},
                                     {Halide::OutputFileType::c_header, (dir / (function + ".h")).string()}},
                                    targets, suffixes, factory);
    }
    Halide::compile_standalone_runtime((dir / (name + "_runtime.o")).string(),
                                       targets.back().without_feature(Halide::Target::NoRuntime));

    const Shape& input = model.graph().node(model.input_node()).shape;
    const bool image_input = input.rank() == 3;
    const std::vector<std::pair<std::string, std::string>> values = {
        {"MODEL", name},
        {"MODEL_UPPER", upper(name)},
        {"VERSION", convgen_version},
        {"INPUT_C", std::to_string(input[0])},
        {"INPUT_H", std::to_string(image_input ? input[1] : 1)},
        {"INPUT_W", std::to_string(image_input ? input[2] : 1)},
        {"INPUT_RANK", std::to_string(input.rank())},
        {"CLASSES", std::to_string(model.classes())},
        {"PARAMETER_COUNT", std::to_string(layouts.size())},
        {"PARAMETER_TABLE", parameter_table(layouts)},
        {"TRAIN_CALL", train_call(name, layouts.size())},
        {"PREDICT_CALL", predict_call(name, layouts.size())},
        {"SAFETENSORS", templates::safetensors},
    };
    write_file(dir / (name + ".h"), substitute(templates::model_h, values));
    write_file(dir / (name + ".hpp"), substitute(templates::model_hpp, values));
    write_file(dir / (name + "_library.cpp"), substitute(templates::model_library_cpp, values));
    write_file(dir / (name + ".json"), manifest(model, layouts, options.targets).dump(2) + "\n");
}

}  // namespace convgen::codegen
