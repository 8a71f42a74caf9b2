#include "convgen/runtime/image_grid.h"

#include "convgen/runtime/image_folder.h"
#include "runtime/temporary_directory.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <vector>

namespace {

using namespace convgen::runtime;
using namespace convgen::runtime::testing;

uint8_t pixel_at(const DecodedImage& image, int64_t y, int64_t x, int64_t channel) {
    return image.pixels[static_cast<size_t>((y * image.width + x) * image.channels + channel)];
}

}  // namespace

TEST_CASE("a grid of normalised RGB images decodes back to its size, un-normalised and clamped, with grey gaps") {
    TemporaryDirectory directory;
    const Normalisation normalisation{{0.5f, 0.5f, 0.5f}, {0.25f, 0.25f, 0.25f}};
    // Five 2x3 images; image i is one colour: red (i + 1) / 8 in [0, 1] units, green 0, blue far above 1.
    std::vector<float> images;
    for (int image = 0; image < 5; image++) {
        for (int pixel = 0; pixel < 6; pixel++) {
            images.insert(images.end(), {((image + 1) / 8.0f - 0.5f) / 0.25f, -2.0f, 40.0f});
        }
    }
    const auto path = directory.path_of("grid.png");

    write_image_grid_png(path, images.data(), 5, 2, 3, 3, normalisation, 3, 2);

    // 3 columns and 2 rows of 4x6 tiles with 1-pixel gaps.
    const auto grid = read_png(path, 3);
    CHECK(grid.width == 3 * 6 + 2);
    CHECK(grid.height == 2 * 4 + 1);
    CHECK(pixel_at(grid, 0, 0, 0) == 32);    // image 0: round(255 / 8)
    CHECK(pixel_at(grid, 0, 0, 1) == 0);     // 0 stays 0
    CHECK(pixel_at(grid, 0, 0, 2) == 255);   // far above 1 is clamped
    CHECK(pixel_at(grid, 3, 5, 0) == 32);    // the last pixel of image 0's scaled tile
    CHECK(pixel_at(grid, 0, 6, 0) == 128);   // the gap between columns
    CHECK(pixel_at(grid, 4, 0, 0) == 128);   // the gap between rows
    CHECK(pixel_at(grid, 5, 7, 0) == 159);   // image 4 (row 1, column 1): round(255 * 5 / 8)
    CHECK(pixel_at(grid, 5, 14, 0) == 128);  // no image 5: background
    CHECK(std::distance(std::filesystem::directory_iterator(directory.path_of("")),
                        std::filesystem::directory_iterator()) == 1);
}

TEST_CASE("a grid of stored grey samples is a grey PNG with the samples' pixels") {
    TemporaryDirectory directory;
    ImageSet set;
    set.count = 3;
    set.height = 1;
    set.width = 2;
    set.channels = 1;
    set.pixels = {10, 20, 30, 40, 50, 60};
    set.labels = {0, 1, 2};
    const auto path = directory.path_of("grey.png");

    write_image_grid_png(path, set, {2, 0}, 8);

    const auto grid = read_png(path, 1);
    CHECK(grid.height == 1);
    CHECK(grid.width == 5);
    CHECK(grid.pixels == std::vector<uint8_t>{50, 60, 128, 10, 20});
    CHECK_THROWS_AS(write_image_grid_png(path, set, {3}, 8), std::out_of_range);
    CHECK_THROWS_AS(write_image_grid_png(path, set, {}, 8), std::invalid_argument);
}
