// Every layer's backward pass against finite differences of its forward pass, through the
// generated libraries of tests/models/layer_nets.cpp: the gradient of each trained tensor is read
// off one SGD step with learning rate 1 and no momentum (g = w - w'), and compared with central
// differences of the training-mode loss (a step with learning rate 0 leaves the weights as they
// are). Layers after the first conv are also checked through their input gradients, which that
// conv's weight gradient depends on. Also: dropout's masks.
#include "branch_net.hpp"
#include "dropout_net.hpp"
#include "norm_net.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace {

bool is_state(const std::string& name) {
    return name.size() > 13 && (name.compare(name.size() - 13, 13, ".running_mean") == 0 ||
                                name.compare(name.size() - 12, 12, ".running_var") == 0);
}

template <typename Model>
void check_gradients_by_finite_differences(int batch) {
    std::mt19937 random(7);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> images(static_cast<size_t>(batch) * Model::input_size);
    for (float& v : images) v = normal(random);
    std::vector<int32_t> labels(static_cast<size_t>(batch));
    for (int32_t& l : labels) l = static_cast<int32_t>(random() % Model::classes);

    Model model(3);
    model.set_dropout(false);
    std::vector<std::vector<float>> start;
    for (const auto& p : Model::parameters()) start.push_back(model.get_parameter(p.name));
    auto restore = [&] {
        const auto parameters = Model::parameters();
        for (size_t i = 0; i < parameters.size(); i++) model.set_parameter(parameters[i].name, start[i]);
    };

    model.set_sgd(1.0f, 0.0f, 0.0f);
    model.train_step(images.data(), labels.data(), batch);
    std::vector<std::vector<float>> gradients;
    for (size_t i = 0; i < start.size(); i++) {
        const std::vector<float> after = model.get_parameter(Model::parameters()[i].name);
        std::vector<float> g(after.size());
        for (size_t e = 0; e < g.size(); e++) g[e] = start[i][e] - after[e];
        gradients.push_back(g);
    }
    restore();

    model.set_sgd(0.0f, 0.0f, 0.0f);
    auto loss_at = [&](size_t parameter, size_t element, float value) {
        std::vector<float> changed = start[parameter];
        changed[element] = value;
        model.set_parameter(Model::parameters()[parameter].name, changed);
        const float loss = model.train_step(images.data(), labels.data(), batch).loss;
        model.set_parameter(Model::parameters()[parameter].name, start[parameter]);
        return static_cast<double>(loss);
    };
    const auto parameters = Model::parameters();
    for (size_t i = 0; i < parameters.size(); i++) {
        if (is_state(parameters[i].name)) continue;
        for (int sample = 0; sample < 4; sample++) {
            const size_t e = static_cast<size_t>(random() % start[i].size());
            const float w = start[i][e], h = 1e-3f;
            const double numeric = (loss_at(i, e, w + h) - loss_at(i, e, w - h)) / (2.0 * h);
            const double analytic = gradients[i][e];
            INFO(parameters[i].name << "[" << e << "]: analytic " << analytic << ", finite difference " << numeric);
            CHECK(std::abs(analytic - numeric) <= 2e-3 + 3e-2 * std::abs(numeric));
        }
    }
}

}  // namespace

TEST_SUITE("layer gradients") {
    TEST_CASE(
        "batch norm, relu6, a depthwise strided conv, leaky_relu and global pooling: gradients match "
        "finite differences") {
        check_gradients_by_finite_differences<norm_net::Model>(6);
    }

    TEST_CASE(
        "dilated and grouped convs, tanh, sigmoid, concat, add and average pooling: gradients match "
        "finite differences") {
        check_gradients_by_finite_differences<branch_net::Model>(4);
    }

    TEST_CASE("dense, batch norm over features and dropout (off): gradients match finite differences") {
        check_gradients_by_finite_differences<dropout_net::Model>(8);
    }

    TEST_CASE("dropout masks are reproducible from the seed and step, new each step, and absent in inference") {
        constexpr int batch = 64;
        std::vector<float> features(static_cast<size_t>(batch) * dropout_net::Model::input_size);
        for (size_t i = 0; i < features.size(); i++) features[i] = std::sin(0.37f * static_cast<float>(i));
        std::vector<int32_t> labels(batch);
        for (int i = 0; i < batch; i++) labels[static_cast<size_t>(i)] = i % dropout_net::Model::classes;
        // The loss and fc2's update of one step, after `warmup` steps that change nothing but the step count.
        auto step = [&](uint64_t seed, int warmup, bool dropout) {
            dropout_net::Model model(seed);
            model.set_dropout(dropout);
            model.set_sgd(0.0f, 0.0f, 0.0f);
            for (int s = 0; s < warmup; s++) model.train_step(features.data(), labels.data(), batch);
            model.set_sgd(1.0f, 0.0f, 0.0f);
            const std::vector<float> before = model.get_parameter("fc2.weight");
            const float loss = model.train_step(features.data(), labels.data(), batch).loss;
            std::vector<float> result = model.get_parameter("fc2.weight");
            for (size_t e = 0; e < result.size(); e++) result[e] -= before[e];
            result.push_back(loss);
            return result;
        };
        const std::vector<float> first = step(5, 0, true);
        CHECK(first == step(5, 0, true));   // the same seed and step: the same mask
        CHECK(first != step(5, 1, true));   // the next step: another mask
        CHECK(first != step(5, 0, false));  // dropout on differs from off

        dropout_net::Model model(5);
        CHECK(model.predict(features.data(), batch) == model.predict(features.data(), batch));
    }
}
