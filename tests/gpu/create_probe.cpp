// Creates a CUDA model and exits with the status (0: created; CONVGEN_ERROR_DEVICE: no usable GPU),
// printing the library's message: the no-device test runs it with the driver seeing no device.
#include "lenet5_cuda.h"

#include <cstdio>

int main() {
    lenet5_cuda_model* model = nullptr;
    const int status = lenet5_cuda_create(&model, 1);
    if (status == CONVGEN_OK) {
        lenet5_cuda_destroy(model);
        std::printf("created\n");
    } else {
        std::printf("status %d: %s\n", status, lenet5_cuda_last_error(nullptr));
    }
    return status;
}
