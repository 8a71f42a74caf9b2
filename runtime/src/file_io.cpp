#include "file_io.h"

#include "convgen/runtime/dataset.h"

#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

namespace convgen::runtime::detail {

OpenFile open_file(const std::string& path) {
    std::error_code error;
    const auto size = std::filesystem::file_size(path, error);
    if (error) {
        throw DataError(fmt::format("{}: cannot read: {}", path, error.message()));
    }
    OpenFile file{std::ifstream(path, std::ios::binary), static_cast<int64_t>(size)};
    if (!file.stream) {
        throw DataError(fmt::format("{}: cannot open for reading: {}", path, std::strerror(errno)));
    }
    return file;
}

void read_exactly(OpenFile& file, const std::string& path, uint8_t* destination, int64_t byte_count) {
    file.stream.read(reinterpret_cast<char*>(destination), static_cast<std::streamsize>(byte_count));
    const auto bytes_read = static_cast<int64_t>(file.stream.gcount());
    if (bytes_read != byte_count) {
        throw DataError(fmt::format("{}: read failed: expected {} bytes but got {}", path, byte_count, bytes_read));
    }
}

std::vector<uint8_t> read_whole_file(const std::string& path) {
    auto file = open_file(path);
    std::vector<uint8_t> bytes(static_cast<size_t>(file.size));
    read_exactly(file, path, bytes.data(), file.size);
    return bytes;
}

void write_file_atomically(const std::string& path, const std::function<void(std::ostream&)>& write) {
    // A name no other writer uses (pid and a per-process counter); ofstream then creates it with
    // the usual permissions, which mkstemp's 0600 would not give.
    static std::atomic<uint64_t> writes{0};
    const std::string temporary = fmt::format("{}.tmp-{}-{}", path, getpid(), writes++);
    try {
        {
            std::ofstream stream(temporary, std::ios::binary | std::ios::trunc);
            if (!stream) {
                throw DataError(
                    fmt::format("{}: cannot create a temporary file beside it: {}", path, std::strerror(errno)));
            }
            write(stream);
            stream.close();
            if (stream.fail()) {
                throw DataError(fmt::format("{}: write failed (is the disk full?)", path));
            }
        }
        std::error_code error;
        std::filesystem::rename(temporary, path, error);
        if (error) {
            throw DataError(fmt::format("{}: cannot rename {} over it: {}", path, temporary, error.message()));
        }
    } catch (...) {
        std::remove(temporary.c_str());
        throw;
    }
}

}  // namespace convgen::runtime::detail
