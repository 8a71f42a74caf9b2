// Transfer learning through the generated libraries: loading pretrained weights by name,
// frozen layers (no gradient, no update, nothing computed below them), per-layer learning-rate
// scales, layer outputs, and feature extraction giving the same head as frozen fine-tuning.
#include "transfer_finetune_net.hpp"
#include "transfer_frozen_net.hpp"
#include "transfer_head_net.hpp"
#include "transfer_middle_frozen_net.hpp"
#include "transfer_source_net.hpp"
#include "transfer_unscaled_net.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace {

constexpr int batch = 8;
constexpr int image_size = 3 * 8 * 8;

std::vector<float> random_values(size_t count, uint32_t seed) {
    std::mt19937 random(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> values(count);
    for (float& v : values) v = normal(random);
    return values;
}

std::vector<float> images_for(int step) {
    return random_values(static_cast<size_t>(batch) * image_size, 100 + static_cast<uint32_t>(step));
}

std::vector<int32_t> labels_for(int step, int classes) {
    std::vector<int32_t> labels(batch);
    for (int i = 0; i < batch; i++) labels[static_cast<size_t>(i)] = (i * 7 + step) % classes;
    return labels;
}

template <typename M>
std::map<std::string, std::vector<float>> parameters_of(M& model) {
    std::map<std::string, std::vector<float>> values;
    for (const auto& info : M::parameters()) values[info.name] = model.get_parameter(info.name);
    return values;
}

// Sets the parameters `to` shares by name with `from`.
template <typename From, typename To>
void copy_shared_parameters(From& from, To& to) {
    const auto values = parameters_of(from);
    for (const auto& info : To::parameters()) {
        auto found = values.find(info.name);
        if (found != values.end()) to.set_parameter(info.name, found->second);
    }
}

// The source model after a few steps: weights and running statistics away from their start.
transfer_source_net::Model pretrained_source() {
    transfer_source_net::Model source(3);
    source.set_sgd(0.05f, 0.9f, 0.0f);
    for (int step = 0; step < 5; step++) source.train_step(images_for(step).data(), labels_for(step, 4).data(), batch);
    return source;
}

std::string temporary_path(const std::string& name) {
    return (std::filesystem::temp_directory_path() / ("convgen_transfer_" + name)).string();
}

// A safetensors file of zero-filled F32 tensors (I64 for PyTorch's batch-norm step counters).
void write_safetensors(const std::string& path, const std::map<std::string, std::vector<int64_t>>& shapes) {
    nlohmann::json header = nlohmann::json::object();
    size_t offset = 0;
    for (const auto& [name, shape] : shapes) {
        const bool counter = name.find("num_batches_tracked") != std::string::npos;
        size_t bytes = counter ? 8 : 4;
        for (int64_t d : shape) bytes *= static_cast<size_t>(d);
        header[name] = {{"dtype", counter ? "I64" : "F32"}, {"shape", shape}, {"data_offsets", {offset, offset + bytes}}};
        offset += bytes;
    }
    const std::string text = header.dump();
    const uint64_t length = text.size();
    std::ofstream file(path, std::ios::binary);
    file.write(reinterpret_cast<const char*>(&length), 8);
    file << text << std::string(offset, '\0');
}

nlohmann::json manifest_of(const std::string& model) {
    std::ifstream file(std::string(CONVGEN_TEST_GENERATED_DIR) + "/" + model + "/" + model + ".json");
    REQUIRE(file.good());
    return nlohmann::json::parse(file);
}

bool has_call(const nlohmann::json& manifest, const std::string& call) {
    const auto& calls = manifest["programs"]["train"];
    return std::find(calls.begin(), calls.end(), call) != calls.end();
}

double max_relative_difference(const std::vector<float>& a, const std::vector<float>& b) {
    REQUIRE(a.size() == b.size());
    double worst = 0;
    for (size_t i = 0; i < a.size(); i++) {
        worst = std::max(worst, std::abs(double(a[i]) - b[i]) / std::max(1e-3, std::abs(double(b[i]))));
    }
    return worst;
}

std::vector<float> difference(const std::vector<float>& after, const std::vector<float>& before) {
    std::vector<float> d(after.size());
    for (size_t i = 0; i < d.size(); i++) d[i] = after[i] - before[i];
    return d;
}

}  // namespace

TEST_CASE("load_pretrained loads the shared tensors by name and reports the new and the unused") {
    transfer_source_net::Model source = pretrained_source();
    const std::string path = temporary_path("source.safetensors");
    source.save(path);

    transfer_frozen_net::Model target(9);
    const std::vector<float> head_before = target.get_parameter("head.weight");
    const transfer_frozen_net::PretrainedReport report = target.load_pretrained(path);
    CHECK(report.loaded.size() == 11);  // conv1, bn1 (4), conv2 (2), bn2 (4)
    for (const std::string& name : report.loaded) CHECK(target.get_parameter(name) == source.get_parameter(name));
    CHECK(report.kept == std::vector<std::string>{"head.weight", "head.bias"});
    // The old head's momentum buffers come with it and are not listed.
    CHECK(report.unused == std::vector<std::string>{"fc.bias", "fc.weight"});
    CHECK(target.get_parameter("head.weight") == head_before);
    CHECK(target.step_count() == 0);
    std::remove(path.c_str());
}

