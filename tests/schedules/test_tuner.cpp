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
        // conv2 (forward, weight and input gradients) in the training step; the forward stages
        // again, under their own keys, in inference.
        std::set<std::string> signatures;
        for (const TunedStage& stage : tuned) signatures.insert(stage.signature);
        CHECK(signatures.size() == tuned.size());
        CHECK(signatures.count("conv2d_forward:in3x12x12:out16:k3:s1:p1:fused_pool:training") == 1);
        CHECK(signatures.count("conv2d_forward:in3x12x12:out16:k3:s1:p1:fused_pool") == 1);
        CHECK(signatures.count("conv2d_forward:in16x6x6:out40:k3:s1:p1:training") == 1);
        CHECK(signatures.count("conv2d_forward:in16x6x6:out40:k3:s1:p1") == 1);
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
            REQUIRE(stored.has_value());
            for (const auto& [name, value] : *stored) {
                const std::vector<int>& allowed = stage.space.at(name);
                INFO(name << " = " << value);
                CHECK(std::find(allowed.begin(), allowed.end(), value) != allowed.end());
            }
        }
    }

    TEST_CASE("schedules that lower to the same code are known for one before any machine code") {
        // conv2 (16 -> 40 channels on 6x6 maps) in inference, as Winograd's F(2x2): the direct
        // sum's register tile is then unused, Winograd's own tile is not.
        const Model model = tuning_net();
        const Halide::Target target = Halide::get_host_target();
        const std::string signature = "conv2d_forward:in16x6x6:out40:k3:s1:p1";
        ScheduleDatabase database;
        std::vector<TunableStage> recorded;
        codegen::LoweringOptions lowering;
        lowering.database = &database;
        lowering.tunable_stages = &recorded;
        const codegen::Program program = codegen::plan_inference(model, lowering);
        int kernel = -1;
        TunableStage stage;
        for (size_t k = 0; k < program.kernels.size() && kernel < 0; k++) {
            recorded.clear();
            program.build(static_cast<int>(k), target);
            for (const TunableStage& s : recorded) {
                if (s.signature == signature) {
                    kernel = static_cast<int>(k);
                    stage = s;
                }
            }
        }
        REQUIRE(kernel >= 0);

        auto code = [&](ScheduleParameters parameters) {
            for (const auto& [name, value] : parameters) {
                INFO(name << " = " << value);
                const std::vector<int>& allowed = stage.space.at(name);
                REQUIRE(std::find(allowed.begin(), allowed.end(), value) != allowed.end());
            }
            database.insert(database_target(target), signature, std::move(parameters));
            return canonical_lowered_code(program.build(kernel, target), {}, target);
        };
        auto other = [&](const std::string& name, int value) {
            const std::vector<int>& allowed = stage.space.at(name);
            REQUIRE(allowed.size() > 1);
            return allowed[0] != value ? allowed[0] : allowed[1];
        };
        ScheduleParameters winograd = stage.defaults;
        winograd["winograd"] = 1;
        winograd["winograd_outputs"] = 2;
        winograd["winograd_tile_x"] = 3;
        const std::string first = code(winograd);
        CHECK(first.find('$') == std::string::npos);  // no name as Halide made it unique
        CHECK(code(winograd) == first);               // built again, after more names were taken

        ScheduleParameters unused = winograd;  // the direct sum's parameters
        unused["channel_block"] = other("channel_block", winograd["channel_block"]);
        unused["unroll_kx"] = other("unroll_kx", winograd["unroll_kx"]);
        CHECK(code(unused) == first);

        ScheduleParameters tile = winograd;
        tile["winograd_tile_x"] = 1;
        CHECK(code(tile) != first);
        ScheduleParameters direct = winograd;
        direct["winograd"] = 0;
        CHECK(code(direct) != first);
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

    TEST_CASE("tuning over RPC: candidates planned for a CUDA target, winners chosen from their profiles") {
        const Halide::Target cuda("x86-64-linux-cuda-cuda_capability_80");
        const RemoteTuningPlan plan =
            plan_remote_tuning(tuning_net(), cuda, ScheduleDatabase{}, 4, /*training=*/false, 7);
        CHECK(plan.target == database_target(cuda));
        CHECK(plan.program == "predict");
        // conv2 is the one conv not fused into a pool: its register tile is parameterised on the GPU.
        REQUIRE(plan.stages.size() == 1);
        const RemoteStage& stage = plan.stages[0];
        CHECK(stage.stage.signature == "conv2d_forward:in16x6x6:out40:k3:s1:p1");
        REQUIRE(stage.calls.size() == 1);
        CHECK(stage.call_names[0].find("conv") != std::string::npos);
        REQUIRE(plan.candidates.size() == 4);
        CHECK(plan.candidates[0][0] == stage.stage.defaults);
        std::set<ScheduleParameters> distinct;  // no point timed twice while the space has others
        for (const auto& candidate : plan.candidates) distinct.insert(candidate[0]);
        CHECK(distinct.size() == plan.candidates.size());
        for (const auto& candidate : plan.candidates) {
            for (const auto& [name, value] : candidate[0]) {
                const std::vector<int>& allowed = stage.stage.space.at(name);
                CHECK(std::find(allowed.begin(), allowed.end(), value) != allowed.end());
            }
        }
        const RemoteTuningPlan read_back = RemoteTuningPlan::from_json(plan.to_json());
        CHECK(read_back.to_json() == plan.to_json());
        CHECK(plan.database(2, ScheduleDatabase{}).find(plan.target, stage.stage.signature) == plan.candidates[2][0]);

        // Profiles as the libraries print them: candidate 2's call is the fastest; candidate 3 failed.
        auto profile = [&](double ms) {
            std::string text = "tuning_net predict: 10 runs, 9.000 ms per run\n";
            for (int c = 0; c <= stage.calls[0]; c++) {
                text += "     " + std::to_string(c == stage.calls[0] ? ms : 0.5) + " ms  10.0%  a call\n";
            }
            return text;
        };
        ScheduleDatabase database;
        const std::vector<TunedStage> chosen =
            choose_remote_winners(plan, {profile(3.0), profile(2.0), profile(1.5), ""}, database);
        REQUIRE(chosen.size() == 1);
        CHECK(chosen[0].default_ms == doctest::Approx(3.0));
        CHECK(chosen[0].best_ms == doctest::Approx(1.5));
        CHECK(chosen[0].candidates == 3);
        CHECK(chosen[0].rejected == 1);
        CHECK(database.find(plan.target, stage.stage.signature) == plan.candidates[2][0]);
        CHECK_THROWS_AS(RemoteTuningPlan::from_json("{\"format\": \"other\"}"), std::runtime_error);
    }
}
