#include "convgen/runtime/image_folder.h"

#include "runtime/temporary_directory.h"

#include <doctest/doctest.h>
#include <fmt/format.h>

// The test writes its PNG, JPEG and BMP files with its own private copy of stb_image_write.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#define STBI_WRITE_NO_STDIO
#include "../../runtime/third_party/stb/stb_image_write.h"
#pragma GCC diagnostic pop

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace {

using namespace convgen::runtime;
using namespace convgen::runtime::testing;

void append(void* context, void* data, int size) {
    auto* bytes = static_cast<std::vector<uint8_t>*>(context);
    bytes->insert(bytes->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
}

// A height x width image with `channels` channels whose pixel (y, x, c) is seed + 40y + 10x + 3c.
std::vector<uint8_t> pattern(int height, int width, int channels, int seed) {
    std::vector<uint8_t> pixels;
    for (int y = 0; y < height; y++) {
        for (int x = 0; x < width; x++) {
            for (int c = 0; c < channels; c++) pixels.push_back(static_cast<uint8_t>(seed + 40 * y + 10 * x + 3 * c));
        }
    }
    return pixels;
}

std::vector<uint8_t> png_bytes(int height, int width, int channels, const std::vector<uint8_t>& pixels) {
    std::vector<uint8_t> bytes;
    REQUIRE(stbi_write_png_to_func(append, &bytes, width, height, channels, pixels.data(), width * channels));
    return bytes;
}

// One flat colour: JPEG keeps that within a level or two, so decoded values can be compared.
std::vector<uint8_t> flat_jpeg_bytes(int height, int width, uint8_t red, uint8_t green, uint8_t blue) {
    std::vector<uint8_t> pixels(static_cast<size_t>(height * width * 3));
    for (size_t i = 0; i < pixels.size(); i += 3) {
        pixels[i] = red;
        pixels[i + 1] = green;
        pixels[i + 2] = blue;
    }
    std::vector<uint8_t> bytes;
    REQUIRE(stbi_write_jpg_to_func(append, &bytes, width, height, 3, pixels.data(), 95));
    return bytes;
}

std::vector<uint8_t> bmp_bytes(int height, int width, const std::vector<uint8_t>& rgb) {
    std::vector<uint8_t> bytes;
    REQUIRE(stbi_write_bmp_to_func(append, &bytes, width, height, 3, rgb.data()));
    return bytes;
}

// <name>/cat/a.png (RGB), cat/b.jpg (flat RGB), dog/c.png (grey), dog/d.bmp: four 2x3 images.
std::string write_small_folder(const TemporaryDirectory& directory, const std::string& name = "root") {
    directory.write(name + "/cat/a.png", png_bytes(2, 3, 3, pattern(2, 3, 3, 0)));
    directory.write(name + "/cat/b.jpg", flat_jpeg_bytes(2, 3, 200, 100, 50));
    directory.write(name + "/dog/c.png", png_bytes(2, 3, 1, pattern(2, 3, 1, 5)));
    directory.write(name + "/dog/d.bmp", bmp_bytes(2, 3, pattern(2, 3, 3, 9)));
    return directory.path_of(name);
}

std::vector<uint8_t> image_of(const ImageSet& set, int64_t sample) {
    const auto begin = set.pixels.begin() + sample * set.image_size();
    return std::vector<uint8_t>(begin, begin + set.image_size());
}

}  // namespace

TEST_CASE("an image folder gives sorted class names, labels by folder and RGB pixels of PNG, JPEG and BMP files") {
    TemporaryDirectory directory;
    const auto root = write_small_folder(directory);
    directory.write_text("root/dog/notes.txt", "not an image");
    directory.write("root/.hidden/e.png", png_bytes(2, 3, 3, pattern(2, 3, 3, 0)));

    const auto set = load_image_folder(root);

    CHECK(set.count == 4);
    CHECK(set.height == 2);
    CHECK(set.width == 3);
    CHECK(set.channels == 3);
    CHECK(set.class_names == std::vector<std::string>{"cat", "dog"});
    CHECK(set.labels == std::vector<int32_t>{0, 0, 1, 1});
    CHECK(image_of(set, 0) == pattern(2, 3, 3, 0));
    const auto jpeg = image_of(set, 1);
    for (size_t i = 0; i < jpeg.size(); i += 3) {
        CHECK(std::abs(jpeg[i] - 200) <= 3);
        CHECK(std::abs(jpeg[i + 1] - 100) <= 3);
        CHECK(std::abs(jpeg[i + 2] - 50) <= 3);
    }
    // Grey is repeated into the three channels.
    const auto grey = pattern(2, 3, 1, 5);
    std::vector<uint8_t> grey_as_rgb(grey.size() * 3);
    for (size_t i = 0; i < grey_as_rgb.size(); i++) grey_as_rgb[i] = grey[i / 3];
    CHECK(image_of(set, 2) == grey_as_rgb);
    CHECK(image_of(set, 3) == pattern(2, 3, 3, 9));
}

TEST_CASE("ImageFolderSource decodes on read what load_image_folder decodes up front, with any thread count") {
    TemporaryDirectory directory;
    const auto root = write_small_folder(directory);
    ImageFolderOptions one_thread;
    one_thread.threads = 1;

    const auto set = load_image_folder(root, one_thread);
    const ImageFolderSource source(root);

    CHECK(load_image_folder(root).pixels == set.pixels);
    REQUIRE(source.count() == 4);
    CHECK(source.class_names() == set.class_names);
    CHECK(source.path(2) == root + "/dog/c.png");
    for (int64_t sample = 0; sample < source.count(); sample++) {
        std::vector<uint8_t> pixels(static_cast<size_t>(source.image_size()));
        source.read(sample, pixels.data());
        CHECK(pixels == image_of(set, sample));
        CHECK(source.label(sample) == set.labels[static_cast<size_t>(sample)]);
    }
}

TEST_CASE("one channel asks for grey: colour images are converted to luminance") {
    TemporaryDirectory directory;
    directory.write("root/a/grey.png", png_bytes(2, 2, 1, {0, 50, 100, 255}));
    directory.write("root/b/white.png", png_bytes(2, 2, 3, std::vector<uint8_t>(12, 255)));
    ImageFolderOptions grey;
    grey.channels = 1;

    const auto set = load_image_folder(directory.path_of("root"), grey);

    CHECK(set.channels == 1);
    CHECK(set.pixels == std::vector<uint8_t>{0, 50, 100, 255, 255, 255, 255, 255});
}

TEST_CASE("an image of another size is a DataError naming it, its size and the image that set the size") {
    TemporaryDirectory directory;
    const auto root = write_small_folder(directory);
    directory.write("root/dog/e.png", png_bytes(3, 2, 3, pattern(3, 2, 3, 0)));

    CHECK(data_error_message([&] { load_image_folder(root); }) ==
          fmt::format("{}/dog/e.png: height 3 and width 2 but expected height 2 and width 3 (the size of the first "
                      "image, {}/cat/a.png)",
                      root, root));

    ImageFolderOptions sized;
    sized.height = 3;
    sized.width = 2;
    CHECK(data_error_message([&] { load_image_folder(root, sized); }) ==
          fmt::format("{}/cat/a.png: height 2 and width 3 but expected height 3 and width 2 (the size set in "
                      "ImageFolderOptions)",
                      root));
}

TEST_CASE("a file that is no image, or whose data is corrupt past a valid header, is a DataError naming it") {
    TemporaryDirectory directory;
    const auto root = write_small_folder(directory);
    directory.write_text("root/cat/not_an_image.png", "hello");

    CHECK(data_error_message([&] { ImageFolderSource source(root); }) ==
          fmt::format("{}/cat/not_an_image.png: not a PNG, JPEG or BMP image (it starts with the bytes 68 65 6C 6C 6F)",
                      root));

    std::filesystem::remove(root + "/cat/not_an_image.png");
    auto truncated = png_bytes(2, 3, 3, pattern(2, 3, 3, 0));
    truncated.resize(truncated.size() - 20);  // the header survives, the image data does not
    directory.write("root/dog/truncated.png", truncated);
    const ImageFolderSource source(root);  // headers are fine
    std::vector<uint8_t> pixels(static_cast<size_t>(source.image_size()));
    CHECK(data_error_message([&] {
              source.read(4, pixels.data());
          }).rfind(fmt::format("{}/dog/truncated.png: cannot decode the PNG data: ", root), 0) == 0);
    CHECK(data_error_message([&] {
              load_image_folder(root);
          }).rfind(fmt::format("{}/dog/truncated.png: cannot decode the PNG data: ", root), 0) == 0);
}

TEST_CASE("skip_malformed leaves out and lists every file that cannot be used, with the reason") {
    TemporaryDirectory directory;
    const auto root = write_small_folder(directory);
    directory.write_text("root/cat/garbage.jpg", "GIF89a");
    directory.write("root/dog/big.png", png_bytes(4, 4, 3, pattern(4, 4, 3, 0)));
    auto truncated = png_bytes(2, 3, 3, pattern(2, 3, 3, 0));
    truncated.resize(truncated.size() - 20);
    directory.write("root/dog/truncated.png", truncated);
    ImageFolderOptions options;
    options.skip_malformed = true;
    std::vector<SkippedFile> skipped;

    const auto set = load_image_folder(root, options, &skipped);

    CHECK(set.count == 4);
    CHECK(set.labels == std::vector<int32_t>{0, 0, 1, 1});
    CHECK(set.pixels == load_image_folder(write_small_folder(directory, "clean")).pixels);
    REQUIRE(skipped.size() == 3);
    CHECK(skipped[0].path == root + "/cat/garbage.jpg");
    CHECK(skipped[0].reason == "not a PNG, JPEG or BMP image (it starts with the bytes 47 49 46 38 39 61)");
    CHECK(skipped[1].path == root + "/dog/big.png");
    CHECK(skipped[1].reason ==
          fmt::format("height 4 and width 4 but expected height 2 and width 3 (the size of the first image, "
                      "{}/cat/a.png)",
                      root));
    CHECK(skipped[2].path == root + "/dog/truncated.png");
    CHECK(skipped[2].reason.rfind("cannot decode the PNG data: ", 0) == 0);

    const ImageFolderSource source(root, options);
    CHECK(source.count() == 5);  // the truncated file's header is fine; reading it will fail
    CHECK(source.skipped().size() == 2);
}

TEST_CASE("a missing root, a root without class folders and an empty class folder are DataErrors naming them") {
    TemporaryDirectory directory;
    const auto root = write_small_folder(directory);

    CHECK(data_error_message([&] { ImageFolderSource source(directory.path_of("missing")); }) ==
          fmt::format("{}: not a folder; expected a folder with one subfolder of images per class",
                      directory.path_of("missing")));
    const auto flat = directory.make_folder("flat");
    directory.write("flat/a.png", png_bytes(2, 3, 3, pattern(2, 3, 3, 0)));
    CHECK(data_error_message([&] { ImageFolderSource source(flat); }) ==
          fmt::format("{}: no class folders; expected one subfolder of images per class", flat));
    directory.make_folder("root/empty");
    CHECK(data_error_message([&] { ImageFolderSource source(root); }) ==
          fmt::format("{}/empty: class folder without images; expected .jpg, .jpeg, .png or .bmp files", root));
}

TEST_CASE("a folder whose every image is skipped is a DataError") {
    TemporaryDirectory directory;
    directory.write_text("root/a/x.png", "nothing");
    ImageFolderOptions options;
    options.skip_malformed = true;

    CHECK(data_error_message([&] { load_image_folder(directory.path_of("root"), options); }) ==
          fmt::format("{}: no readable images; all 1 files were skipped", directory.path_of("root")));
}

TEST_CASE("decode_image checks the format and the expected size before decoding") {
    const auto png = png_bytes(2, 3, 3, pattern(2, 3, 3, 0));

    const auto image = decode_image(png.data(), png.size(), "a.png", 4);
    CHECK(image.height == 2);
    CHECK(image.width == 3);
    CHECK(image.channels == 4);
    CHECK(image.pixels.size() == 24);
    CHECK(image.pixels[3] == 255);  // alpha added

    CHECK(data_error_message([&] { decode_image(png.data(), png.size(), "a.png", 3, 32, 32); }) ==
          "a.png: height 2 and width 3 but expected height 32 and width 32");
    CHECK(data_error_message([&] { decode_image(png.data(), 0, "a.png", 3); }) ==
          "a.png: an empty file; expected a PNG, JPEG or BMP image");
    CHECK(data_error_message([&] {
              decode_image(png.data(), 12, "a.png", 3);
          }).rfind("a.png: cannot read the PNG header: ", 0) == 0);
    CHECK_THROWS_AS(decode_image(png.data(), png.size(), "a.png", 5), std::invalid_argument);
}
