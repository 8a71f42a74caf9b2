#include "convgen/runtime/visualise.h"

#include "convgen/runtime/image_folder.h"
#include "runtime/temporary_directory.h"

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace {

using namespace convgen::runtime;
using namespace convgen::runtime::testing;

// The colour type in a PNG's header (its byte 25): 0 grey, 2 RGB.
int png_colour_type(const std::string& path) {
    const auto bytes = read_bytes(path);
    REQUIRE(bytes.size() > 25);
    return bytes[25];
}

uint8_t pixel_at(const DecodedImage& image, int64_t y, int64_t x, int64_t channel = 0) {
    return image.pixels[static_cast<size_t>((y * image.width + x) * image.channels + channel)];
}

std::string read_text(const std::string& path) {
    const auto bytes = read_bytes(path);
    return std::string(bytes.begin(), bytes.end());
}

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

bool starts_and_ends_as_svg(const std::string& text) {
    return text.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0) == 0 && text.size() > 7 &&
           text.compare(text.size() - 7, 7, "</svg>\n") == 0;
}

}  // namespace

TEST_CASE("visualise: grey filters are normalised symmetrically, zero mid grey, each filter on its own") {
    TemporaryDirectory directory;
    // Four 1x2 filters (OIHW, one input channel): (-1, +1), (0, 0.5), (0, 0), (-4, 2).
    const std::vector<float> weights{-1, 1, 0, 0.5f, 0, 0, -4, 2};
    const auto path = directory.path_of("filters.png");

    write_filter_grid_png(path, weights.data(), 4, 1, 1, 2, 3);

    // Two columns and two rows of 3x6 tiles with 1-pixel white gaps (scale 3 / 4, at least 1).
    CHECK(png_colour_type(path) == 0);
    const auto grid = read_png(path, 1);
    CHECK(grid.width == 2 * 6 + 1);
    CHECK(grid.height == 2 * 3 + 1);
    CHECK(pixel_at(grid, 0, 0) == 0);     // filter 0: -max is black
    CHECK(pixel_at(grid, 2, 5) == 255);   // +max is white, to the end of the scaled tile
    CHECK(pixel_at(grid, 0, 6) == 255);   // the gap between columns
    CHECK(pixel_at(grid, 0, 7) == 128);   // filter 1: zero is mid grey
    CHECK(pixel_at(grid, 0, 10) == 255);  // its own maximum, 0.5, is white
    CHECK(pixel_at(grid, 3, 0) == 255);   // the gap between rows
    CHECK(pixel_at(grid, 4, 0) == 128);   // filter 2: all zero, all grey
    CHECK(pixel_at(grid, 4, 7) == 0);     // filter 3: -4 is black
    CHECK(pixel_at(grid, 4, 10) == 191);  // and 2 is half way up: round(255 * 0.75)

    write_filter_grid_png(path, weights.data(), 4, 1, 1, 2, 8);
    const auto larger = read_png(path, 1);
    CHECK(larger.width == 2 * 16 + 2);  // gaps scale / 4 wide
    CHECK(pixel_at(larger, 0, 17) == 255);
    CHECK(pixel_at(larger, 0, 18) == 128);
}

TEST_CASE("visualise: filters of three input channels are RGB tiles") {
    TemporaryDirectory directory;
    // One 1x2 filter: red +1 at the left, blue -1 at the right, green 0.
    const std::vector<float> weights{1, 0, 0, 0, 0, -1};
    const auto path = directory.path_of("rgb.png");

    write_filter_grid_png(path, weights.data(), 1, 3, 1, 2, 2);

    CHECK(png_colour_type(path) == 2);
    const auto grid = read_png(path, 3);
    CHECK(grid.width == 4);
    CHECK(grid.height == 2);
    CHECK(pixel_at(grid, 0, 0, 0) == 255);
    CHECK(pixel_at(grid, 0, 0, 1) == 128);
    CHECK(pixel_at(grid, 0, 0, 2) == 128);
    CHECK(pixel_at(grid, 1, 3, 0) == 128);
    CHECK(pixel_at(grid, 1, 3, 2) == 0);
}

TEST_CASE("visualise: filters of other input channel counts are a row of grey tiles per filter") {
    TemporaryDirectory directory;
    // Three filters of two input channels, 1x1 each: filter f has weights (f, -f).
    const std::vector<float> weights{0, 0, 1, -1, 2, -2};
    const auto path = directory.path_of("rows.png");

    write_filter_grid_png(path, weights.data(), 3, 2, 1, 1, 1);

    CHECK(png_colour_type(path) == 0);
    const auto grid = read_png(path, 1);
    CHECK(grid.width == 3);
    CHECK(grid.height == 5);
    CHECK(pixel_at(grid, 0, 0) == 128);
    CHECK(pixel_at(grid, 2, 0) == 255);
    CHECK(pixel_at(grid, 2, 1) == 255);  // the gap
    CHECK(pixel_at(grid, 2, 2) == 0);
    CHECK(pixel_at(grid, 4, 2) == 0);
    CHECK_THROWS_AS(write_filter_grid_png(path, weights.data(), 0, 2, 1, 1, 1), std::invalid_argument);
}

