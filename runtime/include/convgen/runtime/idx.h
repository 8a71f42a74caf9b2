// Readers for the IDX format that MNIST ships in: a big-endian header (magic number, then one
// 32-bit size per dimension) followed by the raw uint8 values.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace convgen::runtime {

// A data file that is missing, malformed or inconsistent. The message names the file and says
// what was expected and what was found.
class DataError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// An IDX image file as stored: count images of height x width uint8 pixels, row-major.
struct IdxImages {
    int64_t count = 0;
    int64_t height = 0;
    int64_t width = 0;
    std::vector<uint8_t> pixels;
};

// Images ready for a network, with their labels.
struct ImageSet {
    int64_t count = 0;
    int64_t height = 0;
    int64_t width = 0;
    int64_t channels = 0;
    // count * height * width * channels values in NHWC order (channels innermost), scaled to [0, 1].
    std::vector<float> pixels;
    std::vector<int32_t> labels;
};

// Reads an IDX file of uint8 images (magic 0x00000803).
IdxImages read_idx_images(const std::string& path);

// Reads an IDX file of uint8 labels (magic 0x00000801); every label must be below class_count.
std::vector<uint8_t> read_idx_labels(const std::string& path, int32_t class_count = 10);

// Reads an image file and its label file, checks they describe the same number of examples, and
// converts the pixels to floats in [0, 1] with one channel.
ImageSet load_idx_images_and_labels(const std::string& images_path, const std::string& labels_path,
                                    int32_t class_count = 10);

}  // namespace convgen::runtime
