// AlexNet (Krizhevsky et al. 2012) as torchvision.models.alexnet builds it: the one-GPU variant
// of "One weird trick" (Krizhevsky 2014), 64-192-384-256-256 channels, with torchvision's layer
// names (features.<i>, classifier.<i>: the index of the layer in its nn.Sequential).
#include <convgen/model.h>

using namespace convgen;

Model alexnet() {
    auto x = input("image", Shape{3, 224, 224});
    x = x | conv2d(64, 11, {.stride = 4, .padding = 2, .name = "features.0"}) | relu;
    x = x | max_pool(3, {.stride = 2});
    x = x | conv2d(192, 5, {.padding = 2, .name = "features.3"}) | relu;
    x = x | max_pool(3, {.stride = 2});
    x = x | conv2d(384, 3, {.padding = 1, .name = "features.6"}) | relu;
    x = x | conv2d(256, 3, {.padding = 1, .name = "features.8"}) | relu;
    x = x | conv2d(256, 3, {.padding = 1, .name = "features.10"}) | relu;
    x = x | max_pool(3, {.stride = 2});  // [256, 6, 6]
    // torchvision's AdaptiveAvgPool2d((6, 6)) comes here: at 224x224 the map is already 6x6, so it
    // is the identity and left out.
    x = x | flatten | dropout(0.5, {.name = "classifier.0"}) | dense(4096, {.name = "classifier.1"}) | relu;
    x = x | dropout(0.5, {.name = "classifier.3"}) | dense(4096, {.name = "classifier.4"}) | relu;
    x = x | dense(1000, {.name = "classifier.6"});
    return Model("alexnet", x, softmax_cross_entropy());
}
CONVGEN_MODEL(alexnet)
