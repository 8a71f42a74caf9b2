// The convgen side of the PyTorch parity test: loads weights, runs SGD steps on a given batch,
// prints each loss, saves the result.
//   sgd_steps DIR STEPS BATCH    (DIR holds in.safetensors, images.bin, labels.bin; writes out.safetensors)
#include "lenet5.hpp"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: sgd_steps DIR STEPS BATCH\n");
        return 2;
    }
    const std::string dir = argv[1];
    const int steps = std::atoi(argv[2]), batch = std::atoi(argv[3]);
    std::vector<float> images(static_cast<size_t>(batch) * lenet5::Model::input_size);
    std::vector<int32_t> labels(static_cast<size_t>(batch));
    std::ifstream(dir + "/images.bin", std::ios::binary)
        .read(reinterpret_cast<char*>(images.data()), static_cast<std::streamsize>(images.size() * 4));
    std::ifstream(dir + "/labels.bin", std::ios::binary)
        .read(reinterpret_cast<char*>(labels.data()), static_cast<std::streamsize>(labels.size() * 4));
    try {
        lenet5::Model model(0);
        model.load(dir + "/in.safetensors");
        model.set_sgd(0.05f, 0.9f, 5e-4f);
        for (int s = 0; s < steps; s++) std::printf("%.9g\n", model.train_step(images.data(), labels.data(), batch).loss);
        std::vector<float> probabilities = model.predict(images.data(), batch);
        std::ofstream(dir + "/probabilities.bin", std::ios::binary)
            .write(reinterpret_cast<const char*>(probabilities.data()),
                   static_cast<std::streamsize>(probabilities.size() * 4));
        model.save(dir + "/out.safetensors");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "sgd_steps: %s\n", e.what());
        return 1;
    }
    return 0;
}
