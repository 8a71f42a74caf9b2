// The generator a model's source file is linked with: `convgen_add_model()` runs it at build time.
//   <generator> --output DIR [--model NAME] [--name LIBRARY] [--targets TARGET:SUFFIX,...] [--schedules FILE]
//       LIBRARY (default: the model's name) prefixes the library's files and symbols. A GPU target
//       ("x86-64-linux-cuda-cuda_capability_80:cuda") must be the only one.
//   <generator> --parameters [--model NAME]     prints "name [shape] trainable|state" per parameter
//   <generator> --tune FILE [--model NAME] [--budget SECONDS] [--batch N] [--only training|inference]
//               [--warm-caches | --cold-caches] [--targets TARGET:SUFFIX,...]
//       measures schedule candidates on this machine for the first of the targets it runs, and
//       writes the winners into the schedule database FILE (created, or updated in place).
//   <generator> --compare-autoschedulers [--model NAME] [--schedules FILE] [--batch N]
//               [--only training|inference] [--autoschedulers A,B,...] [--print-schedules]
//               [--targets TARGET:SUFFIX,...]
//       times every kernel under convgen's schedules and under Halide's autoschedulers
//       (Mullapudi2016, Adams2019, Li2018), and prints the table (and, with --print-schedules,
//       each autoscheduler's schedule as C++ source).
//   <generator> --plan-remote-tuning DIR --targets TARGET:SUFFIX [--model NAME] [--schedules FILE]
//               [--candidates K] [--only training|inference] [--seed S]
//       for a target this machine does not run (CUDA): writes DIR/plan.json and the candidate
//       databases DIR/candidate_<k>.json (scripts/tune-gpu generates a library from each).
//   <generator> --choose-remote-tuning DIR --tune FILE
//       reads DIR/plan.json and the profiles DIR/profile_<k>.txt the candidates' libraries printed
//       on the target's machine, and stores each stage's fastest candidate in FILE.
#include <convgen/codegen/emit.h>
#include <convgen/schedules/tuner.h>

#include <fmt/format.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
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
        "usage: {0} --output DIR [--model NAME] [--name LIBRARY] [--targets TARGET:SUFFIX,...] [--schedules FILE]\n"
        "       {0} --parameters [--model NAME]\n"
        "       {0} --tune FILE [--model NAME] [--budget SECONDS] [--batch N] [--only training|inference]\n"
        "              [--warm-caches | --cold-caches] [--targets TARGET:SUFFIX,...]\n"
        "       {0} --compare-autoschedulers [--model NAME] [--schedules FILE] [--batch N]\n"
        "              [--only training|inference] [--autoschedulers A,B,...] [--print-schedules]\n"
        "              [--targets TARGET:SUFFIX,...]\n"
        "       {0} --plan-remote-tuning DIR --targets TARGET:SUFFIX [--model NAME] [--schedules FILE]\n"
        "              [--candidates K] [--only training|inference] [--seed S]\n"
        "       {0} --choose-remote-tuning DIR --tune FILE\n",
        program);
    return 2;
}

// The first target this machine runs (the one a generated library would dispatch to here).
Halide::Target tuning_target(const std::vector<convgen::codegen::TargetChoice>& targets) {
    for (const auto& choice : targets) {
        if (convgen::schedules::runs_on_this_machine(choice.target)) return choice.target;
    }
    throw std::runtime_error("none of the targets runs on this machine (" + Halide::get_host_target().to_string() +
                             ")");
}

