// libFuzzer target for the Fashion-MNIST class-file parser: any text must give valid images and
// notes on skipped entries, or a DataError; never a crash, a hang or a wrong pixel count.
// fuzz-sources: runtime/src/fashion_mnist.cpp runtime/src/idx.cpp runtime/src/dataset.cpp runtime/src/file_io.cpp
// fuzz-libraries: -lfmt
#include <convgen/runtime/fashion_mnist.h>

#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace convgen::runtime;
    try {
        const auto parsed =
            parse_fashion_mnist_class(std::string(reinterpret_cast<const char*>(data), size), "fuzz.json");
        if (parsed.pixels.size() != static_cast<size_t>(parsed.valid_count * fashion_mnist_side * fashion_mnist_side)) {
            __builtin_trap();
        }
        for (const auto& note : parsed.skipped) {
            if (note.empty()) __builtin_trap();  // every skipped entry says why
        }
    } catch (const DataError&) {
    }
    return 0;
}
