// The CIFAR-10 ResNets (6n + 2 layers) as a function, for models that add their own training
// augmentation (examples/cifar).
#pragma once

#include <convgen/model.h>

#include <string>

namespace zoo {

convgen::Model resnet_cifar(const std::string& name, int blocks_per_stage, convgen::Augmentation augmentation = {});

}  // namespace zoo
