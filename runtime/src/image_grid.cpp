#include "convgen/runtime/image_grid.h"

#include "file_io.h"

#include <fmt/format.h>

// stb_image_write, compiled here with static linkage so that it stays private to this file.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#define STBI_WRITE_NO_STDIO
#include "../third_party/stb/stb_image_write.h"
#pragma GCC diagnostic pop

#include <algorithm>
#include <cmath>
#include <functional>
#include <stdexcept>

namespace convgen::runtime {
namespace {

constexpr uint8_t gap_grey = 128;  // visible against both black and white backgrounds

// Lays out `count` tiles; tile(i, pixels) writes image i's height * width * channels bytes.
void write_grid(const std::string& path, int64_t count, int64_t height, int64_t width, int64_t channels, int columns,
                int scale, const std::function<void(int64_t, uint8_t*)>& tile) {
    if (count < 1 || height < 1 || width < 1 || channels < 1 || channels > 4 || columns < 1 || scale < 1) {
        throw std::invalid_argument(fmt::format(
            "write_image_grid_png: {}: expected at least one image of 1 to 4 channels, columns >= 1 and scale >= 1 "
            "but got {} images of {}x{}x{}, {} columns, scale {}",
            path, count, height, width, channels, columns, scale));
    }
    const int64_t grid_columns = std::min<int64_t>(columns, count);
    const int64_t grid_rows = (count + grid_columns - 1) / grid_columns;
    const int64_t tile_height = height * scale, tile_width = width * scale;
    const int64_t grid_height = grid_rows * tile_height + grid_rows - 1;
    const int64_t grid_width = grid_columns * tile_width + grid_columns - 1;
    if (grid_height > 65535 || grid_width > 65535) {
        throw std::invalid_argument(
            fmt::format("write_image_grid_png: {}: the grid would be {}x{} pixels; at most "
                        "65535 a side",
                        path, grid_width, grid_height));
    }
    // Grey gaps; an alpha channel (the last of 2 or 4) opaque.
    std::vector<uint8_t> grid(static_cast<size_t>(grid_height * grid_width * channels), gap_grey);
    if (channels == 2 || channels == 4) {
        for (size_t i = static_cast<size_t>(channels - 1); i < grid.size(); i += static_cast<size_t>(channels))
            grid[i] = 255;
    }
    std::vector<uint8_t> pixels(static_cast<size_t>(height * width * channels));
    for (int64_t image = 0; image < count; image++) {
        tile(image, pixels.data());
        const int64_t top = (image / grid_columns) * (tile_height + 1);
        const int64_t left = (image % grid_columns) * (tile_width + 1);
        for (int64_t y = 0; y < tile_height; y++) {
            for (int64_t x = 0; x < tile_width; x++) {
                const uint8_t* from = pixels.data() + ((y / scale) * width + x / scale) * channels;
                std::copy_n(from, channels, grid.data() + ((top + y) * grid_width + left + x) * channels);
            }
        }
    }
    std::vector<uint8_t> png;
    const auto append = [](void* context, void* data, int size) {
        auto* out = static_cast<std::vector<uint8_t>*>(context);
        out->insert(out->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
    };
    if (!stbi_write_png_to_func(append, &png, static_cast<int>(grid_width), static_cast<int>(grid_height),
                                static_cast<int>(channels), grid.data(), static_cast<int>(grid_width * channels))) {
        throw DataError(fmt::format("{}: cannot encode the PNG", path));
    }
    detail::write_file_atomically(path, [&](std::ostream& stream) {
        stream.write(reinterpret_cast<const char*>(png.data()), static_cast<std::streamsize>(png.size()));
    });
}

}  // namespace

void write_image_grid_png(const std::string& path, const float* images, int64_t count, int64_t height, int64_t width,
                          int64_t channels, const Normalisation& undo, int columns, int scale) {
    check_normalisation(undo, channels);
    const int64_t image_size = height * width * channels;
    write_grid(path, count, height, width, channels, columns, scale, [&](int64_t image, uint8_t* pixels) {
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
    write_grid(path, static_cast<int64_t>(samples.size()), set.height, set.width, set.channels, columns, scale,
               [&](int64_t image, uint8_t* pixels) {
                   std::copy_n(set.pixels.begin() + samples[static_cast<size_t>(image)] * image_size, image_size,
                               pixels);
               });
}

}  // namespace convgen::runtime
