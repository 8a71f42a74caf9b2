// VGG (Simonyan & Zisserman 2015) as torchvision.models.vgg11/16/19 build it, and the common
// CIFAR-10 form with batch norm. Layers are named as in torchvision (features.<i>, classifier.<i>:
// the index of the layer in its nn.Sequential, ReLUs, batch norms and pools included), so the
// convs' names skip the indices of the layers between them.
#include <convgen/model.h>

#include <string>
#include <vector>

using namespace convgen;

namespace {

constexpr int pool = 0;  // a 2x2 max pool in a configuration; any other entry is a 3x3 conv's channels

// torchvision's configurations "A", "D" and "E".
const std::vector<int> vgg11_layers = {64, pool, 128, pool, 256, 256, pool, 512, 512, pool, 512, 512, pool};
const std::vector<int> vgg16_layers = {64,   64,  pool, 128, 128,  pool, 256, 256, 256,
                                       pool, 512, 512,  512, pool, 512,  512, 512, pool};
const std::vector<int> vgg19_layers = {64,  64,  pool, 128, 128,  pool, 256, 256, 256, 256, pool,
                                       512, 512, 512,  512, pool, 512,  512, 512, 512, pool};

// 3x3 convs (padding 1, with bias, as torchvision even before a batch norm), each followed by
// batch_norm when asked and ReLU; 2x2 max pools.
Tensor vgg_features(Tensor x, const std::vector<int>& layers, bool with_batch_norm) {
    int index = 0;
    auto next_name = [&] { return "features." + std::to_string(index++); };
    for (int channels : layers) {
        if (channels == pool) {
            x = max_pool(x, 2, {.name = next_name()});
            continue;
        }
        x = conv2d(x, channels, 3, {.padding = 1, .name = next_name()});
        if (with_batch_norm) x = batch_norm(x, {.name = next_name()});
        x = relu(x, next_name());
    }
    return x;
}

// ImageNet: 224x224 images, [512, 7, 7] after the features. torchvision's AdaptiveAvgPool2d((7, 7))
// comes next: the identity at this size, so left out.
Model vgg(const std::string& name, const std::vector<int>& layers) {
    auto x = input("image", Shape{3, 224, 224});
    x = vgg_features(x, layers, false) | flatten;
    x = x | dense(4096, {.name = "classifier.0"}) | relu | dropout(0.5, {.name = "classifier.2"});
    x = x | dense(4096, {.name = "classifier.3"}) | relu | dropout(0.5, {.name = "classifier.5"});
    x = x | dense(1000, {.name = "classifier.6"});
    return Model(name, x, softmax_cross_entropy());
}

// CIFAR-10: 32x32 images, torchvision's vgg*_bn features (conv, batch norm, ReLU); the five pools
// leave [512, 1, 1], and one dense layer named "classifier" makes the 10 scores.
Model vgg_cifar(const std::string& name, const std::vector<int>& layers) {
    auto x = input("image", Shape{3, 32, 32});
    x = vgg_features(x, layers, true) | flatten | dense(10, {.name = "classifier"});
    return Model(name, x, softmax_cross_entropy());
}

}  // namespace

Model vgg11() {
    return vgg("vgg11", vgg11_layers);
}
Model vgg16() {
    return vgg("vgg16", vgg16_layers);
}
Model vgg19() {
    return vgg("vgg19", vgg19_layers);
}
Model vgg11_cifar() {
    return vgg_cifar("vgg11_cifar", vgg11_layers);
}
Model vgg16_cifar() {
    return vgg_cifar("vgg16_cifar", vgg16_layers);
}
Model vgg19_cifar() {
    return vgg_cifar("vgg19_cifar", vgg19_layers);
}
CONVGEN_MODEL(vgg11)
CONVGEN_MODEL(vgg16)
CONVGEN_MODEL(vgg19)
CONVGEN_MODEL(vgg11_cifar)
CONVGEN_MODEL(vgg16_cifar)
CONVGEN_MODEL(vgg19_cifar)
