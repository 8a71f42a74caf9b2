// The blocks the zoo's networks are made of, with torchvision's layer names ("<block>.conv1",
// "<block>.bn1", "<block>.downsample.0" ...), so that a torchvision state dict loads into these
// models as it is: the residual blocks of He et al. 2016 (resnet.cpp, resnet_cifar.cpp),
// torchvision's Conv2dNormActivation (mobilenet.cpp, efficientnet.cpp), squeeze-and-excitation
// (efficientnet.cpp), and DenseNet's layers and transitions (densenet.cpp).
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

// Conv without bias, batch norm, activation: torchvision's Conv2dNormActivation, whose conv is
// "<name>.0" and batch norm "<name>.1".
inline Tensor conv_bn_activation(const Tensor& x, int64_t channels, int64_t kernel, int64_t stride, int64_t groups,
                                 const ActivationLayer& activation, const std::string& name) {
    const Tensor y = conv2d(x, channels, kernel,
                            {.stride = stride,
                             .padding = kernel / 2,
                             .groups = groups,
                             .bias = false,
                             .name = name + ".0",
                             .weight_init = Initializer::he_normal});
    return activation(batch_norm(y, {.name = name + ".1"}));
}

// Squeeze-and-excitation (Hu et al. 2018), torchvision.ops.SqueezeExcitation: each channel's mean
// through two 1x1 convs ("<name>.fc1" to `squeeze_channels`, "<name>.fc2" back) with `activation`
// between them and a sigmoid after, and each channel of x scaled by its gate.
inline Tensor squeeze_excitation(const Tensor& x, int64_t squeeze_channels, const ActivationLayer& activation,
                                 const std::string& name) {
    Tensor gate = global_avg_pool(x) | conv2d(squeeze_channels, 1, {.name = name + ".fc1"});
    gate = activation(gate) | conv2d(x.shape()[0], 1, {.name = name + ".fc2"}) | sigmoid;
    return scale_channels(x, gate, name + ".scale");
}

// DenseNet's bottleneck layer (Huang et al. 2017, "DenseNet-B"), torchvision's _DenseLayer:
// batch norm, ReLU, 1x1 conv to bn_size * growth channels; batch norm, ReLU, 3x3 conv to `growth`
// new feature maps ("<name>.norm1", "<name>.conv1", "<name>.norm2", "<name>.conv2").
inline Tensor dense_layer(const Tensor& features, int64_t growth, int64_t bn_size, const std::string& name) {
    Tensor y = batch_norm(features, {.name = name + ".norm1"}) | relu;
    y = y | conv2d(bn_size * growth, 1, {.bias = false, .name = name + ".conv1", .weight_init = Initializer::he_normal});
    y = batch_norm(y, {.name = name + ".norm2"}) | relu;
    return y | conv2d(growth, 3,
                      {.padding = 1, .bias = false, .name = name + ".conv2", .weight_init = Initializer::he_normal});
}

// A dense block: each of `layers` layers reads every feature map before it, and its `growth`
// new maps are joined to them ("<name>.denselayer1" ...).
inline Tensor dense_block(Tensor features, int layers, int64_t growth, int64_t bn_size, const std::string& name) {
    for (int i = 1; i <= layers; i++) {
        features = concat({features, dense_layer(features, growth, bn_size, name + ".denselayer" + std::to_string(i))});
    }
    return features;
}

// DenseNet's transition between blocks, torchvision's _Transition: batch norm, ReLU, 1x1 conv to
// `channels` ("<name>.norm", "<name>.conv"), 2x2 average pooling.
inline Tensor transition(const Tensor& x, int64_t channels, const std::string& name) {
    Tensor y = batch_norm(x, {.name = name + ".norm"}) | relu;
    y = y | conv2d(channels, 1, {.bias = false, .name = name + ".conv", .weight_init = Initializer::he_normal});
    return avg_pool(y, 2, {.name = name + ".pool"});
}

}  // namespace zoo
