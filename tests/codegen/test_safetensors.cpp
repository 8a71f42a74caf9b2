// The safetensors reader and writer that every generated library embeds, tested as the generator
// pastes it: after the same standard includes, inside a namespace of its own.
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

namespace st_test {
#include "../../codegen/library/safetensors.inc"
}

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

namespace {

using namespace st_test;
namespace fs = std::filesystem;

// A fresh directory under the system temp directory, removed with everything in it.
struct TemporaryDirectory {
    fs::path path;
    TemporaryDirectory() {
        std::string pattern = (fs::temp_directory_path() / "convgen_safetensors_XXXXXX").string();
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        path = pattern;
    }
    ~TemporaryDirectory() {
        std::error_code ignored;
        fs::remove_all(path, ignored);
    }
    std::string operator/(const std::string& name) const {
        return (path / name).string();
    }
};

std::vector<uint8_t> read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE(in);
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    REQUIRE(out);
}

std::vector<std::string> directory_entries(const fs::path& directory) {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(directory)) {
        names.push_back(entry.path().filename().string());
    }
    return names;
}

bool has_temporary_file(const fs::path& directory) {
    for (const std::string& name : directory_entries(directory)) {
        if (name.find(".tmp.") != std::string::npos) {
            return true;
        }
    }
    return false;
}

// A file image: little-endian header length, the header text, then `data_size` bytes.
std::vector<uint8_t> file_image(const std::string& header, size_t data_size) {
    std::vector<uint8_t> bytes;
    for (int i = 0; i < 8; ++i) {
        bytes.push_back(static_cast<uint8_t>(static_cast<uint64_t>(header.size()) >> (8 * i)));
    }
    bytes.insert(bytes.end(), header.begin(), header.end());
    for (size_t i = 0; i < data_size; ++i) {
        bytes.push_back(static_cast<uint8_t>(i * 7));
    }
    return bytes;
}

// The parser's message for an image it must reject.
std::string rejection(const std::vector<uint8_t>& image) {
    SafetensorsFile file;
    std::string error;
    const bool parsed = safetensors_parse(image.data(), image.size(), file, error);
    CHECK_FALSE(parsed);
    CHECK_FALSE(error.empty());
    return error;
}

std::string rejection(const std::string& header, size_t data_size) {
    return rejection(file_image(header, data_size));
}

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

uint32_t float_bits(float value) {
    uint32_t bits = 0;
    std::memcpy(&bits, &value, sizeof bits);
    return bits;
}

float float_from_bits(uint32_t bits) {
    float value = 0;
    std::memcpy(&value, &bits, sizeof value);
    return value;
}

// A small valid file: F32 [2, 3] and I64 [2], with metadata.
std::vector<uint8_t> small_valid_file(const TemporaryDirectory& directory) {
    const std::vector<float> weight = {1, 2, 3, 4, 5, 6};
    const std::vector<int64_t> steps = {7, -8};
    const std::string path = directory / "small.safetensors";
    std::string error;
    REQUIRE_MESSAGE(safetensors_write(path,
                                      {{"w", "F32", {2, 3}, weight.data(), 24},
                                       {"steps", "I64", {2}, steps.data(), 16}},
                                      {{"format", "pt"}}, error),
                    error);
    return read_bytes(path);
}

bool python_available() {
    return std::system("/usr/bin/python3 -c 'import json, struct' >/dev/null 2>&1") == 0;
}

