// The training loop around a generated model: shuffled minibatches, one progress report per
// epoch, evaluation. It is a template over the generated C++ class (`lenet5::Model` ...), so any
// generated library plugs in.
#pragma once

#include <convgen/runtime/idx.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <numeric>
#include <random>
#include <vector>

namespace convgen::runtime {

struct TrainOptions {
    int epochs = 5;
    int batch = 64;
    float learning_rate = 0.03f;  // at the first epoch; annealed to 0 by a cosine over the epochs
    float momentum = 0.9f;
    float weight_decay = 5e-4f;
    uint64_t seed = 1;  // fixes the order of the samples
};

struct EpochReport {
    int epoch = 0;
    double loss = 0;            // mean training loss over the epoch
    double train_accuracy = 0;  // fraction of training samples predicted right while training
    double test_accuracy = 0;
    double images_per_second = 0;  // training steps only
    double elapsed_seconds = 0;    // since training began
};

// Copies the samples `order[first, first + count)` into one contiguous batch.
inline void gather_batch(const ImageSet& set, const std::vector<int64_t>& order, size_t first, size_t count,
                         std::vector<float>& images, std::vector<int32_t>& labels) {
    const size_t per_image = static_cast<size_t>(set.height * set.width * set.channels);
    images.resize(count * per_image);
    labels.resize(count);
    for (size_t i = 0; i < count; i++) {
        const size_t sample = static_cast<size_t>(order[first + i]);
        std::copy_n(set.pixels.begin() + static_cast<std::ptrdiff_t>(sample * per_image), per_image,
                    images.begin() + static_cast<std::ptrdiff_t>(i * per_image));
        labels[i] = set.labels[sample];
    }
}

// Fraction of `set` whose most probable class is the label.
template <typename Model>
double evaluate(Model& model, const ImageSet& set, int batch = 500) {
    std::vector<int64_t> order(static_cast<size_t>(set.count));
    std::iota(order.begin(), order.end(), 0);
    std::vector<float> images, probabilities;
    std::vector<int32_t> labels;
    int64_t correct = 0;
    for (size_t first = 0; first < order.size(); first += static_cast<size_t>(batch)) {
        const size_t count = std::min(order.size() - first, static_cast<size_t>(batch));
        gather_batch(set, order, first, count, images, labels);
        probabilities.resize(count * Model::classes);
        model.predict(images.data(), static_cast<int>(count), probabilities.data());
        for (size_t i = 0; i < count; i++) {
            const float* row = probabilities.data() + i * Model::classes;
            const int64_t predicted = std::max_element(row, row + Model::classes) - row;
            correct += predicted == labels[i];
        }
    }
    return set.count ? static_cast<double>(correct) / static_cast<double>(set.count) : 0.0;
}

// Trains for options.epochs epochs; calls `report` after each. The last partial batch of an
// epoch is dropped, as PyTorch's drop_last, so every step has the same batch size.
template <typename Model>
std::vector<EpochReport> train(Model& model, const ImageSet& train_set, const ImageSet& test_set,
                               const TrainOptions& options,
                               const std::function<void(const EpochReport&)>& report = nullptr) {
    std::mt19937_64 random(options.seed);
    std::vector<int64_t> order(static_cast<size_t>(train_set.count));
    std::iota(order.begin(), order.end(), 0);
    std::vector<float> images;
    std::vector<int32_t> labels;
    std::vector<EpochReport> reports;
    const auto started = std::chrono::steady_clock::now();
    const double pi = 3.14159265358979323846;
    for (int epoch = 0; epoch < options.epochs; epoch++) {
        const double anneal = 0.5 * (1.0 + std::cos(pi * epoch / options.epochs));
        model.set_sgd(static_cast<float>(options.learning_rate * anneal), options.momentum, options.weight_decay);
        std::shuffle(order.begin(), order.end(), random);
        double loss_sum = 0, step_seconds = 0;
        int64_t correct = 0, seen = 0, steps = 0;
        const size_t batch = static_cast<size_t>(options.batch);
        for (size_t first = 0; first + batch <= order.size(); first += batch) {
            gather_batch(train_set, order, first, batch, images, labels);
            const auto step_started = std::chrono::steady_clock::now();
            const auto result = model.train_step(images.data(), labels.data(), options.batch);
            step_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - step_started).count();
            loss_sum += result.loss;
            correct += result.correct;
            seen += options.batch;
            steps++;
        }
        EpochReport r;
        r.epoch = epoch + 1;
        r.loss = steps ? loss_sum / static_cast<double>(steps) : 0.0;
        r.train_accuracy = seen ? static_cast<double>(correct) / static_cast<double>(seen) : 0.0;
        r.images_per_second = step_seconds > 0 ? static_cast<double>(seen) / step_seconds : 0.0;
        r.test_accuracy = evaluate(model, test_set);
        r.elapsed_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        reports.push_back(r);
        if (report) report(r);
    }
    return reports;
}

// Standardises pixels in place: (x - mean) / std, one mean and std for all channels.
inline void normalise(ImageSet& set, float mean, float std_dev) {
    for (float& p : set.pixels) p = (p - mean) / std_dev;
}

}  // namespace convgen::runtime
