// Each augmentation step as codegen builds it, run with Halide's JIT on a batch of images, and
// checked for what the step promises: the output is the input moved, mirrored, scaled or
// noised by an amount within the declared range, differently per image, the same for the same
// seed. Rotation is compared with a plain bilinear rotation at the angle that fits best.
#include "layers.h"

#include <convgen/schedules/cpu.h>

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>
#include <vector>

namespace {

using namespace convgen;
using namespace convgen::codegen;
using Halide::Buffer;

constexpr int channels = 3, width = 9, height = 7, batch = 32;

// Distinct values in [0.1, 0.7] per image, so that moves and flips are recognisable and a factor
// of up to 1.3 does not reach the clamp at 1.
Buffer<float> pattern_images() {
    Buffer<float> images(channels, width, height, batch);
    std::mt19937 random(7);
    std::uniform_real_distribution<float> uniform(0.1f, 0.7f);
    images.for_each_value([&](float& v) { v = uniform(random); });
    return images;
}

Buffer<float> augment(const Buffer<float>& images, const Augmentation& augmentation, uint32_t seed,
                      bool enabled = true) {
    Halide::ImageParam input(Halide::Float(32), 4, "images");
    Halide::Param<uint32_t> seed_param("seed");
    Halide::Param<bool> enabled_param("enabled");
    const Value value{Halide::Func(input), {images.dim(0).extent(), images.dim(1).extent(), images.dim(2).extent()}};
    schedules::AugmentationStages stages = augment_images(value, augmentation, seed_param, enabled_param);
    const schedules::Context context{Halide::get_jit_target_from_environment(), true, nullptr};
    schedules::cpu::schedule_augmentation(stages, context);
    input.set(images);
    seed_param.set(seed);
    enabled_param.set(enabled);
    Buffer<float> out(images.dim(0).extent(), images.dim(1).extent(), images.dim(2).extent(), images.dim(3).extent());
    stages.output.realize(out, Halide::get_jit_target_from_environment());
    return out;
}

Augmentation only(AugmentationStep step) {
    return Augmentation{{step}};
}

float max_difference(const Buffer<float>& a, const Buffer<float>& b, int n) {
    float worst = 0;
    for (int y = 0; y < a.dim(2).extent(); y++)
        for (int x = 0; x < a.dim(1).extent(); x++)
            for (int c = 0; c < a.dim(0).extent(); c++) worst = std::max(worst, std::abs(a(c, x, y, n) - b(c, x, y, n)));
    return worst;
}

}  // namespace

TEST_CASE("random_crop moves each image by a whole offset within the padding, filling with black") {
    const Buffer<float> images = pattern_images();
    const int padding = 2;
    const Buffer<float> out = augment(images, only(random_crop(padding)), 11);
    std::set<std::pair<int, int>> offsets;
    for (int n = 0; n < batch; n++) {
        bool found = false;
        for (int dy = -padding; dy <= padding && !found; dy++) {
            for (int dx = -padding; dx <= padding && !found; dx++) {
                bool match = true;
                for (int y = 0; y < height && match; y++)
                    for (int x = 0; x < width && match; x++)
                        for (int c = 0; c < channels && match; c++) {
                            const int sx = x + dx, sy = y + dy;
                            const bool inside = sx >= 0 && sx < width && sy >= 0 && sy < height;
                            match = out(c, x, y, n) == (inside ? images(c, sx, sy, n) : 0.0f);
                        }
                if (match) {
                    found = true;
                    offsets.insert({dx, dy});
                }
            }
        }
        CHECK_MESSAGE(found, "image " << n << " is not a shifted copy of its input");
    }
    CHECK(offsets.size() > 5);  // 25 possible offsets over 32 images
}

TEST_CASE("horizontal_flip mirrors some images and leaves the others") {
    const Buffer<float> images = pattern_images();
    const Buffer<float> out = augment(images, only(horizontal_flip()), 3);
    int flipped = 0;
    for (int n = 0; n < batch; n++) {
        bool same = true, mirrored = true;
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                for (int c = 0; c < channels; c++) {
                    same = same && out(c, x, y, n) == images(c, x, y, n);
                    mirrored = mirrored && out(c, x, y, n) == images(c, width - 1 - x, y, n);
                }
        CHECK((same || mirrored));
        flipped += mirrored;
    }
    CHECK(flipped > 4);
    CHECK(flipped < batch - 4);
}

