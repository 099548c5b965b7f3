/* The standard datasets by name: see catalog.h. Digests: the Fashion-MNIST
 * ones are those of the files Debian's dataset-fashion-mnist package ships
 * (the upstream archives, unchanged); for the others no SHA-256 is
 * published by their authors (only MD5), so none is pinned here and a
 * download asks for --sha256 rather than trusting an unverified file. */
#include "ics_build_config.h"
#include "data/catalog.h"

#include <string.h>

const char *const ics_fashion_mnist_classes[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
const char *const ics_mnist_classes[10] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};

#define FASHION_URL "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
#define MNIST_URL "https://ossci-datasets.s3.amazonaws.com/mnist/"

static const ics_catalog_entry entries[] = {
    {"fashion-mnist", ICS_SOURCE_IDX, "Zalando Fashion-MNIST: 28x28 grey, 10 classes, 60000 train / 10000 test",
     {"/usr/share/datasets/fashion-mnist", NULL},
     {{"train-images-idx3-ubyte.gz", FASHION_URL "train-images-idx3-ubyte.gz",
       "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7"},
      {"train-labels-idx1-ubyte.gz", FASHION_URL "train-labels-idx1-ubyte.gz",
       "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056"},
      {"t10k-images-idx3-ubyte.gz", FASHION_URL "t10k-images-idx3-ubyte.gz",
       "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa"},
      {"t10k-labels-idx1-ubyte.gz", FASHION_URL "t10k-labels-idx1-ubyte.gz",
       "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05"}},
     4, NULL},
    {"mnist", ICS_SOURCE_IDX, "LeCun MNIST digits: 28x28 grey, 10 classes, 60000 train / 10000 test",
     {"/usr/share/datasets/mnist", NULL},
     {{"train-images-idx3-ubyte.gz", MNIST_URL "train-images-idx3-ubyte.gz", NULL},
      {"train-labels-idx1-ubyte.gz", MNIST_URL "train-labels-idx1-ubyte.gz", NULL},
      {"t10k-images-idx3-ubyte.gz", MNIST_URL "t10k-images-idx3-ubyte.gz", NULL},
      {"t10k-labels-idx1-ubyte.gz", MNIST_URL "t10k-labels-idx1-ubyte.gz", NULL}},
     4, NULL},
    {"cifar10", ICS_SOURCE_CIFAR10, "CIFAR-10: 32x32 RGB, 10 classes, 50000 train / 10000 test",
     {NULL},
     {{"cifar-10-binary.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz", NULL}},
     1, NULL},
    {"cifar100", ICS_SOURCE_CIFAR100, "CIFAR-100 (fine labels): 32x32 RGB, 100 classes, 50000 train / 10000 test",
     {NULL},
     {{"cifar-100-binary.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz", NULL}},
     1, NULL},
    {"imagenette", ICS_SOURCE_FOLDER, "Imagenette (160 px): 10 ImageNet classes, JPEG folders train/ and val/",
     {NULL},
     {{"imagenette2-160.tgz", "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-160.tgz", NULL}},
     1, "imagenette2-160"},
};

const ics_catalog_entry *ics_catalog_find(const char *name)
{
    for (size_t i = 0; i < sizeof entries / sizeof *entries; i++)
        if (strcmp(entries[i].name, name) == 0) return &entries[i];
    return NULL;
}

const ics_catalog_entry *ics_catalog_entries(int *count)
{
    *count = (int)(sizeof entries / sizeof *entries);
    return entries;
}

int ics_source_format_parse(const char *text)
{
    static const char *const names[] = {"idx", "cifar10", "cifar100", "folder"};
    for (int i = 0; i < 4; i++)
        if (strcmp(text, names[i]) == 0) return i;
    return -1;
}
