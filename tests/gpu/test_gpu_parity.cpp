// The CUDA libraries against the CPU libraries of the same models, on the same inputs from the same
// initial parameters: every layer's forward (the probabilities and each output a prediction keeps)
// and backward (each parameter's gradient, read off one SGD step, and the batch statistics a step
// updates), within a relative error of 1e-4 in fp32. Also the augmentation and dropout's masks,
// which the GPU draws from the same counters as the CPU.
#include "gpu_tests.h"

#include "augment_net.hpp"
#include "augment_net_cuda.hpp"
#include "branch_net.hpp"
#include "branch_net_cuda.hpp"
#include "clipped_norm_net.hpp"
#include "clipped_norm_net_cuda.hpp"
#include "dropout_net.hpp"
#include "dropout_net_cuda.hpp"
#include "gate_net.hpp"
#include "gate_net_cuda.hpp"
#include "lenet5.hpp"
#include "lenet5_cuda.hpp"
#include "norm_net.hpp"
#include "norm_net_cuda.hpp"
#include "resnet20.hpp"
#include "resnet20_cuda.hpp"
#include "small_cnn.hpp"
#include "small_cnn_cuda.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace {

double norm(const std::vector<float>& values) {
    double sum = 0;
    for (float v : values) sum += double(v) * double(v);
    return std::sqrt(sum);
}

// ||a - b|| / max(||b||, floor), in double.
double relative_error(const std::vector<float>& a, const std::vector<float>& b, double floor = 0) {
    double difference = 0;
    for (size_t i = 0; i < a.size(); i++) difference += (double(a[i]) - double(b[i])) * (double(a[i]) - double(b[i]));
    const double scale = std::max(norm(b), floor);
    if (scale == 0) return std::sqrt(difference);
    return std::sqrt(difference) / scale;
}

// Batch norm's running statistics: updated by the step, not by a gradient.
bool is_state(const std::string& name) {
    auto ends_with = [&](const std::string& suffix) {
        return name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    return ends_with(".running_mean") || ends_with(".running_var");
}

bool all_finite(const std::vector<float>& values) {
    for (float v : values) {
        if (!std::isfinite(v)) return false;
    }
    return true;
}

constexpr double tolerance = 1e-4;

// `floor`: the smallest norm the error is taken relative to (see check_model).
void check_close(const std::vector<float>& gpu, const std::vector<float>& cpu, const std::string& what,
                 double floor = 0) {
    INFO(what);
    REQUIRE(gpu.size() == cpu.size());
    REQUIRE(all_finite(gpu));
    const double error = relative_error(gpu, cpu, floor);
    std::ostringstream first_values;
    for (size_t i = 0; i < std::min<size_t>(cpu.size(), 8); i++) first_values << " " << gpu[i] << "/" << cpu[i];
    CHECK_MESSAGE(error < tolerance,
                  what << ": relative error " << error << "; first values (GPU/CPU):" << first_values.str());
}

// A learning rate that is a power of two, large enough that w' = w - lr * g holds g to float
// precision: (w - w') / lr, whatever the size of w next to g.
constexpr float gradient_learning_rate = 1024.0f;

template <typename Cpu, typename Gpu>
void check_model(int batch, bool dropout) {
    static_assert(Cpu::input_size == Gpu::input_size && Cpu::classes == Gpu::classes);
    std::mt19937 random(11);
    std::normal_distribution<float> normal;
    std::vector<float> images(static_cast<size_t>(batch) * Cpu::input_size);
    for (float& v : images) v = normal(random);
    std::vector<int32_t> labels(static_cast<size_t>(batch));
    for (int32_t& l : labels) l = static_cast<int32_t>(random() % Cpu::classes);

    Cpu cpu(5);
    Gpu gpu(5);
    for (const auto& p : Cpu::parameters()) {
        check_close(gpu.get_parameter(p.name), cpu.get_parameter(p.name), "initial " + p.name);
    }

    // Forward: the probabilities and every layer output a prediction keeps.
    const std::vector<float> cpu_probabilities = cpu.predict(images.data(), batch);
    const std::vector<float> gpu_probabilities = gpu.predict(images.data(), batch);
    check_close(gpu_probabilities, cpu_probabilities, "probabilities");
    for (const auto& layer : Cpu::layer_outputs()) {
        check_close(gpu.layer_output(layer.name, batch), cpu.layer_output(layer.name, batch), "forward of " + layer.name);
    }

    // Backward: one step from the same parameters, its gradients read off the update.
    cpu.set_dropout(dropout);
    gpu.set_dropout(dropout);
    cpu.set_sgd(gradient_learning_rate, 0.0f, 0.0f);
    gpu.set_sgd(gradient_learning_rate, 0.0f, 0.0f);
    std::vector<std::vector<float>> before;
    for (const auto& p : Cpu::parameters()) before.push_back(cpu.get_parameter(p.name));
    const auto cpu_step = cpu.train_step(images.data(), labels.data(), batch);
    const auto gpu_step = gpu.train_step(images.data(), labels.data(), batch);
    CHECK(std::abs(gpu_step.loss - cpu_step.loss) <= tolerance * std::abs(cpu_step.loss));
    CHECK(gpu_step.correct == cpu_step.correct);
    const auto parameters = Cpu::parameters();
    std::vector<std::vector<float>> cpu_gradients(parameters.size()), gpu_gradients(parameters.size());
    double largest_gradient = 0;
    for (size_t i = 0; i < parameters.size(); i++) {
        const std::string& name = parameters[i].name;
        const std::vector<float> cpu_after = cpu.get_parameter(name), gpu_after = gpu.get_parameter(name);
        if (is_state(name)) {
            check_close(gpu_after, cpu_after, "updated state " + name);
            continue;
        }
        cpu_gradients[i].resize(cpu_after.size());
        gpu_gradients[i].resize(gpu_after.size());
        for (size_t e = 0; e < cpu_after.size(); e++) {
            cpu_gradients[i][e] = (before[i][e] - cpu_after[e]) / gradient_learning_rate;
            gpu_gradients[i][e] = (before[i][e] - gpu_after[e]) / gradient_learning_rate;
        }
        largest_gradient = std::max(largest_gradient, norm(cpu_gradients[i]));
    }
    // Some true gradients are zero or nearly so, and both sides hold rounding noise of them: a bias
    // before a batch norm in training (norm_net's conv2.bias, 7e-8 against 0.5 for conv1.weight)
    // or a scale the next batch norm undoes (its bn1.weight, 1e-5: a depthwise conv and a batch
    // norm follow it, and only relu6's clip at 6 is not scale-invariant). So each gradient's error
    // is taken relative to its norm or, where that is smaller, a hundredth of the model's largest.
    for (size_t i = 0; i < parameters.size(); i++) {
        if (is_state(parameters[i].name)) continue;
        check_close(gpu_gradients[i], cpu_gradients[i], "gradient of " + parameters[i].name, 1e-2 * largest_gradient);
    }
}

}  // namespace

