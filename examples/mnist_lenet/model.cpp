// LeNet-5 (LeCun et al. 1998) for 28x28 MNIST digits, with ReLU and max-pooling as is usual today.
#include <convgen/model.h>

using namespace convgen;

Model lenet5() {
    auto x = input("image", Shape{1, 28, 28});
    x = conv2d(x, 6, 5, {.padding = 2}) | relu | max_pool(2);
    x = conv2d(x, 16, 5) | relu | max_pool(2);
    x = flatten(x) | dense(120) | relu | dense(84) | relu | dense(10);
    return Model("lenet5", x, softmax_cross_entropy());
}
CONVGEN_MODEL(lenet5)
