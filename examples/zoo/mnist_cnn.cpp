// The CNN of PyTorch's examples/mnist (main.py's Net): two 3x3 convs, a max pool, dropout and two
// dense layers, with the same layer names, so its state dict loads here as it is.
#include <convgen/model.h>

using namespace convgen;

Model mnist_cnn() {
    auto x = input("image", Shape{1, 28, 28});
    x = x | conv2d(32, 3, {.name = "conv1"}) | relu | conv2d(64, 3, {.name = "conv2"}) | relu;
    x = x | max_pool(2) | dropout(0.25, {.name = "dropout1"}) | flatten;
    x = x | dense(128, {.name = "fc1"}) | relu | dropout(0.5, {.name = "dropout2"}) | dense(10, {.name = "fc2"});
    return Model("mnist_cnn", x, softmax_cross_entropy());
}
CONVGEN_MODEL(mnist_cnn)