int compare_autoschedulers(const convgen::RegisteredModel& chosen, const convgen::schedules::ScheduleDatabase& database,
                           const std::vector<convgen::codegen::TargetChoice>& targets,
                           convgen::schedules::AutoschedulerOptions options) {
    using namespace convgen;
    const Halide::Target target = tuning_target(targets);
    options.progress = [](const std::string& line) { std::cout << "convgen compare: " << line << std::endl; };
    const Model model = chosen.factory();
    std::cout << fmt::format("convgen compare: {} {} at batch {} on {}\n", chosen.name,
                             options.training ? "training step" : "inference", options.batch,
                             schedules::database_target(target));
    const std::vector<schedules::KernelComparison> rows =
        schedules::compare_with_autoschedulers(model, target, database, options);
    // Whole step: each kernel's time times the calls to it; an autoscheduler that failed on any
    // kernel has no total.
    std::cout << fmt::format("\n| kernel | calls | convgen ms |");
    for (const std::string& name : options.autoschedulers) std::cout << " " << name << " ms |";
    std::cout << "\n|---|---:|---:|";
    for (size_t i = 0; i < options.autoschedulers.size(); i++) std::cout << "---:|";
    std::cout << "\n";
    double ours = 0;
    std::map<std::string, double> theirs;
    std::map<std::string, bool> complete;
    for (const std::string& name : options.autoschedulers) complete[name] = true;
    for (const schedules::KernelComparison& row : rows) {
        ours += row.calls * row.convgen_ms;
        std::cout << fmt::format("| {} | {} | {:.3f} |", row.kernel, row.calls, row.convgen_ms);
        for (const std::string& name : options.autoschedulers) {
            const auto found = row.autoscheduled_ms.find(name);
            if (found == row.autoscheduled_ms.end()) {
                complete[name] = false;
                std::cout << " failed |";
            } else {
                theirs[name] += row.calls * found->second;
                std::cout << fmt::format(" {:.3f} |", found->second);
            }
        }
        std::cout << "\n";
    }
    std::cout << fmt::format("| **whole {}** | | **{:.2f}** |", options.training ? "step" : "inference", ours);
    for (const std::string& name : options.autoschedulers) {
        std::cout << (complete[name] ? fmt::format(" **{:.2f}** ({:.2f}x) |", theirs[name], theirs[name] / ours)
                                     : std::string(" n/a |"));
    }
    std::cout << "\n";
    return 0;
}

int plan_remote_tuning(const convgen::RegisteredModel& chosen, const std::filesystem::path& dir,
                       const convgen::schedules::ScheduleDatabase& start,
                       const std::vector<convgen::codegen::TargetChoice>& targets, int candidates, bool training,
                       uint32_t seed) {
    using namespace convgen;
    if (targets.size() != 1) throw std::invalid_argument("--plan-remote-tuning takes one target in --targets");
    const Model model = chosen.factory();
    const schedules::RemoteTuningPlan plan =
        schedules::plan_remote_tuning(model, targets[0].target, start, candidates, training, seed);
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "plan.json") << plan.to_json() << "\n";
    for (size_t k = 0; k < plan.candidates.size(); k++) {
        plan.database(k, start).save((dir / fmt::format("candidate_{}.json", k)).string());
    }
    std::cout << fmt::format("convgen remote tuning: {} {}: {} parameterised stages, {} candidates for {} in {}\n",
                             chosen.name, plan.program, plan.stages.size(), plan.candidates.size(), plan.target,
                             dir.string());
    return 0;
}

