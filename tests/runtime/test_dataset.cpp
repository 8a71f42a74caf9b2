#include "convgen/runtime/dataset.h"

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <vector>

namespace {

using namespace convgen::runtime;

// Two 1x2 RGB images: red channel 0 and 255 everywhere, green 51 everywhere, blue 0, 0, 255, 255.
ImageSet two_rgb_images() {
    ImageSet set;
    set.count = 2;
    set.height = 1;
    set.width = 2;
    set.channels = 3;
    set.pixels = {0, 51, 0, 0, 51, 0, 255, 51, 255, 255, 51, 255};
    set.labels = {4, 1};
    set.class_names = {"0", "1", "2", "3", "4"};
    return set;
}

}  // namespace

TEST_CASE("channel_statistics gives each channel's mean and population standard deviation in [0, 1] units") {
    const auto statistics = channel_statistics(two_rgb_images());

    REQUIRE(statistics.mean.size() == 3);
    REQUIRE(statistics.std_dev.size() == 3);
    CHECK(statistics.mean[0] == doctest::Approx(0.5));
    CHECK(statistics.std_dev[0] == doctest::Approx(0.5));
    CHECK(statistics.mean[1] == doctest::Approx(0.2));
    CHECK(statistics.std_dev[1] == doctest::Approx(0.0));
    CHECK(statistics.mean[2] == doctest::Approx(0.5));
    CHECK(statistics.std_dev[2] == doctest::Approx(0.5));
}

TEST_CASE("channel_statistics of many pixels matches a plain double-precision computation") {
    ImageSet set;
    set.count = 1000;
    set.height = 8;
    set.width = 8;
    set.channels = 1;
    for (int64_t i = 0; i < set.count * set.image_size(); i++)
        set.pixels.push_back(static_cast<uint8_t>((i * 37) % 251));
    set.labels.assign(1000, 0);
    double sum = 0, squares = 0;
    for (const uint8_t pixel : set.pixels) sum += pixel / 255.0;
    const double mean = sum / static_cast<double>(set.pixels.size());
    for (const uint8_t pixel : set.pixels) squares += (pixel / 255.0 - mean) * (pixel / 255.0 - mean);

    const auto statistics = channel_statistics(set);

    CHECK(statistics.mean[0] == doctest::Approx(mean).epsilon(1e-6));
    CHECK(statistics.std_dev[0] ==
          doctest::Approx(std::sqrt(squares / static_cast<double>(set.pixels.size()))).epsilon(1e-6));
}

TEST_CASE("to_network_input normalises each channel and gathers the chosen samples and labels") {
    const auto set = two_rgb_images();
    const Normalisation normalisation{{0.5f, 0.2f, 0.0f}, {0.5f, 0.1f, 2.0f}};
    const int64_t samples[] = {1, 0};
    std::vector<float> images(2 * 6);
    std::vector<int32_t> labels(2);

    to_network_input(set, samples, 2, normalisation, images.data(), labels.data());

    const std::vector<float> expected = {1, 0, 0.5f, 1, 0, 0.5f, -1, 0, 0, -1, 0, 0};
    for (size_t i = 0; i < expected.size(); i++) CHECK(images[i] == doctest::Approx(expected[i]).epsilon(1e-6));
    CHECK(labels == std::vector<int32_t>{1, 4});

    // The SampleSource path gives the same floats.
    std::vector<float> from_source(images.size());
    to_network_input(ImageSetSource(set), samples, 2, normalisation, from_source.data(), labels.data());
    CHECK(from_source == images);
}

TEST_CASE("an empty normalisation gives pixels / 255") {
    const auto set = two_rgb_images();
    const int64_t samples[] = {1};
    std::vector<float> images(6);
    std::vector<int32_t> labels(1);

    to_network_input(set, samples, 1, {}, images.data(), labels.data());

    CHECK(images == std::vector<float>{1.0f, 0.2f, 1.0f, 1.0f, 0.2f, 1.0f});
}

TEST_CASE("a normalisation that does not fit the channels, or a std_dev of 0, is refused with a clear message") {
    const auto set = two_rgb_images();
    const int64_t samples[] = {0};
    std::vector<float> images(6);
    std::vector<int32_t> labels(1);

    CHECK_THROWS_WITH_AS(
        to_network_input(set, samples, 1, {{0.5f}, {0.5f}}, images.data(), labels.data()),
        "normalisation: expected one mean and one std_dev per channel (3 each) but found 1 means and 1 "
        "std_devs",
        std::invalid_argument);
    CHECK_THROWS_WITH_AS(check_normalisation({{0, 0.2f, 0}, {1, 0, 1}}, 3),
                         "normalisation: channel 1 has mean 0.2 and std_dev 0; expected a finite mean and a finite "
                         "std_dev above 0",
                         std::invalid_argument);
    CHECK_NOTHROW(check_normalisation({}, 3));
}

TEST_CASE("a sample outside the set is refused") {
    const auto set = two_rgb_images();
    const int64_t samples[] = {2};
    std::vector<float> images(6);
    std::vector<int32_t> labels(1);

    CHECK_THROWS_AS(to_network_input(set, samples, 1, {}, images.data(), labels.data()), std::out_of_range);
}
