#include "convgen/runtime/fashion_mnist.h"

#include "convgen/runtime/idx.h"
#include "runtime/temporary_directory.h"

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace {

using namespace convgen::runtime;
using namespace convgen::runtime::testing;

// The pixel values of entry `entry` of class `label`: distinct per image, so the interleaving shows.
std::vector<int> entry_values(int label, int entry) {
    std::vector<int> values;
    for (int i = 0; i < 784; i++) values.push_back((label * 20 + entry + i) % 256);
    return values;
}

std::string json_array(const std::vector<int>& values) {
    return fmt::format("[{}]", fmt::join(values, ","));
}

// A class file with `valid` good entries; `extra_entries` (raw JSON) go in after the first.
std::string class_file(int label, int valid, const std::vector<std::string>& extra_entries = {}) {
    std::vector<std::string> entries;
    for (int entry = 0; entry < valid; entry++) {
        entries.push_back(json_array(entry_values(label, entry)));
        if (entry == 0) entries.insert(entries.end(), extra_entries.begin(), extra_entries.end());
    }
    return fmt::format("{{\"data\":[{}]}}", fmt::join(entries, ","));
}

// Writes 0.json ... 9.json with `valid` good entries each, class 0 with `class0_extras` too.
std::string write_clothes(const TemporaryDirectory& directory, int valid,
                          const std::vector<std::string>& class0_extras = {}) {
    for (int label = 0; label < 10; label++) {
        directory.write_text(fmt::format("clothes/{}.json", label),
                             class_file(label, valid, label == 0 ? class0_extras : std::vector<std::string>{}));
    }
    return directory.path_of("clothes");
}

std::vector<uint8_t> as_bytes(const std::vector<int>& values) {
    return std::vector<uint8_t>(values.begin(), values.end());
}

}  // namespace

TEST_CASE("parse_fashion_mnist_class keeps the valid entries in file order and says why each other is skipped") {
    const std::vector<int> too_short(5, 1);
    auto out_of_range = entry_values(0, 9);
    out_of_range[3] = 256;
    auto negative = entry_values(0, 9);
    negative[0] = -1;
    auto fractional = json_array(entry_values(0, 9));
    fractional.replace(1, 1, "0.5");
    const std::string text = fmt::format(
        "{{\"data\":[{},[],{},{},{},{},\"image\",{}]}}", json_array(entry_values(0, 0)), json_array(too_short),
        json_array(out_of_range), json_array(negative), fractional, json_array(entry_values(0, 1)));

    const auto parsed = parse_fashion_mnist_class(text, "0.json");

    CHECK(parsed.valid_count == 2);
    auto expected = as_bytes(entry_values(0, 0));
    const auto second = as_bytes(entry_values(0, 1));
    expected.insert(expected.end(), second.begin(), second.end());
    CHECK(parsed.pixels == expected);
    CHECK(parsed.skipped == std::vector<std::string>{
                                "entry 1: 0 values but expected 784",
                                "entry 2: 5 values but expected 784",
                                "entry 3: value 256 at position 3 but expected 0 to 255",
                                "entry 4: value -1 at position 0 but expected 0 to 255",
                                "entry 5: a JSON number (0.5) at position 0 but expected an integer 0 to 255",
                                "entry 6: a JSON string but expected an array of 784 integers",
                            });
}

TEST_CASE("text that is not a Fashion-MNIST class file is a DataError naming the file") {
    CHECK(data_error_message([] {
              parse_fashion_mnist_class("{\"data\": [[1, 2]", "3.json");
          }).rfind("3.json: invalid JSON: ", 0) == 0);
    CHECK(data_error_message([] { parse_fashion_mnist_class("[[1, 2]]", "3.json"); }) ==
          "3.json: expected an object with a \"data\" array of images but found a JSON array");
    CHECK(data_error_message([] { parse_fashion_mnist_class("{\"images\": []}", "3.json"); }) ==
          "3.json: expected a \"data\" array of images but found no \"data\" key");
    CHECK(data_error_message([] { parse_fashion_mnist_class("{\"data\": 7}", "3.json"); }) ==
          "3.json: expected a \"data\" array of images but found a JSON number");
}

