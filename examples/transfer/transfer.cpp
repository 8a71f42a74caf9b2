// Transfer learning on CIFAR-10, measured: a compact CNN pretrained on classes 0-4 (25,000 images)
// and moved to classes 5-9 with 500 labelled images per class, three ways:
//   from scratch        transfer_scratch trained on the 2,500 images alone;
//   feature extraction  the pretrained backbone frozen and run once over the images, its
//                       features cached, and only a new head (transfer_head) trained on them;
//   fine-tuning         transfer_finetune: the first block frozen, the rest of the backbone at a
//                       tenth of the head's learning rate, trained on the images.
// Prints the test accuracy (all 5,000 test images of classes 5-9), the training time of each and
// the time of one training step with and without a frozen backbone, as a markdown table, also
// written to <out>/transfer_results.md.
//   transfer [--data DIR] [--out DIR] [--source-epochs N] [--target-epochs N] [--head-epochs N] [--seed N]
// The pretrained checkpoint <out>/transfer_source.safetensors is reused when present, so a rerun
// goes straight to the target task.
#include "transfer_finetune.hpp"
#include "transfer_frozen.hpp"
#include "transfer_head.hpp"
#include "transfer_scratch.hpp"
#include "transfer_source.hpp"

#include "../cifar/cifar10_statistics.h"
#include "../common/train_driver.h"

#include <convgen/runtime/image_folder.h>
#include <convgen/runtime/trainer.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using namespace convgen::runtime;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr int classes = 5;
constexpr int feature_width = 128;

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

struct Flags {
    std::string data = "data/cifar10-jpg";
    std::string out = "transfer-run";
    int source_epochs = 4;
    int target_epochs = 15;
    int head_epochs = 100;
    uint64_t seed = 1;
};

Flags parse_flags(int argc, char** argv) {
    const std::string usage =
        "usage: transfer [--data DIR] [--out DIR] [--source-epochs N] [--target-epochs N] [--head-epochs N] [--seed N]";
    Flags flags;
    if (const char* data = std::getenv("CONVGEN_CIFAR10_DIR")) flags.data = data;
    for (int i = 1; i < argc; i++) {
        const std::string flag = argv[i];
        if (i + 1 >= argc) throw std::invalid_argument(flag + " needs a value\n" + usage);
        const std::string value = argv[++i];
        const auto number = [&] {
            try {
                return std::stoull(value);
            } catch (const std::logic_error&) {
                throw std::invalid_argument(flag + ": '" + value + "' is not a number\n" + usage);
            }
        };
        if (flag == "--data")
            flags.data = value;
        else if (flag == "--out")
            flags.out = value;
        else if (flag == "--source-epochs")
            flags.source_epochs = static_cast<int>(number());
        else if (flag == "--target-epochs")
            flags.target_epochs = static_cast<int>(number());
        else if (flag == "--head-epochs")
            flags.head_epochs = static_cast<int>(number());
        else if (flag == "--seed")
            flags.seed = number();
        else
            throw std::invalid_argument("unknown flag " + flag + "\n" + usage);
    }
    return flags;
}

// The images of classes first ... first + count - 1, relabelled 0 ... count - 1.
ImageSet classes_of(const ImageSet& set, int32_t first, int32_t count) {
    ImageSet subset = set;
    subset.pixels.clear();
    subset.labels.clear();
    subset.class_names.assign(set.class_names.begin() + first, set.class_names.begin() + first + count);
    const int64_t size = set.image_size();
    for (int64_t i = 0; i < set.count; i++) {
        const int32_t label = set.labels[static_cast<size_t>(i)];
        if (label < first || label >= first + count) continue;
        subset.pixels.insert(subset.pixels.end(), set.pixels.begin() + i * size, set.pixels.begin() + (i + 1) * size);
        subset.labels.push_back(label - first);
    }
    subset.count = static_cast<int64_t>(subset.labels.size());
    return subset;
}

