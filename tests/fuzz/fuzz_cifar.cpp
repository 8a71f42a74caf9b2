// libFuzzer target for the CIFAR-10 and CIFAR-100 binary readers: any bytes, as a CIFAR-10 batch
// and as a CIFAR-100 file with either labels, must give a consistent set or a DataError.
// fuzz-sources: runtime/src/cifar.cpp runtime/src/dataset.cpp runtime/src/file_io.cpp
// fuzz-libraries: -lfmt
#include <convgen/runtime/cifar.h>

#include <unistd.h>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

namespace {

void check(const convgen::runtime::ImageSet& set) {
    if (set.pixels.size() != static_cast<size_t>(set.count * set.image_size()) ||
        set.labels.size() != static_cast<size_t>(set.count)) {
        __builtin_trap();
    }
    for (const int32_t label : set.labels) {
        if (label < 0 || label >= static_cast<int32_t>(set.class_names.size())) __builtin_trap();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace convgen::runtime;
    // The readers take paths; memory-backed /dev/shm keeps each run cheap. A folder of its own,
    // so no class-name file lies beside the input.
    static const std::string folder = [] {
        const auto path = "/dev/shm/convgen_fuzz_cifar_" + std::to_string(getpid());
        std::filesystem::create_directories(path);
        return path;
    }();
    static const std::string path = folder + "/batch.bin";
    FILE* file = std::fopen(path.c_str(), "wb");
    if (file == nullptr) return 0;
    std::fwrite(data, 1, size, file);
    std::fclose(file);
    try {
        check(load_cifar10_binary({path}));
    } catch (const DataError&) {
    }
    for (const auto labels : {Cifar100Labels::fine, Cifar100Labels::coarse}) {
        try {
            check(load_cifar100_binary(path, labels));
        } catch (const DataError&) {
        }
    }
    return 0;
}
