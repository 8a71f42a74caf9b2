// Training-time augmentation, declared next to the model and compiled into its training step:
//
//     Augmentation augmentation{.steps = {random_crop(4), horizontal_flip()},
//                               .pixel_mean = {0.4914, 0.4822, 0.4465}, .pixel_std = {0.2470, 0.2435, 0.2616}};
//     return Model("resnet20", x, softmax_cross_entropy(), augmentation);
//
// The steps run in the order given, on each image of a training batch, with random amounts drawn
// per image from the step's seed (a counter-based generator: the same seed and step give the
// same images). They work in pixel units, [0, 1] per channel: `pixel_mean` and `pixel_std` say
// how the caller normalised the images it passes ((pixel - mean) / std), so that a black border
// is black and noise has the stated size whatever the normalisation. Inference never augments.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace convgen {

enum class AugmentationKind {
    random_crop,      // pad with black, crop back to the size at a random offset (RandomCrop(size, padding))
    rotation,         // rotate about the centre by a random angle, bilinear, black corners
    horizontal_flip,  // mirror left-right with probability 1/2
    brightness,       // multiply by a factor drawn from [1 - amount, 1 + amount], clamp to [0, 1]
    contrast,         // blend with the image's mean grey by a factor drawn from [1 - amount, 1 + amount]
    color_jitter,     // multiply each channel by its own factor drawn from [1 - amount, 1 + amount]
    salt_and_pepper,  // set a pixel (all channels) to black or white with probability `amount`
    gaussian_noise,   // add normal noise of standard deviation `amount` to every value, clamp to [0, 1]
};

struct AugmentationStep {
    AugmentationKind kind;
    double amount = 0;  // pixels, degrees, probability or factor range, as the kind says
};

inline AugmentationStep random_crop(int64_t padding) {
    return {AugmentationKind::random_crop, static_cast<double>(padding)};
}
inline AugmentationStep random_rotation(double max_degrees) {
    return {AugmentationKind::rotation, max_degrees};
}
inline AugmentationStep horizontal_flip() {
    return {AugmentationKind::horizontal_flip, 0.5};
}
inline AugmentationStep brightness(double amount) {
    return {AugmentationKind::brightness, amount};
}
inline AugmentationStep contrast(double amount) {
    return {AugmentationKind::contrast, amount};
}
inline AugmentationStep color_jitter(double amount) {
    return {AugmentationKind::color_jitter, amount};
}
inline AugmentationStep salt_and_pepper(double probability) {
    return {AugmentationKind::salt_and_pepper, probability};
}
inline AugmentationStep gaussian_noise(double standard_deviation) {
    return {AugmentationKind::gaussian_noise, standard_deviation};
}

struct Augmentation {
    std::vector<AugmentationStep> steps;
    // Per channel, how the images were normalised; empty means pixels in [0, 1] as they are.
    std::vector<double> pixel_mean{};
    std::vector<double> pixel_std{};

    bool empty() const { return steps.empty(); }
};

const char* to_string(AugmentationKind kind);
// "random_crop(4)", for manifests and messages.
std::string describe(const AugmentationStep& step);

}  // namespace convgen
