// Trains LeNet-5 on MNIST through its generated library, saves a checkpoint, reloads it into a
// fresh model and reports the reloaded model's test accuracy.
//   train_mnist [--data DIR] [--epochs N] [--batch N] [--lr X] [--warmup EPOCHS] [--seed N]
//               [--prefetch 0|1] [--checkpoint FILE]
#include "lenet5.hpp"

#include <convgen/runtime/idx.h>
#include <convgen/runtime/trainer.h>

#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>

int main(int argc, char** argv) {
    using namespace convgen::runtime;
    std::string data_dir = std::getenv("CONVGEN_MNIST_DIR") ? std::getenv("CONVGEN_MNIST_DIR") : "data/mnist";
    std::string checkpoint = "lenet5.safetensors";
    TrainOptions options;
    for (int i = 1; i < argc; i++) {
        const std::string arg = argv[i];
        if (i + 1 >= argc) {
            std::cerr << "train_mnist: " << arg << " needs a value\n";
            return 2;
        }
        const std::string value = argv[++i];
        if (arg == "--data") data_dir = value;
        else if (arg == "--epochs") options.epochs = std::stoi(value);
        else if (arg == "--batch") options.batch = std::stoi(value);
        else if (arg == "--lr") options.learning_rate = std::stof(value);
        else if (arg == "--warmup") options.warmup_epochs = std::stoi(value);
        else if (arg == "--seed") options.seed = std::stoull(value);
        else if (arg == "--prefetch") options.prefetch = value != "0";
        else if (arg == "--checkpoint") checkpoint = value;
        else {
            std::cerr << "usage: train_mnist [--data DIR] [--epochs N] [--batch N] [--lr X] [--warmup EPOCHS] "
                         "[--seed N] [--prefetch 0|1] [--checkpoint FILE]\n";
            return 2;
        }
    }
    try {
        const std::filesystem::path dir = data_dir;
        const ImageSet train_set =
            load_idx((dir / "train-images-idx3-ubyte").string(), (dir / "train-labels-idx1-ubyte").string());
        const ImageSet test_set =
            load_idx((dir / "t10k-images-idx3-ubyte").string(), (dir / "t10k-labels-idx1-ubyte").string());
        // The usual MNIST statistics of the training set (channel_statistics(train_set) gives them).
        options.normalisation = {{0.1307f}, {0.3081f}};
        fmt::print("MNIST: {} training and {} test images from {}\n", train_set.count, test_set.count, data_dir);
        fmt::print(
            "LeNet-5: {} epochs, batch {}, SGD lr {} ({} warm-up epochs, then cosine per step), momentum {}, "
            "weight decay {}, seed {}, prefetch {}\n",
            options.epochs, options.batch, options.learning_rate, options.warmup_epochs, options.momentum,
            options.weight_decay, options.seed, options.prefetch ? "on" : "off");

        lenet5::Model model(options.seed);
        train(model, train_set, test_set, options, [](const EpochReport& r) {
            fmt::print(
                "epoch {}: loss {:.4f}  train accuracy {:.2f}%  test accuracy {:.2f}%  {:.0f} images/s  "
                "waited {:.2f} s for data  {:.1f} s\n",
                r.epoch, r.loss, 100 * r.train_accuracy, 100 * r.test_accuracy, r.images_per_second,
                r.data_wait_seconds, r.elapsed_seconds);
            std::fflush(stdout);
        });
        model.save(checkpoint);
        fmt::print("checkpoint saved to {}\n", checkpoint);

        lenet5::Model reloaded(options.seed + 1);
        reloaded.load(checkpoint);
        fmt::print("MNIST test accuracy: {:.2f}%\n", 100 * evaluate(reloaded, test_set, options.normalisation));
    } catch (const std::exception& e) {
        std::cerr << "train_mnist: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
