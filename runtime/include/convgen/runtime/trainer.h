// The training loop around a generated model: shuffled, normalised minibatches prepared in the
// background (batches.h), a learning rate warmed up linearly and annealed by a cosine at every
// step, one report per epoch, evaluation. It is a template over the generated C++ class
// (`lenet5::Model` ...), so any generated library plugs in.
#pragma once

#include <convgen/runtime/batches.h>
#include <convgen/runtime/dataset.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace convgen::runtime {

struct TrainOptions {
    int epochs = 5;
    int batch = 64;
    float learning_rate = 0.03f;  // the peak: reached after the warm-up, then annealed to 0 by a cosine
    float momentum = 0.9f;
    float weight_decay = 5e-4f;
    uint64_t seed = 1;            // fixes the order of the samples
    int warmup_epochs = 0;        // the learning rate rises linearly from ~0 over this many epochs
    int first_epoch = 0;          // epochs already done (resuming): the order and the schedule continue from here
    bool prefetch = true;         // prepare batches on a background thread
    Normalisation normalisation;  // for training and test images alike; empty: pixels / 255
    // Saved after every epoch when not empty (the library writes it atomically), so a run that is
    // killed, or stopped by a non-finite step, keeps its last finished epoch; see resume().
    std::string checkpoint;
};

struct EpochReport {
    int epoch = 0;              // 1-based
    double loss = 0;            // mean training loss over the epoch
    double train_accuracy = 0;  // fraction of training samples predicted right while training
    double test_accuracy = 0;
    double learning_rate = 0;      // at the epoch's last step
    double images_per_second = 0;  // training steps only
    double data_wait_seconds = 0;  // time the training steps waited for their batches
    double elapsed_seconds = 0;    // since training began
};

// The learning rate at `step` (0-based) of `total_steps`: linear warm-up to `peak` over
// warmup_steps, then half a cosine from peak down to 0 at total_steps.
inline double scheduled_learning_rate(double peak, int64_t step, int64_t total_steps, int64_t warmup_steps) {
    if (step < warmup_steps) return peak * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
    const double progress = static_cast<double>(step - warmup_steps) /
                            static_cast<double>(std::max<int64_t>(1, total_steps - warmup_steps));
    return peak * 0.5 * (1.0 + std::cos(3.14159265358979323846 * std::min(1.0, progress)));
}

// Throws std::invalid_argument unless the source's images and classes fit the model.
template <typename Model>
void check_fits_model(const SampleSource& source, const std::string& what) {
    if (source.height() != Model::input_height || source.width() != Model::input_width ||
        source.channels() != Model::input_channels) {
        throw std::invalid_argument(
            "the " + what + " has images of height " + std::to_string(source.height()) + ", width " +
            std::to_string(source.width()) + " and " + std::to_string(source.channels()) +
            " channels but the model takes height " + std::to_string(Model::input_height) + ", width " +
            std::to_string(Model::input_width) + " and " + std::to_string(Model::input_channels) + " channels");
    }
    if (static_cast<int64_t>(source.class_names().size()) > Model::classes) {
        throw std::invalid_argument("the " + what + " has " + std::to_string(source.class_names().size()) +
                                    " classes but the model predicts " + std::to_string(Model::classes));
    }
}

namespace detail {

inline BatchOptions evaluation_options(const Normalisation& normalisation, int batch, bool prefetch) {
    BatchOptions options;
    options.batch = batch;
    options.shuffle = false;
    options.drop_last = false;
    options.prefetch = prefetch;
    options.normalisation = normalisation;
    return options;
}

// The most probable class of every sample of one epoch of an unshuffled `stream`, in sample order.
template <typename Model>
std::vector<int32_t> predicted_classes(Model& model, BatchStream& stream) {
    check_fits_model<Model>(stream.source(), "evaluation set");
    std::vector<float> probabilities;
    std::vector<int32_t> classes;
    classes.reserve(static_cast<size_t>(stream.source().count()));
    for (int64_t step = 0; step < stream.batches_per_epoch(); step++) {
        const Batch& batch = stream.next();
        probabilities.resize(static_cast<size_t>(batch.count) * Model::classes);
        model.predict(batch.images.data(), batch.count, probabilities.data());
        for (int i = 0; i < batch.count; i++) {
            const float* row = probabilities.data() + static_cast<size_t>(i) * Model::classes;
            classes.push_back(static_cast<int32_t>(std::max_element(row, row + Model::classes) - row));
        }
    }
    return classes;
}

// Fraction of one epoch of an unshuffled `stream` whose most probable class is the label.
template <typename Model>
double accuracy(Model& model, BatchStream& stream) {
    const std::vector<int32_t> classes = predicted_classes(model, stream);
    int64_t correct = 0;
    for (size_t i = 0; i < classes.size(); i++) correct += classes[i] == stream.source().label(static_cast<int64_t>(i));
    return static_cast<double>(correct) / static_cast<double>(stream.source().count());
}

}  // namespace detail

// The most probable class of every sample of `set`, in order (for a confusion matrix, say).
template <typename Model>
std::vector<int32_t> predict_classes(Model& model, const ImageSet& set, const Normalisation& normalisation,
                                     int batch = 500, bool prefetch = true) {
    BatchStream stream(set, detail::evaluation_options(normalisation, batch, prefetch));
    return detail::predicted_classes(model, stream);
}

template <typename Model>
std::vector<int32_t> predict_classes(Model& model, const SampleSource& set, const Normalisation& normalisation,
                                     int batch = 500, bool prefetch = true) {
    BatchStream stream(set, detail::evaluation_options(normalisation, batch, prefetch));
    return detail::predicted_classes(model, stream);
}

