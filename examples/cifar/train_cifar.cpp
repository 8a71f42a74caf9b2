// Trains ResNet-20 on CIFAR-10 through its generated library, from the JPEG image folders
// (cifar10-jpg/{train,test}/<class>/*.jpg, see scripts/fetch-data cifar10) or from the original
// binary batches (a folder with data_batch_1.bin ... test_batch.bin).
//   train_cifar [--data DIR] [--epochs N] [--batch N] [--lr X] [--no-augmentation] [--no-prefetch]
//               [--stream] [--out DIR] ...
// --stream decodes the JPEG files on the background thread as batches are made, instead of
// decoding the whole set into memory first.
#include "resnet20_cifar10.hpp"

#include "../common/train_driver.h"
#include "cifar10_statistics.h"

#include <convgen/runtime/cifar.h>
#include <convgen/runtime/image_folder.h>

#include <fmt/ranges.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>

int main(int argc, char** argv) {
    using namespace convgen::runtime;
    namespace fs = std::filesystem;
    // One line at a time, so a log shows each epoch as it ends.
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    try {
        bool stream = false;
        std::vector<char*> arguments;
        for (int i = 0; i < argc; i++) {
            if (std::string(argv[i]) == "--stream") stream = true;
            else arguments.push_back(argv[i]);
        }
        examples::CommandLine defaults;
        defaults.data = std::getenv("CONVGEN_CIFAR10_DIR") ? std::getenv("CONVGEN_CIFAR10_DIR") : "data/cifar10-jpg";
        defaults.options.epochs = 60;  // the length that reached 88% (bench/RESULTS.md)
        defaults.options.batch = 128;
        defaults.options.learning_rate = 0.1f;
        defaults.options.weight_decay = 5e-4f;
        defaults.options.warmup_epochs = 1;
        defaults.options.normalisation = {{cifar10::mean, cifar10::mean + 3}, {cifar10::std_dev, cifar10::std_dev + 3}};
        const examples::CommandLine line =
            examples::parse_command_line(static_cast<int>(arguments.size()), arguments.data(), defaults);

        const auto started = std::chrono::steady_clock::now();
        const bool binary = fs::exists(fs::path(line.data) / "test_batch.bin");
        ImageSet train_set, test_set;
        if (binary) {
            train_set = load_cifar10_binary_folder(line.data, true);
            test_set = load_cifar10_binary_folder(line.data, false);
        } else {
            train_set = load_image_folder((fs::path(line.data) / "train").string());
            test_set = load_image_folder((fs::path(line.data) / "test").string());
        }
        fmt::print("CIFAR-10: {} training and {} test images from {} ({}), loaded in {:.1f} s\n", train_set.count,
                   test_set.count, line.data, binary ? "binary batches" : "JPEG folders",
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
        if (line.train_samples > 0) {
            train_set = examples::balanced_subset(train_set, line.train_samples);
            if (stream) throw std::invalid_argument("--stream reads the whole folder; it cannot take --train-samples");
            fmt::print("training on a balanced subset of {} images\n", train_set.count);
        }
        const Normalisation measured = channel_statistics(train_set);
        fmt::print("training-set statistics: mean {:.4f} std {:.4f} (the model declares mean {:.4f} std {:.4f})\n",
                   fmt::join(measured.mean, " "), fmt::join(measured.std_dev, " "),
                   fmt::join(line.options.normalisation.mean, " "), fmt::join(line.options.normalisation.std_dev, " "));

        resnet20_cifar10::Model model(line.options.seed);
        EpochReport last;
        if (stream && !binary) {
            // The training images decoded on the background thread, batch by batch.
            const ImageFolderSource train_files((fs::path(line.data) / "train").string());
            last = examples::train_and_report(model, "resnet20_cifar10", train_set, train_files, test_set, line);
        } else {
            last = examples::train_and_report(model, "resnet20_cifar10", train_set, train_set, test_set, line);
        }
        fmt::print("CIFAR-10 test accuracy: {:.2f}% after {} epochs, {:.1f} s of training\n",
                   100 * last.test_accuracy, last.epoch, last.elapsed_seconds);
    } catch (const std::exception& e) {
        std::cerr << "train_cifar: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
