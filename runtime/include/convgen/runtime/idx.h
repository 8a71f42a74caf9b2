// Readers and writers for the IDX format that MNIST and Fashion-MNIST ship in: a big-endian
// header (magic number, then one 32-bit size per dimension) followed by the raw uint8 values.
#pragma once

#include <convgen/runtime/dataset.h>

#include <cstdint>
#include <string>
#include <vector>

namespace convgen::runtime {

// An IDX image file as stored: count images of height x width uint8 pixels, row-major.
struct IdxImages {
    int64_t count = 0;
    int64_t height = 0;
    int64_t width = 0;
    std::vector<uint8_t> pixels;
};

// Reads an IDX file of uint8 images (magic 0x00000803).
IdxImages read_idx_images(const std::string& path);

// Reads an IDX file of uint8 labels (magic 0x00000801); every label must be below class_count.
std::vector<uint8_t> read_idx_labels(const std::string& path, int32_t class_count = 10);

// Reads an image file and its label file and checks they describe the same number of examples.
// The set has one channel and the class names "0", "1", ...
ImageSet load_idx(const std::string& images_path, const std::string& labels_path, int32_t class_count = 10);

// Write `count` height x width images, or the labels, as IDX files, atomically (a temporary
// file renamed over `path`).
void write_idx_images(const std::string& path, int64_t count, int64_t height, int64_t width, const uint8_t* pixels);
void write_idx_labels(const std::string& path, const std::vector<uint8_t>& labels);

}  // namespace convgen::runtime
