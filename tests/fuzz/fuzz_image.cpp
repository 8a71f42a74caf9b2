// libFuzzer target for image decoding as the image-folder loader does it (read_image_size and
// decode_image: format by signature, size limits, expected size, stb_image). stb_image is compiled
// inside image_folder.cpp, so the sanitizers and the coverage see inside the decoder too.
// fuzz-sources: runtime/src/image_folder.cpp runtime/src/dataset.cpp runtime/src/file_io.cpp
// fuzz-libraries: -lfmt
#include <convgen/runtime/image_folder.h>

#include <cstdint>

namespace {

void check(const convgen::runtime::DecodedImage& image, int channels) {
    if (image.channels != channels || image.height < 1 || image.width < 1 ||
        image.pixels.size() != static_cast<size_t>(image.height * image.width * channels)) {
        __builtin_trap();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace convgen::runtime;
    // As a CIFAR-sized folder reads it: 32x32 RGB, any other size refused before decoding.
    try {
        check(decode_image(data, size, "fuzz", 3, 32, 32), 3);
    } catch (const DataError&) {
    }
    // Any size, as for the first image of a folder; large ones are left out to keep each run short.
    try {
        const ImageSize image_size = read_image_size(data, size, "fuzz");
        if (image_size.height * image_size.width <= 256 * 256) check(decode_image(data, size, "fuzz", 1), 1);
    } catch (const DataError&) {
    }
    return 0;
}
