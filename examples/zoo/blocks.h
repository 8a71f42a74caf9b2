// The residual blocks of He et al. 2016, "Deep Residual Learning for Image Recognition", with
// torchvision's layer names ("<block>.conv1", "<block>.bn1", "<block>.downsample.0" ...), so a
// torchvision ResNet's state dict loads into these models as it is. Used by resnet.cpp (ImageNet)
// and resnet_cifar.cpp.
#pragma once

#include <convgen/model.h>

#include <string>

namespace zoo {

using namespace convgen;

// A conv without bias (the batch norm after it has one) followed by batch_norm. He normal, as the
// paper and torchvision initialise residual networks.
inline Tensor conv_bn(const Tensor& x, int64_t channels, int64_t kernel, int64_t stride, const std::string& conv_name,
                      const std::string& bn_name) {
    const Tensor y = conv2d(x, channels, kernel,
                            {.stride = stride,
                             .padding = kernel / 2,
                             .bias = false,
                             .name = conv_name,
                             .weight_init = Initializer::he_normal});
    return batch_norm(y, {.name = bn_name});
}

// The shortcut around a block: the input itself, or a 1x1 conv + batch norm where the block
// changes the shape (the paper's "option B" projection; torchvision's "downsample").
inline Tensor shortcut(const Tensor& x, int64_t channels, int64_t stride, const std::string& name) {
    if (stride == 1 && x.shape()[0] == channels) return x;
    return conv_bn(x, channels, 1, stride, name + ".downsample.0", name + ".downsample.1");
}

// Two 3x3 convs (ResNet-18/34 and the CIFAR ResNets). `residual = false` drops the shortcut and
// the sum: the paper's "plain" network of the same depth.
inline Tensor basic_block(const Tensor& x, int64_t channels, int64_t stride, const std::string& name,
                          bool residual = true) {
    Tensor y = conv_bn(x, channels, 3, stride, name + ".conv1", name + ".bn1") | relu;
    y = conv_bn(y, channels, 3, 1, name + ".conv2", name + ".bn2");
    if (residual) y = add(y, shortcut(x, channels, stride, name));
    return relu(y);
}

// 1x1 reduce, 3x3, 1x1 expand to 4x the width (ResNet-50 and deeper). The stride sits on the 3x3
// conv, as torchvision's "ResNet v1.5", not on the first 1x1 as in the paper.
inline Tensor bottleneck(const Tensor& x, int64_t width, int64_t stride, const std::string& name) {
    const int64_t channels = 4 * width;
    Tensor y = conv_bn(x, width, 1, 1, name + ".conv1", name + ".bn1") | relu;
    y = conv_bn(y, width, 3, stride, name + ".conv2", name + ".bn2") | relu;
    y = conv_bn(y, channels, 1, 1, name + ".conv3", name + ".bn3");
    return relu(add(y, shortcut(x, channels, stride, name)));
}

}  // namespace zoo
