#include "convgen/runtime/idx.h"

#include "runtime/temporary_directory.h"

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using namespace convgen::runtime;
using namespace convgen::runtime::testing;

constexpr uint32_t image_magic = 0x00000803;
constexpr uint32_t label_magic = 0x00000801;

void append_big_endian(std::vector<uint8_t>& bytes, uint32_t value) {
    for (int shift = 24; shift >= 0; shift -= 8) {
        bytes.push_back(static_cast<uint8_t>(value >> shift));
    }
}

std::vector<uint8_t> image_file_bytes(uint32_t count, uint32_t height, uint32_t width,
                                      const std::vector<uint8_t>& pixels, uint32_t magic = image_magic) {
    std::vector<uint8_t> bytes;
    append_big_endian(bytes, magic);
    append_big_endian(bytes, count);
    append_big_endian(bytes, height);
    append_big_endian(bytes, width);
    bytes.insert(bytes.end(), pixels.begin(), pixels.end());
    return bytes;
}

std::vector<uint8_t> label_file_bytes(uint32_t count, const std::vector<uint8_t>& labels) {
    std::vector<uint8_t> bytes;
    append_big_endian(bytes, label_magic);
    append_big_endian(bytes, count);
    bytes.insert(bytes.end(), labels.begin(), labels.end());
    return bytes;
}

std::vector<uint8_t> label_file_bytes(const std::vector<uint8_t>& labels) {
    return label_file_bytes(static_cast<uint32_t>(labels.size()), labels);
}

// Three 2x3 images whose pixels run 0, 15, ..., 255, so scaling to [0, 1] is easy to check.
const std::vector<uint8_t> three_images_pixels = [] {
    std::vector<uint8_t> pixels;
    for (int value = 0; value <= 255; value += 15) {
        pixels.push_back(static_cast<uint8_t>(value));
    }
    return pixels;
}();
const std::vector<uint8_t> three_labels = {7, 0, 9};

}  // namespace

TEST_CASE("read_idx_images returns the header's dimensions and the pixels in stored order") {
    TemporaryDirectory directory;
    const auto path = directory.write("images", image_file_bytes(3, 2, 3, three_images_pixels));

    const auto images = read_idx_images(path);

    CHECK(images.count == 3);
    CHECK(images.height == 2);
    CHECK(images.width == 3);
    CHECK(images.pixels == three_images_pixels);
}

TEST_CASE("read_idx_labels returns every label") {
    TemporaryDirectory directory;
    const auto path = directory.write("labels", label_file_bytes(three_labels));

    CHECK(read_idx_labels(path) == three_labels);
}

