// The C++ face of a generated library, used from outside: only lenet5.hpp, lenet5.h and
// liblenet5.a. Prints OK and exits 0 when everything behaves.
#include "lenet5.hpp"

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s <directory for the checkpoint>\n", argv[0]);
        return 2;
    }
    const std::string path = std::string(argv[1]) + "/lenet5_cpp_checkpoint.safetensors";
    try {
        const int batch = 8;
        std::vector<float> images(static_cast<size_t>(batch) * lenet5::Model::input_size);
        for (size_t i = 0; i < images.size(); i++) images[i] = static_cast<float>((i * 7919) % 256) / 255.0f;
        std::vector<int32_t> labels(batch);
        for (int i = 0; i < batch; i++) labels[static_cast<size_t>(i)] = i % lenet5::Model::classes;

        lenet5::Model model(3);
        float first = 0, last = 0;
        for (int step = 0; step < 10; step++) {
            last = model.train_step(images.data(), labels.data(), batch).loss;
            if (step == 0) first = last;
        }
        std::printf("loss %.4f -> %.4f\n", first, last);
        const std::vector<float> probabilities = model.predict(images.data(), batch);
        model.save(path);

        lenet5::Model reloaded(4);
        reloaded.load(path);
        if (reloaded.predict(images.data(), batch) != probabilities || reloaded.step_count() != 10 || !(last < first) ||
            lenet5::Model::parameters().size() != LENET5_PARAMETER_COUNT) {
            std::fprintf(stderr, "the reloaded model differs, or training did not lower the loss\n");
            return 1;
        }
        try {
            reloaded.load(path + ".missing");
            std::fprintf(stderr, "loading a missing file did not throw\n");
            return 1;
        } catch (const lenet5::Error& error) {
            if (error.code() != CONVGEN_ERROR_IO) {
                std::fprintf(stderr, "unexpected code %d: %s\n", error.code(), error.what());
                return 1;
            }
        }
    } catch (const lenet5::Error& error) {
        std::fprintf(stderr, "lenet5 error %d: %s\n", error.code(), error.what());
        return 1;
    }
    std::printf("OK\n");
    return 0;
}