TEST_CASE("load_pretrained rejects a tensor of another shape, naming it and both shapes, and changes nothing") {
    const std::string path = temporary_path("clash.safetensors");
    write_safetensors(path, {{"conv1.weight", {8, 3, 3, 3}}, {"head.weight", {4, 16}}});
    transfer_frozen_net::Model target(9);
    const auto before = parameters_of(target);
    try {
        target.load_pretrained(path);
        FAIL("a head of 4 classes loaded into one of 3");
    } catch (const transfer_frozen_net::Error& error) {
        CHECK(error.code() == CONVGEN_ERROR_FORMAT);
        CHECK(std::string(error.what()) ==
              path + ": tensor 'head.weight' has shape [4, 16], the model expects [3, 16]");
    }
    CHECK(parameters_of(target) == before);  // conv1.weight, which fits, was not loaded either

    // As PyTorch writes a state dict: batch-norm step counters, which are neither loaded nor unused.
    write_safetensors(path, {{"conv1.weight", {8, 3, 3, 3}},
                             {"bn1.num_batches_tracked", {}},
                             {"layer9.weight", {2}},
                             {"layer9.running_mean", {2}},
                             {"layer9.num_batches_tracked", {}}});
    const auto report = target.load_pretrained(path);
    CHECK(report.loaded == std::vector<std::string>{"conv1.weight"});
    CHECK(report.unused == std::vector<std::string>{"layer9.running_mean", "layer9.weight"});
    CHECK(target.get_parameter("conv1.weight") == std::vector<float>(8 * 3 * 3 * 3, 0.0f));
    std::remove(path.c_str());

    CHECK_THROWS_WITH_AS(target.load_pretrained(temporary_path("missing.safetensors")),
                         doctest::Contains("cannot read the checkpoint"), transfer_frozen_net::Error);
}

TEST_CASE("a frozen backbone keeps its weights bit for bit, and the step computes nothing below the head") {
    transfer_frozen_net::Model model(5);
    model.set_sgd(0.1f, 0.9f, 5e-4f);
    const auto before = parameters_of(model);
    for (int step = 0; step < 4; step++) model.train_step(images_for(step).data(), labels_for(step, 3).data(), batch);
    const auto after = parameters_of(model);
    for (const auto& [name, values] : before) {
        CAPTURE(name);
        if (name.rfind("head.", 0) == 0) {
            CHECK(after.at(name) != values);
        } else {
            CHECK(after.at(name) == values);  // running statistics too: frozen batch norm uses them as they are
        }
    }

    const nlohmann::json manifest = manifest_of("transfer_frozen_net");
    for (const auto& p : manifest["parameters"]) {
        CAPTURE(p["name"]);
        CHECK(p["updated_by_training"] == (p["layer"] == "head"));
    }
    // The only backward kernel is the head's: no weight gradient and no input gradient below it.
    int backward_calls = 0;
    for (const auto& call : manifest["programs"]["train"]) {
        backward_calls += call.get<std::string>().rfind("backward", 0) == 0 ? 1 : 0;
    }
    CHECK(backward_calls == 1);
    CHECK(has_call(manifest, "backward head"));
    // And frozen batch norm and dropout run as at inference: the training forward pass is the prediction's.
    const auto& train_calls = manifest["programs"]["train"];
    CHECK(std::none_of(train_calls.begin(), train_calls.end(),
                       [](const auto& c) { return c.template get<std::string>().find("drop") != std::string::npos; }));
}

TEST_CASE("a frozen layer between trained ones gets no update but passes the gradient down") {
    transfer_middle_frozen_net::Model model(5);
    model.set_sgd(0.1f, 0.0f, 0.0f);
    const auto before = parameters_of(model);
    model.train_step(images_for(0).data(), labels_for(0, 3).data(), batch);
    const auto after = parameters_of(model);
    for (const char* name : {"conv2.weight", "conv2.bias", "bn2.weight", "bn2.bias", "bn2.running_mean"}) {
        CAPTURE(name);
        CHECK(after.at(name) == before.at(name));
    }
    for (const char* name : {"conv1.weight", "bn1.weight", "bn1.running_mean", "head.weight"}) {
        CAPTURE(name);
        CHECK(after.at(name) != before.at(name));
    }
}

