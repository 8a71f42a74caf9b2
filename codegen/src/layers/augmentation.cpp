// Training-time augmentation of a batch of images, (c, x, y, n), as one Halide pipeline. The
// steps work in pixel units: the caller's normalisation is undone first and redone last. Every
// random amount is a counter-based draw from the step's seed, keyed by the augmentation step and
// indexed by the image (or the element), so a training step is reproducible from its seed.
#include "../layers.h"
#include "random.h"

#include <fmt/format.h>

#include <cmath>

namespace convgen::codegen {

using Halide::Expr;
using Halide::Func;

namespace {

// values[c] as an expression of the channel; `fallback` where values is empty.
Expr per_channel(const std::vector<double>& values, const Expr& c, float fallback) {
    if (values.empty()) return fallback;
    Expr e = static_cast<float>(values.back());
    for (size_t i = values.size() - 1; i-- > 0;) e = Halide::select(c == static_cast<int>(i), static_cast<float>(values[i]), e);
    return e;
}

}  // namespace

schedules::AugmentationStages augment_images(const Value& images, const Augmentation& augmentation, const Expr& seed,
                                             const Expr& enabled) {
    const auto& [c, x, y, n] = std::tie(Dims::c, Dims::x, Dims::y, Dims::n);
    const int channels = static_cast<int>(images.extents[0]);
    const int width = static_cast<int>(images.extents[1]);
    const int height = static_cast<int>(images.extents[2]);
    const Expr mean = per_channel(augmentation.pixel_mean, c, 0.0f);
    const Expr std_dev = per_channel(augmentation.pixel_std, c, 1.0f);
    schedules::AugmentationStages stages;

    Func current("augment_pixels");
    current(c, x, y, n) = images.func(c, x, y, n) * std_dev + mean;
    // A pixel of the current image, black outside it.
    const auto pixel_or_black = [&](const Func& image, const Expr& px, const Expr& py) {
        const Expr inside = px >= 0 && px < width && py >= 0 && py < height;
        return Halide::select(inside, image(c, Halide::clamp(px, 0, width - 1), Halide::clamp(py, 0, height - 1), n),
                              0.0f);
    };
    // The element's index in the batch, (c, x, y, n) in memory order.
    const Expr element = ((n * height + y) * width + x) * channels + c;
    const Expr pixel = (n * height + y) * width + x;

    for (size_t s = 0; s < augmentation.steps.size(); s++) {
        const AugmentationStep& step = augmentation.steps[s];
        const std::string name = fmt::format("augment{}_{}", s, to_string(step.kind));
        const float amount = static_cast<float>(step.amount);
        // Draw j of this step for a counter (the image, or an element).
        const auto draw = [&](uint32_t j, const Expr& counter) {
            return random::uniform(random::key(seed, 0x9e3779b9u * static_cast<uint32_t>(s + 1) + j), counter);
        };
        const auto factor = [&](uint32_t j, const Expr& counter) { return 1.0f + (2.0f * draw(j, counter) - 1.0f) * amount; };
        Func next(name);
        switch (step.kind) {
            case AugmentationKind::random_crop: {
                const int padding = static_cast<int>(step.amount);
                const auto offset = [&](uint32_t j) {
                    return Halide::min(Halide::cast<int>(draw(j, n) * static_cast<float>(2 * padding + 1)), 2 * padding) -
                           padding;
                };
                Func shift(name + "_offset");
                shift(n) = Halide::Tuple(offset(0), offset(1));
                stages.per_image.push_back(shift);
                next(c, x, y, n) = pixel_or_black(current, x + shift(n)[0], y + shift(n)[1]);
                break;
            }
            case AugmentationKind::rotation: {
                const float max_radians = amount * 3.14159265358979323846f / 180.0f;
                Func turn(name + "_angle");
                const Expr angle = (2.0f * draw(0, n) - 1.0f) * max_radians;
                turn(n) = Halide::Tuple(Halide::cos(angle), Halide::sin(angle));
                stages.per_image.push_back(turn);
                // The source of each output pixel: the output position turned back about the centre.
                const float cx = 0.5f * static_cast<float>(width - 1), cy = 0.5f * static_cast<float>(height - 1);
                const Expr dx = Halide::cast<float>(x) - cx, dy = Halide::cast<float>(y) - cy;
                const Expr sx = turn(n)[0] * dx + turn(n)[1] * dy + cx;
                const Expr sy = -turn(n)[1] * dx + turn(n)[0] * dy + cy;
                const Expr x0 = Halide::cast<int>(Halide::floor(sx)), y0 = Halide::cast<int>(Halide::floor(sy));
                const Expr fx = sx - Halide::floor(sx), fy = sy - Halide::floor(sy);
                next(c, x, y, n) = Halide::lerp(
                    Halide::lerp(pixel_or_black(current, x0, y0), pixel_or_black(current, x0 + 1, y0), fx),
                    Halide::lerp(pixel_or_black(current, x0, y0 + 1), pixel_or_black(current, x0 + 1, y0 + 1), fx), fy);
                stages.resampled.push_back(current);
                break;
            }
            case AugmentationKind::horizontal_flip: {
                Func flip(name + "_flip");
                flip(n) = draw(0, n) < amount;
                stages.per_image.push_back(flip);
                next(c, x, y, n) = current(c, Halide::select(flip(n), width - 1 - x, x), y, n);
                break;
            }
            case AugmentationKind::brightness: {
                Func scale(name + "_factor");
                scale(n) = factor(0, n);
                stages.per_image.push_back(scale);
                next(c, x, y, n) = Halide::clamp(current(c, x, y, n) * scale(n), 0.0f, 1.0f);
                break;
            }
            case AugmentationKind::contrast: {
                Func scale(name + "_factor"), grey(name + "_mean_grey");
                scale(n) = factor(0, n);
                // The image's mean grey level: luminance for RGB (as torchvision), the channel mean otherwise.
                Halide::RDom r(0, channels, 0, width, 0, height);
                const Expr weight = channels == 3 ? Halide::select(r.x == 0, 0.299f, r.x == 1, 0.587f, 0.114f)
                                                  : Expr(1.0f / static_cast<float>(channels));
                grey(n) = 0.0f;
                grey(n) += current(r.x, r.y, r.z, n) * weight / static_cast<float>(width * height);
                stages.per_image.push_back(scale);
                stages.per_image.push_back(grey);
                stages.resampled.push_back(current);
                next(c, x, y, n) = Halide::clamp(scale(n) * current(c, x, y, n) + (1.0f - scale(n)) * grey(n), 0.0f, 1.0f);
                break;
            }
            case AugmentationKind::color_jitter: {
                Func scale(name + "_factor");
                scale(c, n) = factor(0, n * channels + c);
                stages.per_image.push_back(scale);
                next(c, x, y, n) = Halide::clamp(current(c, x, y, n) * scale(c, n), 0.0f, 1.0f);
                break;
            }
            case AugmentationKind::salt_and_pepper: {
                const Expr u = draw(0, pixel);
                next(c, x, y, n) = Halide::select(u < 0.5f * amount, 0.0f, u < amount, 1.0f, current(c, x, y, n));
                break;
            }
            case AugmentationKind::gaussian_noise: {
                const Expr noise = random::normal(random::key(seed, 0x9e3779b9u * static_cast<uint32_t>(s + 1)), element);
                next(c, x, y, n) = Halide::clamp(current(c, x, y, n) + amount * noise, 0.0f, 1.0f);
                break;
            }
        }
        current = next;
    }
    stages.output = Func("augmented_images");
    stages.output(c, x, y, n) =
        Halide::select(enabled, (current(c, x, y, n) - mean) / std_dev, images.func(c, x, y, n));
    return stages;
}

}  // namespace convgen::codegen
