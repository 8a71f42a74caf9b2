// What the GPU tests share: whether this process has a usable GPU, found once by creating a model
// of a CUDA library (the library says why not).
#pragma once

#include <string>

namespace gpu_tests {

// "" when a GPU can be used here, else the library's reason.
const std::string& missing_gpu();

}  // namespace gpu_tests
