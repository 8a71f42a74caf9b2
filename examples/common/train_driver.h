// What the training examples share: their command line, the per-epoch report, a PNG of what
// the network sees after augmentation, a per-epoch CSV, the training curves and the checkpoint.
//
//   --data DIR  --epochs N  --batch N  --lr X  --weight-decay X  --warmup N  --seed N
//   --train-samples N (a balanced subset of N training images)  --no-augmentation  --no-prefetch  --out DIR
//   --resume (continue from the checkpoint in --out, which is rewritten after every epoch)
#pragma once

#include <convgen/runtime/batches.h>
#include <convgen/runtime/dataset.h>
#include <convgen/runtime/image_grid.h>
#include <convgen/runtime/trainer.h>
#include <convgen/runtime/visualise.h>

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace examples {

struct CommandLine {
    std::string data;
    std::string out = ".";
    bool augmentation = true;
    bool resume = false;
    int64_t train_samples = 0;  // 0: all
    convgen::runtime::TrainOptions options;
};

// Parses the flags above over `defaults`; throws std::invalid_argument with the usage on a bad one.
inline CommandLine parse_command_line(int argc, char** argv, CommandLine defaults) {
    CommandLine line = std::move(defaults);
    const std::string usage = fmt::format(
        "usage: {} [--data DIR] [--epochs N] [--batch N] [--lr X] [--weight-decay X] [--warmup EPOCHS] [--seed N] "
        "[--train-samples N] [--no-augmentation] [--no-prefetch] [--out DIR] [--resume]",
        std::filesystem::path(argv[0]).filename().string());
    for (int i = 1; i < argc; i++) {
        const std::string flag = argv[i];
        if (flag == "--no-augmentation") {
            line.augmentation = false;
            continue;
        }
        if (flag == "--no-prefetch") {
            line.options.prefetch = false;
            continue;
        }
        if (flag == "--resume") {
            line.resume = true;
            continue;
        }
        if (i + 1 >= argc) throw std::invalid_argument(flag + " needs a value\n" + usage);
        const std::string value = argv[++i];
        const auto number = [&](auto convert) {
            try {
                return convert(value);
            } catch (const std::exception&) {
                throw std::invalid_argument(flag + ": '" + value + "' is not a number\n" + usage);
            }
        };
        const auto integer = [](const std::string& v) { return std::stoi(v); };
        if (flag == "--data") line.data = value;
        else if (flag == "--out") line.out = value;
        else if (flag == "--epochs") line.options.epochs = number(integer);
        else if (flag == "--batch") line.options.batch = number(integer);
        else if (flag == "--warmup") line.options.warmup_epochs = number(integer);
        else if (flag == "--train-samples") line.train_samples = number(integer);
        else if (flag == "--lr") line.options.learning_rate = number([](const std::string& v) { return std::stof(v); });
        else if (flag == "--weight-decay") line.options.weight_decay = number([](const std::string& v) { return std::stof(v); });
        else if (flag == "--seed") line.options.seed = number([](const std::string& v) { return std::stoull(v); });
        else throw std::invalid_argument("unknown flag " + flag + "\n" + usage);
    }
    return line;
}

// A smaller training set of `count` samples, the same number from every class (the first ones of
// each, in the set's order), to see what augmentation does where data is scarce. The whole set
// when count is 0 or not smaller than it.
inline convgen::runtime::ImageSet balanced_subset(const convgen::runtime::ImageSet& set, int64_t count) {
    if (count <= 0 || count >= set.count) return set;
    const int64_t classes = static_cast<int64_t>(std::max<size_t>(1, set.class_names.size()));
    const int64_t per_class = std::max<int64_t>(1, count / classes);
    std::vector<int64_t> taken(static_cast<size_t>(classes), 0);
    convgen::runtime::ImageSet subset = set;
    subset.pixels.clear();
    subset.labels.clear();
    const int64_t size = set.image_size();
    for (int64_t i = 0; i < set.count; i++) {
        const int32_t label = set.labels[static_cast<size_t>(i)];
        if (taken[static_cast<size_t>(label)]++ >= per_class) continue;
        subset.pixels.insert(subset.pixels.end(), set.pixels.begin() + i * size, set.pixels.begin() + (i + 1) * size);
        subset.labels.push_back(label);
    }
    subset.count = static_cast<int64_t>(subset.labels.size());
    return subset;
}

// Writes `out/augmented.png`: 64 training images spread over the set (which loaders keep in class
// order), as the first training step would see them after the model's augmentation, 8 to a row,
// scaled up 3 times.
template <typename Model>
std::string write_augmented_grid(Model& model, const convgen::runtime::ImageSet& train_set,
                                 const convgen::runtime::Normalisation& normalisation, const std::string& out) {
    const int count = static_cast<int>(std::min<int64_t>(64, train_set.count));
    std::vector<int64_t> samples(static_cast<size_t>(count));
    for (int i = 0; i < count; i++) samples[static_cast<size_t>(i)] = i * (train_set.count / count);
    std::vector<float> images(static_cast<size_t>(count) * Model::input_size), seen(images.size());
    std::vector<int32_t> labels(static_cast<size_t>(count));
    convgen::runtime::to_network_input(train_set, samples.data(), samples.size(), normalisation, images.data(),
                                       labels.data());
    model.augment(images.data(), count, seen.data());
    const std::string path = (std::filesystem::path(out) / "augmented.png").string();
    convgen::runtime::write_image_grid_png(path, seen.data(), count, Model::input_height, Model::input_width,
                                           Model::input_channels, normalisation, 8, 3);
    return path;
}

template <typename Set>
int64_t sample_count(const Set& set) {
    if constexpr (std::is_base_of_v<convgen::runtime::SampleSource, Set>) return set.count();
    else return set.count;
}

// The reports of a run's epochs, read back from the CSV it wrote (the first `epochs` rows).
inline std::vector<convgen::runtime::EpochReport> read_epoch_csv(const std::string& path, int epochs) {
    std::vector<convgen::runtime::EpochReport> reports;
    std::ifstream in(path);
    std::string row;
    std::getline(in, row);  // the header
    while (static_cast<int>(reports.size()) < epochs && std::getline(in, row)) {
        convgen::runtime::EpochReport r;
        if (std::sscanf(row.c_str(), "%d,%lf,%lf,%lf,%lf,%lf,%lf,%lf", &r.epoch, &r.loss, &r.train_accuracy,
                        &r.test_accuracy, &r.learning_rate, &r.images_per_second, &r.data_wait_seconds,
                        &r.elapsed_seconds) == 8) {
            reports.push_back(r);
        }
    }
    return reports;
}

// Trains `model` with the options of `line`, printing a line per epoch and writing
// `out/<name>_epochs.csv`, `out/<name>_training_curves.svg`, `out/augmented.png` and the checkpoint
// `out/<name>.safetensors` (after every epoch). With --resume it first loads that checkpoint and
// trains the epochs left. Returns the last epoch's report.
template <typename Model, typename TrainSet, typename TestSet>
convgen::runtime::EpochReport train_and_report(Model& model, const std::string& name,
                                               const convgen::runtime::ImageSet& train_images, const TrainSet& train_set,
                                               const TestSet& test_set, const CommandLine& line) {
    namespace fs = std::filesystem;
    using convgen::runtime::EpochReport;
    fs::create_directories(line.out);
    model.set_augmentation(line.augmentation);
    if (Model::augmented) {
        fmt::print("what the network sees: {}\n",
                   write_augmented_grid(model, train_images, line.options.normalisation, line.out));
    }
    const auto& o = line.options;
    fmt::print("{}: {} epochs (warm-up {}), batch {}, SGD lr {} (cosine), momentum {}, weight decay {}, seed {}, "
               "augmentation {}, prefetch {}\n",
               name, o.epochs, o.warmup_epochs, o.batch, o.learning_rate, o.momentum, o.weight_decay, o.seed,
               line.augmentation && Model::augmented ? "on" : "off", o.prefetch ? "on" : "off");
    const std::string checkpoint = (fs::path(line.out) / (name + ".safetensors")).string();
    const std::string csv_path = (fs::path(line.out) / (name + "_epochs.csv")).string();
    convgen::runtime::TrainOptions options = o;
    options.checkpoint = checkpoint;
    if (line.resume) {
        options = convgen::runtime::resume(model, sample_count(train_set), options);
        fmt::print("resuming from {}: {} of {} epochs done\n", checkpoint, options.first_epoch, options.epochs);
    }
    // A resumed run keeps the figures of the epochs before it (those the checkpoint has finished)
    // and counts its time on from theirs.
    std::vector<EpochReport> reports = read_epoch_csv(csv_path, options.first_epoch);
    const double earlier_seconds = reports.empty() ? 0.0 : reports.back().elapsed_seconds;
    std::ofstream csv(csv_path, std::ios::trunc);
    csv << "epoch,loss,train_accuracy,test_accuracy,learning_rate,images_per_second,data_wait_seconds,elapsed_seconds\n";
    const auto write_row = [&](const EpochReport& r) {
        csv << fmt::format("{},{:.6f},{:.6f},{:.6f},{:.6f},{:.1f},{:.3f},{:.1f}\n", r.epoch, r.loss, r.train_accuracy,
                           r.test_accuracy, r.learning_rate, r.images_per_second, r.data_wait_seconds,
                           r.elapsed_seconds);
        csv.flush();
    };
    for (const EpochReport& r : reports) write_row(r);
    convgen::runtime::train(model, train_set, test_set, options, [&](EpochReport r) {
        r.elapsed_seconds += earlier_seconds;
        fmt::print("epoch {}: loss {:.4f}  train accuracy {:.2f}%  test accuracy {:.2f}%  lr {:.4f}  {:.0f} images/s  "
                   "waited {:.2f} s for data  {:.1f} s\n",
                   r.epoch, r.loss, 100 * r.train_accuracy, 100 * r.test_accuracy, r.learning_rate,
                   r.images_per_second, r.data_wait_seconds, r.elapsed_seconds);
        std::fflush(stdout);
        write_row(r);
        reports.push_back(r);
    });
    if (reports.empty()) model.save(checkpoint);
    const std::string curves = (fs::path(line.out) / (name + "_training_curves.svg")).string();
    convgen::runtime::write_training_curves_svg(curves, reports);
    fmt::print("checkpoint saved to {}; per-epoch figures in {}; training curves in {}\n", checkpoint, csv_path,
               curves);
    return reports.empty() ? EpochReport{} : reports.back();
}

}  // namespace examples
