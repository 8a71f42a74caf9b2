// The convgen side of the PyTorch parity tests, for any generated model (compiled once per model
// with CONVGEN_PARITY_MODEL set to its name): loads weights, predicts a batch with them, runs SGD
// steps on the same batch with dropout off, prints each loss, saves the result.
//   model_steps DIR STEPS BATCH LEARNING_RATE MOMENTUM WEIGHT_DECAY
// DIR holds in.safetensors, images.bin (NHWC float32) and labels.bin (int32); the program writes
// probabilities.bin (the prediction before the steps) and out.safetensors. A CUDA library on a
// machine without a GPU exits with 77, which the parity script and ctest report as skipped.
#define CONVGEN_STRINGIFY_(x) #x
#define CONVGEN_STRINGIFY(x) CONVGEN_STRINGIFY_(x)
#include CONVGEN_STRINGIFY(CONVGEN_PARITY_MODEL.hpp)

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

namespace model = CONVGEN_PARITY_MODEL;

template <typename T>
bool read_all(const std::string& path, std::vector<T>& values) {
    std::ifstream file(path, std::ios::binary);
    file.read(reinterpret_cast<char*>(values.data()), static_cast<std::streamsize>(values.size() * sizeof(T)));
    return file.gcount() == static_cast<std::streamsize>(values.size() * sizeof(T));
}

int main(int argc, char** argv) {
    if (argc != 7) {
        std::fprintf(stderr, "usage: model_steps DIR STEPS BATCH LEARNING_RATE MOMENTUM WEIGHT_DECAY\n");
        return 2;
    }
    const std::string dir = argv[1];
    const int steps = std::atoi(argv[2]), batch = std::atoi(argv[3]);
    std::vector<float> images(static_cast<size_t>(batch) * model::Model::input_size);
    std::vector<int32_t> labels(static_cast<size_t>(batch));
    if (!read_all(dir + "/images.bin", images) || !read_all(dir + "/labels.bin", labels)) {
        std::fprintf(stderr, "model_steps: %s/images.bin or labels.bin is short for a batch of %d\n", dir.c_str(),
                     batch);
        return 1;
    }
    try {
        model::Model net(0);
        net.load(dir + "/in.safetensors");
        const std::vector<float> probabilities = net.predict(images.data(), batch);
        std::ofstream(dir + "/probabilities.bin", std::ios::binary)
            .write(reinterpret_cast<const char*>(probabilities.data()),
                   static_cast<std::streamsize>(probabilities.size() * 4));
        net.set_sgd(std::strtof(argv[4], nullptr), std::strtof(argv[5], nullptr), std::strtof(argv[6], nullptr));
        net.set_dropout(false);
        for (int s = 0; s < steps; s++) std::printf("%.9g\n", net.train_step(images.data(), labels.data(), batch).loss);
        net.save(dir + "/out.safetensors");
    } catch (const model::Error& e) {
        std::fprintf(stderr, "model_steps: %s\n", e.what());
        return e.code() == CONVGEN_ERROR_DEVICE ? 77 : 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "model_steps: %s\n", e.what());
        return 1;
    }
    return 0;
}
