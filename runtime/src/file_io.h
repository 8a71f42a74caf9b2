// File helpers shared by the loaders and writers; every failure is a DataError naming the file.
#pragma once

#include <cstdint>
#include <fstream>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

namespace convgen::runtime::detail {

// An open file whose size is known before anything is read, so every read can be checked
// against what a header promises.
struct OpenFile {
    std::ifstream stream;
    int64_t size = 0;
};

OpenFile open_file(const std::string& path);

// Reads byte_count bytes; a short read means the file changed or the disk failed.
void read_exactly(OpenFile& file, const std::string& path, uint8_t* destination, int64_t byte_count);

std::vector<uint8_t> read_whole_file(const std::string& path);

// Writes through a temporary file beside `path` and renames it over `path`, so a reader never
// sees half a file and a failed write leaves any earlier file in place.
void write_file_atomically(const std::string& path, const std::function<void(std::ostream&)>& write);

}  // namespace convgen::runtime::detail