int choose_remote_tuning(const std::filesystem::path& dir, const std::string& path) {
    using namespace convgen;
    std::ifstream plan_file(dir / "plan.json");
    if (!plan_file) throw std::runtime_error((dir / "plan.json").string() + ": cannot open the remote-tuning plan");
    const schedules::RemoteTuningPlan plan = schedules::RemoteTuningPlan::from_json(
        std::string(std::istreambuf_iterator<char>(plan_file), std::istreambuf_iterator<char>()));
    std::vector<std::string> profiles;
    for (size_t k = 0; k < plan.candidates.size(); k++) {
        std::ifstream file(dir / fmt::format("profile_{}.txt", k));
        profiles.emplace_back(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
    }
    schedules::ScheduleDatabase database;
    if (std::filesystem::exists(path)) database = schedules::ScheduleDatabase::load(path);
    const std::vector<schedules::TunedStage> chosen = schedules::choose_remote_winners(plan, profiles, database);
    database.save(path);
    std::cout << "| stage | first call holding it | candidate 0 ms | best ms | speed-up | candidates timed | chosen |\n"
                 "|---|---|---:|---:|---:|---:|---|\n";
    double before = 0, after = 0;
    for (const schedules::TunedStage& stage : chosen) {
        std::cout << fmt::format("| {} | {} | {:.3f} | {:.3f} | {:.2f}x | {} | {} |\n", stage.signature, stage.kernel,
                                 stage.default_ms, stage.best_ms, stage.default_ms / stage.best_ms, stage.candidates,
                                 schedules::parameters_text(stage.chosen));
        before += stage.default_ms;
        after += stage.best_ms;
    }
    std::cout << fmt::format("convgen remote tuning: {} stages; their calls' times summed {:.3f} ms -> {:.3f} ms; "
                             "wrote {} ({} entries)\n",
                             chosen.size(), before, after, path, database.size());
    return 0;
}

int tune(const convgen::RegisteredModel& chosen, const std::string& path,
         const std::vector<convgen::codegen::TargetChoice>& targets, convgen::schedules::TuneOptions options) {
    using namespace convgen;
    schedules::ScheduleDatabase database;
    if (std::filesystem::exists(path)) database = schedules::ScheduleDatabase::load(path);
    const Halide::Target target = tuning_target(targets);
    options.progress = [](const std::string& line) { std::cout << "convgen tune: " << line << std::endl; };
    const auto started = std::chrono::steady_clock::now();
    const Model model = chosen.factory();
    const std::vector<schedules::TunedStage> tuned = schedules::tune_model(model, target, database, options);
    database.save(path);
    double before = 0, after = 0;
    for (const schedules::TunedStage& stage : tuned) {
        before += stage.default_ms;
        after += stage.best_ms;
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::cout << fmt::format(
        "convgen tune: {} stages of {} tuned in {:.0f} s; their kernels' times summed {:.2f} ms -> {:.2f} ms; "
        "wrote {} ({} entries)\n",
        tuned.size(), chosen.name, seconds, before, after, path, database.size());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    using namespace convgen;
    std::string output, model_name, library_name, schedules_path, targets_text, tune_path, remote_plan_dir,
        remote_choose_dir;
    bool list_parameters = false, compare = false;
    int remote_candidates = 8;
    uint32_t remote_seed = 1;
    schedules::TuneOptions tune_options;
    schedules::AutoschedulerOptions compare_options;
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
            else if (arg == "--name")
                library_name = value();
            else if (arg == "--schedules")
                schedules_path = value();
            else if (arg == "--targets")
                targets_text = value();
            else if (arg == "--parameters")
                list_parameters = true;
            else if (arg == "--tune")
                tune_path = value();
            else if (arg == "--plan-remote-tuning")
                remote_plan_dir = value();
            else if (arg == "--choose-remote-tuning")
                remote_choose_dir = value();
            else if (arg == "--candidates")
                remote_candidates = std::stoi(value());
            else if (arg == "--seed")
                remote_seed = static_cast<uint32_t>(std::stoul(value()));
            else if (arg == "--compare-autoschedulers")
                compare = true;
            else if (arg == "--autoschedulers")
                compare_options.autoschedulers = split(value(), ',');
            else if (arg == "--print-schedules")
                compare_options.print_schedules = true;
            else if (arg == "--warm-caches")
                tune_options.caches = schedules::TuneOptions::Caches::warm;
            else if (arg == "--cold-caches")
                tune_options.caches = schedules::TuneOptions::Caches::cold;
            else if (arg == "--budget")
                tune_options.budget_seconds = std::stod(value());
            else if (arg == "--batch")
                tune_options.batch = std::stoi(value());
            else if (arg == "--only") {
                const std::string only = value();
                if (only != "training" && only != "inference")
                    throw std::invalid_argument("--only takes training or inference");
                tune_options.training = only == "training";
                tune_options.inference = only == "inference";
                compare_options.training = only == "training";
            } else
                return usage(argv[0]);
        } catch (const std::invalid_argument& e) {
            std::cerr << "convgen: " << e.what() << "\n";
            return usage(argv[0]);
        } catch (const std::out_of_range& e) {
            std::cerr << "convgen: " << arg << ": value out of range\n";
            return usage(argv[0]);
        }
    }
    if (!remote_choose_dir.empty()) {
        if (tune_path.empty()) return usage(argv[0]);
        try {
            return choose_remote_tuning(remote_choose_dir, tune_path);
        } catch (const std::exception& e) {
            std::cerr << "convgen: error: " << e.what() << "\n";
            return 1;
        }
    }
    if (output.empty() && !list_parameters && tune_path.empty() && !compare && remote_plan_dir.empty()) {
        return usage(argv[0]);
    }
    compare_options.batch = tune_options.batch;
    if (tune_options.budget_seconds <= 0 || tune_options.batch <= 0) {
        std::cerr << "convgen: --budget and --batch must be positive\n";
        return 2;
    }

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
        options.library_name = library_name;
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
        if (!tune_path.empty()) return tune(*chosen, tune_path, options.targets, tune_options);
        schedules::ScheduleDatabase database;
        if (!schedules_path.empty()) {
            database = schedules::ScheduleDatabase::load(schedules_path);
            options.database = &database;
        }
        if (compare) return compare_autoschedulers(*chosen, database, options.targets, compare_options);
        if (!remote_plan_dir.empty()) {
            return plan_remote_tuning(*chosen, remote_plan_dir, database, options.targets, remote_candidates,
                                      tune_options.training, remote_seed);
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