// Fraction of `set` whose most probable class is the label.
template <typename Model>
double evaluate(Model& model, const ImageSet& set, const Normalisation& normalisation, int batch = 500,
                bool prefetch = true) {
    BatchStream stream(set, detail::evaluation_options(normalisation, batch, prefetch));
    return detail::accuracy(model, stream);
}

template <typename Model>
double evaluate(Model& model, const SampleSource& set, const Normalisation& normalisation, int batch = 500,
                bool prefetch = true) {
    BatchStream stream(set, detail::evaluation_options(normalisation, batch, prefetch));
    return detail::accuracy(model, stream);
}

// Continues a run from options.checkpoint: loads it into `model` (weights, momentum, step count
// and seed) and returns the options with first_epoch set to the epochs it has finished, so that
// the data order, the learning-rate schedule and the augmentation go on exactly where it stopped.
// Throws std::invalid_argument when there is no checkpoint or its step count is not a whole
// number of epochs of this training set and batch, and the library's Error when it does not load.
template <typename Model>
TrainOptions resume(Model& model, int64_t train_count, TrainOptions options) {
    if (options.checkpoint.empty()) throw std::invalid_argument("resume: no checkpoint path in the options");
    {
        std::FILE* file = std::fopen(options.checkpoint.c_str(), "rb");
        if (file == nullptr) {
            throw std::invalid_argument("resume: there is no checkpoint " + options.checkpoint + " to continue from");
        }
        std::fclose(file);
    }
    model.load(options.checkpoint);
    const int64_t steps_per_epoch = options.batch > 0 ? train_count / options.batch : 0;
    const uint64_t steps = model.step_count();
    if (steps_per_epoch <= 0 || steps % static_cast<uint64_t>(steps_per_epoch) != 0) {
        throw std::invalid_argument("resume: " + options.checkpoint + " has taken " + std::to_string(steps) +
                                    " steps, not a whole number of epochs of " + std::to_string(steps_per_epoch) +
                                    " steps (batch " + std::to_string(options.batch) +
                                    "); was it saved by another training setup?");
    }
    const int64_t done = static_cast<int64_t>(steps) / steps_per_epoch;
    if (done > options.epochs) {
        throw std::invalid_argument("resume: " + options.checkpoint + " has finished " + std::to_string(done) +
                                    " epochs, more than the " + std::to_string(options.epochs) + " asked for");
    }
    options.first_epoch = static_cast<int>(done);
    return options;
}

// Trains epochs first_epoch + 1 ... options.epochs, calling on_epoch after each. The last partial
// batch of an epoch is dropped, as PyTorch's drop_last, so every step has the same batch size.
// Each set is an ImageSet or a SampleSource (such as an ImageFolderSource, decoded as it goes).
template <typename Model, typename TrainSet, typename TestSet>
std::vector<EpochReport> train(Model& model, const TrainSet& train_set, const TestSet& test_set,
                               const TrainOptions& options,
                               const std::function<void(const EpochReport&)>& on_epoch = nullptr) {
    BatchOptions batch_options;
    batch_options.batch = options.batch;
    batch_options.seed = options.seed;
    batch_options.prefetch = options.prefetch;
    batch_options.normalisation = options.normalisation;
    BatchStream stream(train_set, batch_options, options.first_epoch);
    check_fits_model<Model>(stream.source(), "training set");
    // A test set that does not fit is reported now rather than after the first epoch.
    const BatchStream test_check(test_set, detail::evaluation_options(options.normalisation, 500, false));
    check_fits_model<Model>(test_check.source(), "test set");
    const int64_t steps_per_epoch = stream.batches_per_epoch();
    const int64_t total_steps = steps_per_epoch * options.epochs;
    const int64_t warmup_steps = steps_per_epoch * options.warmup_epochs;

    std::vector<EpochReport> reports;
    const auto started = std::chrono::steady_clock::now();
    for (int epoch = options.first_epoch; epoch < options.epochs; epoch++) {
        double loss_sum = 0, step_seconds = 0, learning_rate = 0;
        int64_t correct = 0, seen = 0;
        const double wait_before = stream.wait_seconds();
        for (int64_t step = 0; step < steps_per_epoch; step++) {
            const Batch& batch = stream.next();
            learning_rate = scheduled_learning_rate(options.learning_rate, epoch * steps_per_epoch + step, total_steps,
                                                    warmup_steps);
            model.set_sgd(static_cast<float>(learning_rate), options.momentum, options.weight_decay);
            const auto step_started = std::chrono::steady_clock::now();
            const auto result = model.train_step(batch.images.data(), batch.labels.data(), batch.count);
            step_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - step_started).count();
            loss_sum += result.loss;
            correct += result.correct;
            seen += batch.count;
        }
        EpochReport report;
        report.epoch = epoch + 1;
        report.loss = loss_sum / static_cast<double>(steps_per_epoch);
        report.train_accuracy = static_cast<double>(correct) / static_cast<double>(seen);
        report.learning_rate = learning_rate;
        report.images_per_second = step_seconds > 0 ? static_cast<double>(seen) / step_seconds : 0.0;
        report.data_wait_seconds = stream.wait_seconds() - wait_before;
        report.test_accuracy = evaluate(model, test_set, options.normalisation, 500, options.prefetch);
        report.elapsed_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        reports.push_back(report);
        if (!options.checkpoint.empty()) model.save(options.checkpoint);
        if (on_epoch) on_epoch(report);
    }
    return reports;
}

}  // namespace convgen::runtime
