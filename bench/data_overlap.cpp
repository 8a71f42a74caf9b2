// Does the training step wait for its data? Trains ResNet-20 on CIFAR-10 batches decoded from the
// JPEG folder as they are needed (the slowest way to feed it: every image read and decoded again
// every epoch), once with the batches prepared on a background thread and once without, and
// prints the time per step and the part of it spent waiting for the batch.
//   data_overlap [--data DIR/cifar10-jpg] [--steps N] [--batch N]
#include "resnet20_cifar10.hpp"

#include <convgen/runtime/batches.h>
#include <convgen/runtime/image_folder.h>

#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <string>

namespace {

struct Timing {
    double seconds_per_step = 0;
    double wait_per_step = 0;
};

Timing run(const convgen::runtime::SampleSource& source, bool prefetch, int steps, int batch) {
    using namespace convgen::runtime;
    BatchOptions options;
    options.batch = batch;
    options.prefetch = prefetch;
    options.normalisation = {{0.4914f, 0.4822f, 0.4465f}, {0.2470f, 0.2435f, 0.2616f}};
    BatchStream stream(source, options);
    resnet20_cifar10::Model model(1);
    // Two steps unmeasured: the workspace is allocated and the caches are warm.
    for (int i = 0; i < 2; i++) {
        const Batch& b = stream.next();
        model.train_step(b.images.data(), b.labels.data(), b.count);
    }
    const double wait_before = stream.wait_seconds();
    const auto started = std::chrono::steady_clock::now();
    for (int i = 0; i < steps; i++) {
        const Batch& b = stream.next();
        model.train_step(b.images.data(), b.labels.data(), b.count);
    }
    const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return {total / steps, (stream.wait_seconds() - wait_before) / steps};
}

}  // namespace

int main(int argc, char** argv) {
    std::string data = "data/cifar10-jpg";
    int steps = 20, batch = 128;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string flag = argv[i], value = argv[i + 1];
        if (flag == "--data") data = value;
        else if (flag == "--steps") steps = std::stoi(value);
        else if (flag == "--batch") batch = std::stoi(value);
        else {
            std::cerr << "usage: data_overlap [--data DIR] [--steps N] [--batch N]\n";
            return 2;
        }
    }
    try {
        const convgen::runtime::ImageFolderSource source((std::filesystem::path(data) / "train").string());
        fmt::print("ResNet-20 training steps on {} images decoded from {} as they are needed, batch {}:\n",
                   source.count(), data, batch);
        for (const bool prefetch : {true, false}) {
            const Timing t = run(source, prefetch, steps, batch);
            fmt::print("  {:<38} {:7.1f} ms per step, {:6.2f} ms of it waiting for the batch\n",
                       prefetch ? "decoded on a background thread:" : "decoded by the training thread:",
                       1e3 * t.seconds_per_step, 1e3 * t.wait_per_step);
        }
    } catch (const std::exception& e) {
        std::cerr << "data_overlap: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
