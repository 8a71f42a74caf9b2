// The schedule database: what the autotuner writes and codegen reads.
#include <convgen/schedules/database.h>

#include "cpu/heuristics.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

using namespace convgen::schedules;

namespace {

std::filesystem::path temporary_file(const std::string& name, const std::string& contents) {
    const std::filesystem::path path = std::filesystem::temp_directory_path() / name;
    std::ofstream(path) << contents;
    return path;
}

}  // namespace

TEST_SUITE("schedule database") {
    TEST_CASE("a saved database loads back with the same entries") {
        ScheduleDatabase database;
        database.insert("x86-64-linux-avx2", "conv2d_forward:in1x28x28:out6:k5:s1:p2:fused_pool", {{"tile_x", 4}});
        database.insert("x86-64-linux-avx2", "dense_forward:in400:out120", {{"block", 8}, {"vector", 1}});
        const std::filesystem::path path = std::filesystem::temp_directory_path() / "convgen_schedules_roundtrip.json";
        database.save(path.string());
        const ScheduleDatabase loaded = ScheduleDatabase::load(path.string());
        CHECK(loaded.size() == 2);
        CHECK(loaded.find("x86-64-linux-avx2", "dense_forward:in400:out120") ==
              ScheduleParameters{{"block", 8}, {"vector", 1}});
        CHECK_FALSE(loaded.find("x86-64-linux-avx2", "dense_forward:in400:out84").has_value());
        CHECK_FALSE(loaded.find("x86-64-linux", "dense_forward:in400:out120").has_value());
    }

    TEST_CASE("tuned parameters override the heuristics key by key, for the target they were tuned on") {
        ScheduleDatabase database;
        const Halide::Target avx2("x86-64-linux-avx2-fma-f16c-avx-sse41-user_context-no_runtime");
        database.insert(cpu::target_key(avx2), "some_stage", {{"tile_x", 3}});
        const ParameterSpace space = {{"tile_x", {1, 2, 3, 7}}, {"batch_chunk", {8}}};
        Context context{avx2, true, &database};
        CHECK(cpu::choose(context, "some_stage", {{"tile_x", 7}, {"batch_chunk", 8}}, space) ==
              ScheduleParameters{{"tile_x", 3}, {"batch_chunk", 8}});
        CHECK(cpu::choose(context, "another_stage", {{"tile_x", 7}}, space) == ScheduleParameters{{"tile_x", 7}});
        Context other{Halide::Target("x86-64-linux-sse41"), true, &database};
        CHECK(cpu::choose(other, "some_stage", {{"tile_x", 7}}, space) == ScheduleParameters{{"tile_x", 7}});
    }

    TEST_CASE("a stored value outside the stage's space is ignored, and every stage asked is recorded") {
        ScheduleDatabase database;
        const Halide::Target avx2("x86-64-linux-avx2-fma-f16c-avx-sse41");
        database.insert(cpu::target_key(avx2), "some_stage", {{"tile_x", 5}, {"unknown", 1}});
        std::vector<TunableStage> recorded;
        Context context{avx2, true, &database, &recorded};
        const ParameterSpace space = {{"tile_x", {1, 2, 3}}};
        CHECK(cpu::choose(context, "some_stage", {{"tile_x", 2}}, space) == ScheduleParameters{{"tile_x", 2}});
        REQUIRE(recorded.size() == 1);
        CHECK(recorded[0].signature == "some_stage");
        CHECK(recorded[0].defaults == ScheduleParameters{{"tile_x", 2}});
        CHECK(recorded[0].space == space);
    }

    TEST_CASE("a malformed database is rejected with the file and the problem") {
        const auto check_rejected = [](const std::string& name, const std::string& contents, const std::string& part) {
            const std::filesystem::path path = temporary_file(name, contents);
            CHECK_THROWS_WITH_AS(ScheduleDatabase::load(path.string()),
                                 doctest::Contains((path.string() + ": " + part).c_str()), std::runtime_error);
        };
        check_rejected("convgen_db_json.json", "{\"format\": ", "not valid JSON");
        check_rejected("convgen_db_format.json", "{\"format\": \"other\"}", "not a convgen schedule database");
        check_rejected("convgen_db_version.json",
                       "{\"format\": \"convgen-schedules\", \"version\": 7, \"targets\": {}}", "unsupported version");
        check_rejected("convgen_db_value.json",
                       "{\"format\": \"convgen-schedules\", \"version\": 1, \"targets\": {\"t\": {\"s\": {\"tile_x\": "
                       "-2}}}}",
                       "'t' / 's': parameter 'tile_x' must be an integer in [0, 2^20], found -2");
        CHECK_THROWS_WITH_AS(ScheduleDatabase::load("/nonexistent/schedules.json"), doctest::Contains("cannot open"),
                             std::runtime_error);
    }
}
