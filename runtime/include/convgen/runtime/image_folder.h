// Image folders: root/<class>/<file>.{jpg,jpeg,png,bmp}, the layout of torchvision's
// ImageFolder. Class names are the subfolder names in sorted order; a sample's label is its
// folder's index. Images are decoded with stb_image and must all have one size (no resizing).
// Names starting with a dot (.git, .DS_Store) and files with other extensions are ignored.
//
// ImageFolderSource scans the folder and reads every image's header up front (so a wrong size
// or a non-image is reported before training starts) and decodes an image when it is read, so a
// BatchStream can decode in the background. load_image_folder decodes everything into memory.
#pragma once

#include <convgen/runtime/dataset.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace convgen::runtime {

struct ImageFolderOptions {
    // 1 (grey), 2 (grey, alpha), 3 (RGB) or 4 (RGBA); images stored otherwise are converted as
    // stb_image converts them (grey is repeated, RGB becomes luminance, alpha is added or dropped).
    int channels = 3;
    // Every image must have this size; 0 takes the first image's (in class then file order).
    int64_t height = 0;
    int64_t width = 0;
    // false: the first file that cannot be decoded or has another size is a DataError naming it.
    // true: such files are skipped and listed with the reason.
    bool skip_malformed = false;
    // Threads for reading headers and decoding; 0 uses std::thread::hardware_concurrency().
    int threads = 0;
};

struct SkippedFile {
    std::string path;
    std::string reason;
};

// The largest side accepted, far above any training image; it bounds what a corrupt header can
// make the decoder allocate.
constexpr int64_t max_decoded_side = 8192;

struct DecodedImage {
    int64_t height = 0;
    int64_t width = 0;
    int64_t channels = 0;
    std::vector<uint8_t> pixels;  // height * width * channels bytes, HWC
};

struct ImageSize {
    int64_t height = 0;
    int64_t width = 0;
};

// The size in the header of a PNG, JPEG or BMP file held in memory, without decoding it. The
// format is judged by the first bytes, whatever the file's name; sides must be 1 to
// max_decoded_side. Failures are DataErrors that start with `name`.
ImageSize read_image_size(const uint8_t* bytes, size_t size, const std::string& name);

// Decodes a PNG, JPEG or BMP file held in memory, with the checks the folder loader applies:
// those of read_image_size and, when expected_height and expected_width are not 0, that size
// (checked before decoding). Failures are DataErrors that start with `name`.
DecodedImage decode_image(const uint8_t* bytes, size_t size, const std::string& name, int channels,
                          int64_t expected_height = 0, int64_t expected_width = 0);

class ImageFolderSource final : public SampleSource {
  public:
    // Scans `root` and reads every image's header. Throws DataError when root is missing or has
    // no class folders, a class folder holds no images, no image is left, or (without
    // skip_malformed) a file cannot be read as an image of the expected size.
    explicit ImageFolderSource(const std::string& root, const ImageFolderOptions& options = {});

    int64_t count() const override { return static_cast<int64_t>(files_.size()); }
    int64_t height() const override { return height_; }
    int64_t width() const override { return width_; }
    int64_t channels() const override { return channels_; }
    const std::vector<std::string>& class_names() const override { return class_names_; }
    int32_t label(int64_t sample) const override;
    // Reads and decodes the file; a file whose data is corrupt past its header throws DataError here.
    void read(int64_t sample, uint8_t* pixels) const override;

    const std::string& path(int64_t sample) const;
    // Files left out because of skip_malformed, in path order.
    const std::vector<SkippedFile>& skipped() const { return skipped_; }
    int threads() const { return threads_; }

  private:
    struct File {
        std::string path;
        int32_t label;
    };
    std::vector<File> files_;
    std::vector<std::string> class_names_;
    std::vector<SkippedFile> skipped_;
    int64_t height_ = 0;
    int64_t width_ = 0;
    int64_t channels_ = 0;
    int threads_ = 1;
};

// Decodes the whole folder into memory, in parallel. With skip_malformed, `skipped` (when given)
// receives every file left out and why.
ImageSet load_image_folder(const std::string& root, const ImageFolderOptions& options = {},
                           std::vector<SkippedFile>* skipped = nullptr);

}  // namespace convgen::runtime
