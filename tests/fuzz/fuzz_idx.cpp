// libFuzzer target for the MNIST IDX reader: any bytes, as an image file and as a label file,
// must give either data or a DataError, never a crash, a hang or an over-read.
// fuzz-sources: runtime/src/idx.cpp runtime/src/dataset.cpp runtime/src/file_io.cpp
// fuzz-libraries: -lfmt
#include <convgen/runtime/idx.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <unistd.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    // The reader takes paths; a file in memory-backed /dev/shm keeps each run cheap.
    static const std::string path = "/dev/shm/convgen_fuzz_idx_" + std::to_string(getpid());
    FILE* file = std::fopen(path.c_str(), "wb");
    if (file == nullptr) return 0;
    std::fwrite(data, 1, size, file);
    std::fclose(file);
    try {
        const convgen::runtime::IdxImages images = convgen::runtime::read_idx_images(path);
        if (images.pixels.size() != static_cast<size_t>(images.count * images.height * images.width)) __builtin_trap();
    } catch (const convgen::runtime::DataError&) {
    }
    try {
        convgen::runtime::read_idx_labels(path, 10);
    } catch (const convgen::runtime::DataError&) {
    }
    return 0;
}
