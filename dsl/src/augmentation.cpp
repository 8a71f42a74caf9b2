#include <convgen/augmentation.h>

#include <fmt/format.h>

namespace convgen {

const char* to_string(AugmentationKind kind) {
    switch (kind) {
        case AugmentationKind::random_crop:
            return "random_crop";
        case AugmentationKind::rotation:
            return "random_rotation";
        case AugmentationKind::horizontal_flip:
            return "horizontal_flip";
        case AugmentationKind::brightness:
            return "brightness";
        case AugmentationKind::contrast:
            return "contrast";
        case AugmentationKind::color_jitter:
            return "color_jitter";
        case AugmentationKind::salt_and_pepper:
            return "salt_and_pepper";
        case AugmentationKind::gaussian_noise:
            return "gaussian_noise";
    }
    return "unknown";
}

std::string describe(const AugmentationStep& step) {
    if (step.kind == AugmentationKind::horizontal_flip) return "horizontal_flip()";
    return fmt::format("{}({:g})", to_string(step.kind), step.amount);
}

}  // namespace convgen
