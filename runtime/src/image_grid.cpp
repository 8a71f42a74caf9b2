#include "convgen/runtime/image_grid.h"

#include "png_grid.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace convgen::runtime {
namespace {

constexpr uint8_t gap_grey = 128;  // visible against both black and white backgrounds

}  // namespace

void write_image_grid_png(const std::string& path, const float* images, int64_t count, int64_t height, int64_t width,
                          int64_t channels, const Normalisation& undo, int columns, int scale) {
    check_normalisation(undo, channels);
    const int64_t image_size = height * width * channels;
    detail::write_png_grid(
        "write_image_grid_png", path, count, height, width, channels, columns, scale, gap_grey, 1,
        [&](int64_t image, uint8_t* pixels) {
            const float* in = images + image * image_size;
            for (int64_t i = 0; i < image_size; i++) {
                const auto channel = static_cast<size_t>(i % channels);
                const double unit = undo.mean.empty() ? in[i] : in[i] * undo.std_dev[channel] + undo.mean[channel];
                // NaN (a diverged network's input) shows as black rather than as undefined behaviour.
                const double value = std::isnan(unit) ? 0.0 : std::clamp(std::round(unit * 255.0), 0.0, 255.0);
                pixels[i] = static_cast<uint8_t>(value);
            }
        });
}

void write_image_grid_png(const std::string& path, const ImageSet& set, const std::vector<int64_t>& samples,
                          int columns, int scale) {
    const int64_t image_size = set.image_size();
    for (const int64_t sample : samples) {
        if (sample < 0 || sample >= set.count) {
            throw std::out_of_range(fmt::format("write_image_grid_png: {}: sample {} is outside the set of {} images",
                                                path, sample, set.count));
        }
    }
    detail::write_png_grid("write_image_grid_png", path, static_cast<int64_t>(samples.size()), set.height, set.width,
                           set.channels, columns, scale, gap_grey, 1, [&](int64_t image, uint8_t* pixels) {
                               std::copy_n(set.pixels.begin() + samples[static_cast<size_t>(image)] * image_size,
                                           image_size, pixels);
                           });
}

}  // namespace convgen::runtime
