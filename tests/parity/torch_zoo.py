#!/usr/bin/env python3
"""The PyTorch twin of every model in examples/zoo: the same layers under the same state-dict
names and shapes. torchvision's own model wherever the zoo model is that model; small modules
built from torchvision's parts otherwise.

    import torch_zoo
    module, input_shape = torch_zoo.build("resnet20")     # input_shape is per sample: (C, H, W)
    for name in torch_zoo.MODELS: ...
"""
from collections import OrderedDict

import torch
from torch import nn
import torchvision
from torchvision.models.resnet import BasicBlock, ResNet, conv1x1
from torchvision.models.vgg import cfgs as vgg_configurations, make_layers as vgg_features


class MnistCnn(nn.Module):
    """PyTorch's examples/mnist Net."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        x = self.dropout1(nn.functional.max_pool2d(x, 2)).flatten(1)
        return self.fc2(self.dropout2(torch.relu(self.fc1(x))))


def alexnet():
    # At 224x224 torchvision's AdaptiveAvgPool2d((6, 6)) is the identity, as the zoo assumes.
    return torchvision.models.alexnet()


def vgg(configuration):
    return lambda: getattr(torchvision.models, configuration)()


class VggCifar(nn.Module):
    """torchvision's vgg*_bn features on 32x32 images ([512, 1, 1] after them), one dense layer."""

    def __init__(self, configuration):
        super().__init__()
        self.features = vgg_features(vgg_configurations[configuration], batch_norm=True)
        self.classifier = nn.Linear(512, 10)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


class ResNetCifar(nn.Module):
    """He et al. 2016's CIFAR-10 ResNet (6n + 2 layers) from torchvision's BasicBlock, with 1x1
    conv + batch norm shortcuts where the shape changes (option B)."""

    def __init__(self, blocks_per_stage):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        channels = 16
        for stage, width in enumerate((16, 32, 64)):
            blocks = []
            for block in range(blocks_per_stage):
                stride = 2 if stage > 0 and block == 0 else 1
                downsample = None
                if stride != 1 or channels != width:
                    downsample = nn.Sequential(conv1x1(channels, width, stride), nn.BatchNorm2d(width))
                blocks.append(BasicBlock(channels, width, stride, downsample))
                channels = width
            setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.avgpool(x).flatten(1))


class PlainBlock(BasicBlock):
    """BasicBlock without its shortcut: the paper's plain network."""

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(x)))


def plain34():
    model = ResNet(PlainBlock, [3, 4, 6, 3])
    for stage in (model.layer1, model.layer2, model.layer3, model.layer4):
        for block in stage:
            block.downsample = None  # ResNet adds projections where the shape changes; a plain net has none
    return model


def conv_bn_relu(inputs, outputs, kernel, stride=1, groups=1):
    return nn.Sequential(nn.Conv2d(inputs, outputs, kernel, stride, kernel // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(outputs), nn.ReLU(inplace=True))


class MobileNetV1(nn.Module):
    """Howard et al. 2017, width 1.0: features.0 a strided 3x3 conv, features.1-13 depthwise
    separable blocks (features.<i>.0 depthwise 3x3, features.<i>.1 pointwise 1x1; each of them
    .0 conv, .1 batch norm, .2 ReLU)."""

    BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1), (512, 1),
              (512, 1), (512, 1), (1024, 2), (1024, 1)]

    def __init__(self, classes=1000):
        super().__init__()
        layers = [conv_bn_relu(3, 32, 3, 2)]
        channels = 32
        for width, stride in self.BLOCKS:
            layers.append(nn.Sequential(conv_bn_relu(channels, channels, 3, stride, groups=channels),
                                        conv_bn_relu(channels, width, 1)))
            channels = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(1024, classes)

    def forward(self, x):
        return self.classifier(nn.functional.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


# name -> (constructor, per-sample input shape)
def densenet_bc100_cifar():
    """torchvision's DenseNet with growth 12 and blocks of 16 layers, its ImageNet stem replaced by
    the paper's CIFAR one: a 3x3 conv to 24 channels (features.conv0), no norm0, relu0 or pool0."""
    model = torchvision.models.DenseNet(growth_rate=12, block_config=(16, 16, 16), num_init_features=24, bn_size=4,
                                        num_classes=10)
    model.features.conv0 = nn.Conv2d(3, 24, 3, padding=1, bias=False)
    del model.features.norm0, model.features.relu0, model.features.pool0
    return model


MODELS = OrderedDict([
    ("mnist_cnn", (MnistCnn, (1, 28, 28))),
    ("alexnet", (alexnet, (3, 224, 224))),
    ("vgg11", (vgg("vgg11"), (3, 224, 224))),
    ("vgg16", (vgg("vgg16"), (3, 224, 224))),
    ("vgg19", (vgg("vgg19"), (3, 224, 224))),
    ("vgg11_cifar", (lambda: VggCifar("A"), (3, 32, 32))),
    ("vgg16_cifar", (lambda: VggCifar("D"), (3, 32, 32))),
    ("vgg19_cifar", (lambda: VggCifar("E"), (3, 32, 32))),
    ("resnet20", (lambda: ResNetCifar(3), (3, 32, 32))),
    ("resnet56", (lambda: ResNetCifar(9), (3, 32, 32))),
    ("resnet18", (torchvision.models.resnet18, (3, 224, 224))),
    ("resnet34", (torchvision.models.resnet34, (3, 224, 224))),
    ("resnet50", (torchvision.models.resnet50, (3, 224, 224))),
    ("plain34", (plain34, (3, 224, 224))),
    ("mobilenet_v1", (MobileNetV1, (3, 224, 224))),
    ("mobilenet_v2", (torchvision.models.mobilenet_v2, (3, 224, 224))),
    ("mobilenet_v2_cifar", (lambda: torchvision.models.mobilenet_v2(num_classes=10), (3, 32, 32))),
    ("googlenet", (lambda: torchvision.models.googlenet(aux_logits=False, init_weights=True), (3, 224, 224))),
    ("densenet121", (torchvision.models.densenet121, (3, 224, 224))),
    ("densenet_bc100_cifar", (densenet_bc100_cifar, (3, 32, 32))),
    ("efficientnet_b0", (torchvision.models.efficientnet_b0, (3, 224, 224))),
    ("efficientnet_b0_cifar", (lambda: torchvision.models.efficientnet_b0(num_classes=10), (3, 32, 32))),
])


def build(name):
    """The zoo model `name` as a torch.nn.Module (freshly initialised) and its per-sample input shape."""
    if name not in MODELS:
        raise KeyError(f"no zoo model named '{name}' (known: {', '.join(MODELS)})")
    constructor, input_shape = MODELS[name]
    return constructor(), input_shape
