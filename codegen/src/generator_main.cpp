// The generator a model's source file is linked with: `convgen_add_model()` runs it at build time.
//   <generator> --output DIR [--model NAME] [--targets TARGET:SUFFIX,...] [--schedules FILE]
//   <generator> --parameters [--model NAME]     prints "name [shape] trainable|state" per parameter
#include <convgen/codegen/emit.h>

#include <fmt/format.h>

#include <chrono>
#include <cstring>
#include <iostream>

namespace {

std::vector<std::string> split(const std::string& text, char separator) {
    std::vector<std::string> parts;
    size_t start = 0;
    for (size_t at = text.find(separator); at != std::string::npos; at = text.find(separator, start)) {
        parts.push_back(text.substr(start, at - start));
        start = at + 1;
    }
    parts.push_back(text.substr(start));
    return parts;
}

int usage(const char* program) {
    std::cerr << fmt::format(
        "usage: {0} --output DIR [--model NAME] [--targets TARGET:SUFFIX,...] [--schedules FILE]\n"
        "       {0} --parameters [--model NAME]\n",
        program);
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    using namespace convgen;
    std::string output, model_name, schedules_path, targets_text;
    bool list_parameters = false;
    for (int i = 1; i < argc; i++) {
        const std::string arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value");
            return argv[++i];
        };
        try {
            if (arg == "--output")
                output = value();
            else if (arg == "--model")
                model_name = value();
            else if (arg == "--schedules")
                schedules_path = value();
            else if (arg == "--targets")
                targets_text = value();
            else if (arg == "--parameters")
                list_parameters = true;
            else
                return usage(argv[0]);
        } catch (const std::invalid_argument& e) {
            std::cerr << "convgen: " << e.what() << "\n";
            return usage(argv[0]);
        }
    }
    if (output.empty() && !list_parameters) return usage(argv[0]);

    const auto& models = registered_models();
    const RegisteredModel* chosen = nullptr;
    for (const RegisteredModel& m : models) {
        if (model_name.empty() ? models.size() == 1 : m.name == model_name) chosen = &m;
    }
    if (chosen == nullptr) {
        std::string known;
        for (const RegisteredModel& m : models) known += " " + m.name;
        std::cerr << fmt::format(
            "convgen: error: {} (registered with CONVGEN_MODEL:{})\n",
            model_name.empty() ? "several models; choose one with --model" : "no model named '" + model_name + "'",
            known.empty() ? " none" : known);
        return 1;
    }

    if (list_parameters) {
        try {
            const Model model = chosen->factory();
            for (const ParameterSpec& p : model.graph().parameters()) {
                std::cout << fmt::format("{} {} {}\n", p.name, p.shape.to_string(),
                                         p.trainable ? "trainable" : "state");
            }
            return 0;
        } catch (const ModelError& e) {
            std::cerr << "convgen: error: " << e.what() << "\n";
            return 1;
        }
    }

    const auto started = std::chrono::steady_clock::now();
    try {
        codegen::EmitOptions options;
        options.output_dir = output;
        if (targets_text.empty()) {
            options.targets = codegen::default_x86_targets();
        } else {
            for (const std::string& item : split(targets_text, ',')) {
                const std::vector<std::string> parts = split(item, ':');
                if (parts.size() != 2 || !Halide::Target::validate_target_string(parts[0])) {
                    std::cerr << fmt::format("convgen: error: '{}' is not TARGET:SUFFIX with a Halide target\n", item);
                    return 2;
                }
                options.targets.push_back({Halide::Target(parts[0]), parts[1]});
            }
        }
        schedules::ScheduleDatabase database;
        if (!schedules_path.empty()) {
            database = schedules::ScheduleDatabase::load(schedules_path);
            options.database = &database;
        }
        const Model model = chosen->factory();
        codegen::emit_library(model, options);
    } catch (const ModelError& e) {
        std::cerr << "convgen: error: " << e.what() << "\n";
        return 1;
    } catch (const Halide::CompileError& e) {
        std::cerr << "convgen: error: Halide could not compile '" << chosen->name << "': " << e.what() << "\n";
        return 1;
    } catch (const std::exception& e) {
        std::cerr << "convgen: error: " << e.what() << "\n";
        return 1;
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::cout << fmt::format("convgen: generated {} in {} ({:.1f} s)\n", chosen->name, output, seconds);
    return 0;
}
