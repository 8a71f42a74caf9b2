// What the runtime tests share: a scratch folder per test and a way to catch a DataError's message.
#pragma once

#include <convgen/runtime/dataset.h>
#include <convgen/runtime/image_folder.h>

#include <doctest/doctest.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace convgen::runtime::testing {

// A fresh directory for one test's files, removed with its contents when the test ends.
class TemporaryDirectory {
  public:
    TemporaryDirectory() {
        auto pattern = (std::filesystem::temp_directory_path() / "convgen-test-runtime-XXXXXX").string();
        if (mkdtemp(pattern.data()) == nullptr) {
            throw std::runtime_error("cannot create a temporary directory from " + pattern);
        }
        path_ = pattern;
    }
    ~TemporaryDirectory() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    TemporaryDirectory(const TemporaryDirectory&) = delete;
    TemporaryDirectory& operator=(const TemporaryDirectory&) = delete;

    // Writes `bytes` to `name` (a path relative to the directory; missing folders are made).
    std::string write(const std::string& name, const std::vector<uint8_t>& bytes) const {
        const auto file_path = path_ / name;
        std::filesystem::create_directories(file_path.parent_path());
        std::ofstream file(file_path, std::ios::binary);
        file.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
        REQUIRE(file.good());
        return file_path.string();
    }

    std::string write_text(const std::string& name, const std::string& text) const {
        return write(name, std::vector<uint8_t>(text.begin(), text.end()));
    }

    std::string make_folder(const std::string& name) const {
        std::filesystem::create_directories(path_ / name);
        return path_of(name);
    }

    std::string path_of(const std::string& name) const { return (path_ / name).string(); }

  private:
    std::filesystem::path path_;
};

// The message of the DataError that calling function throws; fails the test if none is thrown.
template <typename Function>
std::string data_error_message(Function function) {
    try {
        function();
    } catch (const DataError& error) {
        return error.what();
    }
    FAIL("expected a convgen::runtime::DataError, but nothing was thrown");
    return {};
}

inline std::vector<uint8_t> read_bytes(const std::string& path) {
    std::ifstream file(path, std::ios::binary);
    REQUIRE(file.good());
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

// A PNG the runtime wrote, decoded back with `channels` channels.
inline DecodedImage read_png(const std::string& path, int channels) {
    const auto bytes = read_bytes(path);
    return decode_image(bytes.data(), bytes.size(), path, channels);
}

}  // namespace convgen::runtime::testing