TEST_CASE("safetensors round trip is bit-exact for F32 NaN payloads, denormals and I64") {
    TemporaryDirectory directory;
    const std::vector<float> weight = {
        float_from_bits(0x7fc12345), // quiet NaN with a payload
        float_from_bits(0xffa00001), // negative signalling NaN with a payload
        float_from_bits(0x00000001), // smallest denormal
        float_from_bits(0x807fffff), // largest negative denormal
        -0.0f,
        std::numeric_limits<float>::infinity(),
        std::numeric_limits<float>::max(),
        1.0f / 3.0f,
    };
    const std::vector<int64_t> counts = {std::numeric_limits<int64_t>::min(), -1, 0,
                                         std::numeric_limits<int64_t>::max()};
    const std::vector<int32_t> labels = {-5, 70000};
    const std::vector<uint8_t> pixels = {0, 255, 128};
    const float scale = 0.5f;
    const std::string path = directory / "model.safetensors";
    std::string error;
    REQUIRE_MESSAGE(safetensors_write(path,
                                      {{"conv1.weight", "F32", {2, 1, 2, 2}, weight.data(), 32},
                                       {"counts", "I64", {4}, counts.data(), 32},
                                       {"labels", "I32", {2}, labels.data(), 8},
                                       {"pixels", "U8", {1, 3}, pixels.data(), 3},
                                       {"scale", "F32", {}, &scale, 4},
                                       {"empty", "F32", {0, 3}, nullptr, 0}},
                                      {{"format", "pt"}, {"epoch", "3"}}, error),
                    error);
    CHECK_FALSE(has_temporary_file(directory.path));

    SafetensorsFile file;
    REQUIRE_MESSAGE(safetensors_read(path, file, error), error);
    REQUIRE(file.tensors.size() == 6);
    CHECK(file.metadata == std::map<std::string, std::string>{{"format", "pt"}, {"epoch", "3"}});

    const SafetensorsEntry& conv = file.tensors.at("conv1.weight");
    CHECK(conv.dtype == "F32");
    CHECK(conv.shape == std::vector<int64_t>{2, 1, 2, 2});
    REQUIRE(conv.end - conv.begin == 32);
    std::vector<uint32_t> read_bits(8);
    std::memcpy(read_bits.data(), file.data.data() + conv.begin, 32);
    for (size_t i = 0; i < weight.size(); ++i) {
        CHECK(read_bits[i] == float_bits(weight[i]));
    }

    const SafetensorsEntry& count_entry = file.tensors.at("counts");
    CHECK(count_entry.dtype == "I64");
    std::vector<int64_t> read_counts(4);
    std::memcpy(read_counts.data(), file.data.data() + count_entry.begin, 32);
    CHECK(read_counts == counts);

    const SafetensorsEntry& label_entry = file.tensors.at("labels");
    CHECK(label_entry.dtype == "I32");
    CHECK(std::memcmp(file.data.data() + label_entry.begin, labels.data(), 8) == 0);
    const SafetensorsEntry& pixel_entry = file.tensors.at("pixels");
    CHECK(pixel_entry.shape == std::vector<int64_t>{1, 3});
    CHECK(std::memcmp(file.data.data() + pixel_entry.begin, pixels.data(), 3) == 0);
    CHECK(file.tensors.at("scale").shape.empty());
    CHECK(std::memcmp(file.data.data() + file.tensors.at("scale").begin, &scale, 4) == 0);
    CHECK(file.tensors.at("empty").begin == file.tensors.at("empty").end);
    CHECK(file.data.size() == 32 + 32 + 8 + 3 + 4);

    // The in-memory parser sees the same file.
    const std::vector<uint8_t> bytes = read_bytes(path);
    SafetensorsFile parsed;
    REQUIRE_MESSAGE(safetensors_parse(bytes.data(), bytes.size(), parsed, error), error);
    CHECK(parsed.data == file.data);
    CHECK(parsed.metadata == file.metadata);
}

