#include "convgen/runtime/cifar.h"

#include "file_io.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>

namespace convgen::runtime {
namespace {

constexpr int64_t plane_bytes = cifar_side * cifar_side;

// One label byte of a record: where it sits, how many classes it counts, what to call it in errors.
struct LabelByte {
    int64_t offset;
    int32_t class_count;
    const char* name;
};

// Appends every record of `path` to `set`: the pixels turned from planar to HWC, and the label at
// `kept`. Every label byte is checked, so a shifted or corrupt file is caught.
void append_records(const std::string& path, const std::vector<LabelByte>& label_bytes, size_t kept, ImageSet& set) {
    const auto record_bytes = static_cast<int64_t>(label_bytes.size()) + cifar_image_bytes;
    auto file = detail::open_file(path);
    if (file.size == 0 || file.size % record_bytes != 0) {
        throw DataError(fmt::format(
            "{}: {} bytes is not a whole, non-zero number of {}-byte records ({} label "
            "byte{} and {} pixel bytes each)",
            path, file.size, record_bytes, label_bytes.size(), label_bytes.size() == 1 ? "" : "s", cifar_image_bytes));
    }
    const int64_t records = file.size / record_bytes;
    std::vector<uint8_t> bytes(static_cast<size_t>(file.size));
    detail::read_exactly(file, path, bytes.data(), file.size);

    const auto first_pixel = set.pixels.size();
    set.pixels.resize(first_pixel + static_cast<size_t>(records * cifar_image_bytes));
    for (int64_t record = 0; record < records; record++) {
        const uint8_t* in = bytes.data() + record * record_bytes;
        for (const auto& label : label_bytes) {
            if (in[label.offset] >= label.class_count) {
                throw DataError(fmt::format("{}: record {}: {} {} but expected 0 to {}", path, record, label.name,
                                            in[label.offset], label.class_count - 1));
            }
        }
        set.labels.push_back(in[label_bytes[kept].offset]);
        const uint8_t* planes = in + label_bytes.size();
        uint8_t* out = set.pixels.data() + first_pixel + record * cifar_image_bytes;
        for (int64_t pixel = 0; pixel < plane_bytes; pixel++) {
            for (int64_t channel = 0; channel < cifar_channels; channel++) {
                out[pixel * cifar_channels + channel] = planes[channel * plane_bytes + pixel];
            }
        }
    }
    set.count += records;
}

// The names listed one per line in `file_name` beside `data_path`, or `fallback` when there is no
// such file. A file with another number of names than classes is a DataError.
std::vector<std::string> class_names_beside(const std::string& data_path, const char* file_name, int32_t class_count,
                                            const std::vector<std::string>& fallback) {
    const auto path = (std::filesystem::path(data_path).parent_path() / file_name).string();
    std::ifstream file(path);
    if (!file) return fallback;
    std::vector<std::string> names;
    for (std::string line; std::getline(file, line);) {
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
        if (!line.empty()) names.push_back(line);
    }
    if (static_cast<int32_t>(names.size()) != class_count) {
        throw DataError(
            fmt::format("{}: expected {} class names, one per line, but found {}", path, class_count, names.size()));
    }
    return names;
}

ImageSet empty_cifar_set() {
    ImageSet set;
    set.height = cifar_side;
    set.width = cifar_side;
    set.channels = cifar_channels;
    return set;
}

}  // namespace

const std::vector<std::string>& cifar10_class_names() {
    static const std::vector<std::string> names = {"airplane", "automobile", "bird",  "cat",  "deer",
                                                   "dog",      "frog",       "horse", "ship", "truck"};
    return names;
}

ImageSet load_cifar10_binary(const std::vector<std::string>& files) {
    if (files.empty()) throw std::invalid_argument("load_cifar10_binary: no files given");
    auto set = empty_cifar_set();
    for (const auto& path : files) append_records(path, {{0, 10, "label"}}, 0, set);
    set.class_names = class_names_beside(files.front(), "batches.meta.txt", 10, cifar10_class_names());
    return set;
}

ImageSet load_cifar10_binary_folder(const std::string& dir, bool train) {
    const std::filesystem::path folder = dir;
    std::vector<std::string> files;
    if (train) {
        for (int batch = 1; batch <= 5; batch++)
            files.push_back((folder / fmt::format("data_batch_{}.bin", batch)).string());
    } else {
        files.push_back((folder / "test_batch.bin").string());
    }
    return load_cifar10_binary(files);
}

ImageSet load_cifar100_binary(const std::string& path, Cifar100Labels labels) {
    auto set = empty_cifar_set();
    const bool fine = labels == Cifar100Labels::fine;
    append_records(path, {{0, 20, "coarse label"}, {1, 100, "fine label"}}, fine ? 1 : 0, set);
    set.class_names = fine ? class_names_beside(path, "fine_label_names.txt", 100, numbered_class_names(100))
                           : class_names_beside(path, "coarse_label_names.txt", 20, numbered_class_names(20));
    return set;
}

}  // namespace convgen::runtime
