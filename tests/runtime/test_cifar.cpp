#include "convgen/runtime/cifar.h"

#include "runtime/temporary_directory.h"

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cstdint>
#include <string>
#include <vector>

namespace {

using namespace convgen::runtime;
using namespace convgen::runtime::testing;

// The stored value of a pixel: different for every record, channel and position, so a wrong
// plane order or a wrong record boundary shows.
uint8_t stored_value(int record, int channel, int pixel) {
    return static_cast<uint8_t>(record * 3 + channel * 50 + pixel);
}

// One record as the binary release stores it: the label bytes, then the red, green and blue planes.
std::vector<uint8_t> record_bytes(const std::vector<uint8_t>& label_bytes, int record) {
    std::vector<uint8_t> bytes = label_bytes;
    for (int channel = 0; channel < 3; channel++) {
        for (int pixel = 0; pixel < 1024; pixel++) bytes.push_back(stored_value(record, channel, pixel));
    }
    return bytes;
}

std::vector<uint8_t> cifar10_file(const std::vector<uint8_t>& labels, int first_record = 0) {
    std::vector<uint8_t> bytes;
    for (size_t i = 0; i < labels.size(); i++) {
        const auto record = record_bytes({labels[i]}, first_record + static_cast<int>(i));
        bytes.insert(bytes.end(), record.begin(), record.end());
    }
    return bytes;
}

// Records of (coarse, fine) labels.
std::vector<uint8_t> cifar100_file(const std::vector<std::pair<uint8_t, uint8_t>>& labels) {
    std::vector<uint8_t> bytes;
    for (size_t i = 0; i < labels.size(); i++) {
        const auto record = record_bytes({labels[i].first, labels[i].second}, static_cast<int>(i));
        bytes.insert(bytes.end(), record.begin(), record.end());
    }
    return bytes;
}

// Checks that image `sample` holds record `record`'s pixels in HWC order.
void check_pixels_of_record(const ImageSet& set, int64_t sample, int record) {
    const uint8_t* image = set.pixels.data() + sample * set.image_size();
    int wrong = 0;
    for (int pixel = 0; pixel < 1024; pixel++) {
        for (int channel = 0; channel < 3; channel++)
            wrong += image[pixel * 3 + channel] != stored_value(record, channel, pixel);
    }
    CHECK(wrong == 0);
}

}  // namespace

TEST_CASE("CIFAR-10 files are read in order into one NHWC set with the default class names") {
    TemporaryDirectory directory;
    const auto first = directory.write("data_batch_1.bin", cifar10_file({3, 9}));
    const auto second = directory.write("data_batch_2.bin", cifar10_file({0}, 2));

    const auto set = load_cifar10_binary({first, second});

    CHECK(set.count == 3);
    CHECK(set.height == 32);
    CHECK(set.width == 32);
    CHECK(set.channels == 3);
    CHECK(set.pixels.size() == 3 * 3072);
    CHECK(set.labels == std::vector<int32_t>{3, 9, 0});
    for (int record = 0; record < 3; record++) check_pixels_of_record(set, record, record);
    CHECK(set.class_names == cifar10_class_names());
    CHECK(set.class_names[0] == "airplane");
    CHECK(set.class_names[9] == "truck");
}

