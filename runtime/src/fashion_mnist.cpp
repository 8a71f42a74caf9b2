#include "convgen/runtime/fashion_mnist.h"

#include "convgen/runtime/idx.h"
#include "file_io.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <optional>
#include <stdexcept>

namespace convgen::runtime {
namespace {

constexpr int64_t image_bytes = fashion_mnist_side * fashion_mnist_side;

// Why an entry cannot be an image, or nothing when it is one (its pixels then appended).
std::optional<std::string> append_entry(const nlohmann::json& entry, std::vector<uint8_t>& pixels) {
    if (!entry.is_array()) {
        return fmt::format("a JSON {} but expected an array of {} integers", entry.type_name(), image_bytes);
    }
    if (static_cast<int64_t>(entry.size()) != image_bytes) {
        return fmt::format("{} values but expected {}", entry.size(), image_bytes);
    }
    const size_t first = pixels.size();
    for (size_t index = 0; index < entry.size(); index++) {
        const auto& value = entry[index];
        const bool in_range = value.is_number_unsigned() && value.get<uint64_t>() <= 255;
        if (!in_range) {
            pixels.resize(first);
            if (value.is_number_integer()) {
                return fmt::format("value {} at position {} but expected 0 to 255", value.dump(), index);
            }
            return fmt::format("a JSON {} ({}) at position {} but expected an integer 0 to 255", value.type_name(),
                               value.dump(), index);
        }
        pixels.push_back(static_cast<uint8_t>(value.get<uint64_t>()));
    }
    return std::nullopt;
}

// Class after class in turn, `per_class` images of each from `first` on.
void interleave(const std::vector<FashionMnistClass>& classes, int64_t first, int64_t per_class,
                std::vector<uint8_t>& pixels, std::vector<uint8_t>& labels) {
    pixels.reserve(static_cast<size_t>(per_class * fashion_mnist_classes * image_bytes));
    for (int64_t index = first; index < first + per_class; index++) {
        for (int label = 0; label < fashion_mnist_classes; label++) {
            const auto begin =
                classes[static_cast<size_t>(label)].pixels.begin() + static_cast<std::ptrdiff_t>(index * image_bytes);
            pixels.insert(pixels.end(), begin, begin + image_bytes);
            labels.push_back(static_cast<uint8_t>(label));
        }
    }
}

}  // namespace

const std::vector<std::string>& fashion_mnist_class_names() {
    static const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                   "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
    return names;
}

FashionMnistClass parse_fashion_mnist_class(const std::string& json_text, const std::string& path) {
    nlohmann::json document;
    try {
        document = nlohmann::json::parse(json_text);
    } catch (const nlohmann::json::exception& error) {
        // parse_error, and also out_of_range for a number beyond a double (1e999): both malformed input.
        throw DataError(fmt::format("{}: invalid JSON: {}", path, error.what()));
    }
    if (!document.is_object()) {
        throw DataError(fmt::format("{}: expected an object with a \"data\" array of images but found a JSON {}", path,
                                    document.type_name()));
    }
    const auto entries = document.find("data");
    if (entries == document.end() || !entries->is_array()) {
        throw DataError(fmt::format("{}: expected a \"data\" array of images but found {}", path,
                                    entries == document.end() ? std::string("no \"data\" key")
                                                              : fmt::format("a JSON {}", entries->type_name())));
    }
    FashionMnistClass result;
    for (size_t index = 0; index < entries->size(); index++) {
        if (auto why = append_entry((*entries)[index], result.pixels)) {
            result.skipped.push_back(fmt::format("entry {}: {}", index, *why));
        } else {
            result.valid_count++;
        }
    }
    return result;
}

FashionMnistConversion convert_fashion_mnist_json(const std::string& clothes_dir, const std::string& output_dir,
                                                  const FashionMnistSplit& split) {
    if (split.train_per_class < 1 || split.test_per_class < 1) {
        throw std::invalid_argument(
            fmt::format("Fashion-MNIST split: expected at least 1 training and 1 test image per "
                        "class but got {} and {}",
                        split.train_per_class, split.test_per_class));
    }
    const int64_t needed = split.train_per_class + split.test_per_class;
    FashionMnistConversion conversion;
    std::vector<FashionMnistClass> classes;
    for (int label = 0; label < fashion_mnist_classes; label++) {
        const auto path = (std::filesystem::path(clothes_dir) / fmt::format("{}.json", label)).string();
        const auto bytes = detail::read_whole_file(path);
        auto parsed = parse_fashion_mnist_class(std::string(bytes.begin(), bytes.end()), path);
        if (parsed.valid_count < needed) {
            throw DataError(fmt::format(
                "{}: expected at least {} valid images ({} for training, {} for testing) but found {} ({} skipped)",
                path, needed, split.train_per_class, split.test_per_class, parsed.valid_count, parsed.skipped.size()));
        }
        conversion.valid_per_class[static_cast<size_t>(label)] = parsed.valid_count;
        conversion.skipped_per_class[static_cast<size_t>(label)] = static_cast<int64_t>(parsed.skipped.size());
        for (const auto& why : parsed.skipped) conversion.skipped.push_back(fmt::format("{}: {}", path, why));
        classes.push_back(std::move(parsed));
    }

    std::error_code error;
    std::filesystem::create_directories(output_dir, error);
    if (error) {
        throw DataError(fmt::format("{}: cannot create the folder: {}", output_dir, error.message()));
    }
    const auto write_split = [&](const char* prefix, int64_t first, int64_t per_class) {
        std::vector<uint8_t> pixels, labels;
        interleave(classes, first, per_class, pixels, labels);
        const std::filesystem::path dir = output_dir;
        write_idx_images((dir / fmt::format("{}-images-idx3-ubyte", prefix)).string(),
                         static_cast<int64_t>(labels.size()), fashion_mnist_side, fashion_mnist_side, pixels.data());
        write_idx_labels((dir / fmt::format("{}-labels-idx1-ubyte", prefix)).string(), labels);
        return static_cast<int64_t>(labels.size());
    };
    conversion.train_count = write_split("train", 0, split.train_per_class);
    conversion.test_count = write_split("t10k", split.train_per_class, split.test_per_class);
    return conversion;
}

ImageSet load_fashion_mnist(const std::string& dir, bool train) {
    const std::filesystem::path folder = dir;
    const char* prefix = train ? "train" : "t10k";
    auto set = load_idx((folder / fmt::format("{}-images-idx3-ubyte", prefix)).string(),
                        (folder / fmt::format("{}-labels-idx1-ubyte", prefix)).string(), fashion_mnist_classes);
    set.class_names = fashion_mnist_class_names();
    return set;
}

}  // namespace convgen::runtime