TEST_CASE("brightness, contrast and colour jitter scale by factors in the declared range") {
    const Buffer<float> images = pattern_images();
    const double amount = 0.3;
    SUBCASE("brightness: one factor per image") {
        const Buffer<float> out = augment(images, only(brightness(amount)), 5);
        std::set<int> distinct;
        for (int n = 0; n < batch; n++) {
            const float f = out(0, 0, 0, n) / images(0, 0, 0, n);
            CHECK(f >= 1 - amount - 1e-5);
            CHECK(f <= 1 + amount + 1e-5);
            distinct.insert(static_cast<int>(f * 1000));
            for (int y = 0; y < height; y++)
                for (int x = 0; x < width; x++)
                    for (int c = 0; c < channels; c++) {
                        CHECK(out(c, x, y, n) == doctest::Approx(std::min(1.0f, images(c, x, y, n) * f)).epsilon(1e-4));
                    }
        }
        CHECK(distinct.size() > batch / 2);
    }
    SUBCASE("colour jitter: one factor per image and channel") {
        const Buffer<float> out = augment(images, only(color_jitter(amount)), 5);
        for (int n = 0; n < batch; n++) {
            for (int c = 0; c < channels; c++) {
                const float f = out(c, 0, 0, n) / images(c, 0, 0, n);
                CHECK(f >= 1 - amount - 1e-5);
                CHECK(f <= 1 + amount + 1e-5);
                for (int y = 0; y < height; y++)
                    for (int x = 0; x < width; x++)
                        CHECK(out(c, x, y, n) == doctest::Approx(std::min(1.0f, images(c, x, y, n) * f)).epsilon(1e-4));
            }
        }
    }
    SUBCASE("contrast: a blend with the image's mean grey (luminance weights for RGB)") {
        const Buffer<float> out = augment(images, only(contrast(amount)), 5);
        for (int n = 0; n < batch; n++) {
            double grey = 0;
            const double weights[3] = {0.299, 0.587, 0.114};
            for (int y = 0; y < height; y++)
                for (int x = 0; x < width; x++)
                    for (int c = 0; c < channels; c++) grey += weights[c] * images(c, x, y, n);
            grey /= width * height;
            // out = f * in + (1 - f) * grey, so f follows from any pixel away from the grey level.
            const double f = (out(0, 0, 0, n) - grey) / (images(0, 0, 0, n) - grey);
            CHECK(f >= 1 - amount - 1e-3);
            CHECK(f <= 1 + amount + 1e-3);
            for (int y = 0; y < height; y++)
                for (int x = 0; x < width; x++)
                    for (int c = 0; c < channels; c++) {
                        const double expected = std::clamp(f * images(c, x, y, n) + (1 - f) * grey, 0.0, 1.0);
                        CHECK(out(c, x, y, n) == doctest::Approx(expected).epsilon(1e-3));
                    }
        }
    }
}

TEST_CASE("salt-and-pepper noise sets about the declared fraction of pixels to black or white") {
    Buffer<float> images(channels, 64, 64, 4);
    images.fill(0.5f);
    const double probability = 0.1;
    const Buffer<float> out = augment(images, only(salt_and_pepper(probability)), 9);
    int black = 0, white = 0;
    const int pixels = 64 * 64 * 4;
    for (int n = 0; n < 4; n++)
        for (int y = 0; y < 64; y++)
            for (int x = 0; x < 64; x++) {
                const float v = out(0, x, y, n);
                CHECK(out(1, x, y, n) == v);  // a whole pixel, every channel
                CHECK(out(2, x, y, n) == v);
                black += v == 0.0f;
                white += v == 1.0f;
                CHECK((v == 0.0f || v == 1.0f || v == 0.5f));
            }
    CHECK(std::abs(black / double(pixels) - probability / 2) < 0.01);
    CHECK(std::abs(white / double(pixels) - probability / 2) < 0.01);
}

TEST_CASE("Gaussian noise has mean 0 and the declared standard deviation") {
    Buffer<float> images(channels, 64, 64, 4);
    images.fill(0.5f);
    const double sigma = 0.05;
    const Buffer<float> out = augment(images, only(gaussian_noise(sigma)), 13);
    double sum = 0, squares = 0;
    const double count = static_cast<double>(out.number_of_elements());
    out.for_each_value([&](float v) {
        sum += v - 0.5;
        squares += (v - 0.5) * (v - 0.5);
    });
    const double mean = sum / count, deviation = std::sqrt(squares / count - mean * mean);
    CHECK(std::abs(mean) < 0.002);
    CHECK(deviation == doctest::Approx(sigma).epsilon(0.03));
}