TEST_CASE("safetensors writer lays tensors out in the order given, after a header padded to 8") {
    TemporaryDirectory directory;
    const std::vector<uint8_t> three = {1, 2, 3};
    const float one = 1;
    const std::string path = directory / "order.safetensors";
    std::string error;
    REQUIRE_MESSAGE(safetensors_write(path,
                                      {{"z_first", "U8", {3}, three.data(), 3},
                                       {"a_second", "F32", {1}, &one, 4}},
                                      {}, error),
                    error);
    const std::vector<uint8_t> bytes = read_bytes(path);
    uint64_t header_size = 0;
    for (int i = 7; i >= 0; --i) {
        header_size = (header_size << 8) | bytes[static_cast<size_t>(i)];
    }
    CHECK(header_size % 8 == 0);
    REQUIRE(bytes.size() == 8 + header_size + 7);
    const std::string header(bytes.begin() + 8, bytes.begin() + 8 + static_cast<long>(header_size));
    CHECK(header.front() == '{');
    const size_t close = header.rfind('}');
    CHECK(header.find_first_not_of(' ', close + 1) == std::string::npos);
    CHECK_FALSE(contains(header, "__metadata__")); // none given, none written

    SafetensorsFile file;
    REQUIRE_MESSAGE(safetensors_parse(bytes.data(), bytes.size(), file, error), error);
    CHECK(file.tensors.at("z_first").begin == 0);
    CHECK(file.tensors.at("z_first").end == 3);
    CHECK(file.tensors.at("a_second").begin == 3);
    CHECK(file.tensors.at("a_second").end == 7);
}

TEST_CASE(
    "safetensors names and metadata with quotes, controls and non-ASCII survive a round trip") {
    TemporaryDirectory directory;
    const std::string name = "block \"1\"\\conv/\n\t\x01 caf\xc3\xa9 \xf0\x9f\x98\x80";
    const uint8_t byte = 9;
    const std::string path = directory / "names.safetensors";
    std::string error;
    REQUIRE_MESSAGE(safetensors_write(path, {{name, "U8", {1}, &byte, 1}},
                                      {{name, "value \"quoted\"\r\n"}}, error),
                    error);
    SafetensorsFile file;
    REQUIRE_MESSAGE(safetensors_read(path, file, error), error);
    CHECK(file.tensors.count(name) == 1);
    CHECK(file.metadata.at(name) == "value \"quoted\"\r\n");
}

TEST_CASE("safetensors parser decodes every JSON escape, surrogate pairs included") {
    const std::string header =
        R"({"__metadata__":{"k":"\"\\\/\b\f\n\r\t\u0041\u00e9\u20ac\ud83d\ude00"},)"
        R"( "t" : { "shape" : [ ] , "dtype" : "U8" , "data_offsets" : [ 0 , 1 ] } })";
    const std::vector<uint8_t> image = file_image(header, 1);
    SafetensorsFile file;
    std::string error;
    REQUIRE_MESSAGE(safetensors_parse(image.data(), image.size(), file, error), error);
    CHECK(file.metadata.at("k") == "\"\\/\b\f\n\r\tA\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    CHECK(file.tensors.at("t").shape.empty());
}

TEST_CASE("safetensors parser rejects every truncated prefix of a valid file") {
    TemporaryDirectory directory;
    const std::vector<uint8_t> bytes = small_valid_file(directory);
    for (size_t length = 0; length < bytes.size(); ++length) {
        CAPTURE(length);
        // A copy of exactly `length` bytes, so AddressSanitizer sees any over-read.
        const std::vector<uint8_t> prefix(bytes.begin(), bytes.begin() + static_cast<long>(length));
        SafetensorsFile file;
        std::string error;
        CHECK_FALSE(safetensors_parse(prefix.data(), prefix.size(), file, error));
        CHECK_FALSE(error.empty());
        CHECK(file.tensors.empty());
    }
    CHECK(rejection(std::vector<uint8_t>(bytes.begin(), bytes.begin() + 7)) ==
          "file has 7 bytes, fewer than the 8-byte header length prefix");
    CHECK(contains(rejection(std::vector<uint8_t>(bytes.begin(), bytes.end() - 1)),
                   "tensor 'steps': data_offsets [24, 40] reach past the 39-byte data buffer"));

    const std::string path = directory / "truncated.safetensors";
    write_bytes(path, std::vector<uint8_t>(bytes.begin(), bytes.begin() + 20));
    SafetensorsFile file;
    std::string error;
    CHECK_FALSE(safetensors_read(path, file, error));
    CHECK(error.rfind(path + ": header length ", 0) == 0);
}