TEST_CASE("a learning-rate scale scales the layer's updates and no other") {
    transfer_finetune_net::Model scaled(6);
    transfer_unscaled_net::Model unscaled(7);
    copy_shared_parameters(scaled, unscaled);
    // Plain SGD: the update is -rate * gradient, and both see the same gradients in step one.
    scaled.set_sgd(0.1f, 0.0f, 0.0f);
    unscaled.set_sgd(0.1f, 0.0f, 0.0f);
    scaled.set_dropout(false);
    unscaled.set_dropout(false);
    const auto before = parameters_of(scaled);
    const auto step_scaled = scaled.train_step(images_for(0).data(), labels_for(0, 3).data(), batch);
    const auto step_unscaled = unscaled.train_step(images_for(0).data(), labels_for(0, 3).data(), batch);
    CHECK(step_scaled.loss == doctest::Approx(step_unscaled.loss).epsilon(1e-6));
    for (const char* name : {"conv2.weight", "conv2.bias", "bn2.weight", "bn2.bias"}) {
        CAPTURE(name);
        std::vector<float> expected = difference(unscaled.get_parameter(name), before.at(name));
        for (float& v : expected) v *= 0.1f;
        CHECK(max_relative_difference(difference(scaled.get_parameter(name), before.at(name)), expected) < 1e-3);
    }
    CHECK(max_relative_difference(scaled.get_parameter("head.weight"), unscaled.get_parameter("head.weight")) < 1e-6);
    CHECK(scaled.get_parameter("conv1.weight") == before.at("conv1.weight"));
    // Running statistics are not trained: they move as the batch says, whatever the scale.
    CHECK(scaled.get_parameter("bn2.running_mean") == unscaled.get_parameter("bn2.running_mean"));
}

TEST_CASE("layer outputs: what each kept layer computed for the last prediction") {
    transfer_source_net::Model model = pretrained_source();
    const auto outputs = transfer_source_net::Model::layer_outputs();
    std::vector<std::string> names;
    for (const auto& o : outputs) names.push_back(o.name);
    // Not kept: conv1 and conv2 (each with its batch norm folded in and its relu fused), relu1
    // (moved after the pool), flat (a view of the features). Dropout passes its input at inference.
    CHECK(names == std::vector<std::string>{"pool1", "relu2", "drop", "features", "fc"});
    const std::vector<float> images = images_for(9);
    const std::vector<float> probabilities = model.predict(images.data(), batch);

    const auto pool = outputs[0];
    CHECK(pool.shape == std::vector<int64_t>{4, 4, 8});
    const std::vector<float> pooled = model.layer_output("pool1", batch);
    CHECK(std::all_of(pooled.begin(), pooled.end(), [](float v) { return v >= 0; }));  // after relu1

    // The global pool is the mean of relu2's maps, the logits give the probabilities.
    const std::vector<float> maps = model.layer_output("relu2", batch), features = model.layer_output("features", batch);
    for (int n = 0; n < batch; n++) {
        for (int c = 0; c < 16; c++) {
            double sum = 0;
            for (int p = 0; p < 16; p++) sum += maps[static_cast<size_t>((n * 16 + p) * 16 + c)];
            CHECK(features[static_cast<size_t>(n * 16 + c)] == doctest::Approx(sum / 16).epsilon(1e-5));
        }
    }
    const std::vector<float> logits = model.layer_output("fc", batch);
    for (int n = 0; n < batch; n++) {
        double total = 0;
        for (int k = 0; k < 4; k++) total += std::exp(double(logits[static_cast<size_t>(n * 4 + k)]));
        for (int k = 0; k < 4; k++) {
            CHECK(probabilities[static_cast<size_t>(n * 4 + k)] ==
                  doctest::Approx(std::exp(double(logits[static_cast<size_t>(n * 4 + k)])) / total).epsilon(1e-5));
        }
    }
    CHECK_THROWS_WITH_AS(model.layer_output("conv1", batch),
                         doctest::Contains("no output of a layer named 'conv1'; it keeps: pool1, relu2"),
                         transfer_source_net::Error);
    std::vector<float> wrong(5);
    CHECK(transfer_source_net_layer_output(model.handle(), "fc", wrong.data(), 5) == CONVGEN_ERROR_INVALID_ARGUMENT);
}

TEST_CASE("feature extraction trains the same head as fine-tuning with the backbone frozen") {
    transfer_source_net::Model source = pretrained_source();
    const std::string path = temporary_path("features.safetensors");
    source.save(path);
    transfer_frozen_net::Model frozen(11);
    frozen.load_pretrained(path);
    std::remove(path.c_str());
    transfer_head_net::Model head(12);
    copy_shared_parameters(frozen, head);
    frozen.set_sgd(0.05f, 0.9f, 1e-4f);
    head.set_sgd(0.05f, 0.9f, 1e-4f);

    // The features, computed once per image by the frozen model's prediction.
    constexpr int steps = 6;
    std::vector<std::vector<float>> features;
    for (int step = 0; step < steps; step++) {
        frozen.predict(images_for(step).data(), batch);
        features.push_back(frozen.layer_output("features", batch));  // [1][1][16] per image: the flat vector
    }
    for (int step = 0; step < steps; step++) {
        const auto a = frozen.train_step(images_for(step).data(), labels_for(step, 3).data(), batch);
        const auto b = head.train_step(features[static_cast<size_t>(step)].data(), labels_for(step, 3).data(), batch);
        CHECK(a.loss == doctest::Approx(b.loss).epsilon(1e-5));
    }
    CHECK(max_relative_difference(frozen.get_parameter("head.weight"), head.get_parameter("head.weight")) < 1e-4);
    CHECK(max_relative_difference(frozen.get_parameter("head.bias"), head.get_parameter("head.bias")) < 1e-4);
}