// The frozen backbone's features of every image of `set`: [count][feature_width], from one
// prediction pass (the library keeps the "features" layer's output of the last prediction).
std::vector<float> cached_features(transfer_frozen::Model& frozen, const ImageSet& set,
                                   const Normalisation& normalisation) {
    constexpr int batch = 500;
    std::vector<float> features;
    features.reserve(static_cast<size_t>(set.count) * feature_width);
    std::vector<float> images(static_cast<size_t>(batch) * transfer_frozen::Model::input_size);
    std::vector<float> probabilities(static_cast<size_t>(batch) * classes);
    std::vector<int32_t> labels(batch);
    std::vector<int64_t> samples(batch);
    for (int64_t first = 0; first < set.count; first += batch) {
        const int count = static_cast<int>(std::min<int64_t>(batch, set.count - first));
        std::iota(samples.begin(), samples.begin() + count, first);
        to_network_input(set, samples.data(), static_cast<size_t>(count), normalisation, images.data(), labels.data());
        frozen.predict(images.data(), count, probabilities.data());
        const std::vector<float> batch_features = frozen.layer_output("features", count);
        features.insert(features.end(), batch_features.begin(), batch_features.end());
    }
    return features;
}

// Trains the head on cached features with the trainer's schedule (shuffled minibatches, warm-up,
// cosine); returns the seconds it took.
double train_head(transfer_head::Model& head, const std::vector<float>& features, const std::vector<int32_t>& labels,
                  const TrainOptions& options) {
    const auto started = Clock::now();
    const int64_t count = static_cast<int64_t>(labels.size());
    const int64_t steps_per_epoch = count / options.batch;
    const int64_t total_steps = steps_per_epoch * options.epochs;
    std::vector<int64_t> order(static_cast<size_t>(count));
    std::iota(order.begin(), order.end(), 0);
    std::mt19937_64 random(options.seed);
    std::vector<float> batch_features(static_cast<size_t>(options.batch) * feature_width);
    std::vector<int32_t> batch_labels(static_cast<size_t>(options.batch));
    for (int epoch = 0; epoch < options.epochs; epoch++) {
        std::shuffle(order.begin(), order.end(), random);
        double loss = 0;
        int64_t correct = 0;
        for (int64_t step = 0; step < steps_per_epoch; step++) {
            for (int i = 0; i < options.batch; i++) {
                const int64_t sample = order[static_cast<size_t>(step * options.batch + i)];
                std::copy_n(features.begin() + sample * feature_width, feature_width,
                            batch_features.begin() + static_cast<int64_t>(i) * feature_width);
                batch_labels[static_cast<size_t>(i)] = labels[static_cast<size_t>(sample)];
            }
            head.set_sgd(
                static_cast<float>(scheduled_learning_rate(options.learning_rate, epoch * steps_per_epoch + step,
                                                           total_steps, steps_per_epoch * options.warmup_epochs)),
                options.momentum, options.weight_decay);
            const auto result = head.train_step(batch_features.data(), batch_labels.data(), options.batch);
            loss += result.loss;
            correct += result.correct;
        }
        if ((epoch + 1) % 20 == 0 || epoch + 1 == options.epochs) {
            fmt::print("  head epoch {}: loss {:.4f}  train accuracy {:.2f}%\n", epoch + 1,
                       loss / static_cast<double>(steps_per_epoch),
                       100.0 * static_cast<double>(correct) / static_cast<double>(steps_per_epoch * options.batch));
        }
    }
    return seconds_since(started);
}

// The fraction of cached features the head classifies right.
double head_accuracy(transfer_head::Model& head, const std::vector<float>& features,
                     const std::vector<int32_t>& labels) {
    const int count = static_cast<int>(labels.size());
    const std::vector<float> probabilities = head.predict(features.data(), count);
    int64_t correct = 0;
    for (int i = 0; i < count; i++) {
        const float* row = probabilities.data() + static_cast<size_t>(i) * classes;
        correct += std::max_element(row, row + classes) - row == labels[static_cast<size_t>(i)];
    }
    return static_cast<double>(correct) / count;
}

