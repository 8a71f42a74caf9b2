// Trains LeNet-5 on MNIST through its generated library, saves a checkpoint, reloads it into a
// fresh model and reports the reloaded model's test accuracy; then writes, beside the checkpoint,
// the first layer's filters and the feature maps of one test digit (PNG), the training curves and
// the test set's confusion matrix (SVG).
//   train_mnist [--data DIR] [--epochs N] [--batch N] [--lr X] [--warmup EPOCHS] [--seed N]
//               [--prefetch 0|1] [--checkpoint FILE]
// Built twice: train_mnist with the CPU library, train_mnist_cuda (CONVGEN_CUDA) with the GPU one.
#ifdef CONVGEN_CUDA
#include "lenet5_cuda.hpp"
namespace lenet = lenet5_cuda;
#else
#include "lenet5.hpp"
namespace lenet = lenet5;
#endif

#include <convgen/runtime/idx.h>
#include <convgen/runtime/image_grid.h>
#include <convgen/runtime/trainer.h>
#include <convgen/runtime/visualise.h>

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

        lenet::Model model(options.seed);
        const std::vector<EpochReport> reports = train(model, train_set, test_set, options, [](const EpochReport& r) {
            fmt::print(
                "epoch {}: loss {:.4f}  train accuracy {:.2f}%  test accuracy {:.2f}%  {:.0f} images/s  "
                "waited {:.2f} s for data  {:.1f} s\n",
                r.epoch, r.loss, 100 * r.train_accuracy, 100 * r.test_accuracy, r.images_per_second,
                r.data_wait_seconds, r.elapsed_seconds);
            std::fflush(stdout);
        });
        model.save(checkpoint);
        fmt::print("checkpoint saved to {}\n", checkpoint);

        lenet::Model reloaded(options.seed + 1);
        reloaded.load(checkpoint);
        const std::vector<int32_t> predicted = predict_classes(reloaded, test_set, options.normalisation);
        const auto counts = confusion_matrix(predicted, test_set.labels, lenet::Model::classes);
        int64_t right = 0;
        for (size_t c = 0; c < counts.size(); c++) right += counts[c][c];
        fmt::print("MNIST test accuracy: {:.2f}%\n", 100.0 * static_cast<double>(right) / test_set.count);

        const std::filesystem::path out = std::filesystem::path(checkpoint).parent_path();
        const std::string filters = (out / "lenet5_conv1_filters.png").string();
        const std::string curves = (out / "lenet5_training_curves.svg").string();
        const std::string confusion = (out / "lenet5_confusion_matrix.svg").string();
        for (const lenet::ParameterInfo& p : lenet::Model::parameters()) {
            if (p.name != "conv1.weight") continue;  // OIHW: 6 filters of 1 x 5 x 5
            write_filter_grid_png(filters, reloaded.get_parameter(p.name).data(), p.shape[0], p.shape[1], p.shape[2],
                                  p.shape[3], 16);
        }
        write_training_curves_svg(curves, reports);
        write_confusion_matrix_svg(confusion, counts, test_set.class_names);
        fmt::print("conv1 filters: {}\ntraining curves: {}\nconfusion matrix: {}\n", filters, curves, confusion);

        // What each kept image-shaped layer makes of the first test digit: one map per channel.
        const int64_t first = 0;
        const std::string digit = (out / "lenet5_test_digit.png").string();
        write_image_grid_png(digit, test_set, {first}, 1, 8);
        std::vector<float> image(lenet::Model::input_size);
        int32_t label = 0;
        to_network_input(test_set, &first, 1, options.normalisation, image.data(), &label);
        reloaded.predict(image.data(), 1);
        fmt::print("feature maps of test digit 0 ({}):", digit);
        for (const lenet::LayerOutputInfo& layer : lenet::Model::layer_outputs()) {
            if (layer.shape.size() != 3) continue;  // [height, width, channels]
            const std::string maps = (out / ("lenet5_" + layer.name + "_maps.png")).string();
            write_feature_maps_png(maps, reloaded.layer_output(layer.name, 1).data(), layer.shape[0], layer.shape[1],
                                   layer.shape[2], 8, 8);
            fmt::print(" {}", maps);
        }
        fmt::print("\n");
    } catch (const std::exception& e) {
        std::cerr << "train_mnist: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