TEST_SUITE("gpu") {
    TEST_CASE("LeNet-5 (conv, ReLU, max pool fused into the conv, dense)") {
        check_model<lenet5::Model, lenet5_cuda::Model>(16, false);
    }
    TEST_CASE("small_cnn (strided and padded conv, conv without bias, overlapping avg pool, padded max pool)") {
        check_model<small_cnn::Model, small_cnn_cuda::Model>(8, false);
    }
    TEST_CASE("norm_net (batch norm in training, its running statistics)") {
        check_model<norm_net::Model, norm_net_cuda::Model>(8, false);
    }
    TEST_CASE("branch_net (residual add, concat, a branch's gradients summed)") {
        check_model<branch_net::Model, branch_net_cuda::Model>(8, false);
    }
    TEST_CASE("gate_net (depthwise 5x5 and 7x7 convs, silu, hard_swish, squeeze-excitation gate, drop_path)") {
        check_model<gate_net::Model, gate_net_cuda::Model>(8, true);
    }
    TEST_CASE("dropout_net (dropout masks drawn on the GPU as on the CPU)") {
        check_model<dropout_net::Model, dropout_net_cuda::Model>(8, true);
    }
    TEST_CASE("clipped_norm_net (gradient clipping by global norm)") {
        check_model<clipped_norm_net::Model, clipped_norm_net_cuda::Model>(8, false);
    }
    TEST_CASE("resnet20 (the CIFAR ResNet: 3x3 convs, strided, batch norm, residual blocks, global pool)") {
        check_model<resnet20::Model, resnet20_cuda::Model>(4, false);
    }
    TEST_CASE("augment_net: the GPU augments images exactly as the CPU") {
        const int batch = 4;
        std::mt19937 random(3);
        std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
        std::vector<float> images(static_cast<size_t>(batch) * augment_net::Model::input_size);
        for (float& v : images) v = uniform(random);
        augment_net::Model cpu(9);
        augment_net_cuda::Model gpu(9);
        std::vector<float> on_cpu(images.size()), on_gpu(images.size());
        cpu.augment(images.data(), batch, on_cpu.data());
        gpu.augment(images.data(), batch, on_gpu.data());
        check_close(on_gpu, on_cpu, "augmented images");
        check_model<augment_net::Model, augment_net_cuda::Model>(batch, false);
    }
}
