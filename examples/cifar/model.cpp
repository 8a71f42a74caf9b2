// ResNet-20 for CIFAR-10 (He et al. 2016, the zoo's resnet20) with the augmentation the paper
// trained it with: 4 pixels of padding and a random 32x32 crop, and a random horizontal flip.
// The images are normalised with CIFAR-10's per-channel training-set statistics
// (train_cifar checks them against the loaded set).
#include "../zoo/resnet_cifar.h"

#include "cifar10_statistics.h"

using namespace convgen;

Model resnet20_cifar10() {
    Augmentation augmentation{.steps = {random_crop(4), horizontal_flip()},
                              .pixel_mean = {cifar10::mean[0], cifar10::mean[1], cifar10::mean[2]},
                              .pixel_std = {cifar10::std_dev[0], cifar10::std_dev[1], cifar10::std_dev[2]}};
    return zoo::resnet_cifar("resnet20_cifar10", 3, augmentation);
}
CONVGEN_MODEL(resnet20_cifar10)
