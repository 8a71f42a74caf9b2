// The runtime's training loop (convgen/runtime/trainer.h) around a generated library (small_cnn):
// a checkpoint after every epoch, a run resumed from it continuing bit for bit, and a run that
// goes non-finite stopping with the step and the layer named while the last good checkpoint stays.
#include "small_cnn.hpp"

#include <convgen/runtime/trainer.h>

#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <unistd.h>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using convgen::runtime::ImageSet;
using convgen::runtime::TrainOptions;

ImageSet random_image_set(int count, uint32_t seed) {
    ImageSet set;
    set.count = count;
    set.height = small_cnn::Model::input_height;
    set.width = small_cnn::Model::input_width;
    set.channels = small_cnn::Model::input_channels;
    for (int c = 0; c < small_cnn::Model::classes; c++) set.class_names.push_back("class" + std::to_string(c));
    std::mt19937 random(seed);
    set.pixels.resize(static_cast<size_t>(count * set.image_size()));
    for (uint8_t& p : set.pixels) p = static_cast<uint8_t>(random() & 0xff);
    for (int i = 0; i < count; i++) set.labels.push_back(static_cast<int32_t>(random() % small_cnn::Model::classes));
    return set;
}

std::vector<uint32_t> state_of(small_cnn::Model& model) {
    std::vector<uint32_t> bits;
    for (const auto& info : small_cnn::Model::parameters()) {
        const std::vector<float> values = model.get_parameter(info.name);
        const size_t at = bits.size();
        bits.resize(at + values.size());
        std::memcpy(bits.data() + at, values.data(), values.size() * sizeof(float));
    }
    bits.push_back(static_cast<uint32_t>(model.step_count()));
    return bits;
}

struct TemporaryFolder {
    fs::path path;
    TemporaryFolder() {
        path = fs::temp_directory_path() / ("convgen_training_" + std::to_string(::getpid()));
        fs::create_directories(path);
    }
    ~TemporaryFolder() { fs::remove_all(path); }
};

TrainOptions options_for(const fs::path& checkpoint, int epochs) {
    TrainOptions options;
    options.epochs = epochs;
    options.batch = 8;
    options.learning_rate = 0.05f;
    options.warmup_epochs = 1;
    options.seed = 3;
    options.checkpoint = checkpoint.string();
    return options;
}

}  // namespace

TEST_SUITE("training loop") {
    TEST_CASE("a run resumed from its checkpoint after every epoch ends bit for bit as the uninterrupted one") {
        TemporaryFolder folder;
        const ImageSet train_set = random_image_set(40, 1), test_set = random_image_set(16, 2);
        small_cnn::Model whole(7);
        convgen::runtime::train(whole, train_set, test_set, options_for(folder.path / "whole.safetensors", 3));

        // The same run stopped after two epochs (as if killed); then a new model resumes it.
        {
            struct Stopped {};
            small_cnn::Model first(7);
            CHECK_THROWS_AS(convgen::runtime::train(first, train_set, test_set,
                                                    options_for(folder.path / "split.safetensors", 3),
                                                    [](const convgen::runtime::EpochReport& report) {
                                                        if (report.epoch == 2) throw Stopped{};
                                                    }),
                            Stopped);
        }
        small_cnn::Model second(99);  // another seed: the checkpoint brings the run's own back
        const TrainOptions resumed =
            convgen::runtime::resume(second, train_set.count, options_for(folder.path / "split.safetensors", 3));
        CHECK(resumed.first_epoch == 2);
        const auto reports = convgen::runtime::train(second, train_set, test_set, resumed);
        REQUIRE(reports.size() == 1);
        CHECK(reports[0].epoch == 3);
        CHECK(second.step_count() == 15);
        CHECK(state_of(second) == state_of(whole));
    }

    TEST_CASE("resume refuses a missing checkpoint and one saved with another batch size") {
        TemporaryFolder folder;
        const ImageSet train_set = random_image_set(40, 1), test_set = random_image_set(16, 2);
        small_cnn::Model model(7);
        CHECK_THROWS_WITH_AS(convgen::runtime::resume(model, train_set.count, options_for(folder.path / "none", 3)),
                             doctest::Contains("there is no checkpoint"), std::invalid_argument);
        TrainOptions options = options_for(folder.path / "run.safetensors", 1);
        convgen::runtime::train(model, train_set, test_set, options);  // 5 steps of 8
        options.batch = 16;                                              // 2 steps an epoch
        CHECK_THROWS_WITH_AS(convgen::runtime::resume(model, train_set.count, options),
                             doctest::Contains("has taken 5 steps, not a whole number of epochs of 2 steps"),
                             std::invalid_argument);
    }

    TEST_CASE("a step that goes non-finite stops training, naming the step and the layer; the last epoch's "
              "checkpoint stays") {
        TemporaryFolder folder;
        const fs::path checkpoint = folder.path / "run.safetensors";
        const ImageSet train_set = random_image_set(40, 1), test_set = random_image_set(16, 2);
        small_cnn::Model model(7);
        convgen::runtime::train(model, train_set, test_set, options_for(checkpoint, 2));
        const std::vector<uint32_t> good = state_of(model);

        // A learning rate that blows the weights up within the third epoch.
        TrainOptions diverging = options_for(checkpoint, 4);
        diverging.first_epoch = 2;
        diverging.learning_rate = 3e38f;
        diverging.warmup_epochs = 0;
        std::string message;
        try {
            convgen::runtime::train(model, train_set, test_set, diverging);
        } catch (const small_cnn::Error& e) {
            message = e.what();
            CHECK(e.code() == CONVGEN_ERROR_NON_FINITE);
        }
        INFO(message);
        CHECK(message.find("is not finite at step " + std::to_string(model.step_count() + 1)) != std::string::npos);
        CHECK(message.find("the first non-finite value is in the output of 'forward ") != std::string::npos);
        CHECK(model.step_count() < 15);  // stopped inside the third epoch
        small_cnn::Model reloaded(1);
        reloaded.load(checkpoint.string());
        CHECK(state_of(reloaded) == good);
    }
}
