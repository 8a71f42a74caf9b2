// The minibatches of the checkpoint tests: a pure function of the step, so a process that is
// killed and the test that checks what it left behind can replay the same training.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace checkpoint_tests {

struct Batch {
    std::vector<float> images;
    std::vector<int32_t> labels;
};

inline Batch batch_for(uint64_t step, int batch, int input_size, int classes) {
    std::mt19937 random(static_cast<uint32_t>(1000 + step));
    std::normal_distribution<float> normal(0.0f, 1.0f);
    Batch b{std::vector<float>(static_cast<size_t>(batch) * input_size), std::vector<int32_t>(batch)};
    for (float& v : b.images) v = normal(random);
    for (int i = 0; i < batch; i++) b.labels[static_cast<size_t>(i)] = static_cast<int32_t>((step * 3 + i) % classes);
    return b;
}

constexpr int batch_size = 4;

}  // namespace checkpoint_tests
