// libFuzzer entry point for a generated library's checkpoint loader: small_cnn_load (the whole
// state: every parameter, momentum, step and seed) and small_cnn_load_pretrained (by name), on
// arbitrary files. Beyond "no crash", it checks the loader's promise: a file it rejects leaves the
// model exactly as it was, and a model that loaded a file still predicts.
// scripts/fuzz-smoke builds it against the small_cnn library of a build's generated folder:
// fuzz-generated: small_cnn
#include "small_cnn.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sys/mman.h>
#include <unistd.h>
#include <vector>

namespace {

// The file every input is written to: in memory, so each execution costs no disk.
struct MemoryFile {
    int fd = -1;
    char path[64] = {};
    MemoryFile() {
        fd = memfd_create("checkpoint", 0);
        if (fd < 0) std::abort();
        std::snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    void write(const uint8_t* data, size_t size) {
        if (ftruncate(fd, 0) != 0) std::abort();
        size_t done = 0;
        while (done < size) {
            const ssize_t n = pwrite(fd, data + done, size - done, static_cast<off_t>(done));
            if (n <= 0) std::abort();
            done += static_cast<size_t>(n);
        }
    }
};

std::vector<float> all_parameters(small_cnn_model* model) {
    std::vector<float> values;
    for (int i = 0; i < SMALL_CNN_PARAMETER_COUNT; i++) {
        std::vector<float> one(static_cast<size_t>(small_cnn_parameter_size(i)));
        if (small_cnn_get_parameter(model, small_cnn_parameter_name(i), one.data(), small_cnn_parameter_size(i)) !=
            CONVGEN_OK) {
            std::abort();
        }
        values.insert(values.end(), one.begin(), one.end());
    }
    return values;
}

// Bitwise, so that a NaN loaded by mistake would not compare unequal to itself.
bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

small_cnn_model* fresh_model() {
    small_cnn_model* model = nullptr;
    if (small_cnn_create(&model, 7) != CONVGEN_OK) std::abort();
    return model;
}

void predict_once(small_cnn_model* model) {
    std::vector<float> image(SMALL_CNN_INPUT_SIZE, 0.5f), probabilities(SMALL_CNN_CLASSES);
    if (small_cnn_predict(model, image.data(), 1, probabilities.data()) != CONVGEN_OK) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static MemoryFile file;
    static small_cnn_model* model = fresh_model();
    static const std::vector<float> initial = all_parameters(model);
    static const uint64_t initial_steps = small_cnn_step_count(model);
    file.write(data, size);

    for (const bool pretrained : {false, true}) {
        const int status = pretrained ? small_cnn_load_pretrained(model, file.path) : small_cnn_load(model, file.path);
        if (status == CONVGEN_OK) {
            predict_once(model);
            small_cnn_destroy(model);
            model = fresh_model();
            continue;
        }
        // Rejected: with a message, and nothing changed. Reading every parameter back costs more
        // than a load (each element goes through the instrumented layout conversion), so the
        // whole state is compared on every 8th rejection, the step count on all.
        if (std::strlen(small_cnn_last_error(model)) == 0) std::abort();
        if (small_cnn_step_count(model) != initial_steps) std::abort();
        static uint64_t rejections = 0;
        if (rejections++ % 8 == 0 && !same_bits(all_parameters(model), initial)) std::abort();
    }
    return 0;
}