TEST_CASE("visualise: feature maps (HWC) are grey tiles stretched from each channel's minimum to its maximum") {
    TemporaryDirectory directory;
    // A 2x2 map of three channels: channel 0 counts 0..3, channel 1 is constant, channel 2 is -x.
    std::vector<float> maps;
    for (int i = 0; i < 4; i++) maps.insert(maps.end(), {static_cast<float>(i), 7.0f, -static_cast<float>(i)});
    const auto path = directory.path_of("maps.png");

    write_feature_maps_png(path, maps.data(), 2, 2, 3, 2, 2);

    // Two columns, two rows of 4x4 tiles, white gaps.
    CHECK(png_colour_type(path) == 0);
    const auto grid = read_png(path, 1);
    CHECK(grid.width == 9);
    CHECK(grid.height == 9);
    CHECK(pixel_at(grid, 0, 0) == 0);    // channel 0's minimum
    CHECK(pixel_at(grid, 0, 2) == 85);   // 1 of 0..3
    CHECK(pixel_at(grid, 3, 3) == 255);  // its maximum
    CHECK(pixel_at(grid, 0, 4) == 255);  // the gap
    CHECK(pixel_at(grid, 0, 5) == 0);    // the constant channel is black
    CHECK(pixel_at(grid, 5, 0) == 255);  // channel 2: -x, brightest at the top left
    CHECK(pixel_at(grid, 8, 3) == 0);
}

TEST_CASE("visualise: a confusion matrix counts true classes in rows and is SVG with escaped names and counts") {
    TemporaryDirectory directory;
    const auto counts = confusion_matrix({0, 1, 1, 2, 0}, {0, 1, 0, 2, 0}, 3);
    CHECK(counts == std::vector<std::vector<int64_t>>{{2, 1, 0}, {0, 1, 0}, {0, 0, 1}});
    CHECK_THROWS_AS(confusion_matrix({0, 3}, {0, 1}, 3), std::invalid_argument);
    CHECK_THROWS_AS(confusion_matrix({0}, {0, 1}, 3), std::invalid_argument);
    const auto path = directory.path_of("confusion.svg");

    write_confusion_matrix_svg(path, {{1234, 5}, {0, 77}}, {"cats & dogs", "<other>"});

    const auto svg = read_text(path);
    CHECK(starts_and_ends_as_svg(svg));
    CHECK(contains(svg, ">cats &amp; dogs</text>"));
    CHECK(contains(svg, ">&lt;other&gt;</text>"));
    CHECK(contains(svg, ">1234</text>"));
    CHECK(contains(svg, ">77</text>"));
    CHECK(contains(svg, "1311 of 1316 right"));
    CHECK(contains(svg, "predicted class"));
    CHECK(contains(svg, "true class"));
    CHECK_THROWS_AS(write_confusion_matrix_svg(path, {{1, 2}}, {"a", "b"}), std::invalid_argument);
}

TEST_CASE("visualise: training curves are SVG with both panels, the epochs and a legend; NaN losses are left out") {
    TemporaryDirectory directory;
    std::vector<EpochReport> reports(3);
    for (int i = 0; i < 3; i++) {
        reports[static_cast<size_t>(i)].epoch = i + 1;
        reports[static_cast<size_t>(i)].loss = 0.5 / (i + 1);
        reports[static_cast<size_t>(i)].train_accuracy = 0.9 + 0.02 * i;
        reports[static_cast<size_t>(i)].test_accuracy = 0.91 + 0.02 * i;
    }
    reports[1].loss = std::nan("");
    const auto path = directory.path_of("curves.svg");

    write_training_curves_svg(path, reports);

    const auto svg = read_text(path);
    CHECK(starts_and_ends_as_svg(svg));
    CHECK(contains(svg, "training loss"));
    CHECK(contains(svg, "accuracy (%)"));
    CHECK(contains(svg, "test accuracy"));
    CHECK(contains(svg, ">3</text>"));    // the last epoch's tick
    CHECK(contains(svg, ">0.5</text>"));  // the loss axis' top
    CHECK_FALSE(contains(svg, "nan"));
    CHECK_THROWS_AS(write_training_curves_svg(path, {}), std::invalid_argument);
}

TEST_CASE("visualise: a file that cannot be written is a DataError naming it, and nothing is left behind") {
    TemporaryDirectory directory;
    const auto path = directory.path_of("missing-folder/curves.svg");
    const std::vector<float> weights{1, -1};
    EpochReport report;
    report.epoch = 1;

    CHECK(contains(data_error_message([&] { write_training_curves_svg(path, {report}); }), path));
    CHECK(contains(data_error_message([&] { write_confusion_matrix_svg(path, {{1}}, {"a"}); }), path));
    CHECK(contains(data_error_message([&] { write_filter_grid_png(path, weights.data(), 2, 1, 1, 1, 1); }), path));
    CHECK(std::filesystem::is_empty(directory.path_of("")));
}
