#include "png_grid.h"

#include "convgen/runtime/dataset.h"
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
#include <stdexcept>
#include <vector>

namespace convgen::runtime::detail {

void write_png_grid(const std::string& what, const std::string& path, int64_t count, int64_t height, int64_t width,
                    int64_t channels, int64_t columns, int scale, uint8_t gap, int gap_width,
                    const std::function<void(int64_t, uint8_t*)>& tile) {
    if (count < 1 || height < 1 || width < 1 || channels < 1 || channels > 4 || columns < 1 || scale < 1 ||
        gap_width < 0) {
        throw std::invalid_argument(
            fmt::format("{}: {}: expected at least one image of 1 to 4 channels, columns >= 1 and scale >= 1 "
                        "but got {} images of {}x{}x{}, {} columns, scale {}",
                        what, path, count, height, width, channels, columns, scale));
    }
    const int64_t grid_columns = std::min<int64_t>(columns, count);
    const int64_t grid_rows = (count + grid_columns - 1) / grid_columns;
    const int64_t tile_height = height * scale, tile_width = width * scale;
    const int64_t grid_height = grid_rows * tile_height + (grid_rows - 1) * gap_width;
    const int64_t grid_width = grid_columns * tile_width + (grid_columns - 1) * gap_width;
    if (grid_height > 65535 || grid_width > 65535) {
        throw std::invalid_argument(fmt::format("{}: {}: the grid would be {}x{} pixels; at most 65535 a side", what,
                                                path, grid_width, grid_height));
    }
    std::vector<uint8_t> grid(static_cast<size_t>(grid_height * grid_width * channels), gap);
    if (channels == 2 || channels == 4) {
        for (size_t i = static_cast<size_t>(channels - 1); i < grid.size(); i += static_cast<size_t>(channels))
            grid[i] = 255;
    }
    std::vector<uint8_t> pixels(static_cast<size_t>(height * width * channels));
    for (int64_t image = 0; image < count; image++) {
        tile(image, pixels.data());
        const int64_t top = (image / grid_columns) * (tile_height + gap_width);
        const int64_t left = (image % grid_columns) * (tile_width + gap_width);
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
    write_file_atomically(path, [&](std::ostream& stream) {
        stream.write(reinterpret_cast<const char*>(png.data()), static_cast<std::streamsize>(png.size()));
    });
}

}  // namespace convgen::runtime::detail
