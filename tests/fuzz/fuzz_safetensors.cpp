// libFuzzer entry point for the safetensors parser that generated libraries embed.
// Build and run (clang 14); libFuzzer writes new inputs into the first directory, so give it a
// scratch one and the seeds second:
//   clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined
//       tests/fuzz/fuzz_safetensors.cpp -o fuzz_safetensors
//   mkdir -p /tmp/safetensors_corpus
//   ./fuzz_safetensors -max_total_time=60 /tmp/safetensors_corpus tests/fuzz/corpus/safetensors
// The seeds are files from safetensors_write, plus header_text_*.bin for the second reading of
// each input below (first byte: data buffer size; the rest: header text).
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <limits>
#include <map>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <utility>
#include <vector>

namespace {

#include "../../codegen/library/safetensors.inc"

// What was accepted must hold together: every tensor inside the buffer, sized by its shape,
// and the tensors covering the buffer exactly.
void check_accepted(const SafetensorsFile& file) {
    uint64_t covered = 0;
    for (const auto& tensor : file.tensors) {
        const SafetensorsEntry& entry = tensor.second;
        uint64_t needed = 0;
        if (entry.end < entry.begin || entry.end > file.data.size() ||
            !safetensors_byte_count(safetensors_dtype_size(entry.dtype), entry.shape, needed) ||
            needed != entry.end - entry.begin) {
            std::abort();
        }
        covered += needed;
    }
    if (covered != file.data.size()) {
        std::abort();
    }
}

void parse_and_check(const std::vector<uint8_t>& image) {
    SafetensorsFile file;
    std::string error;
    if (safetensors_parse(image.data(), image.size(), file, error)) {
        check_accepted(file);
    } else if (error.empty()) {
        std::abort(); // every rejection must say why
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
    // The input as a whole file, copied to an exact-size buffer so AddressSanitizer flags any
    // read past its end.
    parse_and_check(std::vector<uint8_t>(bytes, bytes + size));

    // The input as header text behind a matching length prefix (its first byte the data
    // buffer's size), so mutations reach the JSON and layout checks without having to keep
    // the 8-byte length in step.
    if (size > 0) {
        std::vector<uint8_t> image;
        const uint64_t header_size = size - 1;
        for (int i = 0; i < 8; ++i) {
            image.push_back(static_cast<uint8_t>(header_size >> (8 * i)));
        }
        image.insert(image.end(), bytes + 1, bytes + size);
        image.resize(image.size() + bytes[0], 0x5a);
        parse_and_check(image);
    }
    return 0;
}
