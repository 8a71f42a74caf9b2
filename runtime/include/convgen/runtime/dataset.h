// What every loader returns and every batch is made from: images as stored (uint8, NHWC) with
// their labels, the per-channel normalisation that turns them into network input, and the
// SampleSource interface through which a batch stream reads samples, from memory or from disk.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace convgen::runtime {

// A data file that is missing, malformed, inconsistent or cannot be written. The message names
// the file and says what was expected and what was found.
class DataError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// Images as stored, kept as uint8 so that large sets stay small (CIFAR-10's 50,000 training
// images take 150 MB as bytes and would take 600 MB as floats).
struct ImageSet {
    int64_t count = 0;
    int64_t height = 0;
    int64_t width = 0;
    int64_t channels = 0;
    // count * height * width * channels bytes in NHWC order (channels innermost).
    std::vector<uint8_t> pixels;
    std::vector<int32_t> labels;  // count labels, each in [0, class_names.size())
    std::vector<std::string> class_names;

    // Bytes per image: height * width * channels.
    int64_t image_size() const { return height * width * channels; }
};

// Per-channel statistics in [0, 1] pixel units: a pixel p of channel c becomes
// (p / 255 - mean[c]) / std_dev[c]. Empty vectors mean mean 0 and std_dev 1, that is p / 255.
struct Normalisation {
    std::vector<float> mean;
    std::vector<float> std_dev;
};

// The mean and (population) standard deviation of every channel over all pixels of the set,
// computed exactly from per-channel histograms. Use the training set's for every split.
Normalisation channel_statistics(const ImageSet& set);

// Throws std::invalid_argument unless `normalisation` is empty or has one mean and one positive,
// finite std_dev per channel.
void check_normalisation(const Normalisation& normalisation, int64_t channels);

// Where a batch stream reads samples from. Implementations must allow concurrent calls of the
// const methods (the stream reads on a background thread).
class SampleSource {
  public:
    virtual ~SampleSource() = default;
    virtual int64_t count() const = 0;
    virtual int64_t height() const = 0;
    virtual int64_t width() const = 0;
    virtual int64_t channels() const = 0;
    virtual const std::vector<std::string>& class_names() const = 0;
    virtual int32_t label(int64_t sample) const = 0;
    // Writes sample's height * width * channels bytes (HWC) to `pixels`. May throw DataError.
    virtual void read(int64_t sample, uint8_t* pixels) const = 0;

    int64_t image_size() const { return height() * width() * channels(); }
};

// A SampleSource over an ImageSet in memory. The set must outlive it.
class ImageSetSource final : public SampleSource {
  public:
    explicit ImageSetSource(const ImageSet& set) : set_(set) {}
    int64_t count() const override { return set_.count; }
    int64_t height() const override { return set_.height; }
    int64_t width() const override { return set_.width; }
    int64_t channels() const override { return set_.channels; }
    const std::vector<std::string>& class_names() const override { return set_.class_names; }
    int32_t label(int64_t sample) const override { return set_.labels[static_cast<size_t>(sample)]; }
    void read(int64_t sample, uint8_t* pixels) const override;

  private:
    const ImageSet& set_;
};

// Converts the given samples to network input: `count` images of height x width x channels
// floats (NHWC) normalised as above, written to `images_out`, and their labels to `labels_out`.
// Throws std::out_of_range for a sample index outside the set.
void to_network_input(const SampleSource& source, const int64_t* samples, size_t count,
                      const Normalisation& normalisation, float* images_out, int32_t* labels_out);
void to_network_input(const ImageSet& set, const int64_t* samples, size_t count, const Normalisation& normalisation,
                      float* images_out, int32_t* labels_out);

// "0", "1", ... for data sets that ship no class names.
std::vector<std::string> numbered_class_names(int32_t class_count);

}  // namespace convgen::runtime
