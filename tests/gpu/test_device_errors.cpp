// A CUDA library where the GPU is missing or full: an error code and a message the caller can read,
// and the process (and, when the GPU is full, the model) goes on.
#include "gpu_tests.h"

#include "lenet5.hpp"
#include "lenet5_cuda.hpp"

#include <doctest/doctest.h>

#include <dlfcn.h>
#include <spawn.h>
#include <sys/wait.h>

#include <cstdint>
#include <filesystem>
#include <cmath>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

extern char** environ;

namespace {

// Runs the create probe (gpu_create_probe, beside this program) with CUDA_VISIBLE_DEVICES set to ""
// so that the driver loads but sees no device; returns its exit status.
int run_probe_without_devices() {
    std::vector<std::string> environment;
    for (char** e = environ; *e != nullptr; e++) {
        if (std::string(*e).rfind("CUDA_VISIBLE_DEVICES=", 0) != 0) environment.emplace_back(*e);
    }
    environment.emplace_back("CUDA_VISIBLE_DEVICES=");
    std::vector<char*> envp;
    for (std::string& e : environment) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::string program = std::filesystem::canonical("/proc/self/exe").parent_path() / "gpu_create_probe";
    char* argv[] = {program.data(), nullptr};
    pid_t child = 0;
    if (posix_spawn(&child, program.c_str(), nullptr, nullptr, argv, envp.data()) != 0) return -1;
    int status = 0;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status)) return -1;
    return WEXITSTATUS(status);
}

// The CUDA driver API, loaded as the library loads it, to take the GPU's memory away from it.
struct Driver {
    using CUresult = int;
    using CUdevice = int;
    using CUcontext = void*;
    using CUdeviceptr = uint64_t;
    void* handle = dlopen("libcuda.so.1", RTLD_NOW);
    CUresult (*init)(unsigned) = nullptr;
    CUresult (*device_get)(CUdevice*, int) = nullptr;
    CUresult (*primary_context_retain)(CUcontext*, CUdevice) = nullptr;
    CUresult (*context_push)(CUcontext) = nullptr;
    CUresult (*context_pop)(CUcontext*) = nullptr;
    CUresult (*memory_info)(size_t*, size_t*) = nullptr;
    CUresult (*allocate)(CUdeviceptr*, size_t) = nullptr;
    CUresult (*release)(CUdeviceptr) = nullptr;

    Driver() {
        REQUIRE_MESSAGE(handle != nullptr, "libcuda.so.1 does not load: " << dlerror());
        load(init, "cuInit");
        load(device_get, "cuDeviceGet");
        load(primary_context_retain, "cuDevicePrimaryCtxRetain");
        load(context_push, "cuCtxPushCurrent_v2");
        load(context_pop, "cuCtxPopCurrent_v2");
        load(memory_info, "cuMemGetInfo_v2");
        load(allocate, "cuMemAlloc_v2");
        load(release, "cuMemFree_v2");
    }
    template <typename F>
    void load(F& f, const char* name) {
        f = reinterpret_cast<F>(dlsym(handle, name));
        REQUIRE_MESSAGE(reinterpret_cast<void*>(f) != nullptr, "libcuda.so.1 has no " << name);
    }
};

}  // namespace

TEST_SUITE("device errors") {
    TEST_CASE("without a usable GPU, creating a CUDA model fails with CONVGEN_ERROR_DEVICE and says why") {
        if (!gpu_tests::missing_gpu().empty()) {
            // This machine: no driver or no device.
            lenet5_cuda_model* model = nullptr;
            CHECK(lenet5_cuda_create(&model, 1) == CONVGEN_ERROR_DEVICE);
            CHECK(model == nullptr);
            const std::string message = lenet5_cuda_last_error(nullptr);
            CHECK(message.find("lenet5_cuda_create: no usable GPU") == 0);
            CHECK_THROWS_WITH_AS(lenet5_cuda::Model(1), doctest::Contains("no usable GPU"), lenet5_cuda::Error);
        } else {
            // A GPU machine: the same library in a process whose driver sees no device.
            CHECK(run_probe_without_devices() == CONVGEN_ERROR_DEVICE);
        }
        // The process goes on: the model's CPU library still trains here.
        lenet5::Model cpu(1);
        std::vector<float> images(2 * lenet5::Model::input_size, 0.5f);
        std::vector<int32_t> labels = {1, 2};
        CHECK(std::isfinite(cpu.train_step(images.data(), labels.data(), 2).loss));
    }

    TEST_CASE("a GPU out of memory: CONVGEN_ERROR_OUT_OF_MEMORY, the parameters as they were, and the next step trains" *
              doctest::skip(!gpu_tests::missing_gpu().empty())) {
        lenet5_cuda::Model model(1);
        std::mt19937 random(1);
        std::normal_distribution<float> normal;
        const int small = 64, large = 16384;
        std::vector<float> images(static_cast<size_t>(large) * lenet5_cuda::Model::input_size);
        for (float& v : images) v = normal(random);
        std::vector<int32_t> labels(static_cast<size_t>(large));
        for (size_t i = 0; i < labels.size(); i++) labels[i] = static_cast<int32_t>(i % 10);
        model.train_step(images.data(), labels.data(), small);
        const std::vector<float> before = model.get_parameter("conv1.weight");

        Driver cuda;
        REQUIRE(cuda.init(0) == 0);
        Driver::CUdevice device = 0;
        Driver::CUcontext context = nullptr;
        REQUIRE(cuda.device_get(&device, 0) == 0);
        REQUIRE(cuda.primary_context_retain(&context, device) == 0);
        REQUIRE(cuda.context_push(context) == 0);
        // Take all but 64 MiB; a step at the large batch needs gigabytes.
        std::vector<Driver::CUdeviceptr> taken;
        for (size_t chunk = size_t(1) << 30; chunk >= (size_t(1) << 20);) {
            size_t free_bytes = 0, total_bytes = 0;
            REQUIRE(cuda.memory_info(&free_bytes, &total_bytes) == 0);
            if (free_bytes < chunk + (size_t(64) << 20)) {
                chunk /= 2;
                continue;
            }
            Driver::CUdeviceptr pointer = 0;
            if (cuda.allocate(&pointer, chunk) != 0) {
                chunk /= 2;
                continue;
            }
            taken.push_back(pointer);
        }
        Driver::CUcontext popped = nullptr;
        cuda.context_pop(&popped);

        lenet5_cuda_model* raw = model.handle();
        const int status = lenet5_cuda_train_step(raw, images.data(), labels.data(), large, nullptr, nullptr);
        const std::string message = lenet5_cuda_last_error(raw);

        cuda.context_push(context);
        for (Driver::CUdeviceptr pointer : taken) cuda.release(pointer);
        cuda.context_pop(&popped);

        CHECK(status == CONVGEN_ERROR_OUT_OF_MEMORY);
        CHECK_MESSAGE(message.find("lenet5_cuda") != std::string::npos, message);
        CHECK(model.get_parameter("conv1.weight") == before);
        CHECK(std::isfinite(model.train_step(images.data(), labels.data(), small).loss));
        CHECK(model.get_parameter("conv1.weight") != before);
    }
}