TEST_CASE("safetensors parser rejects a header length beyond the file or the 100 MB limit") {
    std::vector<uint8_t> image = file_image("{}", 0);
    image[0] = 200;
    CHECK(rejection(image) ==
          "header length 200 exceeds the 2 bytes after the 8-byte length prefix");
    for (int i = 0; i < 8; ++i) {
        image[static_cast<size_t>(i)] = 0xff;
    }
    CHECK(rejection(image) ==
          "header length 18446744073709551615 exceeds the limit of 100000000 bytes");
}

TEST_CASE("safetensors parser rejects broken JSON, saying what it expected and found") {
    const std::string tensor = R"("t":{"dtype":"U8","shape":[1],"data_offsets":[0,1]})";
    struct Case {
        std::string header;
        std::string message;
    };
    const std::vector<Case> cases = {
        {"", "expected the header to start with '{', found the end of the header (header byte 0)"},
        {" {}", "expected the header to start with '{', found ' '"},
        {"[]", "expected the header to start with '{', found '['"},
        {"{" + tensor, "expected ',' or '}' between header entries, found the end of the header"},
        {"{" + tensor + ",}", "expected a tensor name or \"__metadata__\", found '}'"},
        {"{" + tensor + "} x",
         "expected only whitespace after the header's closing '}', found 'x'"},
        {"{" + tensor + std::string("}\0", 2), "found byte 0x00"},
        {"{" + tensor + "," + tensor + "}", "duplicate key 't' (header byte 53)"},
        {"{\"t\" " + tensor.substr(4) + "}", "expected ':' after the key, found '{'"},
        {R"({"t":{"dtype":"U8)", "unterminated string (a dtype string) (header byte 14)"},
        {R"({"t)", "unterminated string"},
        {R"({"t":{"dtype":"U8\)", "unterminated string"},
        {R"({"t":{"dtype":"U8\x"}})", "expected an escape"},
        {R"({"t":{"dtype":"\u12"}})", "expected 4 hex digits after \\u, found '\"'"},
        {R"({"t":{"dtype":"\ud800"}})", "high surrogate without a \\u low surrogate"},
        {R"({"t":{"dtype":"\ud800\u0041"}})", "not a low surrogate"},
        {R"({"t":{"dtype":"\udc00"}})", "low surrogate without a high surrogate"},
        {"{\"t\":{\"dtype\":\"U8\n\"}}", "control byte in string"},
        {"{\"t\xff\":{}}", "a tensor name or \"__metadata__\" is not valid UTF-8"},
        {"{\"t\xc0\x80\":{}}", "is not valid UTF-8"},         // overlong NUL
        {"{\"t\xed\xa0\x80\":{}}", "is not valid UTF-8"},     // UTF-8 encoded surrogate
        {"{\"t\xf4\x90\x80\x80\":{}}", "is not valid UTF-8"}, // past U+10FFFF
        {"{\"t\xe2\x82\":{}}", "is not valid UTF-8"},         // cut short
        {R"({"t":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}})",
         "tensor 't': expected '{' starting the tensor's {dtype, shape, data_offsets}, found '['"},
        {R"({"t":{"dtype":"U8","shape":[[1]],"data_offsets":[0,1]}})",
         "tensor 't': expected a shape dimension (a non-negative integer), found '['"},
        {R"({"t":{"dtype":"U8","shape":[1.0],"data_offsets":[0,1]}})",
         "tensor 't': expected a shape dimension (a non-negative integer), found number 1.0"},
        {R"({"t":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}})",
         "tensor 't': expected a shape dimension (a non-negative integer), found number -1"},
        {R"({"t":{"dtype":"U8","shape":[1e0],"data_offsets":[0,1]}})", "found number 1e0"},
        {R"({"t":{"dtype":"U8","shape":[01],"data_offsets":[0,1]}})", "without leading zeros"},
        {R"({"t":{"dtype":"U8","shape":[1,],"data_offsets":[0,1]}})", "found ']'"},
        {R"({"t":{"dtype":"U8","shape":[1 1],"data_offsets":[0,1]}})",
         "expected ',' or ']' in the shape, found number 1"},
        {R"({"t":{"dtype":"U8","shape":[9223372036854775808],"data_offsets":[0,1]}})",
         "shape dimension 9223372036854775808 does not fit in int64"},
        {R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[0,99999999999999999999]}})",
         "data_offsets end does not fit in 64 bits, found number 99999999999999999999"},
        {R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}})",
         "expected ']' after data_offsets [begin, end] (exactly two integers), found ','"},
        {R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[0]}})",
         "expected ',' after data_offsets begin"},
        {R"({"t":{"dtype":"U8","shape":true,"data_offsets":[0,1]}})",
         "expected '[' starting the shape, found true"},
        {R"({"t":{"dtype":null,"shape":[1],"data_offsets":[0,1]}})",
         "expected a dtype string, found null"},
        {R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"extra":1}})",
         "tensor 't': unexpected key 'extra' (expected each of dtype, shape, data_offsets once)"},
        {R"({"t":{"dtype":"U8","dtype":"U8","shape":[1],"data_offsets":[0,1]}})",
         "tensor 't': duplicate key 'dtype'"},
        {R"({"t":{"dtype":"U8","shape":[1]}})", "tensor 't': missing key 'data_offsets'"},
        {R"({"t":{}})", "tensor 't': missing key 'dtype'"},
        {R"({"__metadata__":{"a":1},)" + tensor + "}",
         "__metadata__: 'a': expected a string value, found number 1"},
        {R"({"__metadata__":{"a":{"b":"c"}},)" + tensor + "}",
         "__metadata__: 'a': expected a string value, found '{'"},
        {R"({"__metadata__":{"a":"b","a":"c"},)" + tensor + "}", "__metadata__: duplicate key 'a'"},
        {R"({"__metadata__":["a"],)" + tensor + "}",
         "__metadata__: expected '{' starting the {string: string} metadata, found '['"},
        {R"({"__metadata__":{},"__metadata__":{},)" + tensor + "}", "duplicate key '__metadata__'"},
    };
    for (const Case& test : cases) {
        CAPTURE(test.header);
        const std::string error = rejection(test.header, 1);
        CHECK_MESSAGE(contains(error, test.message), error);
    }
}