TEST_CASE("the converter splits every class in file order and interleaves the classes in the IDX files") {
    TemporaryDirectory directory;
    const auto clothes = write_clothes(directory, 5, {"[]", "[1,2,3]"});
    const auto output = directory.path_of("idx");

    const auto conversion = convert_fashion_mnist_json(clothes, output, {3, 1});

    CHECK(conversion.train_count == 30);
    CHECK(conversion.test_count == 10);
    CHECK(conversion.valid_per_class[0] == 5);
    CHECK(conversion.skipped_per_class[0] == 2);
    CHECK(conversion.skipped_per_class[1] == 0);
    CHECK(conversion.skipped == std::vector<std::string>{
                                    fmt::format("{}/0.json: entry 1: 0 values but expected 784", clothes),
                                    fmt::format("{}/0.json: entry 2: 3 values but expected 784", clothes),
                                });
    const auto train = load_fashion_mnist(output, true);
    const auto test = load_fashion_mnist(output, false);
    REQUIRE(train.count == 30);
    REQUIRE(test.count == 10);
    CHECK(train.height == 28);
    CHECK(train.class_names[0] == "T-shirt/top");
    CHECK(train.class_names[9] == "Ankle boot");
    for (int64_t sample = 0; sample < train.count; sample++) {
        const int label = static_cast<int>(sample % 10), entry = static_cast<int>(sample / 10);
        CHECK(train.labels[static_cast<size_t>(sample)] == label);
        const std::vector<uint8_t> image(train.pixels.begin() + sample * 784,
                                         train.pixels.begin() + (sample + 1) * 784);
        CHECK(image == as_bytes(entry_values(label, entry)));
    }
    // The test set takes each class's entry after the training ones (entry 3); entry 4 is unused.
    const std::vector<uint8_t> test_image(test.pixels.begin() + 7 * 784, test.pixels.begin() + 8 * 784);
    CHECK(test.labels[7] == 7);
    CHECK(test_image == as_bytes(entry_values(7, 3)));
}

TEST_CASE("a class with fewer valid entries than the split takes is a DataError naming its file") {
    TemporaryDirectory directory;
    const auto clothes = write_clothes(directory, 4);
    directory.write_text("clothes/6.json", class_file(6, 3, {"[]"}));

    CHECK(data_error_message([&] {
              convert_fashion_mnist_json(clothes, directory.path_of("idx"), {3, 1});
          }) ==
          fmt::format("{}/6.json: expected at least 4 valid images (3 for training, 1 for testing) but found 3 (1 "
                      "skipped)",
                      clothes));
    CHECK_FALSE(std::filesystem::exists(directory.path_of("idx")));
}

TEST_CASE("a missing class file or invalid JSON in one is a DataError naming the file") {
    TemporaryDirectory directory;
    const auto clothes = write_clothes(directory, 4);
    std::filesystem::remove(directory.path_of("clothes/9.json"));

    CHECK(data_error_message([&] {
              convert_fashion_mnist_json(clothes, directory.path_of("idx"), {3, 1});
          }) == fmt::format("{}/9.json: cannot read: No such file or directory", clothes));

    directory.write_text("clothes/9.json", "{\"data\": [");
    CHECK(data_error_message([&] {
              convert_fashion_mnist_json(clothes, directory.path_of("idx"), {3, 1});
          }).rfind(fmt::format("{}/9.json: invalid JSON: ", clothes), 0) == 0);

    // A number beyond a double is nlohmann's out_of_range, not a parse_error; fuzz_fashion_json
    // found it ending the process.
    directory.write_text("clothes/9.json", "{\"data\": [[0, 39e0724, 2]]}");
    const std::string overflow = data_error_message([&] {
        convert_fashion_mnist_json(clothes, directory.path_of("idx"), {3, 1});
    });
    CHECK(overflow.rfind(fmt::format("{}/9.json: invalid JSON: ", clothes), 0) == 0);
    CHECK(overflow.find("number overflow") != std::string::npos);
}
