#include "convgen/runtime/image_folder.h"

#include "file_io.h"

#include <fmt/format.h>

// stb_image v2.30 with only the readers the folder layout promises, compiled here with static
// linkage so that it stays private to this file (why a copy: third_party/stb/README.md).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#include "../third_party/stb/stb_image.h"
#pragma GCC diagnostic pop

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <thread>

namespace convgen::runtime {
namespace {

namespace fs = std::filesystem;

bool has_image_extension(const fs::path& path) {
    std::string extension = path.extension().string();
    std::transform(extension.begin(), extension.end(), extension.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return extension == ".jpg" || extension == ".jpeg" || extension == ".png" || extension == ".bmp";
}

// "PNG", "JPEG" or "BMP" by the file's signature, judged before stb_image sees the bytes so that a
// stray file (a GIF named .png, a text file) is reported for what it is.
std::optional<const char*> image_format(const uint8_t* bytes, size_t size) {
    static const uint8_t png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    static const uint8_t jpeg[] = {0xFF, 0xD8, 0xFF};
    const auto starts_with = [&](const uint8_t* signature, size_t length) {
        return size >= length && std::memcmp(bytes, signature, length) == 0;
    };
    if (starts_with(png, sizeof png)) return "PNG";
    if (starts_with(jpeg, sizeof jpeg)) return "JPEG";
    if (size >= 2 && bytes[0] == 'B' && bytes[1] == 'M') return "BMP";
    return std::nullopt;
}

const char* check_format(const uint8_t* bytes, size_t size, const std::string& name) {
    if (const auto format = image_format(bytes, size)) return *format;
    if (size == 0) throw DataError(fmt::format("{}: an empty file; expected a PNG, JPEG or BMP image", name));
    std::string first;
    for (size_t i = 0; i < std::min<size_t>(size, 8); i++) first += fmt::format("{}{:02X}", i ? " " : "", bytes[i]);
    throw DataError(fmt::format("{}: not a PNG, JPEG or BMP image (it starts with the bytes {})", name, first));
}

// stb_image's reason for the last failure on this thread. Some of its messages for cut-off files
// are fragments of a chunk name, so those are replaced by a plain description.
std::string decoder_reason() {
    const std::string reason = stbi_failure_reason() ? stbi_failure_reason() : "";
    const bool readable = reason.size() >= 4 &&
                          std::all_of(reason.begin(), reason.end(), [](unsigned char c) { return std::isprint(c); });
    return readable ? reason : "truncated or corrupt data";
}

// Checks a header's size against the limits and the expected size; says what is wrong, if anything.
std::optional<std::string> size_problem(int64_t height, int64_t width, int64_t expected_height,
                                        int64_t expected_width) {
    if (height < 1 || width < 1 || height > max_decoded_side || width > max_decoded_side) {
        return fmt::format("height {} and width {} but sides must be 1 to {}", height, width, max_decoded_side);
    }
    if (expected_height != 0 && (height != expected_height || width != expected_width)) {
        return fmt::format("height {} and width {} but expected height {} and width {}", height, width, expected_height,
                           expected_width);
    }
    return std::nullopt;
}

void check_channels(int channels) {
    if (channels < 1 || channels > 4) {
        throw std::invalid_argument(fmt::format("image channels must be 1, 2, 3 or 4 but are {}", channels));
    }
}

// Reads as much of the file as stb_image needs to learn the image's size.
ImageSize read_header(const std::string& path) {
    std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
    if (!file) throw DataError(fmt::format("{}: cannot open for reading: {}", path, std::strerror(errno)));
    uint8_t signature[8];
    const size_t read = std::fread(signature, 1, sizeof signature, file.get());
    const char* format = check_format(signature, read, path);
    std::rewind(file.get());
    int width = 0, height = 0, stored_channels = 0;
    if (!stbi_info_from_file(file.get(), &width, &height, &stored_channels)) {
        throw DataError(fmt::format("{}: cannot read the {} header: {}", path, format, decoder_reason()));
    }
    return {height, width};
}

// Runs work(index) for every index in [0, count) on `threads` threads. If any throw, the
// exception of the lowest index is rethrown once all have finished, so the error reported does
// not depend on timing.
template <typename Work>
void parallel_for(int64_t count, int threads, const Work& work) {
    std::atomic<int64_t> next{0};
    std::vector<std::exception_ptr> errors(static_cast<size_t>(threads));
    std::vector<int64_t> error_index(static_cast<size_t>(threads), std::numeric_limits<int64_t>::max());
    const auto run = [&](size_t thread) {
        for (int64_t index = next++; index < count; index = next++) {
            try {
                work(index);
            } catch (...) {
                if (index < error_index[thread]) {
                    error_index[thread] = index;
                    errors[thread] = std::current_exception();
                }
            }
        }
    };
    std::vector<std::thread> pool;
    for (int thread = 1; thread < threads; thread++) pool.emplace_back(run, static_cast<size_t>(thread));
    run(0);
    for (auto& thread : pool) thread.join();
    const auto first = std::min_element(error_index.begin(), error_index.end()) - error_index.begin();
    if (errors[static_cast<size_t>(first)]) std::rethrow_exception(errors[static_cast<size_t>(first)]);
}

bool hidden(const fs::path& path) {
    return path.filename().string().rfind('.', 0) == 0;
}

// A DataError's message is "<path>: <reason>"; SkippedFile keeps the two apart.
SkippedFile skipped_file(const std::string& path, const std::string& message) {
    const auto prefix = path + ": ";
    const bool prefixed = message.compare(0, prefix.size(), prefix) == 0;
    return {path, prefixed ? message.substr(prefix.size()) : message};
}

int thread_count(int requested) {
    if (requested < 0)
        throw std::invalid_argument(fmt::format("image folder threads must be 0 or more but are {}", requested));
    if (requested > 0) return requested;
    return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace

ImageSize read_image_size(const uint8_t* bytes, size_t size, const std::string& name) {
    const char* format = check_format(bytes, size, name);
    if (size > static_cast<size_t>(std::numeric_limits<int>::max())) {
        throw DataError(fmt::format("{}: {} bytes; images above 2 GiB are not accepted", name, size));
    }
    int width = 0, height = 0, stored_channels = 0;
    if (!stbi_info_from_memory(bytes, static_cast<int>(size), &width, &height, &stored_channels)) {
        throw DataError(fmt::format("{}: cannot read the {} header: {}", name, format, decoder_reason()));
    }
    if (auto why = size_problem(height, width, 0, 0)) throw DataError(fmt::format("{}: {}", name, *why));
    return {height, width};
}

DecodedImage decode_image(const uint8_t* bytes, size_t size, const std::string& name, int channels,
                          int64_t expected_height, int64_t expected_width) {
    check_channels(channels);
    const auto header = read_image_size(bytes, size, name);
    if (auto why = size_problem(header.height, header.width, expected_height, expected_width)) {
        throw DataError(fmt::format("{}: {}", name, *why));
    }
    int width = 0, height = 0, stored_channels = 0;
    std::unique_ptr<stbi_uc, void (*)(void*)> pixels(
        stbi_load_from_memory(bytes, static_cast<int>(size), &width, &height, &stored_channels, channels),
        &stbi_image_free);
    if (!pixels) {
        throw DataError(
            fmt::format("{}: cannot decode the {} data: {}", name, *image_format(bytes, size), decoder_reason()));
    }
    if (height != header.height || width != header.width) {
        throw DataError(fmt::format("{}: decoded to height {} and width {} but the header says height {} and width {}",
                                    name, height, width, header.height, header.width));
    }
    DecodedImage image{height, width, channels, {}};
    image.pixels.assign(pixels.get(), pixels.get() + static_cast<int64_t>(height) * width * channels);
    return image;
}

ImageFolderSource::ImageFolderSource(const std::string& root, const ImageFolderOptions& options)
    : channels_(options.channels), threads_(thread_count(options.threads)) {
    check_channels(options.channels);
    if ((options.height == 0) != (options.width == 0) || options.height < 0 || options.width < 0) {
        throw std::invalid_argument(fmt::format(
            "image folder height and width must both be 0 (take the first image's) or both positive, but are {} and {}",
            options.height, options.width));
    }
    std::error_code error;
    if (!fs::is_directory(root, error)) {
        throw DataError(
            fmt::format("{}: not a folder; expected a folder with one subfolder of images per class", root));
    }
    std::vector<fs::path> class_folders;
    for (const auto& entry : fs::directory_iterator(root, error)) {
        if (entry.is_directory() && !hidden(entry.path())) class_folders.push_back(entry.path());
    }
    if (error) throw DataError(fmt::format("{}: cannot list the folder: {}", root, error.message()));
    if (class_folders.empty()) {
        throw DataError(fmt::format("{}: no class folders; expected one subfolder of images per class", root));
    }
    std::sort(class_folders.begin(), class_folders.end());

    for (const auto& folder : class_folders) {
        std::vector<std::string> paths;
        for (const auto& entry : fs::directory_iterator(folder, error)) {
            if (entry.is_regular_file() && !hidden(entry.path()) && has_image_extension(entry.path())) {
                paths.push_back(entry.path().string());
            }
        }
        if (error) throw DataError(fmt::format("{}: cannot list the folder: {}", folder.string(), error.message()));
        if (paths.empty()) {
            throw DataError(fmt::format("{}: class folder without images; expected .jpg, .jpeg, .png or .bmp files",
                                        folder.string()));
        }
        std::sort(paths.begin(), paths.end());
        const auto label = static_cast<int32_t>(class_names_.size());
        for (auto& path : paths) files_.push_back({std::move(path), label});
        class_names_.push_back(folder.filename().string());
    }

    // Headers in parallel; what is wrong with each file is judged afterwards, in file order, so the
    // size taken from "the first image" and the error reported do not depend on timing.
    std::vector<ImageSize> headers(files_.size());
    std::vector<std::string> problems(files_.size());
    parallel_for(count(), threads_, [&](int64_t index) {
        const auto i = static_cast<size_t>(index);
        try {
            headers[i] = read_header(files_[i].path);
        } catch (const DataError& header_error) {
            problems[i] = header_error.what();
        }
    });
    height_ = options.height;
    width_ = options.width;
    std::vector<File> kept;
    std::string size_source = "the size set in ImageFolderOptions";
    for (size_t i = 0; i < files_.size(); i++) {
        if (problems[i].empty()) {
            if (auto why = size_problem(headers[i].height, headers[i].width, height_, width_)) {
                problems[i] = fmt::format("{}: {} ({})", files_[i].path, *why, size_source);
            } else if (height_ == 0) {
                height_ = headers[i].height;
                width_ = headers[i].width;
                size_source = "the size of the first image, " + files_[i].path;
            }
        }
        if (problems[i].empty()) {
            kept.push_back(std::move(files_[i]));
        } else if (options.skip_malformed) {
            skipped_.push_back(skipped_file(files_[i].path, problems[i]));
        } else {
            throw DataError(problems[i]);
        }
    }
    files_ = std::move(kept);
    if (files_.empty()) {
        throw DataError(fmt::format("{}: no readable images; all {} files were skipped", root, skipped_.size()));
    }
}

int32_t ImageFolderSource::label(int64_t sample) const {
    return files_.at(static_cast<size_t>(sample)).label;
}

const std::string& ImageFolderSource::path(int64_t sample) const {
    return files_.at(static_cast<size_t>(sample)).path;
}

void ImageFolderSource::read(int64_t sample, uint8_t* pixels) const {
    const auto& path = files_.at(static_cast<size_t>(sample)).path;
    const auto bytes = detail::read_whole_file(path);
    const auto image = decode_image(bytes.data(), bytes.size(), path, static_cast<int>(channels_), height_, width_);
    std::copy(image.pixels.begin(), image.pixels.end(), pixels);
}

ImageSet load_image_folder(const std::string& root, const ImageFolderOptions& options,
                           std::vector<SkippedFile>* skipped) {
    const ImageFolderSource source(root, options);
    const int64_t image_size = source.image_size();
    ImageSet set;
    set.height = source.height();
    set.width = source.width();
    set.channels = source.channels();
    set.class_names = source.class_names();
    set.pixels.resize(static_cast<size_t>(source.count() * image_size));
    std::vector<std::string> problems(static_cast<size_t>(source.count()));
    parallel_for(source.count(), source.threads(), [&](int64_t sample) {
        try {
            source.read(sample, set.pixels.data() + sample * image_size);
        } catch (const DataError& error) {
            if (!options.skip_malformed) throw;
            problems[static_cast<size_t>(sample)] = error.what();
        }
    });

    // Compacts the decoded images over the gaps left by the ones that failed.
    std::vector<SkippedFile> all_skipped = source.skipped();
    for (int64_t sample = 0; sample < source.count(); sample++) {
        const auto& problem = problems[static_cast<size_t>(sample)];
        if (!problem.empty()) {
            all_skipped.push_back(skipped_file(source.path(sample), problem));
            continue;
        }
        if (set.count != sample) {
            std::copy_n(set.pixels.begin() + sample * image_size, image_size,
                        set.pixels.begin() + set.count * image_size);
        }
        set.labels.push_back(source.label(sample));
        set.count++;
    }
    set.pixels.resize(static_cast<size_t>(set.count * image_size));
    if (set.count == 0) {
        throw DataError(fmt::format("{}: no readable images; all {} files were skipped", root, all_skipped.size()));
    }
    std::sort(all_skipped.begin(), all_skipped.end(),
              [](const SkippedFile& a, const SkippedFile& b) { return a.path < b.path; });
    if (skipped) *skipped = std::move(all_skipped);
    return set;
}

}  // namespace convgen::runtime
