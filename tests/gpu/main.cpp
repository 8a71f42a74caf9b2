// The GPU tests' runner. `--requires-gpu` (a ctest entry whose tests need a GPU) makes it exit
// with 77, which ctest reports as skipped, and say why, on a machine without one.
#define DOCTEST_CONFIG_IMPLEMENT
#include "gpu_tests.h"

#include "lenet5_cuda.h"

#include <doctest/doctest.h>

#include <cstdio>
#include <cstring>
#include <vector>

namespace gpu_tests {

const std::string& missing_gpu() {
    static const std::string reason = [] {
        lenet5_cuda_model* model = nullptr;
        if (lenet5_cuda_create(&model, 1) == CONVGEN_OK) {
            lenet5_cuda_destroy(model);
            return std::string();
        }
        return std::string(lenet5_cuda_last_error(nullptr));
    }();
    return reason;
}

}  // namespace gpu_tests

int main(int argc, char** argv) {
    std::vector<char*> arguments;
    bool requires_gpu = false;
    for (int i = 0; i < argc; i++) {
        if (std::strcmp(argv[i], "--requires-gpu") == 0) {
            requires_gpu = true;
        } else {
            arguments.push_back(argv[i]);
        }
    }
    if (requires_gpu && !gpu_tests::missing_gpu().empty()) {
        std::printf("skipped: these tests need a GPU, and %s\n", gpu_tests::missing_gpu().c_str());
        return 77;
    }
    doctest::Context context(static_cast<int>(arguments.size()), arguments.data());
    return context.run();
}
