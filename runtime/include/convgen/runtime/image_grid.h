// A grid of images as one PNG, to look at what a network is fed (after loading, normalising and
// augmenting) or at what it gets wrong.
#pragma once

#include <convgen/runtime/dataset.h>

#include <cstdint>
#include <string>
#include <vector>

namespace convgen::runtime {

// Writes `count` network-input images (NHWC floats, normalised with `undo`) as a PNG grid of
// `columns` columns (fewer when there are fewer images), each image scaled up `scale` times and
// separated by 1-pixel grey gaps. Pixels are un-normalised, rounded and clamped to 0..255. One
// channel is grey, two grey and alpha, three RGB, four RGBA. The file is written atomically.
void write_image_grid_png(const std::string& path, const float* images, int64_t count, int64_t height, int64_t width,
                          int64_t channels, const Normalisation& undo, int columns, int scale = 1);

// The same for the given samples of a set, from their stored pixels.
void write_image_grid_png(const std::string& path, const ImageSet& set, const std::vector<int64_t>& samples,
                          int columns, int scale = 1);

}  // namespace convgen::runtime