TEST_CASE("CIFAR-10 class names come from batches.meta.txt beside the files") {
    TemporaryDirectory directory;
    const auto path = directory.write("test_batch.bin", cifar10_file({1}));
    directory.write_text("batches.meta.txt", "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n\n");

    CHECK(load_cifar10_binary({path}).class_names ==
          std::vector<std::string>{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"});

    directory.write_text("batches.meta.txt", "a\nb\n");
    CHECK(data_error_message([&] { load_cifar10_binary({path}); }) ==
          fmt::format("{}: expected 10 class names, one per line, but found 2", directory.path_of("batches.meta.txt")));
}

TEST_CASE("load_cifar10_binary_folder reads data_batch_1 to 5 for training and test_batch for testing") {
    TemporaryDirectory directory;
    for (int batch = 1; batch <= 5; batch++) {
        directory.write(fmt::format("data_batch_{}.bin", batch), cifar10_file({static_cast<uint8_t>(batch)}, batch));
    }
    directory.write("test_batch.bin", cifar10_file({7, 8}));

    const auto train = load_cifar10_binary_folder(directory.path_of(""), true);
    const auto test = load_cifar10_binary_folder(directory.path_of(""), false);

    CHECK(train.labels == std::vector<int32_t>{1, 2, 3, 4, 5});
    check_pixels_of_record(train, 4, 5);
    CHECK(test.labels == std::vector<int32_t>{7, 8});

    std::filesystem::remove(directory.path_of("data_batch_4.bin"));
    CHECK(data_error_message([&] { load_cifar10_binary_folder(directory.path_of(""), true); }) ==
          fmt::format("{}: cannot read: No such file or directory", directory.path_of("data_batch_4.bin")));
}

TEST_CASE("a CIFAR file that is not a whole number of records is reported with its size and the record size") {
    TemporaryDirectory directory;
    auto bytes = cifar10_file({1, 2});
    bytes.resize(bytes.size() - 100);
    const auto truncated = directory.write("truncated.bin", bytes);
    const auto empty = directory.write("empty.bin", {});

    CHECK(data_error_message([&] { load_cifar10_binary({truncated}); }) ==
          fmt::format("{}: 6046 bytes is not a whole, non-zero number of 3073-byte records (1 label byte and 3072 "
                      "pixel bytes each)",
                      truncated));
    CHECK(data_error_message([&] { load_cifar10_binary({empty}); }) ==
          fmt::format("{}: 0 bytes is not a whole, non-zero number of 3073-byte records (1 label byte and 3072 "
                      "pixel bytes each)",
                      empty));
    // A CIFAR-100 file read as CIFAR-10 has the wrong record size too.
    const auto cifar100 = directory.write("train.bin", cifar100_file({{1, 2}}));
    CHECK(data_error_message([&] { load_cifar10_binary({cifar100}); }) ==
          fmt::format("{}: 3074 bytes is not a whole, non-zero number of 3073-byte records (1 label byte and 3072 "
                      "pixel bytes each)",
                      cifar100));
}

TEST_CASE("a CIFAR-10 label above 9 is reported with the file, the record and the label") {
    TemporaryDirectory directory;
    const auto path = directory.write("data_batch_1.bin", cifar10_file({1, 10, 2}));

    CHECK(data_error_message([&] { load_cifar10_binary({path}); }) ==
          fmt::format("{}: record 1: label 10 but expected 0 to 9", path));
}

TEST_CASE("CIFAR-100 gives the fine or the coarse labels, with names from the files beside it") {
    TemporaryDirectory directory;
    const auto path = directory.write("train.bin", cifar100_file({{4, 72}, {19, 99}, {0, 0}}));

    const auto fine = load_cifar100_binary(path, Cifar100Labels::fine);
    const auto coarse = load_cifar100_binary(path, Cifar100Labels::coarse);

    CHECK(fine.labels == std::vector<int32_t>{72, 99, 0});
    CHECK(coarse.labels == std::vector<int32_t>{4, 19, 0});
    CHECK(fine.pixels == coarse.pixels);
    check_pixels_of_record(fine, 2, 2);
    CHECK(fine.class_names.size() == 100);
    CHECK(fine.class_names[99] == "99");
    CHECK(coarse.class_names.size() == 20);

    std::string coarse_names;
    for (int label = 0; label < 20; label++) coarse_names += fmt::format("superclass_{}\r\n", label);
    directory.write_text("coarse_label_names.txt", coarse_names);
    CHECK(load_cifar100_binary(path, Cifar100Labels::coarse).class_names[19] == "superclass_19");
}

TEST_CASE("a CIFAR-100 coarse label above 19 or fine label above 99 is reported whichever labels are asked for") {
    TemporaryDirectory directory;
    const auto bad_coarse = directory.write("coarse.bin", cifar100_file({{1, 1}, {20, 5}}));
    const auto bad_fine = directory.write("fine.bin", cifar100_file({{1, 100}}));

    CHECK(data_error_message([&] { load_cifar100_binary(bad_coarse, Cifar100Labels::fine); }) ==
          fmt::format("{}: record 1: coarse label 20 but expected 0 to 19", bad_coarse));
    CHECK(data_error_message([&] { load_cifar100_binary(bad_fine, Cifar100Labels::coarse); }) ==
          fmt::format("{}: record 0: fine label 100 but expected 0 to 99", bad_fine));
}