TEST_CASE("safetensors parser rejects an unknown dtype") {
    CHECK(rejection(R"({"t":{"dtype":"F31","shape":[1],"data_offsets":[0,4]}})", 4) ==
          "tensor 't': unknown dtype 'F31' (expected one of F64, F32, F16, BF16, I64, I32, I16, "
          "I8, U64, U32, U16, U8, BOOL, F8_E4M3, F8_E5M2)");
}

TEST_CASE("safetensors parser rejects a byte span that does not match dtype and shape") {
    CHECK(rejection(R"({"conv1.weight":{"dtype":"F32","shape":[6,1,5,5],"data_offsets":[0,604]}})",
                    604) ==
          "tensor 'conv1.weight': data_offsets [0, 604] span 604 bytes but F32 shape [6, 1, 5, 5] "
          "needs 600");
    CHECK(rejection(R"({"t":{"dtype":"I64","shape":[4294967296,4294967296],"data_offsets":[0,8]}})",
                    8) ==
          "tensor 't': I64 shape [4294967296, 4294967296] has more than 2^64 bytes");
    CHECK(contains(
        rejection(R"({"t":{"dtype":"U8","shape":[4294967296,4294967296,0],"data_offsets":[0,8]}})",
                  8),
        "needs 0"));
}

TEST_CASE("safetensors parser rejects data offsets outside the data buffer or reversed") {
    CHECK(rejection(R"({"t":{"dtype":"U8","shape":[8],"data_offsets":[4,12]}})", 8) ==
          "tensor 't': data_offsets [4, 12] reach past the 8-byte data buffer after the header");
    CHECK(rejection(R"({"t":{"dtype":"U8","shape":[4],"data_offsets":[8,4]}})", 8) ==
          "tensor 't': data_offsets [8, 4] end before they begin");
    CHECK(rejection(R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[18446744073709551615,0]}})",
                    1) ==
          "tensor 't': data_offsets [18446744073709551615, 0] end before they begin");
}

