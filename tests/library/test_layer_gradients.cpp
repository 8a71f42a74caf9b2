// Every layer's backward pass against finite differences of its forward pass, through the
// generated libraries of tests/models/layer_nets.cpp: the gradient of each trained tensor is read
// off one SGD step with learning rate 1 and no momentum (g = w - w'), and compared with central
// differences of the training-mode loss (a step with learning rate 0 leaves the weights as they
// are). Layers after the first conv are also checked through their input gradients, which that
// conv's weight gradient depends on. Also: dropout's masks, and gradient clipping by global norm.
#include "branch_net.hpp"
#include "clipped_norm_net.hpp"
#include "dropout_net.hpp"
#include "gate_net.hpp"
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

    TEST_CASE(
        "silu, hard_swish, 5x5 and 7x7 depthwise convs, a squeeze-and-excitation gate, drop-path (off) and ceil_mode "
        "pools: gradients match finite differences") {
        check_gradients_by_finite_differences<gate_net::Model>(4);
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

    TEST_CASE("clipping by global norm scales every gradient by max_norm / norm, as PyTorch's clip_grad_norm_") {
        constexpr int batch = 6;
        std::mt19937 random(9);
        std::normal_distribution<float> normal(0.0f, 1.0f);
        std::vector<float> images(static_cast<size_t>(batch) * norm_net::Model::input_size);
        for (float& v : images) v = normal(random);
        std::vector<int32_t> labels(batch);
        for (int i = 0; i < batch; i++) labels[static_cast<size_t>(i)] = i % norm_net::Model::classes;

        norm_net::Model plain(4);
        clipped_norm_net::Model clipped(5);
        for (const auto& p : norm_net::Model::parameters()) clipped.set_parameter(p.name, plain.get_parameter(p.name));
        // Plain SGD: each update is -rate * gradient, so the unclipped step's updates give the gradients.
        constexpr float rate = 0.5f;
        plain.set_sgd(rate, 0.0f, 0.0f);
        clipped.set_sgd(rate, 0.0f, 0.0f);
        std::vector<std::vector<float>> before;
        for (const auto& p : norm_net::Model::parameters()) before.push_back(plain.get_parameter(p.name));
        const float plain_loss = plain.train_step(images.data(), labels.data(), batch).loss;
        const float clipped_loss = clipped.train_step(images.data(), labels.data(), batch).loss;
        CHECK(clipped_loss == doctest::Approx(plain_loss).epsilon(1e-6));

        double squares = 0;
        std::vector<std::vector<float>> plain_updates;
        size_t i = 0;
        for (const auto& p : norm_net::Model::parameters()) {
            std::vector<float> update = plain.get_parameter(p.name);
            for (size_t e = 0; e < update.size(); e++) update[e] -= before[i][e];
            if (!is_state(p.name)) {
                for (float u : update) squares += double(u / rate) * double(u / rate);
            }
            plain_updates.push_back(update);
            i++;
        }
        const double norm = std::sqrt(squares);
        REQUIRE(norm > 0.05);  // the step is clipped
        const double scale = 0.05 / (norm + 1e-6);
        i = 0;
        for (const auto& p : norm_net::Model::parameters()) {
            CAPTURE(p.name);
            const std::vector<float> after = clipped.get_parameter(p.name);
            for (size_t e = 0; e < after.size(); e++) {
                // Running statistics are not gradients: they move as in the plain step.
                const double expected = before[i][e] + plain_updates[i][e] * (is_state(p.name) ? 1.0 : scale);
                CHECK(after[e] == doctest::Approx(expected).epsilon(1e-4).scale(1e-3));
            }
            i++;
        }
    }
}
