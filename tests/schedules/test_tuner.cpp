// The autotuner on a small network: it finds the network's parameterised stages, measures
// candidates within the budget, and stores winners that lie in each stage's space and that codegen
// then reads.
#include <convgen/codegen/lower.h>
#include <convgen/model.h>
#include <convgen/schedules/tuner.h>

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <string>

using namespace convgen;
using namespace convgen::schedules;

namespace {

Model tuning_net() {
    auto x = input("image", Shape{3, 12, 12});
    x = conv2d(x, 16, 3, {.padding = 1}) | relu | max_pool(2);
    x = conv2d(x, 40, 3, {.padding = 1}) | relu;
    x = flatten(x) | dense(10);
    return Model("tuning_net", x, softmax_cross_entropy());
}

}  // namespace

TEST_SUITE("autotuner") {
    TEST_CASE("tuning a network stores, for each parameterised stage, the fastest candidate it measured") {
        const Model model = tuning_net();
        const Halide::Target target = Halide::get_host_target();
        ScheduleDatabase database;
        TuneOptions options;
        options.budget_seconds = 6;
        options.batch = 2;
        options.repeats = 2;
        std::vector<std::string> lines;
        options.progress = [&](const std::string& line) { lines.push_back(line); };
        const auto started = std::chrono::steady_clock::now();
        const std::vector<TunedStage> tuned = tune_model(model, target, database, options);
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

        // conv1 (forward with its pool, weight gradient; no input gradient for the images) and
        // conv2 (forward, weight and input gradients).
        std::set<std::string> signatures;
        for (const TunedStage& stage : tuned) signatures.insert(stage.signature);
        CHECK(signatures.size() == tuned.size());
        CHECK(signatures.count("conv2d_forward:in3x12x12:out16:k3:s1:p1:fused_pool") == 1);
        CHECK(signatures.count("conv2d_weight_grad:in16x6x6:out40:k3:s1:p1") == 1);
        CHECK(signatures.count("conv2d_input_grad:in16x6x6:out40:k3:s1:p1") == 1);
        CHECK(signatures.count("conv2d_input_grad:in3x12x12:out16:k3:s1:p1") == 0);
        CHECK(database.size() == tuned.size());
        CHECK(lines.size() == tuned.size() + 1);  // a header, then a line per stage
        // The budget is shared out, not exceeded by more than a candidate or two of compiling
        // (which a sanitizer build, on a busy machine, makes several times slower).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
        const double compiling = 60;
#else
        const double compiling = 20;
#endif
        CHECK(seconds < options.budget_seconds + compiling);

        for (const TunedStage& stage : tuned) {
            INFO(stage.signature);
            CHECK(stage.candidates >= 1);
            CHECK(stage.rejected == 0);
            CHECK(stage.best_ms > 0);
            CHECK(stage.best_ms <= stage.default_ms);
            const auto stored = database.find(database_target(target), stage.signature);
            REQUIRE(stored.has_value());
            CHECK(*stored == stage.chosen);
        }

        // Every stored value lies in the space its stage declares, so codegen takes all of them.
        std::vector<TunableStage> recorded;
        codegen::LoweringOptions lowering;
        lowering.tunable_stages = &recorded;
        const codegen::Program program = codegen::plan_training_step(model, lowering);
        for (size_t k = 0; k < program.kernels.size(); k++) program.build(static_cast<int>(k), target);
        for (const TunableStage& stage : recorded) {
            INFO(stage.signature);
            const auto stored = database.find(database_target(target), stage.signature);
            if (!stored) continue;  // an inference-only stage
            for (const auto& [name, value] : *stored) {
                const std::vector<int>& allowed = stage.space.at(name);
                INFO(name << " = " << value);
                CHECK(std::find(allowed.begin(), allowed.end(), value) != allowed.end());
            }
        }
    }

    TEST_CASE("Halide's autoschedulers schedule the same kernels, which compute the same numbers") {
        const Model model = tuning_net();
        AutoschedulerOptions options;
        options.batch = 2;
        options.repeats = 1;
        options.autoschedulers = {"Mullapudi2016"};
        const std::vector<KernelComparison> rows =
            compare_with_autoschedulers(model, Halide::get_host_target(), ScheduleDatabase{}, options);
        REQUIRE(rows.size() >= 6);  // forward and backward of conv1, conv2 and the dense layer, the loss
        for (const KernelComparison& row : rows) {
            INFO(row.kernel);
            CHECK(row.calls == 1);
            CHECK(row.convgen_ms > 0);
            // Timed, having given the same outputs as convgen's schedule, or failed with a reason.
            CHECK(row.autoscheduled_ms.count("Mullapudi2016") + row.errors.count("Mullapudi2016") == 1);
            if (row.errors.count("Mullapudi2016")) {
                const std::string& why = row.errors.at("Mullapudi2016");
                CHECK_FALSE(why.empty());
                CHECK(why.find("other numbers") == std::string::npos);
            }
        }
    }

    TEST_CASE("a target this machine cannot run is refused with a message") {
        ScheduleDatabase database;
        CHECK_THROWS_WITH_AS(tune_model(tuning_net(), Halide::Target("arm-64-linux"), database, TuneOptions{}),
                             doctest::Contains("cannot tune for arm-64-linux"), std::runtime_error);
    }
}
