// CIFAR-10's per-channel pixel statistics over its 50,000 training images, in [0, 1] units:
// the normalisation the model's augmentation is declared with and the trainer applies.
#pragma once

namespace cifar10 {

inline constexpr float mean[3] = {0.4914f, 0.4822f, 0.4465f};
inline constexpr float std_dev[3] = {0.2470f, 0.2435f, 0.2616f};

}  // namespace cifar10