TEST_CASE("safetensors parser rejects overlapping, gapped or incomplete tensor layouts") {
    CHECK(rejection(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                    R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                    12) == "tensor 'b': data_offsets [4, 12] overlap tensor 'a' at [0, 8]");
    CHECK(rejection(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                    R"("b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                    8) == "tensor 'b': data_offsets [0, 8] overlap tensor 'a' at [0, 8]");
    CHECK(rejection(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                    R"("b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})",
                    20) == "tensor 'b': data_offsets [12, 20] leave bytes [8, 12] unused after "
                           "tensor 'a' (tensors must be contiguous)");
    CHECK(rejection(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}})", 4) ==
          "tensor 'a': data_offsets [2, 4] leave bytes [0, 2] unused at the start of the data "
          "buffer (tensors must be contiguous)");
    CHECK(rejection(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})", 3) ==
          "the tensors cover 2 bytes but the data buffer after the header has 3");
    CHECK(rejection("{}", 1) ==
          "the tensors cover 0 bytes but the data buffer after the header has 1");

    // Zero-size tensors may sit at any boundary, as in the reference implementation.
    const std::vector<uint8_t> image =
        file_image(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                   R"("e":{"dtype":"F32","shape":[0],"data_offsets":[2,2]},)"
                   R"("b":{"dtype":"U8","shape":[1],"data_offsets":[2,3]}})",
                   3);
    SafetensorsFile file;
    std::string error;
    CHECK_MESSAGE(safetensors_parse(image.data(), image.size(), file, error), error);
}

TEST_CASE("safetensors read errors start with the path") {
    TemporaryDirectory directory;
    SafetensorsFile file;
    std::string error;
    const std::string missing = directory / "missing.safetensors";
    CHECK_FALSE(safetensors_read(missing, file, error));
    CHECK(error == missing + ": cannot open: No such file or directory");

    CHECK_FALSE(safetensors_read(directory.path.string(), file, error));
    CHECK(error == directory.path.string() + ": not a regular file");

    const std::string corrupt = directory / "corrupt.safetensors";
    write_bytes(corrupt,
                file_image(R"({"t":{"dtype":"F31","shape":[1],"data_offsets":[0,4]}})", 4));
    CHECK_FALSE(safetensors_read(corrupt, file, error));
    CHECK(error.rfind(corrupt + ": tensor 't': unknown dtype 'F31'", 0) == 0);
}

TEST_CASE("safetensors writer rejects inconsistent tensors and leaves the existing file alone") {
    TemporaryDirectory directory;
    const std::string path = directory / "model.safetensors";
    const std::vector<uint8_t> before = small_valid_file(directory);
    write_bytes(path, before);
    const std::vector<float> four = {1, 2, 3, 4};
    struct Case {
        std::vector<SafetensorsTensorView> tensors;
        std::vector<std::pair<std::string, std::string>> metadata;
        std::string message;
    };
    const std::vector<Case> cases = {
        {{{"w", "F32", {2, 3}, four.data(), 16}},
         {},
         "tensor 'w': byte_size 16 but F32 shape [2, 3] needs 24"},
        {{{"w", "F31", {4}, four.data(), 16}}, {}, "tensor 'w': unknown dtype 'F31'"},
        {{{"w", "F32", {-4}, four.data(), 16}}, {}, "shape [-4] has a negative dimension"},
        {{{"w", "F32", {4}, nullptr, 16}}, {}, "tensor 'w': data is null"},
        {{{"w", "F32", {4}, four.data(), 16}, {"w", "F32", {4}, four.data(), 16}},
         {},
         "tensor 'w': duplicate tensor name"},
        {{{"__metadata__", "F32", {4}, four.data(), 16}}, {}, "name is reserved for metadata"},
        {{{"bad\xff", "F32", {4}, four.data(), 16}}, {}, "name must be valid UTF-8"},
        {{{"w", "F32", {4}, four.data(), 16}},
         {{"k", "a"}, {"k", "b"}},
         "__metadata__: duplicate key 'k'"},
    };
    for (const Case& test : cases) {
        std::string error;
        CHECK_FALSE(safetensors_write(path, test.tensors, test.metadata, error));
        CHECK(error.rfind(path + ": ", 0) == 0);
        CHECK_MESSAGE(contains(error, test.message), error);
        CHECK(read_bytes(path) == before);
    }
    CHECK_FALSE(has_temporary_file(directory.path));
}

