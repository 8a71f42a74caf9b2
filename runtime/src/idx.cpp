#include "convgen/runtime/idx.h"

#include "file_io.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <ostream>
#include <stdexcept>
#include <string_view>
#include <utility>

namespace convgen::runtime {
namespace {

using detail::open_file;
using detail::OpenFile;
using detail::read_exactly;

constexpr uint32_t image_magic = 0x00000803;
constexpr uint32_t label_magic = 0x00000801;
constexpr int64_t image_header_bytes = 16;
constexpr int64_t label_header_bytes = 8;
// Far above any real data set; a larger side almost always means a corrupt header.
constexpr int64_t max_image_side = 4096;

uint32_t big_endian_u32(const uint8_t* bytes) {
    return (uint32_t{bytes[0]} << 24) | (uint32_t{bytes[1]} << 16) | (uint32_t{bytes[2]} << 8) | uint32_t{bytes[3]};
}

std::string_view idx_type_name(uint8_t type_code) {
    switch (type_code) {
        case 0x08:
            return "uint8";
        case 0x09:
            return "int8";
        case 0x0B:
            return "int16";
        case 0x0C:
            return "int32";
        case 0x0D:
            return "float32";
        case 0x0E:
            return "float64";
        default:
            return "unknown-type";
    }
}

// Says what a wrong magic number looks like, so swapped or still-compressed files are obvious.
std::string describe_magic(uint32_t magic) {
    if ((magic >> 16) == 0x1F8B) {
        return "a gzip-compressed file; decompress it first";
    }
    if ((magic >> 16) != 0) {
        return "not an IDX file";
    }
    const auto dimension_count = magic & 0xFF;
    return fmt::format("IDX {} data with {} dimension{}", idx_type_name((magic >> 8) & 0xFF), dimension_count,
                       dimension_count == 1 ? "" : "s");
}

// Reads the magic number and the dimension sizes, checking both against what the caller expects.
template <size_t header_bytes>
std::array<int64_t, (header_bytes - 4) / 4> read_header(OpenFile& file, const std::string& path,
                                                        uint32_t expected_magic, std::string_view expected_kind) {
    std::array<uint8_t, header_bytes> header{};
    const auto available = std::min<int64_t>(file.size, header_bytes);
    read_exactly(file, path, header.data(), available);
    // A short file with the wrong magic is reported as the wrong file, the likelier mistake.
    if (available >= 4) {
        const auto magic = big_endian_u32(header.data());
        if (magic != expected_magic) {
            throw DataError(fmt::format("{}: wrong magic number: expected 0x{:08X} ({}) but found 0x{:08X} ({})", path,
                                        expected_magic, expected_kind, magic, describe_magic(magic)));
        }
    }
    if (available < static_cast<int64_t>(header_bytes)) {
        throw DataError(
            fmt::format("{}: truncated header: expected at least {} bytes for the IDX header but the file has "
                        "{} bytes",
                        path, header_bytes, file.size));
    }
    std::array<int64_t, (header_bytes - 4) / 4> sizes{};
    for (size_t dimension = 0; dimension < sizes.size(); ++dimension) {
        sizes[dimension] = big_endian_u32(header.data() + 4 + 4 * dimension);
    }
    return sizes;
}

void write_big_endian_u32(std::ostream& stream, uint32_t value) {
    const char bytes[4] = {static_cast<char>(value >> 24), static_cast<char>(value >> 16),
                           static_cast<char>(value >> 8), static_cast<char>(value)};
    stream.write(bytes, 4);
}

void check_file_size(const OpenFile& file, const std::string& path, int64_t expected_size,
                     std::string_view header_says) {
    if (file.size == expected_size) {
        return;
    }
    throw DataError(fmt::format("{}: {}: header says {} ({} bytes) but the file has {} bytes", path,
                                file.size < expected_size ? "truncated" : "trailing bytes", header_says, expected_size,
                                file.size));
}

}  // namespace

IdxImages read_idx_images(const std::string& path) {
    auto file = open_file(path);
    const auto [count, height, width] =
        read_header<image_header_bytes>(file, path, image_magic, "uint8 images, 3 dimensions");
    if (count == 0) {
        throw DataError(fmt::format("{}: no images: header says 0 images, expected at least 1", path));
    }
    if (height < 1 || height > max_image_side || width < 1 || width > max_image_side) {
        throw DataError(
            fmt::format("{}: image size out of range: header says {}x{} but rows and columns must be between 1 "
                        "and {}",
                        path, height, width, max_image_side));
    }
    const auto payload_bytes = count * height * width;
    check_file_size(file, path, image_header_bytes + payload_bytes,
                    fmt::format("{} images of {}x{}", count, height, width));

    IdxImages images{count, height, width, std::vector<uint8_t>(static_cast<size_t>(payload_bytes))};
    read_exactly(file, path, images.pixels.data(), payload_bytes);
    return images;
}

std::vector<uint8_t> read_idx_labels(const std::string& path, int32_t class_count) {
    if (class_count < 1) {
        throw std::invalid_argument(
            fmt::format("read_idx_labels: class_count must be at least 1 but is {}", class_count));
    }
    auto file = open_file(path);
    const auto [count] = read_header<label_header_bytes>(file, path, label_magic, "uint8 labels, 1 dimension");
    if (count == 0) {
        throw DataError(fmt::format("{}: no labels: header says 0 labels, expected at least 1", path));
    }
    check_file_size(file, path, label_header_bytes + count, fmt::format("{} labels", count));

    std::vector<uint8_t> labels(static_cast<size_t>(count));
    read_exactly(file, path, labels.data(), count);
    for (size_t index = 0; index < labels.size(); ++index) {
        if (labels[index] >= class_count) {
            throw DataError(
                fmt::format("{}: label out of range: label {} at index {} but expected 0 to {} for {} classes", path,
                            labels[index], index, class_count - 1, class_count));
        }
    }
    return labels;
}

ImageSet load_idx(const std::string& images_path, const std::string& labels_path, int32_t class_count) {
    auto images = read_idx_images(images_path);
    const auto labels = read_idx_labels(labels_path, class_count);
    if (images.count != static_cast<int64_t>(labels.size())) {
        throw DataError(fmt::format("image and label counts differ: {} has {} images but {} has {} labels", images_path,
                                    images.count, labels_path, labels.size()));
    }

    ImageSet set;
    set.count = images.count;
    set.height = images.height;
    set.width = images.width;
    set.channels = 1;  // IDX images are grey, so NHWC with one channel is the stored order.
    set.pixels = std::move(images.pixels);
    set.labels.assign(labels.begin(), labels.end());
    set.class_names = numbered_class_names(class_count);
    return set;
}

void write_idx_images(const std::string& path, int64_t count, int64_t height, int64_t width, const uint8_t* pixels) {
    if (count < 1 || count > UINT32_MAX || height < 1 || height > max_image_side || width < 1 ||
        width > max_image_side) {
        throw std::invalid_argument(
            fmt::format("write_idx_images: {}: expected 1 to {} images with sides of 1 to {} but got {} images of "
                        "{}x{}",
                        path, UINT32_MAX, max_image_side, count, height, width));
    }
    detail::write_file_atomically(path, [&](std::ostream& stream) {
        write_big_endian_u32(stream, image_magic);
        write_big_endian_u32(stream, static_cast<uint32_t>(count));
        write_big_endian_u32(stream, static_cast<uint32_t>(height));
        write_big_endian_u32(stream, static_cast<uint32_t>(width));
        stream.write(reinterpret_cast<const char*>(pixels), static_cast<std::streamsize>(count * height * width));
    });
}

void write_idx_labels(const std::string& path, const std::vector<uint8_t>& labels) {
    if (labels.empty() || labels.size() > UINT32_MAX) {
        throw std::invalid_argument(
            fmt::format("write_idx_labels: {}: expected 1 to {} labels but got {}", path, UINT32_MAX, labels.size()));
    }
    detail::write_file_atomically(path, [&](std::ostream& stream) {
        write_big_endian_u32(stream, label_magic);
        write_big_endian_u32(stream, static_cast<uint32_t>(labels.size()));
        stream.write(reinterpret_cast<const char*>(labels.data()), static_cast<std::streamsize>(labels.size()));
    });
}

}  // namespace convgen::runtime
