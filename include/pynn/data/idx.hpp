// Reading IDX files, the format MNIST and Fashion-MNIST ship in, and loading those two data sets
// from a directory of the four standard files. Files may be gzip-compressed or raw; the reader
// tells them apart by the gzip magic bytes, not by the file name.
#pragma once

#include <string>

#include <xtensor/xarray.hpp>

namespace pynn::data {

// Reads an IDX file: the magic (two zero bytes, a type code, the number of dimensions), the
// big-endian 32-bit size of each dimension, then the values, big-endian, row-major.
//
// Every element type is converted to float, so the result is always an xt::xarray<float> with the
// file's shape: ubyte (0x08), sbyte (0x09), short (0x0B) and float (0x0D) convert exactly; int
// (0x0C) beyond 2^24 in magnitude and double (0x0E) are rounded to the nearest float.
//
// Throws pynn::IOError if the file cannot be opened, is not valid gzip, or is not a valid IDX
// file: a bad magic or type code, zero dimensions, a header or body cut short, or bytes after
// the last value. The message names the file, the byte offset and what was expected there, e.g.
//   read_idx: /x/train: byte 4: expected 12 bytes of dimension sizes, file ends after 9 bytes
// In a gzip file, header and body offsets count bytes of the decompressed data, and say so:
//   read_idx: /x/train.gz: byte 4 (decompressed): expected 12 bytes of dimension sizes,
//   decompressed data ends after 9 bytes
// while errors in the gzip stream itself give the offset in the file ("compressed byte 812: ...").
xt::xarray<float> read_idx(const std::string& path);

// One of the MNIST-format data sets, ready for an MLP: images flattened to rows and scaled from
// 0..255 to [0, 1], labels as class indices (0..9) stored as float.
struct MnistData {
    xt::xarray<float> train_images; // (60000, 784)
    xt::xarray<float> train_labels; // (60000)
    xt::xarray<float> test_images;  // (10000, 784)
    xt::xarray<float> test_labels;  // (10000)
};

// Where Debian's `dataset-fashion-mnist` package installs the four files.
inline constexpr const char* debian_fashion_mnist_dir = "/usr/share/datasets/fashion-mnist";

// Loads train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and
// t10k-labels-idx1-ubyte from `dir`, each as `<name>.gz` or, failing that, `<name>`. Throws
// pynn::IOError naming what was looked for if the directory or a file is missing, and any error
// of read_idx, or an IOError if the images are not (N, rows, cols) or the labels not (N).
MnistData load_mnist(const std::string& dir);
MnistData load_fashion_mnist(const std::string& dir);

} // namespace pynn::data