TEST_CASE("safetensors write into a missing directory fails with the OS error and no temp file") {
    TemporaryDirectory directory;
    const std::string path = directory / "missing/model.safetensors";
    const float one = 1;
    std::string error;
    CHECK_FALSE(safetensors_write(path, {{"w", "F32", {1}, &one, 4}}, {}, error));
    CHECK(error.rfind(path + ": cannot create temporary file '" + path + ".tmp.", 0) == 0);
    CHECK(contains(error, "No such file or directory"));
    CHECK(directory_entries(directory.path).empty());
}

TEST_CASE("safetensors write that cannot rename removes its temp file") {
    TemporaryDirectory directory;
    // A non-empty directory where the file should go: rename(2) refuses to replace it.
    const std::string path = directory / "model.safetensors";
    fs::create_directory(path);
    write_bytes(path + "/keep", {1, 2, 3});
    const float one = 1;
    std::string error;
    CHECK_FALSE(safetensors_write(path, {{"w", "F32", {1}, &one, 4}}, {}, error));
    CHECK(error.rfind(path + ": cannot rename temporary file '" + path + ".tmp.", 0) == 0);
    CHECK(contains(error, std::strerror(EISDIR)));
    CHECK_FALSE(has_temporary_file(directory.path));
    CHECK(read_bytes(path + "/keep") == std::vector<uint8_t>{1, 2, 3});
}

TEST_CASE("safetensors write on a full file system fails and keeps the previous file") {
    TemporaryDirectory directory;
    const std::string mount_point = directory / "tiny";
    fs::create_directory(mount_point);
    const std::string mount =
        "mount -t tmpfs -o size=64k convgen_test '" + mount_point + "' >/dev/null 2>&1";
    if (std::system(mount.c_str()) != 0) {
        MESSAGE("skipped: cannot mount a 64 KiB tmpfs here (needs root), so no ENOSPC test");
        return;
    }
    struct Unmount {
        std::string command;
        ~Unmount() {
            if (std::system(command.c_str()) != 0) {
                std::fprintf(stderr, "warning: %s failed\n", command.c_str());
            }
        }
    } unmount{"umount '" + mount_point + "'"};

    const std::string path = mount_point + "/model.safetensors";
    const std::vector<float> small(256, 1.5f);
    std::string error;
    REQUIRE_MESSAGE(safetensors_write(path, {{"w", "F32", {256}, small.data(), 1024}}, {}, error),
                    error);
    const std::vector<uint8_t> before = read_bytes(path);

    const std::vector<float> large(256 * 1024, 2.5f);
    CHECK_FALSE(safetensors_write(path, {{"w", "F32", {256 * 1024}, large.data(), 1024 * 1024}}, {},
                                  error));
    CHECK(error.rfind(path + ": cannot write temporary file '" + path + ".tmp.", 0) == 0);
    CHECK(contains(error, std::strerror(ENOSPC)));
    CHECK(read_bytes(path) == before);
    CHECK(directory_entries(mount_point) == std::vector<std::string>{"model.safetensors"});
}

