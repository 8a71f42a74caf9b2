#include "convgen/runtime/dataset.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <stdexcept>

namespace convgen::runtime {
namespace {

// value = table[channel * 256 + pixel]: one lookup per byte instead of a divide and a subtract.
std::vector<float> normalisation_table(const Normalisation& normalisation, int64_t channels) {
    check_normalisation(normalisation, channels);
    std::vector<float> table(static_cast<size_t>(channels) * 256);
    for (int64_t channel = 0; channel < channels; channel++) {
        const bool identity = normalisation.mean.empty();
        const double mean = identity ? 0.0 : normalisation.mean[static_cast<size_t>(channel)];
        const double std_dev = identity ? 1.0 : normalisation.std_dev[static_cast<size_t>(channel)];
        for (int pixel = 0; pixel < 256; pixel++) {
            table[static_cast<size_t>(channel * 256 + pixel)] = static_cast<float>((pixel / 255.0 - mean) / std_dev);
        }
    }
    return table;
}

void convert_image(const uint8_t* pixels, int64_t image_size, int64_t channels, const std::vector<float>& table,
                   float* out) {
    for (int64_t first = 0; first < image_size; first += channels) {
        for (int64_t channel = 0; channel < channels; channel++) {
            out[first + channel] = table[static_cast<size_t>(channel * 256 + pixels[first + channel])];
        }
    }
}

void check_sample(int64_t sample, int64_t count) {
    if (sample < 0 || sample >= count) {
        throw std::out_of_range(fmt::format("sample {} is outside the set of {} images", sample, count));
    }
}

}  // namespace

Normalisation channel_statistics(const ImageSet& set) {
    if (set.count < 1 || set.channels < 1 || set.pixels.size() != static_cast<size_t>(set.count * set.image_size())) {
        throw std::invalid_argument(
            fmt::format("channel_statistics: expected a non-empty set with count * height * width * channels "
                        "pixels but found {} images of {}x{}x{} and {} pixels",
                        set.count, set.height, set.width, set.channels, set.pixels.size()));
    }
    const auto channels = static_cast<size_t>(set.channels);
    std::vector<std::array<int64_t, 256>> histograms(channels, std::array<int64_t, 256>{});
    for (size_t first = 0; first < set.pixels.size(); first += channels) {
        for (size_t channel = 0; channel < channels; channel++) {
            histograms[channel][set.pixels[first + channel]]++;
        }
    }
    Normalisation statistics;
    const double values_per_channel = static_cast<double>(set.pixels.size() / channels);
    for (const auto& histogram : histograms) {
        double sum = 0;
        for (int pixel = 0; pixel < 256; pixel++) sum += static_cast<double>(histogram[pixel]) * (pixel / 255.0);
        const double mean = sum / values_per_channel;
        double squared_deviations = 0;
        for (int pixel = 0; pixel < 256; pixel++) {
            const double deviation = pixel / 255.0 - mean;
            squared_deviations += static_cast<double>(histogram[pixel]) * deviation * deviation;
        }
        statistics.mean.push_back(static_cast<float>(mean));
        statistics.std_dev.push_back(static_cast<float>(std::sqrt(squared_deviations / values_per_channel)));
    }
    return statistics;
}

void check_normalisation(const Normalisation& normalisation, int64_t channels) {
    if (normalisation.mean.empty() && normalisation.std_dev.empty()) return;
    if (static_cast<int64_t>(normalisation.mean.size()) != channels ||
        static_cast<int64_t>(normalisation.std_dev.size()) != channels) {
        throw std::invalid_argument(fmt::format(
            "normalisation: expected one mean and one std_dev per channel ({} each) but found {} means and {} "
            "std_devs",
            channels, normalisation.mean.size(), normalisation.std_dev.size()));
    }
    for (int64_t channel = 0; channel < channels; channel++) {
        const float mean = normalisation.mean[static_cast<size_t>(channel)];
        const float std_dev = normalisation.std_dev[static_cast<size_t>(channel)];
        if (!std::isfinite(mean) || !std::isfinite(std_dev) || !(std_dev > 0)) {
            throw std::invalid_argument(
                fmt::format("normalisation: channel {} has mean {} and std_dev {}; expected a finite mean and a "
                            "finite std_dev above 0",
                            channel, mean, std_dev));
        }
    }
}

void ImageSetSource::read(int64_t sample, uint8_t* pixels) const {
    check_sample(sample, set_.count);
    const auto begin = set_.pixels.begin() + static_cast<std::ptrdiff_t>(sample * set_.image_size());
    std::copy(begin, begin + static_cast<std::ptrdiff_t>(set_.image_size()), pixels);
}

void to_network_input(const SampleSource& source, const int64_t* samples, size_t count,
                      const Normalisation& normalisation, float* images_out, int32_t* labels_out) {
    const auto table = normalisation_table(normalisation, source.channels());
    const int64_t image_size = source.image_size();
    std::vector<uint8_t> pixels(static_cast<size_t>(image_size));
    for (size_t i = 0; i < count; i++) {
        check_sample(samples[i], source.count());
        source.read(samples[i], pixels.data());
        convert_image(pixels.data(), image_size, source.channels(), table,
                      images_out + static_cast<int64_t>(i) * image_size);
        labels_out[i] = source.label(samples[i]);
    }
}

void to_network_input(const ImageSet& set, const int64_t* samples, size_t count, const Normalisation& normalisation,
                      float* images_out, int32_t* labels_out) {
    const auto table = normalisation_table(normalisation, set.channels);
    const int64_t image_size = set.image_size();
    for (size_t i = 0; i < count; i++) {
        check_sample(samples[i], set.count);
        convert_image(set.pixels.data() + samples[i] * image_size, image_size, set.channels, table,
                      images_out + static_cast<int64_t>(i) * image_size);
        labels_out[i] = set.labels[static_cast<size_t>(samples[i])];
    }
}

std::vector<std::string> numbered_class_names(int32_t class_count) {
    std::vector<std::string> names;
    for (int32_t label = 0; label < class_count; label++) names.push_back(std::to_string(label));
    return names;
}

}  // namespace convgen::runtime