// Milliseconds per training step at `batch`, the mean of `timed` steps after `warmup` steps on
// the first images of `set`.
template <typename Model>
double step_milliseconds(Model& model, const ImageSet& set, const Normalisation& normalisation, int batch,
                         int warmup = 3, int timed = 10) {
    std::vector<float> images(static_cast<size_t>(batch) * Model::input_size);
    std::vector<int32_t> labels(static_cast<size_t>(batch));
    std::vector<int64_t> samples(static_cast<size_t>(batch));
    for (int i = 0; i < batch; i++) samples[static_cast<size_t>(i)] = i * (set.count / batch);
    to_network_input(set, samples.data(), samples.size(), normalisation, images.data(), labels.data());
    model.set_sgd(0.01f, 0.9f, 5e-4f);
    for (int i = 0; i < warmup; i++) model.train_step(images.data(), labels.data(), batch);
    const auto started = Clock::now();
    for (int i = 0; i < timed; i++) model.train_step(images.data(), labels.data(), batch);
    return 1000.0 * seconds_since(started) / timed;
}

template <typename Report>
void print_pretrained_report(const std::string& model, const Report& report) {
    fmt::print("{}.load_pretrained: {} loaded, {} kept ({}), {} unused ({})\n", model, report.loaded.size(),
               report.kept.size(), fmt::join(report.kept, ", "), report.unused.size(), fmt::join(report.unused, ", "));
}

// Trains a target model on the images, printing a line per epoch; the per-epoch check uses a
// 500-image slice of the test set so that it adds little to the training time.
template <typename Model>
double train_on_images(Model& model, const std::string& name, const ImageSet& train_set, const ImageSet& check_set,
                       const TrainOptions& options) {
    fmt::print("{}: {} epochs on {} images, batch {}, SGD lr {} (cosine, warm-up {}), momentum {}, weight decay {}\n",
               name, options.epochs, train_set.count, options.batch, options.learning_rate, options.warmup_epochs,
               options.momentum, options.weight_decay);
    const auto started = Clock::now();
    train(model, train_set, check_set, options, [](const EpochReport& r) {
        fmt::print(
            "  epoch {}: loss {:.4f}  train accuracy {:.2f}%  check accuracy {:.2f}%  {:.0f} images/s  {:.1f} s\n",
            r.epoch, r.loss, 100 * r.train_accuracy, 100 * r.test_accuracy, r.images_per_second, r.elapsed_seconds);
    });
    return seconds_since(started);
}

}  // namespace