TEST_CASE("safetensors reader accepts a file written by Python with struct and json") {
    if (!python_available()) {
        MESSAGE("skipped: /usr/bin/python3 with json and struct is not available");
        return;
    }
    TemporaryDirectory directory;
    const std::string path = directory / "from_python.safetensors";
    // Unpadded header, json.dumps' spacing and \u escapes: what other writers produce.
    const std::string script = directory / "write.py";
    std::ofstream(script) << R"(import json, struct, sys
weight = struct.pack('<4f', 1.5, -2.25, float('inf'), 0.0) + struct.pack('<I', 0x7fc00abc)
steps = struct.pack('<3q', -2**63, 2**63 - 1, 42)
header = {'__metadata__': {'format': 'pt', 'note': 'caf\u00e9'},
          'weight': {'dtype': 'F32', 'shape': [5], 'data_offsets': [0, 20]},
          'steps': {'dtype': 'I64', 'shape': [3, 1], 'data_offsets': [20, 44]}}
text = json.dumps(header).encode('utf-8')
with open(sys.argv[1], 'wb') as f:
    f.write(struct.pack('<Q', len(text)) + text + weight + steps)
)";
    REQUIRE(std::system(("/usr/bin/python3 '" + script + "' '" + path + "'").c_str()) == 0);

    SafetensorsFile file;
    std::string error;
    REQUIRE_MESSAGE(safetensors_read(path, file, error), error);
    CHECK(file.metadata.at("note") == "caf\xc3\xa9");
    CHECK(file.tensors.at("steps").shape == std::vector<int64_t>{3, 1});
    std::vector<uint32_t> bits(5);
    std::memcpy(bits.data(), file.data.data() + file.tensors.at("weight").begin, 20);
    CHECK(bits == std::vector<uint32_t>{float_bits(1.5f), float_bits(-2.25f),
                                        float_bits(std::numeric_limits<float>::infinity()),
                                        float_bits(0.0f), 0x7fc00abc});
    std::vector<int64_t> steps(3);
    std::memcpy(steps.data(), file.data.data() + file.tensors.at("steps").begin, 24);
    CHECK(steps == std::vector<int64_t>{std::numeric_limits<int64_t>::min(),
                                        std::numeric_limits<int64_t>::max(), 42});
}

TEST_CASE("safetensors writer output is read by Python with struct and json") {
    if (!python_available()) {
        MESSAGE("skipped: /usr/bin/python3 with json and struct is not available");
        return;
    }
    TemporaryDirectory directory;
    const std::string path = directory / "for_python.safetensors";
    const std::vector<float> weight = {0.5f, -1.0f, float_from_bits(0x7fc00001),
                                       float_from_bits(0x00000001)};
    const std::vector<int64_t> steps = {-3, 1LL << 40};
    std::string error;
    REQUIRE_MESSAGE(safetensors_write(path,
                                      {{"fc.weight", "F32", {2, 2}, weight.data(), 16},
                                       {"steps", "I64", {2}, steps.data(), 16}},
                                      {{"format", "pt"}}, error),
                    error);
    const std::string script = directory / "read.py";
    std::ofstream(script) << R"(import json, struct, sys
data = open(sys.argv[1], 'rb').read()
(n,) = struct.unpack('<Q', data[:8])
assert n % 8 == 0, n
header = json.loads(data[8:8 + n])
body = data[8 + n:]
assert header['__metadata__'] == {'format': 'pt'}, header
w = header['fc.weight']
assert w['dtype'] == 'F32' and w['shape'] == [2, 2] and w['data_offsets'] == [0, 16], w
assert struct.unpack('<4I', body[0:16]) == (0x3f000000, 0xbf800000, 0x7fc00001, 1)
s = header['steps']
assert s['dtype'] == 'I64' and s['shape'] == [2] and s['data_offsets'] == [16, 32], s
assert struct.unpack('<2q', body[16:32]) == (-3, 1 << 40)
assert len(body) == 32
)";
    CHECK(std::system(("/usr/bin/python3 '" + script + "' '" + path + "'").c_str()) == 0);
}

} // namespace