TEST_CASE("rotation is a bilinear rotation about the centre by an angle within the range") {
    const Buffer<float> images = pattern_images();
    const double max_degrees = 20;
    const Buffer<float> out = augment(images, only(random_rotation(max_degrees)), 17);
    const double cx = (width - 1) / 2.0, cy = (height - 1) / 2.0;
    const auto at = [&](int c, int x, int y, int n) {
        return x >= 0 && x < width && y >= 0 && y < height ? images(c, x, y, n) : 0.0f;
    };
    const auto rotated = [&](double radians, int c, int x, int y, int n) {
        const double sx = std::cos(radians) * (x - cx) + std::sin(radians) * (y - cy) + cx;
        const double sy = -std::sin(radians) * (x - cx) + std::cos(radians) * (y - cy) + cy;
        const int x0 = static_cast<int>(std::floor(sx)), y0 = static_cast<int>(std::floor(sy));
        const double fx = sx - x0, fy = sy - y0;
        const double top = at(c, x0, y0, n) * (1 - fx) + at(c, x0 + 1, y0, n) * fx;
        const double bottom = at(c, x0, y0 + 1, n) * (1 - fx) + at(c, x0 + 1, y0 + 1, n) * fx;
        return top * (1 - fy) + bottom * fy;
    };
    std::set<int> angles;
    for (int n = 0; n < batch; n++) {
        // The angle that fits best, to a hundredth of a degree, then the error there.
        double best_error = 1e9, best_degrees = 0;
        for (double degrees = -max_degrees; degrees <= max_degrees; degrees += 0.01) {
            double error = 0;
            for (int y = 0; y < height; y++)
                for (int x = 0; x < width; x++) error += std::abs(rotated(degrees * M_PI / 180, 0, x, y, n) - out(0, x, y, n));
            if (error < best_error) best_error = error, best_degrees = degrees;
        }
        double worst = 0;
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                for (int c = 0; c < channels; c++) {
                    worst = std::max(worst, std::abs(rotated(best_degrees * M_PI / 180, c, x, y, n) - out(c, x, y, n)));
                }
        CHECK_MESSAGE(worst < 0.01, "image " << n << " at " << best_degrees << " degrees");
        angles.insert(static_cast<int>(std::round(best_degrees)));
    }
    CHECK(angles.size() > 10);
}

TEST_CASE("augmentation undoes and redoes the caller's normalisation, and is reproducible from the seed") {
    const Buffer<float> pixels = pattern_images();
    const std::vector<double> mean = {0.5, 0.4, 0.3}, std_dev = {0.25, 0.2, 0.3};
    Buffer<float> normalised = pixels.copy();
    normalised.for_each_element([&](int c, int x, int y, int n) {
        normalised(c, x, y, n) = static_cast<float>((pixels(c, x, y, n) - mean[c]) / std_dev[c]);
    });
    Augmentation crop{{random_crop(2)}, mean, std_dev};
    const Buffer<float> out = augment(normalised, crop, 21), in_pixels = augment(pixels, only(random_crop(2)), 21);
    // The same offsets as in pixel units, and black borders normalised as black.
    out.for_each_element([&](int c, int x, int y, int n) {
        CHECK(out(c, x, y, n) == doctest::Approx((in_pixels(c, x, y, n) - mean[c]) / std_dev[c]).epsilon(1e-5));
    });
    const Augmentation all{{random_crop(2), random_rotation(10), horizontal_flip(), brightness(0.2), contrast(0.2),
                            color_jitter(0.1), salt_and_pepper(0.01), gaussian_noise(0.02)}};
    const Buffer<float> first = augment(pixels, all, 5), again = augment(pixels, all, 5), other = augment(pixels, all, 6);
    const Buffer<float> off = augment(pixels, all, 5, false);
    for (int n = 0; n < batch; n++) {
        CHECK(max_difference(first, again, n) == 0.0f);
        CHECK(max_difference(first, other, n) > 0.0f);
        CHECK(max_difference(off, pixels, n) == 0.0f);
    }
}
