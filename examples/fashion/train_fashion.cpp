// Trains the Fashion-MNIST CNN through its generated library, from the IDX files that
// `scripts/fetch-data fashion-mnist` writes (or the official ones).
//   train_fashion [--data DIR] [--epochs N] [--batch N] [--lr X] [--no-augmentation] [--out DIR] ...
#include "fashion_cnn.hpp"

#include "../common/train_driver.h"
#include "fashion_statistics.h"

#include <convgen/runtime/fashion_mnist.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>

int main(int argc, char** argv) {
    using namespace convgen::runtime;
    // One line at a time, so a log shows each epoch as it ends.
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    try {
        examples::CommandLine defaults;
        defaults.data = std::getenv("CONVGEN_FASHION_DIR") ? std::getenv("CONVGEN_FASHION_DIR") : "data/fashion-mnist";
        defaults.options.epochs = 15;
        defaults.options.batch = 128;
        defaults.options.learning_rate = 0.1f;
        defaults.options.weight_decay = 5e-4f;
        defaults.options.warmup_epochs = 1;
        defaults.options.normalisation = {{fashion_mnist::mean}, {fashion_mnist::std_dev}};
        const examples::CommandLine line = examples::parse_command_line(argc, argv, defaults);

        const ImageSet train_set = examples::balanced_subset(load_fashion_mnist(line.data, true), line.train_samples);
        const ImageSet test_set = load_fashion_mnist(line.data, false);
        const Normalisation measured = channel_statistics(train_set);
        fmt::print("Fashion-MNIST: {} training and {} test images from {}; training-set mean {:.4f} std {:.4f} "
                   "(the model declares {:.4f} and {:.4f})\n",
                   train_set.count, test_set.count, line.data, measured.mean[0], measured.std_dev[0],
                   fashion_mnist::mean, fashion_mnist::std_dev);
        fashion_cnn::Model model(line.options.seed);
        const EpochReport last = examples::train_and_report(model, "fashion_cnn", train_set, train_set, test_set, line);
        fmt::print("Fashion-MNIST test accuracy: {:.2f}% after {} epochs, {:.1f} s of training\n",
                   100 * last.test_accuracy, last.epoch, last.elapsed_seconds);
    } catch (const std::exception& e) {
        std::cerr << "train_fashion: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