TEST_CASE("load_idx keeps the pixels as stored, in NHWC order with one channel, and numbers the classes") {
    TemporaryDirectory directory;
    const auto images_path = directory.write("images", image_file_bytes(3, 2, 3, three_images_pixels));
    const auto labels_path = directory.write("labels", label_file_bytes(three_labels));

    const auto set = load_idx(images_path, labels_path);

    CHECK(set.count == 3);
    CHECK(set.height == 2);
    CHECK(set.width == 3);
    CHECK(set.channels == 1);
    CHECK(set.image_size() == 6);
    CHECK(set.pixels == three_images_pixels);
    CHECK(set.labels == std::vector<int32_t>{7, 0, 9});
    CHECK(set.class_names == std::vector<std::string>{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"});
}

TEST_CASE("write_idx_images and write_idx_labels write files the readers give back unchanged") {
    TemporaryDirectory directory;
    const auto images_path = directory.path_of("images");
    const auto labels_path = directory.path_of("labels");

    write_idx_images(images_path, 3, 2, 3, three_images_pixels.data());
    write_idx_labels(labels_path, three_labels);

    CHECK(read_bytes(images_path) == image_file_bytes(3, 2, 3, three_images_pixels));
    CHECK(read_bytes(labels_path) == label_file_bytes(three_labels));
    const auto set = load_idx(images_path, labels_path);
    CHECK(set.pixels == three_images_pixels);
    CHECK(set.labels == std::vector<int32_t>{7, 0, 9});
    // Only the two files: the temporary files were renamed over them.
    CHECK(std::distance(std::filesystem::directory_iterator(directory.path_of("")),
                        std::filesystem::directory_iterator()) == 2);
}

TEST_CASE("write_idx_images replaces an existing file and refuses sizes IDX cannot hold") {
    TemporaryDirectory directory;
    const auto path = directory.write("images", {1, 2, 3});

    write_idx_images(path, 1, 1, 2, three_images_pixels.data());
    CHECK(read_idx_images(path).pixels == std::vector<uint8_t>{0, 15});

    CHECK_THROWS_AS(write_idx_images(path, 0, 2, 3, three_images_pixels.data()), std::invalid_argument);
    CHECK_THROWS_AS(write_idx_images(path, 1, 5000, 3, three_images_pixels.data()), std::invalid_argument);
    CHECK_THROWS_AS(write_idx_labels(path, {}), std::invalid_argument);
}

TEST_CASE("a write into a missing folder is a DataError naming the file") {
    TemporaryDirectory directory;
    const auto path = directory.path_of("missing/labels");

    CHECK(data_error_message([&] {
              write_idx_labels(path, three_labels);
          }).rfind(fmt::format("{}: cannot create a temporary file beside it", path), 0) == 0);
}

TEST_CASE("a labels file passed as images is reported as a wrong magic number") {
    TemporaryDirectory directory;
    const auto path = directory.write("labels", label_file_bytes(three_labels));

    CHECK(data_error_message([&] { read_idx_images(path); }) ==
          fmt::format("{}: wrong magic number: expected 0x00000803 (uint8 images, 3 dimensions) "
                      "but found 0x00000801 (IDX uint8 data with 1 dimension)",
                      path));
}

TEST_CASE("an images file passed as labels is reported as a wrong magic number") {
    TemporaryDirectory directory;
    const auto path = directory.write("images", image_file_bytes(3, 2, 3, three_images_pixels));

    CHECK(data_error_message([&] { read_idx_labels(path); }) ==
          fmt::format("{}: wrong magic number: expected 0x00000801 (uint8 labels, 1 dimension) "
                      "but found 0x00000803 (IDX uint8 data with 3 dimensions)",
                      path));
}

TEST_CASE("a still-compressed file is reported as gzip") {
    TemporaryDirectory directory;
    const auto path = directory.write("images.gz", {0x1F, 0x8B, 0x08, 0x08, 0, 0, 0, 0, 0, 0});

    CHECK(data_error_message([&] { read_idx_images(path); }) ==
          fmt::format("{}: wrong magic number: expected 0x00000803 (uint8 images, 3 dimensions) "
                      "but found 0x1F8B0808 (a gzip-compressed file; decompress it first)",
                      path));
}

TEST_CASE("an images file shorter than its header says is reported as truncated") {
    TemporaryDirectory directory;
    auto bytes = image_file_bytes(3, 2, 3, three_images_pixels);
    bytes.resize(bytes.size() - 5);
    const auto path = directory.write("images", bytes);

    CHECK(data_error_message([&] { read_idx_images(path); }) ==
          fmt::format("{}: truncated: header says 3 images of 2x3 (34 bytes) but the file has 29 "
                      "bytes",
                      path));
}

TEST_CASE("a labels file shorter than its header says is reported as truncated") {
    TemporaryDirectory directory;
    const auto path = directory.write("labels", label_file_bytes(4, three_labels));

    CHECK(data_error_message([&] { read_idx_labels(path); }) ==
          fmt::format("{}: truncated: header says 4 labels (12 bytes) but the file has 11 bytes", path));
}

TEST_CASE("a file cut off inside the header is reported as a truncated header") {
    TemporaryDirectory directory;
    auto bytes = image_file_bytes(3, 2, 3, three_images_pixels);
    bytes.resize(10);
    const auto path = directory.write("images", bytes);

    CHECK(data_error_message([&] { read_idx_images(path); }) ==
          fmt::format("{}: truncated header: expected at least 16 bytes for the IDX header but "
                      "the file has 10 bytes",
                      path));
}

TEST_CASE("an empty file is reported as a truncated header") {
    TemporaryDirectory directory;
    const auto path = directory.write("labels", {});

    CHECK(data_error_message([&] { read_idx_labels(path); }) ==
          fmt::format("{}: truncated header: expected at least 8 bytes for the IDX header but the "
                      "file has 0 bytes",
                      path));
}

TEST_CASE("bytes after the images the header announces are reported as trailing bytes") {
    TemporaryDirectory directory;
    auto bytes = image_file_bytes(3, 2, 3, three_images_pixels);
    bytes.push_back(0);
    const auto path = directory.write("images", bytes);

    CHECK(data_error_message([&] { read_idx_images(path); }) ==
          fmt::format("{}: trailing bytes: header says 3 images of 2x3 (34 bytes) but the file has "
                      "35 bytes",
                      path));
}

TEST_CASE("bytes after the labels the header announces are reported as trailing bytes") {
    TemporaryDirectory directory;
    const auto path = directory.write("labels", label_file_bytes(2, three_labels));

    CHECK(data_error_message([&] { read_idx_labels(path); }) ==
          fmt::format("{}: trailing bytes: header says 2 labels (10 bytes) but the file has 11 "
                      "bytes",
                      path));
}

TEST_CASE("different image and label counts are reported with both files") {
    TemporaryDirectory directory;
    const auto images_path = directory.write("images", image_file_bytes(3, 2, 3, three_images_pixels));
    const auto labels_path = directory.write("labels", label_file_bytes({7, 0}));

    CHECK(data_error_message([&] { load_idx(images_path, labels_path); }) ==
          fmt::format("image and label counts differ: {} has 3 images but {} has 2 labels", images_path, labels_path));
}

TEST_CASE("a label at or above the class count is reported with its value and index") {
    TemporaryDirectory directory;
    const auto path = directory.write("labels", label_file_bytes({7, 10, 9}));

    CHECK(data_error_message([&] { read_idx_labels(path); }) ==
          fmt::format("{}: label out of range: label 10 at index 1 but expected 0 to 9 for 10 "
                      "classes",
                      path));
    CHECK(read_idx_labels(path, 11) == std::vector<uint8_t>{7, 10, 9});
}

TEST_CASE("load_idx checks labels against the class count it is given") {
    TemporaryDirectory directory;
    const auto images_path = directory.write("images", image_file_bytes(3, 2, 3, three_images_pixels));
    const auto labels_path = directory.write("labels", label_file_bytes(three_labels));

    CHECK(data_error_message([&] { load_idx(images_path, labels_path, 5); }) ==
          fmt::format("{}: label out of range: label 7 at index 0 but expected 0 to 4 for 5 "
                      "classes",
                      labels_path));
}

TEST_CASE("a class count below one is a caller's mistake, not a data error") {
    TemporaryDirectory directory;
    const auto path = directory.write("labels", label_file_bytes(three_labels));

    CHECK_THROWS_AS(read_idx_labels(path, 0), std::invalid_argument);
}

TEST_CASE("a header announcing no images or no labels is rejected") {
    TemporaryDirectory directory;
    const auto images_path = directory.write("images", image_file_bytes(0, 2, 3, {}));
    const auto labels_path = directory.write("labels", label_file_bytes({}));

    CHECK(data_error_message([&] { read_idx_images(images_path); }) ==
          fmt::format("{}: no images: header says 0 images, expected at least 1", images_path));
    CHECK(data_error_message([&] { read_idx_labels(labels_path); }) ==
          fmt::format("{}: no labels: header says 0 labels, expected at least 1", labels_path));
}

TEST_CASE("image sides of zero or above 4096 are rejected before any pixel is read") {
    TemporaryDirectory directory;
    const auto tall_path = directory.write("tall", image_file_bytes(1, 5000, 28, {}));
    const auto flat_path = directory.write("flat", image_file_bytes(1, 28, 0, {}));

    CHECK(data_error_message([&] { read_idx_images(tall_path); }) ==
          fmt::format("{}: image size out of range: header says 5000x28 but rows and columns must "
                      "be between 1 and 4096",
                      tall_path));
    CHECK(data_error_message([&] { read_idx_images(flat_path); }) ==
          fmt::format("{}: image size out of range: header says 28x0 but rows and columns must be "
                      "between 1 and 4096",
                      flat_path));
}

TEST_CASE("a huge image count with a small file is reported as truncated, not allocated") {
    TemporaryDirectory directory;
    const auto path = directory.write("images", image_file_bytes(0xFFFFFFFF, 4096, 4096, {}));

    CHECK(data_error_message([&] { read_idx_images(path); }) ==
          fmt::format("{}: truncated: header says 4294967295 images of 4096x4096 "
                      "(72057594021150736 bytes) but the file has 16 bytes",
                      path));
}

TEST_CASE("a missing file or a directory is reported with its path") {
    TemporaryDirectory directory;
    const auto missing_path = directory.path_of("missing");
    const auto directory_path = directory.path_of("");

    CHECK(data_error_message([&] { read_idx_images(missing_path); }) ==
          fmt::format("{}: cannot read: No such file or directory", missing_path));
    CHECK(data_error_message([&] {
              read_idx_labels(directory_path);
          }).rfind(fmt::format("{}: cannot read: ", directory_path), 0) == 0);
}