int main(int argc, char** argv) {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    try {
        const Flags flags = parse_flags(argc, argv);
        fs::create_directories(flags.out);
        const Normalisation normalisation{{cifar10::mean, cifar10::mean + 3}, {cifar10::std_dev, cifar10::std_dev + 3}};

        auto started = Clock::now();
        const ImageSet train_all = load_image_folder((fs::path(flags.data) / "train").string());
        const ImageSet test_all = load_image_folder((fs::path(flags.data) / "test").string());
        const ImageSet source_train = classes_of(train_all, 0, classes), source_test = classes_of(test_all, 0, classes);
        const ImageSet target_train = examples::balanced_subset(classes_of(train_all, classes, classes), 500 * classes);
        const ImageSet target_test = classes_of(test_all, classes, classes);
        const ImageSet target_check = examples::balanced_subset(target_test, 500);
        fmt::print(
            "CIFAR-10 from {} in {:.1f} s\n  source task ({}): {} training, {} test images\n"
            "  target task ({}): {} training (500 per class), {} test images\n",
            flags.data, seconds_since(started), fmt::join(source_train.class_names, ", "), source_train.count,
            source_test.count, fmt::join(target_train.class_names, ", "), target_train.count, target_test.count);

        TrainOptions options;
        options.batch = 128;
        options.learning_rate = 0.05f;
        options.weight_decay = 5e-4f;
        options.warmup_epochs = 1;
        options.seed = flags.seed;
        options.normalisation = normalisation;

        // Pretraining, or its checkpoint from an earlier run.
        const std::string checkpoint = (fs::path(flags.out) / "transfer_source.safetensors").string();
        double source_seconds = 0, source_accuracy = 0;
        bool reused = false;
        {
            transfer_source::Model source(flags.seed);
            if (fs::exists(checkpoint)) {
                source.load(checkpoint);
                reused = true;
                fmt::print("pretraining: reusing {} (delete it to pretrain again)\n", checkpoint);
            } else {
                TrainOptions source_options = options;
                source_options.epochs = flags.source_epochs;
                source_seconds = train_on_images(source, "transfer_source", source_train,
                                                 examples::balanced_subset(source_test, 1000), source_options);
                source.save(checkpoint);
                fmt::print("pretraining took {:.1f} s; checkpoint saved to {}\n", source_seconds, checkpoint);
            }
            source_accuracy = evaluate(source, source_test, normalisation);
            fmt::print("source task test accuracy: {:.2f}%\n", 100 * source_accuracy);
        }

        TrainOptions target_options = options;
        target_options.batch = 64;
        target_options.epochs = flags.target_epochs;

        // (a) From scratch.
        transfer_scratch::Model scratch(flags.seed);
        const double scratch_seconds =
            train_on_images(scratch, "transfer_scratch", target_train, target_check, target_options);
        const double scratch_accuracy = evaluate(scratch, target_test, normalisation);
        fmt::print("from scratch: test accuracy {:.2f}% after {:.1f} s\n", 100 * scratch_accuracy, scratch_seconds);

        // (b) Feature extraction: the frozen backbone once over the images, then the head alone.
        transfer_frozen::Model frozen(flags.seed);
        started = Clock::now();
        print_pretrained_report("transfer_frozen", frozen.load_pretrained(checkpoint));
        const std::vector<float> train_features = cached_features(frozen, target_train, normalisation);
        const double caching_seconds = seconds_since(started);
        const std::vector<float> test_features = cached_features(frozen, target_test, normalisation);
        fmt::print("feature extraction: {} training images' features cached in {:.1f} s\n", target_train.count,
                   caching_seconds);
        transfer_head::Model head(flags.seed);
        TrainOptions head_options = target_options;
        head_options.epochs = flags.head_epochs;
        const double head_seconds = train_head(head, train_features, target_train.labels, head_options);
        const double head_test_accuracy = head_accuracy(head, test_features, target_test.labels);
        // The trained head on the frozen backbone: the whole model, on the test images themselves.
        for (const auto& parameter : transfer_head::Model::parameters()) {
            frozen.set_parameter(parameter.name, head.get_parameter(parameter.name));
        }
        const double extraction_accuracy = evaluate(frozen, target_test, normalisation);
        const double extraction_seconds = caching_seconds + head_seconds;
        fmt::print(
            "feature extraction: head trained for {} epochs in {:.2f} s; test accuracy {:.2f}% on the cached "
            "features, {:.2f}% with the head copied into transfer_frozen on the images\n",
            flags.head_epochs, head_seconds, 100 * head_test_accuracy, 100 * extraction_accuracy);

        // (c) Fine-tuning.
        transfer_finetune::Model finetune(flags.seed);
        print_pretrained_report("transfer_finetune", finetune.load_pretrained(checkpoint));
        const double finetune_seconds =
            train_on_images(finetune, "transfer_finetune", target_train, target_check, target_options);
        const double finetune_accuracy = evaluate(finetune, target_test, normalisation);
        fmt::print("fine-tuning: test accuracy {:.2f}% after {:.1f} s\n", 100 * finetune_accuracy, finetune_seconds);

        // What freezing saves per step, on fresh models at batch 128.
        constexpr int step_batch = 128;
        transfer_scratch::Model scratch_timing(flags.seed);
        transfer_frozen::Model frozen_timing(flags.seed);
        transfer_finetune::Model finetune_timing(flags.seed);
        transfer_head::Model head_timing(flags.seed);
        const double scratch_ms = step_milliseconds(scratch_timing, target_train, normalisation, step_batch);
        const double frozen_ms = step_milliseconds(frozen_timing, target_train, normalisation, step_batch);
        const double finetune_ms = step_milliseconds(finetune_timing, target_train, normalisation, step_batch);
        double head_ms = 0;
        {
            std::vector<int32_t> labels(target_train.labels.begin(), target_train.labels.begin() + step_batch);
            head_timing.set_sgd(0.01f, 0.9f, 5e-4f);
            for (int i = 0; i < 10; i++) head_timing.train_step(train_features.data(), labels.data(), step_batch);
            const auto timing = Clock::now();
            constexpr int steps = 1000;
            for (int i = 0; i < steps; i++) head_timing.train_step(train_features.data(), labels.data(), step_batch);
            head_ms = 1000.0 * seconds_since(timing) / steps;
        }

        const int step_count = (target_train.count / target_options.batch) * flags.target_epochs;
        std::string table = fmt::format(
            "| method | test accuracy | training time | ms per training step (batch {}) |\n"
            "|---|---:|---:|---:|\n",
            step_batch);
        table += fmt::format("| from scratch ({} epochs) | {:.2f}% | {:.1f} s | {:.1f} (whole network) |\n",
                             flags.target_epochs, 100 * scratch_accuracy, scratch_seconds, scratch_ms);
        table += fmt::format(
            "| feature extraction (features cached once, head {} epochs) | {:.2f}% | {:.1f} s ({:.1f} s caching + "
            "{:.2f} s head) | {:.3f} (head on cached features); {:.1f} (transfer_frozen on images) |\n",
            flags.head_epochs, 100 * extraction_accuracy, extraction_seconds, caching_seconds, head_seconds, head_ms,
            frozen_ms);
        table +=
            fmt::format("| fine-tuning (block 1 frozen, rest at 0.1x lr, {} epochs) | {:.2f}% | {:.1f} s | {:.1f} |\n",
                        flags.target_epochs, 100 * finetune_accuracy, finetune_seconds, finetune_ms);
        std::string notes = fmt::format(
            "\nTarget task: CIFAR-10 classes 5-9 ({}), 500 training images per class, tested on all {} test images "
            "of those classes. Backbone pretrained on classes 0-4 ({} images, {}; source test accuracy "
            "{:.2f}%). Scratch and fine-tuning: {} steps of batch {} with random crop and flip; their training time "
            "includes a 500-image check after each epoch. Feature extraction: {:.0f}x faster than fine-tuning; "
            "the head alone scores {:.2f}% on the cached test features. A step of transfer_frozen (whole backbone "
            "frozen) takes {:.0f}% of a full step, fine-tuning's {:.0f}%.\n",
            fmt::join(target_train.class_names, ", "), target_test.count, source_train.count,
            reused ? "checkpoint reused from an earlier run"
                   : fmt::format("{} epochs, {:.0f} s", flags.source_epochs, source_seconds),
            100 * source_accuracy, step_count, target_options.batch, finetune_seconds / extraction_seconds,
            100 * head_test_accuracy, 100 * frozen_ms / scratch_ms, 100 * finetune_ms / scratch_ms);
        fmt::print("\n{}{}", table, notes);
        const std::string results = (fs::path(flags.out) / "transfer_results.md").string();
        std::ofstream(results) << table << notes;
        fmt::print("written to {}\n", results);
    } catch (const std::exception& e) {
        std::cerr << "transfer: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
