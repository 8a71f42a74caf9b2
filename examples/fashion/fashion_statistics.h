// Fashion-MNIST's pixel statistics over its 60,000 training images, in [0, 1] units: the
// normalisation the model's augmentation is declared with and the trainer applies.
#pragma once

namespace fashion_mnist {

inline constexpr float mean = 0.2860f;
inline constexpr float std_dev = 0.3530f;

}  // namespace fashion_mnist
